"""Who may join or change a working text, and whole-text writes that merge with live editing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.accounts.models import Membership, User
from app.collab import store
from app.collab.hub import hub
from app.db import after_commit
from app.drafting.models import Code
from app.errors import NotFound
from app.policy import Action, can, working_text_access


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


@dataclass(frozen=True)
class EventAccess:
    user_id: int
    code_id: int
    can_write: bool


# Built once: constructing the statement and its cache key for every co-editing event cost about as much as
# running it.
_EVENT_ACCESS = (
    select(User.session_generation, User.is_admin, Membership.role)
    .select_from(Code)
    .join(User, User.id == bindparam("user_id"))
    .outerjoin(
        Membership,
        (Membership.user_id == User.id) & (Membership.working_group_id == Code.working_group_id),
    )
    .where(Code.id == bindparam("code_id"))
)


def event_access(session: Session, login_id: object, code_id: object) -> EventAccess:
    """Decide, with one query against the database as it is now, what a socket's user may do with a code.

    `login_id` is Flask-Login's session id ("<user id>:<session generation>"), so a changed password ends
    access as it ends the page session; a revoked role applies to the very next event. This runs for every
    co-editing event, which is why it reads three columns instead of loading the user, code and memberships.

    Raises:
        NotFound: when the code does not exist, the session is stale, or the user may not read the text.
    """
    parsed = User.parse_login_id(login_id)
    if parsed is None or not isinstance(code_id, int) or isinstance(code_id, bool):
        raise NotFound()
    uid, generation = parsed
    row = session.execute(_EVENT_ACCESS, {"user_id": uid, "code_id": code_id}).first()
    if row is None or row.session_generation != generation:
        raise NotFound()
    can_read, can_write = working_text_access(row.role, row.is_admin)
    if not can_read:
        raise NotFound()
    return EventAccess(uid, code_id, can_write)


def write_whole_text(session: Session, code: Code, text: str, user_id: int | None) -> bool:
    """Merge a whole new text into the live document as minimal edits; broadcast after commit.

    Returns whether anything changed.
    """
    data = store.write_text(session, code, text, user_id)
    if data:
        after_commit(session, lambda: hub.publish_committed(code.id, data))
    return bool(data)
