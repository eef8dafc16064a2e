"""Text anchors for comments, and carrying them into a new version of the text.

The order follows Hypothesis's: map the offsets through the diff between the two texts, check the quote is
still there; otherwise search for the quote, weighting prefix and suffix, first in the same clause; a quote
found only in another clause counts only with matching context. A passage that changed is *outdated*, one
that is gone is *orphaned*; a comment is never silently attached to a passage that merely looks alike.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from diff_match_patch import diff_match_patch

from app.drafting.diffing import word_diff

CONTEXT_CHARS = 32
OUTDATED_SIMILARITY = 0.5
SEARCH_WINDOW = 200


@dataclass(frozen=True)
class Anchor:
    quote: str
    prefix: str
    suffix: str
    start: int | None
    end: int | None


@dataclass(frozen=True)
class Placement:
    clause_key: str | None
    start: int | None
    end: int | None
    confidence: float
    state: str  # "anchored", "outdated" or "orphaned"
    applied: bool = False


def make_anchor(text: str, start: int, end: int) -> Anchor:
    """Build an anchor for text[start:end] with its surrounding context.

    Raises:
        ValueError: when the range is empty or outside the text.
    """
    if not (0 <= start < end <= len(text)):
        raise ValueError("The selected passage is not part of this clause.")
    return Anchor(
        quote=text[start:end],
        prefix=text[max(0, start - CONTEXT_CHARS) : start],
        suffix=text[end : end + CONTEXT_CHARS],
        start=start,
        end=end,
    )


def locate_quote(text: str, quote: str, prefix: str = "", suffix: str = "") -> Anchor | None:
    """Find a quoted passage in a clause (for clients that send only the quote); None if absent or ambiguous."""
    candidates = _occurrences(text, quote)
    if not candidates:
        return None
    scored = sorted(((_context_score(text, s, s + len(quote), prefix, suffix), s) for s in candidates), reverse=True)
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None
    start = scored[0][1]
    return make_anchor(text, start, start + len(quote))


def _occurrences(text: str, quote: str) -> list[int]:
    found, index = [], text.find(quote)
    while index != -1 and quote:
        found.append(index)
        index = text.find(quote, index + 1)
    return found


def _common_suffix(a: str, b: str) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def _context_score(text: str, start: int, end: int, prefix: str, suffix: str) -> float:
    """Return 0–1: how much of the stored prefix and suffix surround text[start:end]."""
    total = len(prefix) + len(suffix)
    if total == 0:
        return 0.0
    before = text[max(0, start - len(prefix)) : start]
    after = text[end : end + len(suffix)]
    return (_common_suffix(before, prefix) + _common_prefix(after, suffix)) / total


def _similarity(dmp: diff_match_patch, a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    distance = dmp.diff_levenshtein(dmp.diff_main(a, b, False))
    return max(0.0, 1.0 - distance / max(len(a), len(b)))


@functools.lru_cache(maxsize=2048)
def clause_diff(old_text: str, new_text: str) -> list[tuple[int, str]]:
    """Diff two versions of a clause by words (versions never change, so the result is cached per process)."""
    if old_text == new_text:
        return [(0, old_text)] if old_text else []
    return list(word_diff(old_text, new_text))


def reanchor(
    anchor: Anchor,
    clause_key: str,
    old_text: str,
    new_clauses: dict[str, str],
    diff_cache: dict[tuple[str, str], list[tuple[int, str]]] | None = None,
) -> Placement:
    """Place an anchor made in `old_text` (clause `clause_key`) into a new version's clauses.

    `diff_cache` lets many comments on one clause share one diff of its old and new text.
    """
    new_text = new_clauses.get(clause_key)
    if not anchor.quote or anchor.start is None or anchor.end is None:
        # A comment on a whole clause follows the clause's key.
        if new_text is None:
            return Placement(None, None, None, 0.0, "orphaned")
        return Placement(clause_key, None, None, 1.0, "anchored")

    dmp = diff_match_patch()
    dmp.Diff_Timeout = 0.5
    if new_text is not None:
        cache = {} if diff_cache is None else diff_cache
        diffs = cache.get((old_text, new_text))
        if diffs is None:
            diffs = clause_diff(old_text, new_text)
            cache[(old_text, new_text)] = diffs
        start, end = dmp.diff_xIndex(diffs, anchor.start), dmp.diff_xIndex(diffs, anchor.end)
        # Check at the mapped start: text inserted right after the quote moves the mapped end, not the quote.
        if new_text[start : start + len(anchor.quote)] == anchor.quote:
            return Placement(clause_key, start, start + len(anchor.quote), 1.0, "anchored")
        found = _best_exact(new_text, anchor, near=start)
        if found is not None:
            (s, e), score = found
            return Placement(clause_key, s, e, round(0.8 + 0.2 * score, 3), "anchored")
        moved = _moved(anchor, clause_key, new_clauses)
        if moved is not None:
            return moved
        return _changed_passage(dmp, anchor, clause_key, new_text, start, end)
    return _moved(anchor, clause_key, new_clauses) or Placement(None, None, None, 0.0, "orphaned")


def _moved(anchor: Anchor, clause_key: str, new_clauses: dict[str, str]) -> Placement | None:
    """Find the passage in another clause (split off or moved), but only together with its context."""
    best: tuple[float, str, int] | None = None
    for key, text in new_clauses.items():
        if key == clause_key:
            continue
        for s in _occurrences(text, anchor.quote):
            score = _context_score(text, s, s + len(anchor.quote), anchor.prefix, anchor.suffix)
            if score >= 0.5 and (best is None or score > best[0]):
                best = (score, key, s)
    if best is None:
        return None
    score, key, s = best
    return Placement(key, s, s + len(anchor.quote), round(0.7 + 0.3 * score, 3), "anchored")


def _best_exact(text: str, anchor: Anchor, *, near: int) -> tuple[tuple[int, int], float] | None:
    candidates = _occurrences(text, anchor.quote)
    if not candidates:
        return None
    scored = [
        (_context_score(text, s, s + len(anchor.quote), anchor.prefix, anchor.suffix), -abs(s - near), s)
        for s in candidates
    ]
    scored.sort(reverse=True)
    best_score, _, start = scored[0]
    # Two equally plausible places and no context to tell them apart: do not guess.
    if len(scored) > 1 and best_score == scored[1][0] and best_score < 0.5:
        return None
    if len(scored) == 1 and best_score == 0.0 and (anchor.prefix or anchor.suffix):
        return None
    return (start, start + len(anchor.quote)), best_score


def _changed_passage(
    dmp: diff_match_patch, anchor: Anchor, clause_key: str, text: str, start: int, end: int
) -> Placement:
    """The clause exists but the exact quote does not: outdated where the passage now is, or orphaned."""
    window_start, window_end = max(0, start - SEARCH_WINDOW), min(len(text), max(end, start) + SEARCH_WINDOW)
    end = max(end, start)
    candidate = text[start:end]
    similarity = _similarity(dmp, anchor.quote, candidate) if candidate else 0.0
    if similarity < OUTDATED_SIMILARITY:
        # Look around the mapped place for something like the quote (its first 32 characters).
        dmp.Match_Threshold = 0.4
        dmp.Match_Distance = SEARCH_WINDOW
        pattern = anchor.quote[: dmp.Match_MaxBits]
        found = dmp.match_main(text[window_start:window_end], pattern, start - window_start)
        if found != -1:
            s = window_start + found
            candidate = text[s : s + len(anchor.quote)]
            found_similarity = _similarity(dmp, anchor.quote, candidate)
            if found_similarity > similarity:
                start, end, similarity = s, s + len(candidate), found_similarity
    if similarity >= OUTDATED_SIMILARITY:
        return Placement(clause_key, start, end, round(similarity * 0.8, 3), "outdated")
    return Placement(clause_key, None, None, 0.0, "orphaned")


def proposal_applied(anchor: Anchor, proposed: str, placement: Placement, new_text: str | None) -> bool:
    """Tell whether the new text, at the comment's place, now reads as the proposed replacement."""
    if not proposed or new_text is None or anchor.start is None:
        return False
    # The proposal must stand where the quote stood: framed by the old prefix and by the old suffix.
    return any(_framed(new_text, s, s + len(proposed), anchor) for s in _occurrences(new_text, proposed))


