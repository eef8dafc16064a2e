"""Grouping near-duplicate comments (campaign letters) with MinHash LSH (app/comments/campaigns.py)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from app.comments.campaigns import SHINGLE_WORDS, campaign_groups, normalise, shingles

LETTER = (
    "{greeting} I am writing as a concerned citizen about the second draft of the General-Purpose AI Code of "
    "Practice. The copyright chapter must require providers to respect machine-readable rights reservations, "
    "including robots.txt, and to exclude piracy sites from crawling. Providers should publish a sufficiently "
    "detailed summary of the content used for training, so that authors, musicians and journalists can "
    "enforce their rights. Please do not weaken these commitments in the final text. {closing} {name}"
)
GREETINGS = ["Dear AI Office,", "Dear Chairs,", "To the chairs:", "Dear members of the working group,", "Hello,"]
CLOSINGS = ["Yours sincerely,", "Kind regards,", "Best wishes,", "Sincerely", "Thank you,"]
FIRST_NAMES = ["Anna", "Jonas", "Marie", "Luca", "Sofia", "Mikael", "Ines", "Tomasz", "Eva", "Pieter", "Zoë", "Ángel"]
LAST_NAMES = ["Lindqvist", "Müller", "Dubois", "Rossi", "Nowak", "García", "Jansen", "O'Brien", "Novák", "Smith"]


def campaign_copy(rng: random.Random, *, personal_frame: bool = False) -> str:
    """One signer's copy of the letter: own name, careless punctuation and case (and own greeting and sign-off)."""
    text = LETTER.format(
        greeting=rng.choice(GREETINGS) if personal_frame else GREETINGS[0],
        closing=rng.choice(CLOSINGS) if personal_frame else CLOSINGS[0],
        name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
    )
    if rng.random() < 0.5:
        text = text.replace(",", "")
    if rng.random() < 0.3:
        text = text.replace(". ", "! ", 1)
    if rng.random() < 0.3:
        text = text.replace("robots.txt", "robots . txt")
    case = rng.choice([str, str.lower, str.upper, str.title])
    text = case(text)
    if rng.random() < 0.3:
        text = "  " + text.replace(" ", "  ", 5) + "\n"
    return text


DISTINCT = {
    3: (
        "The transparency chapter should add a key performance indicator for how quickly the model documentation "
        "form is updated after a new release, and say who at the AI Office reviews it."
    ),
    5: (
        "As a downstream provider we need the model documentation to include known limitations and the "
        "intended uses, otherwise we cannot meet our own obligations under the AI Act."
    ),
    8: (
        "Measure 2.3 on systemic risk is too vague: serious incident reporting needs a deadline in days, "
        "a template, and a named contact point in each member state."
    ),
    13: (
        "Please define what counts as a sufficiently detailed summary of training content; rights holders and "
        "providers read the current wording in opposite ways."
    ),
    21: (
        "The copyright chapter is balanced. We support the commitment to respect robots.txt and ask that other "
        "machine-readable protocols be named once they are standardised."
    ),
}


# --- normalise and shingles -----------------------------------------------------------------------


def test_normalise_drops_case_punctuation_and_extra_spaces() -> None:
    assert normalise("  Dear   AI-Office,\n\tPlease   DO NOT weaken it!!! ") == "dear ai office please do not weaken it"
    assert normalise("") == normalise("  ...  ") == normalise("—!?") == ""


def test_normalise_folds_compatibility_forms_and_equivalent_accents() -> None:
    assert normalise("ＡＩ Ｏｆｆｉｃｅ") == "ai office"
    assert normalise("ﬁnal text") == "final text"
    # A precomposed letter and a letter followed by its combining accent read the same.
    assert normalise("Zo\u00eb M\u00fcller") == normalise("Zoe\u0308 Mu\u0308ller")


def test_normalise_folds_case_fully_so_an_all_caps_copy_reads_the_same() -> None:
    """In capitals "Maßnahme" is "MASSNAHME"; lowercasing alone does not bring it back, case folding does."""
    letter = "Diese Maßnahme muss im endgültigen Text bleiben."
    assert letter.upper() == "DIESE MASSNAHME MUSS IM ENDGÜLTIGEN TEXT BLEIBEN."
    assert normalise(letter.upper()) == normalise(letter)


def test_shingles_are_runs_of_three_words() -> None:
    assert SHINGLE_WORDS == 3
    assert shingles("Providers shall, publish it.") == {"providers shall publish", "shall publish it"}
    assert shingles("I agree!") == {"i agree"}
    assert shingles("Agree") == {"agree"}
    assert shingles(" !! ") == set()


# --- campaign_groups ------------------------------------------------------------------------------


def test_four_hundred_copies_of_a_letter_form_one_group_named_by_the_smallest_id() -> None:
    rng = random.Random(2025)
    ids = rng.sample(range(100, 10_000), 400)
    texts = {cid: campaign_copy(rng) for cid in ids}
    assert len(set(texts.values())) > 250  # the copies really do differ
    texts.update(DISTINCT)
    groups = campaign_groups(texts)
    assert set(groups) == set(ids)
    assert set(groups.values()) == {min(ids)}
    for cid in DISTINCT:
        assert cid not in groups


