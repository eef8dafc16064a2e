"""Telling people that a round of positions has opened or closed.

Rounds open and close by the clock, not by anyone's action, so a periodic job (`announce_due_rounds`, run by a
thread in each server process or by `flask rounds announce` from cron, see `app/consensus/jobs.py`) looks for
rounds that have passed a boundary and not been announced. Each announcement claims its round with a guarded
UPDATE in the same transaction as the notifications: several processes may run the job at once, and a round is announced
once, or (when the transaction fails) not at all and again on the next run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, union, update
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from app.accounts.models import User
from app.comments.models import Comment
from app.consensus.models import ForumMember, Position, Round
from app.db import utcnow
from app.notices import notify
from app.policy import Action, can, may_respond, may_see_results

log = logging.getLogger(__name__)


@dataclass
class AnnouncementReport:
    opened: int = 0
    closed: int = 0
    notified: int = 0
    failed: int = 0  # rounds whose announcement failed this time; they are tried again on the next run


@dataclass(frozen=True)
class _Boundary:
    kind: str  # the notification's kind
    at: InstrumentedAttribute[dt.datetime]  # when the round passes it
    announced: InstrumentedAttribute[dt.datetime | None]  # when it was announced


OPENING = _Boundary("round_opened", Round.opens_at, Round.opening_announced_at)
CLOSING = _Boundary("round_closed", Round.closes_at, Round.closing_announced_at)


def announce_due_rounds(session: Session, now: dt.datetime | None = None) -> AnnouncementReport:
    """Announce every round that has opened or closed since the last run, committing each on its own.

    A round whose announcement fails is logged and left for the next run; the others go ahead.
    """
    now = now or utcnow()
    report = AnnouncementReport()
    for boundary in (OPENING, CLOSING):
        due = select(Round.id).where(boundary.announced.is_(None), boundary.at <= now).order_by(Round.id)
        for round_id in session.scalars(due).all():
            try:
                sent = _announce(session, session.get_one(Round, round_id), boundary, now)
                session.commit()
            except Exception:
                session.rollback()
                log.exception("announcing round %s failed; the next run tries again", round_id)
                report.failed += 1
                continue
            if sent is not None:
                report.opened += boundary is OPENING
                report.closed += boundary is CLOSING
                report.notified += sent
    return report


def _announce(session: Session, round_: Round, boundary: _Boundary, now: dt.datetime) -> int | None:
    """Tell the round's people it passed `boundary`; None when there was nothing to tell or another did.

    The recipients are worked out before the claim: on SQLite the claim takes the database's write lock,
    which comment intake waits for, so the transaction holds it only while it writes.
    """
    if boundary is OPENING and round_.has_closed(now):
        recipients: list[User] = []  # made after the fact, or the job did not run for the whole round
    elif boundary is OPENING:
        recipients = [
            user for user in _people(session, round_, with_past_participants=True)
            if may_respond(user, round_) and can(user, Action.VIEW_VERSION, round_.version)
        ]  # fmt: skip
    else:
        recipients = [
            user for user in _people(session, round_, with_past_participants=False)
            if may_see_results(user, round_, now)
        ]  # fmt: skip
    facts = _facts(round_)
    if boundary is OPENING:
        facts["closes_at"] = round_.closes_at.isoformat()
        url = f"/rounds/{round_.id}/positions"
    else:
        facts["positions"] = session.scalar(select(func.count(Position.id)).where(Position.round_id == round_.id))
        url = f"/rounds/{round_.id}"
    claimed = session.execute(
        update(Round)
        .where(Round.id == round_.id, boundary.announced.is_(None))
        .values({boundary.announced: now})
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    for user in recipients:
        notify(session, user, boundary.kind, None, url, params=facts)
    return None if boundary is OPENING and round_.has_closed(now) else len(recipients)


def _facts(round_: Round) -> dict[str, object]:
    return {
        "round": round_.title, "forum": round_.forum.name,
        "code": round_.code.title, "version": round_.version.name,
    }  # fmt: skip


def _people(session: Session, round_: Round, *, with_past_participants: bool) -> Iterable[User]:
    """The forum's members and those who answered this round; at an opening of a round anyone may answer,
    also those who answered the forum's earlier rounds or commented on the code (never the whole register)."""
    sources = [
        select(ForumMember.user_id).where(ForumMember.forum_id == round_.forum_id),
        select(Position.user_id).where(Position.round_id == round_.id),
    ]
    if with_past_participants and round_.forum.is_open:
        earlier = select(Round.id).where(Round.forum_id == round_.forum_id, Round.id != round_.id)
        sources += [
            select(Position.user_id).where(Position.round_id.in_(earlier)),
            select(Comment.author_id).where(Comment.code_id == round_.code_id),
        ]
    ids = union(*sources).subquery()
    people = (
        select(User)
        .where(User.id.in_(select(ids.c[0])), User.deleted_at.is_(None))
        .options(selectinload(User.memberships))  # what `can` reads for each person
        .order_by(User.id)
    )
    return session.scalars(people).all()
