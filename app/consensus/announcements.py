"""Telling people that a round of positions has opened or closed.

Rounds open and close by the clock, not by anyone's action, so a periodic job (`announce_due_rounds`, run by
the scheduler in each server process or by `flask rounds announce` from cron) looks for rounds that have
passed a boundary and not been announced. Each announcement claims its round with a guarded UPDATE in the
same transaction as the notifications: several processes may run the job at once, and a round is announced
once, or (when the transaction fails) not at all and again on the next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import click
from flask import Flask
from sqlalchemy import func, select, union, update
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.comments.models import Comment
from app.consensus.models import ForumMember, Position, Round
from app.db import db, utcnow
from app.notices import notify
from app.periodic import PeriodicWorker
from app.policy import Action, can, may_respond, may_see_results


@dataclass
class AnnouncementReport:
    opened: int = 0
    closed: int = 0
    notified: int = 0


def announce_due_rounds(session: Session, now: dt.datetime | None = None) -> AnnouncementReport:
    """Announce every round that has opened or closed since the last run, committing each on its own."""
    now = now or utcnow()
    report = AnnouncementReport()
    due_openings = select(Round.id).where(Round.opening_announced_at.is_(None), Round.opens_at <= now)
    for round_id in session.scalars(due_openings.order_by(Round.id)).all():
        if _claim(session, round_id, Round.opening_announced_at, now):
            report.opened += 1
            report.notified += _announce_opening(session, session.get_one(Round, round_id), now)
        session.commit()
    due_closings = select(Round.id).where(Round.closing_announced_at.is_(None), Round.closes_at <= now)
    for round_id in session.scalars(due_closings.order_by(Round.id)).all():
        if _claim(session, round_id, Round.closing_announced_at, now):
            report.closed += 1
            report.notified += _announce_closing(session, session.get_one(Round, round_id), now)
        session.commit()
    return report


def _claim(session: Session, round_id: int, column: object, now: dt.datetime) -> bool:
    """Mark the boundary announced unless another process did first; True when this transaction owns it."""
    claimed = session.execute(
        update(Round)
        .where(Round.id == round_id, column.is_(None))  # type: ignore[attr-defined]
        .values({column: now})
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _announce_opening(session: Session, round_: Round, now: dt.datetime) -> int:
    if round_.has_closed(now):
        return 0  # created after the fact, or the job did not run for the whole round: closing says it all
    facts = _facts(round_) | {"closes_at": round_.closes_at.isoformat()}
    sent = 0
    for user in _people(session, round_, with_past_participants=True):
        if may_respond(user, round_) and can(user, Action.VIEW_VERSION, round_.version):
            notify(session, user, "round_opened", None, f"/rounds/{round_.id}/positions", params=facts)
            sent += 1
    return sent


def _announce_closing(session: Session, round_: Round, now: dt.datetime) -> int:
    positions = session.scalar(select(func.count(Position.id)).where(Position.round_id == round_.id)) or 0
    facts = _facts(round_) | {"positions": positions}
    sent = 0
    for user in _people(session, round_, with_past_participants=False):
        if may_see_results(user, round_, now):
            notify(session, user, "round_closed", None, f"/rounds/{round_.id}", params=facts)
            sent += 1
    return sent


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
    people = select(User).where(User.id.in_(select(ids.c[0])), User.deleted_at.is_(None)).order_by(User.id)
    return session.scalars(people).all()


# --- running it ------------------------------------------------------------------------------------


def run_once(app: Flask) -> AnnouncementReport:
    """Announce what is due, in its own application context and session."""
    with app.app_context():
        try:
            return announce_due_rounds(db.session)
        finally:
            db.session.remove()


announcer = PeriodicWorker("round-announcer", 60.0, run_once)


def init_app(app: Flask) -> None:
    """Add `flask rounds announce`, and announce from each server process unless ROUND_ANNOUNCER_THREAD is off.

    Tests run the job themselves (announce_due_rounds), so a testing app never starts the thread.
    """
    app.cli.add_command(rounds_cli)
    if app.config.get("ROUND_ANNOUNCER_THREAD", True) and not app.testing:
        announcer.interval = float(app.config.get("ROUND_ANNOUNCER_SECONDS", 60))
        announcer.start_with_first_request(app)


rounds_cli = click.Group("rounds", help="Rounds of positions.")


@rounds_cli.command("announce")
def announce_command() -> None:
    """Tell people about rounds that opened or closed since the last announcement (for cron)."""
    report = announce_due_rounds(db.session)
    click.echo(f"{report.opened} round(s) opened, {report.closed} closed; {report.notified} people notified.")
