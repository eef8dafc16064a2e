"""A person's data protection rights: a copy of everything kept about them, and deleting their account.

Deleting an account erases the personal data and keeps the row as a tombstone: foreign keys hold, the
receipts of the person's comments (which name the author's id) still verify, and every contribution stays
in the record attributed to "withdrawn participant" with the stakeholder category it was made under, so
tallies, the resolution matrix and the positions export come out as before.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from app.accounts.models import Invitation, MailKind, Membership, User
from app.audit.models import AuditEvent
from app.audit.service import record_event
from app.comments.models import INCLUDE_HIDDEN, Comment, CommentReport, IntakeAttempt, Notification
from app.consensus.models import ForumMember, Position, PositionRevision
from app.db import utcnow
from app.errors import Conflict, Forbidden, ValidationFailed
from app.errors import lazy_gettext as _l
from app.outbox.models import OutboxMessage

EXPORT_FORMAT = "accord-personal-data/1"
# What stays of an erased account in fields that cannot be empty.
TOMBSTONE_NAME = "withdrawn participant"
UNUSABLE_PASSWORD = "!"  # noqa: S105 -- never the result of a password hash, so no password matches it


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def tombstone_email(user_id: int) -> str:
    """The address an erased account keeps: unique, and in the reserved .invalid domain, so never mailed."""
    return f"withdrawn-{user_id}@deleted.invalid"


def _audit_label(user_id: int) -> str:
    return f"{TOMBSTONE_NAME} #{user_id}"


# --- the copy of one's data ------------------------------------------------------------------------


def export_user_data(session: Session, actor: User | None, user: User) -> dict[str, Any]:
    """Return everything kept about `user`, as JSON-ready data; the export is audited.

    Raises:
        Forbidden: unless the actor is the user, a site admin, or None (an operator's command).
    """
    if actor is not None and actor.id != user.id and not actor.is_admin:
        raise Forbidden(_l("You can only download your own data."))
    data = {
        "format": EXPORT_FORMAT,
        "exported_at": _time(utcnow()),
        "account": _account(user),
        "memberships": _memberships(session, user),
        "forum_memberships": [
            {"forum": m.forum.slug, "name": m.forum.name, "since": _time(m.created_at)}
            for m in session.scalars(select(ForumMember).where(ForumMember.user_id == user.id))
        ],
        "comments": _comments(session, user),
        "positions": _positions(session, user),
        "notifications": _notifications(session, user),
        "mail": _mail(session, user),
        "reports_filed": _reports(session, user),
        "audit_events": _audit_events(session, user),
    }  # fmt: skip
    by = "operator" if actor is None else ("self" if actor.id == user.id else "admin")
    record_event(session, actor, "account.data_exported", "user", user.id, by=by)
    return data


def _notifications(session: Session, user: User) -> list[dict[str, Any]]:
    notifications = session.scalars(
        select(Notification).where(Notification.user_id == user.id).order_by(Notification.id)
    )
    return [
        {
            "kind": n.kind,
            "text": n.message,
            "url": n.url,
            "created_at": _time(n.created_at),
            "read_at": _time(n.read_at),
        }
        for n in notifications
    ]


def _mail(session: Session, user: User) -> list[dict[str, Any]]:
    messages = session.scalars(
        select(OutboxMessage).where(OutboxMessage.recipient == user.email).order_by(OutboxMessage.id)
    )
    return [
        {
            "kind": m.kind, "subject": m.subject, "status": m.status.value, "attempts": m.attempts,
            "created_at": _time(m.created_at), "sent_at": _time(m.sent_at),
        }
        for m in messages
    ]  # fmt: skip


def _reports(session: Session, user: User) -> list[dict[str, Any]]:
    reports = session.scalars(select(CommentReport).where(CommentReport.reporter_id == user.id))
    return [
        {
            "comment_id": r.comment_id, "name": r.reporter_name, "email": r.reporter_email,
            "explanation": r.explanation, "status": r.status.value, "resolution": r.resolution,
            "created_at": _time(r.created_at),
        }
        for r in reports
    ]  # fmt: skip


def _account(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "organisation": user.organisation,
        "stakeholder_category": user.category.value,
        "transparency_register_id": user.transparency_register_id,
        "locale": user.locale,
        "is_admin": user.is_admin,
        "mail_not_wanted": list(user.mail_opt_out or []),
        "created_at": _time(user.created_at),
        "deleted_at": _time(user.deleted_at),
    }


def _memberships(session: Session, user: User) -> list[dict[str, Any]]:
    return [
        {"working_group": m.working_group.slug, "name": m.working_group.name, "role": m.role.value,
         "since": _time(m.created_at)}
        for m in session.scalars(select(Membership).where(Membership.user_id == user.id))
    ]  # fmt: skip


def _comments(session: Session, user: User) -> list[dict[str, Any]]:
    # Hidden comments too: the person asked for everything kept about them.
    comments = session.scalars(
        select(Comment)
        .where(Comment.author_id == user.id)
        .order_by(Comment.id)
        .execution_options(**{INCLUDE_HIDDEN: True})
    )
    return [
        {
            "id": c.id, "code": c.code.slug, "version": c.version.number, "clause": c.clause_key,
            "parent_id": c.parent_id, "quote": c.quote, "body": c.body, "proposed_text": c.proposed_text,
            "type": c.type.value, "visibility": c.visibility.value, "stakeholder_category": c.author_category.value,
            "organisation": c.author_organisation, "created_at": _time(c.created_at),
            "edited_at": _time(c.edited_at), "withdrawn_at": _time(c.withdrawn_at), "hidden_at": _time(c.hidden_at),
            "disposition": c.disposition.value if c.disposition else None,
            "disposition_response": c.disposition_response, "receipt_sha256": c.receipt_sha256,
            "revisions": [
                {"body": r.body, "proposed_text": r.proposed_text, "replaced_at": _time(r.created_at)}
                for r in c.revisions
            ],
        }
        for c in comments
    ]  # fmt: skip


def _positions(session: Session, user: User) -> list[dict[str, Any]]:
    # A position counted per organisation may have been changed by a colleague: any revision by this person
    # brings the position in.
    by_revision = select(PositionRevision.position_id).where(PositionRevision.user_id == user.id)
    positions = session.scalars(
        select(Position).where(or_(Position.user_id == user.id, Position.id.in_(by_revision))).order_by(Position.id)
    )
    return [
        {
            "id": p.id, "round": p.round_id, "round_title": p.round.title, "forum": p.round.forum.slug,
            "code": p.round.code.slug, "version": p.round.version.number, "clause": p.clause_key,
            "participant": p.participant_key, "stakeholder_category": p.category.value,
            "organisation": p.organisation, "stance": p.stance.value, "serious_objection": p.serious_objection,
            "rationale": p.rationale, "comment_id": p.comment_id, "publish_with_name": p.publish,
            "revision": p.revision, "created_at": _time(p.created_at), "updated_at": _time(p.updated_at),
            "history": [
                {
                    "revision": h.revision, "stance": h.stance.value, "serious_objection": h.serious_objection,
                    "rationale": h.rationale, "comment_id": h.comment_id, "publish_with_name": h.publish,
                    "recorded_by_you": h.user_id == user.id, "created_at": _time(h.created_at),
                }
                for h in p.history
            ],
        }
        for p in positions
    ]  # fmt: skip


def _audit_events(session: Session, user: User) -> list[dict[str, Any]]:
    events = session.scalars(
        select(AuditEvent)
        .where(
            or_(
                AuditEvent.actor_id == user.id,
                (AuditEvent.object_type == "user") & (AuditEvent.object_id == str(user.id)),
                AuditEvent.object_type.in_(("membership", "working_group", "comment")),
            )
        )
        .order_by(AuditEvent.id)
    )
    own_comments = set(
        session.scalars(
            select(Comment.id).where(Comment.author_id == user.id).execution_options(**{INCLUDE_HIDDEN: True})
        )
    )
    rows = []
    for event in events:
        about = (
            event.actor_id == user.id
            or (event.object_type == "user" and event.object_id == str(user.id))
            or (event.detail or {}).get("user_id") == user.id
            or (event.object_type == "comment" and event.object_id is not None and int(event.object_id) in own_comments)
        )
        if about:
            rows.append(
                {
                    "at": _time(event.created_at), "actor": event.actor_label, "by_you": event.actor_id == user.id,
                    "action": event.action, "object_type": event.object_type, "object_id": event.object_id,
                    "detail": event.detail,
                }
            )  # fmt: skip
    return rows


# --- deleting an account ----------------------------------------------------------------------------


def delete_account(session: Session, actor: User | None, user: User, *, password: str | None = None) -> None:
    """Erase an account's personal data, keeping a tombstone and every contribution with its category.

    Erased: email, name, organisation (on the account, its comments and positions), Transparency Register
    id, language, password, working-group and forum memberships, notifications, mail waiting for the
    address, the name in audit entries the person made. Kept: comments and their history, positions and
    their history, each with the stakeholder category it was made under, attributed to "withdrawn
    participant"; the audit entries themselves.

    Raises:
        ValidationFailed: when a person deleting their own account gives a wrong password.
        Forbidden: unless the actor is the user, a site admin, or None (an operator's command).
        Conflict: when the account was already deleted.
    """
    if user.is_deleted:
        raise Conflict(_l("This account was already deleted."))
    if actor is not None and actor.id == user.id:
        if not check_password_hash(user.password_hash, password or ""):
            message = _l("The password is not correct.")
            raise ValidationFailed(message, field_errors={"password": message})
    elif actor is not None and not actor.is_admin:
        raise Forbidden(_l("Only site admins delete other people's accounts."))
    address = user.email
    session.execute(delete(Membership).where(Membership.user_id == user.id))
    session.execute(delete(ForumMember).where(ForumMember.user_id == user.id))
    session.execute(delete(Notification).where(Notification.user_id == user.id))
    session.execute(delete(IntakeAttempt).where(IntakeAttempt.author_id == user.id))
    session.execute(delete(OutboxMessage).where(OutboxMessage.recipient == address))
    # An unused invitation for the address goes; a used one loses the address.
    session.execute(delete(Invitation).where(Invitation.email == address, Invitation.used_at.is_(None)))
    session.execute(update(Invitation).where(Invitation.email == address).values(email=None))
    session.execute(
        update(Comment)
        .where(Comment.author_id == user.id)
        .values(author_organisation=None)
        .execution_options(synchronize_session=False)
    )
    # The participant key stays: it is what makes "one position per organisation" hold in later rounds.
    session.execute(
        update(Position)
        .where(Position.user_id == user.id)
        .values(organisation=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CommentReport)
        .where(CommentReport.reporter_id == user.id)
        .values(reporter_name=TOMBSTONE_NAME, reporter_email=None)
    )
    session.execute(update(AuditEvent).where(AuditEvent.actor_id == user.id).values(actor_label=_audit_label(user.id)))
    user.email = tombstone_email(user.id)
    user.display_name = TOMBSTONE_NAME
    user.organisation = None
    user.transparency_register_id = None
    user.locale = None
    user.password_hash = UNUSABLE_PASSWORD
    user.is_admin = False
    user.mail_opt_out = [kind.value for kind in MailKind]
    user.session_generation += 1  # every session of the account ends
    user.deleted_at = utcnow()
    session.flush()
    # The bulk updates above bypassed loaded objects: read them again when next used.
    session.expire_all()
    record_event(
        session, actor if actor is not None and actor.id != user.id else None, "account.deleted", "user", user.id,
        by="self" if actor is not None and actor.id == user.id else ("admin" if actor is not None else "operator"),
        category=user.category.value,
    )  # fmt: skip
