"""Two server processes sharing PostgreSQL and Redis: editors on different servers edit one text.

The app publishes on fixed Redis channels, so these tests must not run in parallel with another
run against the same Redis.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import IN_CI, POSTGRES_ADMIN_URL, require_postgres
from tests.integration.test_collab_live import (
    CHAIR,
    EDITOR,
    OBSERVER,
    SLUG,
    Editor,
    form_fields,
    new_token,
    wait_until,
)
from tests.support.live import LiveServer, free_port, login, prepare_database, server_env

pytestmark = pytest.mark.scaleout

REDIS_URL = "redis://127.0.0.1:6379/0"


def require_redis() -> None:
    """Skip when Redis is missing, except under CI=true, where it must be there."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        reason = f"Redis is not reachable at {REDIS_URL} ({type(error).__name__})"
        if IN_CI:
            pytest.fail(f"{reason}; under CI=true the scale-out tests must run.")
        pytest.skip(reason)
    finally:
        client.close()


class Cluster:
    def __init__(self, folder: Path, database_url: str, *, gunicorn: bool) -> None:
        self.env = server_env(database_url, SOCKETIO_MESSAGE_QUEUE=REDIS_URL, LOGIN_RATE_LIMIT="1000 per minute")
        prepare_database(self.env)
        self.servers: list[LiveServer] = []
        for number in (1, 2):
            server = LiveServer(free_port(), self.env, folder / f"server-{number}.log", gunicorn=gunicorn)
            self.servers.append(server)
            server.start()
        self.editors: list[Editor] = []

    def editor(self, server: int, email: str) -> Editor:
        editor = Editor(self.servers[server].url, email)
        self.editors.append(editor)
        return editor

    def close(self) -> None:
        for editor in self.editors:
            editor.close()
        for server in self.servers:
            server.stop()


# Production runs gunicorn's gevent worker (psycopg and the Redis client then wait on gevent's loop);
# `flask serve` runs threads.
@pytest.fixture(scope="module", params=["flask serve", "gunicorn gevent"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    require_postgres()
    require_redis()
    name = f"accord_scaleout_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            running = Cluster(Path(folder), url, gunicorn=request.param == "gunicorn gevent")
            try:
                yield running
            finally:
                running.close()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_editors_on_two_servers_converge(cluster: Cluster) -> None:
    first, second = cluster.editor(0, EDITOR), cluster.editor(1, CHAIR)
    for editor in (first, second):
        assert editor.join()["ok"] is True
    assert first.text() == second.text()
    tokens: dict[str, list[str]] = {"one": [], "two": []}
    errors: list[object] = []

    def typist(who: str, editor: Editor) -> None:
        for _ in range(30):
            token = new_token(who)
            answer = editor.type_token(token)
            if answer != {"ok": True}:
                errors.append(answer)
            tokens[who].append(token)

    threads = [threading.Thread(target=typist, args=args) for args in (("one", first), ("two", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    everything = tokens["one"] + tokens["two"]
    assert len(set(everything)) == 60

    def converged() -> bool:
        mine, theirs = first.text(), second.text()
        return mine == theirs and all(token in mine for token in everything)

    assert wait_until(converged, timeout=10), {
        "server 1 lacks": [t for t in everything if t not in first.text()],
        "server 2 lacks": [t for t in everything if t not in second.text()],
    }
    final = first.text()
    assert all(final.count(token) == 1 for token in everything)

    # Someone joining server 2 later gets everything, including what server 1 stored.
    for server in (1, 0):
        late = cluster.editor(server, OBSERVER)
        answer = late.join()
        assert answer["ok"] is True
        assert answer["can_write"] is False
        assert late.text() == final


def test_a_form_save_on_one_server_reaches_editors_on_the_other(cluster: Cluster) -> None:
    watcher = cluster.editor(1, EDITOR)
    assert watcher.join()["ok"] is True
    chair = login(cluster.servers[0].url, CHAIR)
    try:
        fields = form_fields(chair.get(f"{cluster.servers[0].url}/codes/{SLUG}/working", timeout=10).text)
        token = new_token("form")
        new_text = token + "\n" + fields["text"].replace("\r\n", "\n")
        saved = chair.post(
            f"{cluster.servers[0].url}/codes/{SLUG}/working",
            data={"csrf_token": fields["csrf_token"], "base_sha256": fields["base_sha256"], "text": new_text},
            allow_redirects=False,
            timeout=10,
        )
        assert saved.status_code == 302
    finally:
        chair.close()

    assert wait_until(lambda: watcher.text() == new_text, timeout=10)
    # And a live edit on server 2 made after it is kept by server 1's readers.
    after = new_token("after-form")
    assert watcher.type_token(after) == {"ok": True}
    reader = cluster.editor(0, OBSERVER)
    assert reader.join()["ok"] is True
    assert token in reader.text()
    assert after in reader.text()
