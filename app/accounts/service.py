"""Account, working-group, membership and invitation operations."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from email_validator import EmailNotValidError, validate_email
from flask_babel import force_locale
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts.models import Invitation, Membership, Role, StakeholderCategory, User, WorkingGroup
from app.audit.service import record_event
from app.db import utcnow
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.errors import lazy_gettext as _l
from app.outbox.service import queue_message
from app.policy import Action, require

MIN_PASSWORD_LENGTH = 10
INVITATION_LIFETIME = dt.timedelta(days=14)


def normalise_email(email: str) -> str:
    """Validate an address and return its normalised form.

    Raises:
        ValidationFailed: when the address is not a valid email address.
    """
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise ValidationFailed(str(error), field_errors={"email": str(error)}) from error


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        message = _l("Use a password of at least %(count)d characters.", count=MIN_PASSWORD_LENGTH)
        raise ValidationFailed(message, field_errors={"password": message})


def find_user_by_email(session: Session, email: str) -> User | None:
    """Return the account with this address, if any."""
    return session.scalars(select(User).where(func.lower(User.email) == email.strip().lower())).first()


def register_user(
    session: Session,
    *,
    email: str,
    password: str,
    display_name: str,
    category: StakeholderCategory | str,
    organisation: str | None = None,
    transparency_register_id: str | None = None,
    is_admin: bool = False,
) -> User:
    """Create an account.

    Raises:
        ValidationFailed: for a bad address, a short password or an unknown category.
        Conflict: when the address is already registered.
    """
    address = normalise_email(email)
    _check_password(password)
    try:
        category = StakeholderCategory(category)
    except ValueError as error:
        raise ValidationFailed(_l("Choose a stakeholder category from the list.")) from error
    if not display_name.strip():
        raise ValidationFailed(_l("Enter the name to show with your contributions."))
    if find_user_by_email(session, address):
        raise Conflict(_l("An account with this email address already exists. Log in instead."))
    user = User(
        email=address,
        password_hash=generate_password_hash(password),
        display_name=display_name.strip(),
        organisation=(organisation or "").strip() or None,
        category=category,
        transparency_register_id=(transparency_register_id or "").strip() or None,
        is_admin=is_admin,
    )
    session.add(user)
    session.flush()
    record_event(session, user, "account.registered", "user", user.id, category=category.value)
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Return the account for these credentials, or None; a failed attempt is audited."""
    user = find_user_by_email(session, email)
    if user is None or not check_password_hash(user.password_hash, password):
        record_event(session, None, "login.failed", "user", user.id if user else None)
        return None
    record_event(session, user, "login.succeeded", "user", user.id)
    return user


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """Change a password and end every other session of the account.

    Raises:
        ValidationFailed: when the current password is wrong or the new one too short.
    """
    if not check_password_hash(user.password_hash, current):
        message = _l("The current password is not correct.")
        raise ValidationFailed(message, field_errors={"current_password": message})
    _check_password(new)
    user.password_hash = generate_password_hash(new)
    user.session_generation += 1
    record_event(session, user, "account.password_changed", "user", user.id)


def create_working_group(session: Session, actor: User, *, slug: str, name: str) -> WorkingGroup:
    """Create a working group (site admins only).

    Raises:
        Forbidden: when the actor is not a site admin.
        Conflict: when the slug is taken.
    """
    require(actor, Action.CREATE_WORKING_GROUP, reason=_l("Only site admins create working groups."))
    if session.scalars(select(WorkingGroup).where(WorkingGroup.slug == slug)).first():
        raise Conflict(_l("A working group with the short name '%(slug)s' already exists.", slug=slug))
    group = WorkingGroup(slug=slug, name=name.strip())
    session.add(group)
    session.flush()
    record_event(session, actor, "working_group.created", "working_group", group.id, slug=slug)
    return group


def get_working_group(session: Session, slug: str) -> WorkingGroup:
    """Return a working group by slug.

    Raises:
        NotFound: when there is none.
    """
    group = session.scalars(select(WorkingGroup).where(WorkingGroup.slug == slug)).first()
    if group is None:
        raise NotFound()
    return group


