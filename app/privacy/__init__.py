"""Data protection: the privacy notice, a person's copy of their data, account deletion, reports of comments
falsely submitted in someone's name."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the privacy pages and the `flask privacy` commands."""
    from app.privacy.cli import privacy
    from app.privacy.views import bp

    app.register_blueprint(bp)
    app.cli.add_command(privacy)
