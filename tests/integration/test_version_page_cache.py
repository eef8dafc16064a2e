"""The version page's per-process parts: the cached text, the one-query comment margin, the clause choice
rendered once and dates formatted once; each must give exactly what the uncached path gives."""

from __future__ import annotations

import datetime as dt
import re
import uuid
import warnings

import pytest
from flask_babel import format_datetime, refresh
from sqlalchemy import event, update
from sqlalchemy.exc import SAWarning
from wtforms.widgets import Select

from app.accounts.models import Role
from app.comments import service
from app.comments.margin import margin_for
from app.comments.models import Comment
from app.comments.views import comment_form_for
from app.db import db, utcnow
from app.drafting import service as drafting
from app.drafting.models import Code, Version
from app.drafting.rendering import localise_permalinks, render_markdown
from app.drafting.texts import DOCUMENT_SLOT, TOC_SLOT, VersionTextCache, build_version_text, version_texts

HOUR = dt.timedelta(hours=1)


def open_window(session, code: Code) -> None:
    now = utcnow()
    code.consultation_opens_at, code.consultation_closes_at = now - HOUR, now + HOUR
    session.commit()


def comment_as(session, user, version, *, clause: str = "c-2", body: str = "A remark.", **extra) -> Comment:
    with warnings.catch_warnings():
        # Storing a reply raises an SAWarning today (see test_comments.py); not what these tests are about.
        warnings.filterwarnings("ignore", "Object of type <Comment> not in session", SAWarning)
        receipt = service.submit_comment(
            session, user, version,
            service.Submission(clause_key=clause, body=body, idempotency_key=uuid.uuid4().hex, **extra),
        )  # fmt: skip
    session.commit()
    return session.get(Comment, receipt.comment_id)


def without_csrf(page: bytes) -> bytes:
    # A CSRF token carries the second it was signed in, so two renderings a second apart differ there only.
    return re.sub(rb'name="csrf_token" value="[^"]*"', b'name="csrf_token"', page)


def statements_during(app, fn) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


# --- the cached text -----------------------------------------------------------------------------


def test_a_version_text_is_read_from_the_database_once_per_process(app, client, make_code):
    make_code(versions=2, published=2)
    version_texts.clear()
    first = client.get("/codes/test-code/v2")
    queries = statements_during(app, lambda: client.get("/codes/test-code/v2"))

    assert first.status_code == 200
    assert not [q for q in queries if "versions.html" in q or "FROM clauses" in q], queries
    assert without_csrf(client.get("/codes/test-code/v2").data) == without_csrf(first.data)


def test_the_page_holds_the_document_and_contents_once_and_no_slot_markers(client, make_code):
    make_code(versions=2, published=2)

    response = client.get("/codes/test-code/v2")
    page = response.get_data(as_text=True)

    assert response.content_type == "text/html; charset=utf-8"
    assert page.count('<h2 id="c-3" class="clause-heading">') == 1
    assert page.count('<li class="toc-level-2"><a href="#c-3" lang="en">Safety</a></li>') == 1
    assert TOC_SLOT not in page
    assert DOCUMENT_SLOT not in page
    assert page.index('id="toc-title"') < page.index('href="#c-3" lang="en"') < page.index('id="document"')
    assert page.index('id="document"') < page.index('<h2 id="c-3"') < page.index('id="margin-title"')


def test_filling_a_page_without_its_slots_is_refused():
    text = build_version_text("<p>Text</p>", [{"key": "a", "title": "A", "level": 2}], "en", [("a", "A")])

    with pytest.raises(ValueError, match="exactly once"):
        text.fill("<html>no slots</html>")
    with pytest.raises(ValueError, match="before the document"):
        text.fill(f"{DOCUMENT_SLOT}{TOC_SLOT}")
    with pytest.raises(ValueError, match="exactly once"):
        text.fill(f"{TOC_SLOT}{DOCUMENT_SLOT}{DOCUMENT_SLOT}")
    assert text.fill(f"<nav>{TOC_SLOT}</nav>·<main>{DOCUMENT_SLOT}</main>").decode() == (
        '<nav><ol><li class="toc-level-2"><a href="#a" lang="en">A</a></li></ol></nav>·<main><p>Text</p></main>'
    )


def test_contents_entries_are_escaped_and_the_title_left_out():
    toc = [
        {"key": "title", "title": "Code", "level": 1},
        {"key": "c-1", "title": '<script>"x"</script> & co', "level": 2},
    ]

    text = build_version_text("", toc, 'e"n', [])

    assert text.toc_html.decode() == (
        '<ol><li class="toc-level-2"><a href="#c-1" lang="e&#34;n">'
        "&lt;script&gt;&#34;x&#34;&lt;/script&gt; &amp; co</a></li></ol>"
    )


