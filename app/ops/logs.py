"""Structured logs: one JSON object per line, a request id on each, secrets masked.

Every line is a JSON object, so text a user controls (a path, a comment, a display name) is encoded and can
never start a line of its own or pose as another field. The request id comes from the `X-Request-ID` header
(nginx's `$request_id`) when it is well formed, otherwise it is made here; it is answered in the same
header, and every line logged while the request (or Socket.IO event) runs carries it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import itertools
import json
import logging
import os
import re
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from flask import Flask, Response, g, request
from sqlalchemy.engine import make_url

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("accord_request_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Credentials inside URLs (postgresql://user:password@host), and key=value or "key": "value" pairs whose key
# says secret. Applied to every message and traceback, whatever logged it.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@")
_SECRET_PAIR = re.compile(
    r"(?P<key>\b[\w-]*(?:password|passwd|secret|token|authorization|api[_-]?key)[\w-]*\b['\"]?\s*[:=]\s*['\"]?)"
    r"(?:Bearer\s+)?[^'\"\s,;&}]+",
    re.IGNORECASE,
)
_SECRET_FIELD = re.compile(r"password|passwd|secret|token|authorization|cookie", re.IGNORECASE)
MASK = "***"
# LogRecord attributes that are not extra fields.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_OURS = "_accord_handler"


class Redactor:
    """Masks known secret values and anything that looks like a credential."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, value: str | None) -> None:
        # Very short values would mask ordinary words; secrets this short are refused by config anyway.
        if value and len(value) >= 8:
            self.values.add(value)

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + MASK + "@", text)
        return _SECRET_PAIR.sub(lambda m: m.group("key") + MASK, text)


redact = Redactor()


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None outside requests and events) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message, request id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_FIELDS or key in entry or key.startswith("_"):
                continue
            entry[key] = MASK if _SECRET_FIELD.search(key) else _plain(value)
        if record.exc_info:
            entry["exception"] = redact("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        # ensure_ascii keeps the line pure ASCII: no terminal escapes or odd line separators get through.
        return json.dumps(entry, default=str, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """A readable one-line format for development; user text is escaped like JSON strings are."""

    def format(self, record: logging.LogRecord) -> str:
        message = json.dumps(redact(record.getMessage()), ensure_ascii=True)[1:-1]
        extras = " ".join(
            f"{key}={json.dumps(_plain(value), default=str, ensure_ascii=True)}"
            for key, value in record.__dict__.items()
            if key not in _RECORD_FIELDS and key != "request_id" and not key.startswith("_")
        )
        stamp = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        rid = getattr(record, "request_id", None) or "-"
        line = f"{stamp} {record.levelname:<7} {record.name} [{rid}] {message}" + (f" {extras}" if extras else "")
        if record.exc_info:
            line += " " + json.dumps(redact("".join(traceback.format_exception(*record.exc_info))), ensure_ascii=True)
        return line


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): MASK if _SECRET_FIELD.search(str(k)) else _plain(v) for k, v in value.items()}
    return redact(str(value))


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records to one handler on the root logger, replacing the one set up before."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _OURS, True)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # Migrations run in this process (tests, `flask db upgrade`) apply alembic.ini's logging.fileConfig, which
    # disables every logger that existed before it: the app's own must log again.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split(".")[0] in ("accord", "app"):
            logger.disabled = False
    return handler


def _fresh_prefix() -> None:
    global _prefix, _counter
    _prefix, _counter = secrets.token_hex(8), itertools.count()


_prefix, _counter = "", itertools.count()
_fresh_prefix()
# A forked worker (gunicorn) must not hand out its parent's ids.
os.register_at_fork(after_in_child=_fresh_prefix)


def new_request_id() -> str:
    """A new id, unique across processes: 32 hex digits, a random prefix per process and a counter.

    Not uuid4: every Socket.IO event takes one, and reading the system's random source per event (a call
    that gives up the GIL) cost a co-editing server 6 % of its time at 150 editors.
    """
    return f"{_prefix}{next(_counter):016x}"


def incoming_request_id(value: str | None) -> str:
    """The proxy's request id when it is a plain token, else a new one (a header is user input)."""
    return value if value and _VALID_REQUEST_ID.match(value) else new_request_id()


@contextmanager
def request_id_scope(request_id: str | None = None) -> Iterator[str]:
    """Run a unit of work (a request, a socket event, a background job) under one request id."""
    value = request_id or new_request_id()
    token = request_id_var.set(value)
    try:
        yield value
    finally:
        request_id_var.reset(token)


