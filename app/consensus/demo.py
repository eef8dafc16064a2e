"""Demo forums, and two rounds of the European AI Alliance on the GPAI code, so the dashboard has something to show.

The positions come from demo participants with a fixed random seed: the same every time, and made to show
what the dashboard is for (a clause that only providers oppose, support that rises after a rewrite).
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import service as accounts
from app.accounts.models import StakeholderCategory, User, WorkingGroup
from app.consensus.models import Counting, Eligibility, Forum, ForumKind, ForumMember, Position, PositionRevision, Round
from app.consensus.tally import Stance, Thresholds
from app.demo import DEMO_PASSWORD
from app.drafting.models import Code, Version

# (slug, name, kind, open, description)
DEMO_FORUMS = [
    ("wg-gpai-plenary", "Working-group plenary", ForumKind.PLENARY, False,
     "The working group's members, chairs and vice-chairs."),
    ("provider-workshop", "Provider workshop", ForumKind.WORKSHOP, False,
     "Providers of general-purpose AI models, with the chairs."),
    ("civil-society-workshop", "Civil-society workshop", ForumKind.WORKSHOP, False,
     "Civil-society organisations, rights holders and academics."),
    ("advisory-forum", "Advisory forum", ForumKind.ADVISORY, False,
     "Member-state and advisory-body representatives."),
    ("scientific-panel", "Scientific panel", ForumKind.SCIENTIFIC_PANEL, False,
     "Independent experts advising on systemic risk."),
    ("european-ai-alliance", "European AI Alliance", ForumKind.OPEN_CONSULTATION, True,
     "The open consultation: every registered participant may take part."),
]  # fmt: skip

CATEGORY_MIX = [
    (StakeholderCategory.GPAI_PROVIDER, 6),
    (StakeholderCategory.DOWNSTREAM_PROVIDER, 4),
    (StakeholderCategory.ACADEMIA, 4),
    (StakeholderCategory.CIVIL_SOCIETY, 5),
    (StakeholderCategory.RIGHTS_HOLDER, 3),
    (StakeholderCategory.INDEPENDENT_EXPERT, 3),
]


def _participants(session: Session) -> list[User]:
    users = []
    for category, count in CATEGORY_MIX:
        for n in range(1, count + 1):
            email = f"{category.value.replace('_', '-')}-{n}@participants.accord.example"
            user = accounts.find_user_by_email(session, email)
            if user is None:
                user = accounts.register_user(
                    session, email=email, password=DEMO_PASSWORD, display_name=f"Demo {category.label} {n}",
                    category=category, organisation=f"Demo organisation {category.value} {n}",
                )  # fmt: skip
            users.append(user)
    return users


def _lean(category: StakeholderCategory, clause_index: int, version_number: int) -> float:
    """How likely a participant of this category supports a clause: providers resist copyright measures,
    rights holders resist their weakening, and the second draft wins support across the board."""
    base = 0.55 + 0.1 * (version_number - 1)
    if clause_index % 5 == 2:
        base += -0.45 if category is StakeholderCategory.GPAI_PROVIDER else 0.25
    if clause_index % 7 == 3 and category is StakeholderCategory.RIGHTS_HOLDER:
        base -= 0.4
    return max(0.05, min(0.95, base))


def _answer(rng: random.Random, lean: float) -> tuple[Stance, bool, str]:
    roll = rng.random()
    if roll < 0.08:
        return Stance.ABSTAIN, False, ""
    if rng.random() < lean:
        return (Stance.SUPPORT if rng.random() < 0.6 else Stance.SUPPORT_WITH_CHANGES), False, ""
    serious = rng.random() < 0.15
    return Stance.OPPOSE, serious, "The measure is not proportionate as drafted; see our written comments."


def _seed_round(
    session: Session, forum: Forum, version: Version, title: str, opens: dt.datetime, closes: dt.datetime,
    participants: list[User], seed: int,
) -> None:  # fmt: skip
    if session.scalar(select(Round.id).where(Round.forum_id == forum.id, Round.title == title)) is not None:
        return
    t = Thresholds()
    round_ = Round(
        forum=forum, code=version.code, version=version, title=title, opens_at=opens, closes_at=closes,
        clause_keys=None, eligibility=Eligibility.REGISTERED, counting=Counting.PERSON,
        consensus_support=t.consensus_support, rough_support=t.rough_support, category_floor=t.category_floor,
        min_participants=t.min_participants, divergence=t.divergence, min_category_answers=t.min_category_answers,
    )  # fmt: skip
    session.add(round_)
    session.flush()
    rng = random.Random(seed)
    when = opens + (closes - opens) / 2
    for index, clause in enumerate(version.clauses):
        for user in participants:
            if rng.random() < 0.15:  # not everyone answers every clause
                continue
            stance, serious, rationale = _answer(rng, _lean(user.category, index, version.number))
            position = Position(
                round_id=round_.id, clause_key=clause.key, participant_key=f"user:{user.id}", user_id=user.id,
                category=user.category, organisation=user.organisation, stance=stance, serious_objection=serious,
                rationale=rationale, publish=rng.random() < 0.5, revision=1, created_at=when, updated_at=when,
            )  # fmt: skip
            position.history.append(
                PositionRevision(
                    revision=1,
                    user_id=user.id,
                    stance=stance,
                    serious_objection=serious,
                    rationale=rationale,
                    comment_id=None,
                    publish=position.publish,
                    created_at=when,
                )
            )
            session.add(position)
    session.flush()


def seed_demo_consensus(session: Session) -> int:
    """Create the demo forums and rounds once; return how many forums were new."""
    created = 0
    group = session.scalars(select(WorkingGroup).where(WorkingGroup.slug == "wg-gpai")).first()
    forums = {}
    for slug, name, kind, is_open, description in DEMO_FORUMS:
        forum = session.scalars(select(Forum).where(Forum.slug == slug)).first()
        if forum is None:
            forum = Forum(slug=slug, name=name, kind=kind, is_open=is_open, description=description)
            forum.working_group = group if kind is not ForumKind.OPEN_CONSULTATION else None
            session.add(forum)
            created += 1
        forums[slug] = forum
    session.flush()
    plenary = forums["wg-gpai-plenary"]
    if group is not None and not plenary.members:
        plenary.members.extend(ForumMember(user_id=m.user_id) for m in group.memberships)
    code = session.scalars(select(Code).where(Code.slug == "gpai-code")).first()
    if code is None:
        return created
    versions = {v.number: v for v in code.versions}
    participants = _participants(session)
    alliance = forums["european-ai-alliance"]
    utc = dt.UTC
    if 1 in versions:
        _seed_round(
            session, alliance, versions[1], "Survey on the first draft",
            dt.datetime(2024, 11, 18, 9, tzinfo=utc), dt.datetime(2024, 12, 9, 17, tzinfo=utc), participants, 1,
        )  # fmt: skip
    if 2 in versions:
        _seed_round(
            session, alliance, versions[2], "Survey on the second draft",
            dt.datetime(2026, 11, 1, 9, tzinfo=utc), dt.datetime(2027, 1, 31, 17, tzinfo=utc), participants, 2,
        )  # fmt: skip
    return created
