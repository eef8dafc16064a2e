"""Splitting Markdown into clauses: keys, boundaries and the round trip back to the document."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.drafting.clauses import (
    INTRO_KEY,
    KEY_PATTERN,
    DuplicateKeyError,
    slugify,
    split_clauses,
)


def keys(markdown: str, *, strict: bool = True) -> list[str]:
    return [clause.key for clause in split_clauses(markdown, strict=strict)]


# --- generated Markdown-ish documents --------------------------------------------------------------

WORD_ALPHABET = "abcdefghijklmnopqrstuvwxyzåäöÅÄÖéü0123456789"
words = st.text(alphabet=WORD_ALPHABET, min_size=1, max_size=8)
phrases = st.lists(words, min_size=1, max_size=4).map(" ".join)
titles = st.one_of(
    phrases,
    # A small title pool makes repeated headings (and so suffixed derived keys) common.
    st.sampled_from(["Scope", "Purpose", "Intro", "Transparency", "Åtgärder", "1 Scope", "Scope!", "Scope 2"]),
)
explicit_keys = st.sampled_from(["scope", "scope-2", "c-1", "c-2", "purpose", "transparency"])


@st.composite
def atx_headings(draw: st.DrawFn) -> str:
    level = draw(st.integers(1, 6))
    title = draw(titles)
    key = draw(st.none() | explicit_keys)
    return "#" * level + " " + title + (f" {{#{key}}}" if key else "")


@st.composite
def setext_headings(draw: st.DrawFn) -> str:
    title = draw(titles)
    key = draw(st.none() | explicit_keys)
    underline = draw(st.sampled_from(["===", "---", "=", "-----"]))
    return title + (f" {{#{key}}}" if key else "") + "\n" + underline


paragraphs = st.lists(phrases, min_size=1, max_size=3).map("\n".join)
other_blocks = st.one_of(
    paragraphs,
    phrases.map(lambda text: f"- {text}"),
    phrases.map(lambda text: f"> {text}"),
    titles.map(lambda title: f"```\n# {title}\n```"),
    titles.map(lambda title: f"~~~\n## {title} {{#c-1}}\n~~~"),
    st.just("| a | b |\n|---|---|\n| 1 | 2 |"),
    st.just(""),
)
blocks = st.one_of(atx_headings(), setext_headings(), other_blocks)


@st.composite
def documents(draw: st.DrawFn) -> str:
    parts = draw(st.lists(blocks, max_size=10))
    separator = draw(st.sampled_from(["\n\n", "\n\n\n"]))
    text = separator.join(parts)
    if draw(st.booleans()):
        text += "\n"
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    # Blank lines before the first heading are part of the document too.
    return draw(st.sampled_from(["", "\n", "\n\n", "  \n"])) + text


# --- explicit keys -------------------------------------------------------------------------------


def test_explicit_key_becomes_the_clause_key_and_leaves_the_heading_text():
    [clause] = split_clauses("## Transparency {#c-1}\n\nProviders shall document models.\n")

    assert clause.key == "c-1"
    assert clause.heading == "Transparency"
    assert clause.level == 2


def test_explicit_key_on_a_setext_heading_is_used():
    [clause] = split_clauses("Transparency {#c-1}\n============\n\nText.\n")

    assert (clause.key, clause.heading, clause.level) == ("c-1", "Transparency", 1)


def test_explicit_key_survives_a_heading_text_change():
    before = split_clauses("## Transparency {#c-1}\n\nText.\n")
    after = split_clauses("## Openness towards users {#c-1}\n\nText.\n")

    assert [c.key for c in before] == [c.key for c in after] == ["c-1"]


@pytest.mark.parametrize(
    ("heading", "expected_key"),
    [
        ("# Title {#Upper}", "title-upper"),  # keys are lowercase; this is heading text, not a key
        ("# Title {#1abc}", "title-1abc"),  # keys start with a letter
        ("# Title {#a_b}", "title-a-b"),
        ("# Title {#abc} trailing", "title-abc-trailing"),  # only a trailing attribute counts
    ],
)
def test_malformed_key_attribute_is_treated_as_heading_text(heading, expected_key):
    assert keys(heading + "\n") == [expected_key]


def test_duplicate_explicit_keys_raise_in_strict_mode():
    document = "# One {#c-1}\n\nText.\n\n# Two {#c-1}\n\nMore.\n"

    with pytest.raises(DuplicateKeyError) as raised:
        split_clauses(document)

    assert raised.value.key == "c-1"
    assert "{#c-1}" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_duplicate_explicit_key_falls_back_to_a_derived_key_when_not_strict():
    clauses = split_clauses("# One {#c-1}\n\n# Two {#c-1}\n", strict=False)

    assert [(c.key, c.heading) for c in clauses] == [("c-1", "One"), ("two", "Two")]


def test_explicit_intro_key_is_refused_because_intro_is_reserved():
    with pytest.raises(DuplicateKeyError) as raised:
        split_clauses("Preamble.\n\n# Scope {#intro}\n")

    assert raised.value.key == INTRO_KEY


# --- derived keys --------------------------------------------------------------------------------


def test_heading_without_explicit_key_gets_a_slug_of_its_text():
    assert keys("## Copyright and related rights\n") == ["copyright-and-related-rights"]


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Åtgärder för öppenhet", "atgarder-for-oppenhet"),
        ("ÄGARE och Översyn", "agare-och-oversyn"),
        ("Skäl, syfte & räckvidd", "skal-syfte-rackvidd"),
        ("Café déjà vu", "cafe-deja-vu"),
    ],
)
def test_slugify_transliterates_swedish_and_accented_letters_to_ascii(text, slug):
    assert slugify(text) == slug


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("1. Scope", "s-1-scope"),
        ("2024", "s-2024"),
        ("!!!", "section"),
        ("", "section"),
        ("日本語", "section"),
        ("  --Scope--  ", "scope"),
    ],
)
def test_slugify_always_starts_with_a_letter(text, slug):
    assert slugify(text) == slug


def test_slugify_truncates_long_headings_without_a_trailing_hyphen():
    slug = slugify("word " * 40)

    assert len(slug) <= 72
    assert not slug.endswith("-")
    assert slug.startswith("word-word-")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_slugify_of_any_text_is_a_valid_clause_key(text):
    assert KEY_PATTERN.match(slugify(text))


def test_repeated_heading_text_gets_numbered_suffixes():
    assert keys("# Scope\n\n# Scope\n\n# Scope\n") == ["scope", "scope-2", "scope-3"]


def test_derived_key_suffix_skips_an_explicit_key_used_later_in_the_document():
    document = "# Scope\n\n# Scope\n\n# Other {#scope-2}\n"

    assert keys(document) == ["scope", "scope-3", "scope-2"]


def test_derived_key_never_takes_an_explicit_key_of_another_heading():
    document = "# Purpose\n\nText.\n\n# Aims {#purpose}\n"

    assert keys(document) == ["purpose-2", "purpose"]


def test_heading_called_intro_does_not_collide_with_the_intro_clause():
    assert keys("Preamble.\n\n# Intro\n\nText.\n") == ["intro", "intro-2"]


def test_derived_key_whose_slug_looks_suffixed_does_not_collide():
    assert keys("# Scope\n\n# Scope\n\n# Scope 2\n") == ["scope", "scope-2", "scope-2-2"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(titles, min_size=1, max_size=8),
    st.lists(paragraphs, min_size=8, max_size=8),
    st.lists(paragraphs, min_size=8, max_size=8),
)
def test_derived_keys_are_stable_when_only_body_text_changes(heading_texts, bodies, other_bodies):
    def document(body_texts: list[str]) -> str:
        return "\n\n".join(f"## {title}\n\n{body}" for title, body in zip(heading_texts, body_texts, strict=False))

    assert keys(document(bodies)) == keys(document(other_bodies))


def test_derived_keys_are_stable_when_a_heading_with_other_text_is_added():
    before = "# Scope\n\nA.\n\n# Scope\n\nB.\n\n# Safety\n\nC.\n"
    after = "# Definitions\n\nNew.\n\n# Scope\n\nA.\n\n# Scope\n\nB changed.\n\n# Safety\n\nC.\n"

    assert keys(before) == ["scope", "scope-2", "safety"]
    assert keys(after) == ["definitions", "scope", "scope-2", "safety"]


@settings(max_examples=200, deadline=None)
@given(documents())
def test_clause_keys_are_unique_and_valid_for_any_document(document):
    found = keys(document, strict=False)

    assert len(found) == len(set(found))
    assert all(KEY_PATTERN.match(key) for key in found)
    assert INTRO_KEY not in found[1:]


# --- clause boundaries ---------------------------------------------------------------------------


def test_headings_inside_fenced_code_are_not_clauses():
    document = "# Real\n\n```markdown\n# Not a heading\n## Nor this {#c-9}\n```\n\n~~~\n# Nor this\n~~~\n"

    [clause] = split_clauses(document)

    assert clause.key == "real"
    assert clause.markdown == document


def test_headings_inside_indented_code_are_not_clauses():
    document = "# Real\n\n    # Not a heading\n"

    assert keys(document) == ["real"]


def test_setext_headings_start_clauses_with_their_level():
    document = "Title\n=====\n\nIntro text.\n\nScope\n-----\n\nScope text.\n"

    clauses = split_clauses(document)

    assert [(c.key, c.heading, c.level) for c in clauses] == [("title", "Title", 1), ("scope", "Scope", 2)]
    assert clauses[0].markdown == "Title\n=====\n\nIntro text.\n\n"
    assert clauses[1].markdown == "Scope\n-----\n\nScope text.\n"


def test_text_before_the_first_heading_becomes_the_intro_clause():
    clauses = split_clauses("Preamble line.\n\nMore preamble.\n\n# Scope\n\nText.\n")

    intro = clauses[0]
    assert (intro.key, intro.heading, intro.level, intro.ordinal) == (INTRO_KEY, "", 0, 0)
    assert intro.markdown == "Preamble line.\n\nMore preamble.\n\n"
    assert clauses[1].ordinal == 1


def test_document_without_headings_is_a_single_intro_clause():
    [clause] = split_clauses("Just a paragraph.\n\nAnd another.")

    assert clause.key == INTRO_KEY
    assert clause.markdown == "Just a paragraph.\n\nAnd another."


def test_empty_document_has_no_clauses():
    assert split_clauses("") == []


def test_each_clause_runs_from_its_heading_to_the_next_heading():
    document = "# Title {#title}\n\nIntro.\n\n## One {#c-1}\n\nFirst.\n\n### Sub\n\nDeep.\n\n## Two {#c-2}\n\nLast.\n"

    clauses = split_clauses(document)

    assert [(c.key, c.level, c.ordinal, c.markdown) for c in clauses] == [
        ("title", 1, 0, "# Title {#title}\n\nIntro.\n\n"),
        ("c-1", 2, 1, "## One {#c-1}\n\nFirst.\n\n"),
        ("sub", 3, 2, "### Sub\n\nDeep.\n\n"),
        ("c-2", 2, 3, "## Two {#c-2}\n\nLast.\n"),
    ]


def test_clause_content_hash_is_the_sha256_of_its_markdown():
    [clause] = split_clauses("# Åtgärder\n\nText.\n")

    assert clause.content_sha256 == hashlib.sha256("# Åtgärder\n\nText.\n".encode()).hexdigest()


@pytest.mark.parametrize("separator", ["\x0c", "\x85", "\u2028"], ids=["form-feed", "next-line", "line-separator"])
def test_unicode_line_separators_in_text_do_not_shift_clause_boundaries(separator):
    # Markdown breaks lines only at \n and \r; str.splitlines also breaks at these characters.
    document = f"Preamble{separator}continued.\n\n# Scope\n\nText.\n"

    clauses = split_clauses(document)

    assert [c.key for c in clauses] == [INTRO_KEY, "scope"]
    assert clauses[0].markdown == f"Preamble{separator}continued.\n\n"
    assert clauses[1].markdown == "# Scope\n\nText.\n"


def test_blank_lines_before_the_first_heading_are_kept_in_the_clauses():
    document = "\n\n# Scope\n\nText.\n"

    clauses = split_clauses(document)

    assert "".join(c.markdown for c in clauses) == document
    assert clauses[-1].key == "scope"


@settings(max_examples=300, deadline=None)
@given(documents())
def test_concatenating_all_clauses_reproduces_the_document_exactly(document):
    clauses = split_clauses(document, strict=False)

    assert "".join(clause.markdown for clause in clauses) == document
    assert [clause.ordinal for clause in clauses] == list(range(len(clauses)))
