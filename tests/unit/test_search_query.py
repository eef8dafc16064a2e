"""The search query language: what `parse` accepts and refuses, `check_request`'s limits, and how the
parsed tree is compiled for each backend (no database, no index)."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from whoosh import query as wq

from app.search import whoosh_backend
from app.search.postgres_backend import to_tsquery_sql, to_tsquery_text
from app.search.query import MAX_PAGE, MAX_QUERY_CHARS, QueryError, SearchRequest, check_request, parse


def request(text: str = "risk", **fields: object) -> SearchRequest:
    return SearchRequest(text=text, audiences=("public",), **fields)  # type: ignore[arg-type]


# --- check_request ----------------------------------------------------------------------------------


def test_a_plain_request_passes() -> None:
    check_request(request())
    check_request(request("x" * MAX_QUERY_CHARS, kind="comment", page=MAX_PAGE, per_page=100))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": ""}, "Type something to search for."),
        ({"text": "   \t\n"}, "Type something to search for."),
        ({"text": "x" * (MAX_QUERY_CHARS + 1)}, f"at most {MAX_QUERY_CHARS} characters"),
        ({"kind": "user"}, "version text, working text or comments"),
        ({"kind": "VERSION"}, "version text, working text or comments"),
        ({"page": 0}, f"Pages run from 1 to {MAX_PAGE}"),
        ({"page": -1}, f"Pages run from 1 to {MAX_PAGE}"),
        ({"page": MAX_PAGE + 1}, f"Pages run from 1 to {MAX_PAGE}"),
        ({"page": 999_999}, f"Pages run from 1 to {MAX_PAGE}"),
        ({"per_page": 0}, "with 1 to 100 results each"),
        ({"per_page": 101}, "with 1 to 100 results each"),
    ],
)
def test_check_request_refuses_with_a_readable_sentence(fields: dict[str, object], message: str) -> None:
    text = str(fields.pop("text", "risk"))
    with pytest.raises(QueryError, match=re.escape(message)) as caught:
        check_request(request(text, **fields))
    # A sentence for a person: capitalised, ends with a full stop, no Python or whoosh internals.
    assert str(caught.value)[0].isupper()
    assert str(caught.value).endswith(".")
    assert "Error" not in str(caught.value)


# --- parse: what is accepted --------------------------------------------------------------------------


def test_a_word_is_a_term() -> None:
    assert parse("risk") == wq.Term("text", "risk")


def test_words_are_lowercased() -> None:
    assert parse("Systemic") == wq.Term("text", "systemic")


def test_a_quoted_phrase_is_a_phrase() -> None:
    tree = parse('"systemic risk"')
    assert isinstance(tree, wq.Phrase)
    assert list(tree.words) == ["systemic", "risk"]


def test_words_without_an_operator_all_have_to_match() -> None:
    assert parse("systemic risk") == wq.And([wq.Term("text", "systemic"), wq.Term("text", "risk")])


def test_and_or_not() -> None:
    assert parse("risk AND copyright") == wq.And([wq.Term("text", "risk"), wq.Term("text", "copyright")])
    assert parse("risk OR copyright") == wq.Or([wq.Term("text", "risk"), wq.Term("text", "copyright")])
    assert parse("risk NOT copyright") == wq.And([wq.Term("text", "risk"), wq.Not(wq.Term("text", "copyright"))])


def test_brackets_group() -> None:
    tree = parse("(risk OR safety) AND providers")
    assert tree == wq.And([wq.Or([wq.Term("text", "risk"), wq.Term("text", "safety")]), wq.Term("text", "providers")])


def test_a_trailing_star_is_a_prefix() -> None:
    assert parse("crawl*") == wq.Prefix("text", "crawl")
    assert parse("opt* AND risk") == wq.And([wq.Prefix("text", "opt"), wq.Term("text", "risk")])


def test_a_prefix_of_non_ascii_letters() -> None:
    assert parse("åtag*") == wq.Prefix("text", "åtag")


def test_operators_in_lower_case_are_words() -> None:
    # "or" is an English stop word, so it drops out instead of becoming an operator.
    assert parse("risk or safety") == wq.And([wq.Term("text", "risk"), wq.Term("text", "safety")])


def test_a_phrase_keeps_its_stop_words_for_the_backends_to_place() -> None:
    # PostgreSQL keeps the place of a dropped word ('text' <2> 'data'), so it has to see the word.
    assert list(parse('"text and data mining"').words) == ["text", "and", "data", "mining"]


def test_a_stop_word_of_one_language_only_stays_for_the_backends_to_drop() -> None:
    # "should" is an English stop word but not one of whoosh's few stop words for every language.
    assert parse("crawlers should honour") == wq.And(
        [wq.Term("text", "crawlers"), wq.Term("text", "should"), wq.Term("text", "honour")]
    )


# --- parse: what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ri*sk", "A * can only end a word"),
        ("*risk", "A * can only end a word"),
        ("ri?k", "A * can only end a word"),
        ("*", "at least two letters before a *"),
        ("*:*", "at least two letters before a *"),
        ("r*", "at least two letters before a *"),
        ("risk AND *", "at least two letters before a *"),
        ("(", "could not be understood"),
        (")", "could not be understood"),
        ('""', "could not be understood"),
        ("AND", "could not be understood"),
        ("NOT", "could not be understood"),
        ("OR OR", "could not be understood"),
        ("[a TO z]", "ranges and other special syntax are not supported"),
        ("risk AND {aa TO bb}", "ranges and other special syntax are not supported"),
        # Only stop words and single letters: nothing is left to search for.
        ("the", "could not be understood"),
        ('"of the"', "could not be understood"),
    ],
)
def test_parse_refuses_with_a_readable_message(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "(risk OR",
        "(risk AND",
        '"systemic risk',
        'risk"',
        "((risk)",
        "risk))",
        "(risk OR (safety",
        '"(risk"',
        "[risk",
        "risk]",
        "{",
        "}",
    ],
)
def test_unbalanced_brackets_and_quotes_give_a_query_or_a_query_error(text: str) -> None:
    try:
        tree = parse(text)
    except QueryError:
        return
    assert list(tree.leaves())


# --- parse over arbitrary text --------------------------------------------------------------------------

QUERY_ALPHABET = st.sampled_from(
    [*list("abcdefgh xyzåäöü*?\"'()[]{}:^~+-!\\/&|<>,.;=@#$%\t\n"), "AND", "OR", "NOT", "TO", " AND ", " OR ", " NOT "]
)
QUERY_TEXT = st.one_of(st.text(max_size=60), st.lists(QUERY_ALPHABET, max_size=25).map("".join))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERY_TEXT)
@example("(a OR")
@example('"unbalanced')
@example("ri*sk")
@example("\x00")
@example("risk^")
@example("NOT NOT NOT risk")
def test_parse_returns_a_query_or_raises_query_error_and_nothing_else(text: str) -> None:
    try:
        tree = parse(text)
    except QueryError as error:
        message = str(error)
    else:
        assert isinstance(tree, wq.Query)
        assert list(tree.leaves())
        return
    assert message, "a QueryError always says why"


# Whatever `parse` returns is handed to a backend's compiler; those must accept it or refuse it with a
# QueryError too, or a search box answers 500. Range syntax is the parser's; nothing in the app uses it.
COMPILER_EXAMPLES = ["[a TO z]", "risk AND {aa TO bb}"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERY_TEXT)
@example("[a TO z]")
@example("{risk TO safety}")
@example("o'br*")
@example("risk^2")
def test_every_parsed_query_compiles_for_postgresql_or_raises_query_error(text: str) -> None:
    with contextlib.suppress(QueryError):
        to_tsquery_text(parse(text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERY_TEXT)
@example("o'br*")
@example("risk^2")
@example("[a TO z]")
def test_every_parsed_query_compiles_for_whoosh_or_raises_query_error(text: str) -> None:
    schema = whoosh_backend._schema()
    with contextlib.suppress(QueryError):
        whoosh_backend.compile_query(parse(text), schema)


@pytest.mark.parametrize("text", COMPILER_EXAMPLES)
def test_range_syntax_is_refused_or_compiled_by_whoosh_not_a_crash(text: str) -> None:
    # Whoosh's parser reads `[a TO z]` as a TermRange, which whoosh_backend._compile does not know (a ValueError,
    # so a 500): `parse` has to refuse it, or a compiler has to.
    schema = whoosh_backend._schema()
    with contextlib.suppress(QueryError):
        whoosh_backend.compile_query(parse(text), schema)


# --- whoosh: compiling per language field ---------------------------------------------------------------


def whoosh_query(text: str) -> wq.Query:
    return whoosh_backend.compile_query(parse(text), whoosh_backend._schema())


def test_each_language_field_gets_its_own_stems() -> None:
    assert whoosh_query("risks") == wq.Or(
        [wq.Term("content_en", "risk"), wq.Term("content_sv", "risk"), wq.Term("content_other", "risks")]
    )


def test_a_stop_word_of_one_language_matches_nothing_in_it() -> None:
    # Not every English document (as `Every` did): English drops "should", the other fields still look for it.
    assert whoosh_query("should") == wq.Or([wq.Term("content_sv", "should"), wq.Term("content_other", "should")])
    assert whoosh_query("crawlers should honour") == wq.Or(
        [
            wq.And([wq.Term("content_en", "crawler"), wq.Term("content_en", "honour")]),
            wq.And([wq.Term("content_sv", w) for w in ("crawler", "should", "honour")]),
            wq.And([wq.Term("content_other", w) for w in ("crawlers", "should", "honour")]),
        ]
    )


def test_a_phrase_drops_the_stop_words_its_language_drops() -> None:
    english = whoosh_query('"text and data mining"').subqueries[0]
    assert english == wq.Phrase("content_en", ["text", "data", "mine"])


def test_prefixes_read_the_words_as_written_in_every_language() -> None:
    assert whoosh_query("mitigat*") == wq.Prefix("content_words", "mitigat")


def test_a_not_or_a_prefix_is_kept_to_its_own_language() -> None:
    # "NOT providers" would otherwise match every Swedish document through the English field.
    english, swedish, other = whoosh_query("NOT providers").subqueries
    assert english == wq.And([wq.Not(wq.Term("content_en", "provid")), wq.Term("language", "en")])
    assert swedish == wq.And([wq.Not(wq.Term("content_sv", "provider")), wq.Term("language", "sv")])
    assert other == wq.AndNot(
        wq.Not(wq.Term("content_other", "providers")),
        wq.Or([wq.Term("language", "en"), wq.Term("language", "sv")]),
    )
    # With a word of the language required, no guard is needed.
    assert whoosh_query("syst* AND evaluation").subqueries[0] == wq.And(
        [wq.Prefix("content_words", "syst"), wq.Term("content_en", "evalu")]
    )


def test_parts_looking_for_words_no_document_has_are_dropped_before_searching() -> None:
    # A stand-in for an index reader: the (field, word) pairs some document has.
    reader = {("content_en", "risk"), ("content_en", "provid"), ("language", "en"), ("language", "sv")}
    prune = whoosh_backend._without_missing_words
    assert prune(whoosh_query("risks"), reader) == wq.Term("content_en", "risk")
    assert prune(whoosh_query("risks AND zebulon"), reader) is None
    assert prune(whoosh_query("risks OR zebulon"), reader) == wq.Term("content_en", "risk")
    assert prune(whoosh_query("risks NOT zebulon"), reader) == wq.Term("content_en", "risk")
    # NOT of a word found nowhere is every document of the branch's language.
    english, swedish, other = prune(whoosh_query("NOT risks"), reader).subqueries
    assert english == wq.And([wq.Not(wq.Term("content_en", "risk")), wq.Term("language", "en")])
    assert swedish == wq.Term("language", "sv")
    assert other == wq.Not(wq.Or([wq.Term("language", "en"), wq.Term("language", "sv")]))
    assert prune(whoosh_query('"systemic risk"'), reader) is None


# --- PostgreSQL: compiling to to_tsquery() text ----------------------------------------------------------


def test_terms_phrases_prefixes_and_operators_compile_to_tsquery_syntax() -> None:
    assert to_tsquery_text(parse("risk")) == "'risk'"
    assert to_tsquery_text(parse('"systemic risk"')) == "('systemic' <-> 'risk')"
    assert to_tsquery_text(parse("crawl*")) == "'crawl':*"
    assert to_tsquery_text(parse("risk OR safety")) == "('risk' | 'safety')"
    assert to_tsquery_text(parse("risk NOT safety")) == "('risk' & !('safety'))"
    assert to_tsquery_text(parse("NOT risk")) == "!('risk')"


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (wq.Term("text", "it's"), "'it''s'"),
        (wq.Term("text", "''"), "''''''"),
        (wq.Term("text", "back\\slash"), "'backslash'"),
        (wq.Term("text", "\\'"), "''''"),
        (wq.Term("text", "a' | 'b"), "'a'' | ''b'"),
        (wq.Term("text", "x':* & !'y"), "'x'':* & !''y'"),
        (wq.Prefix("text", "o'br"), "'o''br':*"),
        (wq.Prefix("text", "a\\b"), "'ab':*"),
        (wq.Phrase("text", ["don't", "stop"]), "('don''t' <-> 'stop')"),
        (wq.Not(wq.Term("text", "'")), "!('''')"),
    ],
)
def test_quotes_are_doubled_and_backslashes_dropped(tree: wq.Query, expected: str) -> None:
    assert to_tsquery_text(tree) == expected


@given(st.text(max_size=30))
def test_a_lexeme_is_always_one_quoted_token(word: str) -> None:
    compiled = to_tsquery_text(wq.Term("text", word))
    assert compiled.startswith("'")
    assert compiled.endswith("'")
    inner = compiled[1:-1]
    assert "\\" not in inner
    # Every quote inside is doubled, so the lexeme cannot end early and smuggle in operators.
    assert inner.replace("''", "").count("'") == 0


def test_a_prefix_typed_with_a_quote_or_backslash_is_escaped() -> None:
    assert to_tsquery_text(parse("o'br*")) == "'o''br':*"
    assert to_tsquery_text(parse("a\\b*")) == "'ab':*"


def test_a_query_part_postgresql_cannot_express_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        to_tsquery_text(wq.TermRange("text", "a", "z"))


def test_prefixes_meet_the_words_as_written_and_the_rest_its_language() -> None:
    params: dict[str, str] = {}
    sql = to_tsquery_sql(parse("syst* AND NOT evaluation"), params)
    assert sql == "(to_tsquery('simple', :q0) && to_tsquery(cfg, :q1))"
    assert params == {"q0": "'syst':*", "q1": "!('evaluation')"}
    params = {}
    assert to_tsquery_sql(parse("NOT syst*"), params) == "(!! to_tsquery('simple', :q0))"
    # Without a prefix the whole query goes to to_tsquery, which drops its language's stop words.
    params = {}
    assert to_tsquery_sql(parse('"text and data mining"'), params) == "to_tsquery(cfg, :q0)"
    assert params == {"q0": "('text' <-> 'and' <-> 'data' <-> 'mining')"}