# --- HTTP requests -------------------------------------------------------------------------------------

request_log = logging.getLogger("accord.request")
_SECRET_ARGUMENT = re.compile(r"token|key|secret|password", re.IGNORECASE)


def _loggable_path() -> str:
    # Invitation and unsubscribe links carry their secret in the path: log the route's variable instead.
    path = request.path
    for name, value in (request.view_args or {}).items():
        if _SECRET_ARGUMENT.search(name) and isinstance(value, str) and value:
            path = path.replace(value, MASK)
    return path


def init_app(app: Flask) -> None:
    """Install the log handler (outside tests), give every request an id, and log each request once."""
    for name in ("SECRET_KEY", "METRICS_TOKEN", "MAIL_SMTP_PASSWORD"):
        redact.add(app.config.get(name))
    for name in ("SQLALCHEMY_DATABASE_URI", "REDIS_URL", "SOCKETIO_MESSAGE_QUEUE", "RATELIMIT_STORAGE_URI"):
        url = app.config.get(name)
        if url:
            # An unparsable URL has no password to learn; the URL pattern still masks any in a message.
            with contextlib.suppress(Exception):
                redact.add(make_url(url).password)
    if not app.testing:
        configure_logging(app.config.get("LOG_LEVEL", "INFO"), app.config.get("LOG_FORMAT", "json"))

    def start_request() -> None:
        g.request_started = time.perf_counter()
        g.request_id_token = request_id_var.set(incoming_request_id(request.headers.get(REQUEST_ID_HEADER)))

    # First of all before-request functions: one registered earlier (the CSRF check) may refuse the
    # request, and that refusal must be logged under the request's id too.
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)

    @app.after_request
    def log_request(response: Response) -> Response:
        if "request_id_token" not in g:
            return response  # not an HTTP request of ours (a Socket.IO event's request context)
        request_id = request_id_var.get()
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
            started = g.get("request_started", time.perf_counter())
            user = g.get("_login_user")  # only if this request already loaded it: logging must not query
            request_log.info(
                "%s %s %s",
                request.method,
                _loggable_path(),
                response.status_code,
                extra={
                    "method": request.method,
                    "path": _loggable_path(),
                    "route": request.url_rule.rule if request.url_rule else None,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": getattr(user, "id", None) or g.get("signed_in_user_id"),
                    "remote_addr": request.remote_addr,
                },
            )
        return response

    @app.teardown_request
    def end_request(error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            # ValueError: set in another context (a test client reusing one); nothing to undo then.
            with contextlib.suppress(ValueError):
                request_id_var.reset(token)


# --- Socket.IO events ----------------------------------------------------------------------------------

socket_log = logging.getLogger("accord.socket")
# Edits and cursor moves arrive many times a second per editor: logged only when refused (or at DEBUG).
_FREQUENT_EVENTS = frozenset({"update", "awareness"})


def instrument_namespace(namespace: Any, observe: Callable[[str, Any, Any, float], None] | None = None) -> None:
    """Give each event of a Socket.IO namespace its own request id and one log line.

    Wraps the namespace's dispatcher (once), so its handlers stay free of logging and metric plumbing.
    """
    if getattr(namespace, "_accord_instrumented", False):
        return
    dispatch = namespace.trigger_event

    @functools.wraps(dispatch)
    def trigger_event(event: str, *args: Any) -> Any:
        with request_id_scope():
            started = time.perf_counter()
            try:
                result = dispatch(event, *args)
            except Exception:
                socket_log.exception("socket event %s failed", event, extra={"event": event})
                raise
            seconds = time.perf_counter() - started
            data = args[1] if len(args) > 1 else None
            code = data.get("code") if isinstance(data, dict) else None
            refused = isinstance(result, dict) and result.get("ok") is False
            level = logging.INFO
            if event in _FREQUENT_EVENTS and not refused:
                level = logging.DEBUG
            if socket_log.isEnabledFor(level):
                socket_log.log(
                    level,
                    "socket %s%s",
                    event,
                    f" refused {result.get('status')}" if refused else "",
                    extra={
                        "event": event,
                        "namespace": getattr(namespace, "namespace", None),
                        "code_id": code if isinstance(code, int) else None,
                        "status": result.get("status", 200) if isinstance(result, dict) else None,
                        "duration_ms": round(seconds * 1000, 2),
                    },
                )
            if observe is not None:
                observe(event, data, result, seconds)
            return result

    namespace.trigger_event = trigger_event
    namespace._accord_instrumented = True
