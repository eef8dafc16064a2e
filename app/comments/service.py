"""Consultation operations: windows, comments with receipts, replies, edits, withdrawals, dispositions,
re-anchoring into new versions, notifications, campaign groups and the comment-resolution matrix."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, object_session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app.accounts.models import User
from app.audit.service import event_row, record_event, record_events
from app.comments import anchoring
from app.comments.campaigns import campaign_groups
from app.comments.models import (
    INCLUDE_HIDDEN,
    AnchorState,
    Comment,
    CommentAnchor,
    CommentRevision,
    CommentType,
    Disposition,
    IntakeAttempt,
    Notification,
    Visibility,
)
from app.db import READS_NO_COMMENTS, after_commit, utcnow
from app.drafting.lookup import code_with_versions, codes_with_versions, version_in
from app.drafting.models import Clause, Code, Version, code_with_versions_without_texts
from app.drafting.rendering import render_fragment
from app.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Text,
    Unauthorized,
    ValidationFailed,
    lazy_join,
    lazy_number,
)
from app.errors import lazy_gettext as _l
from app.notices import notify
from app.ops.metrics import comments_accepted
from app.policy import Action, can, require
from app.search.indexer import queue_for_search

MAX_BODY = 20_000
MAX_PROPOSAL = 20_000
# Near the deadline, a refused submission's first sight is recorded (see note_refused_attempt).
DEADLINE_MARGIN = dt.timedelta(minutes=30)
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
LOG_IN_TO_COMMENT = _l("Log in to comment; the API uses the same session cookie as the pages.")


# --- the consultation window ---------------------------------------------------------------------


def set_consultation_window(
    session: Session, actor: User, code: Code, opens_at: dt.datetime, closes_at: dt.datetime
) -> None:
    """Open (or move) a code's consultation window.

    Raises:
        Forbidden: unless the actor chairs the code's working group.
        ValidationFailed: when the window closes before it opens, or times lack a time zone.
    """
    require(
        actor, Action.MANAGE_CONSULTATION, code, reason=_l("Only the working group's chairs set consultation windows.")
    )
    if opens_at.tzinfo is None or closes_at.tzinfo is None:
        raise ValidationFailed(_l("Give opening and closing times with a time zone."))
    if closes_at <= opens_at:
        raise ValidationFailed(_l("The consultation must close after it opens."))
    code.consultation_opens_at, code.consultation_closes_at = opens_at, closes_at
    record_event(
        session, actor, "consultation.window_set", "code", code.id,
        opens_at=opens_at.isoformat(), closes_at=closes_at.isoformat(),
    )  # fmt: skip


# --- receipts and idempotency --------------------------------------------------------------------


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_fingerprint(fields: dict[str, Any]) -> str:
    """Hash what a submission asks for, so a retry can be told from a different request with the same key."""
    return hashlib.sha256(_canonical(fields)).hexdigest()


def receipt_hash(comment: Comment) -> str:
    """Return the SHA-256 of what was stored, as the receipt states it."""
    return hashlib.sha256(_canonical(stored_fields(comment))).hexdigest()


def stored_fields(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "code": comment.code.slug,
        "version": comment.version.number,
        "clause": comment.clause_key,
        "parent": comment.parent_id,
        "quote": comment.quote,
        "start": comment.start,
        "end": comment.end,
        "body": comment.body,
        "proposed_text": comment.proposed_text,
        "type": comment.type.value,
        "visibility": comment.visibility.value,
        "author": comment.author_id,
        "received_at": comment.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
    }


@dataclass(frozen=True)
class Receipt:
    comment_id: int
    received_at: dt.datetime
    sha256: str
    replayed: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "comment_id": self.comment_id,
            "received_at": self.received_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "sha256": self.sha256,
            "replayed": self.replayed,
        }


def receipt_of(comment: Comment, *, replayed: bool = False) -> Receipt:
    return Receipt(comment.id, comment.created_at, comment.receipt_sha256, replayed)


@dataclass(frozen=True)
class Submission:
    """What a stakeholder sends; offsets refer to the clause's Markdown as served with the version."""

    clause_key: str
    body: str
    idempotency_key: str
    start: int | None = None
    end: int | None = None
    quote: str | None = None
    proposed_text: str | None = None
    type: str = CommentType.GENERAL.value
    visibility: str = Visibility.PUBLIC.value
    parent_id: int | None = None

    def fingerprint(self, version_id: int) -> str:
        fields = {k: v for k, v in self.__dict__.items() if k != "idempotency_key"}
        return request_fingerprint({**fields, "version": version_id})


def find_by_key(session: Session, author: User, key: str) -> Comment | None:
    # Hidden comments too: their key is taken, and a retry must be told so rather than fail to insert.
    return session.scalars(
        select(Comment)
        .where(Comment.author_id == author.id, Comment.idempotency_key == key)
        .execution_options(**{INCLUDE_HIDDEN: True})
    ).first()


