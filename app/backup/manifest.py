"""The manifest beside every backup: what it holds, where it came from, and how to tell it is intact."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.backup.common import BackupError, Progress, sha256_of

MANIFEST = "manifest.json"
FORMAT = 1
KINDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class FileEntry:
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Written last, so a folder without one is an unfinished backup."""

    database_kind: str
    alembic_revision: str | None
    created_at: str
    files: list[FileEntry]
    # Counted inside the same snapshot as the copy, so a restore can prove it brought back every row.
    row_counts: dict[str, int]
    tools: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        """Build a manifest from its parsed JSON.

        Raises:
            BackupError: for a manifest of another format, or one missing or mistyping a field.
        """
        if raw.get("format") != FORMAT:
            raise BackupError(f"The manifest has format {raw.get('format')!r}; this Accord reads format {FORMAT}.")
        try:
            files = [
                FileEntry(name=str(f["name"]), bytes=int(f["bytes"]), sha256=str(f["sha256"])) for f in raw["files"]
            ]
            manifest = cls(
                database_kind=str(raw["database_kind"]),
                alembic_revision=None if raw["alembic_revision"] is None else str(raw["alembic_revision"]),
                created_at=str(raw["created_at"]),
                files=files,
                row_counts={str(name): int(count) for name, count in raw["row_counts"].items()},
                tools={str(k): str(v) for k, v in raw.get("tools", {}).items()},
                seconds=float(raw.get("seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BackupError(f"The manifest is incomplete or malformed ({type(error).__name__}: {error}).") from error
        if manifest.database_kind not in KINDS:
            raise BackupError(f"The manifest names an unknown database kind {manifest.database_kind!r}.")
        for entry in manifest.files:
            # A name like "../x" would make verification and restore read outside the backup folder.
            if Path(entry.name).name != entry.name or entry.name in {"", ".", "..", MANIFEST}:
                raise BackupError(f"The manifest lists a file with an unsafe name: {entry.name!r}.")
        return manifest


def describe_file(path: Path, progress: Progress) -> FileEntry:
    """Checksum one file of a backup for its manifest entry."""
    size = path.stat().st_size
    with progress.stage(f"Checksumming {path.name}", size) as advance:
        return FileEntry(name=path.name, bytes=size, sha256=sha256_of(path, advance))


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write the manifest durably: to a temporary name, flushed to disk, then renamed into place."""
    path = folder / MANIFEST
    partial = folder / (MANIFEST + ".partial")
    with partial.open("w", encoding="utf-8") as stream:
        stream.write(manifest.to_json())
        stream.flush()
        os.fsync(stream.fileno())
    partial.replace(path)
    return path


def read_manifest(folder: Path) -> Manifest:
    """Read a backup folder's manifest.

    Raises:
        BackupError: when there is none (an unfinished backup or the wrong folder) or it cannot be read.
    """
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a folder; give the backup folder that holds {MANIFEST}.")
    if not path.is_file():
        raise BackupError(f"{folder} has no {MANIFEST}: not a backup folder, or a backup that did not finish.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BackupError(f"{path} cannot be read as JSON ({error}).") from error
    if not isinstance(raw, dict):
        raise BackupError(f"{path} is not a manifest (a JSON object was expected).")
    return Manifest.from_json(raw)


def verify_files(folder: Path, manifest: Manifest, progress: Progress) -> None:
    """Check every file the manifest lists against its size and SHA-256.

    Raises:
        BackupError: naming the first file that is missing, truncated or changed.
    """
    if not manifest.files:
        raise BackupError("The manifest lists no files.")
    for entry in manifest.files:
        path = folder / entry.name
        if not path.is_file():
            raise BackupError(f"{entry.name} is missing from {folder}.")
        size = path.stat().st_size
        if size != entry.bytes:
            raise BackupError(
                f"{entry.name} has {size} bytes where the manifest says {entry.bytes}: damaged or truncated."
            )
        with progress.stage(f"Verifying {entry.name}", size) as advance:
            actual = sha256_of(path, advance)
        if actual != entry.sha256:
            raise BackupError(f"{entry.name} does not match its SHA-256 in the manifest: the backup is damaged.")
