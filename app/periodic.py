"""A background thread per process that runs one job now and then: every `interval` seconds, or when woken."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)


class PeriodicWorker:
    """Run `job(app)` in a daemon thread every `interval` seconds, and at once when `wake()` is called.

    A failing run is logged and the next one happens as planned: the jobs keep their work in the database, so
    nothing is lost by a run that fails.
    """

    def __init__(self, name: str, interval: float, job: Callable[[Flask], Any]) -> None:
        self.name = name
        self.interval = interval
        self._job = job
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._app: Flask | None = None

    def start(self, app: Flask) -> None:
        with self._lock:
            self._app = app
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        if self._thread is not None:
            self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current run (tests; a server simply exits)."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def start_with_first_request(self, app: Flask) -> None:
        """Start with the first request rather than now, so that CLI commands (migrations, backups) never run
        the job, and under gunicorn each worker process starts its own after the fork."""

        @app.before_request
        def _start_worker() -> None:
            if not self.running:
                self.start(app)
                self.wake()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            app = self._app
            if app is None:
                continue
            try:
                self._job(app)
            except Exception:
                log.exception("%s failed; its work stays in the database for the next run", self.name)
