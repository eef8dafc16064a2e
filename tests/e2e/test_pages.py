"""Public reading journeys in a real browser: home, a published version, its contents, compare, languages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import PageLog, screenshot, visit

pytestmark = pytest.mark.browser

GPAI_TITLE = "Code of Practice for Providers of General-Purpose AI Models"
SWEDISH_TITLE = "Uppförandekod för ansvarsfull användning av AI i offentlig förvaltning"


def assert_clean(log: PageLog) -> None:
    assert log.problems() == [], "the browser reported problems:\n" + "\n".join(log.problems())


def test_anonymous_reader_follows_a_code_from_home_to_a_clause_and_its_changes(
    new_page: Callable[[], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = new_page()

    visit(page, "/", 200)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    cards = page.locator(".code-list .code-card")
    expect(cards).to_have_count(2)
    expect(cards.get_by_role("link", name=GPAI_TITLE)).to_be_visible()
    expect(cards.get_by_role("link", name=SWEDISH_TITLE)).to_be_visible()
    # The unpublished v3 is not offered to the public: the newest version it sees is v2.
    gpai = cards.filter(has_text=GPAI_TITLE)
    expect(gpai.get_by_role("link", name=re.compile(r"^v2 — Second draft"))).to_be_visible()
    expect(gpai.locator(".badge-unpublished")).to_have_count(0)
    screenshot(page, "home.png")
    assert_clean(page_log(page))

    gpai.get_by_role("link", name=re.compile(r"^v2 — ")).click()
    expect(page).to_have_url(re.compile(r"/codes/gpai-code/v2$"))
    expect(page.locator(".version-header h1")).to_have_text("v2: Second draft")
    expect(page.locator(".notice-warning")).to_have_count(0)
    screenshot(page, "version.png", full_page=False)

    toc = page.get_by_role("navigation", name="Contents")
    toc.get_by_role("link", name="Commitment 3: Copyright policy", exact=True).click()
    expect(page).to_have_url(re.compile(r"/codes/gpai-code/v2#c-3$"))
    target = page.locator("article.document #c-3")
    expect(target).to_have_text(re.compile(r"Commitment 3: Copyright policy"))
    expect(target).to_be_in_viewport()
    assert_clean(page_log(page))

    page.get_by_role("link", name="What changed since v1").click()
    expect(page).to_have_url(re.compile(r"/codes/gpai-code/compare\?from=1&to=2$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Compare versions")
    expect(page.locator("#from")).to_have_value("1")
    expect(page.locator("#to")).to_have_value("2")
    body = page.locator(".diff-body")
    assert body.locator("ins").count() > 0, "the comparison shows no inserted text"
    assert body.locator("del").count() > 0, "the comparison shows no deleted text"
    expect(body.locator("ins").first).to_be_visible()
    # The picture shows the marked-up text itself, from its heading down.
    page.locator("#diff-title").evaluate("heading => heading.scrollIntoView()")
    screenshot(page, "compare.png", full_page=False)
    assert_clean(page_log(page))


def test_unpublished_version_is_hidden_from_the_public(
    new_page: Callable[[], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = new_page()
    visit(page, "/codes/gpai-code/v3", 404)
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.locator("body")).not_to_contain_text("Third draft")
    # The browser logs the 404 of the page itself as a console error; that one is expected here.
    page_log(page).clear()
    # The version list of the code does not give it away either.
    page.goto("/codes/gpai-code")
    expect(page.locator(".data-table")).not_to_contain_text("v3")
    assert_clean(page_log(page))


def test_chair_sees_the_unpublished_version_with_a_notice_and_a_publish_button(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = logged_in_page("chair")
    visit(page, "/codes/gpai-code/v3", 200)
    expect(page.locator(".version-header h1")).to_contain_text("v3: Third draft")
    expect(page.locator(".notice-warning")).to_contain_text("Unpublished.")
    # Only check that the button is there: publishing would change the shared server for other tests.
    expect(page.get_by_role("button", name="Publish v3")).to_be_visible()
    expect(page.locator(".version-nav")).to_contain_text("Unpublished")
    assert_clean(page_log(page))


def test_editor_sees_the_unpublished_version_but_may_not_publish_it(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = logged_in_page("editor")
    visit(page, "/codes/gpai-code/v3", 200)
    expect(page.locator(".notice-warning")).to_contain_text("Unpublished.")
    expect(page.get_by_role("button", name=re.compile("^Publish"))).to_have_count(0)
    expect(page.locator("form.publish-form")).to_have_count(0)
    assert_clean(page_log(page))


def test_switching_to_swedish_changes_the_page_language_and_navigation(
    new_page: Callable[[], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = new_page()
    page.goto("/codes/gpai-code")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Codes", exact=True)).to_be_visible()

    page.get_by_label("Language").select_option(label="Svenska")
    page.get_by_role("button", name="Change language").click()

    expect(page.locator("html")).to_have_attribute("lang", "sv")
    expect(page).to_have_url(re.compile(r"/codes/gpai-code\??$"))  # back where the reader was
    nav = page.locator(".site-nav")
    expect(nav.get_by_role("link", name="Uppförandekoder", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Publiceringslogg", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Byt språk")).to_be_visible()
    expect(page.get_by_label("Språk", exact=True)).to_have_value("sv")
    # The choice sticks for the next page too.
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "sv")
    assert_clean(page_log(page))


def test_publication_log_verifies_its_chain(new_page: Callable[[], Any], page_log: Callable[[Any], PageLog]) -> None:
    page = new_page()
    page.goto("/publication-log")
    expect(page.get_by_role("heading", level=1)).to_have_text("Publication log")
    expect(page.locator(".notice-ok")).to_contain_text("chain intact")
    # v1 and v2 of each demo code are published; v3 of gpai-code is not.
    rows = page.locator(".data-table tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator(".data-table")).not_to_contain_text("v3")
    screenshot(page, "publication-log.png")
    assert_clean(page_log(page))


def test_site_has_a_favicon(new_page: Callable[[], Any], base_url: str, page_log: Callable[[Any], PageLog]) -> None:
    """Browsers ask every site for an icon; a 404 there is a console error on a reader's first page."""
    page = new_page()
    page.goto("/")
    declared = page.locator("link[rel~='icon']")
    if declared.count():
        href = declared.first.get_attribute("href") or ""
        assert href.startswith("data:") or requests.get(urljoin(page.url, href), timeout=5).ok
    else:
        response = requests.get(base_url + "/favicon.ico", timeout=5)
        assert response.status_code == 200, (
            f"no <link rel=icon> and /favicon.ico answers {response.status_code}: "
            "every reader's first page logs a console error"
        )
    page.wait_for_timeout(200)  # the icon request trails the load event
    assert page_log(page).missing_favicon == 0
