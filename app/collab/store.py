"""Durable storage of working texts: one snapshot per code plus the update log after it."""

from __future__ import annotations

from collections.abc import Callable

from pycrdt import Doc
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.collab import engine
from app.collab.models import CollabDocument, CollabUpdate
from app.db import utcnow
from app.drafting.models import Code

Fold = Callable[..., tuple[bytes, str]]


def ensure_document(session: Session, code: Code) -> CollabDocument:
    """Return the code's CRDT snapshot, creating it from the working text the first time.

    The first state must be created once and shared: two replicas that each inserted the same text
    independently would merge into the text twice. A savepoint lets a racing creator lose gracefully.
    """
    row = session.get(CollabDocument, code.id)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = CollabDocument(code_id=code.id, state=engine.initial_state(code.working_text), generation=1)
            session.add(row)
    except IntegrityError:
        row = session.get(CollabDocument, code.id)
        if row is None:
            raise
    return row


def _read(session: Session, code: Code) -> tuple[int, bytes, list[int], list[bytes]]:
    """The snapshot's generation and state, and the ids and updates of the log after it, read consistently."""
    ensure_document(session, code)
    while True:
        generation, state = session.execute(
            select(CollabDocument.generation, CollabDocument.state).where(CollabDocument.code_id == code.id)
        ).one()
        updates = session.execute(
            select(CollabUpdate.id, CollabUpdate.data).where(CollabUpdate.code_id == code.id).order_by(CollabUpdate.id)
        ).all()
        # A compaction that committed between the two reads folded rows into a snapshot not read here: retry.
        if session.scalar(select(CollabDocument.generation).where(CollabDocument.code_id == code.id)) == generation:
            return generation, state, [update_id for update_id, _ in updates], [data for _, data in updates]


def load(session: Session, code: Code) -> Doc:
    """Rebuild the working text's document from its snapshot and every logged update."""
    _, state, _, datas = _read(session, code)
    return engine.doc_from(state, datas)


def current_text(session: Session, code: Code) -> str:
    """Return the working text with every acknowledged update in it."""
    return engine.text_of(load(session, code))


def append(session: Session, code_id: int, data: bytes, user_id: int | None) -> None:
    """Add an update to the log in the caller's transaction."""
    session.add(CollabUpdate(code_id=code_id, data=data, user_id=user_id))


def append_many(session: Session, rows: list[tuple[int, bytes, int | None]]) -> None:
    """Add several (code id, update, user id) rows to the log in the caller's transaction, in one statement."""
    if rows:
        now = utcnow()
        session.execute(
            insert(CollabUpdate),
            [{"code_id": c, "data": d, "user_id": u, "created_at": now} for c, d, u in rows],
        )


def compact(session: Session, code: Code, *, refresh_text: bool = True, fold: Fold = engine.fold) -> str | None:
    """Fold the logged updates into the snapshot and refresh the plain-text copy; return the text.

    With `refresh_text=False` the plain-text copy (`Code.working_text`, which the search index follows) is
    left as it is and "" is returned: stringifying a fragmented document and re-indexing a whole working
    text are by far the costliest part of a compaction, and the live text is always read from the
    snapshot and the log anyway (`current_text`).

    `fold` does the CRDT work (`engine.fold`, or the same in a child process: `folding.Folder`).

    Only the updates actually read are deleted, and the snapshot is replaced by compare-and-set on its
    generation, so an update committed meanwhile, or a concurrent compaction, is never lost. Returns None
    when another process compacted first (the caller's transaction should then be rolled back).
    """
    generation, state, update_ids, datas = _read(session, code)
    snapshot, text = fold(state, datas, with_text=refresh_text)
    replaced = session.execute(
        update(CollabDocument)
        .where(CollabDocument.code_id == code.id, CollabDocument.generation == generation)
        .values(state=snapshot, generation=generation + 1, compacted_at=utcnow())
    )
    if replaced.rowcount != 1:
        return None
    if update_ids:
        session.execute(delete(CollabUpdate).where(CollabUpdate.id.in_(update_ids)))
    if refresh_text and code.working_text != text:
        code.working_text = text
        code.working_revision += 1
    return text


def write_text(session: Session, code: Code, new_text: str, user_id: int | None) -> bytes:
    """Turn a whole-text write into CRDT edits against the current state and log them; return the update."""
    data = engine.replace_text(load(session, code), new_text)
    if data:
        append(session, code.id, data, user_id)
        code.working_text = new_text
        code.working_revision += 1
    return data
