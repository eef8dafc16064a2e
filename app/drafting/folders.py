"""Import codes from, and export them to, folders of Markdown files with a `code.toml`."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import WorkingGroup
from app.audit.chain import content_hash
from app.drafting import service
from app.drafting.models import Code, CodeStatus, Version
from app.errors import Conflict, ValidationFailed

METADATA_FILE = "code.toml"


@dataclass(frozen=True)
class VersionSpec:
    number: int
    markdown: str
    label: str
    summary: str
    created_at: dt.datetime
    published: bool


@dataclass(frozen=True)
class CodeSpec:
    folder: Path
    slug: str
    title: str
    language: str
    status: str
    summary: str
    group_slug: str
    group_name: str
    versions: list[VersionSpec]
    consultation: tuple[dt.datetime, dt.datetime] | None = None


def _aware(value: Any, where: str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationFailed(
            f"{where}: created_at must be a date and time with a time zone, like 2024-11-14T10:00:00Z."
        )
    return value.astimezone(dt.UTC)


def read_folder(folder: Path) -> CodeSpec:
    """Read one code folder.

    Raises:
        ValidationFailed: when the metadata is missing, malformed or names a missing file.
    """
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        raise ValidationFailed(f"{folder}: no {METADATA_FILE} found.")
    try:
        meta = tomllib.loads(meta_path.read_text(encoding="utf-8"))
        versions = []
        for entry in sorted(meta.get("versions", []), key=lambda v: v["number"]):
            path = folder / entry["file"]
            versions.append(
                VersionSpec(
                    number=int(entry["number"]),
                    markdown=path.read_text(encoding="utf-8").replace("\r\n", "\n"),
                    label=entry.get("label", f"Version {entry['number']}"),
                    summary=entry.get("summary", ""),
                    created_at=_aware(entry["created_at"], str(meta_path)),
                    published=bool(entry.get("published", False)),
                )
            )
        numbers = [v.number for v in versions]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValidationFailed(f"{meta_path}: versions must be numbered 1, 2, 3 … without gaps.")
        return CodeSpec(
            folder=folder,
            slug=meta["slug"],
            title=meta["title"],
            language=meta.get("language", "en"),
            status=meta.get("status", CodeStatus.DRAFTING.value),
            summary=meta.get("summary", ""),
            group_slug=meta["working_group"]["slug"],
            group_name=meta["working_group"]["name"],
            versions=versions,
            consultation=(
                (
                    _aware(meta["consultation"]["opens_at"], str(meta_path)),
                    _aware(meta["consultation"]["closes_at"], str(meta_path)),
                )
                if "consultation" in meta
                else None
            ),
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError, FileNotFoundError) as error:
        raise ValidationFailed(f"{meta_path}: {error}") from error


def code_folders(path: Path) -> list[Path]:
    """Return `path` if it is a code folder, else its sub-folders that are."""
    if (path / METADATA_FILE).is_file():
        return [path]
    return sorted(p for p in path.iterdir() if (p / METADATA_FILE).is_file())


@dataclass
class LoadReport:
    codes_created: int = 0
    versions_created: int = 0
    versions_published: int = 0
    unchanged: int = 0


def load_codes(session: Session, specs: list[CodeSpec], *, progress: Callable[[int], None] | None = None) -> LoadReport:
    """Create what is missing from the given codes; running it twice changes nothing.

    `progress(n)` is told each time n more versions are handled (rendering a long version takes a while).

    Published versions are appended to the publication log in order of their dates, across codes.

    Raises:
        Conflict: when a stored version's text differs from its file (versions are immutable).
    """
    report = LoadReport()
    to_publish: list[tuple[dt.datetime, Version]] = []
    for spec in specs:
        group = session.scalars(select(WorkingGroup).where(WorkingGroup.slug == spec.group_slug)).first()
        if group is None:
            group = WorkingGroup(slug=spec.group_slug, name=spec.group_name)
            session.add(group)
            session.flush()
        code = session.scalars(select(Code).where(Code.slug == spec.slug)).first()
        if code is None:
            code = service.create_code(
                session, None, group=group, slug=spec.slug, title=spec.title, language=spec.language,
                summary=spec.summary, status=spec.status,
                working_text=spec.versions[-1].markdown if spec.versions else "",
            )  # fmt: skip
            if spec.consultation:
                code.consultation_opens_at, code.consultation_closes_at = spec.consultation
            report.codes_created += 1
        stored = {v.number: v for v in code.versions}
        for version_spec in spec.versions:
            version = stored.get(version_spec.number)
            if version is None:
                version = service.cut_version(
                    session, None, code, label=version_spec.label, summary=version_spec.summary,
                    markdown=version_spec.markdown, created_at=version_spec.created_at,
                )  # fmt: skip
                report.versions_created += 1
            elif version.content_sha256 != content_hash(version_spec.markdown):
                raise Conflict(
                    f"{spec.slug} v{version_spec.number} is stored with a different text than "
                    f"{spec.folder}; versions are immutable, so add a new version instead."
                )
            else:
                report.unchanged += 1
            if version_spec.published and not version.is_published:
                to_publish.append((version_spec.created_at, version))
            if progress is not None:
                progress(1)
    for when, version in sorted(to_publish, key=lambda item: (item[0], item[1].number)):
        service.publish_version(session, None, version, at=when)
        report.versions_published += 1
    return report


def export_code(code: Code, folder: Path) -> list[Path]:
    """Write a code's metadata and every version's Markdown into `folder`, in the format `read_folder` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    versions = []
    for version in code.versions:
        name = f"v{version.number}.md"
        (folder / name).write_text(version.markdown, encoding="utf-8")
        written.append(folder / name)
        versions.append(
            {
                "number": version.number,
                "file": name,
                "label": version.label,
                "summary": version.change_summary,
                "created_at": version.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "published": version.is_published,
            }
        )
    meta = {
        "slug": code.slug,
        "title": code.title,
        "language": code.language,
        "status": code.status.value,
        "summary": code.summary,
        "working_group": {"slug": code.working_group.slug, "name": code.working_group.name},
        "versions": versions,
    }
    if code.consultation_opens_at and code.consultation_closes_at:
        meta["consultation"] = {
            "opens_at": code.consultation_opens_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "closes_at": code.consultation_closes_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
    (folder / METADATA_FILE).write_text(tomli_w.dumps(meta), encoding="utf-8")
    written.append(folder / METADATA_FILE)
    return written
