"""Documents in several languages, some without a configuration of their own, searched on both backends.

PostgreSQL matches each group of languages that share a tsquery in a SELECT of its own, for the languages the
index holds; these checks make sure no language falls between the groups.
"""

from __future__ import annotations

import datetime as dt

from app.search.documents import SearchDocument
from app.search.query import SearchRequest
from app.search.service import backend_for

TEXTS = {
    "en": "Providers mitigate the risks of their models.",
    "sv": "Leverantörerna hanterar riskerna med sina modeller.",
    "de": "Anbieter mindern die Risiken ihrer Modelle.",
    "pl": "Dostawcy ograniczają ryzyko swoich modeli.",
}


def document(language: str, text: str) -> SearchDocument:
    return SearchDocument(
        id=f"doc:{language}", source=f"doc:{language}", kind="comment", code="polyglot", code_title="Polyglot",
        version=1, clause="c-1", title=f"#{language}", content=text, language=language, audience="public",
        date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), url="/", category="academia", comment_type="general",
        disposition="open",
    )  # fmt: skip


QUERIES = {
    "risks": {"en", "sv"},
    "ryzyko": {"pl"},
    "ryzyko OR risks": {"en", "sv", "pl"},
    "risiken": {"de"},
    "NOT ryzyko": {"en", "sv", "de"},
    "model*": {"en", "sv", "de", "pl"},
    "mitigate OR ryzyko OR risiken": {"en", "de", "pl"},
    # A stop word in English, but a word in Polish's 'simple' configuration.
    "their OR swoich": {"pl"},
}


def test_every_language_is_matched_with_its_own_configuration(app):
    backend = backend_for(app)
    backend.replace_sources({f"doc:{language}": [document(language, text)] for language, text in TEXTS.items()})
    found, totals, facets = {}, {}, {}
    for query in QUERIES:
        results = backend.search(SearchRequest(text=query, audiences=("public",)))
        found[query] = {hit.id.removeprefix("doc:") for hit in results.hits}
        totals[query] = results.total
        facets[query] = results.facets["code"].get("polyglot", 0)
    assert found == QUERIES
    assert totals == facets == {query: len(languages) for query, languages in QUERIES.items()}
