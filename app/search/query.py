"""The search request, its answer, and the query language both backends share.

Queries are parsed once with whoosh's parser (quoted phrases, AND/OR/NOT, trailing * for prefixes) into a
small tree that each backend compiles: whoosh uses it directly, PostgreSQL compiles it to a tsquery.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from whoosh import query as wq
from whoosh.analysis import STOP_WORDS, StandardAnalyzer
from whoosh.fields import TEXT, Schema
from whoosh.qparser import QueryParser

from app.errors import Text
from app.errors import lazy_gettext as _l

MAX_QUERY_CHARS = 1000
MAX_PAGE = 500
FACETS = ("kind", "code", "category", "comment_type", "disposition")
KINDS = ("version", "working", "comment")


class QueryError(ValueError):
    """A query a person wrote that cannot be searched; the message says why, in their terms.

    The message may be a lazy translation: `str(error)` gives it in the reader's language.
    """

    def __init__(self, message: Text) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class SearchRequest:
    text: str
    # None means every audience (site admins); otherwise "public" and the viewer's "group-<id>" values.
    audiences: tuple[str, ...] | None
    code: str | None = None
    version: int | None = None
    clause: str | None = None
    kind: str | None = None
    category: str | None = None
    comment_type: str | None = None
    disposition: str | None = None
    date_from: dt.datetime | None = None
    date_to: dt.datetime | None = None
    page: int = 1
    per_page: int = 20


@dataclass(frozen=True)
class Hit:
    id: str
    kind: str
    code: str
    code_title: str
    version: int | None
    clause: str | None
    title: str
    url: str
    snippet_html: str
    date: dt.datetime
    category: str | None = None
    disposition: str | None = None


@dataclass
class SearchResults:
    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    page: int = 1
    per_page: int = 20

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


# A plain field (tokenised and lowercased, not stemmed, no stop list); each backend stems for the document's
# language and drops that language's stop words. Stop words stay inside phrases because PostgreSQL counts the
# word they stood for ("text and data mining" is 'text' <2> 'data' <-> 'mine'); outside phrases the few
# English words whoosh's parser always dropped ("the", "or", "of") still drop out here, for every language.
_parser = QueryParser("text", Schema(text=TEXT(phrase=True, analyzer=StandardAnalyzer(stoplist=None))))


def _is_filler(word: str) -> bool:
    return len(word) < 2 or word in STOP_WORDS


def _drop_fillers(tree: wq.Query) -> wq.Query:
    """Drop stop words and single letters outside phrases, and phrases of nothing else."""
    if isinstance(tree, wq.Term):
        return wq.NullQuery if _is_filler(str(tree.text)) else tree
    if isinstance(tree, wq.Phrase):
        return wq.NullQuery if all(_is_filler(str(word)) for word in tree.words) else tree
    if isinstance(tree, (wq.And, wq.Or)):
        return type(tree)([_drop_fillers(child) for child in tree.subqueries])
    if isinstance(tree, wq.Not):
        return wq.Not(_drop_fillers(tree.query))
    if isinstance(tree, wq.AndNot):
        return wq.AndNot(_drop_fillers(tree.a), _drop_fillers(tree.b))
    return tree


def check_request(request: SearchRequest) -> None:
    """Refuse requests that cannot be served, with a sentence a person understands.

    Raises:
        QueryError: for an empty or over-long query, an unknown kind or an absurd page.
    """
    if not request.text.strip():
        raise QueryError(_l("Type something to search for."))
    if len(request.text) > MAX_QUERY_CHARS:
        raise QueryError(_l("A search can be at most %(count)d characters long.", count=MAX_QUERY_CHARS))
    if request.kind and request.kind not in KINDS:
        raise QueryError(_l("Search in version text, working text or comments."))
    if not 1 <= request.page <= MAX_PAGE or not 1 <= request.per_page <= 100:
        raise QueryError(_l("Pages run from 1 to %(last)d, with 1 to 100 results each.", last=MAX_PAGE))


def parse(text: str) -> wq.Query:
    """Parse a query into whoosh's tree over the field `text`.

    Raises:
        QueryError: when nothing searchable is left, or for a wildcard that is not at the end of a word.
    """
    try:
        tree = _parser.parse(text)
    except Exception as error:  # whoosh's parser raises assorted errors on odd input
        raise QueryError(_l("The search could not be understood. Check quotes and brackets.")) from error
    tree = _drop_fillers(tree).normalize()
    if tree is wq.NullQuery or not list(tree.leaves()):
        raise QueryError(_l("The search could not be understood. Check quotes and brackets."))
    for leaf in tree.leaves():
        if not isinstance(leaf, (wq.Term, wq.Phrase, wq.Prefix, wq.Wildcard, wq.Every)):
            raise QueryError(
                _l("The search could not be understood: ranges and other special syntax are not supported.")
            )
        if isinstance(leaf, wq.Every):
            raise QueryError(_l("Give at least two letters before a *."))
        if isinstance(leaf, wq.Wildcard) and not isinstance(leaf, wq.Prefix):
            raise QueryError(_l("A * can only end a word, as in opt*."))
        if isinstance(leaf, (wq.Prefix, wq.Wildcard)) and len(str(leaf.text).rstrip("*")) < 2:
            raise QueryError(_l("Give at least two letters before a *."))
    return tree
