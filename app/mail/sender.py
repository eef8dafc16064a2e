"""Send the outbox over SMTP: claim due messages, mail them, retry failures with exponential backoff.

Several senders may run at once (a thread in each server process, `flask mail send --loop`): a sender claims
a message with a guarded UPDATE that moves its `next_attempt_at` into the future (a lease), so no other
sender takes it meanwhile. A sender that dies mid-send leaves the lease to run out, and the message is tried
again: delivery is at least once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from app.accounts.models import Role
from app.accounts.service import find_user_by_email
from app.db import db, utcnow
from app.mail.service import address_opted_out, kind_of
from app.mail.tokens import ALL, make_token
from app.notices import notice_text
from app.outbox.models import MessageStatus, OutboxMessage
from app.periodic import PeriodicWorker

log = logging.getLogger(__name__)

# How long a claimed message is left to its sender before another may try it.
LEASE = dt.timedelta(minutes=10)
# Backoff never waits longer than this between two attempts.
MAX_DELAY = dt.timedelta(hours=6)
BATCH = 50


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 587
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    sender: str = "accord@localhost"
    max_attempts: int = 8
    retry_seconds: float = 60.0
    max_age: dt.timedelta = dt.timedelta(hours=72)
    keep_days: int = 30
    timeout: float = 30.0
    base_url: str = "http://127.0.0.1:5000"

    @classmethod
    def from_config(cls, config: Any) -> MailSettings | None:
        """Read the MAIL_* settings; None when mail is off (no MAIL_SMTP_HOST)."""
        host = config.get("MAIL_SMTP_HOST")
        if not host:
            return None
        return cls(
            host=str(host),
            port=int(config.get("MAIL_SMTP_PORT") or 587),
            user=config.get("MAIL_SMTP_USER") or None,
            password=config.get("MAIL_SMTP_PASSWORD") or None,
            starttls=bool(config.get("MAIL_SMTP_STARTTLS", True)),
            sender=str(config.get("MAIL_FROM") or "accord@localhost"),
            max_attempts=int(config.get("MAIL_MAX_ATTEMPTS") or 8),
            retry_seconds=float(config.get("MAIL_RETRY_SECONDS") or 60),
            max_age=dt.timedelta(hours=float(config.get("MAIL_MAX_AGE_HOURS") or 72)),
            keep_days=int(config.get("MAIL_KEEP_DAYS") or 30),
            timeout=float(config.get("MAIL_SMTP_TIMEOUT") or 30),
            base_url=str(config.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        )


def backoff(attempts: int, base_seconds: float, *, jitter: float = 0.1) -> dt.timedelta:
    """Return the wait after the `attempts`-th failed attempt: base · 2^(attempts−1), capped, ±10 % jitter."""
    seconds = min(base_seconds * 2 ** max(attempts - 1, 0), MAX_DELAY.total_seconds())
    return dt.timedelta(seconds=seconds * random.uniform(1 - jitter, 1 + jitter))


class Transport(Protocol):
    def send_message(self, msg: EmailMessage) -> Any: ...

    def quit(self) -> Any: ...


def smtp_connect(settings: MailSettings) -> Transport:
    """Open an SMTP connection as configured (STARTTLS and login when set)."""
    connection = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.starttls:
            connection.starttls(context=ssl.create_default_context())
        if settings.user:
            connection.login(settings.user, settings.password or "")
    except BaseException:
        connection.close()
        raise
    return connection


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    purged: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed + self.skipped


def _due(now: dt.datetime) -> Any:
    return (OutboxMessage.status == MessageStatus.QUEUED) & or_(
        OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now
    )


def claim_due(session: Session, now: dt.datetime, limit: int = BATCH) -> list[int]:
    """Claim up to `limit` due messages for this sender (attempt counted, lease set) and commit the claim."""
    candidates = list(
        session.scalars(select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.id).limit(limit))
    )
    claimed = []
    for message_id in candidates:
        # Guarded: of two senders that read the same candidate, only one update matches.
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, _due(now))
            .values(attempts=OutboxMessage.attempts + 1, next_attempt_at=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(message_id)
    session.commit()
    return claimed


def _finish(message: OutboxMessage, status: MessageStatus, now: dt.datetime, error: str | None = None) -> None:
    message.status = status
    message.next_attempt_at = None
    message.last_error = error[:1000] if error else None
    if status == MessageStatus.SENT:
        message.sent_at = now
    # An invitation's raw link has no business in the database once its message is settled.
    if "token" in (message.payload or {}):
        message.payload = {k: v for k, v in message.payload.items() if k != "token"}


def _skip_reason(session: Session, message: OutboxMessage, settings: MailSettings, now: dt.datetime) -> str | None:
    if not message.recipient:
        return "no recipient address"
    if message.created_at < now - settings.max_age:
        return "older than MAIL_MAX_AGE_HOURS when its turn came"
    if address_opted_out(session, message.recipient):
        return "the address opted out of all mail"
    user = find_user_by_email(session, message.recipient)
    kind = kind_of(message.kind)
    if user is not None and kind is not None and not user.wants_mail(kind):
        return f"the recipient chose not to receive {kind.value} mail"
    return None


def _retry_or_fail(
    message: OutboxMessage, settings: MailSettings, now: dt.datetime, error: str, report: DeliveryReport
) -> None:
    report.errors.append(f"message {message.id}: {error}")
    if message.attempts >= settings.max_attempts:
        _finish(message, MessageStatus.FAILED, now, error)
        report.failed += 1
    else:
        message.last_error = error[:1000]
        message.next_attempt_at = now + backoff(message.attempts, settings.retry_seconds)
        report.retrying += 1


def _failed_attempt(
    message: OutboxMessage, settings: MailSettings, now: dt.datetime, error: Exception, report: DeliveryReport
) -> None:
    text = f"{type(error).__name__}: {error}"
    if _is_permanent(error):
        report.errors.append(f"message {message.id}: {text}")
        _finish(message, MessageStatus.FAILED, now, text)
        report.failed += 1
    else:
        _retry_or_fail(message, settings, now, text, report)


def _is_permanent(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _message in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return False


def send_due(
    settings: MailSettings,
    *,
    session: Session | None = None,
    now: dt.datetime | None = None,
    limit: int = BATCH,
    connect: Callable[[MailSettings], Transport] = smtp_connect,
) -> DeliveryReport:
    """Send up to `limit` due messages over one SMTP connection; retry, give up or skip as each deserves.

    Needs an application context (for the session, the secret key for unsubscribe links, translations).
    """
    session = session or db.session
    now = now or utcnow()
    report = DeliveryReport()
    claimed = claim_due(session, now, limit)
    transport: Transport | None = None
    unreachable: str | None = None
    try:
        for message_id in claimed:
            message = session.get(OutboxMessage, message_id)
            if message is None:
                continue
            reason = _skip_reason(session, message, settings, now)
            if reason is not None:
                _finish(message, MessageStatus.SKIPPED, now, reason)
                report.skipped += 1
            elif unreachable is not None:
                # The server could not be reached for an earlier message: do not wait on it once per message.
                _retry_or_fail(message, settings, now, unreachable, report)
            else:
                try:
                    if transport is None:
                        try:
                            transport = connect(settings)
                        except (smtplib.SMTPException, OSError) as error:
                            unreachable = f"{type(error).__name__}: {error}"
                            raise
                    transport.send_message(compose(session, message, settings))
                except (smtplib.SMTPException, OSError) as error:
                    _failed_attempt(message, settings, now, error, report)
                    if isinstance(error, smtplib.SMTPServerDisconnected | OSError) and transport is not None:
                        transport = _close(transport)
                else:
                    _finish(message, MessageStatus.SENT, now)
                    report.sent += 1
            session.commit()
    finally:
        if transport is not None:
            _close(transport)
    report.purged = purge_settled(session, now - dt.timedelta(days=settings.keep_days))
    for error in report.errors:
        log.warning("mail delivery problem: %s", error)
    return report


def _close(transport: Transport) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        transport.quit()
    return None


def purge_settled(session: Session, before: dt.datetime) -> int:
    """Delete settled messages (sent, failed, skipped) made before `before`: they hold addresses and texts."""
    result = session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.status != MessageStatus.QUEUED, OutboxMessage.created_at < before)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- composing ------------------------------------------------------------------------------------


def compose(session: Session, message: OutboxMessage, settings: MailSettings) -> EmailMessage:
    """Build the mail for an outbox message, in the recipient's language, with its unsubscribe links."""
    assert message.recipient is not None
    user = find_user_by_email(session, message.recipient)
    kind = kind_of(message.kind)
    base = settings.base_url
    if user is not None:
        one = make_token(kind.value, user_id=user.id) if kind is not None else None
        every = make_token(ALL, user_id=user.id)
    else:
        one, every = None, make_token(ALL, email=message.recipient)
    unsubscribe_all = f"{base}/mail/unsubscribe/{every}"
    locale = (user.locale if user is not None else None) or current_app.config.get("BABEL_DEFAULT_LOCALE", "en")
    with force_locale(locale):
        subject, lead = _wording(message)
        lines = _body_lines(message, base, lead)
        lines += ["", "-- ", _("You receive this mail from Accord because of your account or an invitation.")]
        if one is not None and kind is not None:
            lines.append(
                _("Stop mail of this kind (%(kind)s): %(url)s", kind=kind.label, url=f"{base}/mail/unsubscribe/{one}")
            )
        lines.append(_("Stop all mail from Accord: %(url)s", url=unsubscribe_all))
        if user is not None:
            lines.append(_("Choose which mail you receive: %(url)s", url=f"{base}/account/mail"))
    email = EmailMessage()
    email["From"] = settings.sender
    email["To"] = message.recipient
    email["Subject"] = subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = make_msgid(idstring=f"outbox-{message.id}", domain=settings.sender.rpartition("@")[2] or None)
    email["Auto-Submitted"] = "auto-generated"
    # RFC 8058: mail programs may offer a one-click unsubscribe, which POSTs to this address.
    email["List-Unsubscribe"] = f"<{unsubscribe_all if one is None else f'{base}/mail/unsubscribe/{one}'}>"
    email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.set_content("\n".join(lines) + "\n")
    return email


