"""User journeys end to end in a real browser: a newcomer, a chair's consultation cycle, the public.

The newcomer and the public use the session's shared server; the newcomer's comment carries a word no one
else writes and is withdrawn again after the test, so later screenshots of v2 do not show it. The
chair's cycle publishes a new version, which appends to the publication log that test_pages.py counts
(four entries) and puts a new version on the home page it screenshots, so it runs on a server of its own,
prepared the same way.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PageLog, screenshot, visit
from tests.support.live import DEMO_PASSWORD, LiveServer, demo_server

pytestmark = pytest.mark.browser

GPAI_TITLE = "Code of Practice for Providers of General-Purpose AI Models"
GPAI_V2 = "/codes/gpai-code/v2"
SWEDISH = "/codes/uppforandekod-ai"
BODY_LABEL = "Your comment (Markdown)"
QUOTE_LABEL = "Quoted passage (optional: select text in the document to fill it)"
RECEIPT_URL = re.compile(r"/comments/(\d+)\?receipt=1$")
UTC_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
MAX_TABS = 200


def token(name: str) -> str:
    """A word no one else writes, so a test can find exactly its own comment on the shared server."""
    return f"{name.upper()}{uuid.uuid4().hex[:8].upper()}"


def assert_clean(log: PageLog) -> None:
    assert log.problems() == [], "the browser reported problems:\n" + "\n".join(log.problems())


def log_in_here(page: Any, email: str, password: str = DEMO_PASSWORD) -> None:
    """Log in through the login form in this page's own browser context."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.locator("main form").get_by_role("button", name="Log in").click()
    expect(page.locator(".site-header .who")).to_have_count(1)


@pytest.fixture
def withdraw_afterwards(browser: Any, base_url: str) -> Iterator[list[tuple[str, str, int]]]:
    """Withdraw the comments listed (email, password, id) when the test is done: later tests on the shared
    server screenshot v2, and its margin should not show them."""
    sent: list[tuple[str, str, int]] = []
    yield sent
    if not sent:
        return
    context = browser.new_context(base_url=base_url)
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # "Withdraw this comment?"
        for email, password, comment_id in sent:
            context.clear_cookies()
            log_in_here(page, email, password)
            page.goto(f"/comments/{comment_id}")
            page.get_by_role("button", name="Withdraw comment").click()
            expect(page.locator(".flash-success")).to_have_text("Your comment is withdrawn.")
    finally:
        context.close()


def focused(page: Any) -> str:
    """Describe the focused element: tag, id, href and the start of its text."""
    return page.evaluate(
        """() => {
          const e = document.activeElement;
          return `${e.tagName.toLowerCase()}#${e.id} ${e.getAttribute("href") || ""} `
            + `${(e.textContent || "").trim().slice(0, 40)}`;
        }"""
    )


def is_focused(page: Any, selector: str) -> bool:
    return page.evaluate("(selector) => document.activeElement.matches(selector)", selector)