def test_an_unpublished_version_read_by_the_group_stays_hidden_from_the_public(
    app, client, make_code, make_user, group, login, session
):
    code = make_code(versions=3, published=2)
    login(make_user(Role.MEMBER, group))
    assert client.get("/codes/test-code/v3").status_code == 200  # now in the cache
    public = app.test_client()
    missing = public.get("/codes/test-code/v9")

    hidden = public.get("/codes/test-code/v3")

    assert hidden.status_code == missing.status_code == 404
    assert without_csrf(hidden.data.replace(b"/v3", b"/v9")) == without_csrf(missing.data)  # names its own path only
    drafting.publish_version(session, None, code.versions[2])
    session.commit()
    assert public.get("/codes/test-code/v3").status_code == 200


def test_another_text_under_a_reused_version_id_is_not_served_from_the_cache(client, make_code, session):
    # Ids come back when a database is rebuilt or restored while the process runs (and between tests).
    code = make_code(versions=1, published=1)
    assert "Providers shall respect opt-outs." in client.get("/codes/test-code/v1").get_data(as_text=True)
    version_id = code.versions[0].id
    session.execute(
        update(Version)
        .where(Version.id == version_id)
        .values(content_sha256="0" * 64, html='<h2 id="c-9" class="clause-heading">Other</h2>')
    )
    session.commit()

    page = client.get("/codes/test-code/v1").get_data(as_text=True)

    assert "Providers shall respect opt-outs." not in page
    assert '<h2 id="c-9" class="clause-heading">Other</h2>' in page


def test_the_contents_follow_a_change_of_the_codes_language(client, make_code, session):
    code = make_code(versions=1, published=1, language="de")
    assert 'href="#c-1" lang="de"' in client.get("/codes/test-code/v1").get_data(as_text=True)
    code.language = "sv"
    session.commit()

    page = client.get("/codes/test-code/v1").get_data(as_text=True)

    assert 'href="#c-1" lang="sv"' in page
    assert 'lang="de"' not in page


def test_the_text_cache_is_bounded_and_forgets_the_least_recently_used():
    cache = VersionTextCache(max_entries=2, max_chars=10_000)
    texts = {n: build_version_text(f"<p>{n}</p>", [], "en", []) for n in range(3)}
    cache.get((0, "a", "en"), lambda: texts[0])
    cache.get((1, "a", "en"), lambda: texts[1])
    cache.get((0, "a", "en"), lambda: pytest.fail("kept"))
    cache.get((2, "a", "en"), lambda: texts[2])

    assert len(cache) == 2
    assert cache.get((1, "a", "en"), lambda: texts[1]) is texts[1]
    assert (cache.hits, cache.misses) == (1, 4)
    big = build_version_text("x" * 20_000, [], "en", [])
    assert cache.get((3, "a", "en"), lambda: big) is big
    assert len(cache) <= 2
    assert all(len(t.html) < 20_000 for t in cache._entries.values())


# --- the comment margin --------------------------------------------------------------------------


def _expected_margin(session, viewer, version):
    threads = service.list_comments(session, viewer, version, threads=True)
    return (
        [t.id for t in threads],
        [(c.id, a.id) for c, a in service.comments_carried_into(session, viewer, version)],
        {t.id: sum(1 for r in t.replies if not r.is_withdrawn and service.can_see_comment(viewer, r)) for t in threads},
    )


def test_the_margin_shows_what_the_comment_service_shows_to_every_viewer(session, make_code, make_user, group):
    code = make_code(versions=3, published=2)
    open_window(session, code)
    v1, v2, v3 = code.versions
    author, other, member = make_user(), make_user(), make_user(Role.MEMBER, group)
    admin, observer = make_user(admin=True), make_user(Role.OBSERVER, group)
    public = comment_as(session, author, v2, body="Public thread.")
    own_group = comment_as(session, author, v2, clause="c-1", body="Author's group-only.", visibility="group")
    internal = comment_as(session, member, v2, clause="c-3", body="Internal thread.", visibility="group")
    comment_as(session, other, v2, body="Public reply.", parent_id=public.id)
    comment_as(session, member, v2, body="Group reply.", parent_id=public.id, visibility="group")
    comment_as(session, author, v2, body="Author's own group reply.", parent_id=public.id, visibility="group")
    gone = comment_as(session, other, v2, body="Withdrawn reply.", parent_id=public.id)
    service.withdraw_comment(session, other, gone)
    comment_as(session, member, v2, body="Reply in a group thread.", parent_id=internal.id)
    withdrawn = comment_as(session, other, v2, body="Withdrawn thread.")
    service.withdraw_comment(session, other, withdrawn)
    # Made on v1 after v2 was cut: re-anchored into v2 (and v3), shown there as carried.
    comment_as(session, author, v1, body="Carried public.")
    comment_as(session, author, v1, clause="c-1", body="Carried, author's group-only.", visibility="group")
    comment_as(session, member, v1, body="Carried internal.", visibility="group")
    comment_as(session, member, v3, clause="c-3", body="On the unpublished version.")
    # Hidden by an admin (a report upheld): left out everywhere, the margin included.
    hidden = [
        comment_as(session, other, v2, body="Hidden thread."),
        comment_as(session, other, v2, body="Hidden reply.", parent_id=public.id),
        comment_as(session, other, v1, body="Hidden carried."),
    ]
    for comment in hidden:
        comment.hidden_at = utcnow()
    session.commit()
    assert own_group.visibility.value == "group"
    # What the rules give, spelled out for v2, so that the comparison below compares something.
    shown = {
        viewer: (len(m.threads), len(m.carried), m.reply_counts.get(public.id))
        for viewer, m in ((v, margin_for(session, v, v2)) for v in (None, author, member))
    }
    assert shown == {None: (1, 1, 1), author: (1, 2, 2), member: (3, 3, 3)}

    for viewer in (None, author, other, member, admin, observer):
        for version in (v1, v2, v3):
            if version is v3 and viewer in (None, author, other):
                continue  # the page answers 404 before the margin
            margin = margin_for(session, viewer, version)
            got = (
                [t.id for t in margin.threads],
                [(c.id, a.id) for c, a in margin.carried],
                margin.reply_counts,
            )
            assert got == _expected_margin(session, viewer, version), (viewer, version.number)
            assert margin.by_clause == {
                key: [t for t in margin.threads if t.clause_key == key] for key in dict.fromkeys(
                    t.clause_key for t in margin.threads
                )
            }  # fmt: skip


