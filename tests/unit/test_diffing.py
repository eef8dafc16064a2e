"""Word diffs and clause-level comparison of two versions."""

from __future__ import annotations

import html
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.drafting.clauses import Clause, split_clauses
from app.drafting.diffing import ClauseDiff, diff_clauses, ops_to_html, word_diff

# --- word_diff -----------------------------------------------------------------------------------

# Code points around the surrogate block, where the word-to-character encoding has to jump.
EDGE_CHARACTERS = ["\ud7fe", "\ud7ff", "\ud800", "\udbff", "\udc00", "\udfff", "\ue000", "\uffff", "\U0010ffff"]
EMOJI = ["😀", "👩‍👩‍👧", "🇸🇪", "👍🏽", "\u200d", "\ufe0f"]
characters = st.one_of(
    st.characters(),
    st.sampled_from(EDGE_CHARACTERS + EMOJI),
    st.sampled_from([" ", "\n", "\t", "\u00a0", ".", ",", "-"]),
)
# Emoji sequences span several code points, so texts are joined from pieces rather than drawn from an alphabet.
texts = st.lists(characters, max_size=60).map("".join)
vocabulary = st.sampled_from(
    ["shall", "may", "providers", "models", "å", "ö", "😀", "\ud800", " ", "  ", "\n", ".", ","]
)
related_texts = st.lists(vocabulary, max_size=30).map("".join)
text_pairs = st.one_of(st.tuples(texts, texts), st.tuples(related_texts, related_texts))


def new_text(ops: list[tuple[int, str]]) -> str:
    return "".join(text for op, text in ops if op in (0, 1))


def old_text(ops: list[tuple[int, str]]) -> str:
    return "".join(text for op, text in ops if op in (0, -1))


def boundaries(ops: list[tuple[int, str]], keep: set[int]) -> list[int]:
    positions, at = [], 0
    for op, text in ops:
        if op in keep:
            at += len(text)
            positions.append(at)
    return positions[:-1]


WORD = re.compile(r"\w")


@settings(max_examples=300, deadline=None)
@given(text_pairs)
def test_applying_word_diff_ops_reproduces_both_texts(pair):
    old, new = pair

    ops = word_diff(old, new)

    assert new_text(ops) == new
    assert old_text(ops) == old


@settings(max_examples=200, deadline=None)
@given(text_pairs)
def test_word_diff_boundaries_never_split_a_word(pair):
    old, new = pair

    ops = word_diff(old, new)

    for text, keep in ((new, {0, 1}), (old, {0, -1})):
        for position in boundaries(ops, keep):
            assert not (WORD.match(text[position - 1]) and WORD.match(text[position])), (text, position)


@settings(max_examples=200, deadline=None)
@given(text_pairs)
def test_word_diff_ops_are_non_empty_and_valid(pair):
    ops = word_diff(*pair)

    assert all(op in (-1, 0, 1) and text for op, text in ops)
    assert all(first[0] != second[0] for first, second in itertools.pairwise(ops))


def test_identical_texts_are_one_kept_run():
    assert word_diff("Providers shall comply.", "Providers shall comply.") == [(0, "Providers shall comply.")]


def test_empty_texts_give_no_ops():
    assert word_diff("", "") == []


def test_text_from_nothing_is_one_insertion_and_to_nothing_one_deletion():
    assert word_diff("", "new text") == [(1, "new text")]
    assert word_diff("old text", "") == [(-1, "old text")]


def test_a_replaced_word_is_deleted_and_inserted_whole():
    assert word_diff("the cat sat", "the cart sat") == [(0, "the "), (-1, "cat"), (1, "cart"), (0, " sat")]


def test_an_inserted_word_is_one_insertion():
    assert word_diff("Providers shall document models.", "Providers shall promptly document models.") == [
        (0, "Providers shall "),
        (1, "promptly "),
        (0, "document models."),
    ]


def test_swedish_words_are_compared_whole():
    ops = word_diff("Leverantören ska dokumentera", "Leverantörerna ska dokumentera")

    assert (-1, "Leverantören") in ops
    assert (1, "Leverantörerna") in ops


def test_more_distinct_words_than_code_points_below_the_surrogates_diff_correctly():
    # Each distinct word becomes one character; past 55,295 words the encoding must skip the surrogate block.
    words = [f"w{i}" for i in range(60_000)]
    old = " ".join(words)
    changed = [*words[:55_290], "alpha", "beta", *words[55_300:]]
    new = " ".join(changed)

    ops = word_diff(old, new)

    assert new_text(ops) == new
    assert old_text(ops) == old
    assert [op for op, _ in ops] == [0, -1, 1, 0]
    assert ops[1][1].split() == words[55_290:55_300]
    assert ops[2][1].split() == ["alpha", "beta"]


# --- ClauseDiff word counts ----------------------------------------------------------------------


