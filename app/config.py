"""Settings from the environment, with embedded defaults that need nothing else running."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration: environment variables over defaults, then explicit overrides."""
    INSTANCE.mkdir(exist_ok=True)
    database_url = _env("DATABASE_URL", f"sqlite:///{INSTANCE / 'accord.sqlite3'}")
    if database_url and database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url.removeprefix("postgres://")
    if database_url and database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    config: dict[str, Any] = {
        "SECRET_KEY": _env("SECRET_KEY") or _dev_secret_key(),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SOCKETIO_MESSAGE_QUEUE": _env("SOCKETIO_MESSAGE_QUEUE"),
        "SEARCH_INDEX_DIR": _env("SEARCH_INDEX_DIR", str(INSTANCE / "search-index")),
        "SEARCH_BACKEND": _env("SEARCH_BACKEND", "auto"),
        # The 2 MB limit on Markdown is checked on the decoded text; URL-encoding can make one character
        # up to 6 bytes on the wire, so the request caps leave room for that.
        "MAX_CONTENT_LENGTH": 6 * 2 * 1024 * 1024 + 64 * 1024,
        "MAX_FORM_MEMORY_SIZE": 6 * 2 * 1024 * 1024 + 64 * 1024,
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": _env("DISPLAY_TIMEZONE", "Europe/Brussels"),
        "LANGUAGES": {"en": "English", "sv": "Svenska"},
        "RATELIMIT_STORAGE_URI": _env("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT", "10 per minute"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _env("SESSION_COOKIE_SECURE", "0") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,
        # Comment submissions handled at once; beyond that, callers get 503 with Retry-After.
        "INTAKE_CONCURRENCY": int(_env("INTAKE_CONCURRENCY", "32") or 32),
        "PUBLIC_BASE_URL": _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),
        # Mail (app/mail): off unless MAIL_SMTP_HOST is set; the outbox then goes out over SMTP.
        "MAIL_SMTP_HOST": _env("MAIL_SMTP_HOST"),
        "MAIL_SMTP_PORT": int(_env("MAIL_SMTP_PORT", "587") or 587),
        "MAIL_SMTP_USER": _env("MAIL_SMTP_USER"),
        "MAIL_SMTP_PASSWORD": _env("MAIL_SMTP_PASSWORD"),
        "MAIL_SMTP_STARTTLS": _env("MAIL_SMTP_STARTTLS", "1") == "1",
        "MAIL_FROM": _env("MAIL_FROM"),
        "MAIL_SENDER_THREAD": _env("MAIL_SENDER_THREAD", "1") == "1",
        "MAIL_MAX_ATTEMPTS": int(_env("MAIL_MAX_ATTEMPTS", "8") or 8),
        "MAIL_RETRY_SECONDS": int(_env("MAIL_RETRY_SECONDS", "60") or 60),
        "MAIL_MAX_AGE_HOURS": int(_env("MAIL_MAX_AGE_HOURS", "72") or 72),
        "MAIL_KEEP_DAYS": int(_env("MAIL_KEEP_DAYS", "30") or 30),
    }
    config.update(overrides or {})
    return config


def _dev_secret_key() -> str:
    # A random key kept in instance/ so sessions survive restarts of the embedded server.
    path = INSTANCE / "secret_key"
    if not path.exists():
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return path.read_text().strip()
