"""Faults outside the request's control: an unreachable database or a full disk answers 503, not 500.

Nothing is acknowledged before its transaction commits (see app/db.py), so a write that meets one of these
faults has stored nothing and its client may retry; idempotency keys make the retry of a comment safe even
when the commit went through and only its answer was lost.
"""

from __future__ import annotations

import contextlib
import errno
import logging

from flask import Flask, Response, jsonify
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import ServiceUnavailable

from app.db import db
from app.errors import wants_json

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
_FALLBACK_MESSAGE = "The service is busy. Try again shortly."


def init_app(app: Flask) -> None:
    """Answer database outages, pool exhaustion and a full disk with 503 and Retry-After."""

    def unavailable(error: Exception) -> Response:
        log.warning("answering 503: %s", type(error).__name__, exc_info=error)
        try:
            db.session.rollback()
        except Exception:  # the connection is gone; the pool discards it
            log.debug("rollback after a database fault failed", exc_info=True)
        try:
            # The app's own 503 page or JSON, in the reader's language (no new message to translate). It may
            # itself need the database (the signed-in user, unread notifications): then the plain answer below.
            response = app.handle_http_exception(ServiceUnavailable())
            assert isinstance(response, Response)
        except Exception:
            log.debug("the 503 page could not be rendered", exc_info=True)
            response = _plain_unavailable()
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    app.register_error_handler(OperationalError, unavailable)
    app.register_error_handler(PoolTimeout, unavailable)

    @app.errorhandler(OSError)
    def disk_full(error: OSError) -> Response:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return unavailable(error)
        raise error


def _plain_unavailable() -> Response:
    # Deciding JSON or HTML must not fail the fallback: HTML then.
    with contextlib.suppress(Exception):
        if wants_json():
            return jsonify({"error": "Unavailable", "message": _FALLBACK_MESSAGE, "status": 503})
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Unavailable</title>"
        f"<h1>Unavailable</h1><p>{_FALLBACK_MESSAGE}</p></html>"
    )
    return Response(page, 503, mimetype="text/html")
