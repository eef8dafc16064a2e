"""`flask backup create | verify | restore`: the command-line face of app/backup/service.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.backup.common import BackupError
from app.backup.manifest import read_manifest, verify_files
from app.backup.service import create_backup, restore_backup
from app.config import INSTANCE

backup = AppGroup("backup", help="Back up the database while the app serves, and restore a backup.")


class ClickProgress:
    """Progress bars and notes on stderr, so stdout keeps only the result lines."""

    @contextmanager
    def stage(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        with click.progressbar(length=max(total, 1), label=label, file=sys.stderr) as bar:
            yield bar.update

    def note(self, message: str) -> None:
        click.echo(message, err=True)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _default_output() -> Path:
    return Path(os.environ.get("BACKUP_DIR") or INSTANCE / "backups")


@backup.command("create")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=_default_output,
    show_default="$BACKUP_DIR or instance/backups",
    help="Folder in which the new backup folder is made.",
)
def create(output: Path) -> None:
    """Write a consistent backup of the live database and its manifest into a new folder under --output."""
    try:
        folder, manifest = create_backup(current_app._get_current_object(), output, ClickProgress())  # type: ignore[attr-defined]
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    files = ", ".join(f"{entry.name} ({_size(entry.bytes)})" for entry in manifest.files)
    click.echo(
        f"Backup written to {folder}: {len(manifest.row_counts)} tables, {sum(manifest.row_counts.values())} rows, "
        f"{files}, schema revision {manifest.alembic_revision}, in {manifest.seconds:.1f} s."
    )


@backup.command("verify")
@click.argument("folder", type=click.Path(path_type=Path))
def verify(folder: Path) -> None:
    """Check a backup folder's files against the checksums in its manifest, without restoring it."""
    try:
        manifest = read_manifest(folder)
        verify_files(folder, manifest, ClickProgress())
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{folder}: intact ({manifest.database_kind}, created {manifest.created_at}, schema revision "
        f"{manifest.alembic_revision}, {sum(manifest.row_counts.values())} rows)."
    )


@backup.command("restore")
@click.argument("folder", type=click.Path(path_type=Path))
def restore(folder: Path) -> None:
    """Restore the backup in FOLDER into the configured database, which must be empty, and rebuild search."""
    try:
        report = restore_backup(current_app._get_current_object(), folder, ClickProgress())  # type: ignore[attr-defined]
    except BackupError as error:
        raise click.ClickException(str(error)) from error
    manifest = report.manifest
    upgraded = f", then upgraded to {report.upgraded_to}" if report.upgraded_to else ""
    click.echo(
        f"Restored {folder} (taken {manifest.created_at}, schema revision {manifest.alembic_revision}{upgraded}): "
        f"{len(report.row_counts)} tables and {sum(report.row_counts.values())} rows, matching the manifest; "
        f"{report.indexed} sources indexed with the {report.backend} backend, in {report.seconds:.1f} s."
    )
