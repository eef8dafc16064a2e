"""Consensus operations: forums and members, rounds with frozen rules, positions with history, tallies,
trends, consensus calls and exports."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, not_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.accounts.models import StakeholderCategory, User, WorkingGroup
from app.audit.service import record_event
from app.comments.models import Comment
from app.consensus.models import (
    ConsensusCall,
    Counting,
    Eligibility,
    Forum,
    ForumKind,
    ForumMember,
    Position,
    PositionRevision,
    Round,
)
from app.consensus.tally import (
    Answer,
    ClauseTally,
    Level,
    Stance,
    Thresholds,
    TrendPoint,
    tally_counted,
    trend,
)
from app.db import utcnow
from app.drafting.models import Code, Version
from app.errors import Conflict, Forbidden, NotFound, Text, ValidationFailed, lazy_join
from app.errors import lazy_gettext as _l
from app.policy import Action, can, is_member, may_respond, may_see_results, require

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
MAX_RATIONALE = 10_000
MAX_OUTCOME = 20_000
_SERIOUS = and_(Position.stance == Stance.OPPOSE, Position.serious_objection.is_(True))


# --- forums ----------------------------------------------------------------------------------------


def create_forum(
    session: Session,
    actor: User,
    *,
    slug: str,
    name: str,
    kind: str,
    description: str = "",
    is_open: bool = False,
    working_group: WorkingGroup | None = None,
) -> Forum:
    """Create a forum; admins create any, chairs only forums of their own working group.

    Raises:
        Forbidden: when the actor may not create it.
        ValidationFailed: for a bad slug, name or kind.
        Conflict: when the slug is taken.
    """
    forum = Forum(slug=slug, name=name.strip(), description=description.strip(), is_open=is_open)
    forum.working_group = working_group
    # Set now, not at flush: the access check below reads it.
    forum.working_group_id = working_group.id if working_group is not None else None
    require(
        actor, Action.MANAGE_FORUM, forum,
        reason=_l("Only admins, and chairs for their own working group, create forums."),
    )  # fmt: skip
    errors: dict[str, Text] = {}
    if not SLUG.match(slug):
        errors["slug"] = _l("Use 1–80 lower-case letters, digits and hyphens, not starting or ending with a hyphen.")
    if not forum.name or len(forum.name) > 200:
        errors["name"] = _l("Give the forum a name of at most 200 characters.")
    try:
        forum.kind = ForumKind(kind)
    except ValueError:
        errors["kind"] = _l("Choose one of the listed kinds of forum.")
    if errors:
        raise ValidationFailed(lazy_join(" ", errors.values()), field_errors=errors)
    if session.scalar(select(Forum.id).where(Forum.slug == slug)) is not None:
        raise Conflict(_l("A forum with that address already exists."))
    forum.created_by_id = actor.id
    session.add(forum)
    session.flush()
    record_event(session, actor, "forum.created", "forum", forum.id, slug=slug, open=is_open)
    return forum


def list_forums(session: Session) -> list[Forum]:
    return list(session.scalars(select(Forum).order_by(Forum.name)))


def get_forum(session: Session, slug: str) -> Forum:
    forum = session.scalars(select(Forum).where(Forum.slug == slug)).first()
    if forum is None:
        raise NotFound()
    return forum


def add_member(session: Session, actor: User, forum: Forum, user: User) -> bool:
    """Add a participant to a forum; return False when they already were one."""
    require(actor, Action.MANAGE_FORUM, forum, reason=_l("Only the forum's managers add participants."))
    if is_member(forum, user):
        return False
    forum.members.append(ForumMember(user=user))
    session.flush()
    record_event(session, actor, "forum.member_added", "forum", forum.id, user=user.id)
    return True


def remove_member(session: Session, actor: User, forum: Forum, user: User) -> None:
    """Remove a participant; positions already recorded stay in the rounds they were recorded in."""
    require(actor, Action.MANAGE_FORUM, forum, reason=_l("Only the forum's managers remove participants."))
    member = next((m for m in forum.members if m.user_id == user.id), None)
    if member is None:
        raise NotFound()
    forum.members.remove(member)
    record_event(session, actor, "forum.member_removed", "forum", forum.id, user=user.id)


# --- rounds ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundRules:
    """What a chair sets when opening a round; none of it changes once the round has opened."""

    title: str
    opens_at: dt.datetime
    closes_at: dt.datetime
    clause_keys: Sequence[str] | None = None
    eligibility: str = Eligibility.MEMBERS.value
    counting: str = Counting.PERSON.value
    thresholds: Thresholds = field(default_factory=Thresholds)


def _apply_rules(round_: Round, forum: Forum, version: Version, rules: RoundRules) -> None:
    errors: dict[str, Text] = {}
    title = rules.title.strip()
    if not title or len(title) > 200:
        errors["title"] = _l("Give the round a title of at most 200 characters.")
    if rules.opens_at.tzinfo is None or rules.closes_at.tzinfo is None:
        errors["opens_at"] = _l("Give opening and closing times with a time zone.")
    elif rules.closes_at <= rules.opens_at:
        errors["closes_at"] = _l("The round must close after it opens.")
    keys = {clause.key for clause in version.clauses}
    scope = None if rules.clause_keys is None else list(dict.fromkeys(rules.clause_keys))
    if scope is not None:
        unknown = [key for key in scope if key not in keys]
        if unknown:
            errors["clause_keys"] = _l(
                "This version has no clause %(keys)s.", keys=", ".join(repr(key) for key in unknown[:5])
            )
        elif not scope:
            errors["clause_keys"] = _l("Choose at least one clause, or leave the scope empty for all clauses.")
    try:
        eligibility = Eligibility(rules.eligibility)
    except ValueError:
        errors["eligibility"] = _l("Choose forum members or any registered participant.")
        eligibility = Eligibility.MEMBERS
    if eligibility is Eligibility.REGISTERED and not forum.is_open:
        errors["eligibility"] = _l("Only an open forum takes positions from any registered participant.")
    try:
        counting = Counting(rules.counting)
    except ValueError:
        errors["counting"] = _l("Choose one position per person or per organisation.")
        counting = Counting.PERSON
    if rules.thresholds.validate():
        errors["thresholds"] = _l(
            "Thresholds must be shares between 0 and 1, rough consensus no higher than consensus, and minimum "
            "counts at least 1."
        )
    if errors:
        raise ValidationFailed(
            _l("The round was not saved: %(problems)s", problems=lazy_join(" ", errors.values())),
            field_errors=errors,
        )
    t = rules.thresholds
    round_.title, round_.opens_at, round_.closes_at = title, rules.opens_at, rules.closes_at
    round_.clause_keys = scope
    round_.eligibility, round_.counting = eligibility, counting
    round_.consensus_support, round_.rough_support, round_.category_floor = (
        t.consensus_support,
        t.rough_support,
        t.category_floor,
    )
    round_.min_participants, round_.divergence = t.min_participants, t.divergence
    round_.min_category_answers = t.min_category_answers


def create_round(session: Session, actor: User, forum: Forum, version: Version, rules: RoundRules) -> Round:
    """Open a round of positions in a forum on one version of a code.

    Raises:
        Forbidden: unless the actor chairs the code's working group.
        ValidationFailed: for bad rules, or a forum of another working group.
    """
    code = version.code
    require(actor, Action.VIEW_VERSION, version)
    require(actor, Action.MANAGE_CONSULTATION, code, reason=_l("Only the working group's chairs open rounds."))
    if forum.working_group_id is not None and forum.working_group_id != code.working_group_id:
        raise ValidationFailed(_l("This forum belongs to another working group."))
    # By id, not relationship: a round that fails validation must never reach the session through a backref.
    round_ = Round(forum_id=forum.id, code_id=code.id, version_id=version.id, created_by_id=actor.id)
    _apply_rules(round_, forum, version, rules)
    session.add(round_)
    session.flush()
    record_event(session, actor, "round.created", "round", round_.id, forum=forum.id, version=version.id)
    return round_


def update_round(session: Session, actor: User, round_: Round, rules: RoundRules, *, now: dt.datetime) -> None:
    """Change a round's rules before it opens.

    Raises:
        Conflict: once the round has opened, its rules are frozen.
    """
    require(actor, Action.MANAGE_CONSULTATION, round_.code, reason=_l("Only the working group's chairs change rounds."))
    check_unfrozen(round_, now)
    _apply_rules(round_, round_.forum, round_.version, rules)
    record_event(session, actor, "round.updated", "round", round_.id)


def check_unfrozen(round_: Round, now: dt.datetime) -> None:
    """Raise Conflict once the round has opened: positions were taken under its rules."""
    if round_.has_opened(now):
        raise Conflict(
            _l(
                "This round opened at %(time)s UTC, so its rules are frozen: positions were taken under them. "
                "Open a new round to ask again under other rules.",
                time=f"{round_.opens_at:%Y-%m-%d %H:%M}",
            )
        )


def get_round(session: Session, viewer: object, round_id: int) -> Round:
    """Return a round whose version the viewer may see."""
    round_ = session.get(Round, round_id)
    if round_ is None or not can(viewer, Action.VIEW_VERSION, round_.version):
        raise NotFound()
    return round_


def rounds_of_code(session: Session, code: Code) -> list[Round]:
    return list(
        session.scalars(
            select(Round).where(Round.code_id == code.id).options(selectinload(Round.version)).order_by(Round.opens_at)
        )
    )


def require_results(viewer: object, round_: Round, now: dt.datetime) -> None:
    if not may_see_results(viewer, round_, now):
        raise NotFound()


# --- positions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionInput:
    clause_key: str
    stance: str
    serious_objection: bool = False
    rationale: str = ""
    comment_id: int | None = None
    publish: bool = False


def participant_key(round_: Round, user: User) -> str:
    """Who a position counts for: the person, or their organisation when the round counts organisations."""
    if round_.counting is Counting.ORGANISATION and user.organisation and user.organisation.strip():
        return "org:" + " ".join(user.organisation.casefold().split())[:200]
    return f"user:{user.id}"


def _check_position(session: Session, actor: User, round_: Round, given: PositionInput) -> dict[str, Text]:
    errors: dict[str, Text] = {}
    if given.clause_key not in round_.scope():
        errors["clause_key"] = _l("Clause %(key)s is not part of this round.", key=repr(given.clause_key))
    try:
        stance = Stance(given.stance)
    except ValueError:
        errors["stance"] = _l("Choose support, support with changes, abstain or oppose.")
        return errors
    if stance is Stance.OPPOSE and not given.rationale.strip():
        errors["rationale"] = _l("Say why you oppose: a rationale is required with an objection.")
    if given.serious_objection and stance is not Stance.OPPOSE:
        errors["serious_objection"] = _l("Only an opposition can be marked as a serious objection.")
    if len(given.rationale) > MAX_RATIONALE:
        errors["rationale"] = _l("A rationale can be at most 10,000 characters.")
    if given.comment_id is not None:
        comment = session.get(Comment, given.comment_id)
        if (
            comment is None
            or comment.author_id != actor.id
            or comment.version_id != round_.version_id
            or comment.clause_key != given.clause_key
        ):
            errors["comment_id"] = _l("Link one of your own comments on this clause of this version.")
    return errors


def _not_open_message(round_: Round, now: dt.datetime) -> Text:
    if now < round_.opens_at:
        return _l(
            "This round opens at %(time)s UTC; positions are not taken yet.", time=f"{round_.opens_at:%Y-%m-%d %H:%M}"
        )
    return _l(
        "This round closed at %(time)s UTC; positions are no longer taken.", time=f"{round_.closes_at:%Y-%m-%d %H:%M}"
    )


def record_positions(
    session: Session, actor: User, round_: Round, given: Sequence[PositionInput], *, now: dt.datetime | None = None
) -> list[tuple[Position, bool]]:
    """Record several positions at once: all of them or, when any is invalid, none.

    Recording the same position again changes nothing (a retry, a double click); a different one replaces
    it and keeps the earlier one in its history. Returns each position with whether it changed.

    Raises:
        NotFound: when the viewer may not see the round.
        Forbidden: when the actor may not take part.
        Conflict: when the round is not open.
        ValidationFailed: for an unknown stance, a clause out of scope, a missing rationale; nothing is stored.
    """
    now = now or utcnow()
    require(actor, Action.VIEW_VERSION, round_.version)
    if not may_respond(actor, round_):
        raise Forbidden(_l("Only the forum's participants record positions in this round."))
    if not round_.is_open(now):
        raise Conflict(_not_open_message(round_, now))
    problems: dict[str, Text] = {}
    seen: set[str] = set()
    for item in given:
        if item.clause_key in seen:
            problems[item.clause_key] = _l("Clause %(key)s was given twice.", key=repr(item.clause_key))
        seen.add(item.clause_key)
        for name, message in _check_position(session, actor, round_, item).items():
            # Keyed by clause, so the bulk form can show each problem beside its clause.
            problems[f"{item.clause_key}.{name}"] = message
    if problems:
        raise ValidationFailed(
            _l("Nothing was recorded: %(problems)s", problems=lazy_join(" ", problems.values())),
            field_errors=problems,
        )
    return [_record_one(session, actor, round_, item, now) for item in given]


def record_position(
    session: Session, actor: User, round_: Round, given: PositionInput, *, now: dt.datetime | None = None
) -> tuple[Position, bool]:
    """Record one position; see `record_positions`."""
    return record_positions(session, actor, round_, [given], now=now)[0]


def _record_one(
    session: Session, actor: User, round_: Round, item: PositionInput, now: dt.datetime
) -> tuple[Position, bool]:
    key = participant_key(round_, actor)
    stance = Stance(item.stance)
    state = (stance, item.serious_objection, item.rationale.strip(), item.comment_id, item.publish)
    position = _find(session, round_, item.clause_key, key)
    if position is None:
        position = Position(
            round_id=round_.id, clause_key=item.clause_key, participant_key=key, revision=0, updated_at=now,
            user_id=actor.id, category=actor.category, organisation=actor.organisation,
            stance=stance, serious_objection=item.serious_objection, rationale=state[2],
            comment_id=item.comment_id, publish=item.publish,
        )  # fmt: skip
        try:
            # A savepoint, so that a parallel twin winning the unique key does not undo the rest of the work.
            with session.begin_nested():
                session.add(position)
                session.flush()
        except IntegrityError:
            position = _find(session, round_, item.clause_key, key)
            if position is None:
                raise
        else:
            return _revise(session, actor, position, now, created=True), True
    current = (position.stance, position.serious_objection, position.rationale, position.comment_id, position.publish)
    if current == state and position.user_id == actor.id:
        return position, False
    position.stance, position.serious_objection, position.rationale, position.comment_id, position.publish = state
    position.user_id, position.category, position.organisation = actor.id, actor.category, actor.organisation
    return _revise(session, actor, position, now, created=False), True


def _find(session: Session, round_: Round, clause_key: str, key: str) -> Position | None:
    return session.scalars(
        select(Position).where(
            Position.round_id == round_.id, Position.clause_key == clause_key, Position.participant_key == key
        )
    ).first()


def _revise(session: Session, actor: User, position: Position, now: dt.datetime, *, created: bool) -> Position:
    position.revision += 1
    position.updated_at = now
    session.add(
        PositionRevision(
            position_id=position.id, revision=position.revision, user_id=actor.id, stance=position.stance,
            serious_objection=position.serious_objection, rationale=position.rationale,
            comment_id=position.comment_id, publish=position.publish, created_at=now,
        )
    )  # fmt: skip
    session.flush()
    record_event(
        session, actor, "position.recorded" if created else "position.changed", "position", position.id,
        round=position.round_id, clause=position.clause_key, stance=position.stance.value,
        revision=position.revision,
    )  # fmt: skip
    return position


def my_comments_by_clause(session: Session, round_: Round, user: User) -> dict[str, list[Comment]]:
    """The user's own top-level comments on the round's version, which a position may link to."""
    comments = session.scalars(
        select(Comment)
        .where(
            Comment.author_id == user.id,
            Comment.version_id == round_.version_id,
            Comment.parent_id.is_(None),
            Comment.withdrawn_at.is_(None),
        )
        .order_by(Comment.id)
    )
    found: dict[str, list[Comment]] = defaultdict(list)
    for comment in comments:
        found[comment.clause_key].append(comment)
    return found


def serious_objections(session: Session, round_: Round, clause_key: str) -> list[Position]:
    return list(
        session.scalars(
            select(Position)
            .where(Position.round_id == round_.id, Position.clause_key == clause_key, _SERIOUS)
            .options(selectinload(Position.user))
            .order_by(Position.id)
        )
    )


def my_positions(session: Session, round_: Round, user: User) -> dict[str, Position]:
    """The positions that count for this user (theirs, or their organisation's), by clause key."""
    key = participant_key(round_, user)
    rows = session.scalars(select(Position).where(Position.round_id == round_.id, Position.participant_key == key))
    return {position.clause_key: position for position in rows}


# --- consensus calls -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallInput:
    clause_key: str
    level: str
    outcome: str
    dissent: str = ""
    # position id -> how the objection was handled
    objections: dict[int, str] = field(default_factory=dict)


def record_call(session: Session, actor: User, round_: Round, given: CallInput) -> ConsensusCall:
    """Record (or revise) the chair's consensus call on a clause; earlier revisions stay readable.

    Raises:
        Forbidden: unless the actor chairs the code's working group.
        ValidationFailed: for an unknown clause or level, an empty outcome, or an objection from elsewhere.
    """
    require(actor, Action.MANAGE_CONSULTATION, round_.code, reason=_l("Only the working group's chairs make calls."))
    errors: dict[str, Text] = {}
    if given.clause_key not in round_.scope():
        errors["clause_key"] = _l("Clause %(key)s is not part of this round.", key=repr(given.clause_key))
    try:
        level = Level(given.level)
    except ValueError:
        errors["level"] = _l("Choose consensus, rough consensus, contested or insufficient participation.")
        level = Level.CONTESTED
    if not given.outcome.strip():
        errors["outcome"] = _l("State the outcome.")
    elif len(given.outcome) > MAX_OUTCOME or len(given.dissent) > MAX_OUTCOME:
        errors["outcome"] = _l("An outcome or dissent can be at most 20,000 characters.")
    objection_ids = set(
        session.scalars(
            select(Position.id).where(
                Position.round_id == round_.id,
                Position.clause_key == given.clause_key,
                Position.serious_objection.is_(True),
            )
        )
    )
    if not set(given.objections) <= objection_ids:
        errors["objections"] = _l("Only serious objections on this clause in this round can be marked as handled.")
    if errors:
        raise ValidationFailed(
            _l("The call was not recorded: %(problems)s", problems=lazy_join(" ", errors.values())),
            field_errors=errors,
        )
    previous = session.scalar(
        select(func.max(ConsensusCall.revision)).where(
            ConsensusCall.round_id == round_.id, ConsensusCall.clause_key == given.clause_key
        )
    )
    call = ConsensusCall(
        round_id=round_.id, clause_key=given.clause_key, revision=(previous or 0) + 1, level=level,
        outcome=given.outcome.strip(), dissent=given.dissent.strip(), author_id=actor.id,
        objections=[
            {"position_id": pid, "handling": text.strip()}
            for pid, text in sorted(given.objections.items())
            if text.strip()
        ],
    )  # fmt: skip
    session.add(call)
    session.flush()
    record_event(
        session, actor, "consensus.call", "round", round_.id,
        clause=given.clause_key, revision=call.revision, level=level.value,
    )  # fmt: skip
    return call


def latest_calls(session: Session, round_: Round) -> dict[str, ConsensusCall]:
    calls = session.scalars(
        select(ConsensusCall).where(ConsensusCall.round_id == round_.id).order_by(ConsensusCall.revision)
    )
    return {call.clause_key: call for call in calls}


def call_history(session: Session, round_: Round, clause_key: str) -> list[ConsensusCall]:
    return list(
        session.scalars(
            select(ConsensusCall)
            .where(ConsensusCall.round_id == round_.id, ConsensusCall.clause_key == clause_key)
            .order_by(ConsensusCall.revision.desc())
        )
    )


def addressed_objections(calls: Iterable[ConsensusCall]) -> set[int]:
    """Serious objections the chair recorded as handled in the latest call on their clause."""
    return {int(item["position_id"]) for call in calls for item in call.objections}  # type: ignore[call-overload]


# --- tallies ---------------------------------------------------------------------------------------


@dataclass
class RoundTally:
    round: Round
    clauses: list[ClauseTally]
    headings: dict[str, str]
    # Distinct participants (people or organisations) per category, across the round.
    participants: dict[str, int]
    categories: list[str]

    def clause(self, key: str) -> ClauseTally:
        return next(clause for clause in self.clauses if clause.clause_key == key)


def counted_answers(session: Session, round_: Round, addressed: set[int]) -> list[tuple[Answer, int]]:
    """The round's positions, counted by the database; serious objections one by one (to know which are open)."""
    grouped = session.execute(
        select(Position.clause_key, Position.category, Position.stance, func.count())
        .where(Position.round_id == round_.id, not_(_SERIOUS))
        .group_by(Position.clause_key, Position.category, Position.stance)
    )
    groups = [(Answer(key, str(category), str(stance)), number) for key, category, stance, number in grouped]
    serious = session.execute(
        select(Position.id, Position.clause_key, Position.category).where(Position.round_id == round_.id, _SERIOUS)
    )
    groups += [
        (Answer(key, str(category), Stance.OPPOSE.value, True, pid in addressed), 1) for pid, key, category in serious
    ]
    return groups


def participants_per_category(session: Session, round_: Round) -> dict[str, int]:
    """Distinct participants (people or organisations) per stakeholder category across the round."""
    rows = session.execute(
        select(Position.category, func.count(func.distinct(Position.participant_key)))
        # No scope filter: positions are checked against the scope when recorded, and it is frozen by then.
        .where(Position.round_id == round_.id)
        .group_by(Position.category)
    )
    return {str(category): number for category, number in rows}


def round_tally(session: Session, round_: Round) -> RoundTally:
    """Tally a round as it stands, using the chair's latest calls to tell open serious objections."""
    scope = round_.scope()
    calls = latest_calls(session, round_)
    groups = counted_answers(session, round_, addressed_objections(calls.values()))
    participants = participants_per_category(session, round_)
    categories = [category.value for category in StakeholderCategory]
    return RoundTally(
        round=round_,
        clauses=tally_counted(groups, scope, round_.thresholds),
        headings={clause.key: clause.heading or clause.key for clause in round_.version.clauses},
        participants=participants,
        categories=categories,
    )


def trends(session: Session, round_: Round, viewer: object, now: dt.datetime) -> dict[str, list[TrendPoint]]:
    """Each clause's support across this forum's rounds on the same code, by version (the viewer's to see)."""
    rounds = [
        other
        for other in session.scalars(
            select(Round).where(Round.forum_id == round_.forum_id, Round.code_id == round_.code_id)
        )
        if other.id == round_.id or may_see_results(viewer, other, now)
    ]
    series: dict[str, list[TrendPoint]] = defaultdict(list)
    for other in rounds:
        for clause in round_tally(session, other).clauses:
            series[clause.clause_key].append(
                TrendPoint(other.version.number, other.id, clause.support_share, clause.level, clause.overall.answering)
            )
    return {key: trend(points) for key, points in series.items() if key in set(round_.scope())}


# --- exports ---------------------------------------------------------------------------------------


def tally_rows(result: RoundTally) -> list[dict[str, Any]]:
    """One row per clause and category (and one 'all' row per clause): the numbers the dashboard shows."""
    rows = []
    for clause in result.clauses:
        for category, counts in [("all", clause.overall), *sorted(clause.by_category.items())]:
            share = counts.support_share
            rows.append(
                {
                    "clause": clause.clause_key,
                    "category": category,
                    **counts.as_dict(),
                    "answering": counts.answering,
                    "support_share": None if share is None else round(share, 4),
                    # Distinct participants in the whole round (for "all": the sum over the categories).
                    "round_participants": (
                        sum(result.participants.values()) if category == "all" else result.participants.get(category, 0)
                    ),
                    **(
                        {
                            "serious_objections": clause.serious_objections,
                            "open_serious_objections": clause.open_serious_objections,
                            "lowest_category": clause.lowest_category,
                            "lowest_category_support": _rounded(clause.lowest_category_support),
                            "bridging": _rounded(clause.bridging),
                            "divergent": ";".join(d.category for d in clause.divergent),
                            "level": clause.level.value,
                        }
                        if category == "all"
                        else {}
                    ),
                }
            )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def position_rows(session: Session, round_: Round) -> list[dict[str, Any]]:
    """Every counted position: with name and rationale where the participant agreed to publication,
    otherwise as an anonymous row (category and stance only), so the tallies can be recomputed from it."""
    addressed = addressed_objections(latest_calls(session, round_).values())
    scope = set(round_.scope())
    positions = session.scalars(
        select(Position)
        .where(Position.round_id == round_.id)
        .options(selectinload(Position.user))
        .order_by(Position.clause_key, Position.id)
    )
    rows = []
    refs: dict[str, int] = {}
    for position in positions:
        if position.clause_key not in scope:
            continue
        named = position.publish
        # An opaque number per participant, so participation can be counted without naming anyone.
        ref = refs.setdefault(position.participant_key, len(refs) + 1)
        rows.append(
            {
                "position_id": position.id,
                "participant_ref": ref,
                "clause": position.clause_key,
                "category": position.category.value,
                "stance": position.stance.value,
                "serious_objection": position.serious_objection,
                "objection_addressed": position.id in addressed,
                "participant": (position.user.display_name if position.user else None) if named else None,
                "organisation": position.organisation if named else None,
                "rationale": position.rationale if named else None,
                "recorded_at": position.updated_at.isoformat() if named else None,
            }
        )
    return rows


def rules_json(round_: Round) -> dict[str, Any]:
    return {
        "id": round_.id,
        "title": round_.title,
        "forum": round_.forum.slug,
        "code": round_.code.slug,
        "version": round_.version.number,
        "opens_at": round_.opens_at.isoformat(),
        "closes_at": round_.closes_at.isoformat(),
        "clauses": round_.scope(),
        "eligibility": round_.eligibility.value,
        "counting": round_.counting.value,
        "thresholds": round_.thresholds.__dict__,
    }