def test_inserted_and_deleted_word_counts_count_words_not_spaces_or_punctuation():
    diff = ClauseDiff(
        "c-1",
        "Transparency",
        "changed",
        False,
        [(0, "Providers shall "), (1, "promptly, and fully "), (-1, "maybe "), (0, "document models.")],
    )

    assert diff.inserted_words == 3
    assert diff.deleted_words == 1


# --- diff_clauses --------------------------------------------------------------------------------


def clause(key: str, text: str | None = None, ordinal: int = 0) -> Clause:
    body = text if text is not None else f"Text of {key}."
    return Clause(key, key.title(), 2, ordinal, f"## {key.title()} {{#{key}}}\n\n{body}\n")


def clauses(*specs: str | tuple[str, str]) -> list[Clause]:
    built = []
    for ordinal, spec in enumerate(specs):
        key, text = (spec, None) if isinstance(spec, str) else spec
        built.append(clause(key, text, ordinal))
    return built


def summary(diffs: list[ClauseDiff]) -> list[tuple[str, str, bool]]:
    return [(d.key, d.status, d.moved) for d in diffs]


def test_identical_versions_are_all_unchanged_and_not_moved():
    version = clauses("a", "b", "c")

    diffs = diff_clauses(version, version)

    assert summary(diffs) == [("a", "unchanged", False), ("b", "unchanged", False), ("c", "unchanged", False)]
    assert diffs[0].ops == [(0, version[0].markdown)]


def test_added_clause_is_reported_added_with_its_text_inserted():
    old = clauses("a", "c")
    new = clauses("a", "b", "c")

    diffs = diff_clauses(old, new)

    assert summary(diffs) == [("a", "unchanged", False), ("b", "added", False), ("c", "unchanged", False)]
    assert diffs[1].ops == [(1, new[1].markdown)]


def test_removed_clause_is_reported_removed_with_its_text_deleted():
    old = clauses("a", "b", "c")
    new = clauses("a", "c")

    diffs = diff_clauses(old, new)

    assert summary(diffs) == [("a", "unchanged", False), ("b", "removed", False), ("c", "unchanged", False)]
    assert diffs[1].ops == [(-1, old[1].markdown)]
    assert diffs[1].heading == "B"


def test_changed_clause_carries_a_word_diff_of_its_text():
    old = clauses(("a", "Providers shall document models."))
    new = clauses(("a", "Providers shall promptly document models."))

    [diff] = diff_clauses(old, new)

    assert (diff.status, diff.moved) == ("changed", False)
    assert (1, "promptly ") in diff.ops
    assert new_text(diff.ops) == new[0].markdown
    assert old_text(diff.ops) == old[0].markdown


def test_clause_moved_past_others_is_moved_and_the_others_are_not():
    diffs = diff_clauses(clauses("a", "b", "c", "d"), clauses("b", "c", "d", "a"))

    assert summary(diffs) == [
        ("b", "unchanged", False),
        ("c", "unchanged", False),
        ("d", "unchanged", False),
        ("a", "unchanged", True),
    ]


def test_clause_moved_to_the_front_is_the_only_one_moved():
    diffs = diff_clauses(clauses("a", "b", "c", "d"), clauses("d", "a", "b", "c"))

    assert [d.key for d in diffs if d.moved] == ["d"]


def test_moved_and_edited_clause_is_both_changed_and_moved():
    old = clauses("a", ("b", "Old text."), "c", "d")
    new = clauses("a", "c", "d", ("b", "New text."))

    diffs = diff_clauses(old, new)

    assert summary(diffs) == [
        ("a", "unchanged", False),
        ("c", "unchanged", False),
        ("d", "unchanged", False),
        ("b", "changed", True),
    ]


def test_insertions_and_removals_around_a_clause_do_not_make_it_moved():
    diffs = diff_clauses(clauses("x", "a", "b"), clauses("a", "n", "b"))

    assert [d.key for d in diffs if d.moved] == []


def test_removed_clause_is_placed_after_its_old_predecessor():
    diffs = diff_clauses(clauses("a", "x", "b", "c"), clauses("c", "a", "b"))

    assert [d.key for d in diffs] == ["c", "a", "x", "b"]


def test_consecutive_removed_clauses_keep_their_old_order_after_the_predecessor():
    diffs = diff_clauses(clauses("a", "x", "y", "b"), clauses("a", "b"))

    assert summary(diffs) == [
        ("a", "unchanged", False),
        ("x", "removed", False),
        ("y", "removed", False),
        ("b", "unchanged", False),
    ]


def test_removed_clause_without_a_surviving_predecessor_comes_first():
    diffs = diff_clauses(clauses("x", "a", "b"), clauses("n", "a", "b"))

    assert summary(diffs) == [
        ("x", "removed", False),
        ("n", "added", False),
        ("a", "unchanged", False),
        ("b", "unchanged", False),
    ]


