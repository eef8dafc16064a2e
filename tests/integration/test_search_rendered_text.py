"""Search indexes and quotes what readers see: the rendered text of clauses and comments, not their Markdown.

Every test runs on both backends (whoosh on SQLite, PostgreSQL full-text search), as in test_search.py.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from app.accounts.models import StakeholderCategory
from app.db import db
from app.drafting import service as drafting
from app.drafting.models import CodeStatus
from app.search import whoosh_backend
from app.search.indexer import indexer
from app.search.plain import clause_text, markdown_text
from app.search.service import EXTENSION, backend_for
from tests.integration.test_migrations import MIGRATIONS, empty_database, migration_app  # noqa: F401 - fixtures
from tests.integration.test_search import comment, drain, everything, find, open_window

MARKED_UP = """# Marked code {#title}

Introduction with **strong** words.

## Keeping **technical documentation** current {#m-1}

Signatories shall keep the *model documentation* up to date, following the
[guidance published](https://example.org/guidance) online by the AI Office.[^1]

- Draw up the **documentation form**;
- keep it for `ten years`.

1. Numbered zanzibar step.

[^1]: A note on the ~~old~~ quokkanote regime.

## Plain {#m-2}

Nothing marked up here.
"""

# What Markdown leaves in a text that readers never see.
MARKDOWN_ARTEFACTS = re.compile(r"\*\*|\]\(|\{#|`|https?://|^\s*[-*] |^\s*\d+\. |\[\^|~~", re.MULTILINE)
TAGS = re.compile(r"<[^>]+>")


def snippet_text(snippet_html: str) -> str:
    return TAGS.sub("", snippet_html)


@pytest.fixture
def marked(app, session, group, make_user):
    code = drafting.create_code(
        session, None, group=group, slug="marked", title="Marked code", language="en",
        status=CodeStatus.CONSULTATION,
    )  # fmt: skip
    version = drafting.cut_version(
        session, None, code, label="One", markdown=MARKED_UP, created_at=dt.datetime(2025, 1, 5, tzinfo=dt.UTC)
    )
    drafting.publish_version(session, None, version)
    session.commit()
    open_window(session, code)
    author = make_user(category=StakeholderCategory.CIVIL_SOCIETY)
    note = comment(
        session, author, version, "m-1",
        "We need **clearer** [guidance](https://example.org/kpi) on the `wombatkpi` tables:\n\n- one\n- two",
        quote="keep the *model documentation* up to date", proposed_text="Keep **every** record.",
    )  # fmt: skip
    drain(app)
    return version, note


def test_the_plain_text_of_a_clause_is_what_the_page_shows():
    heading, body = clause_text(MARKED_UP.split("\n## Plain")[0].split("\n\n", 2)[2])
    assert heading == "Keeping technical documentation current"
    assert body.splitlines() == [
        "Signatories shall keep the model documentation up to date, following the guidance published online by the"
        " AI Office.",
        "Draw up the documentation form;",
        "keep it for ten years.",
        "Numbered zanzibar step.",
        "A note on the old quokkanote regime.",
    ]
    assert markdown_text('Use <meta content="noai"> and **this**.') == 'Use <meta content="noai"> and this.'
    assert clause_text("") == ("", "")


def test_clauses_are_found_and_shown_as_rendered_text(marked):
    [hit] = find(None, "zanzibar").hits
    assert (hit.clause, hit.title) == ("m-1", "Keeping technical documentation current")
    found = {}
    for query in ("zanzibar", "guidance", "quokkanote", '"technical documentation current"', "strong"):
        results = everything(None, query, kind="version")
        found[query] = [(h.clause, MARKDOWN_ARTEFACTS.findall(snippet_text(h.snippet_html))) for h in results.hits]
    assert found == {
        "zanzibar": [("m-1", [])],
        "guidance": [("m-1", [])],
        "quokkanote": [("m-1", [])],
        '"technical documentation current"': [("m-1", [])],
        "strong": [("title", [])],
    }
    [guidance] = find(None, "guidance", kind="version").hits
    assert "following the guidance published online" in snippet_text(guidance.snippet_html)


def test_a_quoted_phrase_matches_across_links_and_emphasis(marked):
    phrases = {
        # A link's address sat between "published" and "online" in the Markdown.
        '"guidance published online"': {"m-1"},
        '"keep the model documentation up to date"': {"m-1"},
        '"draw up the documentation form"': {"m-1"},
        '"ten years"': {"m-1"},
    }
    found = {query: {hit.clause for hit in everything(None, query, kind="version").hits} for query in phrases}
    assert found == phrases
    # A link's address is not text anyone reads on the page.
    assert everything(None, "guidance", kind="version").total == 1
    assert everything(None, '"example org guidance"').total == 0


def test_comments_are_found_and_shown_as_rendered_text(marked):
    _, note = marked
    snippets = {}
    for query in ("wombatkpi", "clearer", '"clearer guidance on the wombatkpi tables"', "record"):
        [hit] = find(None, query, kind="comment").hits
        assert hit.id == f"comment:{note.id}"
        snippets[query] = MARKDOWN_ARTEFACTS.findall(snippet_text(hit.snippet_html))
    assert snippets == {query: [] for query in snippets}


def test_an_index_built_from_markdown_is_rebuilt_when_serving_starts(app, session, marked):
    backend = backend_for(app)
    if backend.name != "whoosh":
        pytest.skip("on PostgreSQL the migration queues every source (test below)")
    # An index written before the text was rendered has no mark of its text format.
    backend.close()
    app.extensions.pop(EXTENSION)
    (Path(app.config["SEARCH_INDEX_DIR"]) / whoosh_backend.FORMAT_FILE).unlink()

    assert everything(None, "zanzibar").total == 0  # set aside: the new index is empty
    assert indexer.queue_rebuild_if_empty(app) > 0
    drain(app)
    [hit] = find(None, "zanzibar").hits
    assert hit.title == "Keeping technical documentation current"
    # Once rebuilt, it is kept.
    backend_for(app).close()
    app.extensions.pop(EXTENSION)
    assert everything(None, "zanzibar").total == 1


def test_documents_written_without_their_words_by_older_code_are_indexed_again_at_start(app, session, marked):
    backend = backend_for(app)
    if backend.name != "postgresql":
        pytest.skip("whoosh sets an index of another format aside whole (test above)")
    [hit] = find(None, "zanzibar").hits
    # What a process still running the code before `search_matches` leaves: documents without their words.
    session.execute(text("DELETE FROM search_matches WHERE id = :id"), {"id": hit.id})
    session.commit()
    assert everything(None, "zanzibar").total == 0

    assert indexer.queue_rebuild_if_empty(app) == 1
    drain(app)

    assert [h.id for h in find(None, "zanzibar").hits] == [hit.id]
    assert indexer.queue_rebuild_if_empty(app) == 0


@pytest.mark.usefixtures("migration_app")
def test_the_migration_keeps_postgresql_search_working_and_queues_every_source():
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no search tables in use (whoosh rebuilds itself, test above)")
    upgrade(directory=MIGRATIONS, revision="c7c00ac80c33")
    db.session.execute(
        text(
            "INSERT INTO search_documents (id, source, kind, code, code_title, version, clause, title, content,"
            " language, audience, date, url) VALUES ('version:7:m-1', 'version:7', 'version', 'marked',"
            " 'Marked code', 1, 'm-1', 'Keeping **technical documentation** current',"
            " '## Keeping **technical documentation** current {#m-1}\n\nSee [the form](https://example.org).',"
            " 'en', 'public', now(), '/codes/marked/v1#m-1')"
        )
    )
    db.session.commit()

    upgrade(directory=MIGRATIONS, revision="head")

    queued = db.session.scalars(text("SELECT source FROM search_queue")).all()
    assert queued == ["version:7"]
    from app.search.postgres_backend import PostgresBackend
    from app.search.query import SearchRequest

    # Until the indexer gets to it, the document is found by its old words.
    results = PostgresBackend(db.engine).search(SearchRequest(text="form", audiences=("public",)))
    assert [hit.id for hit in results.hits] == ["version:7:m-1"]
    assert db.session.scalar(select(text("count(*)")).select_from(text("search_matches"))) == 1
    db.session.remove()
