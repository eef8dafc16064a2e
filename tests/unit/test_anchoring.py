"""Text anchors for comments and carrying them into a new version's clauses (app/comments/anchoring.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.comments import anchoring
from app.comments.anchoring import (
    CONTEXT_CHARS,
    Anchor,
    Placement,
    locate_quote,
    make_anchor,
    proposal_applied,
    reanchor,
)

STATES = {"anchored", "outdated", "orphaned"}

TRANSPARENCY = (
    "Signatories shall draw up and keep up to date the technical documentation of the model, "
    "including its training and testing process and the results of its evaluation, "
    "and shall provide it to the AI Office upon request."
)
COPYRIGHT = (
    "Signatories shall put in place a policy to comply with Union law on copyright and related rights. "
    "They shall respect machine-readable rights reservations such as robots.txt when crawling the web."
)
REPEATED = (
    "Providers shall notify the AI Office without undue delay. "
    "Where a serious incident occurs, providers shall notify the AI Office without undue delay "
    "and keep a record of the incident for ten years."
)


def anchor_on(text: str, quote: str, occurrence: int = 0) -> Anchor:
    """An anchor on the `occurrence`-th (0-based) appearance of `quote` in `text`."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(quote, start + 1)
    return make_anchor(text, start, start + len(quote))


def at(placement: Placement, text: str) -> str:
    assert placement.start is not None
    assert placement.end is not None
    return text[placement.start : placement.end]


def check_placement(placement: Placement, new_clauses: dict[str, str]) -> None:
    """What holds of every placement, whatever happened to the text."""
    assert placement.state in STATES
    assert 0.0 <= placement.confidence <= 1.0
    if placement.state == "orphaned":
        assert placement.clause_key is None or placement.start is None
        assert placement.confidence == 0.0
        return
    assert placement.clause_key in new_clauses
    if placement.start is not None:
        assert placement.end is not None
        assert 0 <= placement.start <= placement.end <= len(new_clauses[placement.clause_key])


# --- make_anchor ---------------------------------------------------------------------------------


def test_make_anchor_keeps_the_quote_offsets_and_32_characters_of_context() -> None:
    anchor = anchor_on(TRANSPARENCY, "training and testing process")
    start = TRANSPARENCY.index("training and testing process")
    assert anchor.quote == "training and testing process"
    assert (anchor.start, anchor.end) == (start, start + len("training and testing process"))
    assert CONTEXT_CHARS == 32
    assert anchor.prefix == TRANSPARENCY[start - 32 : start]
    assert anchor.suffix == TRANSPARENCY[anchor.end : anchor.end + 32]
    assert len(anchor.prefix) == len(anchor.suffix) == 32


def test_make_anchor_context_is_cut_short_at_the_edges_of_the_clause() -> None:
    text = "Scope of the code."
    anchor = make_anchor(text, 0, 5)
    assert (anchor.quote, anchor.prefix, anchor.suffix) == ("Scope", "", " of the code.")
    whole = make_anchor(text, 0, len(text))
    assert (whole.quote, whole.prefix, whole.suffix) == (text, "", "")


@pytest.mark.parametrize(
    ("start", "end"),
    [(5, 5), (6, 5), (-1, 3), (0, 19), (18, 19), (100, 120), (-5, -1)],
    ids=["empty", "reversed", "negative-start", "past-end", "starts-at-end", "far-outside", "all-negative"],
)
def test_make_anchor_rejects_ranges_that_are_not_a_passage_of_the_text(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="not part of this clause"):
        make_anchor("Scope of the code.", start, end)


@settings(max_examples=150, deadline=None)
@given(text=st.text(min_size=1, max_size=120), data=st.data())
def test_make_anchor_context_is_what_surrounds_the_quote(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 1), label="start")
    end = data.draw(st.integers(start + 1, len(text)), label="end")
    anchor = make_anchor(text, start, end)
    assert anchor.prefix + anchor.quote + anchor.suffix in text
    assert text[start - len(anchor.prefix) : end + len(anchor.suffix)] == anchor.prefix + anchor.quote + anchor.suffix
    assert len(anchor.prefix) == min(CONTEXT_CHARS, start)
    assert len(anchor.suffix) == min(CONTEXT_CHARS, len(text) - end)


