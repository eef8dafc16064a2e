"""Running the round announcements: a thread in each server process, and `flask rounds announce` for cron."""

from __future__ import annotations

import click
from flask import Flask

from app.consensus.announcements import AnnouncementReport, announce_due_rounds
from app.db import db
from app.periodic import PeriodicWorker


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
