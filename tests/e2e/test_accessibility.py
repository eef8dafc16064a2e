"""axe-core (from npm) in headless Chromium on every page, logged out and as each role: WCAG 2.1 A and AA.

axe is injected into the page under test, so the browser context bypasses the Content-Security-Policy for
that one script (the page's own scripts still run under it; other tests check the policy itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

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