def note_attempt(session: Session, author: User, key: str, seen_at: dt.datetime | None = None) -> None:
    """Remember when a submission was first seen (`seen_at`, or now), before the server could take it."""
    if not IDEMPOTENCY_KEY.match(key):
        return
    exists = session.scalar(
        select(IntakeAttempt.id).where(IntakeAttempt.author_id == author.id, IntakeAttempt.idempotency_key == key)
    )
    if exists is None:
        attempt = IntakeAttempt(author_id=author.id, idempotency_key=key)
        if seen_at is not None:
            attempt.first_seen_at = seen_at
        session.add(attempt)


def note_refused_attempt(
    session: Session, author: User, code: Code, key: str, seen_at: dt.datetime | None = None
) -> None:
    """Near the deadline, remember a submission the server could not take, so its retry counts as on time."""
    closes = code.consultation_closes_at
    if closes is not None and closes - utcnow() < DEADLINE_MARGIN:
        note_attempt(session, author, key, seen_at)


def note_unconfirmed(session: Session, intake: Intake, *, taken: bool) -> None:
    """Remember when a submission that was answered 503 arrived, so that its retry is judged by that time.

    `taken`: the intake writer had it queued, and may still store it; its arrival always counts then. One
    refused at the door (no intake slot) is remembered only near the deadline. Nothing is noted for a
    session that has ended or a version its author may not see.
    """
    login = User.parse_login_id(intake.login_id)
    author = _signed_in(_authors(session, {login[0]}), login) if login is not None else None
    if author is None:
        return
    try:
        code = version_in(code_with_versions(session, intake.slug), author, intake.number).code
    except NotFound:
        return
    key = intake.submission.idempotency_key
    if taken:
        note_attempt(session, author, key, intake.received_at)
    else:
        note_refused_attempt(session, author, code, key, intake.received_at)


def _first_seen(session: Session, author: User, key: str) -> dt.datetime | None:
    return session.scalar(
        select(IntakeAttempt.first_seen_at).where(
            IntakeAttempt.author_id == author.id, IntakeAttempt.idempotency_key == key
        )
    )


# --- submitting ----------------------------------------------------------------------------------


def _validate(version: Version, sub: Submission) -> tuple[anchoring.Anchor, CommentType, Visibility]:
    errors: dict[str, Text] = {}
    if not IDEMPOTENCY_KEY.match(sub.idempotency_key or ""):
        errors["idempotency_key"] = _l("Send an idempotency key of 8–100 letters, digits, '-', '_', '.' or ':'.")
    if not sub.body.strip():
        errors["body"] = _l("Write your comment.")
    elif len(sub.body) > MAX_BODY:
        errors["body"] = _l("A comment can be at most %(count)s characters.", count=lazy_number(MAX_BODY))
    if sub.proposed_text is not None and len(sub.proposed_text) > MAX_PROPOSAL:
        errors["proposed_text"] = _l(
            "Proposed text can be at most %(count)s characters.", count=lazy_number(MAX_PROPOSAL)
        )
    try:
        kind = CommentType(sub.type)
    except ValueError:
        errors["type"] = _l("Choose general, technical or editorial.")
        kind = CommentType.GENERAL
    try:
        visibility = Visibility(sub.visibility)
    except ValueError:
        errors["visibility"] = _l("Choose public or working group only.")
        visibility = Visibility.PUBLIC
    # From the per-process cache of the version's clause texts, not by loading every clause of the version.
    clause_markdown = clause_texts(version).get(sub.clause_key)
    anchor = anchoring.Anchor("", "", "", None, None)
    if clause_markdown is None:
        errors["clause_key"] = _l("This version has no clause with that key.")
    elif sub.start is not None or sub.end is not None:
        try:
            anchor = anchoring.make_anchor(clause_markdown, int(sub.start or 0), int(sub.end or 0))
        except (ValueError, TypeError):
            errors["start"] = _l("The selected passage is not part of this clause.")
        else:
            if sub.quote is not None and sub.quote != anchor.quote:
                errors["quote"] = _l("The quoted text does not match the clause at those positions.")
    elif sub.quote:
        # The page shows rendered text: an exact Markdown match first, then the text as a reader sees it.
        located = anchoring.locate_quote(clause_markdown, sub.quote) or anchoring.locate_rendered_quote(
            clause_markdown, sub.quote
        )
        if located is None:
            errors["quote"] = _l("The quoted text was not found once in this clause; select it again.")
        else:
            anchor = located
    if sub.proposed_text and not anchor.quote:
        errors["proposed_text"] = _l("Select the passage your proposed text would replace.")
    if errors:
        raise ValidationFailed(
            _l("The comment was not accepted: %(problems)s", problems=lazy_join(" ", errors.values())),
            field_errors=errors,
        )
    return anchor, kind, visibility


@dataclass(frozen=True)
class PlannedComment:
    """A checked submission, ready to be stored: plain values only, so another thread's session can write it.

    `prepare_comment` makes it (the intake writer through `plan_intakes`, in the transaction that stores it);
    `store_comments` writes a batch of them in the caller's transaction, which is how the intake writer
    commits many submissions at once.
    """

    author_id: int
    code_id: int
    version_id: int
    clause_key: str
    parent_id: int | None
    anchor: anchoring.Anchor
    body: str
    body_html: str
    proposed_text: str | None
    type: CommentType
    visibility: Visibility
    idempotency_key: str
    fingerprint: str
    received_at: dt.datetime