def set_role(session: Session, actor: User | None, group: WorkingGroup, user: User, role: Role | str) -> Membership:
    """Give a user a role in a working group, or change it.

    Raises:
        Forbidden: unless the actor chairs the group or is a site admin (None means the system).
        ValidationFailed: for an unknown role, or a change that would leave the group without a chair.
    """
    if actor is not None:
        require(actor, Action.MANAGE_MEMBERS, group, reason=_l("Only the group's chairs and site admins change roles."))
    try:
        role = Role(role)
    except ValueError as error:
        raise ValidationFailed(
            _l("'%(role)s' is not a role; choose chair, vice-chair, editor, member or observer.", role=role)
        ) from error
    membership = session.scalars(
        select(Membership).where(Membership.user_id == user.id, Membership.working_group_id == group.id)
    ).first()
    previous = membership.role if membership else None
    if previous == Role.CHAIR and role != Role.CHAIR and _chair_count(session, group) <= 1:
        raise ValidationFailed(_l("A working group needs at least one chair. Appoint another chair first."))
    if membership is None:
        membership = Membership(user=user, working_group=group, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    record_event(
        session, actor, "membership.role_set", "membership", membership.id,
        group=group.slug, user_id=user.id, role=role.value, previous=previous.value if previous else None,
    )  # fmt: skip
    return membership


def remove_member(session: Session, actor: User, group: WorkingGroup, user: User) -> None:
    """Remove a user from a working group.

    Raises:
        Forbidden: unless the actor chairs the group or is a site admin.
        ValidationFailed: when it would remove the last chair.
    """
    require(actor, Action.MANAGE_MEMBERS, group, reason=_l("Only the group's chairs and site admins remove members."))
    membership = session.scalars(
        select(Membership).where(Membership.user_id == user.id, Membership.working_group_id == group.id)
    ).first()
    if membership is None:
        raise NotFound()
    if membership.role == Role.CHAIR and _chair_count(session, group) <= 1:
        raise ValidationFailed(_l("A working group needs at least one chair. Appoint another chair first."))
    session.delete(membership)
    session.flush()
    record_event(session, actor, "membership.removed", "working_group", group.id, user_id=user.id)


def _chair_count(session: Session, group: WorkingGroup) -> int:
    return (
        session.scalar(
            select(func.count(Membership.id)).where(
                Membership.working_group_id == group.id, Membership.role == Role.CHAIR
            )
        )
        or 0
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_invitation(
    session: Session, actor: User, group: WorkingGroup, role: Role | str, email: str | None = None
) -> tuple[Invitation, str]:
    """Create a single-use invitation link token; the raw token is returned once and never stored.

    Raises:
        Forbidden: unless the actor chairs the group or is a site admin.
        ValidationFailed: for an unknown role or a bad address.
    """
    require(actor, Action.INVITE, group, reason=_l("Only the group's chairs and site admins invite people."))
    try:
        role = Role(role)
    except ValueError as error:
        raise ValidationFailed(_l("'%(role)s' is not a role.", role=role)) from error
    address = normalise_email(email) if email else None
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        token_hash=_token_hash(token),
        working_group=group,
        role=role,
        email=address,
        invited_by_id=actor.id,
        expires_at=utcnow() + INVITATION_LIFETIME,
    )
    session.add(invitation)
    session.flush()
    # The link goes to the outbox for a mail adapter to send (which should then clear the payload).
    # Stored in English; the mail is worded in the recipient's language when it is sent (app/mail/sender.py).
    with force_locale("en"):
        subject = f"Invitation to join {group.name} as {role.label}"
        body = f"{actor.display_name} invites you to join {group.name} as {role.label}."
    queue_message(
        session,
        kind="invitation",
        recipient=address,
        subject=subject,
        body=body,
        payload={
            "invitation_id": invitation.id, "token": token, "group": group.slug, "role": role.value,
            "group_name": group.name, "inviter": actor.display_name,
        },
    )  # fmt: skip
    record_event(session, actor, "invitation.created", "invitation", invitation.id, group=group.slug, role=role.value)
    return invitation, token


def find_invitation(session: Session, token: str) -> Invitation:
    """Return the open invitation for a token.

    Raises:
        NotFound: when the token is unknown.
        ValidationFailed: when it was used or has expired.
    """
    invitation = session.scalars(select(Invitation).where(Invitation.token_hash == _token_hash(token))).first()
    if invitation is None:
        raise NotFound()
    if invitation.used_at is not None:
        raise ValidationFailed(_l("This invitation has already been used. Ask the chair for a new link."))
    if invitation.expires_at < utcnow():
        raise ValidationFailed(_l("This invitation has expired. Ask the chair for a new link."))
    return invitation


def accept_invitation(session: Session, user: User, token: str) -> Membership:
    """Use an invitation: the user joins the group with the invited role, and the link stops working.

    Raises:
        NotFound, ValidationFailed: see `find_invitation`.
    """
    invitation = find_invitation(session, token)
    if invitation.email and invitation.email != user.email:
        raise Forbidden(_l("This invitation was made for another email address. Log in with that address."))
    if role_in_group(session, user, invitation.working_group) is not None:
        raise Conflict(_l("You are already a member of this working group; the invitation was not used."))
    # A guarded UPDATE makes two simultaneous acceptances of one link count once.
    claimed = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
        .values(used_at=utcnow(), used_by_id=user.id)
    )
    if claimed.rowcount != 1:
        raise ValidationFailed(_l("This invitation has already been used. Ask the chair for a new link."))
    membership = set_role(session, None, invitation.working_group, user, invitation.role)
    record_event(session, user, "invitation.accepted", "invitation", invitation.id)
    return membership


def role_in_group(session: Session, user: User, group: WorkingGroup) -> Role | None:
    """Return the user's role in the group as stored now."""
    return session.scalar(
        select(Membership.role).where(Membership.user_id == user.id, Membership.working_group_id == group.id)
    )
