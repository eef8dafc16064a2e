"""The outbox table: one row per message to deliver; and the addresses that asked for no mail at all."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at, pk, str_enum


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for its first or next attempt
    SENT = "sent"
    FAILED = "failed"  # gave up: a permanent refusal, or every attempt failed
    SKIPPED = "skipped"  # not mailed: no address, the person opted out, or too old when mail was turned on


class OutboxMessage(Base):
    __tablename__ = "outbox"
    # The sender's question: what is queued and due?
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[pk]
    kind: Mapped[str] = mapped_column(String(40), index=True)
    recipient: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[created_at]
    sent_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus, 20), default=MessageStatus.QUEUED)
    # None: due now. While a sender works on a message this is its lease, so no other sender takes it.
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class MailOptOut(Base):
    """An address (without an account, say an invited one) that asked for no more mail; kept as a hash."""

    __tablename__ = "mail_opt_outs"

    id: Mapped[pk]
    email_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[created_at]