def submit_comment(session: Session, actor: User, version: Version, sub: Submission) -> Receipt:
    """Store a comment (or reply) and return its receipt; a retry with the same key returns the same receipt.

    Raises what `prepare_comment` and `store_comments` raise.
    """
    planned = prepare_comment(session, actor, version, sub)
    if isinstance(planned, Receipt):
        return planned
    result = store_comments(session, [planned])[0]
    if isinstance(result, Exception):
        raise result
    return result


def prepare_comment(
    session: Session, actor: User, version: Version, sub: Submission, *, received_at: dt.datetime | None = None
) -> PlannedComment | Receipt:
    """Check a submission and work out what to store, writing nothing.

    A retry of a stored comment that these checks would now refuse gets its receipt here; any other retry
    becomes a plan like a new submission, and `store_comments` answers it with the stored comment's receipt.
    Timeliness is decided by the server time of the first attempt: `received_at` (default now), or the time
    an earlier attempt with the same key was seen but could not be taken.

    Raises:
        NotFound: when the viewer may not see the version or the parent comment.
        Forbidden: when the consultation is not open.
        ValidationFailed: for bad fields; also when the key was used with a different request (422).
    """
    require(actor, Action.VIEW_VERSION, version)
    fingerprint = sub.fingerprint(version.id)
    try:
        return _plan(session, actor, version, sub, fingerprint, received_at or utcnow())
    except DomainError:
        # A retry of a stored comment gets its receipt even when the same request would now be refused (the
        # window has closed, the author became an observer). Looked up only here: a plan the checks let
        # through goes to `store_comments`, which answers a stored key from the rows themselves, so the
        # request makes no query for the key it nearly never finds.
        existing = find_by_key(session, actor, sub.idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint)
        raise


def _plan(
    session: Session, actor: User, version: Version, sub: Submission, fingerprint: str, now: dt.datetime
) -> PlannedComment:
    anchor, kind, visibility = _validate(version, sub)
    code = version.code
    # An earlier attempt matters only once the window has closed; while it is open, now is on time too.
    first_seen = now if code.consultation_open(now) else (_first_seen(session, actor, sub.idempotency_key) or now)
    if not can(actor, Action.COMMENT, version):
        raise _observers_do_not_comment()
    if not code.consultation_open(first_seen):
        raise Forbidden(_closed_message(code, now))
    parent = None
    if sub.parent_id is not None:
        parent = session.get(Comment, sub.parent_id)
        if parent is None or parent.version_id != version.id or not can_see_comment(actor, parent):
            raise NotFound()
        if parent.is_withdrawn:
            raise _parent_withdrawn()
        if parent.parent_id is not None:
            parent = parent.parent
    body = sub.body.strip()
    return PlannedComment(
        author_id=actor.id,
        code_id=code.id,
        version_id=version.id,
        clause_key=sub.clause_key if parent is None else parent.clause_key,
        parent_id=parent.id if parent is not None else None,
        anchor=anchor,
        body=body,
        body_html=render_fragment(body),
        proposed_text=sub.proposed_text or None,
        type=kind,
        # A reply is never more public than what it replies to.
        visibility=Visibility.GROUP if parent is not None and parent.visibility == Visibility.GROUP else visibility,
        idempotency_key=sub.idempotency_key,
        fingerprint=fingerprint,
        received_at=now,
    )


@dataclass(frozen=True)
class Intake:
    """A submission as a request took it in, with nothing checked that needs the database: who sent it (the
    session's login id, as `User.get_id` makes it), to which version, and when it arrived.

    The intake writer checks a batch of them at the write (`plan_intakes`), loading the batch's authors and
    codes once, so the request itself reads nothing from the database.
    """

    login_id: str
    slug: str
    number: int
    submission: Submission
    received_at: dt.datetime


def plan_intakes(session: Session, intakes: list[Intake]) -> list[PlannedComment | Receipt | DomainError]:
    """Check a batch of submissions as `prepare_comment` checks one, after the same checks of who sent them
    and of the version that the request would make; one result per submission, in order.

    A session whose login id is stale (the password changed, the account was erased) is refused with 401, a
    version the author may not see with 404, as the request would have answered.
    """
    if not intakes:
        return []
    logins = {intake.login_id: User.parse_login_id(intake.login_id) for intake in intakes}
    users = _authors(session, {parsed[0] for parsed in logins.values() if parsed is not None})
    codes = codes_with_versions(session, {intake.slug for intake in intakes})
    results: list[PlannedComment | Receipt | DomainError] = []
    for intake in intakes:
        author = _signed_in(users, logins[intake.login_id])
        if author is None:
            results.append(Unauthorized(LOG_IN_TO_COMMENT))
            continue
        try:
            version = version_in(codes.get(intake.slug), author, intake.number)
            results.append(prepare_comment(session, author, version, intake.submission, received_at=intake.received_at))
        except DomainError as refusal:
            results.append(refusal)
    return results


