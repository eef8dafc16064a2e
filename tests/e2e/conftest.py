"""Browser fixtures: one real Accord server for the session, headless Chromium, logged-in pages.

The server is the one `make run` starts (gunicorn with deploy/gunicorn.conf.py, gevent) on a temporary SQLite
database prepared as `make run` does (migrations, the demo codes from drafts/, the demo accounts). Every
page gets a fresh browser context (its own cookies) and a log of what went wrong in it: console errors,
uncaught exceptions and Content-Security-Policy violations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import IN_CI, ROOT
from tests.support.live import DEMO_PASSWORD, LiveServer, demo_server

CHROMIUM = Path("/usr/bin/chromium")
EDITOR_BUNDLE = ROOT / "static" / "dist" / "editor.js"
EDITOR_SOURCE = ROOT / "static" / "src" / "editor.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOTS = ROOT / "docs" / "screenshots"
DEMO_DOMAIN = "accord.example"

# Reports every CSP violation to the test (the app sets no report-uri, so the page itself must tell us).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__accordReportCsp?.(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"} `
    + `at ${event.sourceFile || location.href}:${event.lineNumber}`);
});
"""


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; under CI=true the browser tests must run.")
    pytest.skip(reason)


@dataclass
class PageLog:
    """What went wrong in one page, collected while the test drives it."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    missing_favicon: int = 0

    def problems(self) -> list[str]:
        return [
            *(f"console: {e}" for e in self.console_errors),
            *(f"uncaught: {e}" for e in self.page_errors),
            *(f"CSP: {e}" for e in self.csp_violations),
        ]

    def clear(self) -> None:
        self.console_errors.clear()
        self.page_errors.clear()
        self.csp_violations.clear()


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    if not EDITOR_BUNDLE.exists():
        _skip_or_fail(f"{EDITOR_BUNDLE.relative_to(ROOT)} is missing: run `make assets`")
    if EDITOR_SOURCE.stat().st_mtime > EDITOR_BUNDLE.stat().st_mtime:
        _skip_or_fail(f"{EDITOR_BUNDLE.relative_to(ROOT)} is older than its source: run `make assets`")
    with demo_server("accord-e2e-", gunicorn=True) as server:
        yield server


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _skip_or_fail(f"{CHROMIUM} is missing (`make browser`, or apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_logs() -> dict[Any, PageLog]:
    """The log of every page this test opened, keyed by page."""
    return {}


@pytest.fixture
def new_page(browser: Any, base_url: str, page_logs: dict[Any, PageLog]) -> Iterator[Callable[[], Any]]:
    """Open an anonymous page in a fresh browser context (its own cookies, 1280×900)."""
    contexts: list[Any] = []

    def open_page() -> Any:
        context = browser.new_context(viewport=VIEWPORT, base_url=base_url, locale="en-GB")
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        log = PageLog()
        page_logs[page] = log

        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            # Chromium asks every new context for /favicon.ico; test_pages.py checks that one on its own.
            if message.location.get("url", "").endswith("/favicon.ico"):
                log.missing_favicon += 1
                return
            log.console_errors.append(f"{message.text} ({message.location.get('url')})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: log.page_errors.append(str(error)))
        page.expose_binding("__accordReportCsp", lambda _source, text: log.csp_violations.append(text))
        page.add_init_script(CSP_LISTENER)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def logged_in_page(new_page: Callable[[], Any]) -> Callable[[str], Any]:
    """Open a page and log in through the real login form; `email` may be a bare demo name like "chair"."""

    def log_in(email: str) -> Any:
        if "@" not in email:
            email = f"{email}@{DEMO_DOMAIN}"
        page = new_page()
        page.goto("/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.locator("main form").get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/login" not in url)
        assert page.locator(".site-header .who").count() == 1, f"login as {email} did not succeed"
        return page

    return log_in


@pytest.fixture
def page_log(page_logs: dict[Any, PageLog]) -> Callable[[Any], PageLog]:
    return lambda page: page_logs[page]


def visit(page: Any, path: str, status: int = 200) -> Any:
    """Go to `path` and check the HTTP status of the page itself."""
    response = page.goto(path)
    assert response is not None, f"no response for {path}"
    assert response.status == status, f"{path} answered {response.status}, expected {status}"
    return response


def screenshot(page: Any, name: str, *, full_page: bool = True, **options: Any) -> Path:
    """Save a documentation screenshot to docs/screenshots/NAME."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page, **options)
    return path
