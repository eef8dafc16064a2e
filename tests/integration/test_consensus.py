"""Consensus tracking on SQLite and PostgreSQL: forums, rounds with frozen rules, positions with history,
one position per organisation, parallel submissions counted once, access, calls, pages, exports and the API."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.accounts.models import MailKind, Role, StakeholderCategory
from app.audit.models import AuditEvent
from app.comments import service as comments
from app.comments.models import Notification
from app.consensus import announcements, service
from app.consensus.announcements import announce_due_rounds
from app.consensus.models import Forum, ForumKind, Position, PositionRevision, Round
from app.consensus.tally import Answer, Level, Thresholds, tally
from app.db import db, in_transaction, utcnow
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.mail.sender import MailSettings, compose
from app.mail.service import kind_of
from app.outbox.models import OutboxMessage

HOUR = dt.timedelta(hours=1)
SMALL = Thresholds(min_participants=2, min_category_answers=1)


@pytest.fixture
def world(session, make_user, make_code, group):
    """A code with two published versions, a chair, a member, an outsider and two forums."""
    code = make_code()
    chair = make_user(Role.CHAIR, group)
    member = make_user(Role.MEMBER, group, category=StakeholderCategory.GPAI_PROVIDER, organisation="ModelCo")
    outsider = make_user(category=StakeholderCategory.CIVIL_SOCIETY, organisation="Rights Watch")
    colleague = make_user(category=StakeholderCategory.GPAI_PROVIDER, organisation="  modelco ")
    admin = make_user(admin=True)
    plenary = service.create_forum(session, chair, slug="plenary", name="Plenary", kind="plenary", working_group=group)
    alliance = service.create_forum(
        session, admin, slug="alliance", name="European AI Alliance", kind="open_consultation", is_open=True
    )
    service.add_member(session, chair, plenary, member)
    session.commit()

    class World:
        pass

    w = World()
    w.code, w.v1, w.v2 = code, code.versions[0], code.versions[1]
    w.chair, w.member, w.outsider, w.colleague, w.admin = chair, member, outsider, colleague, admin
    w.plenary, w.alliance = plenary, alliance
    return w


def open_round(session, w, forum=None, version=None, **rules) -> Round:
    now = utcnow()
    settings = {"title": "Round", "opens_at": now - HOUR, "closes_at": now + HOUR, "thresholds": SMALL, **rules}
    round_ = service.create_round(session, w.chair, forum or w.plenary, version or w.v1, service.RoundRules(**settings))
    session.commit()
    return round_


def position(clause="c-1", stance="support", **extra) -> service.PositionInput:
    return service.PositionInput(clause_key=clause, stance=stance, **extra)


def at_once(app, threads: int, work, *, transaction: bool = True) -> None:
    """Run `work(session)` in `threads` threads released together, each with its own session; fail on any error."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            try:
                barrier.wait()
                if transaction:
                    in_transaction(work)
                else:
                    work(db.session)
            except BaseException as error:
                errors.append(error)
            finally:
                db.session.remove()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    assert errors == []


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


# --- forums ----------------------------------------------------------------------------------------


def test_chairs_create_forums_of_their_group_and_admins_any(session, world, make_user, group):
    assert world.plenary.working_group_id == group.id
    assert world.alliance.working_group_id is None
    assert world.alliance.is_open
    with pytest.raises(Forbidden):
        service.create_forum(session, world.chair, slug="x", name="X", kind="workshop")
    with pytest.raises(Forbidden):
        service.create_forum(session, world.member, slug="y", name="Y", kind="workshop", working_group=group)
    with pytest.raises(ValidationFailed):
        service.create_forum(session, world.admin, slug="Bad Slug", name="Z", kind="nonsense")
    with pytest.raises(Conflict):
        service.create_forum(session, world.admin, slug="plenary", name="Again", kind="plenary")
    session.rollback()
    assert count(session, Forum) == 2
    assert count(session, AuditEvent, AuditEvent.action == "forum.created") == 2


# --- rounds and their frozen rules -----------------------------------------------------------------


