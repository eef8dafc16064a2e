"""Tallies of positions per clause: counts, support shares, consensus levels, bridging and trends.

Pure functions over plain values, so that every number on a dashboard can be recomputed from an export.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class Stance(enum.StrEnum):
    SUPPORT = "support"
    SUPPORT_WITH_CHANGES = "support_with_changes"
    ABSTAIN = "abstain"
    OPPOSE = "oppose"


SUPPORTING = frozenset({Stance.SUPPORT, Stance.SUPPORT_WITH_CHANGES})


class Level(enum.StrEnum):
    CONSENSUS = "consensus"
    ROUGH_CONSENSUS = "rough_consensus"
    CONTESTED = "contested"
    INSUFFICIENT = "insufficient_participation"


@dataclass(frozen=True)
class Thresholds:
    """A round's rules for naming a clause's consensus level; frozen once the round opens."""

    consensus_support: float = 0.8
    rough_support: float = 0.6
    category_floor: float = 0.5
    min_participants: int = 5
    # A category diverges when its support differs this much from everyone else's.
    divergence: float = 0.4
    # A category's share counts (for the floor and divergence) only with this many non-abstaining answers.
    min_category_answers: int = 2

    def validate(self) -> list[str]:
        """Return what is wrong with these thresholds, in plain words (empty when they are sound)."""
        problems = []
        for name in ("consensus_support", "rough_support", "category_floor", "divergence"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                problems.append(f"{name} must be between 0 and 1")
        if self.rough_support > self.consensus_support:
            problems.append("rough_support must not exceed consensus_support")
        if self.min_participants < 1 or self.min_category_answers < 1:
            problems.append("minimum counts must be at least 1")
        return problems


class Answer(NamedTuple):
    """One counted position: who (only their category matters here), what, and whether an objection is open.

    A tuple, so that a round's answers can be counted by `collections.Counter` at C speed before tallying.
    """

    clause_key: str
    category: str
    stance: str
    serious_objection: bool = False
    objection_addressed: bool = False


@dataclass
class Counts:
    support: int = 0
    support_with_changes: int = 0
    abstain: int = 0
    oppose: int = 0

    def add(self, stance: str, number: int = 1) -> None:
        setattr(self, Stance(stance).value, getattr(self, stance) + number)

    @property
    def total(self) -> int:
        return self.support + self.support_with_changes + self.abstain + self.oppose

    @property
    def answering(self) -> int:
        """Everyone who took a side (abstentions are not counted for or against)."""
        return self.support + self.support_with_changes + self.oppose

    @property
    def support_share(self) -> float | None:
        """Supporters (with or without changes) among those who took a side; None when nobody did."""
        return (self.support + self.support_with_changes) / self.answering if self.answering else None

    def as_dict(self) -> dict[str, int]:
        return {stance.value: getattr(self, stance.value) for stance in Stance}


@dataclass
class ClauseTally:
    clause_key: str
    overall: Counts = field(default_factory=Counts)
    by_category: dict[str, Counts] = field(default_factory=dict)
    serious_objections: int = 0
    open_serious_objections: int = 0
    level: Level = Level.INSUFFICIENT
    lowest_category: str | None = None
    lowest_category_support: float | None = None
    bridging: float | None = None
    divergent: list[Divergence] = field(default_factory=list)

    @property
    def support_share(self) -> float | None:
        return self.overall.support_share

    @property
    def contestedness(self) -> float:
        """1 when those taking a side split evenly, 0 when they agree; open serious objections add to it."""
        share = self.support_share
        split = 0.0 if share is None else 1 - abs(2 * share - 1)
        return split + self.open_serious_objections

    def category_share(self, category: str) -> float | None:
        counts = self.by_category.get(category)
        return counts.support_share if counts else None


@dataclass(frozen=True)
class Divergence:
    """A category whose support differs strongly from everyone else's on the same clause."""

    category: str
    category_support: float
    others_support: float

    @property
    def gap(self) -> float:
        return self.category_support - self.others_support


def tally(answers: Iterable[Answer], clause_keys: Sequence[str], thresholds: Thresholds) -> list[ClauseTally]:
    """Count the answers per clause (in `clause_keys` order) and name each clause's level."""
    return tally_counted(Counter(answers).items(), clause_keys, thresholds)


