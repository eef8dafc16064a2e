"""Forums, rounds of positions on a version, positions with their history, and consensus calls."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.accounts.models import StakeholderCategory, User, WorkingGroup
from app.consensus.tally import Level, Stance, Thresholds
from app.db import Base, created_at, pk, str_enum
from app.drafting.models import Code, Version
from app.errors import lazy_gettext as _l


class ForumKind(enum.StrEnum):
    PLENARY = "plenary"
    WORKSHOP = "workshop"
    ADVISORY = "advisory"
    SCIENTIFIC_PANEL = "scientific_panel"
    OPEN_CONSULTATION = "open_consultation"

    @property
    def label(self) -> str:
        return str(FORUM_KIND_LABELS[self])


FORUM_KIND_LABELS = {
    ForumKind.PLENARY: _l("Working-group plenary"),
    ForumKind.WORKSHOP: _l("Workshop"),
    ForumKind.ADVISORY: _l("Advisory forum"),
    ForumKind.SCIENTIFIC_PANEL: _l("Scientific panel"),
    ForumKind.OPEN_CONSULTATION: _l("Open consultation"),
}


class Eligibility(enum.StrEnum):
    MEMBERS = "members"
    REGISTERED = "registered"

    @property
    def label(self) -> str:
        return str(ELIGIBILITY_LABELS[self])


ELIGIBILITY_LABELS = {
    Eligibility.MEMBERS: _l("Forum members"),
    Eligibility.REGISTERED: _l("Any registered participant"),
}


class Counting(enum.StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"

    @property
    def label(self) -> str:
        return str(COUNTING_LABELS[self])


COUNTING_LABELS = {
    Counting.PERSON: _l("One position per person"),
    Counting.ORGANISATION: _l("One position per organisation"),
}

STANCE_LABELS = {
    Stance.SUPPORT: _l("Support"),
    Stance.SUPPORT_WITH_CHANGES: _l("Support with changes"),
    Stance.ABSTAIN: _l("Abstain"),
    Stance.OPPOSE: _l("Oppose"),
}

LEVEL_LABELS = {
    Level.CONSENSUS: _l("Consensus"),
    Level.ROUGH_CONSENSUS: _l("Rough consensus"),
    Level.CONTESTED: _l("Contested"),
    Level.INSUFFICIENT: _l("Insufficient participation"),
}


class Forum(Base):
    """A place where positions are gathered: a plenary, a workshop, an open consultation."""

    __tablename__ = "forums"

    id: Mapped[pk]
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ForumKind] = mapped_column(str_enum(ForumKind, 30))
    description: Mapped[str] = mapped_column(Text, default="")
    # Open forums take positions from any registered participant; closed ones from their members only.
    is_open: Mapped[bool] = mapped_column(default=False)
    # A forum of one working group is managed by its chairs; one without a group by admins only.
    working_group_id: Mapped[int | None] = mapped_column(ForeignKey("working_groups.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]

    working_group: Mapped[WorkingGroup | None] = relationship()
    members: Mapped[list[ForumMember]] = relationship(back_populates="forum", cascade="all, delete-orphan")
    rounds: Mapped[list[Round]] = relationship(back_populates="forum", order_by="Round.opens_at")


class ForumMember(Base):
    __tablename__ = "forum_members"
    __table_args__ = (UniqueConstraint("forum_id", "user_id"),)

    id: Mapped[pk]
    forum_id: Mapped[int] = mapped_column(ForeignKey("forums.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[created_at]

    forum: Mapped[Forum] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class Round(Base):
    """A call for positions in one forum on one version, with rules that freeze when it opens."""

    __tablename__ = "consensus_rounds"

    id: Mapped[pk]
    forum_id: Mapped[int] = mapped_column(ForeignKey("forums.id", ondelete="CASCADE"), index=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    opens_at: Mapped[dt.datetime]
    closes_at: Mapped[dt.datetime]
    # None means every clause of the version.
    clause_keys: Mapped[list[str] | None] = mapped_column(JSON)
    eligibility: Mapped[Eligibility] = mapped_column(str_enum(Eligibility, 20))
    counting: Mapped[Counting] = mapped_column(str_enum(Counting, 20))
    consensus_support: Mapped[float]
    rough_support: Mapped[float]
    category_floor: Mapped[float]
    min_participants: Mapped[int]
    divergence: Mapped[float]
    min_category_answers: Mapped[int]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    # When the opening and the closing were announced (app/consensus/announcements.py); None: not yet.
    opening_announced_at: Mapped[dt.datetime | None]
    closing_announced_at: Mapped[dt.datetime | None]

    forum: Mapped[Forum] = relationship(back_populates="rounds")
    code: Mapped[Code] = relationship()
    version: Mapped[Version] = relationship()

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            consensus_support=self.consensus_support,
            rough_support=self.rough_support,
            category_floor=self.category_floor,
            min_participants=self.min_participants,
            divergence=self.divergence,
            min_category_answers=self.min_category_answers,
        )

    def has_opened(self, now: dt.datetime) -> bool:
        return now >= self.opens_at

    def is_open(self, now: dt.datetime) -> bool:
        return self.opens_at <= now < self.closes_at

    def has_closed(self, now: dt.datetime) -> bool:
        return now >= self.closes_at

    def scope(self) -> list[str]:
        """The clause keys in scope, in the version's order."""
        keys = [clause.key for clause in self.version.clauses]
        return keys if self.clause_keys is None else [key for key in keys if key in set(self.clause_keys)]


