"""Let other work run during long CPU-bound loops.

Under gunicorn's gevent worker (`make run`, production) every request, WebSocket and background loop is a
greenlet on one OS thread, and a greenlet runs until it waits for I/O. A loop that computes for seconds, such
as diffing two long versions clause by clause, would freeze every editor's connection for that long. Pausing
every few steps lets the others run in between. Under threads (`flask serve`, tests) a pause only gives up
the GIL for a moment.

Never pause inside a write transaction on SQLite (re-anchoring during a version's cut does not): a greenlet
let in meanwhile would wait for the write lock in SQLite's busy handler, in C, where gevent cannot switch,
and the whole process would stop until busy_timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def pause() -> None:
    """Give way to whatever else is ready to run (patched `time.sleep` is gevent's under the gevent worker)."""
    time.sleep(0)


def pausing(items: Iterable[T], every: int) -> Iterator[T]:
    """Yield the items, pausing after every `every` of them."""
    for count, item in enumerate(items, start=1):
        yield item
        if count % every == 0:
            pause()
