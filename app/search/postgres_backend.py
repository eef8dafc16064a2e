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
from app.search.models import SearchDocumentRow, SearchMatchRow
from app.search.query import FACETS, Hit, QueryError, SearchRequest, SearchResults, parse

CONFIGS = {"en": "english", "sv": "swedish", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
           "nl": "dutch", "fi": "finnish", "da": "danish"}  # fmt: skip
OTHER = "simple"  # the configuration of every other language
START, STOP = "\x02", "\x03"
# PostgreSQL's parser reads `<meta content="noai">` as a tag and skips its words; a \x01 after each '<' stops
# it (the same replacement as the tsv column's, see the migration 63fd578a99f4), and is removed again.
TAG_BREAK = "\x01"
# A document's words (its `search_matches.tsv`): stemmed in its language's configuration, with positions (for
# phrases and the rank), and every word as written, positions stripped (for prefixes: the stem of "mitigate"
# is "mitig", so 'mitigat':* must meet the word as written).
_LANGUAGE_CONFIG = (
    "CASE language "
    + " ".join(f"WHEN '{key}' THEN '{cfg}'::regconfig" for key, cfg in CONFIGS.items())
    + f" ELSE '{OTHER}'::regconfig END"
)
_TEXT = "replace(coalesce(title, '') || ' ' || coalesce(content, ''), '<', '<' || chr(1))"
VECTOR = f"to_tsvector({_LANGUAGE_CONFIG}, {_TEXT}) || strip(to_tsvector('simple', {_TEXT}))"
# The languages of the indexed documents, one probe of the index on `language` per language.
_PRESENT_LANGUAGES = (
    "WITH RECURSIVE present(language) AS ("
    " (SELECT language FROM search_matches ORDER BY language LIMIT 1)"
    " UNION ALL SELECT (SELECT m.language FROM search_matches m WHERE m.language > present.language"
    " ORDER BY m.language LIMIT 1) FROM present WHERE present.language IS NOT NULL)"
)
MATCH_COLUMNS = "id, language, audience, kind, code, version, clause, category, comment_type, disposition, date"
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

    def unmatched_sources(self) -> list[str]:
        """Sources with a document but no row of words: written by a process running older code (which knew
        no `search_matches`) while the database was upgraded; they must be indexed again to be found."""
        with self.engine.connect() as connection:
            unmatched = (
                select(SearchDocumentRow.source)
                .where(~select(SearchMatchRow.id).where(SearchMatchRow.id == SearchDocumentRow.id).exists())
                .distinct()
            )
            return list(connection.scalars(unmatched))

    def replace_sources(self, documents: dict[str, list[SearchDocument]]) -> None:
        rows = [self._row(doc) for docs in documents.values() for doc in docs]
        sources = list(documents)
        with self.engine.begin() as connection:
            # The indexer must never wait for ever: a migration holding the table (while the indexer's own
            # session holds rows the migration waits for) would hang both. Give up; the queue keeps the change.
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(
                text(
                    "DELETE FROM search_matches WHERE id IN"
                    " (SELECT id FROM search_documents WHERE source = ANY(:sources))"
                ),
                {"sources": sources},
            )
            connection.execute(delete(SearchDocumentRow).where(SearchDocumentRow.source.in_(sources)))
            if rows:
                connection.execute(insert(SearchDocumentRow), rows)
                connection.execute(
                    text(
                        f"INSERT INTO search_matches ({MATCH_COLUMNS}, tsv)"  # noqa: S608 - constants only
                        f" SELECT {MATCH_COLUMNS}, {VECTOR} FROM search_documents WHERE source = ANY(:sources)"
                    ),
                    {"sources": sources},
                )

    def clear(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(SearchMatchRow))
            connection.execute(delete(SearchDocumentRow))

    def finish_rebuild(self) -> None:
        """Bring the planner's statistics and the GIN index up to date after a bulk load.

        Until autovacuum gets to it, the planner misjudges the freshly loaded GIN index and scans the whole
        table even for a word found nowhere (measured at 100k documents: 640 ms instead of 23 ms).
        """
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE search_documents"))
            connection.execute(text("VACUUM ANALYZE search_matches"))

    @staticmethod
    def _row(doc: SearchDocument) -> dict[str, Any]:
        return {
            "id": doc.id, "source": doc.source, "kind": doc.kind, "code": doc.code, "code_title": doc.code_title,
            "version": doc.version, "clause": doc.clause, "title": doc.title, "content": doc.content,
            "language": doc.language, "audience": doc.audience, "category": doc.category,
            "comment_type": doc.comment_type, "disposition": doc.disposition, "date": doc.date, "url": doc.url,
        }  # fmt: skip

    @staticmethod
    def _tsqueries(connection: Connection, tree: wq.Query) -> tuple[dict[str, str], dict[str, str], set[str]]:
        """Return each language's tsquery (as text, to match with), the one ts_headline marks words with, and
        the languages of the indexed documents.

        They are worked out in a statement of their own so that the search itself gets them as constants:
        the planner can then estimate them and use the GIN index, and languages whose tsqueries are the same
        are matched in one index scan. The languages are read from the index on `search_matches.language`,
        one step per language (a few index probes).
        """
        params: dict[str, str] = {}
        match = to_tsquery_sql(tree, params)
        headline = to_tsquery_sql(tree, params, prefixes_as_written=False)
        keys = [*CONFIGS, ""]
        sql = (
            f"{_PRESENT_LANGUAGES} SELECT key, ({match})::text, ({headline})::text,"  # noqa: S608 - compiled from the query tree with bound values
            " (SELECT array_agg(language) FROM present WHERE language IS NOT NULL),"
            # No JIT compilation (tens of milliseconds, for no expression worth it) and no parallel workers:
            # on two cores shared with other requests they lengthened the slowest searches (max 196 → 145 ms
            # as a member at 100k, p95 the same).
            " set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)"
            " FROM unnest(CAST(:keys AS text[]), CAST(:configs AS regconfig[])) AS languages(key, cfg)"
        )
        rows = connection.execute(text(sql), {**params, "keys": keys, "configs": [*CONFIGS.values(), OTHER]}).all()
        present = set(rows[0][3] or []) if rows else set()
        return {row[0]: row[1] for row in rows}, {row[0]: row[2] for row in rows}, present

    def search(self, request: SearchRequest) -> SearchResults:
        tree = parse(request.text)
        with self.engine.connect() as connection:
            try:
                matches, headlines, present = self._tsqueries(connection, tree)
            except DBAPIError as error:
                if "tsquery" in str(error).lower():
                    raise QueryError(UNREADABLE) from error
                raise
            groups = _groups(matches, present)
            if not groups:
                return SearchResults(0, [], {name: {} for name in FACETS}, request.page, request.per_page)
            params: dict[str, Any] = {"limit": request.per_page, "offset": (request.page - 1) * request.per_page}
            filters = _filters(request, params)
            for number, tsquery in enumerate(groups):
                params[f"m{number}"] = tsquery
            for key, tsquery in headlines.items():
                params[f"h_{key or 'other'}"] = tsquery
            headline_query = _by_language({key: f":h_{key or 'other'}" for key in headlines})
            config = _by_language({key: f"'{cfg}'" for key, cfg in CONFIGS.items()} | {"": f"'{OTHER}'"}, "regconfig")
            sql = _search_sql(_matched(groups, present, filters, ranked=True),
                              _matched(groups, present, filters, ranked=False), headline_query, config)  # fmt: skip
            rows = connection.execute(text(sql), params).all()
        return _results(rows, request)

    def close(self) -> None:
        return None


