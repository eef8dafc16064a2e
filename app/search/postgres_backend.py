"""The scale-out search backend: PostgreSQL full-text search (tsvector + GIN, ts_headline snippets).

Every process and machine shares it, since it lives in the same database as everything else. The query
tree from `app.search.query.parse` is compiled to a tsquery; each document is matched with the text-search
configuration of its own language.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from whoosh import query as wq

from app.errors import lazy_gettext as _l
from app.search.documents import SearchDocument
from app.search.models import SearchDocumentRow
from app.search.query import FACETS, Hit, QueryError, SearchRequest, SearchResults, parse

CONFIGS = {"en": "english", "sv": "swedish", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
           "nl": "dutch", "fi": "finnish", "da": "danish"}  # fmt: skip
OTHER = "simple"  # the configuration of every other language
START, STOP = "\x02", "\x03"
# PostgreSQL's parser reads `<meta content="noai">` as a tag and skips its words; a \x01 after each '<' stops
# it (the same replacement as the tsv column's, see the migration 63fd578a99f4), and is removed again.
TAG_BREAK = "\x01"
HEADLINE_OPTIONS = (
    f'StartSel={START}, StopSel={STOP}, MaxFragments=2, MaxWords=40, MinWords=12, FragmentDelimiter=" … "'
)
UNREADABLE = _l("The search could not be understood. Check quotes and brackets.")


def _lexeme(word: str) -> str:
    return "'" + word.replace("\\", "").replace("'", "''") + "'"


def to_tsquery_text(tree: wq.Query) -> str:
    """Compile a parsed query to to_tsquery() syntax; to_tsquery then stems each lexeme per language."""
    if isinstance(tree, wq.Term):
        return _lexeme(str(tree.text))
    if isinstance(tree, wq.Prefix):
        return _lexeme(str(tree.text)) + ":*"
    if isinstance(tree, wq.Phrase):
        return "(" + " <-> ".join(_lexeme(str(w)) for w in tree.words) + ")"
    if isinstance(tree, wq.Not):
        return "!(" + to_tsquery_text(tree.query) + ")"
    if isinstance(tree, wq.AndNot):
        return f"({to_tsquery_text(tree.a)} & !({to_tsquery_text(tree.b)}))"
    if isinstance(tree, wq.And):
        return "(" + " & ".join(to_tsquery_text(child) for child in tree.subqueries) + ")"
    if isinstance(tree, wq.Or):
        return "(" + " | ".join(to_tsquery_text(child) for child in tree.subqueries) + ")"
    raise QueryError(UNREADABLE)


def _has_prefix(tree: wq.Query) -> bool:
    return any(isinstance(leaf, wq.Prefix) for leaf in tree.leaves())


def to_tsquery_sql(tree: wq.Query, params: dict[str, str], *, prefixes_as_written: bool = True) -> str:
    """Compile a parsed query to an SQL expression of type tsquery, for the configuration `cfg`.

    Parts without a prefix go to `to_tsquery(cfg, …)` whole, so PostgreSQL drops that language's stop words
    as it always does (inside a phrase it keeps their place: 'text' <2> 'data'). A prefix is matched
    against the words as written (the 'simple' half of the tsv column), since the stem of "mitigat" is not a
    prefix of the stem of "mitigate"; the tsquery operators && || !! drop an empty side as to_tsquery does.
    With `prefixes_as_written` false a prefix is stemmed like the rest, which is what ts_headline can mark.
    """
    if not _has_prefix(tree) or not prefixes_as_written:
        name = f"q{len(params)}"
        params[name] = to_tsquery_text(tree)
        return f"to_tsquery(cfg, :{name})"
    if isinstance(tree, wq.Prefix):
        name = f"q{len(params)}"
        params[name] = to_tsquery_text(tree)
        return f"to_tsquery('simple', :{name})"
    if isinstance(tree, wq.Not):
        return f"(!! {to_tsquery_sql(tree.query, params)})"
    if isinstance(tree, wq.AndNot):
        return f"({to_tsquery_sql(tree.a, params)} && !! {to_tsquery_sql(tree.b, params)})"
    if isinstance(tree, (wq.And, wq.Or)):
        operator = " && " if isinstance(tree, wq.And) else " || "
        return "(" + operator.join(to_tsquery_sql(child, params) for child in tree.subqueries) + ")"
    raise QueryError(UNREADABLE)


class PostgresBackend:
    name = "postgresql"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def is_empty(self) -> bool:
        with self.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(SearchDocumentRow)) == 0

    def replace_sources(self, documents: dict[str, list[SearchDocument]]) -> None:
        rows = [self._row(doc) for docs in documents.values() for doc in docs]
        with self.engine.begin() as connection:
            # The indexer must never wait for ever: a migration holding the table (while the indexer's own
            # session holds rows the migration waits for) would hang both. Give up; the queue keeps the change.
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(delete(SearchDocumentRow).where(SearchDocumentRow.source.in_(list(documents))))
            if rows:
                connection.execute(insert(SearchDocumentRow), rows)

    def clear(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(SearchDocumentRow))

    def finish_rebuild(self) -> None:
        """Bring the planner's statistics and the GIN index up to date after a bulk load.

        Until autovacuum gets to it, the planner misjudges the freshly loaded GIN index and scans the whole
        table even for a word found nowhere (measured at 100k documents: 640 ms instead of 23 ms).
        """
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE search_documents"))

    @staticmethod
    def _row(doc: SearchDocument) -> dict[str, Any]:
        return {
            "id": doc.id, "source": doc.source, "kind": doc.kind, "code": doc.code, "code_title": doc.code_title,
            "version": doc.version, "clause": doc.clause, "title": doc.title, "content": doc.content,
            "language": doc.language, "audience": doc.audience, "category": doc.category,
            "comment_type": doc.comment_type, "disposition": doc.disposition, "date": doc.date, "url": doc.url,
        }  # fmt: skip

    @staticmethod
    def _tsqueries(connection: Connection, tree: wq.Query) -> tuple[dict[str, str], dict[str, str]]:
        """Return each language's tsquery (as text, to match with) and the one ts_headline marks words with.

        They are worked out in a statement of their own so that the search itself gets them as constants:
        the planner can then estimate them and use the GIN index, and languages whose tsqueries are the same
        are matched in one index scan.
        """
        params: dict[str, str] = {}
        match = to_tsquery_sql(tree, params)
        headline = to_tsquery_sql(tree, params, prefixes_as_written=False)
        keys = [*CONFIGS, ""]
        rows = connection.execute(
            text(
                f"SELECT key, ({match})::text, ({headline})::text FROM unnest(CAST(:keys AS text[]),"  # noqa: S608 - compiled from the query tree with bound values
                " CAST(:configs AS regconfig[])) AS languages(key, cfg)"
            ),
            {**params, "keys": keys, "configs": [*CONFIGS.values(), OTHER]},
        ).all()
        return {key: m for key, m, _ in rows}, {key: h for key, _, h in rows}

    def _where(self, request: SearchRequest, groups: dict[str, list[str]], params: dict[str, Any]) -> str:
        """The match (one tsquery per group of languages that share it) and the filters, as an SQL condition."""
        matches = []
        for number, (tsquery, keys) in enumerate(groups.items()):
            params[f"m{number}"] = tsquery
            matches.append(f"({_languages(keys)} AND tsv @@ CAST(:m{number} AS tsquery))")
        clauses = ["(" + " OR ".join(matches) + ")"]
        if request.audiences is not None:
            clauses.append("audience = ANY(:audiences)")
            params["audiences"] = list(request.audiences)
        for name in ("code", "clause", "kind", "category", "comment_type", "disposition", "version"):
            value = getattr(request, name)
            if value is not None and value != "":
                clauses.append(f"{name} = :{name}")
                params[name] = value
        if request.date_from:
            clauses.append("date >= :date_from")
            params["date_from"] = request.date_from
        if request.date_to:
            clauses.append("date <= :date_to")
            params["date_to"] = request.date_to
        return " AND ".join(clauses)

    def search(self, request: SearchRequest) -> SearchResults:
        tree = parse(request.text)
        with self.engine.connect() as connection:
            try:
                matches, headlines = self._tsqueries(connection, tree)
            except DBAPIError as error:
                if "tsquery" in str(error).lower():
                    raise QueryError(UNREADABLE) from error
                raise
            groups: dict[str, list[str]] = {}
            for key, tsquery in matches.items():
                if tsquery:  # an empty tsquery (stop words only, in this language) matches nothing
                    groups.setdefault(tsquery, []).append(key)
            if not groups:
                return SearchResults(0, [], {name: {} for name in FACETS}, request.page, request.per_page)
            params: dict[str, Any] = {"limit": request.per_page, "offset": (request.page - 1) * request.per_page}
            where = self._where(request, groups, params)
            rank_query = _by_group([(keys, f":m{n}") for n, keys in enumerate(groups.values())])
            for key, tsquery in headlines.items():
                params[f"h_{key or 'other'}"] = tsquery
            headline_query = _by_language({key: f":h_{key or 'other'}" for key in headlines})
            config = _by_language({key: f"'{cfg}'" for key, cfg in CONFIGS.items()} | {"": f"'{OTHER}'"}, "regconfig")
            rows = connection.execute(text(_search_sql(where, rank_query, headline_query, config)), params).all()
        return _results(rows, request)

    def close(self) -> None:
        return None


def _languages(keys: list[str]) -> str:
    """An SQL condition for documents in these languages ("" stands for every language without a configuration)."""
    if "" not in keys:
        return f"language IN ({', '.join(repr(key) for key in keys)})"
    excluded = [key for key in CONFIGS if key not in keys]
    return f"language NOT IN ({', '.join(repr(key) for key in excluded)})" if excluded else "TRUE"


def _by_group(groups: list[tuple[list[str], str]]) -> str:
    """The tsquery of the row's group of languages (one CASE branch per group, none for a single group: the
    rank is computed for every matched row)."""
    if len(groups) == 1:
        return f"CAST({groups[0][1]} AS tsquery)"
    cases = " ".join(f"WHEN {_languages(keys)} THEN CAST({value} AS tsquery)" for keys, value in groups)
    return f"CASE {cases} END"


def _by_language(values: dict[str, str], cast: str = "tsquery") -> str:
    """A CASE over the document's language; "" is every other language."""
    default = values.get("")
    cases = " ".join(f"WHEN '{key}' THEN CAST({value} AS {cast})" for key, value in values.items() if key)
    return f"CASE language {cases} ELSE CAST({default} AS {cast}) END" if default else f"CASE language {cases} END"