def test_two_copies_that_differ_only_in_the_signers_first_name_are_grouped() -> None:
    """95 % of the two letters' shingles are shared, far above the 0.8 threshold."""
    frame = {"greeting": "Dear members of the working group,", "closing": "Yours sincerely,"}
    marie = LETTER.format(**frame, name="Marie Dubois")
    jonas = LETTER.format(**frame, name="Jonas Dubois")
    a, b = shingles(marie), shingles(jonas)
    assert len(a & b) / len(a | b) > 0.95
    assert campaign_groups({1: marie, 2: jonas}) == {1: 1, 2: 1}


def test_distinct_comments_are_not_grouped() -> None:
    assert campaign_groups(DISTINCT) == {}


def test_two_campaigns_form_two_groups() -> None:
    rng = random.Random(7)
    other_letter = (
        "As a member of a research institute I ask the chairs to keep the open-source exemption broad, so that "
        "models released under free licences are not burdened with duties written for closed commercial models, "
        "and so that researchers can keep sharing their work with the public. {name}"
    )
    first = {cid: campaign_copy(rng, personal_frame=True) for cid in range(50, 80)}
    second = {
        cid: other_letter.format(name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}").upper()
        for cid in range(30, 60, 2)
    }
    first = {cid: text for cid, text in first.items() if cid not in second}
    groups = campaign_groups({**first, **second, **DISTINCT})
    assert {cid: groups[cid] for cid in first} == dict.fromkeys(first, min(first))
    assert {cid: groups[cid] for cid in second} == dict.fromkeys(second, 30)
    assert not set(DISTINCT) & set(groups)


def test_empty_and_punctuation_only_texts_are_ignored() -> None:
    texts = {1: "", 2: "", 3: "   ", 4: "!!!", 5: "...", 6: "\n\t", 7: DISTINCT[3]}
    assert campaign_groups(texts) == {}
    assert campaign_groups({}) == {}
    # Empty texts do not join a group of real duplicates either.
    groups = campaign_groups({1: "", 2: DISTINCT[5], 3: "?!", 4: DISTINCT[5].upper()})
    assert groups == {2: 2, 4: 2}


def test_a_lower_threshold_groups_looser_paraphrases() -> None:
    base = (
        "Providers should publish a sufficiently detailed summary of the content used for training so that "
        "rights holders can enforce their rights and the AI Office can check compliance."
    )
    paraphrase = base.replace("sufficiently detailed", "detailed").replace("can check", "is able to check")
    assert campaign_groups({1: base, 2: DISTINCT[21]}, similarity=0.5) == {}
    assert campaign_groups({1: base, 2: paraphrase}, similarity=0.3) == {1: 1, 2: 1}


# --- any input ------------------------------------------------------------------------------------

WORDS = ["the", "code", "shall", "Providers", "AI", "office", "robots.txt", "!", ",", "Ö", "", " "]
comment_texts = st.one_of(
    st.sampled_from(["", "  ", "!!", LETTER, DISTINCT[3], DISTINCT[8], "I agree.", "i AGREE"]),
    st.lists(st.sampled_from(WORDS), max_size=25).map(" ".join),
    st.text(max_size=40),
)
comment_sets = st.dictionaries(st.integers(-50, 10_000), comment_texts, max_size=30)


@settings(max_examples=120, deadline=None)
@given(texts=comment_sets)
def test_groups_only_name_given_ids_and_every_group_has_two_members_led_by_the_smallest(
    texts: dict[int, str],
) -> None:
    groups = campaign_groups(texts)
    assert set(groups) <= set(texts)
    members: dict[int, list[int]] = {}
    for cid, group in groups.items():
        members.setdefault(group, []).append(cid)
        assert shingles(texts[cid])  # nothing empty is ever grouped
    for group, ids in members.items():
        assert len(ids) >= 2
        assert group in ids
        assert group == min(ids)
        assert groups[group] == group


# Letters whose case maps one to one (the German sharp s has its own test above).
letter_texts = st.one_of(
    st.sampled_from([LETTER, DISTINCT[3], DISTINCT[8], "I agree.", "Zoë Müller"]),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=25).map(" ".join),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzåäöéüABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;!?-\n", max_size=60),
).filter(lambda text: bool(shingles(text)))


@settings(max_examples=80, deadline=None)
@given(texts=comment_sets, data=st.data())
def test_copies_differing_only_in_case_and_punctuation_share_a_group(
    texts: dict[int, str], data: st.DataObject
) -> None:
    original = data.draw(letter_texts, label="original")
    ids = data.draw(st.lists(st.integers(20_000, 30_000), min_size=2, max_size=5, unique=True), label="ids")
    for n, cid in enumerate(ids):
        texts[cid] = (original.upper() if n % 2 else original.lower()) + "!" * n
    groups = campaign_groups(texts)
    assert all(cid in groups for cid in ids)
    assert len({groups[cid] for cid in ids}) == 1
    assert groups[ids[0]] <= min(ids)
