"""Group commit of comment intake: batches of plans stored in one transaction, each with its own answer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from app import create_app
from app.accounts import service as accounts
from app.accounts.models import Membership, Role, User
from app.audit.models import AuditEvent
from app.comments import reports, service
from app.comments import writer as writer_module
from app.comments.models import Comment, IntakeAttempt
from app.comments.writer import writer_for
from app.db import db
from app.errors import Conflict, Forbidden, ValidationFailed
from app.search.models import SearchQueueItem
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


def test_a_batch_writes_each_comments_audit_event_search_entry_and_anchors_in_every_later_version(
    session, make_user, make_code
):
    code = make_code(versions=3, published=1)
    set_window(session, code)
    first, second, third = code.versions
    alice, bob = make_user(), make_user()
    # c-2 reads the same in v2 and is gone from v3; c-1 is rewritten in v2 and kept as is in v3.
    kept_then_gone = service.Submission("c-2", "Opt-outs need a standard.", "chain-key-01", quote="respect opt-outs")
    rewritten = service.Submission("c-1", "Say which models.", "chain-key-02", quote="Providers shall document")
    plans = [service.prepare_comment(session, u, first, sub) for u, sub in ((alice, kept_then_gone), (bob, rewritten))]
    session.rollback()

    receipts = service.store_comments(session, plans)
    session.commit()

    session.expire_all()
    gone, kept = (session.get_one(Comment, r.comment_id) for r in receipts)

    def anchors(comment: Comment) -> list[tuple[int, str | None, str]]:
        return [
            (a.version_id, a.clause_key, a.state.value) for a in sorted(comment.anchors, key=lambda a: a.version_id)
        ]

    states = {c.clause_key: anchors(c) for c in (gone, kept)}
    assert states == {
        "c-2": [(second.id, "c-2", "anchored"), (third.id, None, "orphaned")],
        "c-1": [(second.id, "c-1", "anchored"), (third.id, "c-1", "anchored")],
    }
    text_in_second = service.clause_texts(second)["c-1"]
    anchor = kept.anchor_in(second.id)
    assert text_in_second[anchor.start : anchor.end] == "Providers shall document"
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "comment.submitted")).all()
    assert sorted((e.actor_id, e.object_id, e.detail) for e in events) == sorted(
        [(alice.id, str(gone.id), {"version": first.id}), (bob.id, str(kept.id), {"version": first.id})]
    )
    assert all(e.created_at is not None for e in events)
    queued = set(session.scalars(select(SearchQueueItem.source)))
    assert {f"comment:{gone.id}", f"comment:{kept.id}"} <= queued
    assert all(
        c.receipt_sha256 == service.receipt_hash(c) == r.sha256 for c, r in zip((gone, kept), receipts, strict=True)
    )


def test_a_retry_of_a_comment_an_admin_hid_is_refused_with_a_reason(session, make_user, open_code):
    alice, admin = make_user(), make_user(admin=True)
    version = open_code.versions[0]
    (receipt,) = service.store_comments(session, [plan_for(session, alice, version, "hidden-key-01")])
    session.commit()
    reports.hide_comment(session, admin, session.get_one(Comment, receipt.comment_id), "Sent in someone's name.")
    session.commit()

    retried_in_a_batch = service.store_comments(session, [plan_for(session, alice, version, "hidden-key-01")])
    session.commit()
    session.add(Membership(user_id=alice.id, working_group_id=open_code.working_group_id, role=Role.OBSERVER))
    session.commit()
    with pytest.raises(Conflict, match="hidden"):
        # Refused by the request's checks (now an observer), the key is looked up there.
        service.prepare_comment(session, alice, version, service.Submission("c-2", "A comment.", "hidden-key-01"))

    (answer,) = retried_in_a_batch
    assert isinstance(answer, Conflict)
    assert "hidden" in answer.message
    assert (
        session.scalar(select(func.count()).select_from(Comment).execution_options(include_hidden_comments=True)) == 1
    )


@contextmanager
def held_writer(app, holder: service.PlannedComment) -> Iterator[dict]:
    """Keep the app's intake writer busy with the holder's batch for the duration of the block, so that plans
    queue up behind it; yields the outcomes of stores made with `store_in_thread`. The writer waits before
    its transaction writes anything, so the rest of the app can still write (as it can while a real batch
    is being prepared)."""
    inside, release = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}
    store_and_describe = writer_module._store_and_describe

    def gated(session, batch):
        if any(job.plan is holder for job in batch):
            inside.set()
            assert release.wait(30)
        return store_and_describe(session, batch)

    writer_module._store_and_describe = gated
    try:
        holding = store_in_thread(app, holder, outcomes)
        assert inside.wait(30)
        try:
            yield outcomes
        finally:
            release.set()
            holding.join(30)
    finally:
        writer_module._store_and_describe = store_and_describe


def store_in_thread(app, plan, outcomes: dict, describe=lambda session, receipt: None) -> threading.Thread:
    """Store `plan` through the app's writer in a thread; its receipt, or what it raised, goes in `outcomes`."""

    key = plan.submission.idempotency_key if isinstance(plan, service.Intake) else plan.idempotency_key

    def store() -> None:
        with app.app_context():
            try:
                outcomes[key] = writer_for(app).store(plan, describe)[0]
            except Exception as error:  # collected and asserted by the caller
                outcomes[key] = error

    thread = threading.Thread(target=store)
    thread.start()
    return thread


