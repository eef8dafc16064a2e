"""The publication hash chain: pure functions, no database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class ChainLink:
    seq: int
    code_slug: str
    version_number: int
    content_sha256: str
    published_at: dt.datetime
    previous_hash: str
    entry_hash: str


def content_hash(markdown: str) -> str:
    """Return the SHA-256 of a version's Markdown, as UTF-8."""
    return hashlib.sha256(markdown.encode()).hexdigest()


def entry_hash(
    *, seq: int, code_slug: str, version_number: int, content_sha256: str, published_at: dt.datetime, previous_hash: str
) -> str:
    """Hash one entry's fields together with the previous entry's hash, in a canonical JSON form."""
    payload = {
        "seq": seq,
        "code": code_slug,
        "version": version_number,
        "content_sha256": content_sha256,
        "published_at": published_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "previous_hash": previous_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    problems: list[str]


def verify_links(links: Iterable[ChainLink], contents: dict[tuple[str, int], str] | None = None) -> ChainReport:
    """Check every link's hash and its pointer to the previous one; optionally recompute content hashes.

    `contents` maps (code slug, version number) to the Markdown actually stored now, so a version changed
    after publication is caught too.
    """
    problems: list[str] = []
    previous, count, expected_seq = GENESIS_HASH, 0, 1
    seen: set[tuple[str, int]] = set()
    for link in links:
        seen.add((link.code_slug, link.version_number))
        count += 1
        name = f"entry {link.seq} ({link.code_slug} v{link.version_number})"
        if link.seq != expected_seq:
            problems.append(f"{name}: sequence number {link.seq}, expected {expected_seq}")
        expected_seq = link.seq + 1
        if link.previous_hash != previous:
            problems.append(f"{name}: previous hash does not match the entry before it")
        recomputed = entry_hash(
            seq=link.seq,
            code_slug=link.code_slug,
            version_number=link.version_number,
            content_sha256=link.content_sha256,
            published_at=link.published_at,
            previous_hash=link.previous_hash,
        )
        if recomputed != link.entry_hash:
            problems.append(f"{name}: entry hash does not match its fields")
        if contents is not None:
            stored = contents.get((link.code_slug, link.version_number))
            if stored is None:
                problems.append(f"{name}: the published version is missing")
            elif content_hash(stored) != link.content_sha256:
                problems.append(f"{name}: the version's text differs from what was published")
        previous = link.entry_hash
    if contents is not None:
        # A truncated log would otherwise verify: every published version must have its entry.
        for slug, number in sorted(contents.keys() - seen):
            problems.append(f"{slug} v{number}: published, but no publication-log entry records it")
    return ChainReport(ok=not problems, entries=count, problems=problems)
