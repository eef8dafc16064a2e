"""axe-core (from npm) in headless Chromium on every page, logged out and as each role: WCAG 2.1 A and AA.

axe is injected into the page under test, so the browser context bypasses the Content-Security-Policy for
that one script (the page's own scripts still run under it; other tests check the policy itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.e2e.conftest import DEMO_DOMAIN, VIEWPORT
from tests.support.live import DEMO_PASSWORD

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

PUBLIC_PAGES = [
    "/",
    "/codes/gpai-code",
    "/codes/gpai-code/v2",
    "/codes/gpai-code/compare?from=1&to=2",
    "/codes/uppforandekod-ai/v2",
    "/search?q=copyright",
    "/search?q=zzzznothing",
    "/publication-log",
    "/accessibility",
    "/login",
    "/register",
    "/forums",
    "/forums/european-ai-alliance",
    "/rounds/1",
    "/rounds/2",
    "/codes/gpai-code/v2/comments",
    "/no-such-page",
]
# Pages for one role each, on top of the public ones (which every role also gets).
ROLE_PAGES = {
    "stakeholder": ["/me/comments", "/me/notifications", "/account/password", "/rounds/2/positions",
                    "/codes/gpai-code/v2/comments/new"],
    "member": ["/codes/gpai-code/v3", "/groups", "/forums/wg-gpai-plenary"],
    "observer": ["/codes/gpai-code/working"],
    "editor": ["/codes/gpai-code/working"],
    "chair": ["/codes/gpai-code/consultation", "/codes/new", "/codes/gpai-code/v2/rounds/new", "/forums/new",
              "/rounds/2", "/groups/wg-gpai"],
    "admin": ["/admin/audit", "/groups"],
}  # fmt: skip
CASES = [("anonymous", path) for path in PUBLIC_PAGES] + [
    (role, path) for role, paths in ROLE_PAGES.items() for path in [*paths, "/", "/codes/gpai-code/v2"]
]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: run `make` (npm ci installs axe-core)")
    return AXE.read_text()


@pytest.fixture(scope="module")
def contexts(browser: Any, base_url: str) -> Iterator[dict[str, Any]]:
    """One logged-in browser context per role, reused across that role's pages."""
    opened: dict[str, Any] = {}

    def context_for(role: str) -> Any:
        if role not in opened:
            context = browser.new_context(viewport=VIEWPORT, base_url=base_url, locale="en-GB", bypass_csp=True)
            context.set_default_timeout(10_000)
            if role != "anonymous":
                page = context.new_page()
                page.goto("/login")
                page.get_by_label("Email").fill(f"{role}@{DEMO_DOMAIN}")
                page.get_by_label("Password").fill(DEMO_PASSWORD)
                page.locator("main form").get_by_role("button", name="Log in").click()
                page.wait_for_url(lambda url: "/login" not in url)
                page.close()
            opened[role] = context
        return opened[role]

    yield context_for  # type: ignore[misc]
    for context in opened.values():
        context.close()


