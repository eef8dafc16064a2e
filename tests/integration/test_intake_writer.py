"""Group commit of comment intake: batches of plans stored in one transaction, each with its own answer."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app import create_app
from app.accounts.models import User
from app.comments import service
from app.comments.models import Comment
from app.comments.writer import writer_for
from app.db import db
from app.errors import ValidationFailed
from tests.conftest import PASSWORD
from tests.integration.test_comments_api import post, set_window


@pytest.fixture
def open_code(session, make_code):
    code = make_code(versions=2, published=1)
    set_window(session, code)
    return code


def plan_for(session, user: User, version, key: str, body: str = "A comment.") -> service.PlannedComment:
    planned = service.prepare_comment(session, user, version, service.Submission("c-2", body, key))
    assert isinstance(planned, service.PlannedComment)
    return planned


def test_a_batch_stores_new_keys_and_answers_repeated_ones_from_the_batch(session, make_user, open_code):
    alice, bob = make_user(), make_user()
    version = open_code.versions[0]
    first = plan_for(session, alice, version, "batch-key-01", "First.")
    same_again = plan_for(session, alice, version, "batch-key-01", "First.")
    other_body = plan_for(session, alice, version, "batch-key-01", "Something else.")
    bobs = plan_for(session, bob, version, "batch-key-01", "First.")

    results = service.store_comments(session, [first, same_again, other_body, bobs])
    session.commit()

    stored, replayed, refused, second = results
    assert isinstance(stored, service.Receipt)
    assert not stored.replayed
    assert replayed == dataclasses.replace(stored, replayed=True)
    assert isinstance(refused, ValidationFailed)
    assert isinstance(second, service.Receipt)
    assert second.comment_id != stored.comment_id
    rows = session.scalars(select(Comment).order_by(Comment.id)).all()
    assert [(c.author_id, c.body) for c in rows] == [(alice.id, "First."), (bob.id, "First.")]
    assert all(c.receipt_sha256 == service.receipt_hash(c) for c in rows)
    # A later batch finds the stored key.
    (again,) = service.store_comments(session, [plan_for(session, bob, version, "batch-key-02")])
    session.commit()
    (later,) = service.store_comments(session, [dataclasses.replace(bobs)])
    assert later == dataclasses.replace(second, replayed=True)
    assert again.comment_id not in (stored.comment_id, second.comment_id)


def store_behind_a_held_batch(app, holder: service.PlannedComment, plans: list[service.PlannedComment]) -> dict:
    """Keep the app's intake writer busy inside the holder's transaction until every plan is queued behind it,
    then let it go; return each plan's receipt, or what it raised, by idempotency key."""
    writer = writer_for(app)
    inside, release = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}

    def hold(session, receipt) -> None:
        inside.set()
        assert release.wait(30)

    def store(plan: service.PlannedComment, describe=lambda session, receipt: None) -> None:
        with app.app_context():
            try:
                outcomes[plan.idempotency_key] = writer.store(plan, describe)[0]
            except Exception as error:  # collected and asserted by the caller
                outcomes[plan.idempotency_key] = error

    holding = threading.Thread(target=store, args=(holder, hold))
    holding.start()
    assert inside.wait(30)
    threads = [threading.Thread(target=store, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    while writer.waiting < len(plans):
        threading.Event().wait(0.01)
    release.set()
    for thread in [holding, *threads]:
        thread.join(30)
    return outcomes


def test_plans_that_wait_together_are_committed_in_one_batch(app, session, make_user, open_code):
    users = [make_user() for _ in range(12)]
    version = open_code.versions[0]
    plans = [plan_for(session, user, version, f"together-{n:04d}") for n, user in enumerate(users)]
    writer = writer_for(app)

    answers = store_behind_a_held_batch(app, plan_for(session, make_user(), version, "holder-key-1"), plans)

    assert len(answers) == 13
    # The held batch, then one for the twelve that waited behind it.
    assert writer.batches == 2
    assert writer.largest_batch == 12
    session.expire_all()
    stored = {c.id: c for c in session.scalars(select(Comment))}
    assert len(stored) == 13
    for n, user in enumerate(users):
        receipt = answers[f"together-{n:04d}"]
        comment = stored[receipt.comment_id]
        assert (comment.author_id, comment.idempotency_key) == (user.id, f"together-{n:04d}")
        assert comment.receipt_sha256 == receipt.sha256 == service.receipt_hash(comment)


def test_a_plan_that_cannot_be_stored_fails_alone(app, session, make_user, open_code):
    version = open_code.versions[0]
    good = [plan_for(session, make_user(), version, f"good-key-{n:03d}") for n in range(3)]
    broken = dataclasses.replace(plan_for(session, make_user(), version, "broken-key-1"), version_id=999_999)

    outcomes = store_behind_a_held_batch(
        app, plan_for(session, make_user(), version, "holder-key-2"), [*good[:2], broken, good[2]]
    )

    assert isinstance(outcomes.pop("broken-key-1"), Exception)
    assert all(isinstance(receipt, service.Receipt) for receipt in outcomes.values())
    assert sorted(session.scalars(select(Comment.idempotency_key))) == sorted(
        ["holder-key-2", *(p.idempotency_key for p in good)]
    )


def test_waiting_submissions_never_starve_the_writer_of_a_connection(database_url, tmp_path, make_user, open_code):
    """A pool of one connection and eight parallel submissions: each request gives its connection back
    before it waits for the writer, which therefore always gets one."""
    small = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 20},
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "test-secret",
            "SEARCH_INDEX_DIR": str(tmp_path / "small-index"),
            "SEARCH_INDEXER_THREAD": False,
            "SERVER_NAME": "accord.test",
        }
    )
    emails = [make_user().email for _ in range(8)]
    answers: list[int] = []
    start = threading.Barrier(8, timeout=30)

    def submit(email: str) -> None:
        # No app context of the thread's own: each request pushes one and removes its session with it.
        browser = small.test_client()
        login = browser.post("/login", data={"email": email, "password": PASSWORD})
        assert login.status_code == 302
        start.wait()
        answers.append(post(browser, key=uuid.uuid4().hex).status_code)

    threads = [threading.Thread(target=submit, args=(email,)) for email in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with small.app_context():
        stored = db.session.scalar(select(func.count()).select_from(Comment))
        db.session.remove()
        db.engine.dispose()

    assert answers == [201] * 8
    assert stored == 8
