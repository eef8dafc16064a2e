"""Mail: the outbox sent over SMTP to a real server in this process (aiosmtpd), with retries, backoff, giving
up, per-person choices and unsubscribe links that work without logging in."""

from __future__ import annotations

import datetime as dt
import email
import re
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.exc import SAWarning

from app.accounts import service as accounts
from app.accounts.models import MailKind, Role, User
from app.comments import service as comments
from app.comments.models import Notification
from app.comments.service import notify
from app.config import ConfigError, load_config
from app.db import utcnow
from app.mail import sender
from app.mail.sender import MailSettings, MailWorker, backoff, claim_due, send_due
from app.mail.service import address_hash, set_mail_choices
from app.mail.tokens import ALL, make_token, read_token
from app.outbox.models import MailOptOut, MessageStatus, OutboxMessage

HOUR = dt.timedelta(hours=1)


# --- a real SMTP server in the test process ------------------------------------------------------------


@dataclass
class Handler:
    """Collects what arrives; refuses recipients listed in `refuse` with the code given."""

    received: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.received.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def settings(app, smtp) -> MailSettings:
    _handler, port = smtp
    app.config.update(
        MAIL_SMTP_HOST="127.0.0.1", MAIL_SMTP_PORT=port, MAIL_SMTP_STARTTLS=False, MAIL_FROM="accord@accord.test"
    )
    found = MailSettings.from_config(app.config)
    assert found is not None
    return found


def queued(session) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def text_of(message: Message) -> str:
    return message.get_content()  # type: ignore[attr-defined]


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://\S+", text)


# --- sending ---------------------------------------------------------------------------------------------