def _search_sql(where: str, rank_query: str, headline_query: str, config: str) -> str:
    """One statement for the page, the total and the facets, so the match is evaluated once.

    Before, the page, the count and five GROUP BYs each matched again: seven sequential scans of the table for
    a common word (about 870 ms at 100k documents, against about 60 ms this way).
    """
    facets = ", ".join(FACETS)
    return f"""
        WITH matched AS MATERIALIZED (
            SELECT id, date, {facets}, ts_rank_cd(tsv, {rank_query}) AS rank
            FROM search_documents WHERE {where}
        ), page AS (
            SELECT id, rank FROM matched ORDER BY rank DESC, date DESC, id LIMIT :limit OFFSET :offset
        )
        SELECT 0 AS part, page.rank, d.id, d.kind, d.code, d.code_title, d.version, d.clause, d.title, d.url,
               d.date, d.category, d.comment_type, d.disposition,
               ts_headline({config}, replace(d.content, '<', '<' || chr(1)), {headline_query},
                           '{HEADLINE_OPTIONS}') AS snippet,
               NULL::bigint AS count, NULL::integer AS grouping
        FROM page JOIN search_documents d ON d.id = page.id  -- `language` below is d's: page has none
        UNION ALL
        SELECT 1, NULL, NULL, kind, code, NULL, NULL, NULL, NULL, NULL, NULL, category, comment_type, disposition,
               NULL, count(*), GROUPING({facets})
        FROM matched GROUP BY GROUPING SETS ((), {", ".join(f"({name})" for name in FACETS)})
    """  # noqa: S608 - only constants and SQL compiled from constants are formatted in; values are bound


