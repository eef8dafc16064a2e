"""Code, version and clause models."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, defer, joinedload, mapped_column, relationship

from app.accounts.models import User, WorkingGroup
from app.db import Base, created_at, pk, str_enum, utcnow


class CodeStatus(enum.StrEnum):
    DRAFTING = "drafting"
    CONSULTATION = "consultation"
    CLOSED = "closed"
    FINAL = "final"

    @property
    def label(self) -> str:
        return str(STATUS_LABELS[self])


STATUS_LABELS = {
    CodeStatus.DRAFTING: _l("Drafting"),
    CodeStatus.CONSULTATION: _l("In consultation"),
    CodeStatus.CLOSED: _l("Consultation closed"),
    CodeStatus.FINAL: _l("Final"),
}


class Code(Base):
    """A code of practice being drafted, with its live working text."""

    __tablename__ = "codes"

    id: Mapped[pk]
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(10))
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[CodeStatus] = mapped_column(str_enum(CodeStatus, 20), default=CodeStatus.DRAFTING)
    working_group_id: Mapped[int] = mapped_column(ForeignKey("working_groups.id"))
    working_text: Mapped[str] = mapped_column(Text, default="")
    # Incremented on every save of the working text; a form sends the revision it started from.
    working_revision: Mapped[int] = mapped_column(default=0)
    # The consultation window, set by a chair; comments are accepted only inside it (server time).
    consultation_opens_at: Mapped[dt.datetime | None]
    consultation_closes_at: Mapped[dt.datetime | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    working_group: Mapped[WorkingGroup] = relationship()

    def consultation_open(self, now: dt.datetime) -> bool:
        opens, closes = self.consultation_opens_at, self.consultation_closes_at
        return opens is not None and closes is not None and opens <= now < closes

    versions: Mapped[list[Version]] = relationship(
        back_populates="code", order_by="Version.number", cascade="all, delete-orphan"
    )


class Version(Base):
    """An immutable numbered snapshot of a code's working text."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("code_id", "number"),)

    id: Mapped[pk]
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id", ondelete="CASCADE"))
    number: Mapped[int]
    label: Mapped[str] = mapped_column(String(200))
    change_summary: Mapped[str] = mapped_column(Text, default="")
    markdown: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    # Rendered once when the version is cut: versions never change, so neither does their HTML.
    html: Mapped[str] = mapped_column(Text)
    toc: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    word_count: Mapped[int]
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    published_at: Mapped[dt.datetime | None]
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    code: Mapped[Code] = relationship(back_populates="versions")
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    clauses: Mapped[list[Clause]] = relationship(
        back_populates="version", order_by="Clause.ordinal", cascade="all, delete-orphan"
    )

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def clause(self, key: str) -> Clause | None:
        return next((clause for clause in self.clauses if clause.key == key), None)

    @property
    def name(self) -> str:
        return f"v{self.number}"


class Clause(Base):
    """A heading-delimited part of a version, with a key that stays stable across versions."""

    __tablename__ = "clauses"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: Mapped[pk]
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(120))
    heading: Mapped[str] = mapped_column(String(500))
    level: Mapped[int]
    ordinal: Mapped[int]
    markdown: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))

    version: Mapped[Version] = relationship(back_populates="clauses")


def code_with_versions_without_texts() -> tuple[Any, ...]:
    """Loader options for a code with its versions' small columns and none of the texts (the working text
    alone can be half a megabyte; a code has tens of versions at most): each text loads when read."""
    return (
        joinedload(Code.versions).options(defer(Version.markdown), defer(Version.html), defer(Version.toc)),
        defer(Code.working_text),
    )
