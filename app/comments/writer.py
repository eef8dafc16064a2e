"""Group commit for comment intake: one writer thread per process stores the submissions that wait together.

Near a deadline hundreds of submissions arrive a second. Each request reads its fields, notes the time it
arrived and hands the submission (an `Intake`) to this writer, and waits. The writer takes every submission
waiting at that moment, checks them all (`plan_intakes`: who sent each, whether they may comment on that
version, the window, the anchor), stores them in one transaction (`store_comment_rows`) and commits once;
only then does each request get its receipt or its refusal. A batch forms by itself: while one commits, the
next gathers, so a quiet server commits each comment alone and a busy one commits dozens at once.

On SQLite this turns one commit per comment into one per batch; the batch also loads its authors (with their
memberships) and codes (with their versions) once, where each request used to load its own, and the
requests never contend for SQLite's single write lock among themselves. A plan checked elsewhere
(`prepare_comment`, as tests and scripts do) can be stored through the writer too.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import Flask
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from app.comments.service import Intake, PlannedComment, Receipt, plan_intakes, receipt_of, store_comment_rows
from app.db import db, in_transaction
from app.errors import DomainError, Unavailable
from app.errors import lazy_gettext as _l

log = logging.getLogger(__name__)
T = TypeVar("T")

# A batch larger than this waits for the next commit: one transaction holds SQLite's write lock for the
# whole batch, and the other writers of the process (the editors' update log) should not wait behind it long.
MAX_BATCH = 64
# The thread stops after this long without work and starts again with the next submission, so an idle
# process (or a test's short-lived app) keeps no thread.
IDLE_SECONDS = 5.0
# How long a request waits for its batch to commit before it answers 503 (the client then retries with the
# same key). A batch commits in well under a second even at the deadline; longer means the database is stuck.
WAIT_SECONDS = 10.0
# Failures of the database itself (locked for too long, no connection): storing the batch's plans one at a
# time would only repeat the wait once per plan.
DATABASE_FAILURES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


@dataclass
class _Job(Generic[T]):
    plan: PlannedComment | Intake
    describe: Callable[[Session, Receipt], T]
    done: Future[tuple[Receipt, T]] = field(default_factory=Future)


class IntakeWriter:
    """The per-app writer: `store(plan, describe)` blocks until the plan's transaction has committed."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._jobs: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Counters, for tests and diagnosis: batches committed (replays of stored keys are answered in batches
        # too), comments stored, the largest batch.
        self.batches = 0
        self.stored = 0
        self.largest_batch = 0

    @property
    def waiting(self) -> int:
        """Submissions queued and not yet taken into a batch."""
        return self._jobs.qsize()

    def store(
        self,
        plan: PlannedComment | Intake,
        describe: Callable[[Session, Receipt], T],
        *,
        wait_seconds: float | None = None,
    ) -> tuple[Receipt, T]:
        """Check (an `Intake`) and store `plan` in the next batch and return its receipt with
        `describe(session, receipt)`, which runs in the batch's transaction (so an answer can be built from the
        rows just written).

        Raises:
            DomainError: the refusal of `plan_intakes` (not signed in, not allowed, window closed, bad fields)
                or of `store_comment_rows` (the key used for another comment).
            Unavailable: when the batch has not committed within `wait_seconds` (default WAIT_SECONDS). The
                plan may still be stored after that; a retry with the same key then gets its receipt.
        """
        job: _Job[T] = _Job(plan, describe)
        self._jobs.put(job)
        self._ensure_running()
        try:
            return job.done.result(timeout=WAIT_SECONDS if wait_seconds is None else wait_seconds)
        except FutureTimeout:
            raise Unavailable(
                _l("Your comment could not be confirmed in time. Send it again: it will not be stored twice.")
            ) from None

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    # A job put after the timeout but before this check would wait for nobody.
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            with self._app.app_context():
                self._commit(batch)

    def _commit(self, batch: list[_Job[Any]]) -> None:
        try:
            answers = in_transaction(lambda session: _store_and_describe(session, batch))
        except Exception as error:
            if len(batch) == 1 or isinstance(error, DATABASE_FAILURES):
                # Each request raises it as if it had stored its comment itself, and answers accordingly.
                for job in batch:
                    job.done.set_exception(error)
                return
            # One bad plan must not fail the others: store each alone, so only its own request fails.
            log.warning("a batch of %d comments failed; storing them one by one", len(batch), exc_info=True)
            for job in batch:
                self._commit([job])
            return
        finally:
            db.session.remove()
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        for job, answer in zip(batch, answers, strict=True):
            if isinstance(answer, DomainError):
                job.done.set_exception(answer)
            else:
                self.stored += 0 if answer[0].replayed else 1
                job.done.set_result(answer)


def _store_and_describe(session: Session, batch: list[_Job[Any]]) -> list[tuple[Receipt, Any] | DomainError]:
    plans = _checked(session, [job.plan for job in batch])
    # The rows stay referenced while the answers are described, so reading them again needs no query.
    rows = iter(store_comment_rows(session, [plan for plan in plans if isinstance(plan, PlannedComment)]))
    answers: list[tuple[Receipt, Any] | DomainError] = []
    for job, plan in zip(batch, plans, strict=True):
        if isinstance(plan, PlannedComment):
            row = next(rows)
            if isinstance(row, DomainError):
                answers.append(row)
                continue
            plan = receipt_of(row[0], replayed=row[1])
        # A receipt here is a stored comment's, for a retry that the checks would now refuse.
        answers.append(plan if isinstance(plan, DomainError) else (plan, job.describe(session, plan)))
    return answers


def _checked(session: Session, plans: list[PlannedComment | Intake]) -> list[PlannedComment | Receipt | DomainError]:
    """The batch with each `Intake` checked and planned; plans made elsewhere are kept as they are."""
    intakes = iter(plan_intakes(session, [plan for plan in plans if isinstance(plan, Intake)]))
    return [next(intakes) if isinstance(plan, Intake) else plan for plan in plans]


def writer_for(app: Flask) -> IntakeWriter:
    writer = app.extensions.get("accord_intake_writer")
    if writer is None:
        writer = app.extensions.setdefault("accord_intake_writer", IntakeWriter(app))
    return writer
