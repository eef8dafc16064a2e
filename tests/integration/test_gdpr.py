"""Data protection: the privacy notice, a person's copy of their data, deleting an account while the record
stays reproducible, reports of comments falsely submitted in someone's name, and the audit of admin actions."""

from __future__ import annotations

import datetime as dt
import json
import uuid
import warnings

import pytest
from sqlalchemy import select
from sqlalchemy.exc import SAWarning
from werkzeug.security import check_password_hash

from app.accounts.models import Membership, Role, StakeholderCategory, User
from app.audit.models import AuditEvent
from app.comments import service as comments
from app.comments.models import INCLUDE_HIDDEN, Comment, CommentReport, Notification, ReportStatus
from app.consensus import service as consensus
from app.consensus.tally import Thresholds
from app.db import utcnow
from app.privacy.service import TOMBSTONE_NAME, tombstone_email
from app.search.documents import all_sources, documents_for
from tests.conftest import PASSWORD

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def world(session, make_user, make_code, group):
    """A published code open for comments, a chair, a commenter with a comment, a reply and a position."""
    code = make_code(versions=1, published=1)
    code.consultation_opens_at, code.consultation_closes_at = utcnow() - HOUR, utcnow() + HOUR
    chair = make_user(Role.CHAIR, group)
    person = make_user(Role.MEMBER, group, category=StakeholderCategory.ACADEMIA, organisation="Uni A")
    other = make_user(category=StakeholderCategory.CIVIL_SOCIETY, organisation="NGO B")
    admin = make_user(admin=True)
    version = code.versions[0]
    session.commit()

    def comment(author, body, **extra):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Object of type <Comment> not in session", SAWarning)
            receipt = comments.submit_comment(
                session, author, version,
                comments.Submission(clause_key="c-2", body=body, idempotency_key=uuid.uuid4().hex, **extra),
            )  # fmt: skip
        session.commit()
        return session.get(Comment, receipt.comment_id)

    mine = comment(person, "Opt-outs need a machine-readable standard.")
    comments.edit_comment(session, person, mine, "Opt-outs need one machine-readable standard.", None)
    theirs = comment(other, "Rights holders need a registry.")
    reply = comment(other, "Agreed with this.", parent_id=mine.id)
    forum = consensus.create_forum(session, chair, slug="plenary", name="Plenary", kind="plenary", working_group=group)
    consensus.add_member(session, chair, forum, person)
    consensus.add_member(session, chair, forum, other)
    round_ = consensus.create_round(
        session, chair, forum, version,
        consensus.RoundRules(title="Round 1", opens_at=utcnow() - HOUR, closes_at=utcnow() + HOUR,
                             thresholds=Thresholds(min_participants=1, min_category_answers=1)),
    )  # fmt: skip
    consensus.record_position(session, person, round_, consensus.PositionInput("c-2", "oppose", rationale="Too vague."))
    consensus.record_position(session, person, round_, consensus.PositionInput("c-2", "support_with_changes"))
    consensus.record_position(session, other, round_, consensus.PositionInput("c-2", "support"))
    session.commit()

    class World:
        pass

    w = World()
    w.code, w.version, w.chair, w.person, w.other, w.admin = code, version, chair, person, other, admin
    w.mine, w.theirs, w.reply, w.round = mine, theirs, reply, round_
    return w


def fresh(session):
    """Read everything again, as a new request would (the tests share one session with the app).

    Comments are dropped from the session: a new request's session has never seen a hidden one.
    """
    session.expire_all()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Comment):
            session.expunge(obj)


# --- the privacy notice --------------------------------------------------------------------------------


def test_the_privacy_notice_records_data_purpose_basis_and_retention_and_the_footer_links_it(client):
    page = client.get("/privacy")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for heading in ("Data", "Purpose", "Legal basis", "Kept for"):
        assert f'<th scope="col">{heading}</th>' in text
    assert text.count('<th scope="row">') >= 8
    assert "withdrawn participant" in text
    assert 'href="/privacy"' in client.get("/").get_data(as_text=True)


