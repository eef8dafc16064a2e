"""Indexing in a process of its own: a server with SEARCH_INDEXER_THREAD=0 and `flask search worker` beside it."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

from tests.support.live import FLASK, ROOT, live_server, login, prepare_database, server_env


def _search(base: str, word: str) -> int:
    """How many hits the public search page lists for `word`."""
    answer = requests.get(f"{base}/search", params={"q": word}, timeout=10)
    assert answer.status_code == 200
    return answer.text.count('<li class="hit ')


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
            word = f"zq{uuid.uuid4().hex[:10]}"
            browser = login(server.url, "stakeholder@accord.example")
            posted = browser.post(
                f"{server.url}/api/v1/codes/gpai-code/versions/2/comments",
                json={"clause": "objectives", "body": f"Public remark {word}."},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=10,
            )
            assert posted.status_code == 201, posted.text
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
