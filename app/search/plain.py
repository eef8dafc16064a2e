"""The readable text of Markdown, as the reader sees it on the page: what search indexes and quotes in snippets.

Clauses and comments are written in Markdown, which a reader never sees: `**bold**`, `[a link](url)`, the
`{#key}` of a heading, list markers. Indexing the Markdown put those in snippets, and a quoted phrase across
emphasis ("keeping **documentation** current") did not match the phrase the reader sees. So the text indexed
is the rendered text: the Markdown is rendered with the pages' own renderer (`app.drafting.rendering`) and the
HTML turned into plain text, block by block.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from app.drafting.rendering import render_fragment

_BLOCKS = {
    "p", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "thead", "tbody",
    "tr", "section", "hr", "br", "div",
}  # fmt: skip
_CELLS = {"td", "th"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# What the renderer adds that is not text: a heading's permalink "#", a footnote's back link "↩︎" and the
# number of a footnote reference ("[1]"; the note itself stays, where it was written).
_SKIPPED_CLASSES = {"permalink", "footnote-backref", "footnote-ref"}
# A footnote reference whose note is in another clause renders as written: "[^1]".
_UNRESOLVED_FOOTNOTE = re.compile(r"\[\^[^\]\s]+\]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.heading: list[str] | None = None
        self.headings: list[str] = []
        self._skipping: list[str] = []  # the open tags whose content is skipped
        self._pre = 0  # inside <pre>, lines stay lines; elsewhere a line break within a block is a space

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        if self._skipping or classes & _SKIPPED_CLASSES:
            if tag not in ("br", "hr", "img"):
                self._skipping.append(tag)
            return
        if tag in _HEADINGS:
            self.heading = []
        if tag == "pre":
            self._pre += 1
        if tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append(" ")
        elif tag == "img":
            self._text(dict(attrs).get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if self._skipping[-1] == tag:
                self._skipping.pop()
            return
        if tag in _HEADINGS and self.heading is not None:
            self.headings.append(_clean("".join(self.heading)))
            self.heading = None
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._text(data if self._pre else data.replace("\n", " "))

    def _text(self, data: str) -> None:
        self.parts.append(data)
        if self.heading is not None:
            self.heading.append(data)


def _clean(text: str) -> str:
    """Collapse spaces within lines and blank lines between them."""
    lines = (_SPACES.sub(" ", line).strip() for line in _UNRESOLVED_FOOTNOTE.sub("", text).split("\n"))
    return "\n".join(line for line in lines if line)


def html_text(html: str) -> str:
    """The text of rendered (safe) HTML: one line per block, markup and the renderer's additions left out."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return _clean("".join(parser.parts))


def markdown_text(markdown: str) -> str:
    """The text a reader sees of a piece of Markdown (a comment, a quote, a proposed wording)."""
    return html_text(render_fragment(markdown)) if markdown.strip() else ""


def clause_text(markdown: str) -> tuple[str, str]:
    """Return the heading and the body text of a clause (its Markdown, heading line included), as read.

    The heading comes back without its `{#key}` and markup ("" when the clause has none, as an intro); the
    body is the rest of the clause, without the heading, which search shows and matches as the title.
    """
    if not markdown.strip():
        return "", ""
    parser = _Text()
    parser.feed(render_fragment(markdown))
    parser.close()
    heading = parser.headings[0] if parser.headings else ""
    text = _clean("".join(parser.parts))
    if heading and text.startswith(heading):
        text = text[len(heading) :].lstrip("\n")
    return heading, text


# A footnote's definition: "[^label]: text", with continuation lines indented by four spaces (or a tab).
_DEFINITION = re.compile(r"^\[\^([^\]\s]+)\]:[^\n]*(?:\n(?:[ ]{4}|\t)[^\n]*|\n[ \t]*(?=\n(?:[ ]{4}|\t)))*", re.M)
_REFERENCE = re.compile(r"\[\^([^\]\s]+)\](?!:)")


def footnote_definitions(markdown: str) -> dict[str, str]:
    """The footnote definitions of a whole text, by label (the first one wins, as in the renderer)."""
    notes: dict[str, str] = {}
    for match in _DEFINITION.finditer(markdown):
        notes.setdefault(match.group(1), match.group(0))
    return notes


def with_notes(clause_markdown: str, notes: dict[str, str]) -> str:
    """The clause with the definitions of the notes it refers to but does not hold (they are usually at the
    end of the document): rendered on its own, the clause would otherwise lose their text, which the page
    shows and search must find, under the clause that refers to it."""
    wanted = [label for label in dict.fromkeys(_REFERENCE.findall(clause_markdown)) if label in notes]
    missing = [notes[label] for label in wanted if not re.search(rf"^\[\^{re.escape(label)}\]:", clause_markdown, re.M)]
    return clause_markdown if not missing else clause_markdown.rstrip("\n") + "\n\n" + "\n\n".join(missing) + "\n"
