"""Reports of comments falsely submitted in someone's name, and hiding comments from public view.

A hidden comment stays in the database with who hid it, when and why; every ORM query leaves it out
(see `INCLUDE_HIDDEN` in models.py), so it disappears from pages, counts, the resolution matrix, exports,
the comment margin and search at once. Replies to a hidden comment are hidden with it (same time, same
reason), since they answer a text that is no longer shown; restoring the comment restores them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.accounts.models import User
from app.accounts.service import normalise_email
from app.audit.service import record_event
from app.comments.models import INCLUDE_HIDDEN, Comment, CommentReport, ReportStatus, Visibility
from app.db import utcnow
from app.drafting.models import Version
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.errors import lazy_gettext as _l
from app.policy import Action, can

MAX_EXPLANATION = 5_000
MAX_REASON = 2_000
_WITH_HIDDEN = {INCLUDE_HIDDEN: True}


def _require_admin(actor: User) -> None:
    # Reports carry the reporter's name and address, and hiding changes the public record: site admins only.
    if not actor.is_admin:
        raise Forbidden(_l("Only site admins handle reports of falsely submitted comments."))


def report_comment(
    session: Session,
    reporter: User | None,
    comment: Comment,
    *,
    name: str,
    email: str | None,
    explanation: str,
) -> CommentReport:
    """Record a report that `comment` was submitted in the reporter's name without their consent.

    Raises:
        ValidationFailed: for a missing explanation, or a missing name or address from someone not logged in.
    """
    errors = {}
    if not explanation.strip():
        errors["explanation"] = _l("Tell us why you believe the comment was submitted in your name.")
    elif len(explanation) > MAX_EXPLANATION:
        errors["explanation"] = _l("Keep the explanation under 5,000 characters.")
    address = None
    if reporter is None:
        if not name.strip():
            errors["name"] = _l("Enter your name.")
        if not (email or "").strip():
            errors["email"] = _l("Enter an email address so that we can answer you.")
    if (email or "").strip():
        try:
            address = normalise_email(email or "")
        except ValidationFailed as error:
            errors["email"] = error.message
    if errors:
        raise ValidationFailed(_l("The report was not sent; see the marked fields."), field_errors=errors)
    report = CommentReport(
        comment_id=comment.id,
        reporter_id=reporter.id if reporter else None,
        reporter_name=(name.strip() or (reporter.display_name if reporter else ""))[:120],
        reporter_email=address or (reporter.email if reporter else None),
        explanation=explanation.strip(),
    )
    session.add(report)
    session.flush()
    record_event(session, reporter, "comment.reported", "comment", comment.id, report=report.id)
    return report


def list_reports(session: Session, actor: User, status: ReportStatus | None = None) -> list[CommentReport]:
    """Return reports, open ones first, newest first (site admins only).

    Raises:
        Forbidden: for anyone but a site admin.
    """
    _require_admin(actor)
    query = (
        select(CommentReport)
        .options(selectinload(CommentReport.comment))
        .order_by((CommentReport.status == ReportStatus.OPEN).desc(), CommentReport.id.desc())
        .execution_options(**_WITH_HIDDEN)
    )
    if status is not None:
        query = query.where(CommentReport.status == status)
    return list(session.scalars(query))


def reports_on(session: Session, actor: User, comment_id: int) -> tuple[Comment, list[CommentReport]]:
    """Return a comment (hidden or not) and every report on it; the admin's look at them is audited.

    Raises:
        Forbidden: for anyone but a site admin.
        NotFound: when there is no such comment.
    """
    comment = get_any_comment(session, actor, comment_id)
    found = list(
        session.scalars(select(CommentReport).where(CommentReport.comment_id == comment.id).order_by(CommentReport.id))
    )
    # The page shows the reporters' names and addresses and the account the comment came from.
    record_event(
        session, actor, "comment_reports.viewed", "comment", comment.id, reports=[report.id for report in found]
    )
    return comment, found


def get_report(session: Session, actor: User, report_id: int) -> CommentReport:
    """Return one report (site admins only).

    Raises:
        Forbidden: for anyone but a site admin.
        NotFound: when there is no such report.
    """
    _require_admin(actor)
    report = session.get(CommentReport, report_id)
    if report is None:
        raise NotFound()
    return report


def _open_reports(session: Session, comment: Comment) -> list[CommentReport]:
    return list(
        session.scalars(
            select(CommentReport).where(
                CommentReport.comment_id == comment.id, CommentReport.status == ReportStatus.OPEN
            )
        )
    )


def _reason(reason: str) -> str:
    if not reason.strip():
        message = _l("Give the reason; it is kept with the comment in the record.")
        raise ValidationFailed(message, field_errors={"reason": message})
    if len(reason) > MAX_REASON:
        message = _l("Keep the reason under 2,000 characters.")
        raise ValidationFailed(message, field_errors={"reason": message})
    return reason.strip()


def hide_comment(session: Session, actor: User, comment: Comment, reason: str) -> list[int]:
    """Hide a comment (and the replies to it) from public view, with the reason; its open reports are upheld.

    Returns the ids of the comments hidden.

    Raises:
        Forbidden: for anyone but a site admin.
        ValidationFailed: without a reason.
        Conflict: when the comment is already hidden.
    """
    _require_admin(actor)
    reason = _reason(reason)
    if comment.is_hidden:
        raise Conflict(_l("This comment is already hidden."))
    now = utcnow()
    hidden = [comment.id]
    replies = list(session.scalars(select(Comment).where(Comment.parent_id == comment.id, Comment.hidden_at.is_(None))))
    for target in [comment, *replies]:
        target.hidden_at, target.hidden_reason, target.hidden_by_id = now, reason, actor.id
    hidden += [reply.id for reply in replies]
    upheld = _open_reports(session, comment)
    for report in upheld:
        report.status, report.handled_by_id, report.handled_at, report.resolution = (
            ReportStatus.UPHELD, actor.id, now, reason,
        )  # fmt: skip
    session.flush()
    record_event(
        session, actor, "comment.hidden", "comment", comment.id,
        reason=reason, reports=[report.id for report in upheld], replies_hidden=hidden[1:], author_id=comment.author_id,
        category=comment.author_category.value,
    )  # fmt: skip
    return hidden


def dismiss_report(session: Session, actor: User, report: CommentReport, reason: str) -> None:
    """Close a report without hiding anything, with the reason.

    Raises:
        Forbidden: for anyone but a site admin.
        ValidationFailed: without a reason.
        Conflict: when the report is not open.
    """
    _require_admin(actor)
    reason = _reason(reason)
    if report.status != ReportStatus.OPEN:
        raise Conflict(_l("This report was already handled."))
    report.status, report.handled_by_id, report.handled_at, report.resolution = (
        ReportStatus.DISMISSED, actor.id, utcnow(), reason,
    )  # fmt: skip
    record_event(session, actor, "comment_report.dismissed", "comment_report", report.id, reason=reason)


def restore_comment(session: Session, actor: User, comment: Comment, reason: str) -> list[int]:
    """Show a hidden comment again, with the replies hidden together with it; the reason is audited.

    Raises:
        Forbidden: for anyone but a site admin.
        ValidationFailed: without a reason.
        Conflict: when the comment is not hidden.
    """
    _require_admin(actor)
    reason = _reason(reason)
    if not comment.is_hidden:
        raise Conflict(_l("This comment is not hidden."))
    # Replies hidden in the same act carry the same time; one hidden for a report of its own stays hidden.
    replies = session.scalars(
        select(Comment)
        .where(Comment.parent_id == comment.id, Comment.hidden_at == comment.hidden_at)
        .execution_options(**_WITH_HIDDEN)
    )
    targets = [comment, *replies]
    for target in targets:
        target.hidden_at, target.hidden_reason, target.hidden_by_id = None, None, None
    restored = [target.id for target in targets]
    session.flush()
    record_event(session, actor, "comment.restored", "comment", comment.id, reason=reason, replies=restored[1:])
    return restored


def get_any_comment(session: Session, actor: User, comment_id: int) -> Comment:
    """Return a comment, hidden or not (site admins only).

    Raises:
        Forbidden: for anyone but a site admin.
        NotFound: when there is no such comment.
    """
    _require_admin(actor)
    comment = session.get(Comment, comment_id, execution_options=_WITH_HIDDEN)
    if comment is None:
        raise NotFound()
    return comment


@dataclass(frozen=True)
class HiddenEntry:
    """What the public record says of a hidden comment: where it was and when it was hidden, not what it said."""

    comment_id: int
    parent_id: int | None
    code_slug: str
    code_title: str
    version_number: int
    clause_key: str
    category: str
    hidden_at: dt.datetime


def hidden_register(session: Session, viewer: object) -> list[HiddenEntry]:
    """Return the hidden comments the viewer could have seen, newest first: the public trace of each hiding.

    With it, counts taken before a hiding still add up: the comments shown now plus these.
    """
    comments = session.scalars(
        select(Comment)
        .where(Comment.hidden_at.is_not(None))
        .options(selectinload(Comment.version).selectinload(Version.code))
        .order_by(Comment.hidden_at.desc(), Comment.id)
        .execution_options(**_WITH_HIDDEN)
    )
    entries = []
    for comment in comments:
        if not can(viewer, Action.VIEW_VERSION, comment.version):
            continue
        if comment.visibility != Visibility.PUBLIC and not can(viewer, Action.VIEW_GROUP_COMMENTS, comment.code):
            continue
        entries.append(
            HiddenEntry(
                comment.id, comment.parent_id, comment.code.slug, comment.code.title, comment.version.number,
                comment.clause_key, comment.author_category.value, comment.hidden_at,  # type: ignore[arg-type]
            )
        )  # fmt: skip
    return entries


def open_report_count(session: Session) -> int:
    """How many reports wait for an admin."""
    return session.scalar(select(func.count(CommentReport.id)).where(CommentReport.status == ReportStatus.OPEN)) or 0