def test_the_version_page_shows_the_margin_and_reply_counts(app, client, session, make_code, make_user, group, login):
    code = make_code(versions=2, published=2)
    open_window(session, code)
    v1, v2 = code.versions
    author, member = make_user(), make_user(Role.MEMBER, group)
    thread = comment_as(session, author, v2, body="Walrus thread.")
    comment_as(session, member, v2, body="Group reply.", parent_id=thread.id, visibility="group")
    comment_as(session, author, v2, body="Public reply.", parent_id=thread.id)
    comment_as(session, member, v2, clause="c-3", body="Narwhal internal.", visibility="group")
    comment_as(session, author, v1, body="Carried remark.")

    public = app.test_client().get("/codes/test-code/v2").get_data(as_text=True)
    login(member)
    inside = client.get("/codes/test-code/v2").get_data(as_text=True)

    assert "Walrus thread." in public
    assert "Narwhal" not in public
    assert re.findall(r"(\d+) replies", public) == ["1"]
    assert "All comments (1)" in public
    assert "Carried remark." in public.split('id="carried-title"', 1)[1]
    assert "Narwhal internal." in inside
    assert sorted(re.findall(r"(\d+) replies", inside)) == ["2"]
    assert "All comments (2)" in inside
    assert '<a href="#c-3">Safety</a>' in inside  # the clause's heading, from the cached clause list


# --- rendered once -------------------------------------------------------------------------------


def test_the_clause_choice_renders_exactly_as_wtforms_renders_it(app, make_code):
    code = make_code(versions=2, published=2)
    version = code.versions[1]
    with app.test_request_context("/"):
        for data in (None, "c-3", "<not-a-key>"):
            form = comment_form_for(version, [(c.key, c.heading) for c in version.clauses])
            form.clause_key.data = data
            stock = Select()(form.clause_key)

            assert form.clause_key() == stock
            assert form.clause_key() == stock  # the second time from the cache
            assert form.clause_key(**{"aria-invalid": "true"}) == Select()(form.clause_key, **{"aria-invalid": "true"})
        assert 'value="c-3" selected' not in comment_form_for(version).clause_key()
        assert [c[0] for c in comment_form_for(version).clause_key.choices] == ["title", "c-1", "c-3", "c-2"]


def test_dates_are_formatted_in_each_readers_language_and_time_zone(app):
    when = app.jinja_env.filters["when"]
    moment = dt.datetime(2026, 10, 1, 9, 30, tzinfo=dt.UTC)
    seen = {}
    for locale in ("en", "sv", "en", "sv"):
        with app.test_request_context("/", headers={"Accept-Language": locale}):
            refresh()  # the fixture's app context (and its `g`) outlives each request context
            assert when(moment) == format_datetime(moment, "d MMM y, HH:mm z")
            assert when(moment, "d MMMM y") == format_datetime(moment, "d MMMM y")
            assert when(None) == ""
            seen[locale] = when(moment, "d MMMM y")
    assert seen == {"en": "1 October 2026", "sv": "1 oktober 2026"}


def test_permalinks_are_labelled_in_the_readers_language_from_the_same_stored_text(app, make_code):
    make_code(versions=1, published=1)
    swedish = app.test_client().get("/codes/test-code/v1", headers={"Accept-Language": "sv"}).get_data(as_text=True)
    english = app.test_client().get("/codes/test-code/v1", headers={"Accept-Language": "en"}).get_data(as_text=True)

    assert 'href="#c-1" aria-label="Permalänk: Transparency"' in swedish
    assert "Permalink" not in swedish
    assert 'href="#c-1" aria-label="Permalink: Transparency"' in english
    assert "Permalänk" not in english


def test_relabelling_permalinks_escapes_the_label_and_touches_nothing_else():
    rendered = render_markdown("# Code\n\n## Scope {#s}\n\nA Permalink: in the text stays.").html

    relabelled = localise_permalinks(rendered, 'Länk "hit"')

    assert 'aria-label="Länk &quot;hit&quot;: Scope"' in relabelled
    assert "A Permalink: in the text stays." in relabelled
    assert localise_permalinks(rendered, "Permalink") is rendered