# --- locate_quote --------------------------------------------------------------------------------


def test_locate_quote_finds_a_unique_passage() -> None:
    located = locate_quote(TRANSPARENCY, "AI Office upon request")
    assert located == anchor_on(TRANSPARENCY, "AI Office upon request")


def test_locate_quote_uses_prefix_and_suffix_to_choose_between_repeated_passages() -> None:
    phrase = "notify the AI Office without undue delay"
    second = anchor_on(REPEATED, phrase, occurrence=1)
    first = anchor_on(REPEATED, phrase, occurrence=0)
    assert first.start != second.start
    assert locate_quote(REPEATED, phrase, prefix="serious incident occurs, providers shall ") == second
    assert locate_quote(REPEATED, phrase, suffix=" and keep a record") == second
    assert locate_quote(REPEATED, phrase, prefix="Providers shall ", suffix=". Where") == first
    # The full stored context of each occurrence picks that occurrence.
    assert locate_quote(REPEATED, phrase, first.prefix, first.suffix) == first
    assert locate_quote(REPEATED, phrase, second.prefix, second.suffix) == second


def test_locate_quote_will_not_guess_between_repeated_passages_without_context() -> None:
    assert locate_quote(REPEATED, "notify the AI Office without undue delay") is None
    # Context that fits both occurrences equally does not decide either.
    assert locate_quote(REPEATED, "notify the AI Office without undue delay", prefix="shall ") is None


def test_locate_quote_returns_none_for_an_absent_or_empty_quote() -> None:
    assert locate_quote(TRANSPARENCY, "open-source exemption") is None
    assert locate_quote(TRANSPARENCY, "") is None
    assert locate_quote("", "anything") is None


# --- reanchor: the same clause -------------------------------------------------------------------


def test_unchanged_text_keeps_the_same_offsets_with_full_confidence() -> None:
    anchor = anchor_on(TRANSPARENCY, "results of its evaluation")
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": TRANSPARENCY, "copyright": COPYRIGHT})
    assert placement == Placement("transparency", anchor.start, anchor.end, 1.0, "anchored")


def test_text_inserted_before_the_passage_shifts_its_offsets() -> None:
    anchor = anchor_on(TRANSPARENCY, "results of its evaluation")
    inserted = "Within twelve months of entry into force, "
    new = inserted + TRANSPARENCY.replace("Signatories", "signatories", 1)
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert placement.state == "anchored"
    assert placement.clause_key == "transparency"
    assert anchor.start is not None
    assert placement.start == anchor.start + len(inserted)
    assert at(placement, new) == anchor.quote
    assert placement.confidence == 1.0


def test_text_deleted_before_and_added_after_the_passage() -> None:
    anchor = anchor_on(TRANSPARENCY, "results of its evaluation")
    new = TRANSPARENCY.replace("draw up and keep up to date", "keep").replace(
        "upon request.", "upon request and to downstream providers."
    )
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert placement.state == "anchored"
    assert placement.start == new.index("results of its evaluation")
    assert at(placement, new) == anchor.quote


# Lower-case words around the quote; the quote is upper case so it cannot appear anywhere else.
SURROUNDING_WORDS = ["providers", "shall", "the", "model", "ai", "office", "of", "a", "record", "incident"]
QUOTE_WORDS = ["TRAINING", "DATA", "SUMMARY", "ROBOTS", "TXT"]
fillers = st.lists(
    st.one_of(st.sampled_from(SURROUNDING_WORDS), st.sampled_from([" ", ", ", ". ", "\n", " the "])), max_size=25
).map(" ".join)
quotes = st.lists(st.sampled_from(QUOTE_WORDS), min_size=1, max_size=4).map(" ".join)
edit_texts = st.lists(st.sampled_from([*SURROUNDING_WORDS, " ", ",", ".", "\n", "x"]), max_size=8).map("".join)


