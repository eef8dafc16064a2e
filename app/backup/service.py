"""Take a consistent online backup with its manifest; restore one into an empty database and rebuild search.

A backup is one folder, `accord-<kind>-<UTC time>/`, holding the database copy (`database.sqlite3` from
SQLite's backup API, or `database.pgdump` from `pg_dump --format=custom`) and `manifest.json` (checksums,
Alembic revision, database kind, creation time, and the row count of every table in the copied snapshot).
The folder is built under a `.partial` name and renamed once the manifest is written, so a folder with the
final name is always a finished backup.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Engine

from app.backup import postgres_backup, sqlite_backup
from app.backup.common import BackupError, Progress
from app.backup.manifest import Manifest, describe_file, read_manifest, verify_files, write_manifest
from app.db import db

DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}


@dataclass(frozen=True)
class RestoreReport:
    """What a restore brought back, and how the search index was rebuilt."""

    manifest: Manifest
    row_counts: dict[str, int]
    upgraded_to: str | None
    indexed: int
    backend: str
    seconds: float


def database_kind(engine: Engine) -> str:
    """Return "sqlite" or "postgresql" for the app's database.

    Raises:
        BackupError: for any other kind of database.
    """
    kind = engine.dialect.name
    if kind not in DATABASE_FILES:
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {kind}.")
    return kind


def _sqlite_path(engine: Engine) -> Path:
    # The engine's URL, not the configured string: Flask-SQLAlchemy resolves relative paths against instance/.
    name = engine.url.database
    if not name or name == ":memory:" or engine.url.query.get("mode") == "memory":
        raise BackupError("An in-memory SQLite database cannot be backed up or restored; configure a file.")
    return Path(name)


def _scripts(app: Flask) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(app.extensions["migrate"].directory))
    return ScriptDirectory.from_config(config)


def _new_folder(output: Path, kind: str, started: dt.datetime) -> tuple[Path, Path]:
    output.mkdir(parents=True, exist_ok=True)
    stem = f"accord-{kind}-{started:%Y%m%dT%H%M%SZ}"
    for attempt in range(100):
        name = stem if attempt == 0 else f"{stem}-{attempt}"
        final, partial = output / name, output / f"{name}.partial"
        if not final.exists() and not partial.exists():
            # Owner only: a backup holds every account's email address and password hash.
            partial.mkdir(mode=0o700)
            return partial, final
    raise BackupError(f"Too many backups named {stem} in {output}.")


def create_backup(app: Flask, output: Path, progress: Progress) -> tuple[Path, Manifest]:
    """Back up the app's database into a new folder under `output`, while the app goes on serving.

    Returns the finished folder and its manifest.

    Raises:
        BackupError: when the database cannot be copied (nothing is left behind then).
    """
    started_clock = time.monotonic()
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    engine = db.engine
    kind = database_kind(engine)
    partial, final = _new_folder(output, kind, started)
    try:
        target = partial / DATABASE_FILES[kind]
        if kind == "sqlite":
            counts, revision, tools = sqlite_backup.create(_sqlite_path(engine), target, progress)
        else:
            counts, revision, tools = postgres_backup.create(engine, target, progress)
        manifest = Manifest(
            database_kind=kind,
            alembic_revision=revision,
            created_at=started.isoformat().replace("+00:00", "Z"),
            files=[describe_file(target, progress)],
            row_counts=counts,
            tools=tools,
            seconds=round(time.monotonic() - started_clock, 3),
        )
        write_manifest(partial, manifest)
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final, manifest


def _check_revision(app: Flask, revision: str | None) -> str:
    """Return this code's head revision once the backup's revision is known to be one of its own.

    Raises:
        BackupError: for a backup of an unmigrated database or of a newer (or foreign) schema.
    """
    if revision is None:
        raise BackupError("The backup has no Alembic revision: it is not of a migrated Accord database.")
    scripts = _scripts(app)
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        raise BackupError(
            f"The backup is at schema revision {revision}, which this version of Accord does not know (a newer "
            "release made it?): restore it with the release that made it."
        )
    head = scripts.get_current_head()
    assert head is not None
    return head


def _differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    return [
        f"{name}: {expected.get(name, 'absent')} in the backup, {actual.get(name, 'absent')} restored"
        for name in sorted(set(expected) | set(actual))
        if expected.get(name) != actual.get(name)
    ]


def restore_backup(app: Flask, folder: Path, progress: Progress) -> RestoreReport:
    """Restore the backup in `folder` into the app's empty database, check it, and rebuild the search index.

    Raises:
        BackupError: for a damaged backup, one of another database kind or an unknown schema, a database that
        is not empty, or a restore whose row counts differ from the manifest.
    """
    from flask_migrate import upgrade

    from app.search.indexer import reindex_chunks, reindex_everything
    from app.search.service import backend_for

    started = time.monotonic()
    manifest = read_manifest(folder)
    engine = db.engine
    kind = database_kind(engine)
    if manifest.database_kind != kind:
        raise BackupError(
            f"This is a backup of a {manifest.database_kind} database and the configured database is {kind}: "
            "restore SQLite backups into SQLite and PostgreSQL backups into PostgreSQL."
        )
    where = engine.url.render_as_string(hide_password=True)
    empty, holds = (
        sqlite_backup.is_empty(_sqlite_path(engine)) if kind == "sqlite" else postgres_backup.is_empty(engine)
    )
    if not empty:
        raise BackupError(
            f"Refusing to restore: the database {where} is not empty ({holds}); restore into a new, empty database."
        )
    head = _check_revision(app, manifest.alembic_revision)
    verify_files(folder, manifest, progress)
    backup = folder / DATABASE_FILES[kind]
    # Close pooled connections first: the restore writes the database underneath the app's engine.
    engine.dispose()
    if kind == "sqlite":
        counts, revision = sqlite_backup.restore(backup, _sqlite_path(engine), progress)
    else:
        counts, revision = postgres_backup.restore(
            engine, backup, manifest.tools.get("pg_dump"), progress, note=progress.note
        )
    engine.dispose()
    missing = _differences(manifest.row_counts, counts)
    if missing:
        raise BackupError("The restored row counts differ from the manifest: " + "; ".join(missing))
    if revision != manifest.alembic_revision:
        raise BackupError(
            f"The restored database is at revision {revision}, the manifest says {manifest.alembic_revision}."
        )
    upgraded_to = None
    if revision != head:
        progress.note(f"The backup is at schema revision {revision}; upgrading to {head}.")
        upgrade(directory=str(app.extensions["migrate"].directory))
        upgraded_to = head
    backend = backend_for(app)
    session = db.session()
    chunks = reindex_chunks(session)
    with progress.stage("Rebuilding the search index", len(chunks)) as advance:
        indexed = reindex_everything(session, backend, _advancing(chunks, advance))
    session.commit()
    return RestoreReport(
        manifest=manifest,
        row_counts=counts,
        upgraded_to=upgraded_to,
        indexed=indexed,
        backend=backend.name,
        seconds=round(time.monotonic() - started, 3),
    )


def _advancing(chunks: list[list[str]], advance: Callable[[int], None]) -> Iterator[list[str]]:
    for chunk in chunks:
        yield chunk
        advance(1)
