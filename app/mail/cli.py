"""`flask mail send [--loop]` and `flask mail status`."""

from __future__ import annotations

import time

import click
from flask import current_app
from sqlalchemy import func, select

from app.db import db
from app.mail.sender import MailSettings, run_once
from app.outbox.models import OutboxMessage

mail = click.Group("mail", help="Send the outbox by mail.")


@mail.command("send")
@click.option("--loop", is_flag=True, help="Keep sending until interrupted.")
@click.option("--interval", default=30.0, show_default=True, help="Seconds between rounds with --loop.")
def send(loop: bool, interval: float) -> None:
    """Send every queued message that is due; failed ones are retried later with exponential backoff."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if MailSettings.from_config(app.config) is None:
        raise click.ClickException("Mail is off: set MAIL_SMTP_HOST (and MAIL_FROM) to send the outbox.")
    while True:
        report = run_once(app)
        click.echo(
            f"{report.sent} sent, {report.retrying} to retry, {report.failed} failed, "
            f"{report.skipped} skipped, {report.purged} old messages deleted."
        )
        for error in report.errors:
            click.echo(f"  {error}", err=True)
        if not loop:
            return
        time.sleep(interval)


@mail.command("status")
def status() -> None:
    """Count the outbox's messages by status."""
    rows = db.session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status).order_by(OutboxMessage.status)
    ).all()
    for state, number in rows:
        click.echo(f"{state.value}: {number}")
    if not rows:
        click.echo("The outbox is empty.")