@st.composite
def edited(draw: st.DrawFn, text: str) -> str:
    """`text` after a few random insertions and deletions."""
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 15)))
        text = text[:start] + draw(edit_texts) + text[end:]
    return text


@settings(max_examples=300, deadline=None)
@given(before=fillers, after=fillers, quote=quotes, data=st.data())
def test_edits_outside_the_quote_keep_it_anchored_at_the_right_place(
    before: str, after: str, quote: str, data: st.DataObject
) -> None:
    # The space on either side of the quote stays, so some context always survives.
    old = before + " " + quote + " " + after
    anchor = make_anchor(old, len(before) + 1, len(before) + 1 + len(quote))
    new_before = data.draw(edited(before), label="new_before")
    new_after = data.draw(edited(after), label="new_after")
    new = new_before + " " + quote + " " + new_after
    new_clauses = {"c": new, "other": "Unrelated clause."}
    placement = reanchor(anchor, "c", old, new_clauses)
    check_placement(placement, new_clauses)
    assert placement.state == "anchored"
    assert placement.clause_key == "c"
    assert (placement.start, placement.end) == (len(new_before) + 1, len(new_before) + 1 + len(quote))
    if new == old:
        assert placement.confidence == 1.0


@settings(max_examples=200, deadline=None)
@given(after=fillers, quote=quotes, data=st.data())
def test_a_quote_opening_the_clause_stays_anchored_whatever_follows_it(
    after: str, quote: str, data: st.DataObject
) -> None:
    """The quote is the unchanged start of both texts, so the diff maps it exactly onto itself."""
    old = quote + " " + after
    anchor = make_anchor(old, 0, len(quote))
    new = quote + data.draw(edited(" " + after), label="new_tail")
    placement = reanchor(anchor, "c", old, {"c": new})
    assert placement == Placement("c", 0, len(quote), 1.0, "anchored")


def test_punctuation_added_right_after_an_unchanged_quote_does_not_make_it_outdated() -> None:
    old = "Signatories shall keep the documentation for ten years."
    anchor = make_anchor(old, 0, len("Signatories"))
    new = "Signatories, and their affiliates, shall keep the documentation for ten years."
    placement = reanchor(anchor, "c", old, {"c": new})
    assert at(placement, new) == "Signatories"
    assert placement == Placement("c", 0, len("Signatories"), 1.0, "anchored")


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: "Article 56 applies. " + text,
        lambda text: text.replace("Providers shall notify", "Each provider shall notify", 1),
        lambda text: text.replace(" for ten years.", " for at least ten years after the model is withdrawn."),
        lambda text: text.replace("Where a serious incident occurs", "If a serious incident occurs"),
        lambda text: text.replace("Providers shall notify the AI Office without undue delay. ", ""),
    ],
    ids=["prepend", "first-sentence", "tail", "between", "first-occurrence-deleted"],
)
def test_a_comment_on_a_repeated_phrase_stays_on_its_own_occurrence(edit: Callable[[str], str]) -> None:
    phrase = "notify the AI Office without undue delay"
    anchor = anchor_on(REPEATED, phrase, occurrence=1)
    new = edit(REPEATED)
    assert new != REPEATED
    placement = reanchor(anchor, "incidents", REPEATED, {"incidents": new})
    assert placement.state == "anchored"
    assert at(placement, new) == phrase
    # The second occurrence is the one followed by the record-keeping duty.
    assert new[placement.end :].startswith(" and keep a record")


