"""The indexing queue (and, for the PostgreSQL backend, the index itself)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at, pk


class SearchQueueItem(Base):
    """A document to (re)index or remove, written in the same transaction as the change itself."""

    __tablename__ = "search_queue"

    id: Mapped[pk]
    # "version:<id>", "comment:<id>" or "code:<id>" (the working text).
    source: Mapped[str] = mapped_column(String(60), index=True)
    created_at: Mapped[created_at]


class _Described:
    """What both search tables hold of a document: its language, who may see it, and what it is filtered by."""

    language: Mapped[str] = mapped_column(String(10))
    audience: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(80))
    version: Mapped[int | None]
    clause: Mapped[str | None] = mapped_column(String(120))
    category: Mapped[str | None] = mapped_column(String(40))
    comment_type: Mapped[str | None] = mapped_column(String(20))
    disposition: Mapped[str | None] = mapped_column(String(30))
    date: Mapped[dt.datetime]


class SearchDocumentRow(_Described, Base):
    """One searchable document for the PostgreSQL backend, as shown in results (its words are in `search_matches`)."""

    __tablename__ = "search_documents"
    __table_args__ = (Index("ix_search_documents_source", "source"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(60))
    code_title: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(500))


class SearchMatchRow(_Described, Base):
    """What a PostgreSQL search reads for every matching document: the words and the filters, nothing to show.

    A common word matches a third of all documents, and every match is read to rank it and to count it in the
    total and the facets. Kept apart from the text that only the page's twenty results need, these rows take
    half the pages of `search_documents` and stay in PostgreSQL's buffers. The `tsv` column (PostgreSQL only,
    added by the migration) holds the document's words, stemmed in its language, and its words as written; it
    has a GIN index.
    """

    __tablename__ = "search_matches"
    __table_args__ = (Index("ix_search_matches_language", "language"),)

    id: Mapped[str] = mapped_column(
        String(200), ForeignKey("search_documents.id", ondelete="CASCADE"), primary_key=True
    )