def _authors(session: Session, user_ids: set[int]) -> dict[int, User]:
    """The batch's authors with their memberships, which the permission checks read."""
    found = session.scalars(
        select(User)
        .where(User.id.in_(user_ids))
        .options(selectinload(User.memberships))
        .execution_options(**{READS_NO_COMMENTS: True})
    )
    return {user.id: user for user in found}


def _signed_in(users: dict[int, User], login: tuple[int, int] | None) -> User | None:
    """The user a login id names, unless the session it came from has ended (as Flask-Login's loader)."""
    author = users.get(login[0]) if login is not None else None
    if author is None or login is None or author.session_generation != login[1] or not author.is_authenticated:
        return None
    return author


def store_comments(session: Session, batch: list[PlannedComment]) -> list[Receipt | DomainError]:
    """Write a batch of planned comments in the caller's transaction; one receipt or refusal per plan, in order.

    As `store_comment_rows`, which says more.
    """
    return [
        a if isinstance(a, DomainError) else receipt_of(a[0], replayed=a[1]) for a in store_comment_rows(session, batch)
    ]


def store_comment_rows(session: Session, batch: list[PlannedComment]) -> list[tuple[Comment, bool] | DomainError]:
    """Write a batch of planned comments in the caller's transaction; one result per plan, in order: the
    comment and whether it was stored before (a replay), or a refusal.

    A plan whose key is already stored (by an earlier request, or earlier in this batch) gets that comment,
    or a ValidationFailed when it asked for something else. The comments returned are the session's own
    (the session holds unchanged objects only weakly: keep them to read them again without a query).

    Raises:
        IntegrityError: when another process stored one of the keys meanwhile; the caller's retry (as
            `in_transaction` does) finds it stored and answers with its receipt.
    """
    if not batch:
        return []
    stored = _stored_with_keys(session, batch)
    users = _authors(session, {p.author_id for p in batch})
    # With their versions, which carrying comments forward reads; none of the texts, which nothing here reads.
    codes = {
        code.id: code
        for code in session.scalars(
            select(Code).where(Code.id.in_({p.code_id for p in batch})).options(*code_with_versions_without_texts())
        ).unique()
    }
    versions = {v.id: v for code in codes.values() for v in code.versions}
    # What each plan is answered with: a comment stored before with the same key, a refusal, or the key of a
    # row this batch inserts (with whether the plan repeats an earlier plan of the batch).
    slots: list[tuple[Comment, bool] | DomainError | tuple[tuple[int, str], bool]] = []
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for plan in batch:
        key = (plan.author_id, plan.idempotency_key)
        earlier = stored.get(key)
        if earlier is not None:
            slots.append(_replay_or_refusal(earlier, plan.fingerprint))
            continue
        if key in rows:
            same = rows[key]["request_sha256"] == plan.fingerprint
            slots.append((key, True) if same else _key_reused())
            continue
        author, version = users.get(plan.author_id), versions.get(plan.version_id)
        refusal = _changed_since_planned(session, plan, author, version)
        if refusal is not None:
            slots.append(refusal)
            continue
        assert author is not None
        rows[key] = _comment_row(plan, author)
        slots.append((key, False))
    # One INSERT ... RETURNING for the batch, which also puts the rows in the session. Without ORM objects to
    # flush, the unit of work (a statement per row on SQLite, and most of the writer's time) is left out.
    # render_nulls: one statement even when rows leave different columns empty (no such column has a default).
    insert_comments = insert(Comment).returning(Comment).execution_options(render_nulls=True)
    fresh = list(session.scalars(insert_comments, list(rows.values()))) if rows else []
    created = {(comment.author_id, comment.idempotency_key): comment for comment in fresh}
    queue_for_search(session, [f"comment:{comment.id}" for comment in fresh])
    # The batch's receipt hashes, audit events and anchors in later versions go in with a statement per
    # table: the unit of work would insert them a row at a time on SQLite (it wants each new id back, and
    # SQLite cannot say which returned id is whose).
    hashes: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    anchors: list[dict[str, Any]] = []
    with session.no_autoflush:
        for comment in fresh:
            hashes.append({"id": comment.id, "receipt_sha256": receipt_hash(comment)})
            events.append(
                event_row(comment.author, "comment.submitted", "comment", comment.id, version=comment.version_id)
            )
            if comment.parent_id is None:
                anchors += [{"comment_id": comment.id, **values} for values in _forward_placements(comment)]
            else:
                _notify_reply(session, session.get_one(Comment, comment.parent_id), comment)
            after_commit(session, comments_accepted.inc)
    if hashes:
        session.execute(update(Comment), hashes)
        for comment, row in zip(fresh, hashes, strict=True):
            # What the statement wrote; not a change for the next flush to write (and queue for search) again.
            set_committed_value(comment, "receipt_sha256", row["receipt_sha256"])
    record_events(session, events)
    if anchors:
        session.execute(insert(CommentAnchor).execution_options(render_nulls=True), anchors)
        for comment in fresh:
            session.expire(comment, ["anchors"])
    return [
        slot if isinstance(slot, DomainError) or isinstance(slot[0], Comment) else (created[slot[0]], slot[1])
        for slot in slots
    ]