def test_a_comment_on_the_first_occurrence_stays_there_too() -> None:
    phrase = "notify the AI Office without undue delay"
    anchor = anchor_on(REPEATED, phrase, occurrence=0)
    new = REPEATED.replace("keep a record of the incident", "document the incident")
    placement = reanchor(anchor, "incidents", REPEATED, {"incidents": new})
    assert placement == Placement("incidents", anchor.start, anchor.end, 1.0, "anchored")


def test_a_slightly_reworded_passage_is_outdated_near_where_it_was() -> None:
    anchor = anchor_on(TRANSPARENCY, "training and testing process")
    new = TRANSPARENCY.replace("training and testing process", "training and test procedures")
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert placement.state == "outdated"
    assert placement.clause_key == "transparency"
    assert 0.0 < placement.confidence < 1.0
    assert anchor.start is not None
    assert anchor.end is not None
    assert placement.start is not None
    assert placement.end is not None
    assert abs(placement.start - anchor.start) <= 5
    assert abs(placement.end - new.index(" and the results")) <= 5
    assert "train" in at(placement, new)


def test_a_deleted_passage_is_orphaned() -> None:
    anchor = anchor_on(TRANSPARENCY, "including its training and testing process and the results of its evaluation, ")
    new = TRANSPARENCY.replace("including its training and testing process and the results of its evaluation, ", "")
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert placement == Placement("transparency", None, None, 0.0, "orphaned")


def test_a_deleted_passage_is_never_anchored_on_a_look_alike_sentence_left_beside_it() -> None:
    """Documented: outdated where something like the passage remains, else orphaned; never silently anchored."""
    old = (
        "Providers shall publish a summary of the training data. "
        "Providers shall publish a summary of the evaluation results each year."
    )
    anchor = anchor_on(old, "publish a summary of the training data")
    new = "Providers shall publish a summary of the evaluation results each year."
    placement = reanchor(anchor, "c", old, {"c": new})
    check_placement(placement, {"c": new})
    assert placement.state in {"outdated", "orphaned"}
    assert placement.confidence < 0.8


# --- reanchor: clauses that went away ------------------------------------------------------------


def test_a_passage_moved_with_its_context_into_another_clause_follows_it() -> None:
    anchor = anchor_on(COPYRIGHT, "machine-readable rights reservations")
    moved = "Crawling. " + COPYRIGHT.split(". ", 1)[1] + " They shall exclude piracy sites."
    new_clauses = {"transparency": TRANSPARENCY, "crawling": moved}
    placement = reanchor(anchor, "copyright", COPYRIGHT, new_clauses)
    check_placement(placement, new_clauses)
    assert placement.state == "anchored"
    assert placement.clause_key == "crawling"
    assert at(placement, moved) == anchor.quote
    assert placement.start == moved.index("machine-readable rights reservations")
    assert 0.7 < placement.confidence <= 1.0


def test_a_passage_split_off_into_a_new_clause_follows_it_even_though_the_old_key_remains() -> None:
    """Documented: search the same clause first; a quote found only in another clause counts with its context."""
    anchor = anchor_on(COPYRIGHT, "machine-readable rights reservations")
    first, second = COPYRIGHT.split(" They shall", 1)
    new_clauses = {"copyright": first, "crawling": "They shall" + second}
    placement = reanchor(anchor, "copyright", COPYRIGHT, new_clauses)
    assert placement.state == "anchored", placement
    assert placement.clause_key == "crawling"
    assert at(placement, new_clauses["crawling"]) == anchor.quote


def test_a_quote_found_elsewhere_without_its_context_is_orphaned() -> None:
    anchor = anchor_on(COPYRIGHT, "robots.txt")
    new_clauses = {
        "transparency": TRANSPARENCY,
        "glossary": "A robots.txt file tells crawlers which parts of a site they may visit.",
    }
    placement = reanchor(anchor, "copyright", COPYRIGHT, new_clauses)
    assert placement == Placement(None, None, None, 0.0, "orphaned")


