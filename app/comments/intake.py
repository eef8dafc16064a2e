"""Admission control for comment submissions: answer 503 with Retry-After instead of queueing forever."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Unavailable
from app.errors import lazy_gettext as _l

_slots: threading.BoundedSemaphore | None = None
_lock = threading.Lock()
# Which threads hold a slot: a request is served by one thread, and may ask again for the slot it holds.
_held = threading.local()


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
    # Re-entrant per request: an endpoint may take its slot before anything touches the database, and the
    # submission code it calls asks again.
    if slots is None or getattr(_held, "slot", False):
        yield
        return
    if not slots.acquire(timeout=wait_seconds):
        raise Unavailable(
            _l("Many comments are arriving right now. Your comment was not lost: it is sent again shortly.")
        )
    _held.slot = True
    try:
        yield
    finally:
        _held.slot = False
        slots.release()
