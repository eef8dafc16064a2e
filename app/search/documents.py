"""Turn versions, working texts and comments into search documents, each with its audience."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, selectinload

from app.comments.models import Comment, Visibility
from app.drafting.clauses import split_clauses
from app.drafting.models import Code, Version
from app.search.plain import clause_text, footnote_definitions, html_text, markdown_text, with_notes

PUBLIC = "public"


def group_audience(group_id: int) -> str:
    return f"group-{group_id}"


@dataclass(frozen=True)
class SearchDocument:
    id: str
    source: str
    kind: str  # "version", "working" or "comment"
    code: str
    code_title: str
    version: int | None
    clause: str | None
    title: str
    content: str
    language: str
    audience: str
    date: dt.datetime
    url: str
    category: str | None = None
    comment_type: str | None = None
    disposition: str | None = None


def _clause_documents(
    code: Code,
    clauses: Iterable[tuple[str, str, str]],
    *,
    source: str,
    kind: str,
    version: int | None,
    audience: str,
    date: dt.datetime,
    page: str,
) -> Iterator[SearchDocument]:
    """One document per (key, heading, markdown) clause of a text shown at `page`, indexed as read: the
    rendered text of the clause, without its heading, which is the title."""
    clauses = list(clauses)
    notes = footnote_definitions("\n\n".join(markdown for _key, _heading, markdown in clauses))
    for key, heading, markdown in clauses:
        title, content = clause_text(with_notes(markdown, notes))
        yield SearchDocument(
            id=f"{source}:{key}",
            source=source,
            kind=kind,
            code=code.slug,
            code_title=code.title,
            version=version,
            clause=key,
            title=title or heading or code.title,
            content=content,
            language=code.language,
            audience=audience,
            date=date,
            url=f"{page}#{key}",
        )


def version_documents(version: Version) -> Iterator[SearchDocument]:
    code = version.code
    return _clause_documents(
        code,
        ((c.key, c.heading, c.markdown) for c in version.clauses),
        source=f"version:{version.id}",
        kind="version",
        version=version.number,
        audience=PUBLIC if version.is_published else group_audience(code.working_group_id),
        date=version.published_at or version.created_at,
        page=f"/codes/{code.slug}/v{version.number}",
    )


def working_documents(code: Code) -> Iterator[SearchDocument]:
    return _clause_documents(
        code,
        ((c.key, c.heading, c.markdown) for c in split_clauses(code.working_text, strict=False)),
        source=f"code:{code.id}",
        kind="working",
        version=None,
        audience=group_audience(code.working_group_id),
        date=code.updated_at,
        page=f"/codes/{code.slug}/working",
    )


def comment_documents(comment: Comment) -> Iterator[SearchDocument]:
    if comment.is_withdrawn:
        return
    code, version = comment.code, comment.version
    public = comment.visibility == Visibility.PUBLIC and version.is_published
    # As read on the comment's page: the body as rendered, the quote and the proposed wording as text.
    body = html_text(comment.body_html) if comment.body_html else markdown_text(comment.body)
    parts = [markdown_text(comment.quote or ""), body, markdown_text(comment.proposed_text or "")]
    yield SearchDocument(
        id=f"comment:{comment.id}",
        source=f"comment:{comment.id}",
        kind="comment",
        code=code.slug,
        code_title=code.title,
        version=version.number,
        clause=comment.clause_key,
        title=f"#{comment.id} · {comment.clause_key}",
        content="\n\n".join(part for part in parts if part),
        language=code.language,
        audience=PUBLIC if public else group_audience(code.working_group_id),
        date=comment.created_at,
        url=f"/comments/{comment.parent_id or comment.id}#comment-{comment.id}",
        category=comment.author_category.value,
        comment_type=comment.type.value,
        disposition=comment.disposition.value if comment.disposition else "open",
    )


def documents_for(session: Session, source: str) -> list[SearchDocument] | None:
    """Return the documents a source stands for now, or None when the source no longer exists."""
    kind, _, raw_id = source.partition(":")
    if not raw_id.isdigit():
        return None
    if kind == "version":
        version = session.get(Version, int(raw_id))
        return list(version_documents(version)) if version else None
    if kind == "code":
        code = session.get(Code, int(raw_id))
        return list(working_documents(code)) if code else None
    if kind == "comment":
        comment = session.get(Comment, int(raw_id))
        return list(comment_documents(comment)) if comment else None
    return None


def documents_for_sources(session: Session, sources: Iterable[str]) -> dict[str, list[SearchDocument]]:
    """`documents_for` each source (an empty list for one that no longer exists), with the comments among them
    loaded in one statement, and their codes and versions once each without their texts."""
    sources = list(sources)
    ids = [int(raw) for kind, _, raw in (s.partition(":") for s in sources) if kind == "comment" and raw.isdigit()]
    # Held while the documents are made: the session keeps unchanged objects only weakly, so each comment
    # would otherwise be loaded again by id, and with it its code's working text and its version's texts.
    loaded = (
        list(
            session.scalars(
                select(Comment)
                .where(Comment.id.in_(ids))
                .options(
                    selectinload(Comment.code).options(defer(Code.working_text)),
                    selectinload(Comment.version).options(
                        defer(Version.markdown), defer(Version.html), defer(Version.toc)
                    ),
                )
            )
        )
        if ids
        else []
    )
    documents = {source: documents_for(session, source) or [] for source in sources}
    del loaded
    return documents


def all_sources(session: Session) -> list[str]:
    """Every source there is, for a full rebuild."""
    sources = [f"version:{i}" for i in session.scalars(select(Version.id))]
    sources += [f"code:{i}" for i in session.scalars(select(Code.id))]
    sources += [f"comment:{i}" for i in session.scalars(select(Comment.id))]
    return sources