def test_a_quote_found_elsewhere_with_only_a_word_or_two_of_context_is_orphaned() -> None:
    anchor = anchor_on(TRANSPARENCY, "technical documentation")
    new_clauses = {
        "copyright": COPYRIGHT,
        "glossary": "Keep up the technical documentation of each release in one place.",
    }
    placement = reanchor(anchor, "transparency", TRANSPARENCY, new_clauses)
    assert placement == Placement(None, None, None, 0.0, "orphaned")


def test_a_clause_level_comment_follows_the_clause_key() -> None:
    whole_clause = Anchor("", "", "", None, None)
    rewritten = "Signatories shall publish a summary of the content used for training."
    assert reanchor(whole_clause, "transparency", TRANSPARENCY, {"transparency": rewritten}) == Placement(
        "transparency", None, None, 1.0, "anchored"
    )
    assert reanchor(whole_clause, "transparency", TRANSPARENCY, {"copyright": TRANSPARENCY}) == Placement(
        None, None, None, 0.0, "orphaned"
    )
    assert reanchor(whole_clause, "transparency", TRANSPARENCY, {}).state == "orphaned"


# --- diff_cache ----------------------------------------------------------------------------------


def test_a_shared_diff_cache_gives_the_same_placements_and_holds_one_diff_per_clause_pair() -> None:
    new = "Within a year, " + TRANSPARENCY.replace("training and testing process", "training process")
    new_clauses = {"transparency": new}
    anchors = [
        anchor_on(TRANSPARENCY, "technical documentation"),
        anchor_on(TRANSPARENCY, "training and testing process"),
        anchor_on(TRANSPARENCY, "AI Office upon request"),
        anchor_on(TRANSPARENCY, "the"),
    ]
    cache: dict[tuple[str, str], list[tuple[int, str]]] = {}
    uncached = [reanchor(anchor, "transparency", TRANSPARENCY, new_clauses) for anchor in anchors]
    first = [reanchor(anchor, "transparency", TRANSPARENCY, new_clauses, cache) for anchor in anchors]
    assert list(cache) == [(TRANSPARENCY, new)]
    diffs = cache[(TRANSPARENCY, new)]
    again = [reanchor(anchor, "transparency", TRANSPARENCY, new_clauses, cache) for anchor in anchors]
    assert first == again == uncached
    assert cache[(TRANSPARENCY, new)] is diffs
    assert [p.state for p in first] == ["anchored", "outdated", "anchored", "anchored"]


def test_comments_on_one_clause_share_one_diff_through_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    new = "Scope. " + TRANSPARENCY.replace("upon request", "on request")
    anchors = [anchor_on(TRANSPARENCY, quote) for quote in ("technical documentation", "the model", "AI Office")]
    calls: list[tuple[str, str]] = []
    real_word_diff = anchoring.word_diff

    def counting_word_diff(old: str, new_text: str, **kwargs: object) -> object:
        calls.append((old, new_text))
        return real_word_diff(old, new_text)

    monkeypatch.setattr(anchoring, "word_diff", counting_word_diff)
    anchoring.clause_diff.cache_clear()
    cache: dict[tuple[str, str], list[tuple[int, str]]] = {}
    placements = [reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new}, cache) for anchor in anchors]
    assert calls == [(TRANSPARENCY, new)]
    stored = cache[(TRANSPARENCY, new)]
    assert stored[0] == (1, "Scope. ")
    assert "".join(part for op, part in stored if op >= 0) == new
    assert "".join(part for op, part in stored if op <= 0) == TRANSPARENCY
    assert all(p.state == "anchored" and at(p, new) == a.quote for p, a in zip(placements, anchors, strict=True))
    # Versions never change, so the process keeps the diff even for callers that pass no cache.
    for anchor in anchors:
        reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert len(calls) == 1


def test_a_proposal_standing_where_the_quote_was_is_applied() -> None:
    anchor = anchor_on(TRANSPARENCY, "upon request")
    proposed = "within fourteen days of a request"
    new = TRANSPARENCY.replace("upon request", proposed)
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert placement.state in {"outdated", "orphaned"}
    assert proposal_applied(anchor, proposed, placement, new) is True


