"""Registering, logging in and out, passwords, CSRF, working groups, roles and invitations."""

from __future__ import annotations

import hashlib
import html
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from app import create_app
from app.accounts.models import Invitation, Membership, Role, StakeholderCategory, User, WorkingGroup
from app.audit.models import AuditEvent
from app.db import db
from app.outbox.models import OutboxMessage
from tests.conftest import PASSWORD

NEW_PASSWORD = "a brand new passphrase"
REGISTRATION = {
    "email": "ann@example.org",
    "display_name": "Ann Example",
    "organisation": "Example Foundation",
    "category": "academia",
    "transparency_register_id": "",
    "password": "long enough secret",
    "confirm": "long enough secret",
}


def field_error(page: str, field: str) -> str | None:
    """Return the error text shown next to a form field, if any."""
    match = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def log_in(client, email: str, password: str = PASSWORD, **extra):
    return client.post("/login", data={"email": email, "password": password, **extra})


def audit_actions(session) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# --- registering ---------------------------------------------------------------------------------


def test_registering_creates_the_account_logs_in_and_audits_it(client, session):
    response = client.post("/register", data=REGISTRATION)

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/"
    user = session.scalars(select(User).where(User.email == "ann@example.org")).one()
    assert user.display_name == "Ann Example"
    assert user.category is StakeholderCategory.ACADEMIA
    assert user.password_hash != REGISTRATION["password"]
    assert check_password_hash(user.password_hash, REGISTRATION["password"])
    assert not user.is_admin
    assert '<span class="who">Ann Example</span>' in client.get("/").get_data(as_text=True)
    assert "account.registered" in audit_actions(session)


def test_registering_an_address_already_in_use_answers_409_with_a_message(client, make_user, session):
    make_user(email="ann@example.org")

    response = client.post("/register", data={**REGISTRATION, "email": "Ann@Example.org"})

    assert response.status_code == 409
    assert "An account with this email address already exists. Log in instead." in response.get_data(as_text=True)
    assert count(session, User) == 1


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "An email address must have an @-sign."),
        ({"password": "short", "confirm": "short"}, "password", "Use at least 10 characters."),
        ({"confirm": "something else entirely"}, "confirm", "The passwords do not match."),
        ({"category": "astronaut"}, "category", "Not a valid choice."),
    ],
    ids=["bad-email", "short-password", "password-mismatch", "unknown-category"],
)
def test_registering_with_invalid_input_answers_422_with_the_message_next_to_the_field(
    client, session, change, field, message
):
    response = client.post("/register", data={**REGISTRATION, **change})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, field) == message
    assert f'aria-describedby="{field}-error"' in page
    assert count(session, User) == 0


# --- logging in and out --------------------------------------------------------------------------


def test_login_then_logout_ends_the_session(client, make_user, session):
    user = make_user()

    response = log_in(client, user.email)
    assert response.status_code == 302
    assert client.get("/account/password").status_code == 200

    assert client.post("/logout").status_code == 302
    after = client.get("/account/password")
    assert after.status_code == 302
    assert urlsplit(after.headers["Location"]).path == "/login"
    assert "login.succeeded" in audit_actions(session)


def test_wrong_password_answers_401_and_records_a_failed_login(client, make_user, session):
    user = make_user()

    response = log_in(client, user.email, "not the password")

    assert response.status_code == 401
    assert field_error(response.get_data(as_text=True), "password") == "The email address or password is not correct."
    assert client.get("/account/password").status_code == 302
    failed = session.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")).one()
    assert failed.object_id == str(user.id)
    assert failed.actor_id is None


def test_eleventh_login_attempt_within_a_minute_answers_429_with_retry_after(client, make_user, session):
    user = make_user()
    for _ in range(10):
        assert log_in(client, user.email, "wrong password").status_code == 401

    refused = log_in(client, user.email)  # even the right password is refused now

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert client.get("/account/password").status_code == 302
    assert count(session, AuditEvent, AuditEvent.action == "login.failed") == 10
    assert count(session, AuditEvent, AuditEvent.action == "login.succeeded") == 0