def test_only_chairs_open_rounds_with_sound_rules(session, world):
    now = utcnow()
    rules = service.RoundRules(title="R", opens_at=now, closes_at=now + HOUR)
    with pytest.raises(Forbidden):
        service.create_round(session, world.member, world.plenary, world.v1, rules)
    bad = [
        service.RoundRules(title="R", opens_at=now, closes_at=now - HOUR),
        service.RoundRules(title="R", opens_at=now, closes_at=now + HOUR, clause_keys=["nope"]),
        service.RoundRules(title="R", opens_at=now, closes_at=now + HOUR, eligibility="registered"),
        service.RoundRules(title="R", opens_at=now, closes_at=now + HOUR, thresholds=Thresholds(rough_support=0.9)),
        service.RoundRules(title="", opens_at=now, closes_at=now + HOUR, counting="by-height"),
    ]
    for rule in bad:
        with pytest.raises(ValidationFailed):
            service.create_round(session, world.chair, world.plenary, world.v1, rule)
    session.rollback()
    assert count(session, Round) == 0


def test_rules_change_until_the_round_opens_then_freeze_with_409(session, world, client, login):
    now = utcnow()
    round_ = open_round(session, world, opens_at=now + HOUR, closes_at=now + 2 * HOUR)
    changed = service.RoundRules(title="Renamed", opens_at=now + HOUR, closes_at=now + 3 * HOUR, clause_keys=["c-2"])
    service.update_round(session, world.chair, round_, changed, now=now)
    session.commit()
    assert round_.title == "Renamed"
    assert round_.scope() == ["c-2"]
    with pytest.raises(Conflict, match="frozen"):
        service.update_round(session, world.chair, round_, changed, now=now + 2 * HOUR)
    # Through the page: once open, a change answers 409 and nothing changes.
    round_.opens_at = now - HOUR
    session.commit()
    login(world.chair)
    form = {
        "title": "Sneaky", "opens_at": "2030-01-01T10:00", "closes_at": "2030-01-02T10:00", "eligibility": "members",
        "counting": "person", "consensus_support": "0.5", "rough_support": "0.4", "category_floor": "0.1",
        "min_participants": "1", "divergence": "0.4", "min_category_answers": "1",
    }  # fmt: skip
    response = client.post(f"/rounds/{round_.id}/edit", data=form)
    assert response.status_code == 409
    assert "frozen" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Round, round_.id).title == "Renamed"


# --- positions ------------------------------------------------------------------------------------


def test_a_changed_position_replaces_the_old_one_and_keeps_history_a_repeat_changes_nothing(session, world):
    round_ = open_round(session, world)
    first, changed = service.record_position(session, world.member, round_, position(stance="support"))
    assert changed
    assert first.revision == 1
    again, changed = service.record_position(session, world.member, round_, position(stance="support"))
    assert not changed
    assert again.id == first.id
    assert again.revision == 1
    objection = position(stance="oppose", serious_objection=True, rationale="Unworkable for small providers.")
    latest, changed = service.record_position(session, world.member, round_, objection)
    session.commit()
    assert changed
    assert latest.id == first.id
    assert latest.revision == 2
    assert [r.stance.value for r in latest.history] == ["support", "oppose"]
    assert count(session, Position) == 1
    events = session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "position")).all()
    assert events == ["position.recorded", "position.changed"]


def test_bad_positions_are_refused_and_nothing_recorded_changes(session, world):
    round_ = open_round(session, world, clause_keys=["c-1"])
    service.record_position(session, world.member, round_, position(stance="support"))
    session.commit()
    bad = [
        position(stance="maybe"),
        position(clause="c-2"),  # out of scope
        position(stance="oppose"),  # no rationale
        position(stance="support", serious_objection=True),
    ]
    for item in bad:
        with pytest.raises(ValidationFailed):
            service.record_positions(session, world.member, round_, [position(stance="abstain"), item])
        session.rollback()
    stored = session.scalars(select(Position)).one()
    assert stored.stance.value == "support"
    assert stored.revision == 1