def _comment_row(plan: PlannedComment, author: User) -> dict[str, Any]:
    return {
        "code_id": plan.code_id,
        "version_id": plan.version_id,
        "clause_key": plan.clause_key,
        "parent_id": plan.parent_id,
        "quote": plan.anchor.quote,
        "prefix": plan.anchor.prefix,
        "suffix": plan.anchor.suffix,
        "start": plan.anchor.start,
        "end": plan.anchor.end,
        "body": plan.body,
        "body_html": plan.body_html,
        "proposed_text": plan.proposed_text,
        "type": plan.type,
        "visibility": plan.visibility,
        "author_id": author.id,
        "author_category": author.category,
        "author_organisation": author.organisation,
        "idempotency_key": plan.idempotency_key,
        "request_sha256": plan.fingerprint,
        "receipt_sha256": "",
        "created_at": plan.received_at,
    }


def _changed_since_planned(
    session: Session, plan: PlannedComment, author: User | None, version: Version | None
) -> DomainError | None:
    """What changed between the check and the write that refuses the plan: the account or version gone, the
    author's right to comment taken away, the parent withdrawn. A plan checked by `plan_intakes` was checked
    in the same transaction and passes; one checked elsewhere (`prepare_comment` in a test or a script,
    before a batch of the intake writer) may have waited."""
    if author is None or version is None:
        return NotFound()
    if not can(author, Action.COMMENT, version):
        return _observers_do_not_comment()
    if plan.parent_id is not None:
        parent = session.get(Comment, plan.parent_id)
        if parent is None:
            return NotFound()
        if parent.is_withdrawn:
            return _parent_withdrawn()
    return None


def _stored_with_keys(session: Session, batch: list[PlannedComment]) -> dict[tuple[int | None, str], Comment]:
    wanted = {(p.author_id, p.idempotency_key) for p in batch}
    found = session.scalars(
        select(Comment)
        .where(Comment.author_id.in_({a for a, _ in wanted}), Comment.idempotency_key.in_({k for _, k in wanted}))
        .execution_options(**{INCLUDE_HIDDEN: True})
    )
    return {(c.author_id, c.idempotency_key): c for c in found if (c.author_id, c.idempotency_key) in wanted}


def _replay_or_refusal(existing: Comment, fingerprint: str) -> tuple[Comment, bool] | DomainError:
    if existing.request_sha256 != fingerprint:
        return _key_reused()
    if existing.is_hidden:
        return Conflict(
            _l(
                "An administrator has hidden the comment sent with this key. Write to the working group if you "
                "think that is wrong."
            )
        )
    return existing, True


def _replay(existing: Comment, fingerprint: str) -> Receipt:
    answer = _replay_or_refusal(existing, fingerprint)
    if isinstance(answer, DomainError):
        raise answer
    return receipt_of(existing, replayed=True)


def _observers_do_not_comment() -> Forbidden:
    return Forbidden(_l("Observers follow the consultation but do not comment."))


def _parent_withdrawn() -> Conflict:
    return Conflict(_l("That comment was withdrawn; it takes no more replies."))


def _key_reused() -> ValidationFailed:
    return ValidationFailed(
        _l("This idempotency key was already used for a different comment. Use a new key for a new comment."),
        field_errors={"idempotency_key": _l("Already used for a different comment.")},
    )


def _closed_message(code: Code, now: dt.datetime) -> Text:
    if code.consultation_opens_at is None or code.consultation_closes_at is None:
        return _l("This code is not open for comments.")
    if now < code.consultation_opens_at:
        return _l(
            "The consultation opens at %(time)s UTC; comments are not accepted yet.",
            time=f"{code.consultation_opens_at:%Y-%m-%d %H:%M}",
        )
    return _l(
        "The consultation closed at %(time)s UTC; comments are no longer accepted.",
        time=f"{code.consultation_closes_at:%Y-%m-%d %H:%M}",
    )


# --- editing and withdrawing ---------------------------------------------------------------------


def _own_open_comment(actor: User, comment: Comment) -> None:
    if comment.author_id != actor.id:
        raise Forbidden(_l("Only the author can change a comment."))
    if comment.is_withdrawn:
        raise Conflict(_l("This comment was withdrawn."))
    if not comment.code.consultation_open(utcnow()):
        raise Forbidden(_l("The consultation is closed; comments can no longer be changed."))


def edit_comment(session: Session, actor: User, comment: Comment, body: str, proposed_text: str | None) -> None:
    """Change one's own comment while the window is open, keeping the earlier text as history.

    Raises:
        Forbidden: for someone else's comment or a closed consultation.
        Conflict: for a withdrawn comment.
        ValidationFailed: for an empty or oversized body.
    """
    _own_open_comment(actor, comment)
    if not body.strip() or len(body) > MAX_BODY:
        raise ValidationFailed(_l("Write a comment of 1 to %(count)s characters.", count=lazy_number(MAX_BODY)))
    session.add(CommentRevision(comment=comment, body=comment.body, proposed_text=comment.proposed_text))
    comment.body, comment.body_html = body.strip(), render_fragment(body.strip())
    comment.proposed_text = proposed_text or None
    comment.edited_at = utcnow()
    record_event(session, actor, "comment.edited", "comment", comment.id)


