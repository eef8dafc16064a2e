"""What a version page shows of a version's text, kept per process.

A version never changes once cut, so neither do its HTML, its table of contents or its clause headings:
a process needs them from the database only the first time it shows that version. The HTML alone is
hundreds of kilobytes and the table of contents a JSON list of hundreds of entries, which would
otherwise be read, decoded and escaped again on every request.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

# Where a page template writes the table of contents and the document; `VersionText.fill` puts the cached
# UTF-8 bytes there after rendering. Encoding half a megabyte of text on every request costs as much as
# the rest of the template, and the text never changes. The marker is random per process and an HTML
# comment, which no escaped value and no rendered Markdown (raw HTML is off) can contain.
_TOKEN = secrets.token_hex(12)
TOC_SLOT = Markup(f"<!--toc-{_TOKEN}-->")  # noqa: S704 - a constant with no outside input
DOCUMENT_SLOT = Markup(f"<!--document-{_TOKEN}-->")  # noqa: S704 - a constant with no outside input


@dataclass(frozen=True)
class VersionText:
    """The reader-independent part of a version page: sanitised HTML, the table of contents, clause headings."""

    # Both UTF-8: the document's HTML as sanitised at cut time, and the table of contents' list.
    html: bytes
    toc_html: bytes
    # (key, heading) of every clause, in document order.
    clauses: tuple[tuple[str, str], ...]
    headings: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headings", dict(self.clauses))

    @property
    def size(self) -> int:
        """Return roughly how many bytes the entry holds, to bound the cache."""
        return len(self.html) + len(self.toc_html) + sum(len(key) + len(heading) for key, heading in self.clauses)

    def clause_title(self, key: str) -> str:
        """Return a clause's heading, or its key when it has none or is not in this version."""
        return self.headings.get(key) or key

    def fill(self, page: str) -> bytes:
        """Return a rendered page as UTF-8 with the table of contents and the document in their slots.

        Raises:
            ValueError: unless the page holds each slot exactly once, table of contents first.
        """
        if page.count(TOC_SLOT) != 1 or page.count(DOCUMENT_SLOT) != 1:
            raise ValueError("a version page must hold each text slot exactly once")
        head, _, rest = page.partition(TOC_SLOT)
        middle, found, tail = rest.partition(DOCUMENT_SLOT)
        if not found:
            raise ValueError("a version page must hold the table of contents before the document")
        return b"".join((head.encode(), self.toc_html, middle.encode(), self.html, tail.encode()))


def toc_markup(toc: Iterable[dict[str, Any]], language: str) -> Markup:
    """Return a table of contents as a list of links to the clause anchors (the document title left out)."""
    lang = escape(language)
    items = "".join(
        f'<li class="toc-level-{int(entry["level"])}"><a href="#{escape(entry["key"])}" lang="{lang}">'
        f"{escape(entry['title'])}</a></li>"
        for entry in toc
        if entry["level"] > 1
    )
    return Markup(f"<ol>{items}</ol>")  # noqa: S704 - every part is escaped above


def build_version_text(
    html: str, toc: Iterable[dict[str, Any]], language: str, clauses: Iterable[tuple[str, str]]
) -> VersionText:
    """Assemble a version's page text from its stored HTML (sanitised when the version was cut), TOC and clauses."""
    return VersionText(
        html=html.encode(),
        toc_html=toc_markup(toc, language).encode(),
        clauses=tuple((key, heading) for key, heading in clauses),
    )


# The key is (version id, content SHA-256, code language, permalink label). The hash guards against a reused
# id serving another version's text (a database rebuilt or restored while the process runs; test databases);
# the language is part of the table of contents' markup, the label (in the reader's language) of the text's.
Key = tuple[int, str, str, str]


class VersionTextCache:
    """A thread-safe least-recently-used map of version texts, bounded by entries and by characters."""

    def __init__(self, max_entries: int = 64, max_chars: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[Key, VersionText] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Key, load: Callable[[], VersionText]) -> VersionText:
        """Return the text for `key`, calling `load` (outside the lock) when this process has not kept it."""
        with self._lock:
            text = self._entries.get(key)
            if text is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return text
            self.misses += 1
        # Two threads missing at once both load; the results are equal, and the last one stored wins.
        text = load()
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._chars -= previous.size
            self._entries[key] = text
            self._chars += text.size
            while self._entries and (len(self._entries) > self.max_entries or self._chars > self.max_chars):
                _, evicted = self._entries.popitem(last=False)
                self._chars -= evicted.size
        return text

    def clear(self) -> None:
        """Forget every entry (tests; never needed for correctness, since versions never change)."""
        with self._lock:
            self._entries.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)


version_texts = VersionTextCache()
