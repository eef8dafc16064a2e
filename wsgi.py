"""Entry point for gunicorn (`wsgi:app`); `socketio` is exported for the embedded server."""

from app import create_app
from app.extensions import socketio
from app.search.indexer import indexer

app = create_app()
# Under gunicorn each process indexes what is queued (PostgreSQL hands each row to one of them).
indexer.start_serving(app)

__all__ = ["app", "socketio"]