def withdraw_comment(session: Session, actor: User, comment: Comment) -> None:
    """Withdraw one's own comment: hidden from lists, kept in the record and the audit log.

    Raises:
        Forbidden, Conflict: as for `edit_comment`.
    """
    _own_open_comment(actor, comment)
    comment.withdrawn_at = utcnow()
    record_event(session, actor, "comment.withdrawn", "comment", comment.id)


# --- reading -------------------------------------------------------------------------------------


def can_see_comment(viewer: object, comment: Comment) -> bool:
    """Public comments on a visible version are public; group-only ones are for the working group.

    Authors always see their own comments.
    """
    if isinstance(viewer, User) and comment.author_id == viewer.id:
        return True
    if not can(viewer, Action.VIEW_VERSION, comment.version):
        return False
    return comment.visibility == Visibility.PUBLIC or can(viewer, Action.VIEW_GROUP_COMMENTS, comment.code)


def get_comment(session: Session, viewer: object, comment_id: int) -> Comment:
    """Return a comment the viewer may see.

    Raises:
        NotFound: when it does not exist or is hidden from the viewer.
    """
    comment = session.get(Comment, comment_id)
    if comment is None or not can_see_comment(viewer, comment):
        raise NotFound()
    if comment.is_withdrawn and not (isinstance(viewer, User) and viewer.id == comment.author_id):
        raise NotFound()
    return comment


@dataclass(frozen=True)
class CommentFilter:
    clause_key: str | None = None
    category: str | None = None
    organisation: str | None = None
    type: str | None = None
    status: str | None = None  # "open" (no disposition) or a disposition value
    campaign: int | None = None


def list_comments(
    session: Session, viewer: object, version: Version, filters: CommentFilter | None = None, *, threads: bool = False
) -> list[Comment]:
    """Return the comments on a version the viewer may see (top-level ones when `threads`), oldest first.

    Visibility is part of the query, so counts never include what the viewer may not see.
    """
    query = (
        select(Comment)
        .where(Comment.version_id == version.id, Comment.withdrawn_at.is_(None))
        .options(selectinload(Comment.replies), selectinload(Comment.author))
        .order_by(Comment.id)
    )
    if not can(viewer, Action.VIEW_GROUP_COMMENTS, version.code):
        query = query.where(Comment.visibility == Visibility.PUBLIC)
    if threads:
        query = query.where(Comment.parent_id.is_(None))
    f = filters or CommentFilter()
    if f.clause_key:
        query = query.where(Comment.clause_key == f.clause_key)
    if f.category:
        query = query.where(Comment.author_category == f.category)
    if f.organisation:
        query = query.where(Comment.author_organisation == f.organisation)
    if f.type:
        query = query.where(Comment.type == f.type)
    if f.status == "open":
        query = query.where(Comment.disposition.is_(None))
    elif f.status:
        query = query.where(Comment.disposition == f.status)
    if f.campaign is not None:
        query = query.where(Comment.campaign_group == f.campaign)
    return list(session.scalars(query))


def comments_carried_into(session: Session, viewer: object, version: Version) -> list[tuple[Comment, CommentAnchor]]:
    """Return earlier versions' comments re-anchored into this version, with their placement."""
    rows = session.execute(
        select(Comment, CommentAnchor)
        .join(CommentAnchor, CommentAnchor.comment_id == Comment.id)
        .where(CommentAnchor.version_id == version.id, Comment.withdrawn_at.is_(None), Comment.parent_id.is_(None))
        .order_by(Comment.id)
    ).all()
    return [(comment, anchor) for comment, anchor in rows if can_see_comment(viewer, comment)]


def my_comments(session: Session, user: User) -> list[Comment]:
    """Return the user's own comments, newest first, with their receipts."""
    return list(session.scalars(select(Comment).where(Comment.author_id == user.id).order_by(Comment.id.desc())))


# --- dispositions --------------------------------------------------------------------------------


def record_disposition(
    session: Session,
    actor: User,
    comment: Comment,
    disposition: str,
    response: str,
    addressed_in: Version | None = None,
) -> None:
    """Record how a comment was handled; the author is notified.

    Raises:
        Forbidden: unless the actor chairs the code's working group.
        ValidationFailed: for an unknown disposition or a version of another code.
    """
    require(
        actor,
        Action.MANAGE_CONSULTATION,
        comment.code,
        reason=_l("Only the working group's chairs record dispositions."),
    )
    try:
        value = Disposition(disposition)
    except ValueError as error:
        raise ValidationFailed(
            _l("Choose accepted, partially accepted, not accepted, noted or out of scope.")
        ) from error
    if addressed_in is not None and addressed_in.code_id != comment.code_id:
        raise ValidationFailed(_l("The version that addressed the comment must be a version of the same code."))
    comment.disposition = value
    comment.disposition_response = response.strip() or None
    comment.disposition_by_id = actor.id
    comment.disposition_at = utcnow()
    comment.addressed_in_version_id = addressed_in.id if addressed_in else None
    record_event(session, actor, "comment.disposition", "comment", comment.id, disposition=value.value)
    if comment.author is not None:
        notify(
            session, comment.author, "disposition", None, f"/comments/{comment.id}",
            params={
                "comment": comment.id, "code": comment.code.title, "version": comment.version.name,
                "disposition": value.value,
            },
        )  # fmt: skip