def test_positions_only_while_the_round_is_open_and_only_from_participants(session, world):
    now = utcnow()
    round_ = open_round(session, world)
    with pytest.raises(Forbidden):
        service.record_position(session, world.outsider, round_, position())
    with pytest.raises(Conflict, match="closed"):
        service.record_position(session, world.member, round_, position(), now=now + 2 * HOUR)
    with pytest.raises(Conflict, match="opens"):
        service.record_position(session, world.member, round_, position(), now=now - 2 * HOUR)
    # An open forum's round for registered participants takes anyone logged in.
    open_to_all = open_round(session, world, forum=world.alliance, eligibility="registered")
    assert service.record_position(session, world.outsider, open_to_all, position())[1]
    session.commit()
    assert count(session, Position) == 1


def test_one_position_per_organisation_counts_once_whoever_records_it(session, world):
    round_ = open_round(session, world, forum=world.alliance, eligibility="registered", counting="organisation")
    service.record_position(session, world.member, round_, position(stance="support"))
    service.record_position(session, world.colleague, round_, position(stance="oppose", rationale="We disagree."))
    session.commit()
    stored = session.scalars(select(Position)).one()
    assert stored.participant_key == "org:modelco"
    assert stored.stance.value == "oppose"
    assert stored.user_id == world.colleague.id
    assert stored.revision == 2
    result = service.round_tally(session, round_)
    assert result.clause("c-1").overall.as_dict() == {
        "support": 0,
        "support_with_changes": 0,
        "abstain": 0,
        "oppose": 1,
    }


def test_parallel_submissions_of_the_same_position_count_once(app, session, world):
    round_ = open_round(session, world)
    round_id, member_id = round_.id, world.member.id
    at_once(
        app, 6,
        lambda s: service.record_position(
            s, s.get(type(world.member), member_id), s.get(Round, round_id), position(stance="support")
        ),
    )  # fmt: skip
    session.expire_all()
    assert count(session, Position) == 1
    assert count(session, PositionRevision) == 1
    assert service.round_tally(session, session.get(Round, round_id)).clause("c-1").overall.support == 1


# --- tallies, calls and what the public sees -------------------------------------------------------


def _vote(session, world, make_user, round_, stances: dict[StakeholderCategory, list[str]]):
    for category, values in stances.items():
        for value in values:
            user = make_user(category=category, organisation=None)
            service.add_member(session, world.admin, round_.forum, user)
            rationale = "No." if value.startswith("oppose") else ""
            serious = value == "oppose!"
            service.record_position(
                session,
                user,
                round_,
                position(stance=value.rstrip("!"), rationale=rationale, serious_objection=serious),
            )
    session.commit()


def test_tallies_match_the_pure_tally_and_a_call_closes_serious_objections(session, world, make_user):
    round_ = open_round(session, world, clause_keys=["c-1"])
    P, C = StakeholderCategory.GPAI_PROVIDER, StakeholderCategory.CIVIL_SOCIETY  # noqa: N806
    _vote(session, world, make_user, round_, {P: ["oppose!", "support"], C: ["support", "support", "abstain"]})
    result = service.round_tally(session, round_).clause("c-1")
    expected = tally(
        [Answer("c-1", P.value, "oppose", True), Answer("c-1", P.value, "support")]
        + [Answer("c-1", C.value, "support")] * 2
        + [Answer("c-1", C.value, "abstain")],
        ["c-1"],
        SMALL,
    )[0]
    assert result.overall == expected.overall
    assert result.by_category == expected.by_category
    assert result.support_share == pytest.approx(3 / 4)
    assert result.open_serious_objections == 1
    assert result.level is Level.CONTESTED
    objection = service.serious_objections(session, round_, "c-1")[0]
    call = service.CallInput(
        clause_key="c-1", level="rough_consensus", outcome="Kept, with a lighter duty for small providers.",
        objections={objection.id: "Addressed by the SME carve-out in measure 1.3."},
    )  # fmt: skip
    service.record_call(session, world.chair, round_, call)
    service.record_call(session, world.chair, round_, call)
    session.commit()
    after = service.round_tally(session, round_).clause("c-1")
    assert after.open_serious_objections == 0
    assert after.serious_objections == 1
    assert after.level is Level.ROUGH_CONSENSUS  # 75 % support: above rough, below consensus
    assert [c.revision for c in service.call_history(session, round_, "c-1")] == [2, 1]
    with pytest.raises(Forbidden):
        service.record_call(session, world.member, round_, call)


