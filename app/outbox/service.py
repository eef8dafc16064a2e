"""Queue messages for later delivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

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
    """Add a message to the outbox in the caller's transaction."""
    message = OutboxMessage(kind=kind, recipient=recipient, subject=subject, body=body, payload=payload or {})
    session.add(message)
    session.flush()
    return message
