"""Tallies of positions per clause: counts, shares, levels, bridging, divergence, trends (app/consensus/tally.py)."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.consensus.tally import (
    Answer,
    ClauseTally,
    Counts,
    Divergence,
    Level,
    Stance,
    Thresholds,
    TrendPoint,
    bridging_score,
    change_in_support,
    tally,
    tally_counted,
    trend,
)

DEFAULT = Thresholds()
SUPPORT, CHANGES, ABSTAIN, OPPOSE = (s.value for s in Stance)
# Lowest first: a clause "goes down" when its level moves left in this list.
RANK = {Level.INSUFFICIENT: 0, Level.CONTESTED: 1, Level.ROUGH_CONSENSUS: 2, Level.CONSENSUS: 3}


def many(
    clause: str,
    category: str,
    *,
    support: int = 0,
    changes: int = 0,
    abstain: int = 0,
    oppose: int = 0,
    serious_open: int = 0,
    serious_addressed: int = 0,
) -> list[Answer]:
    """The answers of one category on one clause, by how many took each stance."""
    return [
        *[Answer(clause, category, SUPPORT)] * support,
        *[Answer(clause, category, CHANGES)] * changes,
        *[Answer(clause, category, ABSTAIN)] * abstain,
        *[Answer(clause, category, OPPOSE)] * oppose,
        *[Answer(clause, category, OPPOSE, True, False)] * serious_open,
        *[Answer(clause, category, OPPOSE, True, True)] * serious_addressed,
    ]


def one(answers: Iterable[Answer], thresholds: Thresholds = DEFAULT, key: str = "c") -> ClauseTally:
    """Tally a single clause."""
    [result] = tally(answers, [key], thresholds)
    return result


# --- a hand-computed round -------------------------------------------------------------------------
#
# c-1, a clause only the GPAI providers oppose:
#   civil_society  4 support, 1 with changes, 1 abstain                 answering 5, supporting 5, share 1
#   academia       3 support, 1 abstain, 1 oppose                       answering 4, supporting 3, share 3/4
#   rights_holder  4 support                                            answering 4, supporting 4, share 1
#   gpai_provider  1 with changes, 1 oppose, 1 serious open, 1 serious addressed
#                                                                       answering 4, supporting 1, share 1/4
#   overall        11 support, 2 with changes, 2 abstain, 4 oppose     answering 17, supporting 13, share 13/17
#   level: 13/17 ≈ 0.76 is under 0.8 (no consensus) and over 0.6, but one serious objection is open: contested.
#   bridging: (6/7 · 4/6 · 5/6 · 2/6)^(1/4) = (10/63)^(1/4).
#   divergence: providers 1/4 against 12/13 for the others (gap -0.67); civil society 1 against 8/12 (0.33),
#   rights holders 1 against 9/13 (0.31), academia 3/4 against 10/13: only the providers diverge.
# c-2, consensus: civil_society 3 support + 1 with changes (4/4); gpai_provider 2 support, 1 oppose (2/3).
#   overall 6/7 ≈ 0.857 ≥ 0.8, lowest category 2/3 ≥ 0.5, no serious objection. Bridging (5/6 · 3/5)^(1/2).
# c-3, insufficient: academia 2 support, 1 oppose, 3 abstain: six answers, but only three took a side (< 5).
# c-4: nobody answered.
ROUND = [
    *many("c-1", "civil_society", support=4, changes=1, abstain=1),
    *many("c-1", "academia", support=3, abstain=1, oppose=1),
    *many("c-1", "rights_holder", support=4),
    *many("c-1", "gpai_provider", changes=1, oppose=1, serious_open=1, serious_addressed=1),
    *many("c-2", "civil_society", support=3, changes=1),
    *many("c-2", "gpai_provider", support=2, oppose=1),
    *many("c-3", "academia", support=2, oppose=1, abstain=3),
    # Outside the round's scope: never counted.
    *many("c-9", "gpai_provider", oppose=7, serious_open=3),
]
KEYS = ["c-1", "c-2", "c-3", "c-4"]


@pytest.fixture
def round_tally() -> dict[str, ClauseTally]:
    return {clause.clause_key: clause for clause in tally(ROUND, KEYS, DEFAULT)}


def test_clauses_come_back_in_the_order_of_the_round_scope_and_only_those() -> None:
    assert [clause.clause_key for clause in tally(ROUND, ["c-3", "c-1", "c-4", "c-2"], DEFAULT)] == [
        "c-3",
        "c-1",
        "c-4",
        "c-2",
    ]


def test_counts_per_stance_overall_and_per_category(round_tally: dict[str, ClauseTally]) -> None:
    c1 = round_tally["c-1"]
    assert c1.overall.as_dict() == {SUPPORT: 11, CHANGES: 2, ABSTAIN: 2, OPPOSE: 4}
    assert (c1.overall.total, c1.overall.answering) == (19, 17)
    assert {category: counts.as_dict() for category, counts in c1.by_category.items()} == {
        "civil_society": {SUPPORT: 4, CHANGES: 1, ABSTAIN: 1, OPPOSE: 0},
        "academia": {SUPPORT: 3, CHANGES: 0, ABSTAIN: 1, OPPOSE: 1},
        "rights_holder": {SUPPORT: 4, CHANGES: 0, ABSTAIN: 0, OPPOSE: 0},
        "gpai_provider": {SUPPORT: 0, CHANGES: 1, ABSTAIN: 0, OPPOSE: 3},
    }
    assert round_tally["c-2"].overall.as_dict() == {SUPPORT: 5, CHANGES: 1, ABSTAIN: 0, OPPOSE: 1}


def test_support_share_counts_support_with_changes_and_leaves_abstentions_out(
    round_tally: dict[str, ClauseTally],
) -> None:
    c1 = round_tally["c-1"]
    assert c1.support_share == 13 / 17
    assert c1.category_share("civil_society") == 1.0
    assert c1.category_share("academia") == 3 / 4
    assert c1.category_share("gpai_provider") == 1 / 4
    assert c1.category_share("public_authority") is None
    assert round_tally["c-2"].support_share == 6 / 7
    assert round_tally["c-3"].support_share == 2 / 3


def test_lowest_category_support_names_the_category(round_tally: dict[str, ClauseTally]) -> None:
    assert (round_tally["c-1"].lowest_category, round_tally["c-1"].lowest_category_support) == ("gpai_provider", 0.25)
    assert (round_tally["c-2"].lowest_category, round_tally["c-2"].lowest_category_support) == ("gpai_provider", 2 / 3)


def test_serious_objections_are_counted_open_and_addressed(round_tally: dict[str, ClauseTally]) -> None:
    assert (round_tally["c-1"].serious_objections, round_tally["c-1"].open_serious_objections) == (2, 1)
    assert (round_tally["c-2"].serious_objections, round_tally["c-2"].open_serious_objections) == (0, 0)


def test_levels_of_the_hand_computed_round(round_tally: dict[str, ClauseTally]) -> None:
    assert {key: clause.level for key, clause in round_tally.items()} == {
        "c-1": Level.CONTESTED,
        "c-2": Level.CONSENSUS,
        "c-3": Level.INSUFFICIENT,
        "c-4": Level.INSUFFICIENT,
    }


def test_addressing_the_open_objection_lifts_the_clause_to_rough_consensus() -> None:
    answers = [a._replace(objection_addressed=True) if a.clause_key == "c-1" else a for a in ROUND]
    c1 = tally(answers, KEYS, DEFAULT)[0]
    assert (c1.serious_objections, c1.open_serious_objections) == (2, 0)
    # Still no consensus: 13/17 is under 0.8 and the providers (1/4) are under the floor.
    assert c1.level is Level.ROUGH_CONSENSUS


def test_insufficient_participation_counts_only_those_who_took_a_side(round_tally: dict[str, ClauseTally]) -> None:
    c3 = round_tally["c-3"]
    assert (c3.overall.total, c3.overall.answering) == (6, 3)
    assert c3.level is Level.INSUFFICIENT


def test_a_clause_nobody_answered_has_no_shares(round_tally: dict[str, ClauseTally]) -> None:
    c4 = round_tally["c-4"]
    assert c4.overall == Counts()
    assert c4.by_category == {}
    assert c4.support_share is None
    assert (c4.lowest_category, c4.lowest_category_support, c4.bridging) == (None, None, None)
    assert c4.divergent == []
    assert c4.level is Level.INSUFFICIENT
    assert c4.contestedness == 0.0


def test_bridging_is_the_geometric_mean_of_smoothed_category_approval(round_tally: dict[str, ClauseTally]) -> None:
    assert round_tally["c-1"].bridging == pytest.approx((6 / 7 * 4 / 6 * 5 / 6 * 2 / 6) ** (1 / 4))
    assert round_tally["c-1"].bridging == pytest.approx((10 / 63) ** 0.25)
    assert round_tally["c-2"].bridging == pytest.approx(math.sqrt(0.5))
    # One category: (2 + 1) / (3 + 2).
    assert round_tally["c-3"].bridging == pytest.approx(3 / 5)


def test_bridging_ignores_categories_that_only_abstained() -> None:
    by_category = {"academia": Counts(support=1), "civil_society": Counts(abstain=4)}
    assert bridging_score(by_category) == pytest.approx(2 / 3)
    assert bridging_score({"civil_society": Counts(abstain=4)}) is None
    assert bridging_score({}) is None


def test_one_voice_cannot_zero_the_bridging_score() -> None:
    clause = one([*many("c", "academia", support=9), *many("c", "gpai_provider", oppose=1)])
    # sqrt(10/11 · 1/3), not 0 as an unsmoothed product of approvals would be.
    assert clause.bridging == pytest.approx(math.sqrt(10 / 11 / 3))


def test_a_clause_only_one_category_opposes_is_flagged_for_that_category(round_tally: dict[str, ClauseTally]) -> None:
    assert round_tally["c-1"].divergent == [Divergence("gpai_provider", 0.25, 12 / 13)]
    assert round_tally["c-1"].divergent[0].gap == pytest.approx(0.25 - 12 / 13)
    assert round_tally["c-2"].divergent == []


def test_divergence_exactly_at_the_threshold_is_flagged() -> None:
    # 7/10 against 3/10 is a gap of exactly 0.4, which floating point computes as 0.39999999999999997.
    clause = one([*many("c", "academia", support=7, oppose=3), *many("c", "gpai_provider", support=3, oppose=7)])
    assert [d.category for d in clause.divergent] == ["academia", "gpai_provider"]
    # A gap just under the threshold is not: 7/10 against 4/13 (0.392).
    clause = one([*many("c", "academia", support=7, oppose=3), *many("c", "gpai_provider", support=4, oppose=9)])
    assert clause.divergent == []


def test_divergence_needs_enough_answers_on_both_sides() -> None:
    lone = [*many("c", "academia", support=9), *many("c", "gpai_provider", oppose=1)]
    assert one(lone).divergent == []
    pair = [*many("c", "academia", support=9), *many("c", "gpai_provider", oppose=2)]
    assert [d.category for d in one(pair).divergent] == ["academia", "gpai_provider"]
    assert one(pair, Thresholds(min_category_answers=3)).divergent == []


def test_contestedness_is_highest_for_an_even_split_and_grows_with_open_objections(
    round_tally: dict[str, ClauseTally],
) -> None:
    assert one(many("c", "academia", support=3, oppose=3)).contestedness == 1.0
    assert one(many("c", "academia", support=6)).contestedness == 0.0
    assert round_tally["c-1"].contestedness == pytest.approx(1 - abs(2 * 13 / 17 - 1) + 1)


# --- levels at their boundaries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "level"),
    [
        pytest.param(many("c", "a", support=4, oppose=1), Level.CONSENSUS, id="share exactly 0.8, 5 answering"),
        pytest.param(many("c", "a", support=7, oppose=2), Level.ROUGH_CONSENSUS, id="share 7/9 just under 0.8"),
        pytest.param(many("c", "a", support=3, oppose=2), Level.ROUGH_CONSENSUS, id="share exactly 0.6"),
        pytest.param(many("c", "a", support=5, oppose=4), Level.CONTESTED, id="share 5/9 just under 0.6"),
        pytest.param(many("c", "a", support=4, abstain=5), Level.INSUFFICIENT, id="4 answering, 5 abstaining"),
        pytest.param(many("c", "a", changes=5), Level.CONSENSUS, id="5 answering, all with changes"),
        pytest.param(many("c", "a", oppose=5), Level.CONTESTED, id="all opposed"),
        pytest.param(
            [*many("c", "a", support=8), *many("c", "b", support=1, oppose=1)],
            Level.CONSENSUS,
            id="lowest category exactly at the 0.5 floor",
        ),
        pytest.param(
            [*many("c", "a", support=8), *many("c", "b", support=1, oppose=2)],
            Level.ROUGH_CONSENSUS,
            id="lowest category 1/3 under the floor",
        ),
        pytest.param(
            [*many("c", "a", support=8), *many("c", "b", oppose=1)],
            Level.CONSENSUS,
            id="a category of one answer does not count for the floor",
        ),
        pytest.param(many("c", "a", support=9, serious_open=1), Level.CONTESTED, id="open serious objection"),
        pytest.param(many("c", "a", support=9, serious_addressed=1), Level.CONSENSUS, id="addressed objection"),
        pytest.param(
            many("c", "a", support=3, serious_open=1, abstain=9), Level.INSUFFICIENT, id="objection, 4 answering"
        ),
    ],
)
def test_level_at_the_default_thresholds(answers: list[Answer], level: Level) -> None:
    assert one(answers).level is level


@pytest.mark.parametrize(
    ("thresholds", "level"),
    [
        (Thresholds(consensus_support=0.7, rough_support=0.5), Level.CONSENSUS),
        (Thresholds(consensus_support=0.71, rough_support=0.7), Level.ROUGH_CONSENSUS),
        (Thresholds(consensus_support=0.71, rough_support=0.71), Level.CONTESTED),
        (Thresholds(consensus_support=0.7, min_participants=10), Level.CONSENSUS),
        (Thresholds(consensus_support=0.7, min_participants=11), Level.INSUFFICIENT),
        (Thresholds(consensus_support=0.7, category_floor=0.6), Level.CONSENSUS),
        (Thresholds(consensus_support=0.7, category_floor=0.61), Level.ROUGH_CONSENSUS),
    ],
)
def test_level_follows_the_round_thresholds_inclusively(thresholds: Thresholds, level: Level) -> None:
    # 7 of 10 support overall; category b supports 3 of 5 (0.6), category a 4 of 5.
    answers = [*many("c", "a", support=4, oppose=1), *many("c", "b", support=2, changes=1, oppose=2)]
    assert one(answers, thresholds).level is level


def test_a_serious_objection_counts_only_with_an_opposition() -> None:
    clause = one([*many("c", "a", support=5), Answer("c", "a", SUPPORT, True, False)])
    assert (clause.serious_objections, clause.open_serious_objections) == (0, 0)
    assert clause.level is Level.CONSENSUS


def test_lowest_category_ties_go_to_the_category_that_sorts_first() -> None:
    answers = [*many("c", "zeta", support=1, oppose=1), *many("c", "alpha", support=2, oppose=2)]
    assert one(answers).lowest_category == "alpha"
    assert one(list(reversed(answers))).lowest_category == "alpha"


def test_a_support_that_makes_a_category_count_can_lower_the_level_through_the_floor() -> None:
    # How the rules are written, not a slip: a category counts for the floor only once it has
    # min_category_answers answers, so the answer that makes it count can reveal low support.
    thresholds = Thresholds(min_category_answers=3)
    before = [*many("c", "civil_society", support=10), *many("c", "gpai_provider", oppose=2)]
    assert one(before, thresholds).level is Level.CONSENSUS
    after = one([*before, Answer("c", "gpai_provider", SUPPORT)], thresholds)
    assert (after.lowest_category, after.lowest_category_support) == ("gpai_provider", 1 / 3)
    assert after.level is Level.ROUGH_CONSENSUS


# --- scope, grouping and bad input ------------------------------------------------------------------


def test_answers_outside_the_clause_keys_are_ignored() -> None:
    assert tally(ROUND, KEYS, DEFAULT) == tally([a for a in ROUND if a.clause_key != "c-9"], KEYS, DEFAULT)
    assert tally(ROUND, [], DEFAULT) == []
    assert tally(many("x", "a", support=3), ["c"], DEFAULT) == [ClauseTally("c")]


def test_tally_counted_from_grouped_rows_equals_tally() -> None:
    expected = tally(ROUND, KEYS, DEFAULT)
    groups = list(Counter(ROUND).items())
    assert tally_counted(groups, KEYS, DEFAULT) == expected
    # As a database gives them: in another order, with the objections one row each.
    plain = [(answer, n) for answer, n in groups if not answer.serious_objection]
    serious = [(answer, 1) for answer in ROUND if answer.serious_objection]
    assert tally_counted([*reversed(plain), *serious], KEYS, DEFAULT) == expected
    # Empty and negative groups count for nothing.
    noise = [(Answer("c-2", "academia", OPPOSE), 0), (Answer("c-2", "academia", OPPOSE), -3)]
    assert tally_counted([*groups, *noise], KEYS, DEFAULT) == expected


def test_an_unknown_stance_on_a_clause_in_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="maybe"):
        tally([Answer("c", "a", "maybe")], ["c"], DEFAULT)


def test_stances_given_as_enum_members_or_strings_count_the_same() -> None:
    as_enum = [Answer("c", "a", Stance.SUPPORT), Answer("c", "a", Stance.OPPOSE, True)]
    as_text = [Answer("c", "a", SUPPORT), Answer("c", "a", OPPOSE, True)]
    assert tally(as_enum, ["c"], DEFAULT) == tally(as_text, ["c"], DEFAULT)


# --- thresholds -------------------------------------------------------------------------------------


def test_default_thresholds_are_sound() -> None:
    assert DEFAULT.validate() == []
    assert Thresholds(consensus_support=0.6, rough_support=0.6, category_floor=0, divergence=1).validate() == []


@pytest.mark.parametrize(
    ("thresholds", "problems"),
    [
        (Thresholds(consensus_support=1.2), ["consensus_support must be between 0 and 1"]),
        (Thresholds(rough_support=-0.1), ["rough_support must be between 0 and 1"]),
        (Thresholds(category_floor=math.nan), ["category_floor must be between 0 and 1"]),
        (Thresholds(divergence=1.01), ["divergence must be between 0 and 1"]),
        (Thresholds(consensus_support=0.5, rough_support=0.6), ["rough_support must not exceed consensus_support"]),
        (Thresholds(min_participants=0), ["minimum counts must be at least 1"]),
        (Thresholds(min_category_answers=0), ["minimum counts must be at least 1"]),
        (
            Thresholds(consensus_support=0.4, rough_support=0.5, divergence=-1, min_participants=0),
            [
                "divergence must be between 0 and 1",
                "rough_support must not exceed consensus_support",
                "minimum counts must be at least 1",
            ],
        ),
    ],
)
def test_unsound_thresholds_are_named(thresholds: Thresholds, problems: list[str]) -> None:
    assert thresholds.validate() == problems


# --- trends -----------------------------------------------------------------------------------------


def point(version: int, round_id: int, share: float | None) -> TrendPoint:
    return TrendPoint(version, round_id, share, Level.CONTESTED, 0 if share is None else 10)


def test_trend_orders_points_by_version_then_round() -> None:
    points = [point(3, 7, 0.9), point(1, 9, 0.4), point(2, 5, 0.6), point(1, 2, 0.5)]
    assert [(p.version_number, p.round_id) for p in trend(points)] == [(1, 2), (1, 9), (2, 5), (3, 7)]


def test_change_in_support_is_the_latest_known_share_minus_the_first() -> None:
    assert change_in_support(trend([point(3, 3, 0.9), point(1, 1, 0.4), point(2, 2, 0.6)])) == pytest.approx(0.5)
    assert change_in_support([point(1, 1, 0.8), point(2, 2, 0.5)]) == pytest.approx(-0.3)


def test_change_in_support_skips_rounds_without_a_share() -> None:
    assert change_in_support([point(1, 1, None), point(2, 2, 0.4), point(3, 3, None), point(4, 4, 0.7)]) == (
        pytest.approx(0.3)
    )
    assert change_in_support([point(1, 1, 0.5), point(2, 2, 0.8), point(3, 3, None)]) == pytest.approx(0.3)


def test_change_in_support_needs_two_known_shares() -> None:
    assert change_in_support([]) is None
    assert change_in_support([point(1, 1, 0.5)]) is None
    assert change_in_support([point(1, 1, 0.5), point(2, 2, None)]) is None


# --- properties -------------------------------------------------------------------------------------

CLAUSES = ["c-1", "c-2", "c-3"]
CATEGORIES = ["academia", "civil_society", "gpai_provider", "rights_holder"]

answer_st = st.builds(
    Answer,
    clause_key=st.sampled_from([*CLAUSES, "out-of-scope"]),
    category=st.sampled_from(CATEGORIES),
    stance=st.sampled_from([s.value for s in Stance]),
    serious_objection=st.booleans(),
    objection_addressed=st.booleans(),
)
answers_st = st.lists(answer_st, max_size=80)


@st.composite
def thresholds_st(draw: st.DrawFn) -> Thresholds:
    share = st.sampled_from([0.0, 0.25, 0.4, 0.5, 0.6, 2 / 3, 0.75, 0.8, 0.9, 1.0])
    consensus, rough = sorted([draw(share), draw(share)], reverse=True)
    return Thresholds(
        consensus_support=consensus,
        rough_support=rough,
        category_floor=draw(share),
        min_participants=draw(st.integers(1, 8)),
        divergence=draw(share),
        min_category_answers=draw(st.integers(1, 4)),
    )


def by_key(answers: Iterable[Answer], thresholds: Thresholds) -> dict[str, ClauseTally]:
    return {clause.clause_key: clause for clause in tally(answers, CLAUSES, thresholds)}


@settings(max_examples=300, deadline=None)
@given(answers_st, thresholds_st())
def test_category_counts_add_up_to_the_overall_counts(answers: list[Answer], thresholds: Thresholds) -> None:
    for clause in tally(answers, CLAUSES, thresholds):
        summed = Counts()
        for counts in clause.by_category.values():
            for stance, number in counts.as_dict().items():
                summed.add(stance, number)
        assert summed == clause.overall
        assert clause.overall.total == sum(a.clause_key == clause.clause_key for a in answers)
        assert 0 <= clause.open_serious_objections <= clause.serious_objections <= clause.overall.oppose


@settings(max_examples=300, deadline=None)
@given(answers_st, thresholds_st())
def test_shares_and_scores_stay_within_their_bounds(answers: list[Answer], thresholds: Thresholds) -> None:
    for clause in tally(answers, CLAUSES, thresholds):
        if clause.support_share is not None:
            assert 0.0 <= clause.support_share <= 1.0
        if clause.bridging is not None:
            assert 0.0 < clause.bridging < 1.0
        counted = {
            category: counts.support_share
            for category, counts in clause.by_category.items()
            if counts.answering >= thresholds.min_category_answers
        }
        if counted:
            assert clause.lowest_category_support == min(counted.values())
            assert counted[clause.lowest_category] == clause.lowest_category_support
        else:
            assert clause.lowest_category is None
        for divergence in clause.divergent:
            assert abs(divergence.gap) >= thresholds.divergence - 1e-9


@settings(max_examples=300, deadline=None)
@given(answers_st, thresholds_st(), st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_the_order_of_the_answers(
    answers: list[Answer], thresholds: Thresholds, rng: random.Random
) -> None:
    shuffled = answers[:]
    rng.shuffle(shuffled)
    assert tally(shuffled, CLAUSES, thresholds) == tally(answers, CLAUSES, thresholds)


@settings(max_examples=300, deadline=None)
@given(answers_st, thresholds_st(), st.randoms(use_true_random=False))
def test_tally_counted_on_any_grouping_equals_tally(
    answers: list[Answer], thresholds: Thresholds, rng: random.Random
) -> None:
    groups: list[tuple[Answer, int]] = []
    for answer, number in Counter(answers).items():
        # Split each group at random, as several rows of one GROUP BY or several pages would give them.
        while number:
            part = rng.randint(1, number)
            groups.append((answer, part))
            number -= part
    rng.shuffle(groups)
    assert tally_counted(groups, CLAUSES, thresholds) == tally(answers, CLAUSES, thresholds)


@settings(max_examples=300, deadline=None)
@given(answers_st, thresholds_st(), answers_st)
def test_answers_outside_the_scope_change_nothing(
    answers: list[Answer], thresholds: Thresholds, others: list[Answer]
) -> None:
    outside = [answer._replace(clause_key="other-" + answer.clause_key) for answer in others]
    assert tally([*answers, *outside], CLAUSES, thresholds) == tally(answers, CLAUSES, thresholds)


@settings(max_examples=400, deadline=None)
@given(
    answers_st,
    thresholds_st(),
    st.sampled_from(CLAUSES),
    st.sampled_from(CATEGORIES),
    st.sampled_from([SUPPORT, CHANGES]),
)
def test_adding_a_support_never_lowers_the_share_of_its_clause_or_its_category(
    answers: list[Answer], thresholds: Thresholds, key: str, category: str, stance: str
) -> None:
    before = by_key(answers, thresholds)[key]
    after = by_key([*answers, Answer(key, category, stance)], thresholds)[key]
    assert after.support_share is not None
    assert before.support_share is None or after.support_share >= before.support_share
    old, new = before.category_share(category), after.category_share(category)
    assert new is not None
    assert old is None or new >= old


@settings(max_examples=400, deadline=None)
@given(answers_st, thresholds_st(), st.sampled_from(CLAUSES), st.sampled_from(CATEGORIES))
def test_adding_an_abstention_changes_no_share_and_no_level(
    answers: list[Answer], thresholds: Thresholds, key: str, category: str
) -> None:
    before = by_key(answers, thresholds)[key]
    after = by_key([*answers, Answer(key, category, ABSTAIN)], thresholds)[key]
    assert after.overall.abstain == before.overall.abstain + 1
    assert after.support_share == before.support_share
    assert {c: after.category_share(c) for c in CATEGORIES} == {c: before.category_share(c) for c in CATEGORIES}
    unchanged = ("lowest_category", "lowest_category_support", "bridging", "divergent", "level", "serious_objections")
    assert [getattr(after, name) for name in unchanged] == [getattr(before, name) for name in unchanged]


@settings(max_examples=500, deadline=None)
@given(
    answers_st,
    thresholds_st(),
    st.sampled_from(CLAUSES),
    st.sampled_from(CATEGORIES),
    st.sampled_from([SUPPORT, CHANGES]),
)
def test_adding_a_support_never_lowers_the_level_unless_it_brings_a_category_under_the_floor_into_count(
    answers: list[Answer], thresholds: Thresholds, key: str, category: str, stance: str
) -> None:
    before = by_key(answers, thresholds)[key]
    after = by_key([*answers, Answer(key, category, stance)], thresholds)[key]
    counts = after.by_category[category]
    newly_counted_under_floor = (
        counts.answering == thresholds.min_category_answers
        and counts.support_share is not None
        and counts.support_share < thresholds.category_floor
    )
    if not newly_counted_under_floor:
        assert RANK[after.level] >= RANK[before.level]
    # Whatever happens, a support neither opens nor closes a serious objection.
    assert after.open_serious_objections == before.open_serious_objections


@settings(max_examples=300, deadline=None)
@given(answers_st, thresholds_st())
def test_adding_a_support_never_lowers_the_level_under_the_default_category_rules(
    answers: list[Answer], thresholds: Thresholds
) -> None:
    # With two answers to count and a floor of at most one half, a newly counted category is never under it.
    thresholds = dataclasses.replace(
        thresholds, min_category_answers=2, category_floor=min(thresholds.category_floor, 0.5)
    )
    for key in CLAUSES:
        for category in CATEGORIES:
            before = by_key(answers, thresholds)[key]
            after = by_key([*answers, Answer(key, category, SUPPORT)], thresholds)[key]
            assert RANK[after.level] >= RANK[before.level]