def test_results_are_for_the_group_while_open_and_for_everyone_after(session, world, client, login, make_user):
    round_ = open_round(session, world, forum=world.alliance, eligibility="registered")
    _vote(session, world, make_user, round_, {StakeholderCategory.ACADEMIA: ["support", "support"]})
    for path in (f"/rounds/{round_.id}/export/tallies.json", f"/api/v1/rounds/{round_.id}/tallies"):
        assert client.get(path).status_code == 404
    page = client.get(f"/rounds/{round_.id}").get_data(as_text=True)
    assert "published when it closes" in page
    login(world.member)
    assert client.get(f"/api/v1/rounds/{round_.id}/tallies").status_code == 200
    round_.closes_at = utcnow() - dt.timedelta(minutes=1)
    round_.opens_at = utcnow() - HOUR
    session.commit()
    client.post("/logout")
    assert client.get(f"/api/v1/rounds/{round_.id}/tallies").status_code == 200
    # A round on an unpublished version stays invisible to the public even after it closes.
    hidden = open_round(session, world, version=world.code.versions[2])
    hidden.closes_at = utcnow() - dt.timedelta(minutes=1)
    session.commit()
    assert client.get(f"/rounds/{hidden.id}").status_code == 404
    assert client.get(f"/api/v1/rounds/{hidden.id}/positions").status_code == 404


def test_every_number_on_the_dashboard_is_reproducible_from_the_exports(session, world, client, login, make_user):
    round_ = open_round(session, world, forum=world.alliance, eligibility="registered")
    P, A = StakeholderCategory.GPAI_PROVIDER, StakeholderCategory.ACADEMIA  # noqa: N806
    _vote(session, world, make_user, round_, {P: ["oppose", "oppose!", "support_with_changes"], A: ["support"] * 3})
    named = make_user(category=A, organisation="Uni")
    service.record_position(session, named, round_, position(stance="support", publish=True))
    session.commit()
    round_.closes_at = utcnow() - dt.timedelta(minutes=1)
    session.commit()
    tallies = client.get(f"/rounds/{round_.id}/export/tallies.json").get_json()["tallies"]
    positions = client.get(f"/rounds/{round_.id}/export/positions.json").get_json()["positions"]
    # Recompute from the individual rows, anonymous ones included.
    recomputed = tally(
        [
            Answer(p["clause"], p["category"], p["stance"], p["serious_objection"], p["objection_addressed"])
            for p in positions
        ],
        round_.scope(),
        round_.thresholds,
    )
    for clause in recomputed:
        row = next(r for r in tallies if r["clause"] == clause.clause_key and r["category"] == "all")
        assert {k: row[k] for k in ("support", "support_with_changes", "abstain", "oppose")} == clause.overall.as_dict()
        assert row["level"] == clause.level.value
        assert row["open_serious_objections"] == clause.open_serious_objections
        share = clause.support_share
        assert row["support_share"] == (None if share is None else round(share, 4))
    # Participation per category, from the opaque participant numbers.
    per_category = {
        category: len({p["participant_ref"] for p in positions if p["category"] == category})
        for category in {p["category"] for p in positions}
    }
    shown = {r["category"]: r["round_participants"] for r in tallies if r["clause"] == "c-1" and r["category"] != "all"}
    assert per_category == shown == service.round_tally(session, round_).participants
    # Only the participant who agreed is named; the others appear with category and stance alone.
    assert [p["participant"] for p in positions if p["participant"]] == [named.display_name]
    assert all(p["rationale"] is None for p in positions if not p["participant"])
    # The page shows the same shares as the export.
    page = client.get(f"/rounds/{round_.id}").get_data(as_text=True)
    c1 = next(r for r in tallies if r["clause"] == "c-1" and r["category"] == "all")
    assert f"{round(c1['support_share'] * 100)}%" in page.replace("\xa0", "")
    csv_rows = list(
        csv.DictReader(io.StringIO(client.get(f"/rounds/{round_.id}/export/tallies.csv").get_data(as_text=True)))
    )
    assert Counter(r["clause"] for r in csv_rows) == Counter(r["clause"] for r in tallies)


# --- pages and API --------------------------------------------------------------------------------