def tab_to(page: Any, selector: str) -> None:
    """Press Tab until `selector` has the focus; fail if it never does."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if is_focused(page, selector):
            return
    pytest.fail(f"{MAX_TABS} Tab presses never reached {selector}; focus is on {focused(page)}")


def receipt_facts(page: Any) -> tuple[int, str, str]:
    """Read the receipt on a thread page: comment number, UTC time, SHA-256."""
    receipt = page.get_by_role("status", name="Receipt")
    expect(receipt).to_be_visible()
    number = receipt.locator("dt:text-is('Comment number') + dd").inner_text().strip()
    received = receipt.locator("dt:text-is('Received (UTC)') + dd").inner_text().strip()
    sha = receipt.locator("dt:text-is('SHA-256 of what was stored') + dd").inner_text().strip()
    assert re.fullmatch(r"#\d+", number), f"comment number {number!r}"
    assert UTC_ISO.fullmatch(received), f"receipt time {received!r} is not UTC"
    assert re.fullmatch(r"[0-9a-f]{64}", sha), f"receipt hash {sha!r} is not 64 hex characters"
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(received)
    assert abs(age.total_seconds()) < 120, f"receipt time {received} is not now"
    expect(receipt).to_contain_text("It is also listed under “My comments”.")
    return int(number[1:]), received, sha


def sent_comment_id(page: Any) -> int:
    expect(page).to_have_url(RECEIPT_URL)
    match = RECEIPT_URL.search(page.url)
    assert match is not None
    return int(match.group(1))


def select_passage(page: Any, paragraph: Any, phrase: str) -> None:
    """Select `phrase` inside `paragraph` with a mouse drag from its first to its last character."""
    paragraph.scroll_into_view_if_needed()
    box = paragraph.evaluate(
        """(element, phrase) => {
          const node = [...element.childNodes].find((n) => n.nodeType === Node.TEXT_NODE && n.data.includes(phrase));
          if (!node) return null;
          const at = node.data.indexOf(phrase);
          const range = document.createRange();
          range.setStart(node, at);
          range.setEnd(node, at + phrase.length);
          const rects = [...range.getClientRects()].filter((r) => r.width > 0);
          const first = rects[0], last = rects[rects.length - 1];
          const middle = (rect) => rect.top + rect.height / 2;
          return {x1: first.left + 1, y1: middle(first), x2: last.right - 1, y2: middle(last)};
        }""",
        phrase,
    )
    assert box is not None, f"{phrase!r} is not one text run of the paragraph"
    page.mouse.move(box["x1"], box["y1"])
    page.mouse.down()
    page.mouse.move(box["x2"], box["y2"], steps=8)
    page.mouse.up()
    assert page.evaluate("() => window.getSelection().toString()").strip() == phrase


def reload_until_found(page: Any, locator: Any, seconds: float = 15.0) -> None:
    """Reload a search page until `locator` is on it: a server that has just started with an empty index
    fills it from the database in a background thread (about two seconds for the demo)."""
    deadline = time.monotonic() + seconds
    while locator.count() == 0 and time.monotonic() < deadline:
        page.reload()
    expect(locator).not_to_have_count(0, timeout=1)


# --- 1. A newcomer registers, reads, jumps to a clause with the keyboard, comments and keeps the receipt ---


def test_a_newcomer_registers_jumps_to_a_clause_by_keyboard_and_keeps_the_receipt_of_a_comment(
    new_page: Callable[[], Any], page_log: Callable[[Any], PageLog], withdraw_afterwards: list[tuple[str, str, int]]
) -> None:
    page = new_page()
    visit(page, "/")
    page.get_by_role("link", name="Register", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Register")

    word = token("newcomer")
    email = f"{word.lower()}@example.org"
    password = f"long enough {word}"
    name = f"Nora Newcomer {word}"
    form = page.locator("main form")
    form.get_by_label("Email address").fill(email)
    form.get_by_label("Name shown with your contributions").fill(name)
    form.get_by_label("Organisation (optional)").fill("Digital Rights Lab")
    form.get_by_label("Stakeholder category").select_option(label="Academia and research")
    form.get_by_label("Password", exact=True).fill(password)
    form.get_by_label("Repeat the password").fill(password)
    form.get_by_role("button", name="Create account").click()

    # Logged in at once, on the home page.
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator(".flash-success")).to_have_text(f"Welcome to Accord, {name}.")
    expect(page.locator(".site-header .who")).to_have_text(name)
    assert_clean(page_log(page))

    # The published second draft, from its card on the home page.
    card = page.locator(".code-list .code-card").filter(has_text=GPAI_TITLE)
    card.get_by_role("link", name=re.compile(r"^v2 — Second draft")).click()
    expect(page).to_have_url(re.compile(rf"{GPAI_V2}$"))
    expect(page.locator(".version-header h1")).to_have_text("v2: Second draft")
    expect(page.locator(".notice-warning")).to_have_count(0)
    expect(page.locator(".deadline .countdown")).not_to_be_empty()  # comments.js has run

    # Keyboard only: Tab from the top of the page to the contents entry, Enter to follow it.
    toc_link = "nav.toc a[href='#m-3-1']"
    tab_to(page, toc_link)
    assert page.evaluate("() => document.activeElement.matches(':focus-visible')"), "the focused link shows no focus"
    expect(page.locator(toc_link)).to_have_text("Measure 3.1: Drawing up a copyright policy")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"{GPAI_V2}#m-3-1$"))
    heading = page.locator("#document #m-3-1")
    expect(heading).to_have_text(re.compile(r"^Measure 3\.1: Drawing up a copyright policy"))
    expect(heading).to_be_in_viewport()
    assert heading.evaluate("element => element.matches(':target')"), "the clause heading is not the :target"
    # The heading is not focusable; the next Tab continues from the clause, not from the contents.
    page.keyboard.press("Tab")
    follows = heading.evaluate(
        """(h) => !!(h.compareDocumentPosition(document.activeElement) & Node.DOCUMENT_POSITION_FOLLOWING)
                  || h.contains(document.activeElement)"""
    )
    assert follows, f"after the jump, Tab went to {focused(page)}, before the clause"
    assert not is_focused(page, "nav.toc *"), f"after the jump, Tab stayed in the contents: {focused(page)}"
    assert_clean(page_log(page))

    # A comment on that clause through the form that needs no JavaScript.
    visit(page, f"{GPAI_V2}/comments/new?clause=m-3-1")
    expect(page.get_by_role("heading", level=1)).to_have_text("Comment on v2")
    form = page.locator("form#comment-form")
    expect(form.get_by_label("Clause")).to_have_value("m-3-1")
    body = f"Say where the copyright policy is published and how often it is reviewed. {word}"
    form.get_by_label(BODY_LABEL).fill(body)
    form.get_by_role("button", name="Send comment").click()

    comment_id = sent_comment_id(page)
    withdraw_afterwards.append((email, password, comment_id))
    number, received, sha = receipt_facts(page)
    assert number == comment_id
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Comment #{comment_id}")
    expect(page.locator(".breadcrumb")).to_contain_text("v2 · m-3-1")
    card = page.locator(f"#comment-{comment_id}")
    expect(card).to_contain_text(word)
    expect(card.locator(".meta")).to_contain_text("Academia and research · Digital Rights Lab")
    assert_clean(page_log(page))

    # "My comments" holds the same receipt.
    page.get_by_role("link", name="My comments").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My comments")
    rows = page.locator(".data-table tbody tr")
    expect(rows).to_have_count(1)  # a new account: only this one
    row = rows.first
    expect(row.get_by_role("link", name=f"#{comment_id}", exact=True)).to_be_visible()
    expect(row).to_contain_text(f"{GPAI_TITLE} v2 · m-3-1")
    expect(row.locator("time")).to_have_attribute("datetime", received)
    expect(row.locator("td.hash")).to_have_text(sha)
    expect(row).to_contain_text("Open")
    assert_clean(page_log(page))

    # And the margin of v2 shows it under its clause.
    visit(page, GPAI_V2)
    section = page.get_by_role("region", name="Comments on m-3-1")
    expect(section.locator(f"#comment-{comment_id}")).to_contain_text(word)
    assert_clean(page_log(page))


# --- 2. A chair runs a consultation cycle on the Swedish code, on a server of its own ---


@pytest.fixture(scope="module")
def own_server() -> Iterator[LiveServer]:
    """A second server prepared like the shared one, with its own database and search index."""
    with demo_server("accord-e2e-cycle-") as server:
        yield server


def utc_minutes(when: dt.datetime) -> str:
    """A time as a datetime-local input takes it."""
    return when.strftime("%Y-%m-%dT%H:%M")


class TestOnItsOwnServer:
    """Journeys that publish: every page of these tests is served by `own_server`."""

    @pytest.fixture
    def base_url(self, own_server: LiveServer) -> str:
        return own_server.url

    def test_a_chair_runs_a_consultation_cycle_and_the_comment_follows_into_the_next_version(
        self, logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
    ) -> None:
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        opens, closes = now - dt.timedelta(days=1), now + dt.timedelta(days=30)

        # Before the window, a stakeholder has nothing to comment with.
        stakeholder = logged_in_page("stakeholder")
        visit(stakeholder, f"{SWEDISH}/v2")
        expect(stakeholder.locator("#comment-composer")).to_have_count(0)
        expect(stakeholder.locator(".deadline")).to_have_count(0)

        # The chair opens the consultation.
        chair = logged_in_page("chair")
        visit(chair, SWEDISH)
        expect(chair.locator(".facts")).to_contain_text("No consultation window set")
        chair.get_by_role("link", name="Set the consultation window").click()
        expect(chair.get_by_role("heading", level=1)).to_have_text("Consultation window")
        chair.get_by_label("Opens (UTC)").fill(utc_minutes(opens))
        chair.get_by_label("Closes (UTC)").fill(utc_minutes(closes))
        chair.get_by_role("button", name="Save window").click()
        expect(chair).to_have_url(re.compile(rf"{SWEDISH}$"))
        expect(chair.locator(".flash-success")).to_have_text("The consultation window is saved.")
        window = chair.locator(".facts time")
        expect(window).to_have_count(2)
        expect(window.nth(0)).to_have_attribute("datetime", opens.isoformat())
        expect(window.nth(1)).to_have_attribute("datetime", closes.isoformat())
        assert_clean(page_log(chair))

        # The stakeholder quotes a passage of v2 and comments on it.
        visit(stakeholder, f"{SWEDISH}/v2")
        banner = stakeholder.locator(".version-header .deadline")
        expect(banner).to_contain_text("Open for comments until")
        expect(banner).to_have_attribute("data-closes", closes.isoformat())
        expect(banner.locator(".countdown")).not_to_be_empty()
        phrase = "Handläggaren ska ha tid, kunskap och befogenhet att avvika från systemets förslag."
        select_passage(stakeholder, stakeholder.locator("#document #atg-2-2 + p"), phrase)
        form = stakeholder.locator("form#comment-form")
        expect(stakeholder.locator("details#comment-composer")).to_have_attribute("open", "")
        expect(form.get_by_label("Clause")).to_have_value("atg-2-2")
        expect(form.get_by_label(QUOTE_LABEL)).to_have_value(phrase)
        word = token("cycle")
        form.get_by_label(BODY_LABEL).fill(f"Ange hur lång tid handläggaren minst ska ha. {word}")
        form.get_by_label("Type").select_option(label="Technical")
        form.get_by_role("button", name="Send comment").click()
        comment_id = sent_comment_id(stakeholder)
        number, _, _ = receipt_facts(stakeholder)
        assert number == comment_id
        expect(stakeholder.locator(f"#comment-{comment_id} blockquote.quote")).to_have_text(phrase)
        assert_clean(page_log(stakeholder))

        # The chair records a disposition on the thread.
        visit(chair, f"/comments/{comment_id}")
        tools = chair.get_by_role("region", name="Record a disposition")
        tools.get_by_label("Disposition").select_option(label="Partially accepted")
        response = f"Vi anger en minsta tid i nästa utkast. {token('response')}"
        tools.get_by_label("Response to the commenter").fill(response)
        tools.get_by_role("button", name="Save disposition").click()
        expect(chair.locator(".flash-success")).to_have_text("The disposition is recorded and the commenter notified.")
        disposition = chair.locator(f"#comment-{comment_id} .disposition")
        expect(disposition).to_contain_text("Disposition: Partially accepted")
        expect(disposition).to_contain_text(response)
        assert_clean(page_log(chair))

        # The chair cuts v3 from the working text, then publishes it.
        chair.locator(".breadcrumb a").click()  # "… v2 · atg-2-2" leads to the version; its breadcrumb to the code
        expect(chair).to_have_url(re.compile(rf"{SWEDISH}/v2#atg-2-2$"))
        chair.locator(".version-header .breadcrumb a").click()
        expect(chair).to_have_url(re.compile(rf"{SWEDISH}$"))
        cut = chair.get_by_role("region", name="Chair tools")
        cut.get_by_label("Label", exact=True).fill("Tredje utkast")
        cut.get_by_label("What changed").fill("Svar på synpunkterna från samrådet.")
        cut.get_by_role("button", name="Cut version").click()
        expect(chair).to_have_url(re.compile(rf"{SWEDISH}/v3$"))
        expect(chair.locator(".flash-success")).to_have_text(
            "Version v3 is cut. It is visible to the working group until you publish it."
        )
        expect(chair.locator(".version-header h1")).to_have_text("v3: Tredje utkast")
        expect(chair.locator(".notice-warning")).to_contain_text("Unpublished.")
        chair.once("dialog", lambda dialog: dialog.accept())  # "Publish v3? Published versions are public …"
        chair.get_by_role("button", name="Publish v3").click()
        expect(chair.locator(".flash-success")).to_have_text("v3 is published and added to the publication log.")
        expect(chair.locator(".notice-warning")).to_have_count(0)
        expect(chair.locator(".version-header .meta")).to_contain_text("Published")
        assert_clean(page_log(chair))

        # The comment on v2 is carried into v3: the passage is unchanged, so it still applies.
        carried = chair.get_by_role("region", name="Comments on earlier versions")
        entry = carried.locator(".carried").filter(has=chair.locator(f"#comment-{comment_id}"))
        expect(entry).to_have_count(1)
        expect(entry).to_have_class(re.compile(r"\bcarried-anchored\b"))
        expect(entry.locator(".meta").first).to_contain_text("Still applies to atg-2-2")
        expect(entry.get_by_role("link", name="diff from v2")).to_have_attribute(
            "href", f"{SWEDISH}/compare?from=2&to=3"
        )
        expect(entry.locator("blockquote.quote")).to_have_text(phrase)
        expect(entry.locator(".disposition")).to_contain_text("Disposition: Partially accepted")
        assert_clean(page_log(chair))

        # The stakeholder is told of v3 and finds the comment there too.
        stakeholder.get_by_role("link", name=re.compile(r"^Notifications")).click()
        item = stakeholder.locator(".notification-list li", has_text="v3 (Tredje utkast) is available")
        expect(item).to_have_count(1)
        item.get_by_role("link").click()
        expect(stakeholder).to_have_url(re.compile(rf"{SWEDISH}/v3$"))
        carried = stakeholder.get_by_role("region", name="Comments on earlier versions")
        entry = carried.locator(".carried").filter(has=stakeholder.locator(f"#comment-{comment_id}"))
        expect(entry.locator(".meta").first).to_contain_text("Still applies to atg-2-2")
        expect(entry).to_contain_text(word)
        entry.evaluate("element => element.scrollIntoView({block: 'center'})")
        expect(entry).to_be_in_viewport()
        screenshot(stakeholder, "reanchored-comment.png", full_page=False)
        assert_clean(page_log(stakeholder))


# --- 3. The public compares two versions and searches ---


def test_the_public_compares_two_versions_and_finds_a_phrase_in_its_clause(
    new_page: Callable[[], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = new_page()
    visit(page, "/codes/gpai-code")
    page.get_by_role("link", name="Compare versions").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Compare versions")
    page.get_by_label("From", exact=True).select_option(label="v1 — First draft")
    page.get_by_label("To", exact=True).select_option(label="v2 — Second draft")
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page).to_have_url(re.compile(r"/codes/gpai-code/compare\?from=1&to=2$"))

    # The summary: clauses added, removed, changed and moved, each linking to its place in the diff.
    summary = page.get_by_role("region", name="Summary: v1 → v2")
    for title, count in (("Clauses added", 5), ("Clauses removed", 1), ("Clauses changed", 44), ("Clauses moved", 2)):
        expect(summary.get_by_role("heading", name=f"{title} ({count})")).to_be_visible()
    removed = summary.get_by_role("link", name="Measure 2.2: Documentation for open-weight releases")
    expect(removed).to_have_attribute("href", "#d-m-2-2")
    removed.click()
    expect(page).to_have_url(re.compile(r"#d-m-2-2$"))
    gone = page.locator("#d-m-2-2")
    expect(gone).to_be_in_viewport()
    expect(gone).to_have_class(re.compile(r"\bdiff-removed\b"))
    expect(gone.locator(".diff-status")).to_have_text("Removed")

    # The word-level diff of a changed clause: only the changed words are marked.
    changed = page.locator("#d-m-1-2")
    expect(changed.locator(".diff-status")).to_contain_text("Changed")
    expect(changed.locator(".counts")).to_have_text("+106 / −66 words")
    expect(changed.locator("del", has_text=re.compile(r"^addition$"))).to_have_count(1)
    expect(changed.locator("ins", has_text=re.compile(r"^publication$"))).to_have_count(1)
    expect(changed.locator(".diff-text")).to_contain_text("Earlier versions of the documentation will be kept for")
    assert_clean(page_log(page))

    # Search from the header for a sentence that only the second draft has.
    phrase = "Previous versions of the policy will remain available"
    search = page.locator(".site-header").get_by_role("searchbox", name="Search")
    search.fill(f'"{phrase}"')
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?q="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Search")
    group = page.locator(".result-group", has=page.get_by_role("heading", name=f"{GPAI_TITLE} · v2"))
    hit = group.locator("li.hit-version")
    reload_until_found(page, hit)
    expect(page.locator("#search-q")).to_have_value(f'"{phrase}"')
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^\d+ results?$"))
    expect(hit).to_have_count(1)
    link = hit.get_by_role("link", name="Measure 2.2: Communicating changes to the policy")
    expect(link).to_have_attribute("href", f"{GPAI_V2}#m-2-4")
    expect(hit.locator(".snippet mark").first).to_be_visible()
    # Neither the unpublished v3 nor any working text is offered to the public.
    expect(page.locator(".result-group h2", has_text="· v3")).to_have_count(0)
    expect(page.locator(".hit-working")).to_have_count(0)
    screenshot(page, "search.png")
    assert_clean(page_log(page))

    link.click()
    expect(page).to_have_url(re.compile(rf"{GPAI_V2}#m-2-4$"))
    heading = page.locator("#document #m-2-4")
    expect(heading).to_be_in_viewport()
    assert heading.evaluate("element => element.matches(':target')"), "the clause heading is not the :target"
    expect(page.locator("#document")).to_contain_text(phrase)
    assert_clean(page_log(page))