def _wording(message: OutboxMessage) -> tuple[str, str]:
    """The subject and the first line of a message, in the current language where its facts were kept."""
    payload = message.payload or {}
    if payload.get("params") and message.kind.startswith("notification."):
        subject = notice_text(message.kind.removeprefix("notification."), payload["params"], message.subject)
        return subject, subject
    if message.kind == "invitation" and (words := _invitation(payload)) is not None:
        return words
    # A notice stored without its facts: its subject is its text (its body is the page's path).
    return message.subject, message.subject if message.kind.startswith("notification.") else message.body


def _invitation(payload: dict[str, Any]) -> tuple[str, str] | None:
    """An invitation's subject and first line in the current language; None for one queued without the facts."""
    try:
        # Lower case inside a sentence ("as observer", "som observatör"), as English and Swedish write it.
        group, inviter, role = payload["group_name"], payload["inviter"], Role(payload["role"]).label.lower()
    except (KeyError, ValueError):
        return None
    return (
        _("Invitation to join %(group)s as %(role)s", group=group, role=role),
        _("%(name)s invites you to join %(group)s as %(role)s.", name=inviter, group=group, role=role),
    )


def _body_lines(message: OutboxMessage, base: str, lead: str) -> list[str]:
    payload = message.payload or {}
    if message.kind == "invitation" and payload.get("token"):
        return [
            lead,
            "",
            _("Accept the invitation here (the link works once and expires after 14 days):"),
            f"{base}/invitations/{payload['token']}",
        ]
    if message.kind.startswith("notification."):
        # A notification's body is the path of the page it is about.
        url = message.body if message.body.startswith("http") else f"{base}{message.body}"
        return [lead, "", _("Open it here: %(url)s", url=url)]
    return [lead]


