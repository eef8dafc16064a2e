"""Admission control for comment submissions: answer 503 with Retry-After instead of queueing forever."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Unavailable
from app.errors import lazy_gettext as _l

_slots: threading.BoundedSemaphore | None = None
_lock = threading.Lock()


def configure(concurrency: int) -> None:
    global _slots
    with _lock:
        _slots = threading.BoundedSemaphore(concurrency)


@contextmanager
def intake_slot(wait_seconds: float = 2.0) -> Iterator[None]:
    """Hold one of the limited intake slots, or raise Unavailable when none frees up in time.

    Raises:
        Unavailable: when the server is too busy; the client retries with the same idempotency key.
    """
    slots = _slots
    if slots is None:
        yield
        return
    if not slots.acquire(timeout=wait_seconds):
        raise Unavailable(
            _l("Many comments are arriving right now. Your comment was not lost: it is sent again shortly.")
        )
    try:
        yield
    finally:
        slots.release()