def test_the_privacy_notice_is_in_swedish_too(client):
    client.post("/locale", data={"locale": "sv"})
    text = client.get("/privacy").get_data(as_text=True)
    assert "Integritetsmeddelande" in text
    assert "Rättslig grund" in text


# --- a copy of one's data --------------------------------------------------------------------------------


def test_a_person_downloads_everything_kept_about_them(session, world, client, login):
    comments.notify(session, world.person, "reply", "Someone replied.", f"/comments/{world.mine.id}")
    session.commit()
    login(world.person)

    response = client.get("/account/data.json")

    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment")
    data = json.loads(response.get_data(as_text=True))
    assert data["account"]["email"] == world.person.email
    assert data["account"]["organisation"] == "Uni A"
    assert [m["role"] for m in data["memberships"]] == ["member"]
    assert [f["forum"] for f in data["forum_memberships"]] == ["plenary"]
    [comment] = data["comments"]
    assert comment["body"] == "Opt-outs need one machine-readable standard."
    assert [r["body"] for r in comment["revisions"]] == ["Opt-outs need a machine-readable standard."]
    [position] = data["positions"]
    assert position["stance"] == "support_with_changes"
    assert [h["stance"] for h in position["history"]] == ["oppose", "support_with_changes"]
    assert "Someone replied." in [n["text"] for n in data["notifications"]]
    actions = {event["action"] for event in data["audit_events"]}
    assert {"comment.submitted", "comment.edited", "position.recorded", "login.succeeded"} <= actions
    assert "membership.role_set" in actions  # about them, though done by the chair
    assert session.scalars(select(AuditEvent.action).where(AuditEvent.action == "account.data_exported")).all()


def test_someone_else_s_data_is_not_downloadable(session, world, client, login):
    assert client.get("/account/data.json").status_code in (302, 401)


# --- deleting an account -------------------------------------------------------------------------------------


def test_the_deletion_page_states_the_policy_and_a_wrong_password_changes_nothing(session, world, client, login):
    login(world.person)
    page = client.get("/account/delete").get_data(as_text=True)
    assert "withdrawn participant" in page
    assert "stakeholder category" in page

    refused = client.post("/account/delete", data={"password": "not my password", "confirm": "y"})

    assert refused.status_code == 422
    fresh(session)
    assert session.get(User, world.person.id).deleted_at is None
    assert client.post("/account/delete", data={"password": PASSWORD}).status_code == 422  # box not ticked


def test_deleting_an_account_erases_personal_data_and_the_record_stays_reproducible(session, world, client, login):
    person_id, mine_id = world.person.id, world.mine.id
    receipt_before = comments.receipt_hash(world.mine)
    old_email = world.person.email
    tally_before = consensus.tally_rows(consensus.round_tally(session, world.round))
    matrix_before = comments.resolution_matrix(session, None, world.version)
    positions_before = consensus.position_rows(session, world.round)
    comments.notify(session, world.person, "reply", "Someone replied.", f"/comments/{mine_id}")
    session.commit()
    login(world.person)

    response = client.post("/account/delete", data={"password": PASSWORD, "confirm": "y"})

    assert response.status_code == 302
    fresh(session)
    user = session.get(User, person_id)
    assert user.deleted_at is not None
    assert user.email == tombstone_email(person_id)
    assert user.display_name == TOMBSTONE_NAME
    assert (user.organisation, user.transparency_register_id, user.locale) == (None, None, None)
    assert not check_password_hash(user.password_hash, PASSWORD)
    assert user.category == StakeholderCategory.ACADEMIA  # kept: contributions are counted by it
    assert session.scalars(select(Membership).where(Membership.user_id == person_id)).all() == []
    assert session.scalars(select(Notification).where(Notification.user_id == person_id)).all() == []
    # Every event the person made is still there, without their name or address.
    labels = set(session.scalars(select(AuditEvent.actor_label).where(AuditEvent.actor_id == person_id)))
    assert labels == {f"{TOMBSTONE_NAME} #{person_id}"}
    assert not session.scalars(select(AuditEvent).where(AuditEvent.actor_label.contains(old_email))).all()
    assert (
        session.scalars(select(AuditEvent).where(AuditEvent.action == "account.deleted")).one().detail["by"] == "self"
    )

    # The contribution stays, with its category and a receipt that still verifies.
    comment = session.get(Comment, mine_id)
    assert comment.author_id == person_id
    assert comment.author.display_name == TOMBSTONE_NAME
    assert comment.author_category == StakeholderCategory.ACADEMIA
    assert comment.author_organisation is None
    assert comments.receipt_hash(comment) == receipt_before
    # Tallies and the resolution matrix come out as before; the organisation is gone from both exports.
    round_ = session.get(type(world.round), world.round.id)
    assert consensus.tally_rows(consensus.round_tally(session, round_)) == tally_before
    without_org = [{**row, "author_organisation": ""} if row["comment_id"] == mine_id else row for row in matrix_before]
    assert comments.resolution_matrix(session, None, comment.version) == without_org
    assert [
        {k: v for k, v in row.items() if k != "organisation"} for row in consensus.position_rows(session, round_)
    ] == [{k: v for k, v in row.items() if k != "organisation"} for row in positions_before]
    # The thread page names the withdrawn participant.
    assert "withdrawn participant" in client.get(f"/comments/{mine_id}").get_data(as_text=True)
    # Logged out, and the old credentials no longer work.
    assert client.get("/account/mail").status_code == 302
    assert client.post("/login", data={"email": old_email, "password": PASSWORD}).status_code == 401


