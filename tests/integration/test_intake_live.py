"""Comment intake over real HTTP, against both servers: `flask serve` (threads, as `make run` serves) and
gunicorn with deploy/gunicorn.conf.py (gevent, as production serves).

The in-process tests (test_comments_api.py, test_intake_writer.py) cover the rules; these check that the
intake writer, admission control and idempotency hold the same when every request is a greenlet and the
writer is one too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.support.live import LiveServer, demo_server, login

STAKEHOLDER = "stakeholder@accord.example"
COMMENTS = "/api/v1/codes/gpai-code/versions/2/comments"
PARALLEL = 50


@pytest.fixture(scope="module", params=["flask serve", "gunicorn gevent"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with demo_server("accord-intake-", gunicorn=request.param == "gunicorn gevent") as running:
        assert requests.get(running.url + "/healthz", timeout=5).json()["socketio_mode"] == (
            "gevent" if request.param == "gunicorn gevent" else "threading"
        )
        yield running


@pytest.fixture(scope="module")
def cookie(server: LiveServer) -> str:
    session = login(server.url, STAKEHOLDER)
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


@pytest.fixture(scope="module")
def clause(server: LiveServer) -> str:
    version = requests.get(server.url + "/api/v1/codes/gpai-code/versions/2", timeout=10).json()
    return str(version["clauses"][1]["key"])


def post_all(server: LiveServer, cookie: str, requests_to_send: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Send every (key, body) at once, one connection each; return (status, JSON) in the same order."""

    def send(item: tuple[str, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        key, payload = item
        response = requests.post(
            server.url + COMMENTS,
            json=payload,
            headers={"Cookie": cookie, "Idempotency-Key": key},
            timeout=60,
        )
        return response.status_code, response.json()

    with ThreadPoolExecutor(len(requests_to_send)) as pool:
        return list(pool.map(send, requests_to_send))


def stored_bodies(server: LiveServer, cookie: str) -> list[str]:
    listed = requests.get(server.url + COMMENTS, headers={"Cookie": cookie}, timeout=10).json()
    return [comment["body"] for comment in listed["comments"]]


def test_fifty_parallel_sends_of_one_submission_store_one_comment(server: LiveServer, cookie: str, clause: str) -> None:
    key = f"one-key-{uuid.uuid4().hex}"
    body = f"Sent fifty times at once ({key})."
    answers = post_all(server, cookie, [(key, {"clause": clause, "body": body})] * PARALLEL)

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * (PARALLEL - 1) + [201], statuses
    receipts = {(a["receipt"]["comment_id"], a["receipt"]["received_at"], a["receipt"]["sha256"]) for _, a in answers}
    assert len(receipts) == 1  # the same comment id, time and SHA-256 for every one of them
    assert sorted(a["receipt"]["replayed"] for _, a in answers) == [False] + [True] * (PARALLEL - 1)
    assert stored_bodies(server, cookie).count(body) == 1


def test_fifty_parallel_submissions_are_each_stored_once(server: LiveServer, cookie: str, clause: str) -> None:
    run = uuid.uuid4().hex
    sent = [(f"{run}-{n}", {"clause": clause, "body": f"Parallel comment {n} of run {run}."}) for n in range(PARALLEL)]
    answers = post_all(server, cookie, sent)

    assert [status for status, _ in answers] == [201] * PARALLEL
    ids = {answer["receipt"]["comment_id"] for _, answer in answers}
    assert len(ids) == PARALLEL
    stored = [b for b in stored_bodies(server, cookie) if b.endswith(f"of run {run}.")]
    assert sorted(stored) == sorted(payload["body"] for _, payload in sent)
    # Every answer names its own submission.
    assert [answer["comment"]["body"] for _, answer in answers] == [payload["body"] for _, payload in sent]
