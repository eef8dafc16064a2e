"""Entry point for gunicorn (`wsgi:app`); `socketio` is exported for the embedded server."""

from app import create_app
from app.extensions import socketio

app = create_app()

__all__ = ["app", "socketio"]