def test_a_proposal_applied_along_with_other_edits_is_applied() -> None:
    anchor = anchor_on(COPYRIGHT, "respect")
    proposed = "identify and comply with"
    new = "Preamble. " + COPYRIGHT.replace("respect", proposed).replace("the web", "the internet")
    placement = reanchor(anchor, "copyright", COPYRIGHT, {"copyright": new})
    assert proposal_applied(anchor, proposed, placement, new) is True


def test_an_unrelated_change_does_not_apply_a_proposal() -> None:
    anchor = anchor_on(TRANSPARENCY, "upon request")
    new = TRANSPARENCY.replace("technical documentation", "model documentation")
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert placement.state == "anchored"
    assert proposal_applied(anchor, "within fourteen days of a request", placement, new) is False


def test_a_proposal_that_deletes_the_end_of_the_quote_is_not_applied_while_the_quote_stands() -> None:
    """Proposing "shall" for "shall, where feasible," is applied only once the hedge is gone."""
    old = "Signatories shall, where feasible, document the model before placing it on the market."
    anchor = anchor_on(old, "shall, where feasible,")
    unrelated = old.replace("placing it on the market", "release")
    placement = reanchor(anchor, "c", old, {"c": unrelated})
    assert placement.state == "anchored"
    assert proposal_applied(anchor, "shall", placement, unrelated) is False
    applied = old.replace("shall, where feasible,", "shall")
    assert proposal_applied(anchor, "shall", reanchor(anchor, "c", old, {"c": applied}), applied) is True


def test_a_proposal_appearing_elsewhere_without_the_old_context_is_not_applied() -> None:
    anchor = anchor_on(TRANSPARENCY, "upon request")
    proposed = "within fourteen days"
    new = (
        TRANSPARENCY.replace("upon request", "when asked")
        + " Downstream providers shall receive it within fourteen days of signing a contract."
    )
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": new})
    assert proposal_applied(anchor, proposed, placement, new) is False


def test_proposal_applied_without_a_proposal_text_or_anchor_is_false() -> None:
    anchor = anchor_on(TRANSPARENCY, "upon request")
    placement = reanchor(anchor, "transparency", TRANSPARENCY, {"transparency": TRANSPARENCY})
    assert proposal_applied(anchor, "", placement, TRANSPARENCY) is False
    assert proposal_applied(anchor, "upon request", placement, None) is False
    whole_clause = Anchor("", "", "", None, None)
    clause_placement = Placement("transparency", None, None, 1.0, "anchored")
    assert proposal_applied(whole_clause, "anything", clause_placement, TRANSPARENCY) is False


# --- any text, any edit --------------------------------------------------------------------------

vocabulary = st.sampled_from(["shall", "may", "the", "model", "å", "😀", " ", ".", ",", "\n", "ab", "a"])
related_texts = st.lists(vocabulary, min_size=1, max_size=30).map("".join)


@settings(max_examples=200, deadline=None)
@given(old=related_texts, new=related_texts, other=related_texts, data=st.data())
def test_any_reanchoring_gives_a_well_formed_placement(old: str, new: str, other: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(old) - 1), label="start")
    end = data.draw(st.integers(start + 1, len(old)), label="end")
    anchor = make_anchor(old, start, end)
    keep_key = data.draw(st.booleans(), label="keep_key")
    new_clauses = {"c": new, "d": other} if keep_key else {"d": other, "e": new}
    placement = reanchor(anchor, "c", old, new_clauses)
    check_placement(placement, new_clauses)
    if placement.state == "anchored" and placement.start is not None:
        # Anchored means the exact quote stands there.
        assert at(placement, new_clauses[placement.clause_key or ""]) == anchor.quote
    if keep_key and new == old:
        assert placement == Placement("c", start, end, 1.0, "anchored")