def store_behind_a_held_batch(app, holder: service.PlannedComment, plans: list[service.PlannedComment]) -> dict:
    """Queue every plan behind the holder's batch, then let it go; return each plan's receipt, or what it
    raised, by idempotency key."""
    writer = writer_for(app)
    with held_writer(app, holder) as outcomes:
        threads = [store_in_thread(app, plan, outcomes) for plan in plans]
        while writer.waiting < len(plans):
            threading.Event().wait(0.01)
    for thread in threads:
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


def test_a_database_failure_fails_the_whole_batch_at_once(app, session, make_user, open_code):
    """Storing the plans one by one would only repeat a stuck database's wait once per plan."""
    version = open_code.versions[0]
    plans = [plan_for(session, make_user(), version, f"stuck-key-{n:03d}") for n in range(3)]

    def locked(session, receipt) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    writer = writer_for(app)
    with held_writer(app, plan_for(session, make_user(), version, "holder-key-3")) as outcomes:
        threads = [store_in_thread(app, plan, outcomes, locked) for plan in plans[:1]]
        threads += [store_in_thread(app, plan, outcomes) for plan in plans[1:]]
        while writer.waiting < 3:
            threading.Event().wait(0.01)
    for thread in threads:
        thread.join(30)

    assert [type(outcomes[p.idempotency_key]) for p in plans] == [OperationalError] * 3
    assert list(session.scalars(select(Comment.idempotency_key))) == ["holder-key-3"]


def test_a_reply_planned_before_its_parent_was_withdrawn_is_refused_at_the_write(session, make_user, open_code, group):
    version = open_code.versions[0]
    author, replier, observer = make_user(), make_user(), make_user()
    parent = service.submit_comment(session, author, version, service.Submission("c-2", "Parent.", "parent-key-1"))
    session.commit()
    reply = service.prepare_comment(
        session, replier, version, service.Submission("c-2", "Reply.", "reply-key-01", parent_id=parent.comment_id)
    )
    observed = plan_for(session, observer, version, "observer-key1")
    service.withdraw_comment(session, author, session.get(Comment, parent.comment_id))
    accounts.set_role(session, None, group, observer, Role.OBSERVER)
    session.commit()

    refused_reply, refused_observer = service.store_comments(session, [reply, observed])

    assert isinstance(refused_reply, Conflict)
    assert isinstance(refused_observer, Forbidden)
    assert session.scalar(select(func.count()).select_from(Comment)) == 1


