"""Keep the index in step with the database: queue changes in their own transaction, apply them in one thread.

A change to a version, a comment or a working text adds a row to `search_queue` in the same transaction
(so a crash can lose no pending index update); after the commit the indexer thread wakes, reads the queue,
rebuilds the documents of each changed source from the database and replaces them in the backend.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from sqlalchemy import delete, event, insert, inspect, select
from sqlalchemy.orm import Session

from app.comments.models import Comment
from app.db import db
from app.drafting.models import Code, Version
from app.search.documents import all_sources, documents_for_sources
from app.search.models import SearchQueueItem

log = logging.getLogger(__name__)
BATCH = 500
# After a wake-up the indexer waits this long before draining, so that the commits of a busy moment (a
# deadline's surge of comments) share one backend write: a whoosh commit costs about as much as indexing a
# comment. It is also the least delay before a change is searchable (the target is 1 s).
GATHER_SECONDS = 0.2
# While changes keep arriving (the last drain took more than BUSY_ROWS rows), it waits longer, so that one
# whoosh commit (about 15 ms, however few documents it carries) serves a few hundred comments rather than a
# few dozen; a change is still searchable well within the 1-s target.
BUSY_GATHER_SECONDS = 0.5
BUSY_ROWS = 50
# How often a separate indexing process (`flask search worker`) looks at the queue when nothing woke it.
POLL_SECONDS = 0.25
FAILED_RETRY_SECONDS = 5.0
# Sources per replace_sources in a full rebuild. Each call is a whoosh commit (which merges segments) and a
# new searcher: chunks of 200 meant 500 commits for 100,000 comments.
REINDEX_CHUNK = 2_000


def _source_of(obj: Any) -> str | None:
    if isinstance(obj, Version):
        return f"version:{obj.id}"
    if isinstance(obj, Comment):
        return f"comment:{obj.id}"
    if isinstance(obj, Code):
        # Only the working text matters for the index; a status change does not.
        history = inspect(obj).attrs.working_text.history
        if obj in inspect(obj).session.new or history.has_changes():  # type: ignore[union-attr]
            return f"code:{obj.id}"
    return None


@event.listens_for(Session, "after_flush")
def _queue_changes(session: Session, flush_context: Any) -> None:
    sources = {
        source for obj in (*session.new, *session.dirty, *session.deleted) if (source := _source_of(obj)) is not None
    }
    # Publishing a version changes who may read its comments, so they are re-indexed with it.
    published = [
        obj.id
        for obj in session.dirty
        if isinstance(obj, Version) and inspect(obj).attrs.published_at.history.has_changes()
    ]
    if published:
        comment_ids = session.connection().execute(select(Comment.id).where(Comment.version_id.in_(published)))
        sources.update(f"comment:{comment_id}" for (comment_id,) in comment_ids)
    queue_for_search(session, sources)


def queue_for_search(session: Session, sources: Iterable[str]) -> None:
    """Queue sources (`comment:12`) for indexing in the caller's transaction; the indexer wakes at commit.

    The flush does this for the ORM objects it writes; a bulk statement that bypasses the flush calls it.
    """
    rows = [{"source": source} for source in sorted(set(sources))]
    if not rows:
        return
    session.connection().execute(insert(SearchQueueItem), rows)
    session.info["search_queued"] = True


@event.listens_for(Session, "after_commit")
def _wake_indexer(session: Session) -> None:
    if session.info.pop("search_queued", False):
        indexer.wake()


@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop("search_queued", None)


class Indexer:
    """One thread per process that drains the queue into the backend."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._app: Flask | None = None
        self._backend_factory: Callable[[], Any] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0

    def init_app(self, app: Flask, backend_factory: Callable[[], Any]) -> None:
        self._app = app
        self._backend_factory = backend_factory

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="search-indexer", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self._wake.set()
        if self._thread is None and self._app is not None and self._app.config.get("SEARCH_INDEXER_THREAD"):
            self.start()

    def _loop(self) -> None:
        drained = 0
        while True:
            if self._wake.wait(1.0):
                time.sleep(BUSY_GATHER_SECONDS if drained > BUSY_ROWS else GATHER_SECONDS)
            self._wake.clear()
            if self._app is None or not self._app.config.get("SEARCH_INDEXER_THREAD"):
                continue
            drained = self.drain_all() or 0

    def drain_all(self, app: Flask | None = None) -> int | None:
        """Drain the queue until it is empty; return how many rows were handled, or None when indexing failed
        (logged; the queue keeps the changes for the next attempt)."""
        total = 0
        try:
            while (count := self.drain(app)) > 0:
                total += count
                if count < BATCH:
                    break
        except Exception:
            log.exception("search indexing failed; the queue keeps the changes for the next attempt")
            return None
        return total

    def work(self, app: Flask, *, stop: Callable[[], bool] = lambda: False) -> None:
        """Index in this process until `stop()`: for servers that leave indexing to one process of its own
        (`SEARCH_INDEXER_THREAD=0` and `flask search worker`), so that it does not share their cores. The
        queue is in the database, so the worker finds the changes of every server process."""
        self.queue_rebuild_if_empty(app)
        while not stop():
            drained = self.drain_all(app)
            if drained is None:
                time.sleep(FAILED_RETRY_SECONDS)  # a broken index or database: one traceback per wait
            elif drained > BUSY_ROWS:
                time.sleep(BUSY_GATHER_SECONDS)
            elif not drained:
                time.sleep(POLL_SECONDS)

    def drain(self, app: Flask | None = None) -> int:
        """Apply up to one batch of queued changes; return how many queue rows were handled."""
        app = app or self._app
        assert app is not None
        assert self._backend_factory is not None
        with app.app_context():
            session = Session(db.engine)
            try:
                query = select(SearchQueueItem).order_by(SearchQueueItem.id).limit(BATCH)
                if db.engine.dialect.name == "postgresql":
                    # Several processes may drain at once; each takes rows the others have not locked.
                    query = query.with_for_update(skip_locked=True)
                items = list(session.scalars(query))
                if not items:
                    session.rollback()
                    return 0
                sources = {item.source for item in items}
                documents = documents_for_sources(session, sources)
                self._backend_factory().replace_sources(documents)
                session.execute(delete(SearchQueueItem).where(SearchQueueItem.id.in_([i.id for i in items])))
                session.commit()
                self.batches += 1
                return len(items)
            finally:
                session.close()

    def start_serving(self, app: Flask) -> None:
        """Start indexing in this process; queue a full rebuild if the index is empty (say, deleted)."""
        if not app.config.get("SEARCH_INDEXER_THREAD"):
            return
        self.queue_rebuild_if_empty(app)
        self.start()
        self.wake()

    def queue_rebuild_if_empty(self, app: Flask) -> int:
        """Queue every source when the index is empty (deleted, or set aside for an older schema), and the
        sources the backend holds only in part (written by older code during an upgrade).

        Returns how many sources were queued.
        """
        with app.app_context():
            if self._backend_factory is None:
                return 0
            backend = self._backend_factory()
            sources = all_sources(db.session) if backend.is_empty else backend.unmatched_sources()
            if sources:
                db.session.execute(insert(SearchQueueItem), [{"source": s} for s in sources])
                db.session.commit()
            return len(sources)


indexer = Indexer()


def reindex_chunks(session: Session) -> list[list[str]]:
    """Every source in the database, in chunks of REINDEX_CHUNK, for a full rebuild."""
    sources = all_sources(session)
    return [sources[start : start + REINDEX_CHUNK] for start in range(0, len(sources), REINDEX_CHUNK)]


def reindex_everything(session: Session, backend: Any, chunks: Iterable[list[str]] | None = None) -> int:
    """Rebuild the whole index from the database; return how many sources were indexed.

    Pass `chunks` (from `reindex_chunks`, perhaps wrapped in a progress bar) to watch it go.
    """
    backend.clear()
    count = 0
    for chunk in chunks if chunks is not None else reindex_chunks(session):
        backend.replace_sources(documents_for_sources(session, chunk))
        count += len(chunk)
    backend.finish_rebuild()
    return count
