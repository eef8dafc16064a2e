"""The public publication log and the admins' audit log."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.audit.service import publication_log, verify_publication_log
from app.db import db
from app.policy import Action, require

bp = Blueprint("audit", __name__)


@bp.get("/publication-log")
def publication_log_page() -> str:
    return render_template(
        "audit/publication_log.html", entries=publication_log(db.session), report=verify_publication_log(db.session)
    )


@bp.get("/admin/audit")
@login_required
def audit_log() -> str:
    require(current_user, Action.VIEW_AUDIT, reason="Only site admins read the audit log.")
    page = max(1, request.args.get("page", 1, type=int))
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(100).offset((page - 1) * 100))
    return render_template("audit/audit_log.html", events=list(events), page=page)
