"""Demo accounts for every role, so a newcomer can try each journey."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import service as accounts
from app.accounts.models import Role, StakeholderCategory, User, WorkingGroup

DEMO_PASSWORD = "accord-demo"  # noqa: S105 - published in the README on purpose

# (email, name, organisation, category, site admin, role in every working group)
DEMO_USERS: list[tuple[str, str, str, StakeholderCategory, bool, Role | None]] = [
    ("admin@accord.example", "Ada Admin", "Accord secretariat", StakeholderCategory.PUBLIC_AUTHORITY, True, None),
    ("chair@accord.example", "Claire Chair", "Independent", StakeholderCategory.INDEPENDENT_EXPERT, False, Role.CHAIR),
    (
        "vicechair@accord.example",
        "Viktor Vice",
        "University of Lund",
        StakeholderCategory.ACADEMIA,
        False,
        Role.VICE_CHAIR,
    ),
    ("editor@accord.example", "Elif Editor", "Independent", StakeholderCategory.INDEPENDENT_EXPERT, False, Role.EDITOR),
    ("member@accord.example", "Mats Member", "Open Models Lab", StakeholderCategory.GPAI_PROVIDER, False, Role.MEMBER),
    (
        "observer@accord.example",
        "Olga Observer",
        "Member State delegation",
        StakeholderCategory.PUBLIC_AUTHORITY,
        False,
        Role.OBSERVER,
    ),
    (
        "stakeholder@accord.example",
        "Sam Stakeholder",
        "Digital Rights Now",
        StakeholderCategory.CIVIL_SOCIETY,
        False,
        None,
    ),
]


def seed_demo_users(session: Session) -> int:
    """Create the demo accounts and give them their roles in every working group; return how many were new."""
    created = 0
    groups = list(session.scalars(select(WorkingGroup)))
    for email, name, organisation, category, is_admin, role in DEMO_USERS:
        user = accounts.find_user_by_email(session, email)
        if user is None:
            user = accounts.register_user(
                session, email=email, password=DEMO_PASSWORD, display_name=name,
                category=category, organisation=organisation, is_admin=is_admin,
            )  # fmt: skip
            created += 1
        if role is None:
            continue
        for group in groups:
            if accounts.role_in_group(session, user, group) is None:
                accounts.set_role(session, None, group, user, role)
    return created


def demo_user(session: Session, email: str) -> User | None:
    """Return a demo account by address."""
    return accounts.find_user_by_email(session, email)
