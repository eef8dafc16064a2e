"""Every access decision in one place: `can(user, action, obj)`."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from app.accounts.models import Role, User, WorkingGroup
from app.consensus.models import Eligibility, Forum, Round
from app.drafting.models import Code, Version
from app.errors import Forbidden, NotFound


class Action(enum.StrEnum):
    CREATE_WORKING_GROUP = "create_working_group"
    MANAGE_MEMBERS = "manage_members"
    INVITE = "invite"
    VIEW_GROUP = "view_group"
    CREATE_CODE = "create_code"
    VIEW_CODE = "view_code"
    EDIT_CODE = "edit_code"
    VIEW_VERSION = "view_version"
    VIEW_WORKING_TEXT = "view_working_text"
    EDIT_WORKING_TEXT = "edit_working_text"
    CUT_VERSION = "cut_version"
    PUBLISH_VERSION = "publish_version"
    VIEW_AUDIT = "view_audit"
    COMMENT = "comment"
    VIEW_GROUP_COMMENTS = "view_group_comments"
    MANAGE_CONSULTATION = "manage_consultation"
    MANAGE_FORUM = "manage_forum"


CHAIRS = frozenset({Role.CHAIR, Role.VICE_CHAIR})
WRITERS = frozenset({Role.CHAIR, Role.VICE_CHAIR, Role.EDITOR})
# Observers (member-state and advisory-body representatives) read everything in the group.
READERS = frozenset(Role)


def working_text_access(role: Role | None, is_admin: bool) -> tuple[bool, bool]:
    """Return (may read, may change) a working text for a group role; the rule `can()` applies too."""
    if is_admin:
        return True, True
    return role in READERS, role in WRITERS


def _user(user: Any) -> User | None:
    return user if isinstance(user, User) else None


def role_in(user: Any, group: WorkingGroup | int) -> Role | None:
    """Return the user's role in a working group, or None."""
    account = _user(user)
    if account is None:
        return None
    group_id = group if isinstance(group, int) else group.id
    for membership in account.memberships:
        if membership.working_group_id == group_id:
            return membership.role
    return None


def _group_role(user: Any, obj: Any) -> Role | None:
    if isinstance(obj, Forum):
        # A forum of no working group has no chairs of its own: admins manage it.
        return role_in(user, obj.working_group_id) if obj.working_group_id is not None else None
    if isinstance(obj, Version):
        obj = obj.code
    if isinstance(obj, Code):
        return role_in(user, obj.working_group_id)
    if isinstance(obj, WorkingGroup):
        return role_in(user, obj)
    return None


def can(user: Any, action: Action, obj: Any = None) -> bool:
    """Tell whether `user` (a User, or anything else for the anonymous public) may do `action` on `obj`."""
    account = _user(user)
    if account is not None and account.is_admin:
        return True
    role = _group_role(user, obj)
    match action:
        case Action.CREATE_WORKING_GROUP | Action.VIEW_AUDIT:
            return False
        case (
            Action.MANAGE_MEMBERS
            | Action.INVITE
            | Action.CREATE_CODE
            | Action.EDIT_CODE
            | Action.MANAGE_CONSULTATION
            | Action.MANAGE_FORUM
        ):
            return role in CHAIRS
        case Action.CUT_VERSION | Action.PUBLISH_VERSION:
            return role in CHAIRS
        case Action.VIEW_WORKING_TEXT:
            return working_text_access(role, False)[0]
        case Action.VIEW_GROUP | Action.VIEW_GROUP_COMMENTS:
            return role in READERS
        case Action.COMMENT:
            # Any registered person who can read the version may comment, except observers, who write nothing.
            return account is not None and role != Role.OBSERVER and (bool(obj.is_published) or role in READERS)
        case Action.EDIT_WORKING_TEXT:
            return working_text_access(role, False)[1]
        case Action.VIEW_VERSION:
            return bool(obj.is_published) or role in READERS
        case Action.VIEW_CODE:
            return role in READERS or any(version.is_published for version in obj.versions)
    return False


def is_member(forum: Forum, user: Any) -> bool:
    """Whether the user takes part in the forum."""
    account = _user(user)
    return account is not None and any(member.user_id == account.id for member in forum.members)


def may_respond(user: Any, round_: Round) -> bool:
    """Forum members respond; in an open forum's round for registered participants, anyone logged in does."""
    if _user(user) is None:
        return False
    if round_.eligibility is Eligibility.REGISTERED and round_.forum.is_open:
        return True
    return is_member(round_.forum, user)


def may_see_results(viewer: Any, round_: Round, now: dt.datetime) -> bool:
    """The working group follows a round live; everyone else reads its results once it has closed."""
    return can(viewer, Action.VIEW_GROUP, round_.code) or (
        round_.has_closed(now) and can(viewer, Action.VIEW_VERSION, round_.version)
    )


def require(user: Any, action: Action, obj: Any = None, *, reason: str = "") -> None:
    """Raise unless `can(user, action, obj)`.

    Things the user may not even see answer 404, so hidden objects cannot be told from missing ones.

    Raises:
        NotFound: for view actions the user is not allowed.
        Forbidden: for other actions, with `reason` as the message.
    """
    if can(user, action, obj):
        return
    if action in {
        Action.VIEW_CODE,
        Action.VIEW_VERSION,
        Action.VIEW_WORKING_TEXT,
        Action.VIEW_GROUP,
        Action.VIEW_GROUP_COMMENTS,
    }:
        raise NotFound()
    raise Forbidden(reason or "You are not allowed to do that.")
