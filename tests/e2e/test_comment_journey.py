"""Commenting on a published version in a real browser: quote a passage, send, keep the receipt, get an answer.

The live server is shared by the whole e2e session, so every comment carries a word no one else writes
(`token`) and the tests look only for their own comments. Nothing here publishes or cuts a version.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PageLog, screenshot, visit
from tests.support.live import DEMO_PASSWORD

pytestmark = pytest.mark.browser

VERSION = "/codes/gpai-code/v2"
RECEIPT_URL = re.compile(r"/comments/(\d+)\?receipt=1$")
BODY_LABEL = "Your comment (Markdown)"
QUOTE_LABEL = "Quoted passage (optional: select text in the document to fill it)"
PROPOSAL_LABEL = "Proposed replacement for the quoted passage (optional)"
# The second sentence of Measure 1.1's first paragraph: plain text, no inline markup.
PHRASE = "The form sets a minimum."
PROPOSAL = "The form sets the legal minimum."
MAX_TABS = 200
# Every comment these tests send, withdrawn again at the end of the module (see `withdraw_our_comments`).
SENT: list[int] = []


def token(name: str) -> str:
    """A word no one else writes, so a test can find exactly its own comment on the shared server."""
    return f"{name.upper()}{uuid.uuid4().hex[:8].upper()}"


def log_in_here(page: Any, name: str) -> None:
    """Log in through the login form in this page's own browser context."""
    page.goto("/login")
    page.get_by_label("Email").fill(f"{name}@accord.example")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.locator("main form").get_by_role("button", name="Log in").click()
    expect(page.locator(".site-header .who")).to_have_count(1)


@pytest.fixture(scope="module", autouse=True)
def withdraw_our_comments(browser: Any, base_url: str) -> Iterator[None]:
    """Withdraw this module's comments when it is done: later tests on the shared server (and their
    screenshots of v2, such as docs/screenshots/version.png) should not show them in the margin."""
    yield
    if not SENT:
        return
    context = browser.new_context(base_url=base_url)
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # "Withdraw this comment?"
        log_in_here(page, "stakeholder")
        for comment_id in SENT:
            page.goto(f"/comments/{comment_id}")
            page.get_by_role("button", name="Withdraw comment").click()
            expect(page.locator(".flash-success")).to_have_text("Your comment is withdrawn.")
    finally:
        context.close()
        SENT.clear()


def assert_clean(log: PageLog) -> None:
    assert log.problems() == [], "the browser reported problems:\n" + "\n".join(log.problems())


def open_version(page: Any) -> None:
    """Open v2 and wait for comments.js: it fills the deadline countdown when it runs."""
    visit(page, VERSION)
    expect(page.locator(".deadline .countdown")).not_to_be_empty()


def drag_select(page: Any, paragraph: Any, phrase: str) -> None:
    """Select `phrase` inside `paragraph` with a mouse drag from its first to its last character."""
    paragraph.scroll_into_view_if_needed()
    box = paragraph.evaluate(
        """(element, phrase) => {
          const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
          const nodes = [];
          for (let node = walker.nextNode(); node; node = walker.nextNode()) nodes.push(node);
          const text = nodes.map((node) => node.data).join("");
          const at = text.indexOf(phrase);
          if (at < 0) return null;
          const range = document.createRange();
          let offset = 0;
          for (const node of nodes) {
            const end = offset + node.data.length;
            if (at >= offset && at < end) range.setStart(node, at - offset);
            const stop = at + phrase.length;
            if (stop > offset && stop <= end) range.setEnd(node, stop - offset);
            offset = end;
          }
          const rects = [...range.getClientRects()].filter((r) => r.width > 0);
          const first = rects[0], last = rects[rects.length - 1];
          const middle = (rect) => rect.top + rect.height / 2;
          return {x1: first.left + 1, y1: middle(first), x2: last.right - 1, y2: middle(last)};
        }""",
        phrase,
    )
    assert box is not None, f"{phrase!r} is not in the paragraph"
    page.mouse.move(box["x1"], box["y1"])
    page.mouse.down()
    page.mouse.move(box["x2"], box["y2"], steps=8)
    page.mouse.up()
    assert page.evaluate("() => window.getSelection().toString()").strip() == phrase


