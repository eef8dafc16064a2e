"""Idle and absolute limits on a login session, checked on the server for every request.

The session cookie lives as long as the browser window, so the limits are kept inside the signed session:
when the user logged in and when they were last seen. A session past either limit is logged out before
the request is handled; the request goes on as an anonymous one (pages that need a login send the person
to the login form, as for any signed-out visitor).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request, session
from flask_babel import gettext as _
from flask_login import current_user, logout_user, user_logged_in
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)

LOGIN_AT = "_accord_login_at"
SEEN_AT = "_accord_seen_at"
# Writing "last seen" on every request would re-sign the cookie each time; a minute's precision is plenty.
SEEN_PRECISION_SECONDS = 60


def _stamp_login(sender: Any, user: Any, **extra: Any) -> None:
    now = int(time.time())
    session[LOGIN_AT] = now
    session[SEEN_AT] = now


def expired(state: dict[str, Any], now: float, idle: dt.timedelta, absolute: dt.timedelta) -> str | None:
    """Say why a session with these stamps has ended ("idle" or "absolute"), or None while it is valid."""
    login_at, seen_at = state.get(LOGIN_AT), state.get(SEEN_AT)
    if absolute and isinstance(login_at, int) and now - login_at > absolute.total_seconds():
        return "absolute"
    if idle and isinstance(seen_at, int) and now - seen_at > idle.total_seconds():
        return "idle"
    return None


def seconds_left(state: dict[str, Any], now: float, idle: dt.timedelta, absolute: dt.timedelta) -> dict[str, int]:
    """How many seconds the session has before each limit ends it (only the limits that are set)."""
    left: dict[str, int] = {}
    login_at, seen_at = state.get(LOGIN_AT), state.get(SEEN_AT)
    if idle and isinstance(seen_at, int):
        left["idle"] = max(0, int(seen_at + idle.total_seconds() - now))
    if absolute and isinstance(login_at, int):
        left["absolute"] = max(0, int(login_at + absolute.total_seconds() - now))
    return left


def session_time_left() -> dict[str, int]:
    """The current login session's seconds left per limit, for the page's time-out warning."""
    config = current_app.config
    return seconds_left(session, time.time(), config["SESSION_IDLE_TIMEOUT"], config["SESSION_ABSOLUTE_TIMEOUT"])


bp = Blueprint("sessions", __name__)


def _ended() -> tuple[Response, int]:
    return jsonify(error=_("Your session has ended. Log in again to go on.")), 401


@bp.get("/session/status")
def status() -> tuple[Response, int] | Response:
    """How long the session has left, without counting this question as activity.

    Another tab, or the co-editor's preview, may have kept the session alive since this page was loaded;
    the time-out warning asks here before it warns.
    """
    if not current_user.is_authenticated:
        return _ended()
    return jsonify(session_time_left())


@bp.post("/session/extend")
def extend() -> tuple[Response, int] | Response:
    """Count the person as active now (the warning's "Stay logged in"); say how long the session has left.

    The idle limit starts again; the absolute limit cannot be extended, and the answer says how near it is.
    """
    if not current_user.is_authenticated:
        return _ended()
    session[SEEN_AT] = int(time.time())
    return jsonify(session_time_left())


def guard_socket_connect(namespace: Any) -> None:
    """Refuse a Socket.IO connection whose login session is past its limits.

    Socket.IO's handshake does not run the app's before-request functions, so the check above never sees it.
    """
    if getattr(namespace, "_accord_session_guard", False):
        return
    connect = namespace.on_connect

    def on_connect(auth: Any = None) -> Any:
        config = current_app.config
        if "_user_id" in session and expired(
            session, time.time(), config["SESSION_IDLE_TIMEOUT"], config["SESSION_ABSOLUTE_TIMEOUT"]
        ):
            log.info("socket refused: the session is past its limits")
            return False
        return connect(auth)

    namespace.on_connect = on_connect
    namespace._accord_session_guard = True


def init_app(app: Flask) -> None:
    """Stamp logins, end sessions that were idle too long or are older than the absolute limit, and let pages
    extend the idle limit (POST /session/extend)."""
    user_logged_in.connect(_stamp_login, app)
    app.register_blueprint(bp)
    app.jinja_env.globals["session_time_left"] = session_time_left

    @app.before_request
    def enforce_session_limits() -> None:
        if "_user_id" not in session:
            return
        now = int(time.time())
        if LOGIN_AT not in session:
            # A session from before these limits existed: its clock starts now.
            session[LOGIN_AT] = now
            session[SEEN_AT] = now
            return
        reason = expired(
            session, now, current_app.config["SESSION_IDLE_TIMEOUT"], current_app.config["SESSION_ABSOLUTE_TIMEOUT"]
        )
        if reason is not None:
            log.info("session ended by the %s timeout", reason, extra={"reason": reason})
            logout_user()
            for key in (LOGIN_AT, SEEN_AT):
                session.pop(key, None)
            return
        if request.endpoint != "sessions.status" and now - int(session.get(SEEN_AT, 0)) >= SEEN_PRECISION_SECONDS:
            session[SEEN_AT] = now
