"""Search, as one contract that both backends keep: whoosh (on SQLite) and PostgreSQL full-text search (on
PostgreSQL). Every test runs once per backend through the `app` fixture, on the same data, and expects the
same ids, totals and facet counts on both.

The data (built by `world`):

- `alpha` (English): v1 published (clauses c-1, c-2, c-3), v2 unpublished (c-1, c-2), a working text (c-1);
- `beta-kod` (Swedish): v1 published (o-1);
- comments on alpha: P1, P2, P3 public on v1; G1 group-only on v1 (accepted); U1 public on the unpublished v2.

Where a check covers a table of cases, it compares the whole table at once, so a failure shows every case that
differs (and the world is built once per check, which keeps the file fast on both backends).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from whoosh import index as whoosh_index

from app.accounts.models import Role, StakeholderCategory, User, WorkingGroup
from app.comments import service as comments
from app.comments.models import Comment
from app.db import utcnow
from app.drafting import service as drafting
from app.drafting.models import Code, CodeStatus, Version
from app.search import whoosh_backend
from app.search.documents import SearchDocument
from app.search.indexer import indexer
from app.search.models import SearchDocumentRow, SearchQueueItem
from app.search.query import FACETS, SearchRequest, SearchResults
from app.search.service import EXTENSION, backend_for, search

UTC = dt.UTC

ALPHA_V1 = """# Alpha code {#title}

## Transparency {#c-1}

Providers shall document their models and keep the documentation current. Sharedmark zebulon.

## Safety {#c-2}

Providers shall assess the systemic risk of each model and mitigate it.

## Copyright {#c-3}

Providers shall respect machine-readable opt-outs from text and data mining.
"""

ALPHA_V2 = """# Alpha code {#title}

## Transparency {#c-1}

Providers shall document their models. Sharedmark quokkaversion.

## Safety {#c-2}

Providers shall assess and mitigate systemic risk before release.
"""

ALPHA_WORKING = """# Alpha code {#title}

## Transparency {#c-1}

Providers shall publish a summary. Sharedmark wombatworking.
"""

BETA_V1 = """# Betakod {#title}

## Öppenhet {#o-1}