def receipt_facts(page: Any) -> tuple[int, str, str]:
    """Read the receipt on a thread page: comment number, UTC time, SHA-256."""
    receipt = page.get_by_role("status", name="Receipt")
    expect(receipt).to_be_visible()
    number = receipt.locator("dt:text-is('Comment number') + dd").inner_text().strip()
    received = receipt.locator("dt:text-is('Received (UTC)') + dd").inner_text().strip()
    sha = receipt.locator("dt:text-is('SHA-256 of what was stored') + dd").inner_text().strip()
    assert re.fullmatch(r"#\d+", number), f"comment number {number!r}"
    assert re.fullmatch(r"[0-9a-f]{64}", sha), f"receipt hash {sha!r} is not 64 hex characters"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", received), f"receipt time {received!r} is not UTC"
    when = dt.datetime.fromisoformat(received)
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 120, f"receipt time {received} is not now"
    expect(receipt.locator("time")).to_have_attribute("datetime", received)
    return int(number[1:]), received, sha


def sent_comment_id(page: Any) -> int:
    expect(page).to_have_url(RECEIPT_URL)
    match = RECEIPT_URL.search(page.url)
    assert match is not None
    SENT.append(int(match.group(1)))
    return int(match.group(1))


def send_comment(page: Any, clause: str, body: str) -> int:
    """Write a plain comment on `clause` through the composer and return its number."""
    open_version(page)
    page.locator("#comment-composer > summary").click()
    form = page.locator("form#comment-form")
    form.get_by_label("Clause").select_option(clause)
    form.get_by_label(BODY_LABEL).fill(body)
    form.get_by_role("button", name="Send comment").click()
    return sent_comment_id(page)


def my_comment_rows(page: Any) -> Any:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My comments").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My comments")
    return page.locator(".data-table tbody tr")


def unread(page: Any) -> int:
    link = page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(r"^Notifications"))
    match = re.search(r"\((\d+) unread\)", link.inner_text())
    return int(match.group(1)) if match else 0


def focused(page: Any) -> str:
    """Describe the focused element: tag, id and the start of its text."""
    return page.evaluate(
        """() => {
          const e = document.activeElement;
          return `${e.tagName.toLowerCase()}#${e.id} ${(e.textContent || "").trim().slice(0, 30)}`;
        }"""
    )


def is_focused(page: Any, selector: str) -> bool:
    return page.evaluate("(selector) => document.activeElement.matches(selector)", selector)