def test_the_bulk_form_records_all_answers_or_none_and_shows_them_again(session, world, client, login):
    round_ = open_round(session, world)
    login(world.member)
    page = client.get(f"/rounds/{round_.id}/positions").get_data(as_text=True)
    assert "You have answered 0 of" in page
    bad = {"stance-c-1": "support", "stance-c-2": "oppose", "rationale-c-2": ""}
    response = client.post(f"/rounds/{round_.id}/positions", data=bad)
    assert response.status_code == 422
    assert "rationale is required" in response.get_data(as_text=True)
    assert count(session, Position) == 0
    good = {"stance-c-1": "support", "stance-c-2": "oppose", "rationale-c-2": "Too vague.", "serious-c-2": "y"}
    response = client.post(f"/rounds/{round_.id}/positions", data=good)
    assert response.status_code == 302
    assert client.post(f"/rounds/{round_.id}/positions", data=good).status_code == 302  # a double click
    assert count(session, Position) == 2
    assert count(session, PositionRevision) == 2
    page = client.get(f"/rounds/{round_.id}/positions").get_data(as_text=True)
    assert "You have answered 2 of" in page
    assert "Too vague." in page


def test_the_dashboard_shows_the_heat_map_rules_and_calls_to_the_chair(session, world, client, login, make_user):
    round_ = open_round(session, world)
    P = StakeholderCategory.GPAI_PROVIDER  # noqa: N806
    _vote(session, world, make_user, round_, {P: ["oppose", "oppose"], StakeholderCategory.ACADEMIA: ["support"] * 3})
    login(world.chair)
    page = client.get(f"/rounds/{round_.id}?sort=contested").get_data(as_text=True)
    assert "heat-map" in page
    assert "How levels are named in this round" in page
    assert "General-purpose AI model provider diverges" in page
    assert f"/rounds/{round_.id}/calls/c-1" in page
    response = client.post(
        f"/rounds/{round_.id}/calls/c-1", data={"level": "contested", "outcome": "Providers object; rewrite."}
    )
    assert response.status_code == 302
    assert "Providers object; rewrite." in client.get(f"/rounds/{round_.id}").get_data(as_text=True)


def test_the_api_records_positions_idempotently_and_refuses_bad_input(session, world, client, login):
    round_ = open_round(session, world)
    url = f"/api/v1/rounds/{round_.id}/positions"
    assert client.post(url, json={"clause": "c-1", "stance": "support"}).status_code == 401
    login(world.member)
    first = client.post(url, json={"clause": "c-1", "stance": "support"})
    assert first.status_code == 201
    assert first.get_json()["positions"][0]["revision"] == 1
    again = client.post(url, json={"positions": [{"clause": "c-1", "stance": "support"}]})
    assert again.status_code == 200
    assert again.get_json()["positions"][0]["changed"] is False
    for payload, status in (
        ({"clause": "c-1", "stance": "maybe"}, 422),
        ({"clause": "zz", "stance": "support"}, 422),
        ({"clause": "c-1", "stance": "oppose"}, 422),
        ({"clause": "c-1", "stance": "support", "publish": "yes"}, 422),
        ({"positions": []}, 422),
    ):
        response = client.post(url, json=payload)
        assert response.status_code == status, payload
        assert response.get_json()["message"]
    assert client.post(url, data="x", content_type="text/plain").status_code == 415
    assert client.post("/api/v1/rounds/9999/positions", json={"clause": "c-1", "stance": "support"}).status_code == 404
    round_.closes_at = utcnow() - dt.timedelta(seconds=1)
    session.commit()
    assert client.post(url, json={"clause": "c-1", "stance": "abstain"}).status_code == 409
    assert session.scalars(select(Position)).one().stance.value == "support"


def test_the_forum_pages_let_managers_add_participants(session, world, client, login, make_user):
    newcomer = make_user(email="new@example.org")
    login(world.chair)
    assert client.get("/forums").status_code == 200
    assert client.post("/forums/plenary/members", data={"email": "new@example.org"}).status_code == 302
    assert service.is_member(session.get(Forum, world.plenary.id), newcomer)
    assert client.post("/forums/plenary/members", data={"email": "nobody@example.org"}).status_code == 422
    response = client.post(
        "/forums/new",
        data={"name": "Workshop", "slug": "ws", "kind": "workshop", "working_group": str(world.code.working_group_id)},
    )
    assert response.status_code == 302
    assert session.scalars(select(Forum).where(Forum.slug == "ws")).one().kind is ForumKind.WORKSHOP
    client.post("/logout")
    login(world.outsider)
    assert client.post("/forums/plenary/members", data={"email": "new@example.org"}).status_code == 403
    assert client.get("/forums/new").status_code == 403