def test_a_reply_notification_is_mailed_with_a_link_and_unsubscribe_links(
    app, session, make_user, make_code, settings, smtp
):
    handler, _port = smtp
    code = make_code(versions=1, published=1)
    code.consultation_opens_at, code.consultation_closes_at = utcnow() - HOUR, utcnow() + HOUR
    session.commit()
    author, replier = make_user(), make_user()
    version = code.versions[0]
    first = comments.submit_comment(
        session,
        author,
        version,
        comments.Submission(clause_key="c-2", body="A remark.", idempotency_key=uuid.uuid4().hex),
    )
    session.commit()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Object of type <Comment> not in session", SAWarning)
        comments.submit_comment(
            session, replier, version,
            comments.Submission(clause_key="c-2", body="I agree.", idempotency_key=uuid.uuid4().hex,
                                parent_id=first.comment_id),
        )  # fmt: skip
    session.commit()

    report = send_due(settings)

    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    assert len(handler.received) == 1
    mail = handler.received[0]
    assert mail["To"] == author.email
    assert mail["From"] == "accord@accord.test"
    assert mail["Subject"] == f"{replier.display_name} replied to your comment #{first.comment_id}."
    body = text_of(mail)
    assert f"http://127.0.0.1:5000/comments/{first.comment_id}" in body
    unsubscribe = [link for link in links_in(body) if "/mail/unsubscribe/" in link]
    assert len(unsubscribe) == 2  # this kind, and all mail
    assert mail["List-Unsubscribe"].strip("<>") == unsubscribe[0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [row] = queued(session)
    assert row.status == MessageStatus.SENT
    assert row.attempts == 1
    assert row.sent_at is not None
    assert row.last_error is None
    assert row.next_attempt_at is None


def test_invitation_mail_carries_the_link_and_the_token_leaves_the_database(
    app, session, make_user, group, settings, smtp
):
    handler, _port = smtp
    chair = make_user(Role.CHAIR, group)
    _invitation, token = accounts.create_invitation(session, chair, group, Role.MEMBER, "new.person@example.org")
    session.commit()

    assert send_due(settings).sent == 1

    body = text_of(handler.received[0])
    assert f"http://127.0.0.1:5000/invitations/{token}" in body
    # No account yet: one link, to stop all mail to the address.
    assert len([link for link in links_in(body) if "/mail/unsubscribe/" in link]) == 1
    [row] = queued(session)
    assert "token" not in row.payload
    assert row.status == MessageStatus.SENT


def test_an_invitation_is_worded_in_the_language_of_an_existing_account_and_in_english_otherwise(
    app, session, make_user, group, settings, smtp
):
    handler, _port = smtp
    chair = make_user(Role.CHAIR, group)
    known = make_user(email="known@example.org")
    known.locale = "sv"
    accounts.create_invitation(session, chair, group, Role.OBSERVER, "known@example.org")
    accounts.create_invitation(session, chair, group, Role.OBSERVER, "stranger@example.org")
    session.commit()

    assert send_due(settings).sent == 2

    mails = {message["To"]: message for message in handler.received}
    swedish, english = mails["known@example.org"], mails["stranger@example.org"]
    assert swedish["Subject"] == f"Inbjudan att gå med i {group.name} som observatör"
    assert f"{chair.display_name} bjuder in dig att gå med i {group.name} som observatör." in text_of(swedish)
    assert english["Subject"] == f"Invitation to join {group.name} as observer"
    assert f"{chair.display_name} invites you to join {group.name} as observer." in text_of(english)


def test_mail_is_written_in_the_recipients_language(app, session, make_user, settings, smtp):
    handler, _port = smtp
    user = make_user()
    user.locale = "sv"
    notify(session, user, "disposition", "Your comment #1: Accepted.", "/comments/1")
    session.commit()

    send_due(settings)

    body = text_of(handler.received[0])
    assert "Öppna den här" in body
    assert "Open it here" not in body
    assert body.splitlines()[0] == "Your comment #1: Accepted."  # a notice stored as text only, as it was stored


def test_a_temporary_refusal_is_retried_with_exponential_backoff(app, session, make_user, settings, smtp):
    handler, _port = smtp
    user = make_user()
    handler.refuse[user.email] = "451 4.3.0 Try again later"
    notify(session, user, "reply", "Someone replied to your comment #1.", "/comments/1")
    session.commit()
    now = utcnow()

    report = send_due(settings, now=now)

    assert (report.sent, report.retrying) == (0, 1)
    [row] = queued(session)
    assert row.status == MessageStatus.QUEUED
    assert row.attempts == 1
    assert "451" in (row.last_error or "")
    wait = row.next_attempt_at - now  # type: ignore[operator]
    assert dt.timedelta(seconds=54) <= wait <= dt.timedelta(seconds=66)
    # Not due yet: nothing is tried.
    assert send_due(settings, now=now + dt.timedelta(seconds=30)).handled == 0
    # Second failure: twice the wait.
    later = now + dt.timedelta(seconds=70)
    send_due(settings, now=later)
    [row] = queued(session)
    assert row.attempts == 2
    assert dt.timedelta(seconds=108) <= row.next_attempt_at - later <= dt.timedelta(seconds=132)  # type: ignore[operator]
    # The server takes it now.
    del handler.refuse[user.email]
    assert send_due(settings, now=later + dt.timedelta(minutes=3)).sent == 1
    [row] = queued(session)
    assert row.status == MessageStatus.SENT
    assert row.attempts == 3
    assert row.last_error is None
    assert len(handler.received) == 1


def test_a_permanent_refusal_gives_up_at_once(app, session, make_user, settings, smtp):
    handler, _port = smtp
    user = make_user()
    handler.refuse[user.email] = "550 5.1.1 No such user"
    notify(session, user, "reply", "Someone replied to your comment #1.", "/comments/1")
    session.commit()

    report = send_due(settings)

    assert report.failed == 1
    [row] = queued(session)
    assert row.status == MessageStatus.FAILED
    assert "550" in (row.last_error or "")
    assert row.next_attempt_at is None


def test_an_unreachable_server_is_retried_then_given_up_after_the_last_attempt(app, session, make_user):
    closed = MailSettings(host="127.0.0.1", port=_free_port(), starttls=False, max_attempts=2, timeout=2)
    users = [make_user(), make_user()]
    for user in users:
        notify(session, user, "version", "Test code: v2 is available.", "/codes/test-code/v2")
    session.commit()
    now = utcnow()

    first = send_due(closed, now=now)
    assert first.retrying == 2  # one connection attempt, both messages rescheduled
    assert all(row.attempts == 1 and "ConnectionRefused" in (row.last_error or "") for row in queued(session))

    second = send_due(closed, now=now + dt.timedelta(hours=1))
    assert second.failed == 2
    assert all(row.status == MessageStatus.FAILED and row.attempts == 2 for row in queued(session))


def test_a_claimed_message_is_not_taken_by_another_sender(app, session, make_user, settings, smtp):
    handler, _port = smtp
    notify(session, make_user(), "reply", "Someone replied.", "/comments/1")
    session.commit()
    now = utcnow()

    assert len(claim_due(session, now)) == 1  # a sender that then dies mid-send
    assert send_due(settings, now=now).handled == 0  # the others leave it alone while the lease runs
    assert send_due(settings, now=now + sender.LEASE + dt.timedelta(seconds=1)).sent == 1  # then it is retried
    assert len(handler.received) == 1


def test_backoff_doubles_each_time_and_is_capped():
    waits = [backoff(attempt, 60, jitter=0).total_seconds() for attempt in range(1, 12)]
    assert waits[:4] == [60, 120, 240, 480]
    assert max(waits) == sender.MAX_DELAY.total_seconds()
    jittered = backoff(3, 60).total_seconds()
    assert 216 <= jittered <= 264


def test_old_messages_are_skipped_and_settled_ones_purged_after_the_keeping_period(
    app, session, make_user, settings, smtp
):
    handler, _port = smtp
    user = make_user()
    notify(session, user, "reply", "Old news.", "/comments/1")
    session.commit()
    [row] = queued(session)
    row.created_at = utcnow() - dt.timedelta(days=10)
    session.commit()

    report = send_due(settings)

    assert report.skipped == 1
    assert not handler.received
    [row] = queued(session)
    assert row.status == MessageStatus.SKIPPED
    assert "older than" in (row.last_error or "")
    # A later round, once the keeping period has passed, deletes the settled row.
    assert send_due(settings, now=utcnow() + dt.timedelta(days=31)).purged == 1
    assert queued(session) == []


# --- who wants what -----------------------------------------------------------------------------------


def test_a_kind_the_person_turned_off_is_not_mailed(app, session, make_user, settings, smtp):
    handler, _port = smtp
    user = make_user()
    set_mail_choices(session, user, {MailKind.DISPOSITION.value})
    notify(session, user, "reply", "Someone replied.", "/comments/1")
    notify(session, user, "disposition", "Your comment #1: Accepted.", "/comments/1")
    session.commit()

    report = send_due(settings)

    assert (report.sent, report.skipped) == (1, 1)
    assert [m["Subject"] for m in handler.received] == ["Your comment #1: Accepted."]
    skipped = next(row for row in queued(session) if row.status == MessageStatus.SKIPPED)
    assert skipped.kind == "notification.reply"
    assert "chose not to receive reply" in (skipped.last_error or "")


def test_round_notices_follow_the_round_choice_and_its_unsubscribe_link(
    app, client, session, make_user, settings, smtp
):
    handler, _port = smtp
    user = make_user()
    facts = {"round": "R", "forum": "F", "code": "C", "version": "v1", "closes_at": utcnow().isoformat()}
    notify(session, user, "round_opened", None, "/rounds/1/positions", params=facts)
    session.commit()
    send_due(settings)
    [mail] = handler.received
    tokens = {
        read_token(link.rsplit("/", 1)[1]).kind: link for link in links_in(text_of(mail)) if "/unsubscribe/" in link
    }
    assert set(tokens) == {MailKind.ROUND.value, ALL}
    one_kind = tokens[MailKind.ROUND.value]

    assert client.post(one_kind.removeprefix("http://127.0.0.1:5000"), data={"scope": "kind"}).status_code == 200
    notify(session, user, "round_closed", None, "/rounds/1", params=facts | {"positions": 3})
    session.commit()
    report = send_due(settings)

    session.expire_all()
    assert session.get(User, user.id).mail_opt_out == ["round"]
    assert (report.sent, report.skipped) == (0, 1)
    assert len(handler.received) == 1
    assert [n.kind for n in session.scalars(select(Notification).where(Notification.user_id == user.id))] == [
        "round_opened", "round_closed",
    ]  # in the app all the same  # fmt: skip


def test_the_account_page_saves_mail_choices(app, client, session, make_user, login):
    user = make_user()
    login(user)
    page = client.get("/account/mail")
    assert page.status_code == 200
    assert 'name="reply"' in page.get_data(as_text=True)

    response = client.post("/account/mail", data={"disposition": "y", "invitation": "y"})

    assert response.status_code == 302
    session.expire_all()
    assert sorted(session.get(User, user.id).mail_opt_out) == ["reply", "round", "version"]
    assert client.get("/account/mail").get_data(as_text=True).count("checked") == 2


def test_unsubscribe_link_stops_one_kind_without_logging_in(app, client, session, make_user):
    user = make_user()
    token = make_token(MailKind.REPLY.value, user_id=user.id)

    page = client.get(f"/mail/unsubscribe/{token}")
    assert page.status_code == 200
    session.expire_all()
    assert session.get(User, user.id).mail_opt_out == []  # a GET (a link scanner) changes nothing

    done = client.post(f"/mail/unsubscribe/{token}", data={"scope": "kind"})

    assert done.status_code == 200
    session.expire_all()
    assert session.get(User, user.id).mail_opt_out == ["reply"]
    assert not session.get(User, user.id).wants_mail(MailKind.REPLY)
    assert session.get(User, user.id).wants_mail(MailKind.DISPOSITION)


def test_one_click_unsubscribe_from_a_mail_program_and_stopping_all_mail(app, client, session, make_user):
    user = make_user()
    one_click = client.post(
        f"/mail/unsubscribe/{make_token(ALL, user_id=user.id)}", data={"List-Unsubscribe": "One-Click"}
    )
    assert one_click.status_code == 200
    session.expire_all()
    assert sorted(session.get(User, user.id).mail_opt_out) == sorted(kind.value for kind in MailKind)


def test_an_address_without_account_can_stop_all_mail(app, client, session, make_user, group, settings, smtp):
    handler, _port = smtp
    address = "invited@example.org"
    client.post(f"/mail/unsubscribe/{make_token(ALL, email=address)}")
    assert session.scalar(select(MailOptOut.email_sha256)) == address_hash(address)
    chair = make_user(Role.CHAIR, group)
    accounts.create_invitation(session, chair, group, Role.MEMBER, address)
    session.commit()

    assert send_due(settings).skipped == 1
    assert not handler.received


def test_a_forged_or_altered_token_is_refused(app, client, make_user):
    user = make_user()
    token = make_token(MailKind.REPLY.value, user_id=user.id)
    assert read_token(token) is not None
    assert client.get(f"/mail/unsubscribe/{token[:-2]}xx").status_code == 404
    assert client.post("/mail/unsubscribe/not-a-token").status_code == 404


# --- running it ----------------------------------------------------------------------------------------


def test_flask_mail_send_sends_the_outbox(app, session, make_user, settings, smtp):
    handler, _port = smtp
    notify(session, make_user(), "reply", "Someone replied.", "/comments/1")
    session.commit()

    result = app.test_cli_runner().invoke(args=["mail", "send"])

    assert result.exit_code == 0, result.output
    assert "1 sent, 0 to retry, 0 failed" in result.output
    assert len(handler.received) == 1


def test_flask_mail_send_says_when_mail_is_off(app):
    app.config["MAIL_SMTP_HOST"] = None
    result = app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.exit_code != 0
    assert "MAIL_SMTP_HOST" in result.output


def test_the_background_sender_mails_soon_after_the_commit(app, session, make_user, settings, smtp):
    handler, _port = smtp
    worker = MailWorker()
    sender_before, sender.worker = sender.worker, worker
    worker.start(app)
    try:
        notify(session, make_user(), "reply", "Someone replied.", "/comments/1")
        session.commit()  # wakes the worker
        deadline = time.monotonic() + 10
        while not handler.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
        sender.worker = sender_before
    assert len(handler.received) == 1


def test_mail_is_off_by_default_and_needs_a_sender_address(monkeypatch):
    monkeypatch.delenv("MAIL_SMTP_HOST", raising=False)
    monkeypatch.delenv("MAIL_FROM", raising=False)
    assert MailSettings.from_config(load_config()) is None
    monkeypatch.setenv("MAIL_SMTP_HOST", "smtp.example.org")
    with pytest.raises(ConfigError, match="MAIL_FROM"):
        load_config()
    monkeypatch.setenv("MAIL_FROM", "accord@example.org")
    monkeypatch.setenv("MAIL_SMTP_PORT", "2525")
    found = MailSettings.from_config(load_config())
    assert found is not None
    assert (found.host, found.port, found.starttls) == ("smtp.example.org", 2525, True)