def _results(rows: list[Any], request: SearchRequest) -> SearchResults:
    """Split the rows of `_search_sql` into the page of hits, the total and the facet counts."""
    everything = (1 << len(FACETS)) - 1
    total = 0
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    page = []
    for row in rows:
        if row.part == 0:
            page.append(row)
        elif row.grouping == everything:
            total = row.count
        else:
            # GROUPING() sets a bit for each column not grouped by, the first column's bit the highest.
            name = FACETS[len(FACETS) - (everything ^ row.grouping).bit_length()]
            value = getattr(row, name)
            if value:
                facets[name][str(value)] = row.count
    page.sort(key=lambda row: (-row.rank, -row.date.timestamp(), row.id))
    hits = [
        Hit(
            id=row.id, kind=row.kind, code=row.code, code_title=row.code_title, version=row.version,
            clause=row.clause, title=row.title, url=row.url, snippet_html=_snippet(row.snippet), date=row.date,
            category=row.category, disposition=row.disposition,
        )
        for row in page
    ]  # fmt: skip
    return SearchResults(int(total), hits, facets, request.page, request.per_page)


def _snippet(raw: str) -> str:
    """Escape the document text, then turn the highlight markers into <mark>."""
    return html.escape(raw.replace(TAG_BREAK, "")).replace(START, "<mark>").replace(STOP, "</mark>")