def test_unknown_rounds_and_clauses_are_404(session, world, client, login):
    round_ = open_round(session, world)
    login(world.chair)
    assert client.get("/rounds/424242").status_code == 404
    assert client.get(f"/rounds/{round_.id}/calls/not-a-clause").status_code == 404
    with pytest.raises(NotFound):
        service.get_round(session, None, 424242)


def test_trends_follow_a_clause_across_versions_in_the_same_forum(session, world, client, login, make_user):
    first = open_round(session, world, version=world.v1, title="On v1")
    _vote(session, world, make_user, first, {StakeholderCategory.ACADEMIA: ["support", "oppose", "oppose", "oppose"]})
    first.closes_at = utcnow() - dt.timedelta(minutes=1)
    session.commit()
    second = open_round(session, world, version=world.v2, title="On v2")
    _vote(
        session, world, make_user, second, {StakeholderCategory.ACADEMIA: ["support", "support", "support", "oppose"]}
    )
    points = service.trends(session, second, world.chair, utcnow())["c-1"]
    assert [(p.version_number, p.support_share) for p in points] == [(1, 0.25), (2, 0.75)]
    login(world.chair)
    page = client.get(f"/rounds/{second.id}").get_data(as_text=True)
    assert "v1: 25" in page
    assert "+50" in page


# --- telling people that a round opened or closed ----------------------------------------------------


def notices(session, user, kind: str) -> list[Notification]:
    mine = select(Notification).where(Notification.user_id == user.id, Notification.kind == kind)
    return list(session.scalars(mine.order_by(Notification.id)))


def test_a_round_is_announced_to_its_forum_when_it_opens_and_when_it_closes_once_each(session, world):
    now = utcnow()
    later = open_round(session, world, opens_at=now + HOUR, closes_at=now + 3 * HOUR, title="Later round")
    round_ = open_round(session, world, title="Safety round")
    service.record_position(session, world.member, round_, position())
    session.commit()

    first = announce_due_rounds(session, now)
    again = announce_due_rounds(session, now)

    assert (first.opened, first.closed, first.notified) == (1, 0, 1)
    assert (again.opened, again.closed, again.notified) == (0, 0, 0)
    [opened] = notices(session, world.member, "round_opened")
    assert opened.url == f"/rounds/{round_.id}/positions"
    assert opened.message.startswith("The round “Safety round” in Plenary is open for positions on Test code v1 until ")
    assert [n for u in (world.chair, world.outsider, world.admin) for n in notices(session, u, "round_opened")] == []
    mail = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notification.round_opened")).all()
    assert [(m.recipient, m.subject) for m in mail] == [(world.member.email, opened.text)]
    assert session.get(Round, later.id).opening_announced_at is None

    closing = announce_due_rounds(session, now + 2 * HOUR)

    assert (closing.opened, closing.closed) == (1, 1)  # the later round opened meanwhile
    [closed] = notices(session, world.member, "round_closed")
    assert closed.url == f"/rounds/{round_.id}"
    assert closed.message == (
        "The round “Safety round” in Plenary has closed with 1 position recorded; its results are out."
    )
    assert announce_due_rounds(session, now + 4 * HOUR).closed == 1  # the later one; never the first again
    assert len(notices(session, world.member, "round_closed")) == 2


def test_an_open_forums_round_is_announced_to_past_participants_and_commenters_not_to_everyone(
    session, world, make_user
):
    now = utcnow()
    earlier = open_round(session, world, forum=world.alliance, eligibility="registered")
    service.record_position(session, world.outsider, earlier, position())
    commenter, bystander = make_user(), make_user()
    world.code.consultation_opens_at, world.code.consultation_closes_at = now - HOUR, now + HOUR
    remark = comments.Submission(clause_key="c-1", body="A remark.", idempotency_key="remark-0001")
    comments.submit_comment(session, commenter, world.v2, remark)
    session.commit()
    announce_due_rounds(session, now)
    round_ = open_round(session, world, forum=world.alliance, version=world.v2, eligibility="registered")

    announce_due_rounds(session, now)

    told = {n.user_id for n in session.scalars(select(Notification).where(Notification.url.contains(f"/{round_.id}/")))}
    assert told == {world.outsider.id, commenter.id}
    assert notices(session, bystander, "round_opened") == []


