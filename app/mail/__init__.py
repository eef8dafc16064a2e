"""Mail: an SMTP sender for the outbox, with retries and backoff; unsubscribe links that need no login."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the unsubscribe pages, the `flask mail` commands and the background sender."""
    from app.mail import sender
    from app.mail.cli import mail
    from app.mail.views import bp

    app.register_blueprint(bp)
    app.cli.add_command(mail)
    sender.init_app(app)
