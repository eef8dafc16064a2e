"""Rendering Markdown to safe HTML: escaping, link schemes, clause anchors, tables, footnotes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.drafting.clauses import INTRO_KEY, split_clauses
from app.drafting.rendering import (
    is_safe_link,
    render_cached,
    render_fragment,
    render_markdown,
    sanitize,
)

HEADING_IDS = re.compile(r'<h[1-6] id="([^"]*)"')
HREFS = re.compile(r'href="([^"]*)"')


def heading_ids(markdown: str) -> list[str]:
    return HEADING_IDS.findall(render_markdown(markdown).html)


def clause_keys(markdown: str) -> list[str]:
    return [c.key for c in split_clauses(markdown, strict=False) if c.key != INTRO_KEY]


# --- raw HTML ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "markdown",
    [
        "<script>alert(1)</script>",
        "Text <script>alert(1)</script> inline.",
        "<div>\n<script>alert(1)</script>\n</div>",
        "# Heading <script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
    ],
)
def test_raw_html_is_escaped_not_rendered(markdown):
    html = render_markdown(markdown).html

    assert "<script" not in html
    assert "<img" not in html
    assert "<div" not in html
    assert "&lt;" in html


def test_heading_title_with_markup_is_escaped_in_the_permalink_label():
    html = render_markdown('# A "quoted" <b>title</b>').html

    assert "<b>" not in html
    assert 'aria-label="Permalink: A &quot;quoted&quot; &lt;b&gt;title&lt;/b&gt;"' in html


# --- links ---------------------------------------------------------------------------------------

DANGEROUS_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "JAVASCRIPT:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DaTa:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "javascript&#58;alert(1)",
]
LINK_FORMS = {
    "inline": "[click]({url})",
    "inline-leading-spaces": "[click](   {url})",
    "angle-brackets": "[click](<{url}>)",
    "angle-brackets-leading-spaces": "[click](<  {url}>)",
    "reference": "[click][ref]\n\n[ref]: {url}",
    "reference-leading-spaces": "[click][ref]\n\n[ref]:    {url}",
    "image": "![picture]({url})",
}


@pytest.mark.parametrize("url", DANGEROUS_URLS)
@pytest.mark.parametrize("form", LINK_FORMS.values(), ids=LINK_FORMS.keys())
def test_javascript_data_and_vbscript_links_are_not_rendered_as_links(form, url):
    html = render_markdown(form.format(url=url)).html

    assert "<a" not in html
    assert "<img" not in html
    assert "href" not in html
    assert "src=" not in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "vbscript:x"])
def test_dangerous_autolinks_are_not_rendered_as_links(url):
    html = render_markdown(f"<{url}>").html

    assert "<a" not in html


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["javascript", "data", "vbscript", "file", "blob"]).flatmap(
        lambda name: st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in name]).map("".join)
    ),
    leading=st.text(alphabet=" \t\n\r\x0c", max_size=4),
    rest=st.text(max_size=20),
)
def test_other_schemes_are_unsafe_in_any_case_and_with_leading_whitespace(scheme, leading, rest):
    assert not is_safe_link(f"{leading}{scheme}:{rest}")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/page",
        "https://example.org/a/b?c=d",
        "HTTPS://example.org/",
        "mailto:secretariat@example.org",
        "/codes/ai-code/v2",
        "relative/page",
        "../up",
        "#c-1",
        "?q=transparency",
    ],
)
def test_http_https_mailto_relative_and_fragment_links_are_rendered(url):
    html = render_markdown(f"See [the link]({url}).").html

    assert HREFS.findall(html) == [url]
    assert ">the link</a>" in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_safe_autolink_is_rendered_as_a_link():
    html = render_markdown("<https://example.org/code>").html

    assert 'href="https://example.org/code"' in html


# --- headings, permalinks, table of contents -----------------------------------------------------

DOCUMENT = (
    "# Code of practice {#title}\n\nIntro.\n\n"
    "## Transparency {#c-1}\n\nText.\n\n"
    "## Åtgärder för öppenhet\n\nText.\n\n"
    "## Scope\n\n## Scope\n\n"
    "Safety\n------\n\nText.\n"
)


def test_heading_ids_equal_clause_keys():
    assert heading_ids(DOCUMENT) == ["title", "c-1", "atgarder-for-oppenhet", "scope", "scope-2", "safety"]
    assert heading_ids(DOCUMENT) == clause_keys(DOCUMENT)


def test_explicit_key_text_is_not_visible_in_the_heading():
    html = render_markdown("## Transparency {#c-1}\n\nText.\n").html

    assert "{#" not in html
    assert "c-1}" not in html
    assert '<h2 id="c-1" class="clause-heading">Transparency <a' in html


def test_explicit_key_after_inline_markup_is_not_visible():
    html = render_markdown("## The *core* duty {#c-1}\n").html

    assert "{#" not in html
    assert "<em>core</em> duty <a" in html


def test_each_heading_has_a_permalink_to_its_key():
    html = render_markdown(DOCUMENT).html

    permalinks = re.findall(r'<a class="permalink" href="#([^"]+)"', html)
    assert permalinks == ["title", "c-1", "atgarder-for-oppenhet", "scope", "scope-2", "safety"]
    assert 'aria-label="Permalink: Transparency"' in html


def test_toc_lists_every_heading_with_key_title_and_level():
    toc = render_markdown(DOCUMENT).toc

    assert toc == [
        {"key": "title", "title": "Code of practice", "level": 1},
        {"key": "c-1", "title": "Transparency", "level": 2},
        {"key": "atgarder-for-oppenhet", "title": "Åtgärder för öppenhet", "level": 2},
        {"key": "scope", "title": "Scope", "level": 2},
        {"key": "scope-2", "title": "Scope", "level": 2},
        {"key": "safety", "title": "Safety", "level": 2},
    ]


def test_headings_in_fenced_code_get_no_id_and_no_toc_entry():
    rendered = render_markdown("# Real\n\n```\n# Fake\n```\n")

    assert [entry["key"] for entry in rendered.toc] == ["real"]
    assert "<pre><code># Fake\n</code></pre>" in rendered.html


def test_single_column_pipe_table_does_not_shift_heading_ids_away_from_clause_keys():
    # Without the table extension, "|Obligation|" underlined by "---" is a setext heading and takes the key.
    document = "|Obligation|\n---\n|Document models|\n\n# Obligation\n\nText.\n"

    assert heading_ids(document) == clause_keys(document)


heading_titles = st.sampled_from(
    ["Scope", "Scope!", "Scope 2", "Intro", "Åtgärder", "1 Duty", "Duty {#c-1}", "X {#scope}"]
)
blocks = st.one_of(
    st.tuples(st.integers(1, 6), heading_titles).map(lambda pair: "#" * pair[0] + " " + pair[1]),
    st.tuples(heading_titles, st.sampled_from(["===", "---"])).map("\n".join),
    st.sampled_from(["Text.", "More *text* here.", "A note.[^1]", "- item", "> quoted"]),
    heading_titles.map(lambda title: f"```\n# {title}\n```"),
    st.just("| a | b |\n|---|--:|\n| 1 | 2 |"),
    st.just("[^1]: The footnote."),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(blocks, max_size=10).map("\n\n".join))
def test_heading_ids_and_toc_keys_equal_clause_keys_for_generated_documents(document):
    rendered = render_markdown(document)
    keys = clause_keys(document)

    assert HEADING_IDS.findall(rendered.html) == keys
    assert [entry["key"] for entry in rendered.toc] == keys


# --- tables and footnotes ------------------------------------------------------------------------


def test_tables_render_with_header_body_and_alignment():
    html = render_markdown("| Duty | Deadline |\n|:-----|--------:|\n| Report | 30 days |\n").html

    assert "<table>" in html
    assert "<thead>" in html
    assert "<tbody>" in html
    assert '<th style="text-align:left">Duty</th>' in html
    assert '<td style="text-align:right">30 days</td>' in html


def test_footnotes_render_with_reference_and_back_link():
    html = render_markdown("Providers shall comply.[^1]\n\n[^1]: Article 53 of the AI Act.\n").html

    assert '<sup class="footnote-ref"><a href="#fn1" id="fnref1"' in html
    assert '<section class="footnotes">' in html
    assert '<li id="fn1" class="footnote-item"><p>Article 53 of the AI Act.' in html
    assert 'href="#fnref1"' in html


def test_strikethrough_renders_as_s():
    assert "<s>old</s>" in render_fragment("~~old~~ new")


# --- caching -------------------------------------------------------------------------------------


def test_render_cached_returns_the_same_object_for_the_same_text():
    text = "# Cached {#c-1}\n\nSame text.\n"

    first = render_cached(text)

    assert render_cached(text) is first
    # Keyed by the text's value, not by the string object.
    assert render_cached("".join(list(text))) is first
    assert first == render_markdown(text)


def test_render_cached_renders_different_text_separately():
    first = render_cached("# One\n")
    second = render_cached("# Two\n")

    assert first is not second
    assert [entry["key"] for entry in second.toc] == ["two"]


# --- sanitize ------------------------------------------------------------------------------------


def test_sanitize_strips_event_handler_attributes():
    cleaned = sanitize('<img src="/a.png" alt="a" onerror="alert(1)"><p onclick="x()">Text</p>')

    assert "onerror" not in cleaned
    assert "onclick" not in cleaned
    assert "alert" not in cleaned
    assert '<img src="/a.png" alt="a">' in cleaned
    assert "<p>Text</p>" in cleaned


def test_sanitize_removes_iframes_scripts_and_styles():
    cleaned = sanitize(
        '<iframe src="https://evil.example"></iframe><script>alert(1)</script><style>p{}</style><p>kept</p>'
    )

    assert "iframe" not in cleaned
    assert "script" not in cleaned
    assert "style" not in cleaned
    assert cleaned == "<p>kept</p>"


def test_sanitize_drops_dangerous_hrefs_but_keeps_the_link_text():
    cleaned = sanitize('<a href="javascript:alert(1)">x</a> <a href="data:text/html,x">y</a>')

    assert "javascript" not in cleaned
    assert "data:" not in cleaned
    assert ">x</a>" in cleaned
    assert ">y</a>" in cleaned


def test_sanitize_keeps_only_text_align_in_table_cell_styles():
    cleaned = sanitize('<table><tr><td style="text-align:center;background:url(x)">a</td></tr></table>')

    assert 'style="text-align:center"' in cleaned
    assert "url(" not in cleaned


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>\"'=:/[]()!#*`|{}&;\n abcjsrptvdhmlonex1")), max_size=120))
def test_any_markdown_renders_without_scripts_event_handlers_or_unsafe_hrefs(markdown):
    html = render_markdown(markdown).html

    assert "<script" not in html.lower()
    assert not re.search(r"<[^>]*\son\w+=", html)
    assert all(is_safe_link(href) for href in HREFS.findall(html))
