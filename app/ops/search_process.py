"""The search worker beside a gunicorn server: `flask search worker` as a child of gunicorn's master.

Whoosh indexes in pure Python and never yields, so an indexer thread inside the gevent server stops every
request while it indexes a batch (and for seconds while it merges segments): near a deadline that turned a
p99 of 150 ms into 450 ms, with single answers after 3 s. A process of its own is scheduled by the
operating system instead, and on a machine with a second core it does not slow the server at all.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Set in the worker's environment: the pid it watches, so that it stops when the server is gone however the
# server ended (a SIGKILL leaves no chance to stop it).
PARENT_PID_VARIABLE = "ACCORD_SEARCH_WORKER_PARENT"
RESTART_SECONDS = 2.0
# 0 is normal, 19 the lowest priority; on an idle second core it makes no difference.
BACKGROUND_NICENESS = 10
STOP_SECONDS = 10.0


class SearchWorkerProcess:
    """Start `flask search worker`, start it again whenever it exits, and stop it with the server."""

    def __init__(self, root: Path, logger: Any = None) -> None:
        self._root = root
        # gunicorn's own logger in its master, so that these lines are formatted as its others are (JSON).
        self._log = logger or log
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="search-worker-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # the command's own clean stop: the batch in hand is finished
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> None:
        env = {**os.environ, "SEARCH_INDEXER_THREAD": "0", PARENT_PID_VARIABLE: str(os.getpid())}
        env.setdefault("FLASK_APP", "app:create_app")
        # Its greeting on stdout is for people at a terminal; its logs go to stderr, formatted by the app.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "flask", "search", "worker"], cwd=self._root, env=env, stdout=subprocess.DEVNULL
        )
        self._log.info("search worker started (pid %d)", self._process.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            assert self._process is not None
            code = self._process.wait()
            if self._stopping.is_set():
                return
            self._log.warning("the search worker exited with code %s; starting it again", code)
            if self._stopping.wait(RESTART_SECONDS):
                return
            self._spawn()


def as_background_worker() -> None:
    """For the worker, when a server started it: give way to the server on a shared core. Indexing can
    wait a little; the answers to comments and the editors' frames cannot."""
    if os.environ.get(PARENT_PID_VARIABLE) is not None:
        os.nice(BACKGROUND_NICENESS)


def parent_gone() -> bool:
    """For the worker: whether the server that started it has ended (never, for a worker started by hand)."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    return parent is not None and os.getppid() != int(parent)