def test_a_submission_not_confirmed_in_time_is_judged_by_its_first_sight_on_retry(
    app, client, session, make_user, login, open_code, monkeypatch
):
    """The writer is stuck past the deadline: the first attempt gets 503 (its plan still queued), the retry
    comes after the consultation closed. The retry is on time, and one comment is stored."""
    monkeypatch.setattr(writer_module, "WAIT_SECONDS", 1.5)
    user = make_user()
    login(user)
    # The consultation closes between the first attempt and its 503.
    open_code.consultation_closes_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.8)
    session.commit()
    with client.session_transaction() as signed_in:
        cookie = dict(signed_in)
    version = open_code.versions[0]
    answers: list[Any] = []

    def retry() -> None:
        browser = app.test_client()
        with browser.session_transaction() as state:
            state.update(cookie)
        answers.append(post(browser, key="late-key-0001", body="Sent before the deadline."))

    with held_writer(app, plan_for(session, make_user(), version, "holder-key-4")):
        first = post(client, key="late-key-0001", body="Sent before the deadline.")
        assert first.status_code == 503
        attempt = session.scalars(select(IntakeAttempt).where(IntakeAttempt.idempotency_key == "late-key-0001")).one()
        assert attempt.first_seen_at < open_code.consultation_closes_at
        time.sleep(max(0.0, (open_code.consultation_closes_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
        retrying = threading.Thread(target=retry)
        retrying.start()
        while writer_for(app).waiting < 2:
            threading.Event().wait(0.01)
    retrying.join(30)

    assert [a.status_code for a in answers] == [200]
    assert answers[0].get_json()["receipt"]["replayed"] is True
    stored = session.scalars(select(Comment).where(Comment.idempotency_key == "late-key-0001")).all()
    assert len(stored) == 1
    assert stored[0].created_at < open_code.consultation_closes_at


def test_sqlite_syncs_every_commit_to_disk(session):
    """A receipt promises a durable comment: on SQLite that needs synchronous=FULL (NORMAL, with WAL, keeps a
    commit across a crash of the process but not across a power loss)."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("a SQLite setting; PostgreSQL syncs commits by default (synchronous_commit=on)")
    assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def intake_of(user: User, key: str, *, slug: str = "test-code", number: int = 1, login_id: str | None = None,
              received_at: dt.datetime | None = None) -> service.Intake:  # fmt: skip
    return service.Intake(
        login_id if login_id is not None else user.get_id(),
        slug,
        number,
        service.Submission("c-2", "A comment.", key),
        received_at or dt.datetime.now(dt.UTC),
    )


def test_the_writer_checks_who_sent_each_submission_of_a_batch_and_where_it_goes(session, make_user, open_code, group):
    """The request reads nothing; every check it used to make happens at the write, one answer per submission."""
    author, observer, erased, stale = make_user(), make_user(Role.OBSERVER, group), make_user(), make_user()
    stale_login = stale.get_id()
    stale.session_generation += 1  # a password change: every older session has ended
    erased.deleted_at = dt.datetime.now(dt.UTC)
    session.commit()

    results = service.plan_intakes(
        session,
        [
            intake_of(author, "check-key-01"),
            intake_of(author, "check-key-02", slug="no-such-code"),
            intake_of(author, "check-key-03", number=2),  # not published: stakeholders cannot see it
            intake_of(author, "check-key-04", number=7),
            intake_of(observer, "check-key-05"),
            intake_of(stale, "check-key-06", login_id=stale_login),
            intake_of(erased, "check-key-07"),
            intake_of(author, "check-key-08", login_id="not-a-login-id"),
        ],
    )

    planned, *refused = results
    assert isinstance(planned, service.PlannedComment)
    assert (planned.author_id, planned.version_id) == (author.id, open_code.versions[0].id)
    assert [type(r).__name__ for r in refused] == [
        "NotFound", "NotFound", "NotFound", "Forbidden", "Unauthorized", "Unauthorized", "Unauthorized",
    ]  # fmt: skip
    assert session.scalar(select(func.count()).select_from(Comment)) == 0


def test_timeliness_is_judged_by_when_the_submission_arrived_not_when_it_is_written(session, make_user, open_code):
    author = make_user()
    closed_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    open_code.consultation_closes_at = closed_at
    session.commit()

    in_time, late = service.plan_intakes(
        session,
        [
            intake_of(author, "arrival-key-1", received_at=closed_at - dt.timedelta(milliseconds=5)),
            intake_of(author, "arrival-key-2", received_at=closed_at + dt.timedelta(milliseconds=5)),
        ],
    )

    assert isinstance(in_time, service.PlannedComment)
    assert in_time.received_at == closed_at - dt.timedelta(milliseconds=5)
    assert isinstance(late, Forbidden)


def test_a_batch_mixing_checked_plans_refusals_and_replays_answers_each_in_order(app, session, make_user, open_code):
    author, other = make_user(), make_user()
    version = open_code.versions[0]
    stored = service.submit_comment(session, author, version, service.Submission("c-2", "A comment.", "mixed-key-01"))
    session.commit()
    outcomes: dict[str, Any] = {}
    jobs = [
        intake_of(author, "mixed-key-01"),  # a retry of a stored comment
        intake_of(author, "mixed-key-02", slug="no-such-code"),
        plan_for(session, other, version, "mixed-key-03"),  # checked elsewhere, stored as it is
        intake_of(other, "mixed-key-04"),
    ]
    session.commit()

    with held_writer(app, plan_for(session, other, version, "mixed-key-00")):
        threads = [store_in_thread(app, job, outcomes) for job in jobs]
        writer = writer_for(app)
        while writer.waiting < len(jobs):
            threading.Event().wait(0.01)
    for thread in threads:
        thread.join(30)

    replay, missing, checked_elsewhere, fresh = (outcomes[key] for key in (
        "mixed-key-01", "mixed-key-02", "mixed-key-03", "mixed-key-04"))  # fmt: skip
    assert replay == dataclasses.replace(stored, replayed=True)
    assert type(missing).__name__ == "NotFound"
    assert isinstance(checked_elsewhere, service.Receipt)
    assert not checked_elsewhere.replayed
    assert isinstance(fresh, service.Receipt)
    assert not fresh.replayed
    keys = set(session.scalars(select(Comment.idempotency_key)))
    assert keys == {"mixed-key-00", "mixed-key-01", "mixed-key-03", "mixed-key-04"}


def test_a_session_ended_by_a_password_change_cannot_comment_through_the_api(
    client, session, make_user, login, open_code
):
    author = make_user()
    login(author)
    author.session_generation += 1
    session.commit()

    response = post(client, "ended-key-01")

    assert response.status_code == 401
    assert "Log in to comment" in response.get_json()["message"]
    assert session.scalar(select(func.count()).select_from(Comment)) == 0


def test_a_submission_from_an_ended_session_not_confirmed_in_time_answers_503_and_notes_nothing(
    app, client, session, make_user, login, open_code, monkeypatch
):
    monkeypatch.setattr(writer_module, "WAIT_SECONDS", 0.5)
    author = make_user()
    login(author)
    author.session_generation += 1
    session.commit()

    with held_writer(app, plan_for(session, make_user(), open_code.versions[0], "holder-key-5")):
        response = post(client, key="ended-key-02")
    # Queued behind the timed-out submission: once this is stored, the writer has answered that one too.
    writer_for(app).store(plan_for(session, make_user(), open_code.versions[0], "after-key-01"), lambda s, r: None)
    session.commit()

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert session.scalar(select(func.count()).select_from(IntakeAttempt)) == 0
    assert session.scalar(select(Comment.id).where(Comment.idempotency_key == "ended-key-02")) is None
