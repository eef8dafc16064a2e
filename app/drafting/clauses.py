"""Split Markdown into heading-delimited clauses with stable keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

KEY_ATTRIBUTE = re.compile(r"\s*\{#([a-z][a-z0-9-]{0,79})\}\s*$")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,79}$")
INTRO_KEY = "intro"


@dataclass(frozen=True)
class Heading:
    level: int
    title: str
    key: str
    explicit: bool
    line: int


@dataclass(frozen=True)
class Clause:
    key: str
    heading: str
    level: int
    ordinal: int
    markdown: str

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(self.markdown.encode()).hexdigest()


class DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"The clause key {{#{key}}} is used by more than one heading; each key must be unique.")
        self.key = key


def slugify(text: str) -> str:
    """Derive a clause key from heading text: lowercase ASCII letters, digits and hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:72].strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"s-{slug}" if slug else "section"
    return slug


def split_key_attribute(title: str) -> tuple[str, str | None]:
    """Return the heading text without a trailing `{#key}` and the key, if any."""
    match = KEY_ATTRIBUTE.search(title)
    if not match:
        return title.strip(), None
    return title[: match.start()].strip(), match.group(1)


def headings_from_tokens(tokens: list[Token], *, strict: bool = False) -> list[Heading]:
    """Collect the headings of a parsed document, each with its explicit or derived key.

    Explicit keys win; derived keys avoid every explicit key and each other by a numeric suffix.

    Raises:
        DuplicateKeyError: when `strict` and two headings carry the same explicit key.
    """
    raw: list[tuple[int, str, str | None, int]] = []
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        title, key = split_key_attribute(tokens[index + 1].content)
        line = token.map[0] if token.map else 0
        raw.append((int(token.tag[1]), title, key, line))

    explicit = [key for _, _, key, _ in raw if key]
    taken: set[str] = {INTRO_KEY}
    for key in explicit:
        if key in taken and strict:
            raise DuplicateKeyError(key)
        taken.add(key)

    headings: list[Heading] = []
    used: set[str] = set()
    for level, title, key, line in raw:
        if key and key not in used:
            headings.append(Heading(level, title, key, True, line))
            used.add(key)
            continue
        base = slugify(title)
        candidate, suffix = base, 2
        while candidate in taken or candidate in used:
            candidate, suffix = f"{base}-{suffix}", suffix + 1
        used.add(candidate)
        headings.append(Heading(level, title, candidate, False, line))
    return headings


# Parse with the renderer's block rules, so a construct is a heading here exactly when it is one there.
_parser = MarkdownIt("commonmark").enable("table")
# Lines as markdown-it counts them: only \n, \r\n and \r end a line (str.splitlines also splits on \u2028 …).
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+\Z")


def split_clauses(markdown: str, *, strict: bool = True) -> list[Clause]:
    """Split a document into clauses: each heading starts one and it runs to the next heading.

    Text before the first heading becomes the clause `intro`.

    Raises:
        DuplicateKeyError: when two headings carry the same explicit key.
    """
    lines = _LINE.findall(markdown)
    headings = headings_from_tokens(_parser.parse(markdown), strict=strict)
    clauses: list[Clause] = []
    first_line = headings[0].line if headings else len(lines)
    intro = "".join(lines[:first_line])
    if intro:
        clauses.append(Clause(INTRO_KEY, "", 0, 0, intro))
    for index, heading in enumerate(headings):
        end = headings[index + 1].line if index + 1 < len(headings) else len(lines)
        text = "".join(lines[heading.line : end])
        clauses.append(Clause(heading.key, heading.title, heading.level, len(clauses), text))
    return clauses