def test_an_operator_exports_and_deletes_an_account_from_the_command_line(app, session, world, tmp_path):
    cli = app.test_cli_runner()
    out = tmp_path / "data.json"
    exported = cli.invoke(args=["privacy", "export", world.other.email, "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(out.read_text())["account"]["email"] == world.other.email

    deleted = cli.invoke(args=["privacy", "delete", world.other.email, "--yes"])

    assert deleted.exit_code == 0, deleted.output
    fresh(session)
    assert session.get(User, world.other.id).deleted_at is not None
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "account.deleted")).one()
    assert event.detail["by"] == "operator"
    assert cli.invoke(args=["privacy", "delete", "nobody@example.org", "--yes"]).exit_code != 0


# --- reports of falsely submitted comments -----------------------------------------------------------------


def test_the_thread_page_has_the_report_form(world, client):
    text = client.get(f"/comments/{world.mine.id}").get_data(as_text=True)
    assert f'action="/comments/{world.mine.id}/report"' in text
    assert 'name="email"' in text  # not logged in: an address to answer


def test_a_report_without_an_account_needs_an_address_and_the_declaration(session, world, client):
    url = f"/comments/{world.mine.id}/report"
    missing = client.post(url, data={"comment_id": world.mine.id, "name": "Ann", "explanation": "Not me."})
    assert missing.status_code == 422
    no_address = client.post(
        url, data={"comment_id": world.mine.id, "name": "Ann", "explanation": "Not me.", "declaration": "y"}
    )
    assert no_address.status_code == 422
    assert session.scalars(select(CommentReport)).all() == []


