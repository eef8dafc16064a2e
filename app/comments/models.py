"""Comments, their edit history and anchors per version, intake attempts and notifications."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship, with_loader_criteria

from app.accounts.models import StakeholderCategory, User
from app.db import READS_NO_COMMENTS, Base, created_at, pk, str_enum
from app.drafting.models import Code, Version


class CommentType(enum.StrEnum):
    GENERAL = "general"
    TECHNICAL = "technical"
    EDITORIAL = "editorial"

    @property
    def label(self) -> str:
        return str(TYPE_LABELS[self])


TYPE_LABELS = {
    CommentType.GENERAL: _l("General"),
    CommentType.TECHNICAL: _l("Technical"),
    CommentType.EDITORIAL: _l("Editorial"),
}


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    GROUP = "group"

    @property
    def label(self) -> str:
        return str(VISIBILITY_LABELS[self])


VISIBILITY_LABELS = {
    Visibility.PUBLIC: _l("Public"),
    Visibility.GROUP: _l("Working group only"),
}


class Disposition(enum.StrEnum):
    ACCEPTED = "accepted"
    PARTIALLY_ACCEPTED = "partially_accepted"
    NOT_ACCEPTED = "not_accepted"
    NOTED = "noted"
    OUT_OF_SCOPE = "out_of_scope"

    @property
    def label(self) -> str:
        return str(DISPOSITION_LABELS[self])


DISPOSITION_LABELS = {
    Disposition.ACCEPTED: _l("Accepted"),
    Disposition.PARTIALLY_ACCEPTED: _l("Partially accepted"),
    Disposition.NOT_ACCEPTED: _l("Not accepted"),
    Disposition.NOTED: _l("Noted"),
    Disposition.OUT_OF_SCOPE: _l("Out of scope"),
}


class AnchorState(enum.StrEnum):
    ANCHORED = "anchored"
    OUTDATED = "outdated"
    ORPHANED = "orphaned"


class Comment(Base):
    """A comment on a clause (and optionally a quoted passage) of one version, or a reply to one."""

    __tablename__ = "comments"
    __table_args__ = (
        UniqueConstraint("author_id", "idempotency_key"),
        Index("ix_comments_version_clause", "version_id", "clause_key"),
    )

    id: Mapped[pk]
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    clause_key: Mapped[str] = mapped_column(String(120))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), index=True)
    # The text anchor: the exact quote with some context, and offsets in the clause's Markdown.
    quote: Mapped[str] = mapped_column(Text, default="")
    prefix: Mapped[str] = mapped_column(String(200), default="")
    suffix: Mapped[str] = mapped_column(String(200), default="")
    start: Mapped[int | None]
    end: Mapped[int | None]
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    proposed_text: Mapped[str | None] = mapped_column(Text)
    type: Mapped[CommentType] = mapped_column(str_enum(CommentType, 20), default=CommentType.GENERAL)
    visibility: Mapped[Visibility] = mapped_column(str_enum(Visibility, 20), default=Visibility.PUBLIC)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Kept with the comment so tallies and exports stay as they were when it was made.
    author_category: Mapped[StakeholderCategory] = mapped_column(str_enum(StakeholderCategory))
    author_organisation: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    request_sha256: Mapped[str] = mapped_column(String(64))
    receipt_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[created_at]
    edited_at: Mapped[dt.datetime | None]
    withdrawn_at: Mapped[dt.datetime | None]
    disposition: Mapped[Disposition | None] = mapped_column(str_enum(Disposition, 30))
    disposition_response: Mapped[str | None] = mapped_column(Text)
    disposition_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    disposition_at: Mapped[dt.datetime | None]
    addressed_in_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id", ondelete="SET NULL"))
    applied_in_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id", ondelete="SET NULL"))
    campaign_group: Mapped[int | None] = mapped_column(index=True)
    # Hidden by an admin (say, after a report that it was submitted in someone's name): out of every page,
    # count, export and search, but kept in the record with the reason.
    hidden_at: Mapped[dt.datetime | None]
    hidden_reason: Mapped[str | None] = mapped_column(Text)
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    code: Mapped[Code] = relationship()
    version: Mapped[Version] = relationship(foreign_keys=[version_id])
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    parent: Mapped[Comment | None] = relationship(remote_side="Comment.id", back_populates="replies")
    replies: Mapped[list[Comment]] = relationship(back_populates="parent", order_by="Comment.id")
    addressed_in: Mapped[Version | None] = relationship(foreign_keys=[addressed_in_version_id])
    applied_in: Mapped[Version | None] = relationship(foreign_keys=[applied_in_version_id])
    anchors: Mapped[list[CommentAnchor]] = relationship(back_populates="comment", cascade="all, delete-orphan")
    revisions: Mapped[list[CommentRevision]] = relationship(
        back_populates="comment", cascade="all, delete-orphan", order_by="CommentRevision.id"
    )

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None

    def anchor_in(self, version_id: int) -> CommentAnchor | None:
        return next((a for a in self.anchors if a.version_id == version_id), None)


class CommentRevision(Base):
    """An earlier text of an edited comment."""

    __tablename__ = "comment_revisions"

    id: Mapped[pk]
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    proposed_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    comment: Mapped[Comment] = relationship(back_populates="revisions")


class CommentAnchor(Base):
    """Where a comment sits in a later version, and how sure the re-anchoring is."""

    __tablename__ = "comment_anchors"
    __table_args__ = (UniqueConstraint("comment_id", "version_id"),)

    id: Mapped[pk]
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    clause_key: Mapped[str | None] = mapped_column(String(120))
    start: Mapped[int | None]
    end: Mapped[int | None]
    confidence: Mapped[float]
    state: Mapped[AnchorState] = mapped_column(str_enum(AnchorState, 20))

    comment: Mapped[Comment] = relationship(back_populates="anchors")


class IntakeAttempt(Base):
    """The first time the server saw a submission it could not take (overload, failure).

    A retry with the same key after the window closed is still timely if its first attempt was not.
    """

    __tablename__ = "intake_attempts"
    __table_args__ = (UniqueConstraint("author_id", "idempotency_key"),)

    id: Mapped[pk]
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    first_seen_at: Mapped[created_at]


class Notification(Base):
    """An in-app notice (reply, disposition, new version); the outbox carries the same for mail."""

    __tablename__ = "notifications"

    id: Mapped[pk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)  # the English wording; readers get `params` worded in their language
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    url: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[created_at]
    read_at: Mapped[dt.datetime | None]

    @property
    def message(self) -> str:
        """The notice in the current language."""
        from app.notices import notice_text  # imported late: notices builds on these models

        return notice_text(self.kind, self.params, self.text)


class ReportStatus(enum.StrEnum):
    OPEN = "open"
    UPHELD = "upheld"
    DISMISSED = "dismissed"

    @property
    def label(self) -> str:
        return str(REPORT_STATUS_LABELS[self])


REPORT_STATUS_LABELS = {
    ReportStatus.OPEN: _l("Open"),
    ReportStatus.UPHELD: _l("Upheld: comment hidden"),
    ReportStatus.DISMISSED: _l("Dismissed"),
}


class CommentReport(Base):
    """A person's report that a comment was submitted in their name without their consent."""

    __tablename__ = "comment_reports"

    id: Mapped[pk]
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), index=True)
    # A logged-in reporter is linked; anyone else leaves a name and an address to be answered at.
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    reporter_name: Mapped[str] = mapped_column(String(120))
    reporter_email: Mapped[str | None] = mapped_column(String(254))
    explanation: Mapped[str] = mapped_column(Text)
    status: Mapped[ReportStatus] = mapped_column(str_enum(ReportStatus, 20), default=ReportStatus.OPEN, index=True)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    handled_at: Mapped[dt.datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]

    comment: Mapped[Comment] = relationship()
    reporter: Mapped[User | None] = relationship(foreign_keys=[reporter_id])
    handled_by: Mapped[User | None] = relationship(foreign_keys=[handled_by_id])


# Execution option that lets a query see hidden comments (the admin's report pages, a person's data export).
INCLUDE_HIDDEN = "include_hidden_comments"


@event.listens_for(Session, "do_orm_execute")
def _leave_out_hidden_comments(state: ORMExecuteState) -> None:
    """Hidden comments are left out of every ORM query unless it asks for them with INCLUDE_HIDDEN (or says
    with READS_NO_COMMENTS that it reads none).

    One rule in one place, so that pages, counts, the resolution matrix, exports, the comment margin and the
    search index (whose rebuild reads comments through the ORM) all agree without each remembering a filter.
    Refreshing attributes of an object already loaded is not filtered, so a loaded hidden comment never turns
    into an error; `get_comment` checks `is_hidden` itself.
    """
    if (
        not state.is_select
        or state.is_column_load
        or state.is_relationship_load
        or state.execution_options.get(INCLUDE_HIDDEN, False)
        or state.execution_options.get(READS_NO_COMMENTS, False)
    ):
        return
    state.statement = state.statement.options(
        with_loader_criteria(Comment, _not_hidden, include_aliases=True, track_closure_variables=False)
    )


def _not_hidden(cls: Any) -> Any:
    return cls.hidden_at.is_(None)
