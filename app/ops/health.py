"""Liveness (/healthz) and readiness (/readyz) for load balancers, orchestrators and people.

/healthz says the process answers; it touches nothing else, so a slow database never gets a live process
restarted. /readyz checks what serving needs: the database answers, its schema is at the migrations' head,
the search index can be written, and Redis answers when configured. The checks run in parallel, each in
its own thread, and the answer leaves after at most `READY_DEADLINE_SECONDS` whatever hangs (a check still
running then counts as failed, and is not started again until it returns).
"""

from __future__ import annotations

import contextvars
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from app.config import ROOT
from app.extensions import socketio

READY_DEADLINE_SECONDS = 0.8
REDIS_TIMEOUT_SECONDS = 0.5
STARTED = time.time()

bp = Blueprint("ops_health", __name__)
Check = Callable[[], dict[str, Any]]
_CREDENTIALS = re.compile(r"://[^@/\s]*@")


class CheckFailed(Exception):
    """A readiness check found a problem; the message says what, for the operator."""


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(
        {
            "status": "ok",
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - STARTED, 1),
            # "gevent" under gunicorn with deploy/gunicorn.conf.py, "threading" under `flask serve`.
            "socketio_mode": socketio.async_mode,
        }
    )


@bp.get("/readyz")
def readyz() -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    checks = _checks(app)
    results = _run_all(app, checks)
    ready = all(result["ok"] for result in results.values())
    response = jsonify({"status": "ready" if ready else "not ready", "pid": os.getpid(), "checks": results})
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


# --- running checks against a deadline ---------------------------------------------------------------


class _Slot:
    """One check's state in this process: a hung check is not started again until it returns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = False


_slots: dict[str, _Slot] = {}
_slots_lock = threading.Lock()


def _slot(key: str) -> _Slot:
    with _slots_lock:
        return _slots.setdefault(key, _Slot())


def _run_all(app: Flask, checks: dict[str, Check]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    threads: list[threading.Thread] = []
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    for name, check in checks.items():
        slot = _slot(f"{id(app)}:{name}")
        with slot.lock:
            if slot.running:
                results[name] = {"ok": False, "error": "the previous check has not returned yet"}
                continue
            slot.running = True
        # In a copy of this context, so anything a check logs carries the probe's request id.
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(_run_one, name, check, slot, results), name=f"readyz-{name}"
        )
        thread.daemon = True  # a check stuck on a dead host must never hold the process at exit
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for name in checks:
        # Copy under the GIL: a late thread may still write its result after the deadline.
        results.setdefault(name, {"ok": False, "error": f"no answer within {READY_DEADLINE_SECONDS} s"})
    return {name: dict(results[name]) for name in checks}


def _run_one(name: str, check: Check, slot: _Slot, results: dict[str, dict[str, Any]]) -> None:
    started = time.perf_counter()
    try:
        detail = check()
        result = {"ok": True, **detail}
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        result = {"ok": False, "error": _CREDENTIALS.sub("://***@", message)[:300]}
    finally:
        with slot.lock:
            slot.running = False
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    results.setdefault(name, result)


# --- the checks ------------------------------------------------------------------------------------


def _checks(app: Flask) -> dict[str, Check]:
    engine = _health_engine(app)
    checks: dict[str, Check] = {
        "database": lambda: _check_database(engine),
        "migrations": lambda: _check_migrations(app, engine),
        "search_index": lambda: _check_search_index(app, engine),
    }
    for name, url in _redis_urls(app).items():
        checks[name] = lambda url=url: _check_redis(url)  # type: ignore[misc]
    return checks


def _health_engine(app: Flask) -> Engine:
    # Its own engine without a pool: a probe never waits behind busy requests for a pooled connection, and
    # a dead connection is never handed to the next probe.
    engine = app.extensions.get("accord_health_engine")
    if engine is None:
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        connect_args: dict[str, Any] = {}
        if url.startswith("postgresql"):
            connect_args = {"connect_timeout": 2, "options": "-c statement_timeout=700"}
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        app.extensions["accord_health_engine"] = engine
    return engine


def _check_database(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"dialect": engine.dialect.name}


_heads: dict[str, tuple[str, ...]] = {}


def _migration_heads(directory: str) -> tuple[str, ...]:
    # Parsing every revision file takes a while; they cannot change while the process runs.
    if directory not in _heads:
        from alembic.script import ScriptDirectory

        _heads[directory] = tuple(sorted(ScriptDirectory(directory).get_heads()))
    return _heads[directory]


def _check_migrations(app: Flask, engine: Engine) -> dict[str, Any]:
    heads = _migration_heads(str(app.config.get("MIGRATIONS_DIR", ROOT / "migrations")))
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            raise CheckFailed("no migrations applied to this database: run `flask db upgrade`")
        # Alembic's own table, read directly: its MigrationContext would log two lines on every probe.
        current = tuple(sorted(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()))
    if current != heads:
        shown = ", ".join(current) or "none"
        raise CheckFailed(f"database at {shown}, code expects {', '.join(heads)}: run `flask db upgrade`")
    return {"revision": ", ".join(current)}


def _search_backend_kind(app: Flask) -> str:
    kind = str(app.config.get("SEARCH_BACKEND", "auto"))
    if kind == "auto":
        return "postgresql" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else "whoosh"
    return kind


def _check_search_index(app: Flask, engine: Engine) -> dict[str, Any]:
    kind = _search_backend_kind(app)
    with engine.connect() as connection:
        queued = connection.execute(text("SELECT count(*) FROM search_queue")).scalar_one()
        if kind == "postgresql":
            writable = connection.execute(
                text(
                    "SELECT has_table_privilege(current_user, 'search_documents', 'INSERT,UPDATE,DELETE')"
                    " AND current_setting('transaction_read_only') = 'off'"
                )
            ).scalar_one()
            if not writable:
                raise CheckFailed("the search_documents table is not writable by this database user")
            return {"backend": kind, "queued": queued}
    folder = Path(app.config["SEARCH_INDEX_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    # Write and remove a small file: proves the folder is writable and the disk is not full.
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-", delete=True) as probe:
        probe.write(b"ok")
        probe.flush()
        os.fsync(probe.fileno())
    return {"backend": kind, "queued": queued, "free_bytes": shutil.disk_usage(folder).free}


def _redis_urls(app: Flask) -> dict[str, str]:
    urls: dict[str, str] = {}
    queue = app.config.get("SOCKETIO_MESSAGE_QUEUE")
    limits = app.config.get("RATELIMIT_STORAGE_URI") or ""
    if queue and queue.startswith(("redis", "rediss", "unix")):
        urls["redis_message_queue"] = queue
    if limits.startswith(("redis://", "rediss://")) and limits != queue:
        urls["redis_rate_limits"] = limits
    return urls


_redis_clients: dict[str, Any] = {}


def _check_redis(url: str) -> dict[str, Any]:
    import redis

    client = _redis_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        _redis_clients[url] = client
    client.ping()
    return {}


def init_app(app: Flask) -> None:
    """Serve /healthz and /readyz; neither needs a login nor counts against rate limits."""
    from app.extensions import limiter

    app.register_blueprint(bp)
    limiter.exempt(bp)