def _framed(text: str, start: int, end: int, anchor: Anchor) -> bool:
    before = not anchor.prefix or _context_score(text, start, end, anchor.prefix, "") >= 0.5
    after = not anchor.suffix or _context_score(text, start, end, "", anchor.suffix) >= 0.5
    return before and after


_INLINE_MARKS = set("*_`~")
_LINE_START = re.compile(r"[ \t]*(?:#{1,6}[ \t]+|[-*+][ \t]+|\d+[.)][ \t]+|>[ \t]?)")
_FOOTNOTE_REF = re.compile(r"\[\^[^\]]+\]")
_RENDERED_FOOTNOTE = re.compile(r"\[\d+\]")
_HEADING_KEY = re.compile(r"[ \t]*\{#[a-z][a-z0-9-]*\}[ \t]*$", re.MULTILINE)


def _plain_with_map(markdown: str) -> tuple[str, list[int]]:
    """Return the text a reader sees for some Markdown, and for each of its characters the Markdown offset.

    Approximate on purpose: it drops emphasis and code marks, link targets, footnote references, list and
    heading markers and heading keys, and folds white space — enough to find a passage selected on the page.
    """
    skip = [False] * len(markdown)
    for pattern in (_FOOTNOTE_REF, _HEADING_KEY):
        for match in pattern.finditer(markdown):
            for i in range(match.start(), match.end()):
                skip[i] = True
    for match in re.finditer(r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)", markdown):
        for i in range(match.start() + 1, match.end()):
            skip[i] = True
    line_start = 0
    for line in markdown.splitlines(keepends=True):
        marker = _LINE_START.match(line)
        if marker:
            for i in range(line_start, line_start + marker.end()):
                skip[i] = True
        line_start += len(line)
    chars: list[str] = []
    offsets: list[int] = []
    for i, char in enumerate(markdown):
        if skip[i] or char in _INLINE_MARKS or char in "[]":
            continue
        if char.isspace():
            if chars and chars[-1] == " ":
                continue
            char = " "
        chars.append(char)
        offsets.append(i)
    return "".join(chars), offsets


def locate_rendered_quote(markdown: str, quote: str) -> Anchor | None:
    """Find a passage selected in the rendered page inside the clause's Markdown; None if absent or ambiguous."""
    plain, offsets = _plain_with_map(markdown)
    wanted = re.sub(r"\s+", " ", _RENDERED_FOOTNOTE.sub("", quote)).strip()
    wanted = "".join(char for char in wanted if char not in _INLINE_MARKS)
    if not wanted:
        return None
    first = plain.find(wanted)
    if first == -1 or plain.find(wanted, first + 1) != -1:
        return None
    start, end = offsets[first], offsets[first + len(wanted) - 1] + 1
    return make_anchor(markdown, start, end)