def _groups(matches: dict[str, str], present: set[str]) -> dict[str, list[str]]:
    """Group the languages of the indexed documents by their tsquery ("" stands for languages without a
    configuration of their own). A language whose tsquery is empty (stop words only) matches nothing."""
    groups: dict[str, list[str]] = {}
    for language in sorted(present):
        tsquery = matches.get(language if language in CONFIGS else "")
        if tsquery:
            groups.setdefault(tsquery, []).append(language)
    return groups


def _filters(request: SearchRequest, params: dict[str, Any]) -> list[str]:
    """The request's filters (the audiences first: the viewer's visibility) as SQL conditions."""
    clauses = []
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
    return clauses


def _matched(groups: dict[str, list[str]], present: set[str], filters: list[str], *, ranked: bool) -> str:
    """The matching rows: one SELECT per group of languages that share a tsquery, each with its tsquery as a
    constant (an index condition only, never checked again row by row, and the rank's argument).

    The language is a condition only when several groups split the documents' languages. Ranked by ts_rank
    (term frequency, as whoosh's BM25): ts_rank_cd's cover density cost two to three times as much per row,
    and a common word ranks every one of 30,000 matching rows.
    """
    facets = ", ".join(FACETS)
    selects = []
    for number, languages in enumerate(groups.values()):
        conditions = [f"tsv @@ CAST(:m{number} AS tsquery)"]
        if set(languages) != present:
            conditions.append(f"language IN ({', '.join(_quoted(language) for language in languages)})")
        rank = f", ts_rank(tsv, CAST(:m{number} AS tsquery)) AS rank" if ranked else ""
        selects.append(
            f"SELECT id, date, {facets}{rank} FROM search_matches WHERE {' AND '.join(conditions + filters)}"  # noqa: S608 - constants and bound values
        )
    return " UNION ALL ".join(selects)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _by_language(values: dict[str, str], cast: str = "tsquery") -> str:
    """A CASE over the document's language; "" is every other language."""
    default = values.get("")
    cases = " ".join(f"WHEN '{key}' THEN CAST({value} AS {cast})" for key, value in values.items() if key)
    return f"CASE language {cases} ELSE CAST({default} AS {cast}) END" if default else f"CASE language {cases} END"


