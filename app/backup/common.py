"""What every part of a backup shares: the error it raises and how it reports progress."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

# Large enough that hashing a multi-gigabyte dump is not dominated by call overhead, small enough to show progress.
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore that cannot go on; the message is one line for the operator."""


class Progress(Protocol):
    """Where long steps report how far they are; the command line draws bars, tests stay silent."""

    def stage(self, label: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
        """Start a step of `total` units; the context yields a function to call with each unit done."""
        ...

    def note(self, message: str) -> None:
        """Say one line about what is happening."""
        ...


class SilentProgress:
    """Progress that goes nowhere."""

    @contextmanager
    def stage(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda done: None

    def note(self, message: str) -> None:
        pass


def sha256_of(path: Path, advance: Callable[[int], None] | None = None) -> str:
    """Return the SHA-256 of a file, reading it in chunks; `advance` is told each chunk's size."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            if advance is not None:
                advance(len(chunk))
    return digest.hexdigest()
