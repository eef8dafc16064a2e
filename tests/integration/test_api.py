"""The read-only JSON API: visibility, errors, the OpenAPI document and the publication log."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from openapi_spec_validator import validate

from app.accounts.models import Role
from app.audit.chain import GENESIS_HASH, content_hash, entry_hash
from tests.conftest import SAMPLE_VERSIONS

NOT_FOUND = {"error": "Not found", "message": "Page not found.", "status": 404}


def _viewer(kind: str, make_user, group):
    return {"anonymous": None, "stakeholder": make_user(), "observer": make_user(Role.OBSERVER, group)}[kind]


@pytest.mark.parametrize(("kind", "numbers"), [("anonymous", [1]), ("stakeholder", [1]), ("observer", [1, 2])], ids=str)
def test_api_shows_the_same_versions_as_the_pages(client, make_user, make_code, group, login, kind, numbers):
    make_code(versions=2, published=1)
    make_code(versions=1, published=0, slug="hidden-code")
    login(_viewer(kind, make_user, group))

    code = client.get("/api/v1/codes/test-code").get_json()
    listed = client.get("/api/v1/codes").get_json()

    assert [v["number"] for v in code["versions"]] == numbers
    page = client.get("/codes/test-code").get_data(as_text=True)
    assert sorted(int(n) for n in re.findall(r'href="/codes/test-code/v(\d+)"', page)) == numbers
    inside = kind == "observer"
    assert sorted(c["slug"] for c in listed["codes"]) == (["hidden-code", "test-code"] if inside else ["test-code"])
    assert client.get("/api/v1/codes/hidden-code").status_code == client.get("/codes/hidden-code").status_code
    assert client.get("/api/v1/codes/hidden-code").status_code == (200 if inside else 404)
    for number in (1, 2):
        api = client.get(f"/api/v1/codes/test-code/versions/{number}")
        assert api.status_code == client.get(f"/codes/test-code/v{number}").status_code
        assert api.status_code == (200 if number in numbers else 404)


def test_api_version_carries_markdown_html_toc_and_clauses(client, make_code):
    make_code(versions=2, published=1)

    version = client.get("/api/v1/codes/test-code/versions/1").get_json()
    markdown = client.get("/api/v1/codes/test-code/versions/1/markdown")

    assert version["number"] == 1
    assert version["markdown"] == SAMPLE_VERSIONS[0] == markdown.get_data(as_text=True)
    assert markdown.mimetype == "text/markdown"
    assert version["content_sha256"] == content_hash(SAMPLE_VERSIONS[0])
    assert [c["key"] for c in version["clauses"]] == ["title", "c-1", "c-2"]
    assert [t["key"] for t in version["toc"]] == ["title", "c-1", "c-2"]
    assert 'id="c-1"' in version["html"]
    assert version["published_at"] is not None
    assert version["url"] == "http://accord.test/codes/test-code/v1"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/codes/test-code/versions/2",
        "/api/v1/codes/test-code/versions/99",
        "/api/v1/codes/test-code/versions/2/markdown",
        "/api/v1/codes/test-code/versions/99/markdown",
        "/api/v1/codes/test-code/diff?from=1&to=2",
        "/api/v1/codes/test-code/diff?from=1&to=99",
        "/api/v1/codes/hidden-code",
        "/api/v1/codes/no-such-code",
        "/api/v1/codes/hidden-code/versions/1",
        "/api/v1/no-such-endpoint",
    ],
)
def test_hidden_and_missing_things_answer_the_same_404_json(client, make_code, path):
    make_code(versions=2, published=1)
    make_code(versions=1, published=0, slug="hidden-code")

    response = client.get(path)

    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.get_json() == NOT_FOUND


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Give two version numbers as ?from=N&to=M."),
        ("?from=1", "Give two version numbers as ?from=N&to=M."),
        ("?from=one&to=two", "Give two version numbers as ?from=N&to=M."),
        ("?from=1&to=1", "Choose two different versions to compare."),
    ],
    ids=["no-params", "one-param", "not-numbers", "same-version"],
)
def test_diff_without_two_different_versions_answers_422_json(client, make_code, query, message):
    make_code(versions=2, published=2)

    response = client.get("/api/v1/codes/test-code/diff" + query)

    assert response.status_code == 422
    assert response.get_json() == {"error": "Invalid input", "message": message, "status": 422}


def test_diff_reports_clause_changes(client, make_code):
    make_code(versions=3, published=3)

    diff = client.get("/api/v1/codes/test-code/diff?from=2&to=3").get_json()

    assert diff["from"] == 2
    assert diff["to"] == 3
    assert diff["summary"] == {"added": [], "removed": ["c-2"], "changed": ["c-3", "c-1"], "moved": ["c-3"]}
    statuses = {c["key"]: (c["status"], c["moved"]) for c in diff["clauses"]}
    assert statuses == {
        "title": ("unchanged", False),
        "c-3": ("changed", True),
        "c-1": ("changed", False),
        "c-2": ("removed", False),
    }
    safety = next(c for c in diff["clauses"] if c["key"] == "c-3")
    assert [1, "and mitigate "] in safety["ops"]


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule)


def test_openapi_document_is_valid_and_lists_every_api_route(app, client):
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    routes = {_openapi_path(rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")}
    assert routes, "the app has /api/v1/ routes"
    assert routes <= set(document["paths"]), routes - set(document["paths"])
    # And nothing documented that the app does not serve.
    assert set(document["paths"]) <= routes


def test_publication_log_endpoint_is_verified_and_its_entries_recompute(client, make_code):
    make_code(versions=3, published=2)
    make_code(versions=1, published=1, slug="second-code")

    log = client.get("/api/v1/publication-log").get_json()

    assert log["verified"] is True
    assert log["problems"] == []
    entries = log["entries"]
    assert [(e["seq"], e["code"], e["version"]) for e in entries] == [
        (1, "test-code", 1),
        (2, "test-code", 2),
        (3, "second-code", 1),
    ]
    previous = GENESIS_HASH
    for entry in entries:
        assert entry["previous_hash"] == previous
        recomputed = entry_hash(
            seq=entry["seq"],
            code_slug=entry["code"],
            version_number=entry["version"],
            content_sha256=entry["content_sha256"],
            published_at=dt.datetime.fromisoformat(entry["published_at"]),
            previous_hash=entry["previous_hash"],
        )
        assert recomputed == entry["entry_hash"]
        version = client.get(f"/api/v1/codes/{entry['code']}/versions/{entry['version']}/markdown")
        assert content_hash(version.get_data(as_text=True)) == entry["content_sha256"]
        previous = entry["entry_hash"]


def test_api_refuses_writes(client, make_user, make_code, group, login):
    make_code(versions=2, published=1)
    login(make_user(Role.CHAIR, group))

    response = client.post("/api/v1/codes/test-code", json={"title": "Changed"})

    assert response.status_code == 405
    assert response.get_json()["status"] == 405
