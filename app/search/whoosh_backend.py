"""The embedded search backend: a whoosh index on local disk with one long-lived, refreshed searcher.

Opening a searcher is what costs (p95 370 ms per query at 100k comments with a searcher per request, against
~200 ms with one kept open), so one searcher is shared and refreshed after each indexing batch.
"""

from __future__ import annotations

import datetime as dt
import html
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from whoosh import index, sorting
from whoosh import query as wq
from whoosh.analysis import LanguageAnalyzer, StandardAnalyzer
from whoosh.fields import DATETIME, ID, KEYWORD, NUMERIC, STORED, TEXT, Schema
from whoosh.highlight import ContextFragmenter, HtmlFormatter

from app.search.documents import SearchDocument
from app.search.query import FACETS, Hit, SearchRequest, SearchResults, parse

# Content goes to the field whose analyser stems for its language; a query searches them all.
CONTENT_FIELDS = {"en": "content_en", "sv": "content_sv"}
OTHER_CONTENT = "content_other"


def _schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),
        source=ID(stored=True),
        kind=ID(stored=True, sortable=True),
        code=ID(stored=True, sortable=True),
        code_title=STORED(),
        version=NUMERIC(stored=True),
        clause=ID(stored=True),
        title=TEXT(stored=True, analyzer=StandardAnalyzer()),
        content=STORED(),
        content_en=TEXT(analyzer=LanguageAnalyzer("en"), phrase=True),
        content_sv=TEXT(analyzer=LanguageAnalyzer("sv"), phrase=True),
        content_other=TEXT(analyzer=StandardAnalyzer(), phrase=True),
        # Unstemmed words of every document, for prefix queries: "mitigat*" must not meet the stem "mitig".
        content_words=TEXT(analyzer=StandardAnalyzer(), phrase=False),
        language=ID(stored=True),
        audience=KEYWORD(stored=True),
        category=ID(stored=True, sortable=True),
        comment_type=ID(stored=True, sortable=True),
        disposition=ID(stored=True, sortable=True),
        date=DATETIME(stored=True, sortable=True),
        url=STORED(),
    )


SEARCH_FIELDS = ("title", "content_en", "content_sv", "content_other")


def _compile(tree: wq.Query) -> wq.Query:
    """Re-target a parsed query from the neutral field `text` at every searchable field."""
    if isinstance(tree, wq.Term):
        return wq.Or([wq.Term(name, tree.text) for name in SEARCH_FIELDS])
    if isinstance(tree, wq.Phrase):
        return wq.Or([wq.Phrase(name, tree.words) for name in SEARCH_FIELDS])
    if isinstance(tree, wq.Prefix):
        return wq.Or([wq.Prefix("title", tree.text), wq.Prefix("content_words", tree.text)])
    if isinstance(tree, wq.Not):
        return wq.Not(_compile(tree.query))
    if isinstance(tree, wq.AndNot):
        return wq.AndNot(_compile(tree.a), _compile(tree.b))
    if isinstance(tree, wq.And):
        return wq.And([_compile(child) for child in tree.subqueries])
    if isinstance(tree, wq.Or):
        return wq.Or([_compile(child) for child in tree.subqueries])
    raise ValueError(f"unsupported query part {tree!r}")


def _stem_for_field(query: wq.Query, schema: Schema) -> wq.Query:
    """Run each term through its field's analyser (so 'risks' finds 'risk' in English, not in Swedish)."""
    if isinstance(query, wq.Term):
        tokens = [t.text for t in schema[query.fieldname].analyzer(query.text, mode="query")]
        # A stop word ("out" in "opt-out") constrains nothing in this field, as PostgreSQL also treats it.
        return wq.Term(query.fieldname, tokens[0]) if tokens else wq.Every(query.fieldname)
    if isinstance(query, wq.Phrase):
        analyzer = schema[query.fieldname].analyzer
        words = [t.text for word in query.words for t in analyzer(word, mode="query")]
        if len(words) == 1:
            # A phrase of one word once stop words are gone ("opt-out" in English) is that word.
            return wq.Term(query.fieldname, words[0])
        return wq.Phrase(query.fieldname, words) if words else wq.NullQuery
    if isinstance(query, wq.Prefix):
        return query
    if isinstance(query, wq.Not):
        return wq.Not(_stem_for_field(query.query, schema))
    if isinstance(query, (wq.And, wq.Or)):
        return type(query)([_stem_for_field(child, schema) for child in query.subqueries])
    if isinstance(query, wq.AndNot):
        return wq.AndNot(_stem_for_field(query.a, schema), _stem_for_field(query.b, schema))
    return query