Myndigheterna ska redovisa sina AI-system och riskerna med dem.
"""

# Matches every document of the world except the title clauses.
BROAD = "sharedmark OR providers OR risk OR crawlers OR documentation OR myndighet"


# --- building the world --------------------------------------------------------------------------------------


def drain(app) -> None:
    """Apply every queued index change, as the indexer thread would."""
    while indexer.drain(app):
        pass


def open_window(session, code: Code) -> None:
    now = utcnow()
    code.consultation_opens_at, code.consultation_closes_at = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    session.commit()


def comment(session, author: User, version: Version, clause: str, body: str, **extra: Any) -> Comment:
    receipt = comments.submit_comment(
        session,
        author,
        version,
        comments.Submission(clause_key=clause, body=body, idempotency_key=uuid.uuid4().hex, **extra),
    )
    session.commit()
    return session.get(Comment, receipt.comment_id)


@dataclass
class World:
    users: dict[str, User | None]
    ids: dict[str, str]  # label -> search document id
    codes: dict[str, Code]
    versions: dict[str, Version]
    comments: dict[str, Comment] = field(default_factory=dict)

    def labels(self, results: SearchResults) -> set[str]:
        by_id = {doc_id: label for label, doc_id in self.ids.items()}
        return {by_id.get(hit.id, hit.id) for hit in results.hits}


@pytest.fixture
def world(app, session, make_user, group) -> World:
    other_group = WorkingGroup(slug="wg-other", name="Another working group")
    session.add(other_group)
    session.commit()
    users: dict[str, User | None] = {
        "anonymous": None,
        "stakeholder": make_user(category=StakeholderCategory.CIVIL_SOCIETY),
        "provider": make_user(category=StakeholderCategory.GPAI_PROVIDER),
        "industry": make_user(category=StakeholderCategory.INDUSTRY_ASSOCIATION),
        "other group member": make_user(Role.MEMBER, other_group),
        "observer": make_user(Role.OBSERVER, group),
        "member": make_user(Role.MEMBER, group, category=StakeholderCategory.ACADEMIA),
        "editor": make_user(Role.EDITOR, group, category=StakeholderCategory.RIGHTS_HOLDER),
        "chair": make_user(Role.CHAIR, group),
        "admin": make_user(admin=True),
    }
    alpha = drafting.create_code(
        session, None, group=group, slug="alpha", title="Alpha code", language="en",
        status=CodeStatus.CONSULTATION, working_text=ALPHA_WORKING,
    )  # fmt: skip
    v1 = drafting.cut_version(
        session, None, alpha, label="First", markdown=ALPHA_V1, created_at=dt.datetime(2025, 1, 5, tzinfo=UTC)
    )
    drafting.publish_version(session, None, v1, at=dt.datetime(2025, 1, 10, tzinfo=UTC))
    v2 = drafting.cut_version(
        session, None, alpha, label="Second", markdown=ALPHA_V2, created_at=dt.datetime(2025, 2, 1, tzinfo=UTC)
    )
    beta = drafting.create_code(
        session, None, group=group, slug="beta-kod", title="Betakod", language="sv", status=CodeStatus.CONSULTATION
    )
    b1 = drafting.cut_version(
        session, None, beta, label="Första", markdown=BETA_V1, created_at=dt.datetime(2025, 2, 20, tzinfo=UTC)
    )
    drafting.publish_version(session, None, b1, at=dt.datetime(2025, 3, 1, tzinfo=UTC))
    session.commit()
    open_window(session, alpha)

    made = {
        "P1": comment(session, users["stakeholder"], v1, "c-2",
                      "Systemic risks need independent evaluation by accredited evaluators. Sharedmark axolotlpublic."),
        "P2": comment(session, users["provider"], v1, "c-3",
                      'Crawlers should honour robots files as the opt-out, or <meta name="tdm" content="noai">.',
                      type="technical"),
        "P3": comment(session, users["industry"], v1, "c-1",
                      "Documentation of mitigations is unclear <script>alert('boo')</script> for open models.",
                      type="editorial"),
        "G1": comment(session, users["member"], v1, "c-1",
                      "Sharedmark okapigroup: the documentation template needs a risk section.",
                      type="technical", visibility="group"),
        "U1": comment(session, users["editor"], v2, "c-2",
                      "Sharedmark narwhalunpub: mitigate before release is too vague.", type="editorial"),
    }  # fmt: skip
    # The author's notification is worded in the request's language, so record as a request would.
    with app.test_request_context():
        comments.record_disposition(session, users["chair"], made["G1"], "accepted", "Added.")
        comments.record_disposition(session, users["chair"], made["P2"], "not_accepted", "Out of reach.")
    session.commit()
    drain(app)

    ids = {f"v1:{key}": f"version:{v1.id}:{key}" for key in ("title", "c-1", "c-2", "c-3")}
    ids |= {f"v2:{key}": f"version:{v2.id}:{key}" for key in ("title", "c-1", "c-2")}
    ids |= {f"working:{key}": f"code:{alpha.id}:{key}" for key in ("title", "c-1")}
    ids |= {f"beta:{key}": f"version:{b1.id}:{key}" for key in ("title", "o-1")}
    ids |= {label: f"comment:{c.id}" for label, c in made.items()}
    return World(users, ids, {"alpha": alpha, "beta": beta}, {"v1": v1, "v2": v2, "b1": b1}, made)


def find(viewer: object, text: str, **filters: Any) -> SearchResults:
    return search(viewer, SearchRequest(text=text, audiences=(), **filters))


def everything(viewer: object, text: str, **filters: Any) -> SearchResults:
    """All results on one page (the world is small)."""
    return find(viewer, text, per_page=100, **filters)


# --- what is found -------------------------------------------------------------------------------------------


def test_version_clauses_working_texts_and_comments_are_found(world):
    admin = world.users["admin"]
    found = {token: world.labels(everything(admin, token)) for token in PROBE_TOKENS}
    assert found == PROBE_TOKENS

    [hit] = find(world.users["anonymous"], "axolotlpublic").hits
    assert (hit.kind, hit.code, hit.code_title, hit.version, hit.clause) == ("comment", "alpha", "Alpha code", 1, "c-2")
    assert hit.url == f"/comments/{world.comments['P1'].id}#comment-{world.comments['P1'].id}"
    assert (hit.category, hit.disposition) == ("civil_society", "open")
    [clause] = find(world.users["anonymous"], "zebulon").hits
    assert (clause.kind, clause.version, clause.clause, clause.title) == ("version", 1, "c-1", "Transparency")
    assert clause.url == "/codes/alpha/v1#c-1"
    assert clause.date == dt.datetime(2025, 1, 10, tzinfo=UTC)
    [working] = find(admin, "wombatworking").hits
    assert (working.kind, working.version, working.url) == ("working", None, "/codes/alpha/working#c-1")


PROBE_TOKENS = {
    "zebulon": {"v1:c-1"},
    "quokkaversion": {"v2:c-1"},
    "wombatworking": {"working:c-1"},
    "axolotlpublic": {"P1"},
    "okapigroup": {"G1"},
    "narwhalunpub": {"U1"},
    "robots": {"P2"},
}


STEMMING = [
    # "risk" in v1 c-2, "risks" in P1; Swedish stems "risks" to "risk" too, so "riskerna" matches.
    ("risks", {}, {"v1:c-2", "P1", "beta:o-1"}),
    ("mitigating", {}, {"v1:c-2", "P3"}),
    # "myndighet" and "myndigheterna" share a Swedish stem; the English analyser would not join them.
    ("myndighet", {}, {"beta:o-1"}),
    ("myndighet", {"code": "alpha"}, set()),
    ("risker", {}, {"beta:o-1"}),
    ('"redovisa sina"', {}, {"beta:o-1"}),
]


def test_english_and_swedish_stemming(world):
    anonymous = world.users["anonymous"]
    found = [(query, filters, world.labels(everything(anonymous, query, **filters))) for query, filters, _ in STEMMING]
    assert found == STEMMING


# The same data must give the same ids on both backends: each run compares with this one table.
QUERY_CONTRACT = {
    "risks": {"v1:c-2", "P1", "beta:o-1"},
    '"systemic risk"': {"v1:c-2", "P1"},
    '"risk systemic"': set(),
    "crawlers OR evaluators": {"P1", "P2"},
    "providers NOT systemic": {"v1:c-1", "v1:c-3"},
    "providers AND NOT systemic": {"v1:c-1", "v1:c-3"},
    "(crawlers OR evaluators) AND honour": {"P2"},
    "systemic risk": {"v1:c-2", "P1"},
    "Providers": {"v1:c-1", "v1:c-2", "v1:c-3"},
    "transparency": {"v1:c-1"},
    "crawl*": {"P2"},
    "docum*": {"v1:c-1", "P3"},
    "syst* AND evaluation": {"P1"},
    # A stop word inside a word pair or a phrase: PostgreSQL drops it from the tsquery, whoosh from the index.
    "opt-out": {"v1:c-3", "P2"},
    "crawlers should honour": {"P2"},
    # A stop word alone means nothing: PostgreSQL's to_tsquery drops it and finds nothing.
    "should": set(),
    '"text and data mining"': {"v1:c-3"},
    # Words inside something that looks like an HTML tag are words too.
    "noai": {"P2"},
}


PREFIX_CONTRACT = {
    "mitigation*": {"P3"},
    "providers*": {"v1:c-1", "v1:c-2", "v1:c-3"},
    "mitigat*": {"v1:c-2", "P3"},
    "evaluat*": {"P1"},
}


def test_phrase_or_not_and_prefix_queries_give_the_same_ids_on_both_backends(world):
    anonymous = world.users["anonymous"]
    found = {query: world.labels(everything(anonymous, query)) for query in QUERY_CONTRACT}
    assert found == QUERY_CONTRACT
    totals = {query: everything(anonymous, query).total for query in QUERY_CONTRACT}
    assert totals == {query: len(expected) for query, expected in QUERY_CONTRACT.items()}
    # A query of only NOT: everything else, within the filters.
    assert world.labels(everything(anonymous, "NOT providers", code="alpha", kind="version")) == {"v1:title"}


# Prefixes: each finds the words that start with it, whatever their stems ("mitigat*": mitigate, mitigations,
# both stemmed "mitig"; "providers*": stemmed "provid").


def test_a_prefix_finds_the_words_that_start_with_it(world):
    anonymous = world.users["anonymous"]
    # Finding more is allowed (PostgreSQL's "mitigation*" also finds "mitigate", which shares the stem "mitig").
    missing = {
        query: expected - world.labels(everything(anonymous, query)) for query, expected in PREFIX_CONTRACT.items()
    }
    assert missing == {query: set() for query in PREFIX_CONTRACT}


def test_a_stop_word_of_the_documents_language_alone_finds_nothing_there(world):
    admin = world.users["admin"]
    # "should" is an English stop word: no English document is found by it, or by its NOT (PostgreSQL drops
    # both from the English tsquery). Swedish has no such stop word, and the Swedish code lacks the word.
    assert everything(admin, "should").total == 0
    assert world.labels(everything(admin, "NOT should")) == {"beta:title", "beta:o-1"}
    assert world.labels(everything(admin, "sharedmark NOT should")) == set(SHARED)


ALL_BROAD = {"v1:c-1", "v1:c-2", "v1:c-3", "v2:c-1", "v2:c-2", "working:c-1", "beta:o-1", "P1", "P2", "P3", "G1", "U1"}
JUNE = dt.datetime(2025, 6, 30, tzinfo=UTC)
FILTER_CONTRACT = [
    ({}, ALL_BROAD),
    ({"code": "alpha"}, ALL_BROAD - {"beta:o-1"}),
    ({"code": "beta-kod"}, {"beta:o-1"}),
    ({"code": "nonesuch"}, set()),
    ({"version": 1}, {"v1:c-1", "v1:c-2", "v1:c-3", "beta:o-1", "P1", "P2", "P3", "G1"}),
    ({"version": 2}, {"v2:c-1", "v2:c-2", "U1"}),
    ({"version": 2, "code": "alpha", "kind": "version"}, {"v2:c-1", "v2:c-2"}),
    ({"clause": "c-2"}, {"v1:c-2", "v2:c-2", "P1", "U1"}),
    ({"kind": "comment"}, {"P1", "P2", "P3", "G1", "U1"}),
    ({"kind": "working"}, {"working:c-1"}),
    ({"kind": "version"}, {"v1:c-1", "v1:c-2", "v1:c-3", "v2:c-1", "v2:c-2", "beta:o-1"}),
    ({"category": "civil_society"}, {"P1"}),
    ({"category": "academia"}, {"G1"}),
    ({"comment_type": "technical"}, {"P2", "G1"}),
    ({"comment_type": "editorial"}, {"P3", "U1"}),
    ({"disposition": "accepted"}, {"G1"}),
    ({"disposition": "not_accepted"}, {"P2"}),
    ({"disposition": "open"}, {"P1", "P3", "U1"}),
    ({"date_to": JUNE}, {"v1:c-1", "v1:c-2", "v1:c-3", "v2:c-1", "v2:c-2", "beta:o-1"}),
    ({"date_from": JUNE}, {"working:c-1", "P1", "P2", "P3", "G1", "U1"}),
    (
        {"date_from": dt.datetime(2025, 1, 1, tzinfo=UTC), "date_to": dt.datetime(2025, 1, 31, tzinfo=UTC)},
        {"v1:c-1", "v1:c-2", "v1:c-3"},
    ),
    ({"code": "alpha", "kind": "comment", "comment_type": "technical"}, {"P2", "G1"}),
]


def test_filters_by_code_version_clause_kind_category_type_disposition_and_date(world):
    admin = world.users["admin"]
    found, totals, kind_facets = {}, {}, {}
    for filters, _ in FILTER_CONTRACT:
        results = everything(admin, BROAD, **filters)
        found[str(filters)] = world.labels(results)
        totals[str(filters)] = results.total
        # Facets count the filtered results, never more.
        kind_facets[str(filters)] = sum(results.facets.get("kind", {}).values())
    expected = {str(filters): labels for filters, labels in FILTER_CONTRACT}
    assert found == expected
    assert totals == {name: len(labels) for name, labels in expected.items()}
    assert kind_facets == totals


def test_facet_counts_cover_every_page_and_follow_the_filters(world):
    admin = world.users["admin"]
    results = find(admin, BROAD, per_page=2)
    assert len(results.hits) == 2
    assert results.total == 12
    assert results.facets == {
        "kind": {"version": 6, "working": 1, "comment": 5},
        "code": {"alpha": 11, "beta-kod": 1},
        "category": {
            "civil_society": 1, "gpai_provider": 1, "industry_association": 1, "academia": 1, "rights_holder": 1,
        },
        "comment_type": {"general": 1, "technical": 2, "editorial": 2},
        "disposition": {"open": 3, "accepted": 1, "not_accepted": 1},
    }  # fmt: skip
    assert find(admin, BROAD, page=6, per_page=2).facets == results.facets

    filtered = find(admin, BROAD, kind="comment", disposition="open")
    assert filtered.total == 3
    assert filtered.facets == {
        "kind": {"comment": 3},
        "code": {"alpha": 3},
        "category": {"civil_society": 1, "industry_association": 1, "rights_holder": 1},
        "comment_type": {"general": 1, "editorial": 2},
        "disposition": {"open": 3},
    }


def test_pagination(app, session, group):
    body = "\n\n".join(f"## Part {n} {{#p-{n}}}\n\nPagetoken item {n}." for n in range(1, 26))
    code = drafting.create_code(session, None, group=group, slug="pages", title="Pages", language="en")
    version = drafting.cut_version(session, None, code, label="One", markdown=f"# Pages {{#title}}\n\n{body}\n")
    drafting.publish_version(session, None, version)
    session.commit()
    drain(app)

    pages = [find(None, "pagetoken", page=n, per_page=10) for n in (1, 2, 3)]
    assert [len(p.hits) for p in pages] == [10, 10, 5]
    assert [(p.page, p.total, p.pages) for p in pages] == [(1, 25, 3), (2, 25, 3), (3, 25, 3)]
    ids = [hit.id for p in pages for hit in p.hits]
    assert len(ids) == len(set(ids)) == 25
    assert set(ids) == {f"version:{version.id}:p-{n}" for n in range(1, 26)}
    # Past the last page there is nothing, not the last page again under another number.
    beyond = find(None, "pagetoken", page=4, per_page=10)
    assert (beyond.page, beyond.total, [hit.id for hit in beyond.hits]) == (4, 25, [])


def test_whoosh_totals_and_facets_count_the_matches_that_rank_too_low_for_the_page(tmp_path):
    # whoosh's top-N search replaces an OR's matcher once a term can no longer reach the page, and skips that
    # term's other documents; it does so only on indexes of more than 5,000 documents. Totals and facets must
    # still count them. (PostgreSQL counts in SQL; the contract tests cover it.)
    backend = whoosh_backend.WhooshBackend(str(tmp_path / "index"))

    def document(number: int, content: str, category: str) -> SearchDocument:
        return SearchDocument(
            id=f"d{number}", source=f"s{number}", kind="comment", code="ranks", code_title="Ranks", version=1,
            clause="c-1", title=f"#{number}", content=content, language="en", audience="public",
            date=dt.datetime(2025, 1, 1, tzinfo=UTC), url="/", category=category,
        )  # fmt: skip

    # Short texts full of one word, each scoring higher than the last (so the page's top keeps changing),
    # then long texts with the other word once, which rank below all of them.
    loud = [" ".join(["floodword"] * (1 + n % 8) + ["steady"] * (8 - n % 8)) for n in range(40)]
    quiet = [" ".join(["Signatories document their processes in detail."] * 12) + " Quietword."] * 20
    padding = [""] * 5_000
    texts = [(text, "academia") for text in loud] + [(text, "civil_society") for text in quiet + padding]
    backend.replace_sources({f"s{n}": [document(n, text, category)] for n, (text, category) in enumerate(texts)})

    results = backend.search(SearchRequest(text="floodword OR quietword", audiences=("public",), per_page=1))
    backend.close()
    assert (results.total, results.facets["category"]) == (60, {"academia": 40, "civil_society": 20})


# --- highlights ----------------------------------------------------------------------------------------------

MARKED = re.compile(r"<mark[^>]*>([^<]*)</mark>")


def test_highlights_mark_the_matched_words_and_never_carry_script_from_the_content(world, client):
    anonymous = world.users["anonymous"]
    marked = {}
    for query in ("robots", "mitigations", "unclear", '"accredited evaluators"', "crawl*"):
        [hit] = find(anonymous, query, kind="comment").hits
        marked[query] = [word.lower() for word in MARKED.findall(hit.snippet_html)]
        assert "<script" not in hit.snippet_html.lower(), (query, hit.snippet_html)
        assert "</script" not in hit.snippet_html.lower(), (query, hit.snippet_html)
    assert marked == {
        "robots": ["robots"],
        "mitigations": ["mitigations"],
        "unclear": ["unclear"],
        # Both backends mark each matched word, so "evaluation" (same stem as "evaluators") is marked too.
        '"accredited evaluators"': ["evaluation", "accredited", "evaluators"],
        "crawl*": ["crawlers"],
    }
    page = client.get("/search?q=unclear")
    assert page.status_code == 200
    assert "<script>alert" not in page.get_data(as_text=True)
    assert "<mark" in page.get_data(as_text=True)
    api = client.get("/api/v1/search?q=unclear")
    [hit] = api.get_json()["hits"]
    assert "<mark" in hit["snippet_html"]
    assert "<script" not in hit["snippet_html"]


def test_words_inside_something_like_a_tag_are_marked_and_the_tag_is_shown_as_text(world):
    [hit] = find(world.users["anonymous"], "noai").hits
    assert MARKED.findall(hit.snippet_html) == ["noai"]
    assert "&lt;meta name=" in hit.snippet_html
    assert "<meta" not in hit.snippet_html


PROBES = {
    "unpublished version text": ("quokkaversion", "v2:c-1"),
    "working text": ("wombatworking", "working:c-1"),
    "group-only comment": ("okapigroup", "G1"),
    "public comment on an unpublished version": ("narwhalunpub", "U1"),
    "public comment on a published version": ("axolotlpublic", "P1"),
}
GROUP_READERS = {name: True for name in PROBES}
OUTSIDERS = {name: name == "public comment on a published version" for name in PROBES}
PERMISSIONS = {
    "anonymous": OUTSIDERS,
    "stakeholder": OUTSIDERS,
    "other group member": OUTSIDERS,
    "observer": GROUP_READERS,
    "member": GROUP_READERS,
    "editor": GROUP_READERS,
    "chair": GROUP_READERS,
    "admin": GROUP_READERS,
}
# The documents that carry "sharedmark", with their facet values.
SHARED = {
    "v1:c-1": {"kind": "version", "code": "alpha"},
    "v2:c-1": {"kind": "version", "code": "alpha"},
    "working:c-1": {"kind": "working", "code": "alpha"},
    "P1": {"kind": "comment", "code": "alpha", "category": "civil_society", "comment_type": "general",
           "disposition": "open"},
    "G1": {"kind": "comment", "code": "alpha", "category": "academia", "comment_type": "technical",
           "disposition": "accepted"},
    "U1": {"kind": "comment", "code": "alpha", "category": "rights_holder", "comment_type": "editorial",
           "disposition": "open"},
}  # fmt: skip
SHARED_PUBLIC = {"v1:c-1", "P1"}


def expected_facets(labels: set[str]) -> dict[str, dict[str, int]]:
    return {name: dict(Counter(SHARED[label][name] for label in labels if name in SHARED[label])) for name in FACETS}


def test_permission_table_with_totals_and_facets(world, client, login):
    seen: dict[str, dict[str, bool]] = {}
    leaks: list[tuple[str, str, str]] = []
    shared: dict[str, tuple[int, dict[str, dict[str, int]], set[str]]] = {}
    for role in PERMISSIONS:
        viewer = world.users[role]
        seen[role] = {}
        for name, (token, label) in PROBES.items():
            results = everything(viewer, token)
            found = world.labels(results) == {label}
            seen[role][name] = found
            # A hidden document counts nowhere: not in the total, not in any facet.
            if results.total != int(found):
                leaks.append((role, name, f"total {results.total}"))
            leaks += [(role, name, f"facet {f} {c}") for f, c in results.facets.items() if sum(c.values()) > found]
        # Several documents at once, counted on a page of one: totals and facets cover exactly what may be seen.
        one = find(viewer, "sharedmark", per_page=1)
        shared[role] = (one.total, one.facets, world.labels(everything(viewer, "sharedmark")))
    assert seen == PERMISSIONS
    assert leaks == []
    assert shared == {
        role: (len(v), expected_facets(v), v)
        for role, v in ((r, set(SHARED) if p is GROUP_READERS else SHARED_PUBLIC) for r, p in PERMISSIONS.items())
    }

    # The same through the API, anonymous and then as an observer.
    anonymous = client.get("/api/v1/search?q=sharedmark").get_json()
    assert (anonymous["total"], anonymous["facets"]) == (2, expected_facets(SHARED_PUBLIC))
    login(world.users["observer"])
    observer = client.get("/api/v1/search?q=sharedmark").get_json()
    assert (observer["total"], observer["facets"]) == (6, expected_facets(set(SHARED)))


# --- keeping the index in step -------------------------------------------------------------------------------


def test_a_withdrawn_comment_disappears_from_the_index_after_drain(app, session, world):
    comments.withdraw_comment(session, world.users["stakeholder"], world.comments["P1"])
    session.commit()
    assert world.labels(everything(world.users["admin"], "axolotlpublic")) == {"P1"}  # not yet drained
    drain(app)
    for role in ("anonymous", "admin"):
        results = everything(world.users[role], "axolotlpublic")
        assert (results.total, results.hits) == (0, [])
    assert "civil_society" not in find(world.users["admin"], "sharedmark").facets["category"]


def test_an_edited_comment_is_found_by_its_new_words_only(app, session, world):
    comments.edit_comment(session, world.users["provider"], world.comments["P2"], "Use the TDMRep protocol.", None)
    session.commit()
    drain(app)
    assert world.labels(everything(None, "tdmrep")) == {"P2"}
    assert everything(None, "robots").total == 0


def test_a_version_published_later_becomes_public_after_drain(app, session, world):
    anonymous = world.users["anonymous"]
    assert everything(anonymous, "quokkaversion").total == 0
    drafting.publish_version(session, None, world.versions["v2"])
    session.commit()
    drain(app)
    assert world.labels(everything(anonymous, "quokkaversion")) == {"v2:c-1"}
    assert world.labels(everything(anonymous, '"mitigate systemic risk"')) == {"v2:c-2"}
    # The working text stays with the group.
    assert everything(anonymous, "wombatworking").total == 0


def test_public_comments_on_a_version_published_later_become_public_after_drain(app, session, world):
    drafting.publish_version(session, None, world.versions["v2"])
    session.commit()
    drain(app)
    # The comment pages now show U1 to everyone (can_see_comment); search has to agree.
    assert comments.can_see_comment(None, world.comments["U1"])
    assert world.labels(everything(world.users["anonymous"], "narwhalunpub")) == {"U1"}


# --- bad input -----------------------------------------------------------------------------------------------

BAD_QUERIES = [
    ({"q": "x" * 1001}, "at most 1000 characters"),
    ({"q": "(a OR"}, "could not be understood"),
    ({"q": "ri*sk"}, "A * can only end a word"),
    ({"q": "*"}, "at least two letters"),
    ({"q": "risk", "page": "999999"}, "Pages run from 1 to 500"),
    ({"q": "risk", "page": "0"}, "Pages run from 1 to 500"),
    ({"q": "risk", "page": "two"}, "whole numbers"),
    ({"q": "risk", "per_page": "1000"}, "1 to 100 results"),
    ({"q": "risk", "version": "v1"}, "whole numbers"),
    ({"q": "risk", "from": "yesterday"}, "dates look like"),
    ({"q": "risk", "kind": "users"}, "version text, working text or comments"),
    ({"q": "[a TO z]"}, "could not be understood"),
]


def answer(client, path: str, args: dict[str, str]) -> tuple[int, str]:
    try:
        response = client.get(path, query_string=args)
    except Exception as error:  # TESTING propagates what would be a 500
        return 500, f"{type(error).__name__}: {error}"
    if response.is_json:
        return response.status_code, response.get_json().get("message", "")
    return response.status_code, response.get_data(as_text=True).replace("&#39;", "'")


def test_bad_input_is_a_clear_422_on_the_api_and_400_on_the_page_never_500(client):
    answers = {}
    for args, message in BAD_QUERIES:
        for path, _status in (("/api/v1/search", 422), ("/search", 400)):
            code, body = answer(client, path, args)
            answers[(path, str(args)[:40])] = (code, message in body) if code != 500 else (code, body[:120])
    assert answers == {
        (path, str(args)[:40]): (status, True)
        for args, _ in BAD_QUERIES
        for path, status in (("/api/v1/search", 422), ("/search", 400))
    }


def test_an_empty_query(client):
    for args in ({}, {"q": ""}, {"q": "   "}):
        response = client.get("/api/v1/search", query_string=args)
        assert response.status_code == 422
        assert response.get_json()["message"] == "Type something to search for."
    # The page shows its form for no query at all, and says what to do for a blank one.
    assert client.get("/search").status_code == 200
    assert client.get("/search?q=").status_code == 200
    blank = client.get("/search", query_string={"q": "   "})
    assert blank.status_code == 400
    assert "Type something to search for." in blank.get_data(as_text=True)


def test_an_unknown_filter_on_the_api_is_a_422_json(client):
    response = client.get("/api/v1/search?q=risk&colour=blue&sort=date")
    assert response.status_code == 422
    assert response.is_json
    body = response.get_json()
    assert (body["status"], body["message"]) == (422, "Unknown filter: colour, sort.")


ODD_QUERIES = ["o'br*", "a\\b*", "'risk'", '"risk', "risk)", "risk^2", "title:risk", "it''s*", "\\\\*", "ab\x00cd",
               "risk:*", "risk & !x", "<script>", "NOT NOT risk", "ris* OR ri*sk*"]  # fmt: skip


def test_odd_queries_never_answer_500(client):
    statuses = {}
    for query in ODD_QUERIES:
        for path, refused in (("/api/v1/search", 422), ("/search", 400)):
            code, body = answer(client, path, {"q": query})
            statuses[(path, query)] = "ok" if code in (200, refused) else f"{code}: {body[:120]}"
    assert statuses == {key: "ok" for key in statuses}


# --- rebuilding the index ------------------------------------------------------------------------------------


def test_flask_search_reindex_rebuilds_a_lost_index(app, session, world):
    admin = world.users["admin"]
    runner = app.test_cli_runner()
    sources = session.scalar(select(func.count()).select_from(Version)) + 2 + len(world.comments)
    backend = backend_for(app)

    # Safe at any time: over a working index it gives the same answers.
    result = runner.invoke(args=["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert f"Indexed {sources} sources with the {backend.name} backend." in result.output
    assert world.labels(everything(admin, BROAD)) == ALL_BROAD

    if backend.name == "whoosh":
        # The index directory is lost; the command runs in a new process, so with a new backend object.
        backend.close()
        shutil.rmtree(app.config["SEARCH_INDEX_DIR"])
        app.extensions.pop(EXTENSION)
    else:
        session.execute(text("DELETE FROM search_documents"))
        session.commit()
    assert everything(admin, BROAD).total == 0

    result = runner.invoke(args=["search", "reindex"])

    assert result.exit_code == 0, result.output
    assert f"Indexed {sources} sources with the {backend.name} backend." in result.output
    assert world.labels(everything(admin, BROAD)) == ALL_BROAD
    assert world.labels(everything(None, "sharedmark")) == SHARED_PUBLIC
    assert find(admin, BROAD).facets["kind"] == {"version": 6, "working": 1, "comment": 5}
    if backend.name == "postgresql":
        assert session.scalar(select(func.count()).select_from(SearchDocumentRow)) == 16


def test_an_index_of_an_older_schema_is_rebuilt_when_serving_starts(app, session, world):
    admin = world.users["admin"]
    backend = backend_for(app)
    if backend.name == "whoosh":
        # An index from before the `content_words` field: prefix queries on it failed with a 500.
        backend.close()
        app.extensions.pop(EXTENSION)
        shutil.rmtree(app.config["SEARCH_INDEX_DIR"])
        Path(app.config["SEARCH_INDEX_DIR"]).mkdir()
        old_schema = whoosh_backend._schema()
        old_schema.remove("content_words")
        old = whoosh_index.create_in(app.config["SEARCH_INDEX_DIR"], old_schema)
        writer = old.writer()
        writer.add_document(id="stale", source="comment:0", content_en="crawlers of old", language="en")
        writer.commit()
        old.close()
    else:
        # On PostgreSQL the schema is the migrations'; what serving does about an empty index is the same.
        session.execute(text("DELETE FROM search_documents"))
        session.commit()
    assert everything(admin, "crawl*").total == 0

    queued = indexer.queue_rebuild_if_empty(app)
    drain(app)

    assert queued == session.scalar(select(func.count()).select_from(Version)) + 2 + len(world.comments)
    assert world.labels(everything(admin, "crawl*")) == {"P2"}
    assert world.labels(everything(admin, BROAD)) == ALL_BROAD
    assert indexer.queue_rebuild_if_empty(app) == 0


# --- the indexer thread --------------------------------------------------------------------------------------


def test_a_committed_comment_becomes_searchable_by_itself_with_the_indexer_thread(app, session, group, make_user):
    code = drafting.create_code(
        session, None, group=group, slug="live", title="Live", language="en", status=CodeStatus.CONSULTATION
    )
    version = drafting.cut_version(session, None, code, label="One", markdown=ALPHA_V1)
    drafting.publish_version(session, None, version)
    session.commit()
    open_window(session, code)
    drain(app)
    author = make_user()
    app.config["SEARCH_INDEXER_THREAD"] = True
    try:
        indexer.start()
        receipt = comments.submit_comment(
            session, author, version,
            comments.Submission(clause_key="c-2", body="Livetoken arrives.", idempotency_key=uuid.uuid4().hex),
        )  # fmt: skip
        session.commit()
        committed = time.perf_counter()
        hits: list[str] = []
        while time.perf_counter() - committed < 5 and not hits:
            hits = [hit.id for hit in find(None, "livetoken").hits]
            if not hits:
                time.sleep(0.01)
        # How soon (a second is the target) is measured by bench/search.py, not asserted here: a timed
        # assertion fails whenever the machine is busy.
        assert hits == [f"comment:{receipt.comment_id}"], "the comment never became searchable"
    finally:
        app.config["SEARCH_INDEXER_THREAD"] = False
        session.rollback()
        # Let a drain in flight finish before the fixture empties the tables.
        deadline = time.perf_counter() + 3
        while time.perf_counter() < deadline and session.scalar(select(func.count()).select_from(SearchQueueItem)):
            session.rollback()
            time.sleep(0.05)
        session.rollback()
