"""PostgreSQL: `pg_dump` from an exported snapshot while the app writes, `pg_restore` into an empty database."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from app.backup.common import BackupError, Progress

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
# Fail instead of waiting forever when a migration holds a table's lock at the start of the dump.
LOCK_WAIT_TIMEOUT = "60s"
CLIENT_PACKAGE = "postgresql-client-{major}"


def server_major(connection: Connection) -> int:
    """Return the server's major version (15 for 15.4)."""
    return int(connection.scalar(text("SHOW server_version_num")) or 0) // 10_000


def _major(version: str) -> int:
    match = re.search(r"(\d+)(?:\.\d+)?", version)
    return int(match.group(1)) if match else 0


def client_tool(name: str, needed_major: int) -> tuple[str, str]:
    """Find `pg_dump` or `pg_restore` and check it can work with a server (or archive) of `needed_major`.

    Returns the program's path and its version.

    Raises:
        BackupError: when it is not installed or older than needed.
    """
    path = shutil.which(name)
    package = CLIENT_PACKAGE.format(major=needed_major)
    if path is None:
        raise BackupError(
            f"{name} was not found on PATH: install the PostgreSQL client tools of major version {needed_major} "
            f"or later (on Debian or Ubuntu: apt-get install {package}) and try again."
        )
    answer = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    version = answer.stdout.strip().rsplit(" ", 1)[-1] if answer.returncode == 0 else ""
    if _major(version) < needed_major:
        # pg_dump refuses servers newer than itself, and pg_restore archives from a newer pg_dump.
        raise BackupError(
            f"{path} is version {version or 'unknown'}, older than the PostgreSQL {needed_major} it must work with: "
            f"install {package} (or later) and put it first on PATH."
        )
    return path, version


def libpq_target(url: URL) -> tuple[str, dict[str, str]]:
    """Return a libpq connection URI for the tools and their environment, with the password kept off argv."""
    plain = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    env.setdefault("PGAPPNAME", "accord-backup")
    return plain, env


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tables(connection: Connection) -> list[tuple[str, str]]:
    """Return (schema, table) for every table outside PostgreSQL's own schemas."""
    rows = connection.execute(
        text("SELECT schemaname, tablename FROM pg_tables WHERE schemaname <> ALL(:system) ORDER BY 1, 2"),
        {"system": list(SYSTEM_SCHEMAS)},
    )
    return [(str(schema), str(table)) for schema, table in rows]


def row_counts(connection: Connection) -> dict[str, int]:
    """Count the rows of every table; tables outside `public` are named schema.table."""
    counts = {}
    for schema, table in tables(connection):
        name = table if schema == "public" else f"{schema}.{table}"
        # Identifiers cannot be bound as parameters; these come from pg_tables and are quoted.
        counts[name] = int(connection.scalar(text(f"SELECT count(*) FROM {_quoted(schema)}.{_quoted(table)}")) or 0)  # noqa: S608
    return counts


def alembic_revision(connection: Connection) -> str | None:
    """Return the database's Alembic revision, or None for a database never migrated."""
    if ("public", "alembic_version") not in tables(connection):
        return None
    revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
    return None if revision is None else str(revision)


def _run(command: Sequence[str], env: dict[str, str], marker: str, label: str, total: int, progress: Progress) -> None:
    """Run a client tool with --verbose, advancing progress at each line holding `marker`.

    Raises:
        BackupError: with the tool's own error line when it fails.
    """
    tail: deque[str] = deque(maxlen=20)
    errors: list[str] = []
    with (
        progress.stage(label, total) as advance,
        subprocess.Popen(  # noqa: S603
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace"
        ) as process,
    ):
        assert process.stderr is not None
        for line in process.stderr:
            line = line.rstrip()
            tail.append(line)
            if marker in line:
                advance(1)
            elif "error:" in line:
                errors.append(line)
        code = process.wait()
    if code != 0:
        detail = errors[0] if errors else (tail[-1] if tail else "no output")
        raise BackupError(f"{Path(command[0]).name} failed with exit code {code}: {detail}")


def create(engine: Engine, target: Path, progress: Progress) -> tuple[dict[str, int], str | None, dict[str, str]]:
    """Dump the database into `target` (custom format) as of one snapshot, counting rows in that snapshot.

    Returns the row counts, the Alembic revision and the versions of pg_dump and the server.

    Raises:
        BackupError: when pg_dump is missing, too old, or fails.
    """
    with engine.connect() as connection:
        major = server_major(connection)
        server = str(connection.scalar(text("SHOW server_version")))
    pg_dump, version = client_tool("pg_dump", major)
    uri, env = libpq_target(engine.url)
    with engine.connect() as connection:
        snapshot_connection = connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with snapshot_connection.begin():
            # This transaction stays open, idle, while pg_dump runs; a server-wide idle timeout must not end it.
            snapshot_connection.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            snapshot_connection.execute(text("SET LOCAL statement_timeout = 0"))
            # pg_dump reads through this transaction's snapshot, so the counts below describe exactly the dump.
            snapshot = str(snapshot_connection.scalar(text("SELECT pg_export_snapshot()")))
            revision = alembic_revision(snapshot_connection)
            counts = row_counts(snapshot_connection)
            command = [
                pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}",
                "--verbose", "--no-password", f"--file={target}", f"--dbname={uri}",
            ]  # fmt: skip
            _run(command, env, "dumping contents of table", "Dumping with pg_dump", len(counts), progress)
    return counts, revision, {"pg_dump": version, "server": server}


def is_empty(engine: Engine) -> tuple[bool, str]:
    """Say whether the database has no tables, and describe what it holds when it has."""
    with engine.connect() as connection:
        found = tables(connection)
    if not found:
        return True, ""
    return False, f"{len(found)} tables"


def archive_tables(pg_restore: str, backup: Path) -> int:
    """Count the table-data entries in a custom-format archive, for the progress bar."""
    listing = subprocess.run([pg_restore, "--list", str(backup)], capture_output=True, text=True, check=False)  # noqa: S603
    if listing.returncode != 0:
        raise BackupError(f"pg_restore cannot read {backup.name}: {listing.stderr.strip().splitlines()[-1:]}")
    return sum(1 for line in listing.stdout.splitlines() if " TABLE DATA " in line)


def restore(
    engine: Engine, backup: Path, dumped_by: str | None, progress: Progress, note: Callable[[str], None]
) -> tuple[dict[str, int], str | None]:
    """Restore the archive into the empty database in one transaction; return its row counts and revision.

    Raises:
        BackupError: when pg_restore is missing, too old for the server or the archive, or fails (then the
        single transaction leaves the database as empty as it was).
    """
    with engine.connect() as connection:
        major = server_major(connection)
    pg_restore, _version = client_tool("pg_restore", max(major, _major(dumped_by or "")))
    uri, env = libpq_target(engine.url)
    total = archive_tables(pg_restore, backup)
    command = [
        pg_restore, "--exit-on-error", "--single-transaction", "--no-owner", "--no-privileges", "--verbose",
        "--no-password", f"--dbname={uri}", str(backup),
    ]  # fmt: skip
    _run(command, env, "processing data for table", "Restoring with pg_restore", total, progress)
    # pg_restore leaves the planner without statistics until autovacuum comes round; gather them now.
    note("Analysing the restored tables.")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    with engine.connect() as connection:
        return row_counts(connection), alembic_revision(connection)
