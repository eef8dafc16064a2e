"""Who wants which mail: per-account choices, addresses that opted out, and unsubscribing by token."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import MailKind, User
from app.audit.service import record_event
from app.errors import NotFound
from app.mail.tokens import ALL, Unsubscribe
from app.outbox.models import MailOptOut


def address_hash(email: str) -> str:
    """Hash an address as the opt-out list keeps it (the list never holds the address itself)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


# Notifications whose name is not a choosable kind's own.
_CHOSEN_AS = {"round_opened": MailKind.ROUND, "round_closed": MailKind.ROUND}


def kind_of(message_kind: str) -> MailKind | None:
    """Return the choosable kind of an outbox message ('notification.reply' → REPLY), None if not choosable."""
    name = message_kind.removeprefix("notification.")
    if name in _CHOSEN_AS:
        return _CHOSEN_AS[name]
    try:
        return MailKind(name)
    except ValueError:
        return None


def address_opted_out(session: Session, email: str) -> bool:
    """Tell whether an address asked for no mail at all."""
    return session.scalar(select(MailOptOut.id).where(MailOptOut.email_sha256 == address_hash(email))) is not None


def set_mail_choices(session: Session, user: User, wanted: set[str]) -> None:
    """Mail the person only the kinds in `wanted` from now on (messages already queued included)."""
    user.mail_opt_out = sorted(kind.value for kind in MailKind if kind.value not in wanted)
    record_event(session, user, "account.mail_choices_set", "user", user.id, opted_out=user.mail_opt_out)


def unsubscribe(session: Session, request: Unsubscribe) -> User | None:
    """Stop the mail a token names; return the account concerned, if any.

    Raises:
        NotFound: when the token names an account that no longer exists.
    """
    if request.user_id is not None:
        user = session.get(User, request.user_id)
        if user is None or user.is_deleted:
            raise NotFound()
        kinds = {kind.value for kind in MailKind} if request.kind == ALL else {MailKind(request.kind).value}
        user.mail_opt_out = sorted(set(user.mail_opt_out or []) | kinds)
        record_event(session, None, "mail.unsubscribed", "user", user.id, kinds=sorted(kinds))
        return user
    assert request.email is not None
    digest = address_hash(request.email)
    if session.scalar(select(MailOptOut.id).where(MailOptOut.email_sha256 == digest)) is None:
        session.add(MailOptOut(email_sha256=digest))
        session.flush()
    record_event(session, None, "mail.unsubscribed", "address", None, kinds=[ALL])
    return None
