"""The privacy notice, the public register of hidden comments, reporting a comment, the admins' reports."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.accounts.models import User
from app.comments import reports
from app.comments.models import ReportStatus
from app.comments.service import can_see_comment, get_comment
from app.db import db, in_transaction
from app.errors import Conflict, ValidationFailed
from app.extensions import limiter
from app.privacy.forms import ReasonForm, ReportForm

bp = Blueprint("privacy", __name__)


def _actor(session: Session) -> User:
    return session.get(User, current_user.id)  # type: ignore[return-value]


def _viewer(session: Session) -> User | None:
    return _actor(session) if current_user.is_authenticated else None


@bp.get("/privacy")
def notice() -> str:
    return render_template(
        "privacy/notice.html",
        contact=current_app.config.get("PRIVACY_CONTACT") or current_app.config.get("MAIL_FROM"),
        mail_keep_days=current_app.config.get("MAIL_KEEP_DAYS") or 30,
    )


@bp.get("/privacy/hidden-comments")
def hidden_comments() -> str:
    return render_template("privacy/hidden.html", entries=reports.hidden_register(db.session, current_user))


# --- reporting a comment ------------------------------------------------------------------------------


def _report_form(comment_id: int) -> tuple[ReportForm, object]:
    comment = get_comment(db.session, current_user, comment_id)
    root = comment.parent or comment
    targets = [root] + [r for r in root.replies if not r.is_withdrawn and can_see_comment(current_user, r)]
    form = ReportForm(comment_id=str(comment.id))
    form.comment_id.choices = [
        (str(c.id), _("Comment #%(id)s", id=c.id) if c is root else _("Reply #%(id)s", id=c.id)) for c in targets
    ]
    return form, root


@bp.route("/comments/<int:comment_id>/report", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def report(comment_id: int) -> str | Response:
    form, root = _report_form(comment_id)
    if form.validate_on_submit():
        target = int(form.comment_id.data or comment_id)
        try:
            in_transaction(
                lambda s: reports.report_comment(
                    s,
                    _viewer(s),
                    get_comment(s, current_user, target),
                    name=form.name.data or "",
                    email=form.email.data,
                    explanation=form.explanation.data or "",
                )
            )
        except ValidationFailed as error:
            for name, message in error.field_errors.items():
                if (field := getattr(form, name, None)) is not None:
                    field.errors = [*field.errors, message]
            flash(error.message, "error")
            return render_template("privacy/report.html", form=form, comment=root), error.status  # type: ignore[return-value]
        flash(_("Thank you. Your report was sent; an administrator will look at it and answer you."), "success")
        return redirect(url_for("comments.thread", comment_id=root.id))  # type: ignore[attr-defined]
    status = 422 if form.errors else 200
    return render_template("privacy/report.html", form=form, comment=root), status  # type: ignore[return-value]


# --- the admins' side -----------------------------------------------------------------------------


@bp.get("/admin/reports")
@login_required
def admin_reports() -> str:
    status = request.args.get("status")
    chosen = ReportStatus(status) if status in set(ReportStatus) else None
    return render_template(
        "privacy/reports.html", reports=reports.list_reports(db.session, current_user, chosen), status=chosen
    )


@bp.get("/admin/comments/<int:comment_id>/reports")
@login_required
def admin_comment_reports(comment_id: int) -> str:
    comment, found = in_transaction(lambda s: reports.reports_on(s, _actor(s), comment_id))
    return render_template("privacy/report_detail.html", comment=comment, reports=found, form=ReasonForm())


def _reason_given() -> str:
    form = ReasonForm()
    if not form.validate_on_submit():
        raise ValidationFailed(_("Give the reason; it is kept with the comment in the record."))
    return form.reason.data or ""


def _decided(comment_id: int, work: Callable[[Session, User], object], done: str) -> Response:
    try:
        in_transaction(lambda s: work(s, _actor(s)))
    except (Conflict, ValidationFailed) as error:  # a decision already taken, or no reason: say so on the page
        flash(error.message, "error")
    else:
        flash(done, "success")
    return redirect(url_for("privacy.admin_comment_reports", comment_id=comment_id))


@bp.post("/admin/comments/<int:comment_id>/hide")
@login_required
def hide(comment_id: int) -> Response:
    reason = _reason_given()
    return _decided(
        comment_id,
        lambda s, actor: reports.hide_comment(s, actor, reports.get_any_comment(s, actor, comment_id), reason),
        _("The comment is hidden from public view."),
    )


@bp.post("/admin/comments/<int:comment_id>/restore")
@login_required
def restore(comment_id: int) -> Response:
    reason = _reason_given()
    return _decided(
        comment_id,
        lambda s, actor: reports.restore_comment(s, actor, reports.get_any_comment(s, actor, comment_id), reason),
        _("The comment is shown again."),
    )


@bp.post("/admin/reports/<int:report_id>/dismiss")
@login_required
def dismiss(report_id: int) -> Response:
    reason = _reason_given()
    report = reports.get_report(db.session, current_user, report_id)
    return _decided(
        report.comment_id,
        lambda s, actor: reports.dismiss_report(s, actor, reports.get_report(s, actor, report_id), reason),
        _("The report is dismissed."),
    )