# --- notifications -------------------------------------------------------------------------------


def _notify_reply(session: Session, parent: Comment, reply: Comment) -> None:
    if parent.author is not None and parent.author_id != reply.author_id and can_see_comment(parent.author, reply):
        notify(
            session, parent.author, "reply", None, f"/comments/{parent.id}",
            params={"name": reply.author.display_name if reply.author else None, "comment": parent.id},
        )  # fmt: skip


def notify_new_version(session: Session, version: Version, *, newly_public: bool = False) -> None:
    """Tell everyone who commented on the code and may see `version` that it is out.

    At a cut that is the working group; at publication (`newly_public`) the others, who could not see it before.
    """
    authors = session.scalars(
        select(User).join(Comment, Comment.author_id == User.id).where(Comment.code_id == version.code_id).distinct()
    )
    for author in authors:
        in_group = can(author, Action.VIEW_GROUP_COMMENTS, version.code)
        if can(author, Action.VIEW_VERSION, version) and in_group != newly_public:
            notify(
                session, author, "version", None, f"/codes/{version.code.slug}/v{version.number}",
                params={"code": version.code.title, "version": version.name, "label": version.label},
            )  # fmt: skip


def unread_count(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count(Notification.id)).where(Notification.user_id == user.id, Notification.read_at.is_(None))
        )
        or 0
    )


def notifications_for(session: Session, user: User) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification).where(Notification.user_id == user.id).order_by(Notification.id.desc()).limit(200)
        )
    )


def mark_notifications_read(session: Session, user: User) -> None:
    session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )


# --- following the text into new versions --------------------------------------------------------


@dataclass
class ReanchorReport:
    anchored: int = 0
    outdated: int = 0
    orphaned: int = 0
    applied: int = 0


def clause_texts(version: Version) -> dict[str, str]:
    """Return a version's clauses by key; built once per version and process, since versions never change."""
    return _clause_texts(version.id, version.content_sha256, lambda: _load_clause_texts(version))


def _load_clause_texts(version: Version) -> dict[str, str]:
    session = object_session(version)
    if session is None or "clauses" in version.__dict__:  # detached, or already loaded: use what is there
        return {c.key: c.markdown for c in version.clauses}
    rows = session.execute(
        select(Clause.key, Clause.markdown).where(Clause.version_id == version.id).order_by(Clause.ordinal)
    )
    return {key: markdown for key, markdown in rows}


_CLAUSE_TEXTS: dict[tuple[int, str], dict[str, str]] = {}


def _clause_texts(version_id: int, content_sha256: str, load: Callable[[], dict[str, str]]) -> dict[str, str]:
    key = (version_id, content_sha256)
    texts = _CLAUSE_TEXTS.get(key)
    if texts is None:
        if len(_CLAUSE_TEXTS) > 64:
            _CLAUSE_TEXTS.clear()
        texts = _CLAUSE_TEXTS[key] = load()
    return texts


