"""Code and version operations: create, edit the working text, cut, publish, read, compare."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, defer, selectinload

from app.accounts.models import User, WorkingGroup
from app.audit.chain import content_hash
from app.audit.service import append_publication, record_event
from app.collab import store as collab_store
from app.collab.service import write_whole_text
from app.comments.service import notify_new_version, reanchor_comments
from app.db import utcnow
from app.drafting import clauses as clause_parser
from app.drafting.diffing import ClauseDiff, diff_clauses
from app.drafting.lookup import code_with_versions, version_in
from app.drafting.models import Clause, Code, CodeStatus, Version
from app.drafting.rendering import PERMALINK_LABEL, localise_permalinks, render_markdown
from app.drafting.texts import VersionText, build_version_text, version_texts
from app.errors import Conflict, NotFound, Text, TooLarge, ValidationFailed
from app.errors import lazy_gettext as _l
from app.policy import Action, can, require

MAX_MARKDOWN_BYTES = 2 * 1024 * 1024
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,79}$")
LANGUAGES = {"en", "sv", "de", "fr", "es", "it", "nl", "pl", "fi", "da"}


def _check_markdown(text: str) -> str:
    # Browsers send textarea line breaks as CRLF; measure the text as it will be stored.
    text = text.replace("\r\n", "\n")
    if len(text.encode()) > MAX_MARKDOWN_BYTES:
        raise TooLarge(_l("The text is larger than the 2 MB limit. Shorten it and try again."))
    return text


def _clauses_of(markdown: str) -> list[clause_parser.Clause]:
    try:
        return clause_parser.split_clauses(markdown)
    except clause_parser.DuplicateKeyError as error:
        raise ValidationFailed(str(error), field_errors={"text": str(error)}) from error


# --- reading -------------------------------------------------------------------------------------


def get_code(session: Session, viewer: object, slug: str) -> Code:
    """Return a code the viewer may see.

    Raises:
        NotFound: when it does not exist or the viewer may not see it.
    """
    # A code page lists versions; their texts (hundreds of KB each) load only when a page needs one.
    versions = selectinload(Code.versions).options(defer(Version.markdown), defer(Version.html), defer(Version.toc))
    code = session.scalars(
        select(Code)
        .where(Code.slug == slug)
        # The working text is as large as a version; pages that show it load it when they need it.
        .options(versions, selectinload(Code.working_group), defer(Code.working_text))
    ).first()
    if code is None:
        raise NotFound()
    require(viewer, Action.VIEW_CODE, code)
    return code


def get_version(session: Session, viewer: object, code: Code, number: int) -> Version:
    """Return a version of a code if the viewer may see it.

    Raises:
        NotFound: when it does not exist or is unpublished and the viewer is outside the working group.
    """
    version = session.scalars(select(Version).where(Version.code_id == code.id, Version.number == number)).first()
    if version is None:
        raise NotFound()
    require(viewer, Action.VIEW_VERSION, version)
    return version


@dataclass(frozen=True)
class VersionPage:
    """What a version page needs: the code, the version, the versions the viewer may see and the text."""

    code: Code
    version: Version
    versions: list[Version]
    text: VersionText

    @property
    def previous(self) -> Version | None:
        """Return the newest version before this one that the viewer may see."""
        return next((v for v in reversed(self.versions) if v.number < self.version.number), None)


_VERSION_TEXT = select(Version.html, Version.toc).where(Version.id == bindparam("version_id"))
_CLAUSE_HEADINGS = (
    select(Clause.key, Clause.heading).where(Clause.version_id == bindparam("version_id")).order_by(Clause.ordinal)
)


def find_version(session: Session, viewer: object, slug: str, number: int) -> Version:
    """Return a version by its code's slug and its number, with the code and its other versions, in one
    statement and without any text (which pages and services load, or take from a cache, when they need it).

    The same checks as `get_code` and `get_version`.

    Raises:
        NotFound: when the code or version does not exist or the viewer may not see it.
    """
    return version_in(code_with_versions(session, slug), viewer, number)


def get_version_page(
    session: Session, viewer: object, slug: str, number: int, *, permalink_label: str = PERMALINK_LABEL
) -> VersionPage:
    """Return a version of a code for its page, with its text from the per-process cache.

    The same rules as `get_code` and `get_version`: both checks are made on rows loaded in this request,
    and the cache holds only what never changes (a version's HTML, table of contents and clause headings),
    never whether it is published.

    Raises:
        NotFound: when the code or version does not exist or the viewer may not see it.
    """
    version = find_version(session, viewer, slug, number)
    code = version.code
    key = (version.id, version.content_sha256, code.language, permalink_label)
    text = version_texts.get(key, lambda: _load_version_text(session, version.id, code.language, permalink_label))
    return VersionPage(code, version, visible_versions(viewer, code), text)


def _load_version_text(session: Session, version_id: int, language: str, permalink_label: str) -> VersionText:
    html, toc = session.execute(_VERSION_TEXT, {"version_id": version_id}).one()
    html = localise_permalinks(html, permalink_label)
    clauses = session.execute(_CLAUSE_HEADINGS, {"version_id": version_id})
    return build_version_text(html, toc, language, ((key, heading) for key, heading in clauses))


def visible_versions(viewer: object, code: Code) -> list[Version]:
    """Return the versions of a code the viewer may see, oldest first."""
    return [version for version in code.versions if can(viewer, Action.VIEW_VERSION, version)]


def list_codes(session: Session, viewer: object) -> list[Code]:
    """Return the codes the viewer may see, by title."""
    codes = session.scalars(select(Code).options(selectinload(Code.versions)).order_by(Code.title))
    return [code for code in codes if can(viewer, Action.VIEW_CODE, code)]


def latest_visible_version(viewer: object, code: Code) -> Version | None:
    """Return the newest version the viewer may see."""
    versions = visible_versions(viewer, code)
    return versions[-1] if versions else None


# --- writing -------------------------------------------------------------------------------------


def create_code(
    session: Session,
    actor: User | None,
    *,
    group: WorkingGroup,
    slug: str,
    title: str,
    language: str,
    summary: str = "",
    working_text: str = "",
    status: CodeStatus | str = CodeStatus.DRAFTING,
) -> Code:
    """Create a code owned by a working group (its chairs or site admins; None means the system).

    Raises:
        Forbidden: unless the actor chairs the group.
        ValidationFailed: for a bad slug, title, language or status.
        Conflict: when the slug is taken.
    """
    if actor is not None:
        require(actor, Action.CREATE_CODE, group, reason=_l("Only the working group's chairs create codes."))
    errors: dict[str, Text] = {}
    if not SLUG.match(slug):
        errors["slug"] = _l("Use 2–80 lowercase letters, digits and hyphens, starting with a letter or digit.")
    if not title.strip():
        errors["title"] = _l("Enter a title.")
    if language not in LANGUAGES:
        errors["language"] = _l("Choose a language from the list.")
    try:
        status = CodeStatus(status)
    except ValueError:
        errors["status"] = _l("Choose a status from the list.")
    if errors:
        raise ValidationFailed(_l("Some fields need attention."), field_errors=errors)
    if session.scalars(select(Code).where(Code.slug == slug)).first():
        raise Conflict(
            _l("A code with the short name '%(slug)s' already exists.", slug=slug),
            field_errors={"slug": _l("Already taken.")},
        )
    code = Code(
        slug=slug,
        title=title.strip(),
        language=language,
        summary=summary.strip(),
        status=CodeStatus(status),
        working_group=group,
        working_text=_check_markdown(working_text),
    )
    session.add(code)
    session.flush()
    record_event(session, actor, "code.created", "code", code.id, slug=slug)
    return code


def set_code_status(session: Session, actor: User, code: Code, status: CodeStatus | str) -> None:
    """Move a code to another status (drafting, consultation, closed, final).

    Raises:
        Forbidden: unless the actor chairs the code's working group.
        ValidationFailed: for an unknown status.
    """
    require(actor, Action.EDIT_CODE, code, reason=_l("Only the working group's chairs change a code's status."))
    try:
        new = CodeStatus(status)
    except ValueError as error:
        raise ValidationFailed(_l("Choose a status from the list.")) from error
    previous, code.status = code.status, new
    record_event(session, actor, "code.status_set", "code", code.id, status=new.value, previous=previous.value)


class WorkingTextConflict(Conflict):
    """The working text changed since the editor loaded the form."""

    def __init__(self, current_text: str) -> None:
        super().__init__(
            _l(
                "Someone else changed the working text while you were editing. Your text is kept in the form; "
                "review what changed and save again."
            )
        )
        self.current_text = current_text


def working_text(session: Session, code: Code) -> str:
    """Return the working text as it is now, with every acknowledged live edit in it."""
    return collab_store.current_text(session, code)


def update_working_text(session: Session, actor: User, code: Code, text: str, *, base_sha256: str | None) -> bool:
    """Save a whole new working text (form, API, import) as minimal edits of the live document.

    When `base_sha256` is given it must be the hash of the text the writer started from; a mismatch means
    someone changed the text meanwhile and nothing is written. Returns whether anything changed.

    Raises:
        Forbidden: unless the actor is an editor, vice-chair or chair of the code's group.
        TooLarge: over 2 MB.
        ValidationFailed: when two headings carry the same explicit key.
        WorkingTextConflict: when the text changed since `base_sha256`.
    """
    require(
        actor, Action.EDIT_WORKING_TEXT, code, reason=_l("Only the working group's editors and chairs edit the text.")
    )
    text = _check_markdown(text)
    _clauses_of(text)
    current = working_text(session, code)
    if base_sha256 is not None and content_hash(current) != base_sha256:
        raise WorkingTextConflict(current)
    changed = write_whole_text(session, code, text, actor.id)
    if changed:
        record_event(session, actor, "code.working_text_saved", "code", code.id, revision=code.working_revision)
    return changed


def _build_version(
    code: Code, markdown: str, *, number: int, label: str, summary: str, author: User | None, created_at: dt.datetime
) -> Version:
    parsed = _clauses_of(markdown)
    rendered = render_markdown(markdown)
    version = Version(
        code=code,
        number=number,
        label=label.strip() or f"Version {number}",
        change_summary=summary.strip(),
        markdown=markdown,
        content_sha256=content_hash(markdown),
        html=rendered.html,
        toc=rendered.toc,
        word_count=len(markdown.split()),
        author=author,
        created_at=created_at,
    )
    version.clauses = [
        Clause(
            key=c.key,
            heading=c.heading[:500],
            level=c.level,
            ordinal=c.ordinal,
            markdown=c.markdown,
            content_sha256=c.content_sha256,
        )
        for c in parsed
    ]
    return version


def next_version_number(session: Session, code: Code) -> int:
    """Return the number the next version of a code would get."""
    return (session.scalar(select(func.max(Version.number)).where(Version.code_id == code.id)) or 0) + 1


def cut_version(session: Session, actor: User | None, code: Code, *, label: str, summary: str = "",
                markdown: str | None = None, created_at: dt.datetime | None = None) -> Version:  # fmt: skip
    """Freeze the working text (or `markdown`, for imports) into the next numbered, immutable version.

    Two concurrent cuts compute the same number; the unique constraint rejects one and the caller's
    transaction retries it (see `app.db.in_transaction`), so numbers never repeat and no text is lost.

    Raises:
        Forbidden: unless the actor chairs the code's working group.
        ValidationFailed: for an empty text or duplicate clause keys.
    """
    if actor is not None:
        require(actor, Action.CUT_VERSION, code, reason=_l("Only the working group's chairs cut versions."))
    text = _check_markdown(working_text(session, code) if markdown is None else markdown)
    if not text.strip():
        raise ValidationFailed(_l("The working text is empty; there is nothing to cut."))
    # Lock the code row (PostgreSQL) so concurrent cuts queue instead of colliding on the number; on
    # SQLite writers are serialised anyway and in_transaction() retries the rare collision.
    session.execute(select(Code.id).where(Code.id == code.id).with_for_update())
    number = next_version_number(session, code)
    version = _build_version(
        code, text, number=number, label=label, summary=summary, author=actor, created_at=created_at or utcnow()
    )
    session.add(version)
    session.flush()
    record_event(session, actor, "version.cut", "version", version.id, code=code.slug, number=number)
    if number > 1:
        reanchor_comments(session, version)
        notify_new_version(session, version)
    return version


def publish_version(session: Session, actor: User | None, version: Version, *, at: dt.datetime | None = None) -> None:
    """Publish a version and append it to the hash-chained publication log.

    Raises:
        Forbidden: unless the actor chairs the code's working group.
        Conflict: when the version is already published.
    """
    if actor is not None:
        require(actor, Action.PUBLISH_VERSION, version, reason=_l("Only the working group's chairs publish versions."))
    if version.is_published:
        raise Conflict(_l("%(version)s is already published.", version=version.name))
    when = at or utcnow()
    version.published_at = when
    version.published_by_id = actor.id if actor else None
    append_publication(session, version, when)
    record_event(session, actor, "version.published", "version", version.id, code=version.code.slug)
    notify_new_version(session, version, newly_public=True)


# --- comparing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    old: Version
    new: Version
    clauses: list[ClauseDiff]

    @property
    def summary(self) -> dict[str, list[ClauseDiff]]:
        groups: dict[str, list[ClauseDiff]] = {"added": [], "removed": [], "changed": [], "moved": []}
        for diff in self.clauses:
            if diff.status in groups:
                groups[diff.status].append(diff)
            if diff.moved:
                groups["moved"].append(diff)
        return groups


def stored_clauses(version: Version) -> list[clause_parser.Clause]:
    """Return a version's clauses as plain values, in order."""
    return [clause_parser.Clause(c.key, c.heading, c.level, c.ordinal, c.markdown) for c in version.clauses]


def compare_versions(session: Session, viewer: object, code: Code, old_number: int, new_number: int) -> Comparison:
    """Compare two versions of a code that the viewer may see.

    Raises:
        NotFound: when either version is missing or hidden from the viewer.
        ValidationFailed: when both numbers are the same.
    """
    if old_number == new_number:
        raise ValidationFailed(_l("Choose two different versions to compare."))
    old = get_version(session, viewer, code, old_number)
    new = get_version(session, viewer, code, new_number)
    return Comparison(old, new, diff_clauses(stored_clauses(old), stored_clauses(new)))


# --- open data -------------------------------------------------------------------------------------------


def version_rows(viewer: object, code: Code) -> list[dict[str, Any]]:
    """The versions of a code the viewer may see, oldest first, as rows for a CSV or JSON export."""
    return [
        {
            "code": code.slug, "version": version.number, "label": version.label,
            "change_summary": version.change_summary or "",
            "created_at": version.created_at.isoformat(),
            "published_at": version.published_at.isoformat() if version.published_at else "",
            "words": version.word_count, "content_sha256": version.content_sha256,
        }
        for version in visible_versions(viewer, code)
    ]  # fmt: skip


def clause_rows(version: Version) -> list[dict[str, Any]]:
    """A version's clauses in document order, with their Markdown and its SHA-256, for an export."""
    return [
        {
            "code": version.code.slug, "version": version.number, "position": clause.ordinal,
            "key": clause.key, "level": clause.level, "heading": clause.heading,
            "content_sha256": clause.content_sha256, "text": clause.markdown,
        }
        for clause in sorted(version.clauses, key=lambda c: c.ordinal)
    ]  # fmt: skip
