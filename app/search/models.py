"""The indexing queue (and, for the PostgreSQL backend, the index itself)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at, pk


class SearchQueueItem(Base):
    """A document to (re)index or remove, written in the same transaction as the change itself."""

    __tablename__ = "search_queue"

    id: Mapped[pk]
    # "version:<id>", "comment:<id>" or "code:<id>" (the working text).
    source: Mapped[str] = mapped_column(String(60), index=True)
    created_at: Mapped[created_at]


class SearchDocumentRow(Base):
    """One searchable document for the PostgreSQL backend; its tsvector lives in a generated column."""

    __tablename__ = "search_documents"
    __table_args__ = (Index("ix_search_documents_source", "source"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(80))
    code_title: Mapped[str] = mapped_column(String(300))
    version: Mapped[int | None]
    clause: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(10))
    audience: Mapped[str] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(40))
    comment_type: Mapped[str | None] = mapped_column(String(20))
    disposition: Mapped[str | None] = mapped_column(String(30))
    date: Mapped[dt.datetime]
    url: Mapped[str] = mapped_column(String(500))
