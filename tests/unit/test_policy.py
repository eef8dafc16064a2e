"""Access decisions: every action × every role × published and unpublished, written out as a table."""

from __future__ import annotations

import datetime as dt

import pytest
from flask_login import AnonymousUserMixin

from app.accounts.models import Membership, Role, StakeholderCategory, User, WorkingGroup
from app.consensus.models import Forum
from app.drafting.models import Code, Version
from app.errors import Forbidden, NotFound
from app.policy import Action, can, require

GROUP_ID = 1
OTHER_GROUP_ID = 2
ROLES = ["anonymous", "stakeholder", "observer", "member", "editor", "vice_chair", "chair", "admin"]


def make_user(role: str) -> User | None:
    """Build an in-memory user holding `role` in working group 1 (no database involved)."""
    if role == "anonymous":
        return None
    user = User(
        email=f"{role}@example.org",
        display_name=role.title(),
        category=StakeholderCategory.CIVIL_SOCIETY,
        is_admin=role == "admin",
    )
    user.memberships = (
        [] if role in ("stakeholder", "admin") else [Membership(role=Role(role), working_group_id=GROUP_ID)]
    )
    return user


def make_world(*, published: bool) -> dict[str, object]:
    group = WorkingGroup(id=GROUP_ID, slug="wg-1", name="Working group 1")
    code = Code(id=10, slug="gpai-code", title="GPAI code", language="en", working_group_id=GROUP_ID)
    version = Version(id=100, number=1, label="First draft", markdown="# Code\n")
    version.code = code
    version.published_at = dt.datetime(2025, 3, 1, tzinfo=dt.UTC) if published else None
    forum = Forum(id=7, slug="plenary", name="Plenary", working_group_id=GROUP_ID)
    return {"group": group, "code": code, "version": version, "forum": forum, None: None}


# The object each action is decided on, as the services and views pass it.
TARGET = {
    Action.CREATE_WORKING_GROUP: None,
    Action.VIEW_AUDIT: None,
    Action.MANAGE_MEMBERS: "group",
    Action.INVITE: "group",
    Action.VIEW_GROUP: "group",
    Action.CREATE_CODE: "group",
    Action.VIEW_CODE: "code",
    Action.EDIT_CODE: "code",
    Action.VIEW_WORKING_TEXT: "code",
    Action.EDIT_WORKING_TEXT: "code",
    Action.VIEW_GROUP_COMMENTS: "code",
    Action.MANAGE_CONSULTATION: "code",
    Action.COMMENT: "version",
    Action.CUT_VERSION: "code",
    Action.VIEW_VERSION: "version",
    Action.PUBLISH_VERSION: "version",
    Action.MANAGE_FORUM: "forum",
}

U, P = "unpublished", "published"
T, F = True, False
# fmt: off
TABLE = {
    #                                    anon  stake observ member editor vchair chair  admin
    (Action.CREATE_WORKING_GROUP, U): (F,    F,    F,     F,     F,     F,     F,     T),
    (Action.CREATE_WORKING_GROUP, P): (F,    F,    F,     F,     F,     F,     F,     T),
    (Action.VIEW_AUDIT, U):           (F,    F,    F,     F,     F,     F,     F,     T),
    (Action.VIEW_AUDIT, P):           (F,    F,    F,     F,     F,     F,     F,     T),
    (Action.MANAGE_MEMBERS, U):       (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.MANAGE_MEMBERS, P):       (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.INVITE, U):               (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.INVITE, P):               (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.VIEW_GROUP, U):           (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.VIEW_GROUP, P):           (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.CREATE_CODE, U):          (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.CREATE_CODE, P):          (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.VIEW_CODE, U):            (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.VIEW_CODE, P):            (T,    T,    T,     T,     T,     T,     T,     T),
    (Action.EDIT_CODE, U):            (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.EDIT_CODE, P):            (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.VIEW_WORKING_TEXT, U):    (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.VIEW_WORKING_TEXT, P):    (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.EDIT_WORKING_TEXT, U):    (F,    F,    F,     F,     T,     T,     T,     T),
    (Action.EDIT_WORKING_TEXT, P):    (F,    F,    F,     F,     T,     T,     T,     T),
    (Action.CUT_VERSION, U):          (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.CUT_VERSION, P):          (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.VIEW_VERSION, U):         (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.VIEW_VERSION, P):         (T,    T,    T,     T,     T,     T,     T,     T),
    (Action.PUBLISH_VERSION, U):      (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.PUBLISH_VERSION, P):      (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.COMMENT, U):              (F,    F,    F,     T,     T,     T,     T,     T),
    (Action.COMMENT, P):              (F,    T,    F,     T,     T,     T,     T,     T),
    (Action.VIEW_GROUP_COMMENTS, U):  (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.VIEW_GROUP_COMMENTS, P):  (F,    F,    T,     T,     T,     T,     T,     T),
    (Action.MANAGE_CONSULTATION, U):  (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.MANAGE_CONSULTATION, P):  (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.MANAGE_FORUM, U):         (F,    F,    F,     F,     F,     T,     T,     T),
    (Action.MANAGE_FORUM, P):         (F,    F,    F,     F,     F,     T,     T,     T),
}
# fmt: on

