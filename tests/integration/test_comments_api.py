"""The comment API: receipts, idempotency (also under 50 parallel retries), anchors, errors, admission control
and the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select

from app.accounts.models import Membership, Role
from app.comments import intake, service
from app.comments.models import Comment, IntakeAttempt
from app.db import db, utcnow

URL = "/api/v1/codes/test-code/versions/1/comments"
HOUR = dt.timedelta(hours=1)
COPYRIGHT = "## Copyright {#c-2}\n\nProviders shall respect opt-outs.\n"


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def set_window(session, code, opens: dt.timedelta = -HOUR, closes: dt.timedelta = HOUR) -> None:
    now = utcnow()
    code.consultation_opens_at, code.consultation_closes_at = now + opens, now + closes
    session.commit()


def post(client, key: str | None = None, **fields):
    payload = {"clause": "c-2", "body": "Opt-outs need a machine-readable standard.", **fields}
    return client.post(URL, json=payload, headers={"Idempotency-Key": key or uuid.uuid4().hex})


@pytest.fixture
def open_code(session, make_code):
    code = make_code(versions=2, published=1)
    set_window(session, code)
    return code


@pytest.fixture
def stakeholder(make_user, login, open_code):
    user = make_user()
    login(user)
    return user


# --- receipts and idempotency --------------------------------------------------------------------


def test_the_receipt_hash_recomputes_from_the_stored_comment(client, session, stakeholder):
    response = post(client, key="receipt-key-01", body="Check the hash.", type="editorial")

    assert response.status_code == 201
    answer = response.get_json()
    receipt = answer["receipt"]
    assert set(receipt) == {"comment_id", "received_at", "sha256", "replayed"}
    assert receipt["replayed"] is False
    session.expire_all()
    stored = session.get(Comment, receipt["comment_id"])
    assert stored.receipt_sha256 == receipt["sha256"] == service.receipt_hash(stored)
    assert dt.datetime.fromisoformat(receipt["received_at"]) == stored.created_at
    assert stored.author_id == stakeholder.id
    assert answer["comment"]["id"] == stored.id
    assert (answer["comment"]["body"], answer["comment"]["type"]) == ("Check the hash.", "editorial")
    # The hash covers what was stored: change a stored field and it no longer matches.
    stored.body = "Tampered."
    assert service.receipt_hash(stored) != receipt["sha256"]
    session.rollback()


def test_the_same_key_and_body_store_one_comment_and_replay_its_receipt(client, session, stakeholder):
    first = post(client, key="same-key-0001", body="Only once.")
    again = post(client, key="same-key-0001", body="Only once.")
    by_body_field = client.post(URL, json={"clause": "c-2", "body": "Only once.", "idempotency_key": "same-key-0001"})

    assert first.status_code == 201
    assert again.status_code == 200
    assert by_body_field.status_code == 200
    assert again.get_json()["receipt"] == {**first.get_json()["receipt"], "replayed": True}
    assert again.get_json()["comment"] == first.get_json()["comment"]
    assert count(session, Comment) == 1


def test_the_same_key_with_a_different_body_is_refused_with_422(client, session, stakeholder):
    first = post(client, key="same-key-0002", body="The original.")
    other = post(client, key="same-key-0002", body="Something else.")

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.get_json()["fields"] == {"idempotency_key": "Already used for a different comment."}
    assert [c.body for c in session.scalars(select(Comment))] == ["The original."]


def test_a_retry_the_checks_would_now_refuse_still_gets_its_receipt(client, session, stakeholder, group):
    first = post(client, key="same-key-0003", body="Sent while I could comment.")
    # Since then the author joined the working group as an observer, who may not comment.
    session.add(Membership(user_id=stakeholder.id, working_group_id=group.id, role=Role.OBSERVER))
    session.commit()
    retry = post(client, key="same-key-0003", body="Sent while I could comment.")
    other = post(client, key="same-key-0003", body="")
    new = post(client, key="same-key-0004", body="Sent while I could comment.")

    assert first.status_code == 201
    assert retry.status_code == 200
    assert retry.get_json()["receipt"] == {**first.get_json()["receipt"], "replayed": True}
    # A different request under the stored key is told about the key, not about the empty body.
    assert other.status_code == 422
    assert other.get_json()["fields"] == {"idempotency_key": "Already used for a different comment."}
    assert new.status_code == 403
    assert count(session, Comment) == 1


def test_the_same_key_from_two_people_stores_two_comments(client, session, make_user, login, stakeholder):
    first = post(client, key="shared-key-001")
    login(make_user())
    second = post(client, key="shared-key-001")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json()["receipt"]["comment_id"] != second.get_json()["receipt"]["comment_id"]
    assert count(session, Comment) == 2


def test_fifty_parallel_submissions_with_one_key_store_exactly_one_comment(app, client, session, stakeholder):
    with client.session_transaction() as signed_in:
        cookie = dict(signed_in)
    answers: list[tuple[int, int | None]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(50, timeout=30)

    def submit() -> None:
        with app.app_context():
            try:
                browser = app.test_client()
                with browser.session_transaction() as state:
                    state.update(cookie)
                start.wait()
                response = post(browser, key="parallel-key-1", body="Sent fifty times at once.")
                body = response.get_json() or {}
                answers.append((response.status_code, body.get("receipt", {}).get("comment_id")))
            except BaseException as error:  # collected and asserted below
                errors.append(error)
            finally:
                db.session.remove()

    # Admission control is tested on its own below; here every request must get through to race on the key.
    intake.configure(50)
    threads = [threading.Thread(target=submit) for _ in range(50)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        intake.configure(32)

    assert errors == []
    assert len(answers) == 50
    assert sorted(status for status, _ in answers) == [200] * 49 + [201], sorted(s for s, _ in answers)
    assert len({comment_id for _, comment_id in answers}) == 1
    stored = session.scalars(select(Comment)).all()
    assert [c.id for c in stored] == [answers[0][1]]
    assert stored[0].author_id == stakeholder.id


# --- anchors and validation ----------------------------------------------------------------------


def test_start_and_end_store_the_quote_with_its_context(client, session, stakeholder):
    start = COPYRIGHT.index("respect")

    response = post(client, start=start, end=start + len("respect opt-outs"))

    assert response.status_code == 201, response.get_json()
    stored = session.get(Comment, response.get_json()["receipt"]["comment_id"])
    assert (stored.quote, stored.start, stored.end) == ("respect opt-outs", start, start + 16)
    assert stored.prefix == COPYRIGHT[max(0, start - 32) : start]
    assert stored.suffix == ".\n"
    assert response.get_json()["comment"]["quote"] == "respect opt-outs"


def test_a_quote_alone_is_located_in_the_clause(client, session, stakeholder):
    response = post(client, quote="shall respect", proposed_text="must respect")

    assert response.status_code == 201, response.get_json()
    stored = session.get(Comment, response.get_json()["receipt"]["comment_id"])
    start = COPYRIGHT.index("shall respect")
    assert (stored.quote, stored.start, stored.end) == ("shall respect", start, start + len("shall respect"))
    assert stored.proposed_text == "must respect"


def test_invalid_comments_are_refused_with_422_and_nothing_stored(client, session, stakeholder):
    cases = [
        ("quote not in the clause", {"quote": "respect copyright"}, "quote"),
        ("quote found twice", {"clause": "c-1", "quote": "s"}, "quote"),
        ("quote differs from the range", {"start": 5, "end": 12, "quote": "not what is there"}, "quote"),
        ("range outside the clause", {"start": 40, "end": 400}, "start"),
        ("empty range", {"start": 12, "end": 12}, "start"),
        ("proposed text without a quote", {"proposed_text": "Providers must respect opt-outs."}, "proposed_text"),
        ("unknown clause", {"clause": "c-99"}, "clause_key"),
        ("oversized body", {"body": "x" * (service.MAX_BODY + 1)}, "body"),
        ("blank body", {"body": "   "}, "body"),
        (
            "oversized proposal",
            {"quote": "opt-outs", "proposed_text": "p" * (service.MAX_PROPOSAL + 1)},
            "proposed_text",
        ),
        ("unknown type", {"type": "rant"}, "type"),
        ("unknown visibility", {"visibility": "secret"}, "visibility"),
    ]

    for case, fields, field in cases:
        response = post(client, **fields)

        assert response.status_code == 422, (case, response.get_json())
        answer = response.get_json()
        assert answer["error"] == "Invalid input", case
        assert field in answer["fields"], (case, answer)
        assert answer["message"].startswith("The comment was not accepted:"), case
    assert count(session, Comment) == 0
    # The limit itself is allowed.
    assert post(client, body="y" * service.MAX_BODY).status_code == 201


# --- errors --------------------------------------------------------------------------------------


def test_an_anonymous_post_answers_401_json(client, session, open_code):
    response = post(client)

    assert response.status_code == 401
    assert response.is_json
    assert response.get_json()["status"] == 401
    assert "Log in" in response.get_json()["message"]
    assert count(session, Comment) == 0


def test_a_non_json_body_answers_415_json(client, session, stakeholder):
    form = client.post(URL, data={"clause": "c-2", "body": "As a form."}, headers={"Idempotency-Key": "form-key-01"})
    text = client.post(URL, data='{"clause": "c-2", "body": "x"}', content_type="text/plain",
                       headers={"Idempotency-Key": "text-key-01"})  # fmt: skip

    for response in (form, text):
        assert response.status_code == 415
        assert response.get_json()["error"] == "Unsupported media type"
    assert count(session, Comment) == 0


def test_wrong_field_types_answer_422_json(client, session, stakeholder):
    cases = [
        {"body": 42},
        {"clause": ["c-2"]},
        {"start": "3", "end": 9},
        {"start": 3, "end": 9.5},
        {"quote": {"text": "respect"}},
        {"parent_id": "1"},
        {"type": 1},
        {"visibility": False},
    ]

    for fields in cases:
        response = post(client, **fields)

        assert response.status_code == 422, (fields, response.status_code)
        assert response.is_json
        assert set(response.get_json()["fields"]) & set(fields), fields
    not_an_object = client.post(URL, json=["c-2", "body"], headers={"Idempotency-Key": "list-key-01"})
    assert not_an_object.status_code == 422
    assert not_an_object.get_json()["message"] == "Send a JSON object."
    assert count(session, Comment) == 0


def test_a_json_boolean_is_not_taken_for_an_integer(client, session, stakeholder):
    # JSON true/false are not integers (the OpenAPI schema says integer), though Python's bool is an int.
    for fields in ({"start": True, "end": 5}, {"start": 0, "end": True}):
        response = post(client, **fields)

        assert response.status_code == 422, (fields, response.status_code)
        assert set(response.get_json()["fields"]) & set(fields), fields
    assert count(session, Comment) == 0


def test_a_missing_or_malformed_idempotency_key_answers_422(client, session, stakeholder):
    missing = client.post(URL, json={"clause": "c-2", "body": "No key."})
    short = post(client, key="short")
    odd = post(client, key="has spaces in it")

    for response in (missing, short, odd):
        assert response.status_code == 422
        assert "idempotency_key" in response.get_json()["fields"]
    assert count(session, Comment) == 0


# --- reading -------------------------------------------------------------------------------------


def test_list_thread_and_dispositions_endpoints_return_what_was_stored(
    app, client, session, make_user, group, stakeholder
):
    root = post(client, body="Root.", quote="opt-outs").get_json()["comment"]
    reply = post(client, body="Reply.", parent_id=root["id"]).get_json()["comment"]

    listed = client.get(URL).get_json()["comments"]
    thread = client.get(f"/api/v1/comments/{reply['id']}").get_json()
    matrix = client.get("/api/v1/codes/test-code/versions/1/dispositions").get_json()["comments"]

    assert [c["id"] for c in listed] == [root["id"]]
    assert [r["id"] for r in listed[0]["replies"]] == [reply["id"]]
    assert thread["id"] == root["id"]
    assert thread["quote"] == "opt-outs"
    assert [r["body"] for r in thread["replies"]] == ["Reply."]
    assert sorted(row["comment_id"] for row in matrix) == sorted([root["id"], reply["id"]])
    assert set(matrix[0]) == set(service.MATRIX_COLUMNS)
    assert app.test_client().get("/api/v1/comments/999999").status_code == 404


def test_openapi_document_is_valid_and_lists_the_comment_endpoints(client):
    document = client.get("/api/openapi.json").get_json()

    validate(document)
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/codes/{slug}/versions/{number}/comments"])
    assert "get" in paths["/api/v1/comments/{comment_id}"]
    assert "get" in paths["/api/v1/codes/{slug}/versions/{number}/dispositions"]
    submit = paths["/api/v1/codes/{slug}/versions/{number}/comments"]["post"]
    assert {"200", "201", "401", "403", "404", "415", "422", "503"} <= set(submit["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in submit["parameters"])


# --- admission control ---------------------------------------------------------------------------


def _hold_the_only_slot() -> tuple[threading.Thread, threading.Event]:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with intake.intake_slot(wait_seconds=5):
            held.set()
            release.wait(15)

    intake.configure(1)
    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5), "the holder thread got the slot"
    return holder, release


def test_when_no_intake_slot_frees_up_the_answer_is_503_with_retry_after_and_a_retry_counts_as_on_time(
    client, session, open_code, stakeholder
):
    set_window(session, open_code, -HOUR, dt.timedelta(minutes=10))
    holder, release = _hold_the_only_slot()
    try:
        refused = post(client, key="deadline-key-1", body="Sent at the last minute.")
    finally:
        release.set()
        holder.join()
        intake.configure(32)

    assert refused.status_code == 503
    assert refused.is_json
    assert int(refused.headers["Retry-After"]) > 0
    assert "not lost" in refused.get_json()["message"]
    assert count(session, Comment) == 0
    # Near the deadline the refused attempt is remembered, so its retry is judged by when it was first seen.
    attempt = session.scalars(select(IntakeAttempt)).one()
    assert (attempt.author_id, attempt.idempotency_key) == (stakeholder.id, "deadline-key-1")

    # The window closes after that first attempt and before the retry.
    open_code.consultation_closes_at = attempt.first_seen_at + dt.timedelta(milliseconds=1)
    session.commit()
    assert utcnow() > open_code.consultation_closes_at
    retry = post(client, key="deadline-key-1", body="Sent at the last minute.")
    other = post(client, key="deadline-key-2", body="Sent at the last minute.")

    assert retry.status_code == 201, retry.get_json()
    assert other.status_code == 403
    assert count(session, Comment) == 1


def test_members_comment_on_drafts_observers_never_and_outsiders_do_not_see_drafts(
    client, session, make_user, group, login, open_code
):
    login(make_user(Role.MEMBER, group))
    member = client.post(
        "/api/v1/codes/test-code/versions/2/comments",
        json={"clause": "c-3", "body": "On the draft.", "visibility": "group"},
        headers={"Idempotency-Key": "member-key-01"},
    )
    login(make_user(Role.OBSERVER, group))
    observer = post(client, key="observer-key-1")
    login(make_user())
    outsider = client.post(
        "/api/v1/codes/test-code/versions/2/comments",
        json={"clause": "c-3", "body": "On the draft."},
        headers={"Idempotency-Key": "hidden-key-01"},
    )

    assert member.status_code == 201
    assert member.get_json()["comment"]["visibility"] == "group"
    assert observer.status_code == 403
    assert outsider.status_code == 404
    assert count(session, Comment) == 1
