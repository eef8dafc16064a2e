"""Compaction's CRDT work in a child process, so that it never holds the server's GIL.

Folding a working text's snapshot and log (`engine.fold`) is one long native call into pycrdt: about 90 ms for
5,000 updates on a 60,000-word text, during which no other thread of the server runs (pycrdt keeps the GIL),
so every editor's frames and acknowledgements waited for it. The child does the same pure computation on
bytes; the server's compaction thread only reads and writes the database. Should the child fail, the fold
runs in the server as before: slower for everyone, never wrong.

Run as `python -m app.collab.folding`, the module serves fold requests on stdin/stdout until stdin closes.
Both ways carry length-prefixed byte strings only: a request is a flag (the text wanted or not), a count,
the snapshot and the updates; an answer is a flag (folded or not), then the snapshot and the text, or
the error.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

from app.collab import engine

log = logging.getLogger(__name__)
# Where `app` is importable from, whatever the server's working directory.
ROOT = Path(__file__).resolve().parents[2]
# A fold takes well under a second (about 0.1 s at 5,000 updates); a child that has not answered in this
# long is stuck, and is killed so that the server folds itself.
ANSWER_SECONDS = 60.0
# After a failure the server folds itself for this long before it starts a child again: a child that fails
# at every start would otherwise cost a start-up (about 0.8 s of imports) on top of every fold.
RETRY_SECONDS = 60.0
# The child's niceness (0 is normal, 19 the lowest priority): see the end of this module.
BACKGROUND_NICENESS = 10


class Folder:
    """One child process per server process, started on first use and again after a failure."""

    def __init__(self, command: list[str] | None = None) -> None:
        self._command = command or [sys.executable, "-m", "app.collab.folding"]
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._retry_at = 0.0
        self.in_child = 0
        self.in_process = 0

    def fold(self, state: bytes | None, updates: list[bytes], *, with_text: bool) -> tuple[bytes, str]:
        with self._lock:
            if time.monotonic() >= self._retry_at:
                answer = self._ask_child(state or b"", updates, with_text)
                if answer is not None:
                    self.in_child += 1
                    return answer
                self._retry_at = time.monotonic() + RETRY_SECONDS
        self.in_process += 1
        return engine.fold(state, updates, with_text=with_text)

    def _ask_child(self, state: bytes, updates: list[bytes], with_text: bool) -> tuple[bytes, str] | None:
        try:
            child = self._running()
        except OSError:
            log.warning("the compaction process could not start; folding in the server", exc_info=True)
            return None
        assert child.stdin is not None
        assert child.stdout is not None
        # Killing a stuck child ends the read below with EOFError.
        watchdog = threading.Timer(ANSWER_SECONDS, child.kill)
        watchdog.start()
        try:
            _write_request(child.stdin, state, updates, with_text)
            folded, first, second = _read_answer(child.stdout)
        except (OSError, EOFError, struct.error):
            log.warning("the compaction process failed; folding in the server", exc_info=True)
            self._stop()
            return None
        finally:
            watchdog.cancel()
        if not folded:
            log.warning("the compaction process could not fold (%s); folding in the server", second.decode())
            return None
        return first, second.decode("utf-8")

    def _running(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is not None:
            self._stop()
        if self._child is None:
            # The command is this module (tests give another); nothing in it comes from a request.
            self._child = subprocess.Popen(  # noqa: S603
                self._command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        return self._child

    def _stop(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.wait(5)
            for pipe in (self._child.stdin, self._child.stdout):
                if pipe is not None:
                    pipe.close()
            self._child = None

    def close(self) -> None:
        with self._lock:
            self._stop()


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer fold requests until `requests` ends; a request that cannot be folded is answered with its error."""
    while True:
        try:
            state, updates, with_text = _read_request(requests)
        except EOFError:
            return
        try:
            snapshot, text = engine.fold(state, updates, with_text=with_text)
        except Exception as error:  # the server folds it itself, and logs why
            flag, blobs = 0, [b"", repr(error).encode()]
        else:
            flag, blobs = 1, [snapshot, text.encode("utf-8")]
        try:
            _write_blobs(answers, flag, blobs)
        except BrokenPipeError:  # the server stopped while this was folding: nobody is waiting for it
            return


def _write_request(stream: BinaryIO, state: bytes, updates: list[bytes], with_text: bool) -> None:
    _write_blobs(stream, int(with_text), [state, *updates])


def _read_request(stream: BinaryIO) -> tuple[bytes, list[bytes], bool]:
    flag, blobs = _read_blobs(stream)
    return blobs[0], blobs[1:], bool(flag)


def _read_answer(stream: BinaryIO) -> tuple[bool, bytes, bytes]:
    flag, (first, second) = _read_blobs(stream)
    return bool(flag), first, second


def _write_blobs(stream: BinaryIO, flag: int, blobs: list[bytes]) -> None:
    stream.write(struct.pack(">BI", flag, len(blobs)))
    for blob in blobs:
        stream.write(struct.pack(">I", len(blob)))
        stream.write(blob)
    stream.flush()


def _read_blobs(stream: BinaryIO) -> tuple[int, list[bytes]]:
    flag, count = struct.unpack(">BI", _exactly(stream, 5))
    return flag, [_exactly(stream, struct.unpack(">I", _exactly(stream, 4))[0]) for _ in range(count)]


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the other side closed the pipe")
    return data


if __name__ == "__main__":
    # Compaction can wait; the editors' frames cannot. When the child shares a core with its server (a
    # one-core machine, or a busy one), the kernel then gives the server the core first.
    os.nice(BACKGROUND_NICENESS)
    serve(sys.stdin.buffer, sys.stdout.buffer)