def test_a_round_made_after_it_closed_is_announced_as_closed_only(session, world):
    now = utcnow()
    round_ = open_round(session, world, opens_at=now - 3 * HOUR, closes_at=now - HOUR)

    report = announce_due_rounds(session, now)

    assert (report.opened, report.closed, report.notified) == (0, 1, 1)
    assert [n.kind for n in session.scalars(select(Notification).where(Notification.user_id == world.member.id))] == [
        "round_closed"
    ]
    assert session.get(Round, round_.id).opening_announced_at is not None


def test_a_round_that_cannot_be_announced_does_not_hold_up_the_others(session, world, monkeypatch):
    broken = open_round(session, world, title="Broken")
    fine = open_round(session, world, title="Fine")
    real = announcements._facts

    def failing(round_):
        if round_.id == broken.id:
            raise RuntimeError("simulated failure")
        return real(round_)

    monkeypatch.setattr(announcements, "_facts", failing)
    report = announce_due_rounds(session)

    assert (report.opened, report.failed) == (1, 1)
    assert [n.url for n in notices(session, world.member, "round_opened")] == [f"/rounds/{fine.id}/positions"]
    assert session.get(Round, broken.id).opening_announced_at is None  # left for the next run
    monkeypatch.setattr(announcements, "_facts", real)
    assert announce_due_rounds(session).opened == 1
    assert len(notices(session, world.member, "round_opened")) == 2


def test_members_who_may_not_see_the_version_are_not_told(session, world, make_user):
    outsider_member = make_user()
    service.add_member(session, world.chair, world.plenary, outsider_member)
    unpublished = world.code.versions[2]  # v3: cut, not published
    assert not unpublished.is_published
    round_ = open_round(session, world, version=unpublished)

    announce_due_rounds(session)
    announce_due_rounds(session, round_.closes_at)

    assert [n.kind for n in notices(session, world.member, "round_opened")] == ["round_opened"]
    assert notices(session, outsider_member, "round_opened") == []
    assert notices(session, outsider_member, "round_closed") == []


def test_processes_announcing_at_once_tell_each_person_once(app, session, world, make_user):
    for _ in range(3):
        service.add_member(session, world.chair, world.plenary, make_user())
    open_round(session, world)
    open_round(session, world, title="Second")
    at_once(app, 4, announce_due_rounds, transaction=False)

    assert count(session, Notification) == 8  # 4 members × 2 rounds
    assert count(session, OutboxMessage) == 8


def test_round_notices_are_worded_in_each_readers_language_on_the_site_and_by_mail(app, session, world, client, login):
    world.member.locale = "sv"
    open_round(session, world, title="Säkerhetsrunda")
    announce_due_rounds(session)
    login(world.member)

    page = client.get("/me/notifications").get_data(as_text=True)

    assert "Rundan ”Säkerhetsrunda” i Plenary är öppen för ståndpunkter om Test code v1 till" in page
    [opened] = notices(session, world.member, "round_opened")
    assert opened.text.startswith("The round “Säkerhetsrunda”")  # stored in English, worded when read
    message = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notification.round_opened")).one()
    settings = MailSettings(host="127.0.0.1")
    mailed = compose(session, message, settings)
    assert mailed["Subject"].startswith("Rundan ”Säkerhetsrunda”")
    assert kind_of(message.kind) is MailKind.ROUND
    assert 'name="round"' in client.get("/account/mail").get_data(as_text=True)


def test_the_command_announces_what_is_due(app, session, world):
    open_round(session, world)

    result = app.test_cli_runner().invoke(args=["rounds", "announce"])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 round(s) opened, 0 closed; 1 people notified."
    assert len(notices(session, world.member, "round_opened")) == 1
