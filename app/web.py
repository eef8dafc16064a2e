"""Cross-cutting web concerns: security headers and template helpers."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, request, url_for
from flask_babel import format_datetime, get_locale, get_timezone
from flask_login import current_user

from app.accounts.models import CATEGORY_LABELS, ROLE_LABELS
from app.drafting.diffing import ops_to_html, word_diff
from app.policy import Action, can


def asset_url(filename: str) -> str:
    """The URL of a static file with its content's fingerprint, so a browser never runs a stale bundle.

    The proxy caches static files for days (deploy/nginx.conf); an editor bundle from before a protocol
    change would keep talking to the new server and silently miss others' edits.
    """
    path = Path(current_app.static_folder or "static") / filename
    try:
        stat = path.stat()
    except OSError:
        return url_for("static", filename=filename)
    return url_for("static", filename=filename, v=_fingerprint(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _fingerprint(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # The editor (CodeMirror) injects <style> elements, which carry this request's nonce; style attributes
        # (remote cursor colours, table alignment) cannot carry a nonce and are harmless without scripts.
        "style-src 'self' 'nonce-{nonce}'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data: https:",
        "connect-src 'self' ws: wss:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@functools.lru_cache(maxsize=4096)
def _formatted_datetime(value: dt.datetime, style: str, locale: str, tzinfo: Any) -> str:
    # Babel takes tens of microseconds per date and a comment margin shows one per comment. The output
    # depends only on the arguments: `format_datetime` reads this request's locale and time zone, which
    # are passed in to key the cache.
    return format_datetime(value, style)


def csp_nonce() -> str:
    """Return this request's nonce for the Content-Security-Policy, made on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def init_app(app: Flask) -> None:
    """Register headers and template globals."""

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY.format(nonce=csp_nonce()))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    # Globals rather than context: imported macros see globals but not the request context.
    app.jinja_env.globals.update(word_diff=word_diff, ops_to_html=ops_to_html, asset_url=asset_url)

    @app.context_processor
    def template_globals() -> dict[str, Any]:
        from app.comments.service import unread_count
        from app.db import db

        unread = unread_count(db.session, current_user) if current_user.is_authenticated else 0
        return {
            "csp_nonce": csp_nonce,
            "unread_notifications": unread,
            "can": lambda action, obj=None: can(current_user, Action(action), obj),
            "current_locale": str(get_locale() or "en"),
            "languages": current_app.config["LANGUAGES"],
            "category_labels": CATEGORY_LABELS,
            "role_labels": ROLE_LABELS,
        }

    @app.template_filter("when")
    def when(value: dt.datetime | None, style: str = "d MMM y, HH:mm z") -> str:
        return _formatted_datetime(value, style, str(get_locale()), get_timezone()) if value else ""

    @app.template_filter("iso")
    def iso(value: dt.datetime | None) -> str:
        return value.astimezone(dt.UTC).isoformat(timespec="seconds") if value else ""
