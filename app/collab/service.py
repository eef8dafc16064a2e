"""Who may join or change a working text, and whole-text writes that merge with live editing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.accounts.models import User
from app.collab import store
from app.collab.hub import hub
from app.db import after_commit
from app.drafting.models import Code
from app.errors import NotFound
from app.policy import Action, can


@dataclass(frozen=True)
class Access:
    code: Code
    can_read: bool
    can_write: bool


def access(session: Session, user: User | None, code_id: object) -> Access:
    """Decide, from the database as it is now, what `user` may do with a code's working text.

    Called on every co-editing event, so a role revoked while connected applies to the next event.

    Raises:
        NotFound: when the code does not exist or the user may not even read its working text.
    """
    if not isinstance(code_id, int) or isinstance(code_id, bool):
        raise NotFound()
    code = session.get(Code, code_id)
    if code is None or user is None or not can(user, Action.VIEW_WORKING_TEXT, code):
        raise NotFound()
    return Access(code, True, can(user, Action.EDIT_WORKING_TEXT, code))


def write_whole_text(session: Session, code: Code, text: str, user_id: int | None) -> bool:
    """Merge a whole new text into the live document as minimal edits; broadcast after commit.

    Returns whether anything changed.
    """
    data = store.write_text(session, code, text, user_id)
    if data:
        after_commit(session, lambda: hub.publish_committed(code.id, data))
    return bool(data)
