"""Operating Accord: configuration checked at start, health and readiness, JSON logs with request ids,
Prometheus metrics, session limits, database outages answered with 503, and two gunicorn processes on
PostgreSQL and Redis as the production set-up runs them."""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import select as select_module
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import make_url

from app import create_app
from app.comments.models import Comment
from app.config import ConfigError, load_config
from app.db import db, utcnow
from app.extensions import socketio
from app.ops import health, logs, sessions
from tests.conftest import PASSWORD, POSTGRES_ADMIN_URL, ROOT, require_postgres
from tests.support.live import free_port, prepare_database, server_env

LONG_SECRET = "4f1c0d6e8a9b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
ENV_SETTINGS = (
    "ACCORD_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SOCKETIO_MESSAGE_QUEUE", "RATELIMIT_STORAGE_URI",
    "INTAKE_CONCURRENCY", "SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS", "LOG_FORMAT", "LOG_LEVEL",
    "METRICS_TOKEN", "SESSION_COOKIE_SECURE", "TRUST_PROXY", "PUBLIC_BASE_URL",
)  # fmt: skip
GUNICORN = [sys.executable, "-m", "gunicorn"]
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def bare_env(**settings: str) -> dict[str, str]:
    """The environment of a fresh process with only these Accord settings."""
    env = {key: value for key, value in os.environ.items() if key not in ENV_SETTINGS}
    env.update(FLASK_APP="app:create_app", **settings)
    return env


# --- configuration checked at start -------------------------------------------------------------------


def test_production_refuses_to_start_without_secret_key_and_database_url(clean_env):
    clean_env.setenv("ACCORD_ENV", "production")
    with pytest.raises(ConfigError) as refused:
        load_config()
    message = refused.value.message
    assert "\n" not in message
    assert message.startswith("Accord cannot start: SECRET_KEY is not set")
    assert "DATABASE_URL is not set" in message


@pytest.mark.parametrize("key", ["change-me", "short-but-real-9f3a", "secret"])
def test_production_refuses_a_placeholder_or_short_secret_key(clean_env, key):
    clean_env.setenv("ACCORD_ENV", "production")
    clean_env.setenv("SECRET_KEY", key)
    clean_env.setenv("DATABASE_URL", "postgresql://accord@db/accord")
    with pytest.raises(ConfigError, match="SECRET_KEY is a placeholder or shorter than 32 characters"):
        load_config()


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("INTAKE_CONCURRENCY", "many", "INTAKE_CONCURRENCY='many' is not a whole number"),
        ("ACCORD_ENV", "prod", "ACCORD_ENV='prod' is not one of development, production"),
        ("SOCKETIO_MESSAGE_QUEUE", "amqp://mq", "SOCKETIO_MESSAGE_QUEUE must start with redis://"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is not a logging level"),
        ("SESSION_IDLE_MINUTES", "-5", "SESSION_IDLE_MINUTES=-5 must be at least 0"),
        ("DATABASE_URL", "mysql://db/accord", "DATABASE_URL must start with sqlite:/// or postgresql://"),
        ("METRICS_TOKEN", "abc", "METRICS_TOKEN is too short"),
    ],
)
def test_a_wrong_setting_is_named_in_one_line(clean_env, name, value, named):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_config()
    assert named in refused.value.message
    assert "\n" not in refused.value.message


def test_production_settings_harden_cookies_and_log_json(clean_env):
    clean_env.setenv("ACCORD_ENV", "production")
    clean_env.setenv("SECRET_KEY", LONG_SECRET)
    clean_env.setenv("DATABASE_URL", "postgres://accord@db/accord")
    config = load_config()
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://accord@db/accord"
    assert config["SESSION_COOKIE_SECURE"]
    assert config["REMEMBER_COOKIE_SECURE"]
    assert config["SESSION_COOKIE_HTTPONLY"]
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["LOG_FORMAT"] == "json"
    assert config["RATELIMIT_STORAGE_URI"] == "memory://"