def test_changing_the_password_logs_out_every_other_session(app, client, make_user, session):
    user = make_user()
    other_browser = app.test_client()
    assert log_in(client, user.email).status_code == 302
    assert log_in(other_browser, user.email).status_code == 302
    assert other_browser.get("/account/password").status_code == 200

    response = client.post(
        "/account/password",
        data={"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )

    assert response.status_code == 302
    session.expire_all()
    assert session.get(User, user.id).session_generation == 2
    assert client.get("/account/password").status_code == 200
    locked_out = other_browser.get("/account/password")
    assert locked_out.status_code == 302
    assert urlsplit(locked_out.headers["Location"]).path == "/login"
    assert log_in(app.test_client(), user.email, NEW_PASSWORD).status_code == 302
    assert log_in(app.test_client(), user.email, PASSWORD).status_code == 401


def test_changing_the_password_with_a_wrong_current_password_changes_nothing(client, make_user, login, session):
    user = make_user()
    login(user)

    response = client.post(
        "/account/password",
        data={"current_password": "not it at all", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )

    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "current_password") == "The current password is not correct."
    session.expire_all()
    assert session.get(User, user.id).session_generation == 1


def _stays_on_this_site(location: str) -> bool:
    # Browsers read a backslash as a slash, so a Location of /\host would leave the site like //host.
    parts = urlsplit(location.replace("\\", "/"))
    return location.startswith("/") and not parts.scheme and not parts.netloc


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "https://evil.example/login", "/\\evil.example", "javascript:alert(1)", "/\t/evil.example"],
    ids=["protocol-relative", "absolute", "backslash", "javascript", "tab"],
)
def test_login_never_redirects_to_another_site(client, make_user, target):
    user = make_user()

    from_query = client.post("/login", query_string={"next": target}, data={"email": user.email, "password": PASSWORD})
    client.post("/logout")
    from_form = log_in(client, user.email, next=target)

    assert from_query.status_code == from_form.status_code == 302
    assert _stays_on_this_site(from_query.headers["Location"])
    assert _stays_on_this_site(from_form.headers["Location"])


def test_login_with_a_protocol_relative_next_goes_home(client, make_user):
    user = make_user()

    response = client.post("/login?next=//evil.example", data={"email": user.email, "password": PASSWORD})

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_login_follows_a_same_site_next_path(client, make_user):
    user = make_user()

    response = client.post("/login?next=/publication-log", data={"email": user.email, "password": PASSWORD})

    assert response.headers["Location"] == "/publication-log"


def test_a_form_post_without_csrf_token_is_refused_and_stores_nothing(app, database_url, tmp_path, session):
    protected = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "WTF_CSRF_ENABLED": True,
            "SECRET_KEY": "test-secret",
            "SEARCH_INDEX_DIR": str(tmp_path / "csrf-index"),
            "SERVER_NAME": "accord.test",
        }
    )
    try:
        browser = protected.test_client()

        refused = browser.post("/register", data=REGISTRATION)

        assert refused.status_code == 400
        assert "The form expired or was sent from elsewhere" in refused.get_data(as_text=True)
        assert count(session, User) == 0
        assert count(session, AuditEvent) == 0

        # The same form with the token from the page goes through, so the refusal was about the token.
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', browser.get("/register").text).group(1)
        assert browser.post("/register", data={**REGISTRATION, "csrf_token": token}).status_code == 302
        assert count(session, User) == 1
    finally:
        with protected.app_context():
            db.session.remove()
            db.engine.dispose()


# --- working groups and roles --------------------------------------------------------------------


def test_site_admin_creates_a_working_group(client, make_user, login, session):
    login(make_user(admin=True))

    response = client.post("/groups", data={"slug": "wg-new", "name": "New working group"})

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/groups/wg-new"
    assert session.scalars(select(WorkingGroup).where(WorkingGroup.slug == "wg-new")).one().name == "New working group"
    assert "working_group.created" in audit_actions(session)


def test_creating_a_working_group_is_refused_with_403_for_non_admins(client, make_user, group, login, session):
    login(make_user(Role.CHAIR, group))

    response = client.post("/groups", data={"slug": "wg-new", "name": "New working group"})

    assert response.status_code == 403
    assert "Only site admins create working groups." in response.get_data(as_text=True)
    assert count(session, WorkingGroup) == 1


def test_chair_gives_a_registered_user_a_role_by_email_and_it_is_audited(client, make_user, group, login, session):
    chair = make_user(Role.CHAIR, group)
    newcomer = make_user(email="new@example.org")
    login(chair)

    response = client.post("/groups/wg-test/members", data={"email": "New@Example.org", "role": "editor"})

    assert response.status_code == 302
    role = session.scalar(select(Membership.role).where(Membership.user_id == newcomer.id))
    assert role is Role.EDITOR
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "membership.role_set", AuditEvent.actor_id == chair.id)
    ).one()
    assert event.detail == {"group": "wg-test", "user_id": newcomer.id, "role": "editor", "previous": None}


