"""Append audit events and publication-log entries; verify the chain."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.audit.chain import GENESIS_HASH, ChainLink, ChainReport, entry_hash, verify_links
from app.audit.models import AuditEvent, PublicationLogEntry

if TYPE_CHECKING:
    from app.accounts.models import User
    from app.drafting.models import Version


def record_event(
    session: Session,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: object = None,
    **detail: Any,
) -> AuditEvent:
    """Append an audit event in the caller's transaction."""
    event = AuditEvent(**event_row(actor, action, object_type, object_id, **detail))
    session.add(event)
    return event


def event_row(
    actor: User | None, action: str, object_type: str, object_id: object = None, **detail: Any
) -> dict[str, Any]:
    """The columns of an audit event, for `record_events`."""
    return {
        "actor_id": actor.id if actor else None,
        "actor_label": f"{actor.display_name} <{actor.email}>" if actor else "system",
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "detail": detail,
    }


def record_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append many audit events (`event_row`s) in one statement, in the caller's transaction.

    The unit of work would insert them one row at a time on SQLite, since it wants each new id back.
    """
    if rows:
        session.execute(insert(AuditEvent), rows)


def append_publication(session: Session, version: Version, published_at: dt.datetime) -> PublicationLogEntry:
    """Append a version to the publication log, chained to the last entry.

    Two concurrent appends pick the same sequence number; the unique constraint makes one fail, and the
    caller retries it on the new head rather than forking the chain.
    """
    last = session.scalars(select(PublicationLogEntry).order_by(PublicationLogEntry.seq.desc()).limit(1)).first()
    seq = (last.seq + 1) if last else 1
    previous = last.entry_hash if last else GENESIS_HASH
    entry = PublicationLogEntry(
        seq=seq,
        version_id=version.id,
        code_slug=version.code.slug,
        version_number=version.number,
        content_sha256=version.content_sha256,
        previous_hash=previous,
        published_at=published_at,
        entry_hash=entry_hash(
            seq=seq,
            code_slug=version.code.slug,
            version_number=version.number,
            content_sha256=version.content_sha256,
            published_at=published_at,
            previous_hash=previous,
        ),
    )
    session.add(entry)
    session.flush()
    return entry


def publication_log(session: Session) -> list[PublicationLogEntry]:
    """Return the whole publication log in order."""
    return list(session.scalars(select(PublicationLogEntry).order_by(PublicationLogEntry.seq)))


def verify_publication_log(session: Session) -> ChainReport:
    """Recompute every hash in the publication log and compare it with the versions stored now."""
    from app.drafting.models import Code, Version

    entries = publication_log(session)
    rows = session.execute(
        select(Code.slug, Version.number, Version.markdown).join(Version.code).where(Version.published_at.is_not(None))
    )
    contents = {(slug, number): markdown for slug, number, markdown in rows}
    links = [
        ChainLink(e.seq, e.code_slug, e.version_number, e.content_sha256, e.published_at, e.previous_hash, e.entry_hash)
        for e in entries
    ]
    return verify_links(links, contents)


def count_events(session: Session, action: str | None = None) -> int:
    """Count audit events, optionally of one action."""
    query = select(func.count(AuditEvent.id))
    if action:
        query = query.where(AuditEvent.action == action)
    return session.scalar(query) or 0