def tally_counted(
    groups: Iterable[tuple[Answer, int]], clause_keys: Sequence[str], thresholds: Thresholds
) -> list[ClauseTally]:
    """Tally answers already counted into (answer, how many) groups, as a database GROUP BY gives them.

    Answers on clauses outside `clause_keys` are ignored: the round's scope decides what is counted.
    """
    tallies = {key: ClauseTally(key) for key in clause_keys}
    for answer, number in groups:
        clause = tallies.get(answer.clause_key)
        if clause is None or number <= 0:
            continue
        clause.overall.add(answer.stance, number)
        clause.by_category.setdefault(answer.category, Counts()).add(answer.stance, number)
        if answer.stance == Stance.OPPOSE and answer.serious_objection:
            clause.serious_objections += number
            if not answer.objection_addressed:
                clause.open_serious_objections += number
    for clause in tallies.values():
        _judge(clause, thresholds)
    return list(tallies.values())


def _counted_categories(clause: ClauseTally, thresholds: Thresholds) -> dict[str, float]:
    return {
        category: counts.support_share
        for category, counts in clause.by_category.items()
        if counts.answering >= thresholds.min_category_answers and counts.support_share is not None
    }


def _judge(clause: ClauseTally, thresholds: Thresholds) -> None:
    shares = _counted_categories(clause, thresholds)
    if shares:
        # Ties go to the category that sorts first, so the result never depends on arrival order.
        clause.lowest_category = min(sorted(shares), key=lambda category: shares[category])
        clause.lowest_category_support = shares[clause.lowest_category]
    clause.bridging = bridging_score(clause.by_category)
    clause.divergent = divergences(clause, thresholds)
    clause.level = level_of(clause, thresholds)


def level_of(clause: ClauseTally, thresholds: Thresholds) -> Level:
    """Apply the round's rules, in the order the dashboard states them."""
    share = clause.support_share
    if clause.overall.answering < thresholds.min_participants or share is None:
        return Level.INSUFFICIENT
    floor_met = clause.lowest_category_support is None or clause.lowest_category_support >= thresholds.category_floor
    if share >= thresholds.consensus_support and floor_met and clause.open_serious_objections == 0:
        return Level.CONSENSUS
    if share >= thresholds.rough_support and clause.open_serious_objections == 0:
        return Level.ROUGH_CONSENSUS
    return Level.CONTESTED


def bridging_score(by_category: Mapping[str, Counts]) -> float | None:
    """Group-informed consensus, as Pol.is computes it: the product of each category's approval.

    Each category's approval is smoothed as (supporters + 1) / (answering + 2), so a category of one voice
    cannot zero the product alone. Reported as the geometric mean of those approvals, which keeps the score
    between 0 and 1 whatever the number of categories: high only when every category approves.
    """
    approvals = [
        (counts.support + counts.support_with_changes + 1) / (counts.answering + 2)
        for counts in by_category.values()
        if counts.answering
    ]
    if not approvals:
        return None
    # fsum is exactly rounded, so the score does not depend on the order the categories arrived in (the
    # order of a GROUP BY's rows, or of an export's), down to the last bit.
    return math.exp(math.fsum(math.log(a) for a in approvals) / len(approvals))


# A gap between two shares of q and s answers that is not exactly a two-decimal threshold misses it by at
# least 1 / (100·q·s), 1.6e-9 with 5,000 participants; subtracting two shares errs by about 1e-16.
_TOLERANCE = 1e-12


def divergences(clause: ClauseTally, thresholds: Thresholds) -> list[Divergence]:
    """Categories whose support differs from that of all other categories together by the threshold or more."""
    found = []
    for category, counts in sorted(clause.by_category.items()):
        if counts.answering < thresholds.min_category_answers or counts.support_share is None:
            continue
        others_supporting = (
            clause.overall.support + clause.overall.support_with_changes - counts.support - counts.support_with_changes
        )
        others_answering = clause.overall.answering - counts.answering
        if others_answering < thresholds.min_category_answers:
            continue
        others = others_supporting / others_answering
        # The gap is a difference of two ratios of counts; let one exactly at the threshold reach it, as
        # floating point alone would not (0.7 - 0.3 == 0.39999999999999997).
        if abs(counts.support_share - others) >= thresholds.divergence - _TOLERANCE:
            found.append(Divergence(category, counts.support_share, others))
    return found


@dataclass(frozen=True)
class TrendPoint:
    version_number: int
    round_id: int
    support_share: float | None
    level: Level
    answering: int


def trend(points: Iterable[TrendPoint]) -> list[TrendPoint]:
    """Order one clause's results across rounds by version, then round, for a trend line."""
    return sorted(points, key=lambda point: (point.version_number, point.round_id))


def change_in_support(points: Sequence[TrendPoint]) -> float | None:
    """Support in the latest round minus support in the first, where both are known."""
    known = [point.support_share for point in points if point.support_share is not None]
    return known[-1] - known[0] if len(known) >= 2 else None
