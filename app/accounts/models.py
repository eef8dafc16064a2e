"""Account, working-group and membership models."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from app.db import Base, created_at, pk, str_enum


class WordList(TypeDecorator[list[str]]):
    """A short list of words stored as one comma-separated string.

    Not JSON: PostgreSQL cannot compare json values, and queries select users DISTINCT.
    """

    impl = String(200)
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Any) -> str:
        return ",".join(sorted(set(value or [])))

    def process_result_value(self, value: str | None, dialect: Any) -> list[str]:
        return [word for word in (value or "").split(",") if word]


class StakeholderCategory(enum.StrEnum):
    GPAI_PROVIDER = "gpai_provider"
    DOWNSTREAM_PROVIDER = "downstream_provider"
    ACADEMIA = "academia"
    CIVIL_SOCIETY = "civil_society"
    RIGHTS_HOLDER = "rights_holder"
    INDUSTRY_ASSOCIATION = "industry_association"
    INDEPENDENT_EXPERT = "independent_expert"
    PUBLIC_AUTHORITY = "public_authority"
    OTHER = "other"

    @property
    def label(self) -> str:
        return str(CATEGORY_LABELS[self])


CATEGORY_LABELS = {
    StakeholderCategory.GPAI_PROVIDER: _l("General-purpose AI model provider"),
    StakeholderCategory.DOWNSTREAM_PROVIDER: _l("Downstream provider"),
    StakeholderCategory.ACADEMIA: _l("Academia and research"),
    StakeholderCategory.CIVIL_SOCIETY: _l("Civil society"),
    StakeholderCategory.RIGHTS_HOLDER: _l("Rights holder"),
    StakeholderCategory.INDUSTRY_ASSOCIATION: _l("Industry association"),
    StakeholderCategory.INDEPENDENT_EXPERT: _l("Independent expert"),
    StakeholderCategory.PUBLIC_AUTHORITY: _l("Public authority or member state"),
    StakeholderCategory.OTHER: _l("Other"),
}


class Role(enum.StrEnum):
    CHAIR = "chair"
    VICE_CHAIR = "vice_chair"
    EDITOR = "editor"
    MEMBER = "member"
    OBSERVER = "observer"

    @property
    def label(self) -> str:
        return str(ROLE_LABELS[self])


# What a deleted account's contributions are attributed to, in the reader's language.
WITHDRAWN_PARTICIPANT = _l("withdrawn participant")


class MailKind(enum.StrEnum):
    """The kinds of mail a person may choose to receive or not."""

    REPLY = "reply"
    DISPOSITION = "disposition"
    VERSION = "version"
    ROUND = "round"
    INVITATION = "invitation"

    @property
    def label(self) -> str:
        return str(MAIL_KIND_LABELS[self])


MAIL_KIND_LABELS = {
    MailKind.REPLY: _l("Replies to my comments"),
    MailKind.DISPOSITION: _l("Dispositions of my comments"),
    MailKind.VERSION: _l("New versions of codes I commented on"),
    MailKind.ROUND: _l("Rounds of positions opening and closing in my forums"),
    MailKind.INVITATION: _l("Invitations to working groups"),
}


ROLE_LABELS = {
    Role.CHAIR: _l("Chair"),
    Role.VICE_CHAIR: _l("Vice-chair"),
    Role.EDITOR: _l("Editor"),
    Role.MEMBER: _l("Member"),
    Role.OBSERVER: _l("Observer"),
}


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[pk]
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Read through `display_name`, which names a deleted account "withdrawn participant" in the reader's language.
    _display_name: Mapped[str] = mapped_column("display_name", String(120))
    organisation: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[StakeholderCategory] = mapped_column(str_enum(StakeholderCategory))
    transparency_register_id: Mapped[str | None] = mapped_column(String(40))
    is_admin: Mapped[bool] = mapped_column(default=False)
    locale: Mapped[str | None] = mapped_column(String(10))
    # Bumped on password change so every other session of this user stops working.
    session_generation: Mapped[int] = mapped_column(default=1)
    # Mail kinds (MailKind values) the person chose not to receive.
    mail_opt_out: Mapped[list[str]] = mapped_column(WordList(), default=list)
    # Set when the account was deleted: the row stays as a tombstone, its personal data erased.
    deleted_at: Mapped[dt.datetime | None]
    created_at: Mapped[created_at]

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @hybrid_property
    def display_name(self) -> str:
        if self.deleted_at is not None:
            return str(WITHDRAWN_PARTICIPANT)
        return self._display_name

    @display_name.inplace.setter
    def _display_name_setter(self, value: str) -> None:
        self._display_name = value

    @display_name.inplace.expression
    @classmethod
    def _display_name_expression(cls) -> ColumnElement[str]:
        return cls._display_name  # type: ignore[return-value]

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_active(self) -> bool:  # Flask-Login: a deleted account cannot log in
        return not self.is_deleted

    def wants_mail(self, kind: MailKind | str) -> bool:
        """Tell whether this person receives mail of this kind (everything unless they opted out)."""
        return not self.is_deleted and str(kind) not in (self.mail_opt_out or [])

    def get_id(self) -> str:
        return f"{self.id}:{self.session_generation}"

    @staticmethod
    def parse_login_id(login_id: object) -> tuple[int, int] | None:
        """The user id and session generation in a login id made by `get_id`, or None for anything else."""
        uid, _, generation = str(login_id or "").partition(":")
        if not uid.isdigit() or not generation.isdigit():
            return None
        return int(uid), int(generation)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class WorkingGroup(Base):
    __tablename__ = "working_groups"

    id: Mapped[pk]
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[created_at]

    memberships: Mapped[list[Membership]] = relationship(back_populates="working_group", cascade="all, delete-orphan")


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "working_group_id"),)

    id: Mapped[pk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    working_group_id: Mapped[int] = mapped_column(ForeignKey("working_groups.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(str_enum(Role, 20))
    created_at: Mapped[created_at]

    user: Mapped[User] = relationship(back_populates="memberships")
    working_group: Mapped[WorkingGroup] = relationship(back_populates="memberships")


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[pk]
    # The invitation keeps only a hash of its token; the raw link waits in the outbox until it is mailed.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    working_group_id: Mapped[int] = mapped_column(ForeignKey("working_groups.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(str_enum(Role, 20))
    email: Mapped[str | None] = mapped_column(String(254))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    working_group: Mapped[WorkingGroup] = relationship()
