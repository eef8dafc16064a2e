"""Cross-cutting web concerns: security headers and template helpers."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_babel import format_datetime, get_locale
from flask_login import current_user
from markupsafe import Markup, escape

from app.accounts.models import CATEGORY_LABELS, ROLE_LABELS
from app.drafting.diffing import ops_to_html, word_diff
from app.policy import Action, can

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


@functools.lru_cache(maxsize=256)
def _toc_markup(content_sha256: str, language: str, toc: tuple[tuple[str, str, int], ...]) -> Markup:
    items = "".join(
        f'<li class="toc-level-{level}"><a href="#{escape(key)}" lang="{escape(language)}">{escape(title)}</a></li>'
        for key, title, level in toc
        if level > 1
    )
    return Markup(f"<ol>{items}</ol>")  # noqa: S704 - every part is escaped above


def toc_html(version: Any) -> Markup:
    """Return a version's table of contents as HTML, built once per version (versions never change)."""
    entries = tuple((entry["key"], entry["title"], entry["level"]) for entry in version.toc)
    return _toc_markup(version.content_sha256, version.code.language, entries)


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
    app.jinja_env.globals.update(word_diff=word_diff, ops_to_html=ops_to_html, toc_html=toc_html)

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
        return format_datetime(value, style) if value else ""

    @app.template_filter("iso")
    def iso(value: dt.datetime | None) -> str:
        return value.astimezone(dt.UTC).isoformat(timespec="seconds") if value else ""
