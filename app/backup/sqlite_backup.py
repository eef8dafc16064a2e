"""SQLite: copy a live database with the backup API, and copy a backup back into an empty database file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.backup.common import BackupError, Progress

# Pages per backup step (4 MB at the default page size): small enough for a progress bar to move, and
# since the copy runs inside one read transaction, writers committing between steps never restart it.
PAGES_PER_STEP = 1024
BUSY_TIMEOUT_MS = 10_000


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    else:
        connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return connection


def table_names(connection: sqlite3.Connection) -> list[str]:
    """Return the database's own tables, without SQLite's internal ones."""
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    )
    return [name for (name,) in rows]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def row_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """Count the rows of every table."""
    counts = {}
    for name in table_names(connection):
        # Identifiers cannot be bound as parameters; the name comes from sqlite_master and is quoted.
        counts[name] = connection.execute(f"SELECT count(*) FROM {_quoted(name)}").fetchone()[0]  # noqa: S608
    return counts


def alembic_revision(connection: sqlite3.Connection) -> str | None:
    """Return the database's Alembic revision, or None for a database never migrated."""
    if "alembic_version" not in table_names(connection):
        return None
    row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, label: str, progress: Progress) -> None:
    total = source.execute("PRAGMA page_count").fetchone()[0]
    with progress.stage(label, total) as advance:
        copied = 0

        def report(status: int, remaining: int, pages: int) -> None:
            nonlocal copied
            done = pages - remaining
            advance(max(0, done - copied))
            copied = done

        source.backup(target, pages=PAGES_PER_STEP, progress=report)


def create(database: Path, target: Path, progress: Progress) -> tuple[dict[str, int], str | None, dict[str, str]]:
    """Copy the live database at `database` into the new file `target`, consistent as of one moment.

    Returns the row counts and Alembic revision read from the copy, and the SQLite version used.

    Raises:
        BackupError: when there is no database file or the copy fails its integrity check.
    """
    if not database.is_file():
        raise BackupError(f"There is no SQLite database at {database}.")
    source = _connect(database)
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        # A read transaction held for the whole copy pins one snapshot: in WAL mode writers carry on, and the
        # backup sees none of their commits (without it, every commit by another connection restarts the copy).
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        _copy(source, copy, "Copying the SQLite database", progress)
        source.execute("COMMIT")
        # The copy inherits WAL mode; a rollback journal keeps the backup one self-contained file.
        copy.execute("PRAGMA journal_mode=DELETE")
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"The copy of {database} failed SQLite's integrity check: {check}")
        counts, revision = row_counts(copy), alembic_revision(copy)
    finally:
        copy.close()
        source.close()
    return counts, revision, {"sqlite": sqlite3.sqlite_version}


def is_empty(database: Path) -> tuple[bool, str]:
    """Say whether the database file is absent or has no tables, and describe what it holds when it has."""
    if not database.exists() or database.stat().st_size == 0:
        return True, ""
    connection = _connect(database)
    try:
        counts = row_counts(connection)
    finally:
        connection.close()
    if not counts:
        return True, ""
    return False, f"{len(counts)} tables, {sum(counts.values())} rows"


def restore(backup: Path, database: Path, progress: Progress) -> tuple[dict[str, int], str | None]:
    """Copy the backup file into the empty database at `database`; return its row counts and revision now.

    Raises:
        BackupError: when the restored database fails its integrity check.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    source = _connect(backup, read_only=True)
    target = _connect(database)
    try:
        # Through SQLite rather than a file copy, so the file's locks are honoured and any stale WAL of the
        # empty target cannot be replayed over the restored pages.
        _copy(source, target, "Restoring the SQLite database", progress)
        target.execute("PRAGMA journal_mode=WAL")
        check = target.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"The restored database failed SQLite's integrity check: {check}")
        return row_counts(target), alembic_revision(target)
    finally:
        target.close()
        source.close()
