"""Render Markdown to safe HTML with clause anchors, permalinks and a table of contents."""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.footnote import footnote_plugin

from app.drafting.clauses import headings_from_tokens

ALLOWED_SCHEMES = {"http", "https", "mailto"}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def is_safe_link(url: str) -> bool:
    """Allow relative links, fragments and http(s)/mailto; refuse every other scheme."""
    match = _SCHEME.match(url.strip())
    return match is None or match.group(1).lower() in ALLOWED_SCHEMES


def _heading_open(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    key = html.escape(token.meta["key"])
    return f'<{token.tag} id="{key}" class="clause-heading">'


def _heading_close(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    key = html.escape(token.meta["key"])
    title = html.escape(token.meta["title"])
    return f' <a class="permalink" href="#{key}" aria-label="{PERMALINK_LABEL}: {title}">#</a></{token.tag}>\n'


# Stored HTML (a version's, rendered once when it is cut) labels permalinks in English; pages relabel them.
PERMALINK_LABEL = "Permalink"
_PERMALINK = re.compile(r'(<a class="permalink" href="#[^"]*" aria-label=")Permalink: ')


def localise_permalinks(rendered_html: str, label: str) -> str:
    """Label the permalinks of rendered HTML in the reader's language ("Permalänk: Transparens")."""
    if label == PERMALINK_LABEL:
        return rendered_html
    prefix = html.escape(label)
    return _PERMALINK.sub(lambda match: f"{match.group(1)}{prefix}: ", rendered_html)


def _make_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(footnote_plugin)
    md.validateLink = is_safe_link  # type: ignore[method-assign]
    md.add_render_rule("heading_open", _heading_open)
    md.add_render_rule("heading_close", _heading_close)
    return md


_md = _make_parser()

_ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "img", "li",
    "ol", "p", "pre", "s", "section", "strong", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "*": {"id", "class"},
    "a": {"href", "title", "aria-label"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "td": {"style"},
    "th": {"style"},
}


@dataclass(frozen=True)
class Rendered:
    html: str
    toc: list[dict[str, Any]]


def _annotate_headings(tokens: list[Token]) -> list[dict[str, Any]]:
    headings = iter(headings_from_tokens(tokens))
    toc: list[dict[str, Any]] = []
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        heading = next(headings)
        inline = tokens[index + 1]
        if heading.explicit and inline.children:
            # Drop the `{#key}` from what readers see; it lives on in the id.
            last = inline.children[-1]
            if last.type == "text":
                last.content = re.sub(r"\s*\{#[a-z][a-z0-9-]*\}\s*$", "", last.content)
        meta = {"key": heading.key, "title": heading.title}
        token.meta = meta
        tokens[index + 2].meta = meta
        toc.append({"key": heading.key, "title": heading.title, "level": heading.level})
    return toc


def sanitize(raw_html: str) -> str:
    """Clean rendered HTML once more, in case a renderer rule ever lets something through."""
    return nh3.clean(
        raw_html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


def render_markdown(markdown: str) -> Rendered:
    """Render a document: raw HTML disabled, links checked, headings anchored, HTML sanitised."""
    env: dict[str, Any] = {}
    tokens = _md.parse(markdown, env)
    toc = _annotate_headings(tokens)
    return Rendered(html=sanitize(_md.renderer.render(tokens, _md.options, env)), toc=toc)


@functools.lru_cache(maxsize=64)
def render_cached(markdown: str) -> Rendered:
    """Render a document, reusing the result for text already rendered (keyed by the text itself)."""
    return render_markdown(markdown)


def render_fragment(markdown: str) -> str:
    """Render a short piece of Markdown (a comment, a summary) with the same safety rules."""
    return render_markdown(markdown).html