def _search_sql(ranked: str, matched: str, headline_query: str, config: str) -> str:
    """One statement for the page (with its snippets) and the counts per combination of facet values.

    The page ranks the matches and keeps the top (a top-N sort, no materialised set of every match); the
    counts group the matches by all five facets at once (one small hash table; a few hundred groups at most
    in practice), and `_results` adds them up into the total and each facet. Both read `search_matches`
    only; the page's rows alone are read from `search_documents`, for their text.
    """
    facets = ", ".join(FACETS)
    return f"""
        WITH page AS (
            SELECT id, rank FROM ({ranked}) AS matched ORDER BY rank DESC, date DESC, id LIMIT :limit OFFSET :offset
        )
        SELECT 0 AS part, page.rank, d.id, d.kind, d.code, d.code_title, d.version, d.clause, d.title, d.url,
               d.date, d.category, d.comment_type, d.disposition,
               ts_headline({config}, replace(d.content, '<', '<' || chr(1)), {headline_query},
                           '{HEADLINE_OPTIONS}') AS snippet,
               NULL::bigint AS count
        FROM page JOIN search_documents d ON d.id = page.id  -- `language` below is d's: page has none
        UNION ALL
        SELECT 1, NULL, NULL, kind, code, NULL, NULL, NULL, NULL, NULL, NULL, category, comment_type, disposition,
               NULL, count(*)
        FROM ({matched}) AS matched GROUP BY {facets}
    """  # noqa: S608 - only constants and SQL compiled from constants are formatted in; values are bound


# The columns of `_search_sql`, in order; the counts (a few hundred rows) are read by position, which is
# several times faster than by name (6.5 ms a search by name for the heaviest queries).
_COLUMNS = ("part", "rank", "id", "kind", "code", "code_title", "version", "clause", "title", "url", "date",
            "category", "comment_type", "disposition", "snippet", "count")  # fmt: skip
_FACET_AT = [(name, _COLUMNS.index(name)) for name in FACETS]
_PART_AT, _COUNT_AT = _COLUMNS.index("part"), _COLUMNS.index("count")


def _results(rows: list[Any], request: SearchRequest) -> SearchResults:
    """Split the rows of `_search_sql` into the page of hits, and add up the total and the facet counts."""
    total = 0
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    page = []
    for row in rows:
        if row[_PART_AT] == 0:
            page.append(row)
            continue
        count = row[_COUNT_AT]
        total += count
        for name, position in _FACET_AT:
            value = row[position]
            if value:
                counts = facets[name]
                counts[value] = counts.get(value, 0) + count
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