class WhooshBackend:
    """Index and search with whoosh in a directory; one writer at a time, one shared searcher."""

    name = "whoosh"

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._index = self._open()
        self._searcher = self._index.searcher()
        self._retired: Any = None

    def _open(self) -> index.Index:
        self.directory.mkdir(parents=True, exist_ok=True)
        if index.exists_in(str(self.directory)):
            return index.open_dir(str(self.directory))
        return index.create_in(str(self.directory), _schema())

    @property
    def is_empty(self) -> bool:
        return self._index.doc_count() == 0

    def replace_sources(self, documents: dict[str, list[SearchDocument]]) -> None:
        """Replace every document of each given source (an empty list removes them)."""
        with self._lock:
            writer = self._index.writer(timeout=30)
            try:
                for source, docs in documents.items():
                    writer.delete_by_term("source", source)
                    for doc in docs:
                        writer.add_document(**self._fields(doc))
            except BaseException:
                writer.cancel()
                raise
            writer.commit()
            self._refresh()

    def _refresh(self) -> None:
        # A new searcher after each indexing batch, never per query. (Whoosh's refresh() was seen to keep
        # serving documents deleted in the batch, so it is not used.)
        # The old one is closed one batch later, so a search still running on it can finish.
        if self._retired is not None:
            self._retired.close()
        self._retired, self._searcher = self._searcher, self._index.searcher()

    def clear(self) -> None:
        with self._lock:
            self._searcher.close()
            self._index = index.create_in(str(self.directory), _schema())
            self._searcher = self._index.searcher()

    @staticmethod
    def _fields(doc: SearchDocument) -> dict[str, object]:
        fields: dict[str, object] = {
            "id": doc.id, "source": doc.source, "kind": doc.kind, "code": doc.code, "code_title": doc.code_title,
            "version": doc.version if doc.version is not None else 0, "clause": doc.clause or "", "title": doc.title,
            "content": doc.content, "language": doc.language, "audience": doc.audience,
            "category": doc.category or "", "comment_type": doc.comment_type or "",
            "disposition": doc.disposition or "", "date": doc.date.replace(tzinfo=None), "url": doc.url,
        }  # fmt: skip
        fields[CONTENT_FIELDS.get(doc.language, OTHER_CONTENT)] = doc.content
        fields["content_words"] = doc.content
        return fields

    def _filter(self, request: SearchRequest) -> wq.Query | None:
        parts: list[wq.Query] = []
        if request.audiences is not None:
            parts.append(wq.Or([wq.Term("audience", audience) for audience in request.audiences]))
        for name in ("code", "clause", "kind", "category", "comment_type", "disposition"):
            value = getattr(request, name)
            if value:
                parts.append(wq.Term(name, value))
        if request.version is not None:
            parts.append(wq.Term("version", request.version))
        if request.date_from or request.date_to:
            start = request.date_from.replace(tzinfo=None) if request.date_from else None
            end = request.date_to.replace(tzinfo=None) if request.date_to else None
            parts.append(wq.DateRange("date", start, end))
        return wq.And(parts) if parts else None

    def search(self, request: SearchRequest) -> SearchResults:
        query = _stem_for_field(_compile(parse(request.text)), self._index.schema).normalize()
        search_filter = self._filter(request)
        facets = {name: sorting.FieldFacet(name, maptype=sorting.Count) for name in FACETS}
        with self._lock:
            searcher = self._searcher
        # The filter is part of the query, so totals and facet counts only ever count what the viewer may see.
        page = searcher.search_page(
            query, request.page, pagelen=request.per_page, filter=search_filter, groupedby=facets, terms=True
        )
        results = page.results
        results.fragmenter = ContextFragmenter(maxchars=240, surround=60)
        results.formatter = HtmlFormatter(tagname="mark", between=" … ")
        hits = []
        # whoosh answers a page past the end with the last page; past the end there is nothing.
        beyond = (request.page - 1) * request.per_page >= len(results)
        for hit in [] if beyond else page:
            content = hit["content"]
            field = CONTENT_FIELDS.get(hit["language"], OTHER_CONTENT)
            snippet = hit.highlights(field, text=content, top=2) or html.escape(content[:240])
            hits.append(
                Hit(
                    id=hit["id"], kind=hit["kind"], code=hit["code"], code_title=hit["code_title"],
                    version=hit["version"] or None, clause=hit["clause"] or None, title=hit["title"], url=hit["url"],
                    snippet_html=snippet, date=hit["date"].replace(tzinfo=dt.UTC), category=hit["category"] or None,
                    disposition=hit["disposition"] or None,
                )
            )  # fmt: skip
        facet_counts = {
            name: {str(key): count for key, count in results.groups(name).items() if key} for name in FACETS
        }
        return SearchResults(len(results), hits, facet_counts, request.page, request.per_page)

    def close(self) -> None:
        with self._lock:
            self._searcher.close()
            if self._retired is not None:
                self._retired.close()

    def sources(self) -> Iterable[str]:
        with self._lock:
            return {fields["source"] for fields in self._searcher.all_stored_fields()}
