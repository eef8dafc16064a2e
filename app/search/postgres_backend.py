"""The scale-out search backend: PostgreSQL full-text search (tsvector + GIN, ts_headline snippets).

Every process and machine shares it, since it lives in the same database as everything else. The query
tree from `app.search.query.parse` is compiled to a tsquery; each document is matched with the text-search
configuration of its own language.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Engine
from whoosh import query as wq

from app.search.documents import SearchDocument
from app.search.models import SearchDocumentRow
from app.search.query import FACETS, Hit, QueryError, SearchRequest, SearchResults, parse

CONFIGS = {"en": "english", "sv": "swedish", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
           "nl": "dutch", "fi": "finnish", "da": "danish"}  # fmt: skip
START, STOP = "\x02", "\x03"


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
    raise QueryError("The search could not be understood. Check quotes and brackets.")


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
            connection.execute(delete(SearchDocumentRow).where(SearchDocumentRow.source.in_(list(documents))))
            if rows:
                connection.execute(insert(SearchDocumentRow), rows)

    def clear(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(SearchDocumentRow))

    @staticmethod
    def _row(doc: SearchDocument) -> dict[str, Any]:
        return {
            "id": doc.id, "source": doc.source, "kind": doc.kind, "code": doc.code, "code_title": doc.code_title,
            "version": doc.version, "clause": doc.clause, "title": doc.title, "content": doc.content,
            "language": doc.language, "audience": doc.audience, "category": doc.category,
            "comment_type": doc.comment_type, "disposition": doc.disposition, "date": doc.date, "url": doc.url,
        }  # fmt: skip

    def _where(self, request: SearchRequest, params: dict[str, Any]) -> str:
        # One constant tsquery per language keeps the GIN index usable (a per-row configuration would not).
        matches = []
        for language, config in CONFIGS.items():
            matches.append(f"(language = '{language}' AND tsv @@ to_tsquery('{config}', :q))")
        matches.append(f"(language NOT IN ({', '.join(repr(k) for k in CONFIGS)}) AND tsv @@ to_tsquery('simple', :q))")
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
        params: dict[str, Any] = {"q": to_tsquery_text(parse(request.text))}
        where = self._where(request, params)
        config = "CASE language " + " ".join(f"WHEN '{k}' THEN '{v}'::regconfig" for k, v in CONFIGS.items())
        config += " ELSE 'simple'::regconfig END"
        page_sql = text(
            f"""
            SELECT id, kind, code, code_title, version, clause, title, url, date, category, disposition,
                   ts_headline({config}, content, to_tsquery({config}, :q),
                               'StartSel={START}, StopSel={STOP}, MaxFragments=2, MaxWords=40, MinWords=12,
                                FragmentDelimiter=" … "') AS snippet
            FROM search_documents WHERE {where}
            ORDER BY ts_rank_cd(tsv, to_tsquery({config}, :q)) DESC, date DESC
            LIMIT :limit OFFSET :offset
            """  # noqa: S608 - only constants are formatted in; every value is a bound parameter
        )
        params_page = {**params, "limit": request.per_page, "offset": (request.page - 1) * request.per_page}
        with self.engine.connect() as connection:
            try:
                rows = connection.execute(page_sql, params_page).mappings().all()
                total = connection.scalar(text(f"SELECT count(*) FROM search_documents WHERE {where}"), params)  # noqa: S608
                facets = {}
                for name in FACETS:
                    counted = connection.execute(
                        text(f"SELECT {name}, count(*) FROM search_documents WHERE {where} GROUP BY {name}"),  # noqa: S608
                        params,
                    ).all()
                    facets[name] = {str(value): count for value, count in counted if value}
            except Exception as error:
                if "tsquery" in str(error).lower():
                    raise QueryError("The search could not be understood. Check quotes and brackets.") from error
                raise
        hits = [
            Hit(
                id=row["id"], kind=row["kind"], code=row["code"], code_title=row["code_title"], version=row["version"],
                clause=row["clause"], title=row["title"], url=row["url"], snippet_html=_snippet(row["snippet"]),
                date=row["date"], category=row["category"], disposition=row["disposition"],
            )
            for row in rows
        ]  # fmt: skip
        return SearchResults(int(total or 0), hits, facets, request.page, request.per_page)

    def close(self) -> None:
        return None


def _snippet(raw: str) -> str:
    """Escape the document text, then turn the highlight markers into <mark>."""
    return html.escape(raw).replace(START, "<mark>").replace(STOP, "</mark>")