def _placement(
    comment: Comment,
    old: Version,
    new: Version,
    cache: dict[tuple[str, str], list[tuple[int, str]]],
    in_old: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The columns of the comment's anchor in `new` (all but the comment); None when it was lost in `old`.

    `in_old` is the comment's placement in `old` when it is not stored yet (else it is read from the comment).
    Marks the comment applied in `new` when its proposed text now stands at its place.
    """
    old_clauses, new_clauses = clause_texts(old), clause_texts(new)
    if comment.version_id == old.id:
        base, key = base_of(comment), comment.clause_key
    else:
        # Follow the comment from where it was placed in the earlier version.
        previous = in_old
        if previous is None:
            stored = comment.anchor_in(old.id)
            previous = None if stored is None else {
                "clause_key": stored.clause_key, "start": stored.start, "end": stored.end, "state": stored.state,
            }  # fmt: skip
        if previous is None or previous["state"] == AnchorState.ORPHANED or previous["clause_key"] is None:
            return None
        key = previous["clause_key"]
        text = old_clauses.get(key, "")
        start, end = previous["start"], previous["end"]
        if start is not None and end is not None and start < end <= len(text):
            base = anchoring.make_anchor(text, start, end)
        else:
            base = anchoring.Anchor("", "", "", None, None)
    placement = anchoring.reanchor(base, key, old_clauses.get(key, ""), new_clauses, cache)
    values = {
        "version_id": new.id, "clause_key": placement.clause_key, "start": placement.start, "end": placement.end,
        "confidence": placement.confidence, "state": AnchorState(placement.state),
    }  # fmt: skip
    proposal = comment.proposed_text or ""
    target = new_clauses.get(placement.clause_key or key)
    if (
        proposal
        and comment.applied_in_version_id is None
        and anchoring.proposal_applied(base, proposal, placement, target)
    ):
        comment.applied_in_version_id = new.id
    return values


def reanchor_comments(session: Session, new: Version) -> ReanchorReport:
    """Carry every open comment on earlier versions into `new`, each from where it last was placed.

    A comment whose proposed text now stands at its place is marked applied in `new`.
    """
    report = ReanchorReport()
    versions = {version.id: version for version in new.code.versions}
    cache: dict[tuple[str, str], list[tuple[int, str]]] = {}
    comments = session.scalars(
        select(Comment)
        .join(Version, Version.id == Comment.version_id)
        .where(
            Comment.code_id == new.code_id,
            Comment.parent_id.is_(None),
            Comment.withdrawn_at.is_(None),
            Version.number < new.number,
        )
        .options(selectinload(Comment.anchors))
    )
    rows: list[dict[str, Any]] = []
    placed_comments: list[Comment] = []
    # No cooperative pauses here (app/cooperative.py): this runs inside the cut's write transaction, and on
    # SQLite a greenlet let in meanwhile would wait for the write lock in SQLite's busy handler, in C, where
    # gevent cannot switch: the whole process would stop until busy_timeout, and its writes would fail.
    for comment in comments:
        if comment.anchor_in(new.id) is not None:
            continue
        placed = [comment.version] + [
            versions[a.version_id] for a in comment.anchors if versions[a.version_id].number < new.number
        ]
        last = max(placed, key=lambda version: version.number)
        applied_before = comment.applied_in_version_id
        values = _placement(comment, last, new, cache)
        if values is None:
            continue
        rows.append({"comment_id": comment.id, **values})
        placed_comments.append(comment)
        state = values["state"].value
        setattr(report, state, getattr(report, state) + 1)
        if applied_before is None and comment.applied_in_version_id is not None:
            report.applied += 1
    if rows:
        # One statement for them all: the unit of work inserts anchors one row at a time on SQLite (it needs
        # each new id back, and SQLite cannot say which returned id is whose), a third of the whole time.
        session.execute(insert(CommentAnchor), rows)
        for comment in placed_comments:
            session.expire(comment, ["anchors"])
    session.flush()
    return report


def _forward_placements(comment: Comment) -> list[dict[str, Any]]:
    """The anchor columns (all but the comment) of a new comment in each later version that already exists."""
    later = sorted((v for v in comment.code.versions if v.number > comment.version.number), key=lambda v: v.number)
    previous, placed, cache = comment.version, [], {}
    for version in later:
        values = _placement(comment, previous, version, cache, placed[-1] if placed else None)
        if values is None:
            break
        placed.append(values)
        previous = version
    return placed


def base_of(comment: Comment) -> anchoring.Anchor:
    return anchoring.Anchor(comment.quote, comment.prefix, comment.suffix, comment.start, comment.end)


# --- campaigns and the resolution matrix ---------------------------------------------------------


def regroup_campaigns(session: Session, version: Version) -> int:
    """Recompute near-duplicate groups among a version's top-level comments; return how many groups."""
    comments = list(
        session.scalars(
            select(Comment).where(
                Comment.version_id == version.id, Comment.parent_id.is_(None), Comment.withdrawn_at.is_(None)
            )
        )
    )
    groups = campaign_groups({c.id: c.body for c in comments})
    for comment in comments:
        comment.campaign_group = groups.get(comment.id)
    return len(set(groups.values()))


MATRIX_COLUMNS = [
    "comment_id", "clause", "quote", "comment", "proposed_text", "type", "author_category",
    "author_organisation", "visibility", "received_at", "disposition", "response", "addressed_in", "applied_in",
    "campaign_group", "receipt_sha256",
]  # fmt: skip


def resolution_matrix(session: Session, viewer: object, version: Version) -> list[dict[str, Any]]:
    """Return the comment-resolution matrix rows the viewer may see (public comments only for the public)."""
    rows = []
    for comment in list_comments(session, viewer, version):
        rows.append(
            {
                "comment_id": comment.id,
                "clause": comment.clause_key,
                "quote": comment.quote,
                "comment": comment.body,
                "proposed_text": comment.proposed_text or "",
                "type": comment.type.value,
                "author_category": comment.author_category.value,
                "author_organisation": comment.author_organisation or "",
                "visibility": comment.visibility.value,
                "received_at": comment.created_at.isoformat(),
                "disposition": comment.disposition.value if comment.disposition else "",
                "response": comment.disposition_response or "",
                "addressed_in": comment.addressed_in.name if comment.addressed_in else "",
                "applied_in": comment.applied_in.name if comment.applied_in else "",
                "campaign_group": comment.campaign_group or "",
                "receipt_sha256": comment.receipt_sha256,
            }
        )
    return rows
