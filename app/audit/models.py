"""Audit events and publication-log entries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at, pk


class AuditEvent(Base):
    """Who did what to which object, when. Rows are only ever inserted."""

    __tablename__ = "audit_events"

    id: Mapped[pk]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Kept beside the id so the record still reads after an account is deleted.
    actor_label: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(80), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[created_at]


class PublicationLogEntry(Base):
    """One published version, chained to the previous entry by SHA-256."""

    __tablename__ = "publication_log"

    id: Mapped[pk]
    # The unique sequence number makes two concurrent appends collide instead of forking the chain.
    seq: Mapped[int] = mapped_column(unique=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), unique=True)
    code_slug: Mapped[str] = mapped_column(String(80))
    version_number: Mapped[int]
    content_sha256: Mapped[str] = mapped_column(String(64))
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
    published_at: Mapped[dt.datetime]