CASES = [
    pytest.param(action, state, role, allowed, id=f"{action}-{state}-{role}")
    for (action, state), row in TABLE.items()
    for role, allowed in zip(ROLES, row, strict=True)
]


def test_table_covers_every_action_in_both_states():
    assert {action for action, _ in TABLE} == set(Action)
    assert len(TABLE) == 2 * len(Action)
    assert set(TARGET) == set(Action)


@pytest.mark.parametrize(("action", "state", "role", "allowed"), CASES)
def test_can_follows_the_access_table(action, state, role, allowed):
    world = make_world(published=state == P)

    assert can(make_user(role), action, world[TARGET[action]]) is allowed


@pytest.mark.parametrize(("action", "state", "role", "allowed"), CASES)
def test_require_raises_not_found_for_hidden_views_and_forbidden_otherwise(action, state, role, allowed):
    world = make_world(published=state == P)
    user, target = make_user(role), world[TARGET[action]]

    if allowed:
        require(user, action, target)
        return
    expected = NotFound if action.name.startswith("VIEW_") and action is not Action.VIEW_AUDIT else Forbidden
    with pytest.raises(expected):
        require(user, action, target)


@pytest.mark.parametrize("role", [Role.OBSERVER, Role.EDITOR, Role.CHAIR])
def test_a_role_in_another_working_group_counts_as_no_role(role):
    user = make_user("stakeholder")
    user.memberships = [Membership(role=role, working_group_id=OTHER_GROUP_ID)]
    world = make_world(published=False)

    for action, target in TARGET.items():
        assert can(user, action, world[target]) is can(make_user("stakeholder"), action, world[target]), action


def test_flask_login_anonymous_user_is_treated_as_the_public():
    world = make_world(published=False)
    anonymous = AnonymousUserMixin()

    assert not can(anonymous, Action.VIEW_VERSION, world["version"])
    assert not can(anonymous, Action.VIEW_WORKING_TEXT, world["code"])
    assert can(anonymous, Action.VIEW_VERSION, make_world(published=True)["version"])


def test_code_is_public_once_any_of_its_versions_is_published():
    code = Code(slug="gpai-code", title="GPAI code", language="en", working_group_id=GROUP_ID)
    for number, published_at in [(1, dt.datetime(2025, 3, 1, tzinfo=dt.UTC)), (2, None)]:
        Version(number=number, label=f"v{number}", markdown="", published_at=published_at).code = code

    assert can(None, Action.VIEW_CODE, code)
    assert can(None, Action.VIEW_VERSION, code.versions[0])
    assert not can(None, Action.VIEW_VERSION, code.versions[1])


def test_admin_rights_do_not_depend_on_membership():
    admin = make_user("admin")
    admin.memberships = [Membership(role=Role.OBSERVER, working_group_id=GROUP_ID)]
    world = make_world(published=False)

    assert all(can(admin, action, world[target]) for action, target in TARGET.items())


@pytest.mark.parametrize("role", ROLES)
def test_a_forum_of_no_working_group_is_managed_by_admins_only(role):
    forum = Forum(id=8, slug="alliance", name="European AI Alliance", working_group_id=None)
    assert can(make_user(role), Action.MANAGE_FORUM, forum) is (role == "admin")