class Position(Base):
    """The current position of one participant (a person, or an organisation) on one clause in one round."""

    __tablename__ = "positions"
    __table_args__ = (
        UniqueConstraint("round_id", "clause_key", "participant_key"),
        # Covers the tally's GROUP BY, so counting a round reads the index alone.
        Index("ix_positions_tally", "round_id", "clause_key", "category", "stance", "serious_objection"),
        # Covers counting distinct participants per category.
        Index("ix_positions_participants", "round_id", "category", "participant_key"),
    )

    id: Mapped[pk]
    round_id: Mapped[int] = mapped_column(ForeignKey("consensus_rounds.id", ondelete="CASCADE"))
    clause_key: Mapped[str] = mapped_column(String(120))
    # "user:<id>", or "org:<normalised name>" when the round counts one position per organisation.
    participant_key: Mapped[str] = mapped_column(String(220))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Kept with the position, so the tally stays as it was when the position was recorded.
    category: Mapped[StakeholderCategory] = mapped_column(str_enum(StakeholderCategory))
    organisation: Mapped[str | None] = mapped_column(String(200))
    stance: Mapped[Stance] = mapped_column(str_enum(Stance, 30))
    serious_objection: Mapped[bool] = mapped_column(default=False)
    rationale: Mapped[str] = mapped_column(Text, default="")
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="SET NULL"))
    # Whether the participant agreed to the publication of this position with their name.
    publish: Mapped[bool] = mapped_column(default=False)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[created_at]
    updated_at: Mapped[dt.datetime]

    round: Mapped[Round] = relationship()
    user: Mapped[User | None] = relationship()
    history: Mapped[list[PositionRevision]] = relationship(
        back_populates="position", cascade="all, delete-orphan", order_by="PositionRevision.revision"
    )


class PositionRevision(Base):
    """Every recorded state of a position, the current one included."""

    __tablename__ = "position_revisions"
    __table_args__ = (UniqueConstraint("position_id", "revision"),)

    id: Mapped[pk]
    position_id: Mapped[int] = mapped_column(ForeignKey("positions.id", ondelete="CASCADE"))
    revision: Mapped[int]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stance: Mapped[Stance] = mapped_column(str_enum(Stance, 30))
    serious_objection: Mapped[bool]
    rationale: Mapped[str] = mapped_column(Text)
    comment_id: Mapped[int | None]
    publish: Mapped[bool]
    created_at: Mapped[created_at]

    position: Mapped[Position] = relationship(back_populates="history")
    user: Mapped[User | None] = relationship()


class ConsensusCall(Base):
    """The chair's judgement on one clause of a round; each change is a new revision."""

    __tablename__ = "consensus_calls"
    __table_args__ = (UniqueConstraint("round_id", "clause_key", "revision"),)

    id: Mapped[pk]
    round_id: Mapped[int] = mapped_column(ForeignKey("consensus_rounds.id", ondelete="CASCADE"), index=True)
    clause_key: Mapped[str] = mapped_column(String(120))
    revision: Mapped[int]
    level: Mapped[Level] = mapped_column(str_enum(Level, 30))
    outcome: Mapped[str] = mapped_column(Text)
    dissent: Mapped[str] = mapped_column(Text, default="")
    # [{"position_id": int, "handling": str}, ...]: how each serious objection was handled.
    objections: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]

    author: Mapped[User | None] = relationship()