def test_a_reported_comment_is_hidden_by_an_admin_everywhere_and_the_record_keeps_it(
    session, world, client, login, make_user
):
    mine_id, reply_id, theirs_id = world.mine.id, world.reply.id, world.theirs.id
    before = comments.resolution_matrix(session, None, world.version)
    sent = client.post(
        f"/comments/{mine_id}/report",
        data={
            "comment_id": mine_id, "name": "Ann Person", "email": "ann@example.org",
            "explanation": "I never wrote this; someone used my name.", "declaration": "y",
        },
    )  # fmt: skip
    assert sent.status_code == 302
    report = session.scalars(select(CommentReport)).one()
    assert (report.reporter_email, report.status) == ("ann@example.org", ReportStatus.OPEN)

    # Not for anyone but admins.
    login(world.chair)
    assert client.get("/admin/reports").status_code == 403
    assert client.get(f"/admin/comments/{mine_id}/reports").status_code == 403
    assert client.post(f"/admin/comments/{mine_id}/hide", data={"reason": "No."}).status_code == 403
    client.post("/logout")

    login(world.admin)
    listing = client.get("/admin/reports").get_data(as_text=True)
    assert f"/admin/comments/{mine_id}/reports" in listing
    detail = client.get(f"/admin/comments/{mine_id}/reports").get_data(as_text=True)
    assert "ann@example.org" in detail
    assert world.person.email in detail
    hidden = client.post(f"/admin/comments/{mine_id}/hide", data={"reason": "The named person did not write it."})
    assert hidden.status_code == 302
    client.post("/logout")
    fresh(session)

    # The record keeps it, with the reason.
    kept = session.get(Comment, mine_id, execution_options={INCLUDE_HIDDEN: True})
    assert kept.hidden_reason == "The named person did not write it."
    assert kept.hidden_by_id == world.admin.id
    assert session.get(Comment, reply_id, execution_options={INCLUDE_HIDDEN: True}).is_hidden  # its reply too
    assert session.scalars(select(CommentReport)).one().status == ReportStatus.UPHELD
    # Gone from pages, counts, exports, the margin and search.
    fresh(session)
    assert client.get(f"/comments/{mine_id}").status_code == 404
    assert client.get(f"/comments/{reply_id}").status_code == 404
    version = session.get(type(world.version), world.version.id)
    after = comments.resolution_matrix(session, None, version)
    assert [row["comment_id"] for row in after] == [
        row["comment_id"] for row in before if row["comment_id"] not in (mine_id, reply_id)
    ]
    csv_export = client.get(f"/codes/{world.code.slug}/v1/comments.csv").get_data(as_text=True)
    assert "machine-readable" not in csv_export
    assert "Rights holders" in csv_export
    assert "machine-readable" not in client.get(f"/codes/{world.code.slug}/v1/comments").get_data(as_text=True)
    page = client.get(f"/codes/{world.code.slug}/v1").get_data(as_text=True)  # the comment margin
    assert "machine-readable" not in page
    assert "Rights holders need a registry." in page
    assert f"/comments/{theirs_id}" in page
    assert documents_for(session, f"comment:{mine_id}") is None
    assert f"comment:{mine_id}" not in all_sources(session)
    # The public register shows that a comment was hidden, not what it said.
    register = client.get("/privacy/hidden-comments").get_data(as_text=True)
    assert f"#{mine_id}" in register
    assert "machine-readable" not in register
    # Every admin action on personal data is in the audit log.
    actions = [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.actor_id == world.admin.id))]
    assert "comment_reports.viewed" in actions
    assert "comment.hidden" in actions
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "comment.hidden")).one()
    assert event.detail["reason"] == "The named person did not write it."
    assert event.detail["replies_hidden"] == [reply_id]
    assert event.detail["reports"] == [report.id]

    # An admin can show it again, with a reason; replies hidden with it come back.
    login(session.get(User, world.admin.id))
    restored = client.post(f"/admin/comments/{mine_id}/restore", data={"reason": "The report was mistaken."})
    assert restored.status_code == 302
    fresh(session)
    assert client.get(f"/comments/{mine_id}").status_code == 200
    assert [row["comment_id"] for row in comments.resolution_matrix(session, None, version)] == [
        row["comment_id"] for row in before
    ]


def test_a_logged_in_person_reports_a_reply_and_an_admin_dismisses_it(session, world, client, login):
    login(world.person)
    sent = client.post(
        f"/comments/{world.mine.id}/report",
        data={"comment_id": world.reply.id, "explanation": "This reply uses my colleague's name.", "declaration": "y"},
    )
    assert sent.status_code == 302
    report = session.scalars(select(CommentReport)).one()
    assert (report.comment_id, report.reporter_id, report.reporter_email) == (
        world.reply.id,
        world.person.id,
        world.person.email,
    )
    client.post("/logout")
    login(world.admin)
    assert client.post(f"/admin/reports/{report.id}/dismiss", data={"reason": ""}).status_code == 422
    assert (
        client.post(f"/admin/reports/{report.id}/dismiss", data={"reason": "Signed by that person."}).status_code == 302
    )
    fresh(session)
    assert session.scalars(select(CommentReport)).one().status == ReportStatus.DISMISSED
    assert not session.get(Comment, report.comment_id).is_hidden