def axe_violations(page: Any, axe_source: str) -> list[str]:
    page.add_script_tag(content=axe_source)
    result = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}));
        }""",
        WCAG_21_AA,
    )
    return [f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(v['targets'])}" for v in result]


@pytest.mark.parametrize(("role", "path"), CASES, ids=[f"{role}:{path}" for role, path in CASES])
def test_every_page_has_no_wcag_21_aa_violations(contexts: Any, axe_source: str, role: str, path: str):
    page = contexts(role).new_page()
    try:
        response = page.goto(path)
        assert response is not None
        assert response.status in (200, 404), f"{path} answered {response.status} to {role}"
        if "/working" in path:
            # Let the editor connect and render before it is checked.
            page.wait_for_selector(".collab-status", timeout=10_000)
        assert axe_violations(page, axe_source) == []
    finally:
        page.close()


def test_the_error_states_of_forms_have_no_violations(contexts: Any, axe_source: str):
    page = contexts("stakeholder").new_page()
    try:
        page.goto("/rounds/2/positions")
        page.locator("fieldset.position").nth(0).get_by_role("radio", name="Oppose").check()
        page.get_by_role("button", name="Record my positions").click()
        page.wait_for_selector(".field-error")
        assert axe_violations(page, axe_source) == []
        page.goto("/account/password")
        page.locator("main form button[type=submit]").click()
        assert re.search(r"/account/password", page.url)
        assert axe_violations(page, axe_source) == []
    finally:
        page.close()


def test_the_filled_comment_margin_the_receipt_and_the_comment_forms_error_have_no_violations(
    contexts: Any, axe_source: str
):
    page = contexts("stakeholder").new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Withdraw this comment?"
    try:
        page.goto("/codes/gpai-code/v2/comments/new")
        page.get_by_role("button", name="Send comment").click()
        page.wait_for_selector(".field-error")
        assert axe_violations(page, axe_source) == []  # the form's error state
        page.get_by_label("Your comment (Markdown)").fill("An accessibility check of the margin, withdrawn again.")
        page.get_by_role("button", name="Send comment").click()
        page.wait_for_url(re.compile(r"/comments/\d+\?receipt=1$"))
        assert axe_violations(page, axe_source) == []  # the receipt
        thread = page.url.split("?")[0]
        page.goto("/codes/gpai-code/v2")
        expect(page.locator(".comment-margin")).to_contain_text("An accessibility check of the margin")
        assert axe_violations(page, axe_source) == []  # the filled margin
    finally:
        # Later tests on the shared server (and their screenshots) should not see this comment.
        page.goto(thread)
        page.get_by_role("button", name="Withdraw comment").click()
        expect(page.locator(".flash-success")).to_be_visible()
        page.close()


def test_the_editor_offline_has_no_violations(contexts: Any, axe_source: str):
    context = contexts("editor")
    page = context.new_page()
    status = page.locator("#collab-status")
    try:
        page.goto("/codes/gpai-code/working")
        expect(status).to_have_attribute("data-state", "saved", timeout=15_000)
        context.set_offline(True)
        expect(status).to_have_attribute("data-state", "offline", timeout=15_000)
        assert axe_violations(page, axe_source) == []
    finally:
        context.set_offline(False)
        page.close()


def test_the_session_warning_is_announced_extends_by_keyboard_and_says_when_the_session_ended(
    contexts: Any, axe_source: str
):
    """The page's clock is fast-forwarded; what the server says of the session (/session/status) is given by
    the test, since the server's own clock cannot be: its answer is what the page must believe."""
    page = contexts("stakeholder").new_page()
    dialog = page.locator("#session-timeout")
    server_says: dict[str, Any] = {"status": 200, "left": {"idle": 7000, "absolute": 40_000}}
    asked: list[str] = []

    def status(route: Any) -> None:
        asked.append(route.request.method)
        route.fulfill(status=server_says["status"], json=server_says["left"])

    try:
        page.clock.install()
        page.route("**/session/status", status)
        page.goto("/codes/gpai-code/v2")
        idle_minutes = int(dialog.get_attribute("data-idle-left")) // 60  # the demo server's limit: 120
        expect(dialog).to_be_hidden()
        page.locator("#header-q").focus()

        # Another tab kept the session alive: the page asks before warning, and stays quiet.
        answered = int(dialog.get_attribute("data-answers") or 0)
        page.clock.fast_forward((idle_minutes - 4) * 60_000)
        # Taken in, not only asked: an answer read after the next jump would set the deadline from there.
        expect(dialog).to_have_attribute("data-answers", str(answered + 1))
        assert asked, "the page never asked the server how long the session has left"
        expect(dialog).to_be_hidden()

        # Four minutes really left: the warning, announced, with the focus on "Stay logged in".
        server_says["left"] = {"idle": 240, "absolute": 40_000}
        page.clock.fast_forward((7000 - 250) * 1000)  # near the end the server gave
        expect(dialog).to_be_visible()
        expect(page.get_by_role("dialog", name="Your session is ending")).to_be_visible()
        expect(page.locator("#session-timeout-text")).to_have_text(re.compile(r"logged out in [45] minutes\."))
        expect(page.get_by_role("button", name="Stay logged in")).to_be_focused()
        expect(page.get_by_role("link", name="Log in again")).to_be_hidden()
        assert axe_violations(page, axe_source) == []
        with page.expect_response("**/session/extend") as extended:
            page.keyboard.press("Enter")
        assert extended.value.status == 200
        expect(dialog).to_be_hidden()
        expect(page.locator("#header-q")).to_be_focused()  # back where the person was

        page.clock.fast_forward((idle_minutes - 3) * 60_000)
        expect(dialog).to_be_visible()
        with page.expect_response("**/session/extend"):
            page.keyboard.press("Escape")  # as on GOV.UK's warning: closing it means "stay"
        expect(dialog).to_be_hidden()

        # The session did end (the server says so): the dialog says it, offers to log in, and can be closed.
        server_says.update(status=401, left={"error": "Your session has ended."})
        page.clock.fast_forward((idle_minutes + 1) * 60_000)
        expect(page.locator("#session-timeout-text")).to_have_text(re.compile(r"^You have been logged out\."))
        expect(page.get_by_role("link", name="Log in again")).to_be_visible()
        expect(page.get_by_role("button", name="Stay logged in")).to_be_hidden()
        assert axe_violations(page, axe_source) == []
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()  # nothing on the page stays out of reach, say text to copy
    finally:
        page.close()


def test_a_new_rounds_empty_dashboard_and_a_filled_position_form_have_no_violations(contexts: Any, axe_source: str):
    chair = contexts("chair").new_page()
    member = contexts("member").new_page()
    try:
        # Empty: a round that has not opened yet, with no positions (on the Swedish code, apart from the rest).
        chair.goto("/codes/uppforandekod-ai/v2/rounds/new")
        chair.get_by_role("textbox", name="Title").fill("Accessibility check: a round with no positions yet")
        chair.get_by_label("Opens (UTC)").fill("2031-01-01T09:00")
        chair.get_by_label("Closes (UTC)").fill("2031-01-31T17:00")
        chair.get_by_role("button", name=re.compile("Save|Create|Open")).click()
        chair.wait_for_url(re.compile(r"/rounds/\d+$"))
        assert axe_violations(chair, axe_source) == []

        # Filled: positions recorded, the form shows them again.
        member.goto("/rounds/2/positions")
        support = member.locator("fieldset.position").nth(0).get_by_role("radio", name="Support", exact=True)
        support.check()
        member.get_by_role("button", name="Record my positions").click()
        expect(member.locator(".flash-success")).to_be_visible()
        expect(support).to_be_checked()
        assert axe_violations(member, axe_source) == []
    finally:
        chair.close()
        member.close()
