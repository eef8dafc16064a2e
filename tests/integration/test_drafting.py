"""Editing the working text, cutting versions, reading, comparing, the feed, headers and the Swedish UI."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from app.accounts.models import Role, User
from app.audit.chain import content_hash
from app.audit.models import AuditEvent
from app.drafting import service as drafting
from app.drafting.models import Code, Version
from tests.conftest import PASSWORD

ATOM = "{http://www.w3.org/2005/Atom}"
TWO_MB = 2 * 1024 * 1024
NEW_TEXT = "# Test code {#title}\n\nIntro.\n\n## Transparency {#c-1}\n\nProviders shall publish a summary.\n"


def stored_code(session) -> Code:
    session.expire_all()
    return session.scalars(select(Code).where(Code.slug == "test-code")).one()


def stored_text(session) -> str:
    """Return the working text as the app reads it now (snapshot plus live edits), leaving nothing pending."""
    session.rollback()
    try:
        return drafting.working_text(session, stored_code(session))
    finally:
        session.rollback()


def field_error(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def save(client, text: str, base_sha256: str | None = None):
    data = {"text": text}
    if base_sha256 is not None:
        data["base_sha256"] = base_sha256
    return client.post("/codes/test-code/working", data=data)


def hidden_base(page: str) -> str:
    """Return the hash of the text the form was built from, which the form sends back."""
    return re.search(r'name="base_sha256" type="hidden" value="([0-9a-f]{64})"', page).group(1)


# --- the working text ----------------------------------------------------------------------------


def test_editor_saves_the_working_text_and_the_revision_increments(client, make_user, make_code, group, login, session):
    make_code(versions=2, published=1)
    login(make_user(Role.EDITOR, group))
    before = stored_code(session)
    revision = before.working_revision
    base = hidden_base(client.get("/codes/test-code/working").get_data(as_text=True))
    assert base == content_hash(stored_text(session))

    response = save(client, NEW_TEXT, base)

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/codes/test-code/working")
    code = stored_code(session)
    assert stored_text(session) == NEW_TEXT
    assert code.working_revision == revision + 1
    page = client.get("/codes/test-code/working").get_data(as_text=True)
    assert hidden_base(page) == content_hash(NEW_TEXT)
    assert "Providers shall publish a summary." in page
    assert "code.working_text_saved" in set(session.scalars(select(AuditEvent.action)))


def test_saving_from_a_stale_text_answers_409_keeps_the_users_text_and_stores_nothing(
    app, client, make_user, make_code, group, login, session
):
    make_code(versions=2, published=1)
    first, second = make_user(Role.EDITOR, group), make_user(Role.CHAIR, group)
    login(first)
    other = app.test_client()
    assert other.post("/login", data={"email": second.email, "password": PASSWORD}).status_code == 302
    stale = hidden_base(other.get("/codes/test-code/working").get_data(as_text=True))
    assert save(client, NEW_TEXT, stale).status_code == 302  # the first editor saves meanwhile
    revision = stored_code(session).working_revision
    mine = NEW_TEXT + "\n## Safety {#c-3}\n\nMy unsaved paragraph & more.\n"

    response = save(other, mine, stale)

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone else changed the working text while you were editing." in page
    assert str(escape(mine)) in page  # the textarea still holds what the user typed
    assert hidden_base(page) == content_hash(NEW_TEXT)  # so saving again is possible
    code = stored_code(session)
    assert stored_text(session) == NEW_TEXT
    assert code.working_revision == revision

    assert save(other, mine, hidden_base(page)).status_code == 302
    assert stored_text(session) == mine


def test_observer_cannot_save_the_working_text(client, make_user, make_code, group, login, session):
    make_code(versions=2, published=1)
    before = stored_code(session)
    text, revision = stored_text(session), before.working_revision
    login(make_user(Role.OBSERVER, group))
    page = client.get("/codes/test-code/working")
    assert page.status_code == 200
    assert "Save working text" not in page.get_data(as_text=True)

    response = save(client, NEW_TEXT, content_hash(text))

    assert response.status_code == 403
    code = stored_code(session)
    assert stored_text(session) == text
    assert code.working_revision == revision


@pytest.mark.parametrize("size", [TWO_MB + 1, 3 * TWO_MB], ids=["one-byte-over", "far-over-the-request-limit"])
def test_a_working_text_over_2_mb_answers_413_naming_the_limit_and_stores_nothing(
    client, make_user, make_code, group, login, session, size
):
    make_code(versions=2, published=1)
    before = stored_code(session)
    text, revision = stored_text(session), before.working_revision
    login(make_user(Role.EDITOR, group))

    response = save(client, "x" * size, content_hash(text))

    assert response.status_code == 413
    assert "larger than the 2 MB limit" in response.get_data(as_text=True)
    code = stored_code(session)
    assert stored_text(session) == text
    assert code.working_revision == revision


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf-as-browsers-send"])
def test_a_working_text_of_exactly_2_mb_is_saved_from_the_form(
    client, make_user, make_code, group, login, session, newline
):
    # Browsers send a textarea URL-encoded with CRLF line breaks, where a line break takes up to 6 bytes
    # and "ö" 6; the limit is 2 MB of stored text (LF line breaks), so a text of 2 MB must get through.
    make_code(versions=2, published=1, language="sv")
    login(make_user(Role.EDITOR, group))
    head = stored_text(session) + "\n## Bilaga {#bilaga}\n\n"
    line = "Myndigheten ska öppet redovisa hur AI används i ärendet.\n"
    body = line * ((TWO_MB - len(head.encode())) // len(line.encode()))
    text = head + body + "x" * (TWO_MB - len((head + body).encode()))
    assert len(text.encode()) == TWO_MB

    response = save(client, text.replace("\n", newline))

    assert response.status_code == 302
    assert stored_text(session) == text


def test_duplicate_clause_keys_are_refused_with_422_and_a_message(client, make_user, make_code, group, login, session):
    make_code(versions=2, published=1)
    before = stored_text(session)
    login(make_user(Role.EDITOR, group))
    text = "# Code {#title}\n\n## One {#c-1}\n\nA.\n\n## Two {#c-1}\n\nB.\n"

    response = save(client, text, content_hash(before))

    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "text") == (
        "The clause key {#c-1} is used by more than one heading; each key must be unique."
    )
    assert stored_text(session) == before


def test_cutting_a_version_without_a_label_is_refused_with_422(client, make_user, make_code, group, login, session):
    make_code(versions=2, published=1)
    login(make_user(Role.CHAIR, group))

    response = client.post("/codes/test-code/versions", data={"label": "  ", "summary": "No label."})

    assert response.status_code == 422
    assert "Give the version a label" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Version)) == 2


# --- reading and comparing -----------------------------------------------------------------------


def test_version_page_has_a_table_of_contents_clause_anchors_and_the_code_language(client, make_code):
    make_code(versions=2, published=1, language="de")

    page = client.get("/codes/test-code/v1").get_data(as_text=True)

    toc = re.search(r'<nav class="toc".*?</nav>', page, re.S).group(0)
    assert re.findall(r'href="#([a-z0-9-]+)"', toc) == ["c-1", "c-2"]
    assert '<h2 id="c-1" class="clause-heading">' in page
    assert '<h2 id="c-2" class="clause-heading">' in page
    assert re.search(r'<article[^>]* class="document" lang="de"', page)
    assert "{#c-1}" not in page  # the key lives in the id, not in the text readers see
    assert '<html lang="en">' in page  # the interface stays in the reader's language


def _summary_links(page: str, title: str) -> list[str]:
    match = re.search(rf"<h3>{title} \((\d+)\)</h3>\s*(?:<ul>(.*?)</ul>|<p>)", page, re.S)
    assert match, title
    links = re.findall(r'href="#d-([a-z0-9-]+)"', match.group(2) or "")
    assert int(match.group(1)) == len(links)
    return links


def test_compare_page_lists_added_removed_changed_and_moved_clauses_with_links(client, make_code):
    make_code(versions=3, published=3)

    response = client.get("/codes/test-code/compare?from=2&to=3")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert _summary_links(page, "Clauses added") == []
    assert _summary_links(page, "Clauses removed") == ["c-2"]
    assert sorted(_summary_links(page, "Clauses changed")) == ["c-1", "c-3"]
    assert _summary_links(page, "Clauses moved") == ["c-3"]
    for key in ("c-1", "c-2", "c-3", "title"):
        assert f'id="d-{key}"' in page
    assert "<ins>and mitigate </ins>" in page


def test_compare_page_between_first_and_second_version_shows_the_added_clause(client, make_code):
    make_code(versions=3, published=3)

    page = client.get("/codes/test-code/compare?from=1&to=2").get_data(as_text=True)

    assert _summary_links(page, "Clauses added") == ["c-3"]
    assert _summary_links(page, "Clauses removed") == []
    assert _summary_links(page, "Clauses changed") == ["c-1"]


def test_atom_feed_lists_only_published_versions_and_is_valid_xml(client, make_user, make_code, group, login):
    make_code(versions=2, published=1)
    login(make_user(Role.CHAIR, group))  # even the working group's feed holds only what is public

    response = client.get("/codes/test-code/feed.atom")

    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)  # noqa: S314 - our own response, parsed to prove it is well-formed
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}title") == "Test code"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["v1: Draft 1"]
    assert entries[0].find(f"{ATOM}link").get("href") == "http://accord.test/codes/test-code/v1"
    assert entries[0].findtext(f"{ATOM}published")


def test_versions_and_clauses_export_as_csv_and_json_within_the_visibility_rules(
    app, client, make_user, make_code, group, login
):
    make_code(versions=2, published=1)
    public = app.test_client()

    listed = list(csv.DictReader(io.StringIO(public.get("/codes/test-code/versions.csv").get_data(as_text=True))))
    login(make_user(Role.MEMBER, group))
    inside = client.get("/codes/test-code/versions.json").get_json()

    assert [(row["version"], row["label"], row["published_at"] != "") for row in listed] == [("1", "Draft 1", True)]
    assert list(listed[0]) == [
        "code", "version", "label", "change_summary", "created_at", "published_at", "words", "content_sha256",
    ]  # fmt: skip
    assert [(v["version"], v["published_at"] == "") for v in inside["versions"]] == [(1, False), (2, True)]
    clauses = public.get("/codes/test-code/v1/clauses.csv")
    assert clauses.headers["Content-Disposition"] == 'attachment; filename="test-code-v1-clauses.csv"'
    rows = list(csv.DictReader(io.StringIO(clauses.get_data(as_text=True))))
    as_json = public.get("/codes/test-code/v1/clauses.json").get_json()["clauses"]
    assert [r["key"] for r in rows] == [c["key"] for c in as_json] == ["title", "c-1", "c-2"]
    assert [int(r["position"]) for r in rows] == sorted(int(r["position"]) for r in rows)
    assert rows[1]["heading"] == "Transparency"
    assert "Providers shall document models." in rows[1]["text"]
    assert rows[1]["content_sha256"] == hashlib.sha256(rows[1]["text"].encode()).hexdigest()
    assert public.get("/codes/test-code/v2/clauses.csv").status_code == 404
    assert public.get("/codes/test-code/v1/clauses.xml").status_code == 404


# --- headers and language ------------------------------------------------------------------------


def _page_urls(app) -> list[str]:
    values = {
        "number": 1,
        "token": "unknown-token",
        "filename": "css/accord.css",
        "user_id": 1,
        "comment_id": 1,
        "fmt": "csv",
        "round_id": 1,
        "clause_key": "c-1",
        "kind": "tallies",
    }
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        args = {name: values.get(name) for name in rule.arguments}
        if "slug" in rule.arguments:
            args["slug"] = "wg-test" if rule.endpoint.startswith("accounts.") else "test-code"
        urls.append(app.url_for(rule.endpoint, **args))
    return [*urls, "/no-such-page"]


def test_every_page_sends_a_content_security_policy_without_inline_scripts(app, client, make_user, make_code, login):
    make_code(versions=2, published=1)
    login(make_user(admin=True))
    urls = _page_urls(app)
    assert len(urls) > 15
    problems = []

    for url in urls:
        try:
            with client.get(url) as response:
                policy = response.headers.get("Content-Security-Policy", "")
                if response.status_code >= 500:
                    problems.append(f"{url}: status {response.status_code}")
                directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
                script_src = directives.get("script-src", "")
                if script_src != "'self'" or "unsafe-inline" in directives.get("default-src", ""):
                    problems.append(f"{url}: policy {policy!r}")
                if response.mimetype == "text/html" and '="None"' in response.get_data(as_text=True):
                    problems.append(f"{url}: an attribute holds the text None")  # WTForms writes None as text
        except Exception as error:  # a page that crashes cannot be checked; name it and go on
            problems.append(f"{url}: {type(error).__name__}: {error}")

    assert problems == []


def test_chair_creates_a_code_from_the_form(client, make_user, group, login, session):
    login(make_user(Role.CHAIR, group))
    assert client.get("/codes/new").status_code == 200

    response = client.post(
        "/codes/new",
        data={"title": "Neuer Kodex", "slug": "neuer-kodex", "language": "de", "working_group": "wg-test"},
    )

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/codes/neuer-kodex/working")
    code = session.scalars(select(Code).where(Code.slug == "neuer-kodex")).one()
    assert (code.title, code.language, code.working_group_id) == ("Neuer Kodex", "de", group.id)


def test_choosing_swedish_switches_the_interface_language(client):
    assert '<html lang="en">' in client.get("/").get_data(as_text=True)

    response = client.post("/locale", data={"locale": "sv"})

    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="sv">' in page
    assert "Uppförandekoder" in page


def test_a_logged_in_users_language_choice_is_kept_on_the_account(client, make_user, login, session):
    user = make_user()
    login(user)

    client.post("/locale", data={"locale": "sv"})

    session.expire_all()
    assert session.get(User, user.id).locale == "sv"
    assert '<html lang="sv">' in client.get("/").get_data(as_text=True)


def test_an_unknown_language_is_ignored(client):
    client.post("/locale", data={"locale": "xx"})

    assert '<html lang="en">' in client.get("/").get_data(as_text=True)


def test_pages_load_the_bundles_by_their_content_so_no_browser_runs_a_stale_editor(app, client, make_code, tmp_path):
    make_code()
    bundle = Path(app.static_folder) / "dist" / "main.js"
    if not bundle.exists():
        pytest.skip("static/dist is built by `make assets` (make run and make test build it)")
    page = client.get("/").get_data(as_text=True)
    expected = hashlib.sha256(bundle.read_bytes()).hexdigest()[:12]
    assert f"/static/dist/main.js?v={expected}" in page

    # A changed bundle gets a new address (an old cached one is never reused).
    original = bundle.read_bytes()
    try:
        bundle.write_bytes(original + b"\n// changed\n")
        changed = client.get("/").get_data(as_text=True)
    finally:
        bundle.write_bytes(original)
    assert f"/static/dist/main.js?v={expected}" not in changed
    with client.get(f"/static/dist/main.js?v={expected}") as served:
        assert served.status_code == 200