# --- the background sender ---------------------------------------------------------------------------


class MailWorker(PeriodicWorker):
    """A thread per process that sends the outbox when something is queued, and every POLL seconds."""

    POLL = 30.0

    def __init__(self) -> None:
        super().__init__("mail-sender", self.POLL, run_once)


def run_once(app: Flask, *, limit: int = BATCH) -> DeliveryReport:
    """Send everything due now, batch after batch, in its own application context and session."""
    total = DeliveryReport()
    with app.app_context():
        settings = MailSettings.from_config(app.config)
        if settings is None:
            return total
        try:
            while True:
                report = send_due(settings, limit=limit)
                for name in ("sent", "retrying", "failed", "skipped", "purged"):
                    setattr(total, name, getattr(total, name) + getattr(report, name))
                total.errors += report.errors
                if report.handled < limit:
                    return total
        finally:
            db.session.remove()


worker = MailWorker()


def init_app(app: Flask) -> None:
    """Start the background sender with the first request when mail is on and MAIL_SENDER_THREAD allows it."""
    if MailSettings.from_config(app.config) is None or not app.config.get("MAIL_SENDER_THREAD", True):
        return
    worker.start_with_first_request(app)


def wake_worker() -> None:
    """Nudge the background sender (after a commit that queued mail); nothing happens when it is not running."""
    worker.wake()