def test_one_redis_url_shares_rate_limits_and_the_socket_queue(clean_env):
    clean_env.setenv("REDIS_URL", "redis://cache:6379/0")
    config = load_config()
    assert config["SOCKETIO_MESSAGE_QUEUE"] == "redis://cache:6379/0"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://cache:6379/0"
    # A Redis outage degrades limits to per-process instead of failing logins.
    assert config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] is True
    clean_env.setenv("RATELIMIT_STORAGE_URI", "memory://")
    assert load_config()["RATELIMIT_STORAGE_URI"] == "memory://"


def _one_line_refusal(completed: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert "Traceback" not in completed.stderr, completed.stderr
    refusal = [line for line in lines if "Accord cannot start" in line]
    assert len(refusal) == 1, completed.stderr
    return refusal[0]


def test_flask_commands_refuse_a_bad_configuration_in_one_line():
    completed = subprocess.run(
        [sys.executable, "-m", "flask", "db", "current"],
        cwd=ROOT, env=bare_env(ACCORD_ENV="production"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 2
    line = _one_line_refusal(completed)
    assert line.startswith("Error: Accord cannot start: SECRET_KEY is not set")
    assert completed.stderr.strip() == line


def test_gunicorn_with_the_deploy_config_refuses_before_starting_a_worker():
    completed = subprocess.run(
        [*GUNICORN, "-c", "deploy/gunicorn.conf.py", "-b", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=bare_env(ACCORD_ENV="production", SECRET_KEY="change-me"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr.strip() == _one_line_refusal(completed)
    assert "SECRET_KEY is a placeholder" in completed.stderr


def test_gunicorn_with_an_unknown_worker_class_refuses_in_one_line():
    completed = subprocess.run(
        [*GUNICORN, "-c", "deploy/gunicorn.conf.py", "-b", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=bare_env(GUNICORN_WORKER_CLASS="eventlet"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 2
    assert completed.stderr.strip() == "GUNICORN_WORKER_CLASS must be gevent or gthread, not 'eventlet'."


def test_gunicorn_without_the_config_stops_instead_of_restarting_workers():
    # wsgi.py exits with gunicorn's "app failed to load" status, so the master halts.
    completed = subprocess.run(
        [*GUNICORN, "-b", f"127.0.0.1:{free_port()}", "wsgi:app"],
        cwd=ROOT, env=bare_env(ACCORD_ENV="production", DATABASE_URL="sqlite:///x.db"), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 4
    assert "SECRET_KEY is not set" in _one_line_refusal(completed)


# --- structured logs ------------------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure_logging("DEBUG", "json", stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_user_text_cannot_forge_a_log_line_and_secrets_are_masked(log_lines):
    logs.redact.add(LONG_SECRET)
    forged = 'innocent\n{"level": "ERROR", "message": "admin logged in"}\r\x1b[2J'
    log = logging.getLogger("accord.test")
    log.warning("comment body: %s", forged, extra={"password": "hunter2-hunter2", "clause": forged})
    log.info("connecting to postgresql://accord:s3cret-pass@db/accord with key %s", LONG_SECRET)
    log.info("form sent password=hunter2-hunter2&email=a@b.c, header Authorization: Bearer abc.def.ghi")
    lines = log_lines()
    assert len(lines) == 3
    first, second, third = lines
    assert first["message"] == "comment body: " + forged  # intact, but inside one JSON string
    assert first["clause"] == forged
    assert first["password"] == "***"
    assert "s3cret-pass" not in second["message"]
    assert LONG_SECRET not in second["message"]
    assert second["message"] == "connecting to postgresql://accord:***@db/accord with key ***"
    assert "hunter2" not in third["message"]
    assert "abc.def.ghi" not in third["message"]


def test_every_request_and_socket_event_logs_its_request_id(app, client, make_user, login, make_code, log_lines):
    make_code()
    user = make_user()
    login(user)
    given = client.get("/healthz", headers={"X-Request-ID": "proxy-id-123"})
    forged = client.get("/healthz", headers={"X-Request-ID": "bad id {with} spaces"})
    assert given.headers["X-Request-ID"] == "proxy-id-123"
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])
    socket_client = socketio.test_client(app, namespace="/collab", flask_test_client=client)
    assert socket_client.is_connected("/collab")
    # Refused before any database work: the event's line says so.
    assert socket_client.emit("awareness", "not an object", namespace="/collab", callback=True)["status"] == 400
    socket_client.emit("leave", {"code": 999_999}, namespace="/collab", callback=True)
    socket_client.disconnect(namespace="/collab")

    lines = log_lines()
    assert all(line["request_id"] for line in lines if line["logger"].startswith("accord."))
    requests_logged = [line for line in lines if line["logger"] == "accord.request" and line["path"] == "/healthz"]
    assert [line["request_id"] for line in requests_logged] == ["proxy-id-123", forged.headers["X-Request-ID"]]
    assert requests_logged[0]["status"] == 200
    assert requests_logged[0]["route"] == "/healthz"
    events = {line["event"]: line for line in lines if line["logger"] == "accord.socket"}
    assert {"connect", "awareness", "leave", "disconnect"} <= set(events)
    assert events["awareness"]["status"] == 400
    assert events["awareness"]["level"] == "INFO"  # refused, so logged although presence is frequent
    assert len({line["request_id"] for line in events.values()}) == len(events)  # one id per event


def test_secret_path_segments_are_not_logged(app, client, log_lines):
    client.get("/invitations/very-secret-invitation-token")
    line = next(line for line in log_lines() if line["logger"] == "accord.request")
    assert "very-secret-invitation-token" not in json.dumps(line)
    assert line["path"] == "/invitations/***"


# --- health and readiness -------------------------------------------------------------------------------


def test_healthz_answers_without_touching_anything(client):
    started = time.perf_counter()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    # Nothing patched the standard library for gevent in this process: Socket.IO runs on threads.
    assert response.get_json()["socketio_mode"] == "threading"
    assert time.perf_counter() - started < 0.5


def test_readyz_is_ready_with_every_check_passing(client, database_url):
    client.get("/readyz")  # the first probe reads the migration scripts once
    started = time.perf_counter()
    response = client.get("/readyz")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "migrations", "search_index"}
    assert all(check["ok"] for check in body["checks"].values())
    expected = "postgresql" if database_url.startswith("postgresql") else "whoosh"
    assert body["checks"]["search_index"]["backend"] == expected
    assert elapsed < 1.0


def test_readyz_is_not_ready_on_an_unmigrated_database_or_an_unwritable_index(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the index folder should be")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
            "SEARCH_INDEX_DIR": str(blocker / "index"),
            "SEARCH_INDEXER_THREAD": False,
        }
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["migrations"]["ok"] is False
    assert "flask db upgrade" in checks["migrations"]["error"]
    assert checks["search_index"]["ok"] is False


def test_readyz_answers_within_its_deadline_when_a_check_hangs(app, client, monkeypatch):
    release = threading.Event()

    def hang(engine: Any) -> dict[str, Any]:
        release.wait(10)
        return {}

    monkeypatch.setattr(health, "_check_database", hang)
    try:
        for attempt in range(2):
            started = time.perf_counter()
            response = client.get("/readyz")
            assert time.perf_counter() - started < 1.0
            assert response.status_code == 503
            error = response.get_json()["checks"]["database"]["error"]
            # The hung check is not started a second time while it still runs.
            assert error == ("no answer within 0.8 s" if attempt == 0 else "the previous check has not returned yet")
    finally:
        release.set()


# --- metrics --------------------------------------------------------------------------------------------


def metric(body: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus's text format (0 when absent)."""
    for line in body.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        if sample_name != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(key) == wanted for key, wanted in labels.items()):
            return float(value)
    return 0.0


def test_metrics_need_a_token_or_an_admin(app, client, make_user, login):
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200
    login(make_user())
    assert client.get("/metrics").status_code == 401
    client.post("/logout")
    login(make_user(admin=True))
    assert client.get("/metrics").status_code == 200


def test_metrics_count_requests_comments_queues_and_connections(app, client, session, make_user, login, make_code):
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    code = make_code(versions=1, published=1)
    code.consultation_opens_at, code.consultation_closes_at = utcnow().replace(year=2000), utcnow().replace(year=2100)
    session.commit()
    user = make_user()
    login(user)

    def scrape() -> str:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200
        return response.get_data(as_text=True)

    before = scrape()
    url = "/api/v1/codes/test-code/versions/1/comments"
    body = {"clause": "c-2", "body": "Metrics count this once."}
    assert client.post(url, json=body, headers={"Idempotency-Key": "metrics-key-1"}).status_code == 201
    assert client.post(url, json=body, headers={"Idempotency-Key": "metrics-key-1"}).status_code == 200  # replay
    socket_client = socketio.test_client(app, namespace="/collab", flask_test_client=client)
    after = scrape()
    socket_client.disconnect(namespace="/collab")

    route = "/api/v1/codes/<slug>/versions/<int:number>/comments"
    assert metric(after, "accord_http_request_duration_seconds_count", route=route, method="POST", status="201") >= 1
    accepted = "accord_comments_accepted_total"
    assert metric(after, accepted) - metric(before, accepted) == 1
    assert metric(after, "accord_socket_connections") - metric(before, "accord_socket_connections") == 1
    assert metric(after, "accord_search_queue_length") >= 1  # tests drain the queue themselves
    assert "accord_outbox_backlog" in after
    assert "accord_collab_updates_total" in after
    assert "accord_collab_commits_total" in after
    assert metric(after, "accord_collab_folds_in_server_total") == 0
    # The comment and its replay, one after the other: the writer answers a stored key too, in its own batch.
    assert metric(after, "accord_intake_batches_total") - metric(before, "accord_intake_batches_total") == 2
    assert metric(after, "accord_intake_largest_batch") == 1
    assert metric(after, "accord_intake_waiting") == 0
    assert metric(after, "accord_metrics_database_up") == 1


# --- sessions and cookies -------------------------------------------------------------------------------


def _logged_in(client: FlaskClient) -> bool:
    return client.get("/account/password").status_code == 200


@pytest.mark.parametrize(("stamp", "limit"), [(sessions.SEEN_AT, "idle"), (sessions.LOGIN_AT, "absolute")])
def test_a_session_ends_after_its_idle_or_absolute_limit(app, client, make_user, login, stamp, limit):
    app.config["SESSION_IDLE_TIMEOUT"] = sessions.dt.timedelta(minutes=30)
    app.config["SESSION_ABSOLUTE_TIMEOUT"] = sessions.dt.timedelta(hours=8)
    login(make_user())
    assert _logged_in(client)
    with client.session_transaction() as state:
        assert isinstance(state[sessions.LOGIN_AT], int)
        # Still inside both limits: the session goes on.
        state[sessions.SEEN_AT] = int(time.time()) - 29 * 60
    assert _logged_in(client)
    with client.session_transaction() as state:
        state[stamp] = int(time.time()) - (31 * 60 if limit == "idle" else 9 * 3600)
    # A co-editing socket opened with the stale cookie is refused too (its handshake skips the HTTP hooks).
    assert not socketio.test_client(app, namespace="/collab", flask_test_client=client).is_connected("/collab")
    assert not _logged_in(client)
    with client.session_transaction() as state:
        assert "_user_id" not in state


def test_pages_say_how_long_the_session_has_and_extending_restarts_the_idle_limit(app, client, make_user, login):
    app.config["SESSION_IDLE_TIMEOUT"] = sessions.dt.timedelta(minutes=30)
    app.config["SESSION_ABSOLUTE_TIMEOUT"] = sessions.dt.timedelta(hours=8)
    assert 'id="session-timeout"' not in client.get("/").get_data(as_text=True)  # nothing to time out
    login(make_user())
    with client.session_transaction() as state:
        state[sessions.SEEN_AT] = int(time.time()) - 28 * 60
        state[sessions.LOGIN_AT] = int(time.time()) - 3 * 3600

    extended = client.post("/session/extend")

    assert extended.status_code == 200
    left = extended.get_json()
    assert 30 * 60 - 5 <= left["idle"] <= 30 * 60
    assert 5 * 3600 - 5 <= left["absolute"] <= 5 * 3600
    page = client.get("/").get_data(as_text=True)
    idle = int(re.search(r'data-idle-left="(\d+)"', page).group(1))
    absolute = int(re.search(r'data-absolute-left="(\d+)"', page).group(1))
    assert 30 * 60 - 5 <= idle <= 30 * 60
    assert 5 * 3600 - 5 <= absolute <= 5 * 3600
    assert 'action="/session/extend"' in page
    # Asking how long is left does not count as activity; extending does, even within the minute that
    # ordinary requests leave the stamp alone.
    with client.session_transaction() as state:
        state[sessions.SEEN_AT] = int(time.time()) - 25 * 60
    asked = client.get("/session/status")
    assert asked.status_code == 200
    assert 5 * 60 - 5 <= asked.get_json()["idle"] <= 5 * 60
    assert 5 * 60 - 5 <= client.get("/session/status").get_json()["idle"] <= 5 * 60
    with client.session_transaction() as state:
        state[sessions.SEEN_AT] = int(time.time()) - 30
    assert client.post("/session/extend").get_json()["idle"] >= 30 * 60 - 1
    with client.session_transaction() as state:
        state[sessions.SEEN_AT] = int(time.time()) - 31 * 60
    assert client.get("/session/status").status_code == 401
    login(make_user())
    with client.session_transaction() as state:
        state[sessions.SEEN_AT] = int(time.time()) - 31 * 60
    too_late = client.post("/session/extend")
    assert too_late.status_code == 401
    assert too_late.get_json() == {"error": "Your session has ended. Log in again to go on."}
    assert not _logged_in(client)


def test_extending_a_session_needs_the_csrf_token(app, client, make_user, login):
    login(make_user())
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        refused = client.post("/session/extend")
        page = client.get("/").get_data(as_text=True)
        form = r'action="/session/extend"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)"'
        token = re.search(form, page)
        accepted = client.post("/session/extend", data={"csrf_token": token.group(1)})
    finally:
        app.config["WTF_CSRF_ENABLED"] = False

    assert refused.status_code == 400
    assert accepted.status_code == 200


def test_production_cookies_are_secure_and_hsts_is_sent_behind_a_tls_proxy(clean_env, database_url, tmp_path):
    clean_env.setenv("ACCORD_ENV", "production")
    clean_env.setenv("SECRET_KEY", LONG_SECRET)
    clean_env.setenv("DATABASE_URL", database_url)
    clean_env.setenv("TRUST_PROXY", "1")
    app = create_app({"TESTING": True, "SEARCH_INDEX_DIR": str(tmp_path / "index"), "SEARCH_INDEXER_THREAD": False})
    client = app.test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = client.get("/login", base_url="http://accord.example")
    assert "Strict-Transport-Security" not in plain.headers  # plain HTTP: no HSTS
    with app.app_context():
        db.engine.dispose()


# --- the database going away during a write -------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can cut every connection and refuse new ones, as an outage would."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select_module.select([a, b], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                sock.close()

    def cut(self) -> None:
        self.up = False
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:  # already closed by the other side
                    continue

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


class FullDisk:
    """SQLite's own "database or disk is full", by capping the file at its current size while `full`."""

    def __init__(self, engine: Any) -> None:
        self.full = False
        self.engine = engine
        sqlalchemy_event.listen(engine, "checkout", self._on_checkout)

    def _on_checkout(self, connection: Any, record: Any, proxy: Any) -> None:
        cursor = connection.cursor()
        if self.full:
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")
        else:
            cursor.execute("PRAGMA max_page_count = 1073741823")
        cursor.close()

    def cut(self) -> None:
        # Earlier tests leave free pages in the shared file, and a write that fits in them needs no growth:
        # fill them first, so that the next write must grow the file and meets the cap.
        with self.engine.connect() as connection:
            free = connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0
            size = connection.exec_driver_sql("PRAGMA page_size").scalar() or 4096
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS test_disk_filler (b BLOB)")
            if free:
                connection.exec_driver_sql(
                    "INSERT INTO test_disk_filler VALUES (zeroblob(?))", (int(free) * int(size),)
                )
            connection.commit()
        self.full = True

    def restore(self) -> None:
        self.full = False
        with self.engine.connect() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS test_disk_filler")
            connection.commit()


@pytest.fixture
def outage(database_url: str, app: Flask, tmp_path: Path) -> Iterator[tuple[Flask, Any]]:
    """A second app on the same database whose writes fail on `cut()`: PostgreSQL unreachable behind a TCP
    proxy, or SQLite's file full."""
    url = make_url(database_url)
    proxy = (
        CuttableProxy((url.host or "127.0.0.1", url.port or 5432)) if url.drivername.startswith("postgresql") else None
    )
    if proxy is not None:
        url = url.set(host="127.0.0.1", port=proxy.port)
    faulty = create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": url.render_as_string(False),
            "SEARCH_INDEX_DIR": str(tmp_path / "faulty-index"),
            "SEARCH_INDEXER_THREAD": False,
        }
    )
    with faulty.app_context():
        fault = proxy if proxy is not None else FullDisk(db.engine)
    try:
        yield faulty, fault
    finally:
        if proxy is not None:
            proxy.close()
        with faulty.app_context():
            db.engine.dispose()


def test_a_database_fault_during_a_write_answers_503_and_loses_nothing_acknowledged(
    outage, session, make_user, make_code, request
):
    faulty, fault = outage
    code = make_code(versions=1, published=1)
    code.consultation_opens_at, code.consultation_closes_at = utcnow().replace(year=2000), utcnow().replace(year=2100)
    session.commit()
    user = make_user()
    client = faulty.test_client()
    assert client.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302
    url = "/api/v1/codes/test-code/versions/1/comments"

    def submit(key: str) -> Any:
        body = {"clause": "c-2", "body": f"Comment {key}. " + "Long enough to need new pages. " * 200}
        return client.post(url, json=body, headers={"Idempotency-Key": key})

    acknowledged = submit("before-outage-1")
    assert acknowledged.status_code == 201

    fault.cut()
    refused = submit("during-outage-1")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.get_json()["status"] == 503
    if isinstance(fault, CuttableProxy):  # unreachable: reads fail too, and the process is not ready
        page = client.get("/codes/test-code", headers={"Accept": "text/html"})
        assert page.status_code == 503
        assert "text/html" in page.headers["Content-Type"]
        assert client.get("/readyz").status_code == 503

    fault.restore()
    retried = submit("during-outage-1")
    assert retried.status_code == 201
    replayed = submit("before-outage-1")
    assert replayed.status_code == 200
    assert replayed.get_json()["receipt"] == {**acknowledged.get_json()["receipt"], "replayed": True}
    session.rollback()  # a fresh snapshot: the writes came through the other app's connections
    stored = session.scalars(select(Comment.idempotency_key).order_by(Comment.id)).all()
    assert stored == ["before-outage-1", "during-outage-1"]


# --- two gunicorn processes on PostgreSQL and Redis -----------------------------------------------------


def require_redis() -> None:
    from tests.integration.test_collab_scaleout import require_redis as check

    check()


class Gunicorn:
    """One production server process: gunicorn with deploy/gunicorn.conf.py on its own port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*GUNICORN, "-c", "deploy/gunicorn.conf.py"],
                cwd=ROOT, env={**env, "PORT": str(self.port)}, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-2000:]}")
            try:
                response = requests.get(self.url + "/readyz", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except requests.RequestException:  # listening, but the worker is still loading the app
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready in {timeout} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="module")
def production_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Gunicorn], Path]]:
    require_postgres()
    require_redis()
    name = f"accord_ops_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    folder = tmp_path_factory.mktemp("gunicorn")
    env = server_env(
        url.replace("postgresql+psycopg://", "postgresql://"),
        ACCORD_ENV="production",
        SECRET_KEY=LONG_SECRET,
        REDIS_URL=REDIS_URL,
        METRICS_TOKEN=METRICS_TOKEN,
        TRUST_PROXY="1",
        LOGIN_RATE_LIMIT="3 per minute",
        SEARCH_INDEX_DIR=str(folder / "index"),
        # Plain HTTP on the loopback here, no TLS proxy: a Secure cookie would never come back.
        SESSION_COOKIE_SECURE="0",
    )
    for setting in ("SOCKETIO_MESSAGE_QUEUE", "RATELIMIT_STORAGE_URI", "LOG_FORMAT"):
        env.pop(setting, None)
    servers: list[Gunicorn] = []
    try:
        prepare_database(env)
        servers = [Gunicorn(env, folder / f"gunicorn-{n}.log") for n in (1, 2)]
        yield servers, folder
    finally:
        for server in servers:
            server.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.scaleout
def test_two_gunicorn_processes_on_postgresql_and_redis_are_ready_and_observable(production_pair):
    servers, folder = production_pair
    for server in servers:
        ready = server.wait_ready()
        assert set(ready["checks"]) == {"database", "migrations", "search_index", "redis_message_queue"}
        assert ready["checks"]["search_index"]["backend"] == "postgresql"
    health = [requests.get(server.url + "/healthz", timeout=5).json() for server in servers]
    assert len({answer["pid"] for answer in health}) == 2
    assert [answer["socketio_mode"] for answer in health] == ["gevent", "gevent"]

    # Rate limits live in Redis: attempts on either process count against one limit (3 per minute). One
    # browser session (the CSRF token is signed with the shared SECRET_KEY) from a made-up client address.
    client_address = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    browser = requests.Session()
    browser.headers["X-Forwarded-For"] = client_address
    page = browser.get(servers[0].url + "/login", timeout=10).text
    csrf_token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    statuses = []
    for attempt in range(4):
        response = browser.post(
            servers[attempt % 2].url + "/login",
            data={"email": "nobody@example.org", "password": "wrong", "csrf_token": csrf_token},
            allow_redirects=False,
            timeout=10,
        )
        statuses.append(response.status_code)
    assert 429 not in statuses[:3], statuses
    assert statuses[3] == 429, statuses

    token = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert requests.get(servers[0].url + "/metrics", timeout=5).status_code == 401
    scraped = requests.get(servers[0].url + "/metrics", headers=token, timeout=5).text
    assert metric(scraped, "accord_http_request_duration_seconds_count", route="/readyz", method="GET", status="200")
    assert "accord_search_queue_length" in scraped

    response = requests.get(servers[1].url + "/healthz", headers={"X-Request-ID": "ops-test-42"}, timeout=5)
    assert response.headers["X-Request-ID"] == "ops-test-42"
    # Refused by the CSRF check, which runs before the app's own hooks: logged under its id all the same.
    refused = requests.post(servers[1].url + "/login", headers={"X-Request-ID": "ops-csrf-7"}, timeout=5)
    assert refused.status_code == 400
    for server in servers:
        server.stop()
    log_text = (folder / "gunicorn-2.log").read_text()
    entries = [json.loads(line) for line in log_text.splitlines() if line.strip()]  # every line is JSON
    assert any(e.get("request_id") == "ops-test-42" and e["logger"] == "accord.request" for e in entries)
    assert any(e.get("request_id") == "ops-csrf-7" and e.get("status") == 400 for e in entries)
    assert any(e["logger"] == "gunicorn.error" and "Using worker: gevent" in e["message"] for e in entries)
    assert LONG_SECRET not in log_text
    assert METRICS_TOKEN not in log_text
