"""Accord: draft, debate and agree a code of practice in the open."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import ops
from app.config import ROOT, load_config
from app.db import db
from app.errors import register_error_handlers
from app.extensions import babel, csrf, limiter, login_manager, migrate, select_locale, socketio


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the application from the environment, with `test_config` applied last."""
    app = Flask(__name__, static_folder="../static", static_url_path="/static")
    app.config.from_mapping(load_config(test_config))
    if app.config.get("TRUST_PROXY"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(app.config.get("MIGRATIONS_DIR", ROOT / "migrations")), render_as_batch=True
    )
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    _init_socketio(app)
    _configure_login()
    register_error_handlers(app)
    ops.init_app(app)

    from app import mail, privacy, web
    from app.about.views import bp as about_bp
    from app.accounts.views import bp as accounts_bp
    from app.api.views import bp as api_bp
    from app.audit.views import bp as audit_bp
    from app.comments import intake
    from app.comments.views import bp as comments_bp
    from app.consensus import jobs as round_jobs
    from app.consensus.views import bp as consensus_bp
    from app.drafting.views import bp as drafting_bp
    from app.search import service as search_service
    from app.search.views import bp as search_bp

    for blueprint in (accounts_bp, drafting_bp, comments_bp, consensus_bp, search_bp, audit_bp, about_bp, api_bp):
        app.register_blueprint(blueprint)
    intake.configure(int(app.config["INTAKE_CONCURRENCY"]))
    search_service.init_app(app)
    csrf.exempt(api_bp)
    web.init_app(app)
    mail.init_app(app)
    round_jobs.init_app(app)
    privacy.init_app(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def _init_socketio(app: Flask) -> None:
    from app.collab.engine import MAX_UPDATE_BYTES
    from app.collab.events import CollabNamespace
    from app.collab.hub import hub
    from app.collab.transport import (
        EventSessionInterface,
        async_mode,
        client_manager,
        defer_acknowledgements,
        serialise_direct_sends,
    )

    if not any(isinstance(handler, CollabNamespace) for handler in socketio.namespace_handlers):
        socketio.on_namespace(CollabNamespace("/collab"))
    socketio.init_app(
        app,
        async_mode=async_mode(),
        client_manager=client_manager(app.config["SOCKETIO_MESSAGE_QUEUE"]),
        # An update larger than the cap is refused by the transport before any handler sees it.
        max_http_buffer_size=MAX_UPDATE_BYTES + 64 * 1024,
        cors_allowed_origins=app.config.get("SOCKETIO_CORS_ORIGINS"),
        manage_session=True,
        # Handlers run in each connection's reader thread instead of a new thread per event: none of them
        # blocks (an update is acknowledged by the writer thread once committed, see transport.py), and
        # each connection's events are then handled in the order they were sent.
        async_handlers=False,
    )
    serialise_direct_sends(socketio.server)
    defer_acknowledgements(socketio.server)
    app.session_interface = EventSessionInterface()
    hub.init_app(app, socketio.emit)


def _configure_login() -> None:
    from sqlalchemy import bindparam, select
    from sqlalchemy.orm import joinedload

    from app.accounts.models import User
    from app.db import READS_NO_COMMENTS

    # Built once: a statement object keeps its cache key, which `session.get` with options computed anew
    # for every request.
    user_with_memberships = (
        select(User)
        .where(User.id == bindparam("user_id"))
        .options(joinedload(User.memberships))
        .execution_options(**{READS_NO_COMMENTS: True})
    )

    login_manager.login_view = "accounts.login"
    # "basic" marks a session from a new address non-fresh instead of ending it: people on mobile networks
    # change address often, and sessions are rotated at login and ended by a password change anyway.
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        # The id carries the session generation, so a password change ends every older session.
        parsed = User.parse_login_id(user_id)
        if parsed is None:
            return None
        # With the memberships, which nearly every request's permission checks read: one statement, not two.
        user = db.session.scalars(user_with_memberships, {"user_id": parsed[0]}).unique().one_or_none()
        if user is None or user.session_generation != parsed[1]:
            return None
        return user
