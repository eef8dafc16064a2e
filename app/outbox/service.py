"""Queue messages for later delivery (app/mail sends them when mail is configured)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db import after_commit
from app.outbox.models import OutboxMessage


def queue_message(
    session: Session,
    *,
    kind: str,
    recipient: str | None,
    subject: str,
    body: str,
    payload: dict[str, Any] | None = None,
) -> OutboxMessage:
    """Add a message to the outbox in the caller's transaction; the mail sender is nudged once it commits."""
    message = OutboxMessage(kind=kind, recipient=recipient, subject=subject, body=body, payload=payload or {})
    session.add(message)
    session.flush()
    after_commit(session, _wake_sender)
    return message


def _wake_sender() -> None:
    from app.mail.sender import wake_worker  # imported late: the sender builds on accounts, which queue mail

    wake_worker()