def test_diff_of_split_versions_finds_the_sample_changes():
    old = split_clauses("# Code {#title}\n\n## One {#c-1}\n\nDocument models.\n\n## Two {#c-2}\n\nRespect opt-outs.\n")
    new = split_clauses("# Code {#title}\n\n## Three {#c-3}\n\nAssess risk.\n\n## One {#c-1}\n\nDocument all models.\n")

    assert summary(diff_clauses(old, new)) == [
        ("title", "unchanged", False),
        ("c-3", "added", False),
        ("c-1", "changed", False),
        ("c-2", "removed", False),
    ]


def longest_increasing_run(values: list[int]) -> int:
    best = [1] * len(values)
    for i in range(len(values)):
        for j in range(i):
            if values[j] < values[i]:
                best[i] = max(best[i], best[j] + 1)
    return max(best, default=0)


KEYS = [f"k{i}" for i in range(10)]


@st.composite
def version_pairs(draw: st.DrawFn) -> tuple[list[Clause], list[Clause]]:
    old_keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=8))
    new_keys = draw(st.permutations(draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=8))))
    bodies = st.sampled_from(["Same.", "Other.", "Changed text."])
    old = clauses(*[(key, draw(bodies)) for key in old_keys])
    new = clauses(*[(key, draw(bodies)) for key in new_keys])
    return old, new


@settings(max_examples=300, deadline=None)
@given(version_pairs())
def test_clause_diff_covers_every_key_once_with_consistent_status(pair):
    old, new = pair
    old_by_key = {c.key: c for c in old}
    new_by_key = {c.key: c for c in new}

    diffs = diff_clauses(old, new)

    assert sorted(d.key for d in diffs) == sorted(old_by_key.keys() | new_by_key.keys())
    for d in diffs:
        if d.key not in new_by_key:
            assert (d.status, d.moved) == ("removed", False)
        elif d.key not in old_by_key:
            assert (d.status, d.moved) == ("added", False)
        elif old_by_key[d.key].markdown == new_by_key[d.key].markdown:
            assert d.status == "unchanged"
        else:
            assert d.status == "changed"
            assert new_text(d.ops) == new_by_key[d.key].markdown
            assert old_text(d.ops) == old_by_key[d.key].markdown
    assert [d.key for d in diffs if d.status != "removed"] == [c.key for c in new]


@settings(max_examples=300, deadline=None)
@given(version_pairs())
def test_the_fewest_clauses_are_reported_moved_and_the_rest_keep_their_order(pair):
    old, new = pair
    old_position = {c.key: i for i, c in enumerate(old)}

    diffs = diff_clauses(old, new)

    common = [old_position[d.key] for d in diffs if d.status in ("changed", "unchanged")]
    stayed = [old_position[d.key] for d in diffs if d.status in ("changed", "unchanged") and not d.moved]
    assert stayed == sorted(stayed)
    assert len(stayed) == longest_increasing_run(common)


@settings(max_examples=300, deadline=None)
@given(version_pairs())
def test_removed_clauses_follow_their_nearest_surviving_old_predecessor(pair):
    old, new = pair
    new_keys = {c.key for c in new}
    anchor_of: dict[str, str | None] = {}
    anchor = None
    for c in old:
        if c.key in new_keys:
            anchor = c.key
        else:
            anchor_of[c.key] = anchor

    order = [d.key for d in diff_clauses(old, new)]

    for key, anchor in anchor_of.items():
        index = order.index(key)
        run_start = index
        while run_start > 0 and order[run_start - 1] in anchor_of:
            run_start -= 1
        assert (order[run_start - 1] if run_start else None) == anchor


# --- ops_to_html ---------------------------------------------------------------------------------


def test_ops_to_html_escapes_text_and_wraps_insertions_and_deletions():
    ops = [(0, "a < b & "), (1, "<script>alert(1)</script>"), (-1, '"old"')]

    assert ops_to_html(ops) == (
        "a &lt; b &amp; <ins>&lt;script&gt;alert(1)&lt;/script&gt;</ins><del>&quot;old&quot;</del>"
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-1, 0, 1]), st.text(min_size=1, max_size=20)), max_size=8))
def test_ops_to_html_only_emits_ins_and_del_tags_around_escaped_text(ops):
    rendered = ops_to_html(ops)

    assert re.findall(r"<[^>]*>", rendered) == [tag for op, _ in ops if op for tag in TAGS[op]]
    assert html.unescape(re.sub(r"</?(ins|del)>", "", rendered)) == "".join(text for _, text in ops)


TAGS = {1: ("<ins>", "</ins>"), -1: ("<del>", "</del>")}


@pytest.mark.parametrize(("op", "tag"), [(1, "ins"), (-1, "del")])
def test_ops_to_html_wraps_each_change_in_its_own_element(op, tag):
    assert ops_to_html([(op, "x"), (0, " "), (op, "y")]) == f"<{tag}>x</{tag}> <{tag}>y</{tag}>"