def test_stakeholder_quotes_a_passage_sends_a_comment_and_finds_it_in_the_margin(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = logged_in_page("stakeholder")
    open_version(page)
    composer = page.locator("details#comment-composer")
    form = page.locator("form#comment-form")
    expect(composer).not_to_have_attribute("open", "")

    drag_select(page, page.locator("#document #m-1-1 + p"), PHRASE)
    expect(composer).to_have_attribute("open", "")
    expect(form.get_by_label("Clause")).to_have_value("m-1-1")
    expect(form.get_by_label(QUOTE_LABEL)).to_have_value(PHRASE)
    expect(page.locator("#draft-status")).to_have_text(f"“{PHRASE}” (m-1-1)")

    word = token("margin")
    form.get_by_label(BODY_LABEL).fill(f"Say who checks the form, and when. {word}")
    form.get_by_label(PROPOSAL_LABEL).fill(PROPOSAL)
    form.get_by_label("Type").select_option(label="Technical")
    form.get_by_role("button", name="Send comment").click()

    # The thread page with its receipt.
    comment_id = sent_comment_id(page)
    number, received, sha = receipt_facts(page)
    assert number == comment_id
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Comment #{comment_id}")
    card = page.locator(f"#comment-{comment_id}")
    expect(card).to_contain_text(word)
    expect(card.locator(".meta")).to_contain_text("Technical")
    expect(card.locator("blockquote.quote")).to_have_text(PHRASE)
    screenshot(page, "comment-receipt.png")
    assert_clean(page_log(page))

    # "My comments" lists the same number and hash.
    rows = my_comment_rows(page)
    row = rows.filter(has=page.get_by_role("link", name=f"#{comment_id}", exact=True))
    expect(row).to_have_count(1)
    expect(row.locator("td.hash")).to_have_text(sha)
    expect(row.locator("time")).to_have_attribute("datetime", received)
    expect(row).to_contain_text("v2 · m-1-1")
    expect(row).to_contain_text("Open")
    assert_clean(page_log(page))

    # Back on the version: the comment sits in the margin under its clause, its proposal as a word diff.
    open_version(page)
    section = page.get_by_role("region", name="Comments on m-1-1")
    expect(section.locator(".margin-clause-title a")).to_have_attribute("href", "#m-1-1")
    expect(section.locator(".margin-clause-title")).to_have_text("Measure 1.1: Filling in the model documentation form")
    card = section.locator(f"#comment-{comment_id}")
    expect(card).to_contain_text(word)
    expect(card.locator("blockquote.quote")).to_have_text(PHRASE)
    proposal = card.locator(".proposal .diff-text")
    expect(proposal).to_have_text("The form sets athe legal minimum.")
    expect(proposal.locator("del")).to_have_text(["a"])
    expect(proposal.locator("ins")).to_have_text(["the legal"])
    # The draft was cleared by the receipt: the composer is closed and empty again.
    expect(page.locator("details#comment-composer")).not_to_have_attribute("open", "")
    expect(page.locator("form#comment-form").get_by_label(BODY_LABEL)).to_have_value("")
    card.evaluate("element => element.scrollIntoView({block: 'center'})")
    expect(card).to_be_in_viewport()
    screenshot(page, "comment-margin.png", full_page=False)
    assert_clean(page_log(page))


def test_selecting_a_passage_shows_the_composer_where_the_reader_is(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    """The composer opens in the margin; a reader who selected text far down the page must see it open."""
    page = logged_in_page("stakeholder")
    open_version(page)
    paragraph = page.locator("#document #m-1-1 + p")
    drag_select(page, paragraph, PHRASE)
    composer = page.locator("details#comment-composer")
    expect(composer).to_have_attribute("open", "")
    expect(paragraph).to_be_in_viewport()
    message = "the composer opened out of sight, far from the passage the reader selected"
    expect(composer, message).to_be_in_viewport(timeout=1_000)
    assert_clean(page_log(page))


def test_a_passage_with_bold_text_can_be_quoted(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    """The quote is the text as shown (no ** markers); the server must still find it in the clause."""
    page = logged_in_page("stakeholder")
    open_version(page)
    passage = "Open question 1. Should the Code name specific technical safeguards"
    drag_select(page, page.locator("#document p", has_text="Open question 1."), passage)
    form = page.locator("form#comment-form")
    expect(form.get_by_label("Clause")).to_have_value("m-3-3")
    expect(form.get_by_label(QUOTE_LABEL)).to_have_value(passage)
    form.get_by_label(BODY_LABEL).fill(f"Name them in an annex. {token('bold')}")
    form.get_by_role("button", name="Send comment").click()
    page.wait_for_url(lambda url: not url.endswith(VERSION))
    page.wait_for_load_state()
    error = page.locator(".flash-error, .field-error")
    assert RECEIPT_URL.search(page.url), f"a quote selected from the text was refused ({page.url}): " + (
        error.first.inner_text() if error.count() else page.locator("main").inner_text()[:300]
    )
    sent_comment_id(page)
    receipt_facts(page)
    assert_clean(page_log(page))


def test_keyboard_only_comment(logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]) -> None:
    page = logged_in_page("stakeholder")
    open_version(page)
    composer = page.locator("details#comment-composer")

    # Tab from the top of the page to the "Write a comment" summary.
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if is_focused(page, "#comment-composer > summary"):
            break
    else:
        pytest.fail(f"{MAX_TABS} Tab presses never reached “Write a comment”; focus is on {focused(page)}")
    expect(composer).not_to_have_attribute("open", "")
    page.keyboard.press("Enter")
    expect(composer).to_have_attribute("open", "")

    # The clause, by typing its name into the focused select.
    page.keyboard.press("Tab")
    assert is_focused(page, "#clause_key"), f"after the summary, focus is on {focused(page)}"
    page.keyboard.type("Measure 1.2")
    expect(page.locator("#clause_key")).to_have_value("m-1-2")

    page.keyboard.press("Tab")
    assert is_focused(page, "#quote"), f"after the clause, focus is on {focused(page)}"
    page.keyboard.press("Tab")
    assert is_focused(page, "#body"), f"after the quote, focus is on {focused(page)}"
    word = token("keyboard")
    text = f"Say how often the documentation is reviewed. {word}"
    page.keyboard.type(text)

    # On to the button: every stop is inside the form, and Tab never types into a text area.
    for _ in range(6):
        page.keyboard.press("Tab")
        assert is_focused(page, "#comment-form *"), f"Tab left the form early, to {focused(page)}"
        if is_focused(page, "#comment-form button[type=submit]"):
            break
    else:
        pytest.fail(f"Tab never reached “Send comment”; focus is on {focused(page)}")
    expect(page.locator("#body")).to_have_value(text)

    # No keyboard trap: Tab leaves the form, Shift+Tab comes back.
    page.keyboard.press("Tab")
    assert not is_focused(page, "#comment-form, #comment-form *"), "Tab did not leave the comment form"
    page.keyboard.press("Shift+Tab")
    assert is_focused(page, "#comment-form button[type=submit]"), f"Shift+Tab went to {focused(page)}"

    page.keyboard.press("Enter")
    comment_id = sent_comment_id(page)
    number, _, _ = receipt_facts(page)
    assert number == comment_id
    expect(page.locator(".breadcrumb")).to_contain_text("v2 · m-1-2")
    expect(page.locator(f"#comment-{comment_id}")).to_contain_text(word)
    assert_clean(page_log(page))


def test_draft_survives_a_reload_and_a_double_click_sends_it_once(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = logged_in_page("stakeholder")
    before = my_comment_rows(page).count()

    open_version(page)
    page.locator("#comment-composer > summary").click()
    form = page.locator("form#comment-form")
    form.get_by_label("Clause").select_option("m-2-1")
    word = token("draft")
    text = f"The acceptable use policy should be public. {word}"
    form.get_by_label(BODY_LABEL).press_sequentially(text)
    form.get_by_label("Type").select_option(label="Editorial")

    page.reload()
    expect(page.locator(".deadline .countdown")).not_to_be_empty()
    expect(page.locator("details#comment-composer")).to_have_attribute("open", "")
    expect(form.get_by_label(BODY_LABEL)).to_have_value(text)
    expect(form.get_by_label("Clause")).to_have_value("m-2-1")
    expect(form.get_by_label("Type")).to_have_value("editorial")

    form.get_by_role("button", name="Send comment").click(click_count=2, delay=30)
    comment_id = sent_comment_id(page)
    receipt_facts(page)
    assert_clean(page_log(page))

    rows = my_comment_rows(page)
    expect(rows).to_have_count(before + 1)
    expect(rows.first.get_by_role("link", name=f"#{comment_id}", exact=True)).to_be_visible()
    open_version(page)
    expect(page.locator(".comment-margin .comment", has_text=word)).to_have_count(1)
    # The receipt cleared the draft: nothing comes back on the next visit.
    expect(page.locator("details#comment-composer")).not_to_have_attribute("open", "")
    expect(form.get_by_label(BODY_LABEL)).to_have_value("")
    assert_clean(page_log(page))


def test_draft_is_not_offered_to_the_next_account_in_the_same_browser(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    """On a shared computer, what one person typed must not appear in the next person's composer."""
    page = logged_in_page("stakeholder")
    open_version(page)
    page.locator("#comment-composer > summary").click()
    private = f"Not for anyone else's eyes. {token('private')}"
    page.locator("form#comment-form").get_by_label(BODY_LABEL).fill(private)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".site-header .who")).to_have_count(0)

    log_in_here(page, "member")
    expect(page.locator(".site-header .who")).to_have_text("Mats Member")
    open_version(page)
    body = page.locator("form#comment-form").get_by_label(BODY_LABEL)
    assert body.input_value() == "", f"the next account's composer holds the previous account's draft: {private!r}"
    assert_clean(page_log(page))


def test_chair_accepts_a_comment_and_the_stakeholder_is_notified(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    stakeholder = logged_in_page("stakeholder")
    word = token("disposition")
    comment_id = send_comment(stakeholder, "m-3-1", f"Publish the copyright policy in full. {word}")
    unread_before = unread(stakeholder)

    chair = logged_in_page("chair")
    visit(chair, f"/comments/{comment_id}")
    expect(chair.get_by_role("status", name="Receipt")).to_have_count(0)  # the receipt is the author's
    tools = chair.get_by_role("region", name="Record a disposition")
    tools.get_by_label("Disposition").select_option(label="Accepted")
    response = f"Agreed; the third draft asks for a public summary. {token('response')}"
    tools.get_by_label("Response to the commenter").fill(response)
    tools.get_by_role("button", name="Save disposition").click()
    expect(chair.locator(".flash-success")).to_have_text("The disposition is recorded and the commenter notified.")
    expect(chair.locator(f"#comment-{comment_id} .disposition")).to_contain_text("Disposition: Accepted")
    assert_clean(page_log(chair))

    again = logged_in_page("stakeholder")  # a new browser context
    link = again.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(r"^Notifications"))
    expect(link).to_contain_text(f"({unread_before + 1} unread)")
    link.click()
    item = again.locator(".notification-list li", has_text=f"#{comment_id} ")
    expect(item).to_have_count(1)
    expect(item).to_have_class(re.compile(r"\bunread\b"))
    expect(item).to_contain_text("Accepted")
    expect(item).to_contain_text("new")
    item.get_by_role("link").click()
    expect(again).to_have_url(re.compile(rf"/comments/{comment_id}$"))
    disposition = again.locator(f"#comment-{comment_id} .disposition")
    expect(disposition).to_contain_text("Disposition: Accepted")
    expect(disposition).to_contain_text(response)
    assert_clean(page_log(again))


def test_deadline_banner_counts_down_in_days(new_page: Callable[[], Any], page_log: Callable[[Any], PageLog]) -> None:
    page = new_page()
    open_version(page)
    banner = page.locator(".version-header .deadline")
    expect(banner).to_contain_text(re.compile(r"^\s*Open for comments until \d{1,2} \w{3} \d{4}, \d\d:\d\d"))
    closes = dt.datetime.fromisoformat(banner.get_attribute("data-closes") or "")
    assert closes == dt.datetime(2027, 1, 31, 17, 0, tzinfo=dt.UTC)
    expect(banner).to_contain_text("31 Jan 2027")
    days = round((closes - dt.datetime.now(dt.UTC)).total_seconds() / 86400)
    countdown = banner.locator(".countdown")
    expect(countdown).to_have_attribute("role", "timer")
    expect(countdown).to_have_text(re.compile(rf"^\s*\(in ({days - 1}|{days}|{days + 1}) days\)$"))
    assert_clean(page_log(page))


def test_comment_pages_have_no_console_errors_or_csp_violations(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    stakeholder = logged_in_page("stakeholder")
    open_version(stakeholder)
    drag_select(stakeholder, stakeholder.locator("#document #m-1-1 + p"), PHRASE)
    expect(stakeholder.locator("details#comment-composer")).to_have_attribute("open", "")
    comment_id = send_comment(stakeholder, "m-1-3", f"Clean pages. {token('clean')}")
    for path in ("/me/comments", "/me/notifications", f"{VERSION}/comments"):
        visit(stakeholder, path)
    assert_clean(page_log(stakeholder))

    chair = logged_in_page("chair")
    for path in (f"/comments/{comment_id}", f"{VERSION}/comments"):
        visit(chair, path)
    open_version(chair)
    assert_clean(page_log(chair))


def test_a_busy_server_and_a_lost_connection_are_explained_and_the_comment_is_sent_once(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    """Near a deadline the server may answer 503 (too many at once) or the connection may drop: the page
    says so in the reader's words, retries with the same idempotency key, and one comment is stored."""
    page = logged_in_page("stakeholder")
    open_version(page)
    attempts: list[str] = []

    def flaky(route: Any) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        attempts.append(route.request.post_data or "")
        if len(attempts) == 1:
            route.abort("internetdisconnected")
        elif len(attempts) == 2:
            route.fulfill(status=503, headers={"Retry-After": "1"}, body="busy")
        else:
            route.continue_()

    page.route(f"**{VERSION}/comments", flaky)
    form = page.locator("form#comment-form")
    page.locator("details#comment-composer summary").click()
    word = token("retry")
    form.get_by_label(BODY_LABEL).fill(f"Sent through a bad connection. {word}")
    status = page.locator("#draft-status")
    form.get_by_role("button", name="Send comment").click()

    expect(status).to_have_text(re.compile(r"^No connection to the server; your comment is sent as soon as"))
    expect(status).to_have_text(re.compile(r"^Many comments are arriving; yours is sent again in 1 s\."))
    comment_id = sent_comment_id(page)
    assert len(attempts) == 3
    keys = {re.search(r'name="idempotency_key"\r\n\r\n([^\r]+)', body).group(1) for body in attempts}
    assert len(keys) == 1, "the retries must carry the first attempt's idempotency key"
    expect(page.locator(f"#comment-{comment_id}")).to_contain_text(word)
    listed = page.request.get("/api/v1/codes/gpai-code/versions/2/comments").json()
    assert sum(word in str(item) for item in listed["comments"]) == 1
    assert [e for e in page_log(page).problems() if "ERR_INTERNET_DISCONNECTED" not in e and "503" not in e] == []
