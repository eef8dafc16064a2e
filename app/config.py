"""Settings from the environment, with embedded defaults that need nothing else running.

`load_config` reads and validates every setting. In production (`ACCORD_ENV=production`) it refuses to start
without a real `SECRET_KEY` and an explicit `DATABASE_URL`; any wrong setting raises `ConfigError`, whose
message is one line naming the setting, so an operator sees what to fix instead of a stack trace.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"

ENVIRONMENTS = ("development", "production")
LOG_FORMATS = ("json", "text")
MIN_SECRET_KEY_LENGTH = 32
MIN_METRICS_TOKEN_LENGTH = 16
# Values people paste from examples and forget to replace.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "change_me", "secret", "secret-key", "dev", "development", "test", "test-secret"}
)
REDIS_SCHEMES = ("redis", "rediss", "unix")
LIMITER_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")


class ConfigError(click.ClickException):
    """A setting is missing or wrong; the message names it, on one line.

    A ClickException, so that `flask` commands print it as one `Error: …` line (click shows it and exits
    with status 2) instead of a traceback; wsgi.py and deploy/gunicorn.conf.py print it themselves.
    """

    exit_code = 2


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


class _Reader:
    """Reads settings from the environment and collects every problem, so one line can name them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        return _env(name, default)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = (_env(name, default) or default).strip().lower()
        if value not in choices:
            self.problems.append(f"{name}={value!r} is not one of {', '.join(choices)}")
            return default
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = _env(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a whole number")
            return default
        if value < minimum:
            self.problems.append(f"{name}={value} must be at least {minimum}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = _env(name)
        if raw is None:
            return default
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if raw.strip().lower() in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name}={raw!r} is not a yes/no value (use 1 or 0)")
        return default

    def url(self, name: str, value: str | None, schemes: tuple[str, ...]) -> str | None:
        if value is None:
            return None
        scheme = urlsplit(value).scheme
        if scheme not in schemes:
            self.problems.append(f"{name} must start with {' or '.join(s + '://' for s in schemes)}")
            return None
        return value


def _database_url(raw: str) -> str:
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw.removeprefix("postgres://")
    if raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw.removeprefix("postgresql://")
    return raw


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration: environment variables over defaults, then explicit overrides.

    Raises:
        ConfigError: when a setting is missing or wrong (all of them named in one line).
    """
    INSTANCE.mkdir(exist_ok=True)
    overrides = overrides or {}
    read = _Reader()
    environment = read.choice("ACCORD_ENV", ENVIRONMENTS, "development")
    production = environment == "production"

    explicit_database = _env("DATABASE_URL")
    database_url = _database_url(explicit_database or f"sqlite:///{INSTANCE / 'accord.sqlite3'}")
    if explicit_database and urlsplit(database_url).scheme not in ("sqlite", "postgresql+psycopg"):
        read.problems.append("DATABASE_URL must start with sqlite:/// or postgresql://")

    # One Redis URL can serve the Socket.IO queue and the rate limits; each has its own setting to override it.
    redis_url = read.url("REDIS_URL", _env("REDIS_URL"), REDIS_SCHEMES)
    message_queue = read.url("SOCKETIO_MESSAGE_QUEUE", _env("SOCKETIO_MESSAGE_QUEUE", redis_url), REDIS_SCHEMES)
    limiter_uri = read.url(
        "RATELIMIT_STORAGE_URI", _env("RATELIMIT_STORAGE_URI", redis_url or "memory://"), LIMITER_SCHEMES
    )
    limiter_uri = limiter_uri or "memory://"
    shared_limits = not limiter_uri.startswith("memory")

    log_level = (_env("LOG_LEVEL", "INFO") or "INFO").upper()
    if not isinstance(logging.getLevelName(log_level), int):
        read.problems.append(f"LOG_LEVEL={log_level!r} is not a logging level (DEBUG, INFO, WARNING, ERROR)")
        log_level = "INFO"

    secure_cookies = read.flag("SESSION_COOKIE_SECURE", production)
    public_base_url = read.url("PUBLIC_BASE_URL", _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000"), ("http", "https"))

    config: dict[str, Any] = {
        "ACCORD_ENV": environment,
        "SECRET_KEY": _env("SECRET_KEY"),
        "DATABASE_URL_EXPLICIT": explicit_database is not None,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "SOCKETIO_MESSAGE_QUEUE": message_queue,
        "SEARCH_INDEX_DIR": _env("SEARCH_INDEX_DIR", str(INSTANCE / "search-index")),
        "SEARCH_BACKEND": read.choice("SEARCH_BACKEND", ("auto", "whoosh", "postgresql"), "auto"),
        "SEARCH_INDEXER_THREAD": read.flag("SEARCH_INDEXER_THREAD", True),
        # Under gunicorn (deploy/gunicorn.conf.py): one `flask search worker` beside the server, which then
        # leaves indexing to it.
        "SEARCH_WORKER_PROCESS": read.flag("SEARCH_WORKER_PROCESS", True),
        # The 2 MB limit on Markdown is checked on the decoded text; URL-encoding can make one character
        # up to 6 bytes on the wire, so the request caps leave room for that.
        "MAX_CONTENT_LENGTH": 6 * 2 * 1024 * 1024 + 64 * 1024,
        "MAX_FORM_MEMORY_SIZE": 6 * 2 * 1024 * 1024 + 64 * 1024,
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": _env("DISPLAY_TIMEZONE", "Europe/Brussels"),
        "LANGUAGES": {"en": "English", "sv": "Svenska"},
        "RATELIMIT_STORAGE_URI": limiter_uri,
        # A Redis outage must not turn every login into an error: each process then limits on its own.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": shared_limits,
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1} if shared_limits else {},
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT", "10 per minute"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "PREFERRED_URL_SCHEME": "https" if secure_cookies else "http",
        # Server-side limits on a login session, enforced by app/ops/sessions.py (0 turns one off).
        "SESSION_IDLE_TIMEOUT": dt.timedelta(minutes=read.integer("SESSION_IDLE_MINUTES", 120)),
        "SESSION_ABSOLUTE_TIMEOUT": dt.timedelta(hours=read.integer("SESSION_MAX_HOURS", 12)),
        # Number of reverse proxies in front (their X-Forwarded-* headers are trusted): 1 behind nginx.
        "TRUST_PROXY": read.integer("TRUST_PROXY", 0),
        "WTF_CSRF_TIME_LIMIT": None,
        # Comment submissions handled at once; beyond that, callers get 503 with Retry-After.
        "INTAKE_CONCURRENCY": read.integer("INTAKE_CONCURRENCY", 32, minimum=1),
        "PUBLIC_BASE_URL": public_base_url or "http://127.0.0.1:5000",
        "LOG_LEVEL": log_level,
        "LOG_FORMAT": read.choice("LOG_FORMAT", LOG_FORMATS, "json" if production else "text"),
        "METRICS_TOKEN": _env("METRICS_TOKEN"),
        # Mail (app/mail): off unless MAIL_SMTP_HOST is set; the outbox then goes out over SMTP.
        "MAIL_SMTP_HOST": _env("MAIL_SMTP_HOST"),
        "MAIL_SMTP_PORT": read.integer("MAIL_SMTP_PORT", 587, minimum=1),
        "MAIL_SMTP_USER": _env("MAIL_SMTP_USER"),
        "MAIL_SMTP_PASSWORD": _env("MAIL_SMTP_PASSWORD"),
        "MAIL_SMTP_STARTTLS": read.flag("MAIL_SMTP_STARTTLS", True),
        "MAIL_FROM": _env("MAIL_FROM"),
        "MAIL_SENDER_THREAD": read.flag("MAIL_SENDER_THREAD", True),
        # Rounds of positions (app/consensus/announcements.py): who is told when a round opens and closes.
        "ROUND_ANNOUNCER_THREAD": read.flag("ROUND_ANNOUNCER_THREAD", True),
        "ROUND_ANNOUNCER_SECONDS": read.integer("ROUND_ANNOUNCER_SECONDS", 60, minimum=1),
        "MAIL_MAX_ATTEMPTS": read.integer("MAIL_MAX_ATTEMPTS", 8, minimum=1),
        "MAIL_RETRY_SECONDS": read.integer("MAIL_RETRY_SECONDS", 60, minimum=1),
        "MAIL_MAX_AGE_HOURS": read.integer("MAIL_MAX_AGE_HOURS", 72, minimum=1),
        "MAIL_KEEP_DAYS": read.integer("MAIL_KEEP_DAYS", 30, minimum=1),
    }
    config.update(overrides)
    if "SQLALCHEMY_DATABASE_URI" in overrides:
        config["DATABASE_URL_EXPLICIT"] = True
    # A ping before each checkout finds connections a database server dropped (a restart, an idle timeout);
    # a SQLite file cannot drop one, and the ping is a statement on every request.
    if "SQLALCHEMY_ENGINE_OPTIONS" not in config:
        on_sqlite = str(config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite")
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {} if on_sqlite else {"pool_pre_ping": True}
    read.problems.extend(_production_problems(config) if config["ACCORD_ENV"] == "production" else [])
    token = config.get("METRICS_TOKEN")
    if token and len(token) < MIN_METRICS_TOKEN_LENGTH:
        read.problems.append(f"METRICS_TOKEN is too short: use at least {MIN_METRICS_TOKEN_LENGTH} random characters")
    if config.get("MAIL_SMTP_HOST") and not config.get("MAIL_FROM"):
        read.problems.append("MAIL_FROM is not set (MAIL_SMTP_HOST turns mail on and needs a sender address)")
    if read.problems:
        raise ConfigError("Accord cannot start: " + "; ".join(read.problems))
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _dev_secret_key()
    return config


def _production_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    key = config.get("SECRET_KEY")
    generate = 'python -c "import secrets; print(secrets.token_hex(32))"'
    if not key:
        problems.append(f"SECRET_KEY is not set (ACCORD_ENV=production needs one; generate it with {generate})")
    elif key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            f"SECRET_KEY is a placeholder or shorter than {MIN_SECRET_KEY_LENGTH} characters "
            f"(generate one with {generate})"
        )
    if not config.get("DATABASE_URL_EXPLICIT"):
        problems.append("DATABASE_URL is not set (ACCORD_ENV=production needs an explicit database)")
    return problems


def _dev_secret_key() -> str:
    # A random key kept in instance/ so sessions survive restarts of the embedded server.
    path = INSTANCE / "secret_key"
    if not path.exists():
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return path.read_text().strip()