def test_member_cannot_change_roles(client, make_user, group, login, session):
    member = make_user(Role.MEMBER, group)
    observer = make_user(Role.OBSERVER, group)
    login(member)

    response = client.post("/groups/wg-test/members", data={"email": observer.email, "role": "chair"})

    assert response.status_code == 403
    assert session.scalar(select(Membership.role).where(Membership.user_id == observer.id)) is Role.OBSERVER
    assert session.scalar(select(Membership.role).where(Membership.user_id == member.id)) is Role.MEMBER
    assert count(session, AuditEvent, AuditEvent.action == "membership.role_set", AuditEvent.actor_id == member.id) == 0


def test_giving_a_role_to_an_unknown_address_is_refused_with_422(client, make_user, group, login, session):
    login(make_user(Role.CHAIR, group))

    response = client.post("/groups/wg-test/members", data={"email": "nobody@example.org", "role": "member"})

    assert response.status_code == 422
    assert "No account uses that address" in response.get_data(as_text=True)
    assert count(session, Membership) == 1


def test_the_last_chair_cannot_be_demoted(client, make_user, group, login, session):
    chair = make_user(Role.CHAIR, group)
    login(chair)

    response = client.post("/groups/wg-test/members", data={"email": chair.email, "role": "member"})

    assert response.status_code == 422
    assert "A working group needs at least one chair." in response.get_data(as_text=True)
    assert session.scalar(select(Membership.role).where(Membership.user_id == chair.id)) is Role.CHAIR


def test_a_chair_can_step_down_once_there_is_another_chair(client, make_user, group, login, session):
    chair = make_user(Role.CHAIR, group)
    make_user(Role.CHAIR, group)
    login(chair)

    response = client.post("/groups/wg-test/members", data={"email": chair.email, "role": "member"})

    assert response.status_code == 302
    assert session.scalar(select(Membership.role).where(Membership.user_id == chair.id)) is Role.MEMBER
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "membership.role_set")).all()[-1]
    assert event.detail["previous"] == "chair"
    assert event.detail["role"] == "member"


# --- invitations ---------------------------------------------------------------------------------


def _invite(client, role: str = "editor") -> str:
    response = client.post("/groups/wg-test/invitations", data={"role": role, "email": ""})
    assert response.status_code == 302
    page = client.get("/groups/wg-test").get_data(as_text=True)
    match = re.search(r'<code class="invitation-link">([^<]+)</code>', page)
    assert match, "the invitation link is shown on the group page"
    return match.group(1)


def test_chair_creates_an_invitation_link_shown_once_and_queued_in_the_outbox(client, make_user, group, login, session):
    login(make_user(Role.CHAIR, group))

    link = _invite(client, "editor")

    assert link.startswith("http://accord.test/invitations/")
    assert 'class="invitation-link"' not in client.get("/groups/wg-test").get_data(as_text=True)
    message = session.scalars(select(OutboxMessage)).one()
    assert message.kind == "invitation"
    assert message.payload["role"] == "editor"
    assert message.payload["group"] == "wg-test"
    invitation = session.scalars(select(Invitation)).one()
    token = link.rsplit("/", 1)[1]
    # Only the token's hash is kept with the invitation.
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert "invitation.created" in audit_actions(session)


def test_an_invited_user_accepts_once_and_gets_the_role(app, client, make_user, group, login, session):
    login(make_user(Role.CHAIR, group))
    path = urlsplit(_invite(client, "editor")).path
    invitee, latecomer = make_user(email="invitee@example.org"), make_user(email="late@example.org")

    browser = app.test_client()
    assert browser.get(path).status_code == 200
    assert log_in(browser, invitee.email).status_code == 302
    accepted = browser.post(path)

    assert accepted.status_code == 302
    assert urlsplit(accepted.headers["Location"]).path == "/groups/wg-test"
    assert session.scalar(select(Membership.role).where(Membership.user_id == invitee.id)) is Role.EDITOR
    assert session.scalars(select(Invitation)).one().used_by_id == invitee.id
    assert {"invitation.accepted", "membership.role_set"} <= set(audit_actions(session))

    second = app.test_client()
    assert log_in(second, latecomer.email).status_code == 302
    reused = second.post(path)
    assert reused.status_code == 422
    assert "already been used" in reused.get_data(as_text=True)
    assert session.scalar(select(Membership.role).where(Membership.user_id == latecomer.id)) is None


def test_an_unknown_invitation_token_answers_404(client, make_user, login):
    login(make_user())

    assert client.get("/invitations/no-such-token").status_code == 404
    assert client.post("/invitations/no-such-token").status_code == 404
