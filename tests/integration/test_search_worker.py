"""Indexing in a process of its own: a server with SEARCH_INDEXER_THREAD=0 and `flask search worker` beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from tests.support.live import (
    FLASK,
    ROOT,
    LiveServer,
    demo_server,
    free_port,
    live_server,
    login,
    prepare_database,
    server_env,
)


def _search(base: str, word: str) -> int:
    """How many hits the public search page lists for `word`."""
    answer = requests.get(f"{base}/search", params={"q": word}, timeout=10)
    assert answer.status_code == 200
    return answer.text.count('<li class="hit ')


def _post_public_comment(base: str, browser: requests.Session) -> str:
    """Post a public comment holding a word of its own, through the API; return the word."""
    word = f"zq{uuid.uuid4().hex[:10]}"
    posted = browser.post(
        f"{base}/api/v1/codes/gpai-code/versions/2/comments",
        json={"clause": "objectives", "body": f"Public remark {word}."},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=10,
    )
    assert posted.status_code == 201, posted.text
    return word


def test_a_comment_is_searchable_through_the_worker_process_and_the_server_indexes_nothing():
    with tempfile.TemporaryDirectory(prefix="accord-worker-") as folder:
        tmp = Path(folder)
        env = server_env(
            f"sqlite:///{tmp}/accord.sqlite3",
            LOGIN_RATE_LIMIT="1000 per minute",
            SEARCH_INDEX_DIR=str(tmp / "index"),
            SEARCH_INDEXER_THREAD="0",
        )
        prepare_database(env)
        with live_server(env, tmp / "server.log") as server:
            word = _post_public_comment(server.url, login(server.url, "stakeholder@accord.example"))
            time.sleep(1.5)
            # The server does not index by itself when told not to.
            assert _search(server.url, word) == 0

            with (tmp / "worker.log").open("ab") as log:
                worker = subprocess.Popen(
                    [*FLASK, "search", "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                deadline = time.monotonic() + 30
                while _search(server.url, word) == 0:
                    assert worker.poll() is None, (tmp / "worker.log").read_text()
                    assert time.monotonic() < deadline, "the worker's index never reached the server's searches"
                    time.sleep(0.2)
            finally:
                worker.terminate()
                worker.wait(10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent has not collected it yet


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_gunicorn_runs_one_search_worker_beside_the_server_restarts_it_and_takes_it_down_with_it():
    with tempfile.TemporaryDirectory(prefix="accord-sidecar-") as folder:
        tmp = Path(folder)
        env = server_env(
            f"sqlite:///{tmp}/accord.sqlite3", LOGIN_RATE_LIMIT="1000 per minute", SEARCH_INDEX_DIR=str(tmp / "index")
        )
        prepare_database(env)
        server = LiveServer(free_port(), env, tmp / "server.log", gunicorn=True)
        server.start()
        try:
            first = server.search_worker_pid
            assert first is not None, (tmp / "server.log").read_text()
            # It gives way to the server on a shared core.
            _wait_for(
                lambda: os.getpriority(os.PRIO_PROCESS, first) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10),
                15,
                "the search worker runs at the server's priority",
            )
            browser = login(server.url, "stakeholder@accord.example")

            def searchable_comment() -> Callable[[], bool]:
                word = _post_public_comment(server.url, browser)
                return lambda: _search(server.url, word) == 1

            _wait_for(searchable_comment(), 30, "the search worker never indexed the comment")

            # A worker that dies is started again, and indexes what was queued meanwhile.
            os.kill(first, signal.SIGKILL)
            _wait_for(lambda: server.search_worker_pid not in (None, first), 30, "the search worker was not restarted")
            _wait_for(searchable_comment(), 30, "the restarted search worker never indexed the comment")

            # A master killed outright cannot stop its worker: the worker notices and stops by itself.
            second = server.search_worker_pid
            assert second is not None
            os.kill(server.pid, signal.SIGKILL)
            _wait_for(lambda: not _alive(second), 15, "the search worker outlived its server")
        finally:
            server.kill()
        assert "Traceback" not in (tmp / "server.log").read_text()


def test_the_search_worker_stops_with_the_server():
    with demo_server("accord-sidecar-stop-", gunicorn=True) as server:
        worker = server.search_worker_pid
        assert worker is not None
    _wait_for(lambda: not _alive(worker), 15, "the search worker outlived a server stopped cleanly")


def test_the_search_worker_stops_on_sigterm_even_where_sigint_is_ignored():
    """A shell's background job ignores SIGINT, and so does every process it starts: `make run &` included."""
    with tempfile.TemporaryDirectory(prefix="accord-worker-term-") as folder:
        tmp = Path(folder)
        env = server_env(
            f"sqlite:///{tmp}/accord.sqlite3", SEARCH_INDEX_DIR=str(tmp / "index"), SEARCH_INDEXER_THREAD="0"
        )
        prepare_database(env)
        # `trap '' INT` ignores SIGINT as a background job's shell does; exec keeps that for the worker.
        ignoring_sigint = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]
        worker = subprocess.Popen(
            [*ignoring_sigint, *FLASK, "search", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert worker.stdout is not None
        try:
            assert b"Indexing changes" in worker.stdout.readline()
            worker.send_signal(signal.SIGINT)
            time.sleep(1)
            assert worker.poll() is None  # ignored, as in a background job

            worker.terminate()

            assert worker.wait(10) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
            worker.stdout.close()
