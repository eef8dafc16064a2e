"""Live co-editing of a working text in real browsers, against a real server process.

Each person has their own browser context (own cookies, own Socket.IO connection). Text is typed with the
keyboard into CodeMirror; what a page holds is read from `window.accordEditor.text`, the Yjs text the
editor is bound to. The server is the one `make run` starts (gunicorn, gevent);
tests/integration/test_collab_live.py runs the protocol against `flask serve` too.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PageLog, screenshot, visit

pytestmark = pytest.mark.browser

WORKING = "/codes/gpai-code/working"
NAMES = {"editor": "Elif Editor", "chair": "Claire Chair", "observer": "Olga Observer"}
LABELS = {
    "saved": "All changes saved",
    "offline": "Offline: keep typing, your changes are sent when you are back",
    "reconnecting": "Reconnecting…",
}
SYNC_SECONDS = 10.0
RECONNECT_SECONDS = 20.0


def token(name: str) -> str:
    """A word no one else types, so a test can find exactly its own edit in the shared text."""
    return f"{name.upper()}{uuid.uuid4().hex[:8].upper()}"


def text_of(page: Any) -> str:
    return page.evaluate("() => window.accordEditor.text.toString()")


def wait_until(condition: Callable[[], bool], seconds: float, message: Callable[[], str]) -> None:
    # Polled from Python: the page's CSP forbids the eval that page.wait_for_function(<string>) relies on.
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message())
        time.sleep(0.05)


def wait_for_text(
    page: Any, *, contains: tuple[str, ...] = (), lacks: tuple[str, ...] = (), seconds: float = SYNC_SECONDS
) -> None:
    def ok() -> bool:
        text = text_of(page)
        return all(t in text for t in contains) and not any(t in text for t in lacks)

    wait_until(ok, seconds, lambda: f"page text never had {contains} without {lacks}; it starts: {text_of(page)[:300]}")


def wait_saved(page: Any, seconds: float = SYNC_SECONDS) -> None:
    expect(page.locator("#collab-status")).to_have_attribute("data-state", "saved", timeout=seconds * 1000)
    expect(page.locator("#collab-status")).to_have_text(LABELS["saved"])


def open_working_text(logged_in_page: Callable[[str], Any], who: str) -> Any:
    page = logged_in_page(who)
    visit(page, WORKING, 200)
    expect(page.locator("#collab-editor.collab-ready .cm-content")).to_be_visible()
    # Joined: the server's text has arrived (the replica starts empty until the join answer).
    wait_until(lambda: len(text_of(page)) > 1000, SYNC_SECONDS, lambda: f"{who} never received the working text")
    return page


def cursor_line(page: Any) -> str:
    """The text of the line the editor's cursor is on."""
    return page.evaluate(
        "() => { const s = window.accordEditor.view.state; return s.doc.lineAt(s.selection.main.head).text; }"
    )


def move_cursor_to(page: Any, needle: str) -> None:
    """Click into the editor, then find `needle` with CodeMirror's search (Ctrl+F, Enter, Escape).

    The keyboard, rather than a click on the line: a click can land on another person's cursor label (a
    widget CodeMirror ignores clicks on), and where a click lands depends on the layout.
    """
    page.locator(".cm-content .cm-line").first.click()
    page.keyboard.press("Control+f")
    search = page.locator(".cm-search input[name=search]")
    expect(search).to_be_focused()
    search.press("Control+a")
    page.keyboard.type(needle)  # typed: the panel takes its query on key-up, not on a programmatic fill
    search.press("Enter")
    search.press("Escape")
    wait_until(lambda: needle in cursor_line(page), 3, lambda: f"the cursor did not reach {needle!r}")
    assert editor_has_focus(page)


def type_at_line(page: Any, needle: str, words: str, *, above: bool = False) -> None:
    """Type `words` with the keyboard at the end of the (short) line holding `needle`.

    With `above`, open a new line above it and type them there instead.
    """
    move_cursor_to(page, needle)
    if above:
        page.keyboard.press("Home")
        page.keyboard.press("Enter")
        page.keyboard.press("ArrowUp")
    else:
        page.keyboard.press("End")
    page.keyboard.type(words)


def line_with(text: str, word: str) -> tuple[str, str]:
    """The line holding `word`, and the line after it."""
    lines = text.split("\n")
    index = next(i for i, line in enumerate(lines) if word in line)
    return lines[index], lines[index + 1] if index + 1 < len(lines) else ""


def editor_has_focus(page: Any) -> bool:
    return page.evaluate("() => !!document.activeElement?.closest('.cm-content')")


@pytest.fixture
def editor_and_chair(logged_in_page: Callable[[str], Any]) -> tuple[Any, Any]:
    editor = open_working_text(logged_in_page, "editor")
    chair = open_working_text(logged_in_page, "chair")
    wait_saved(editor)
    wait_saved(chair)
    return editor, chair


def test_two_editors_converge_and_see_each_other(editor_and_chair: tuple[Any, Any]) -> None:
    editor, chair = editor_and_chair
    mine, theirs = token("editor"), token("chair")

    type_at_line(editor, "## Preamble", f" {mine}")
    type_at_line(chair, "## Preamble", theirs, above=True)

    for page in (editor, chair):
        wait_for_text(page, contains=(mine, theirs))
    wait_saved(editor)
    wait_saved(chair)
    assert text_of(editor) == text_of(chair)
    text = text_of(editor)
    # Each word is where its author typed it: the editor's at the end of the heading, the chair's on a line
    # of its own just above.
    line, _ = line_with(text, mine)
    assert line.startswith("## Preamble"), line
    assert line.endswith(f" {mine}"), line
    line, after = line_with(text, theirs)
    assert line == theirs, line
    assert after.startswith("## Preamble"), after

    # Presence: each sees the other by name, and themselves marked as "you".
    for page, me, other in ((editor, "editor", "chair"), (chair, "chair", "editor")):
        presence = page.locator("#collab-presence")
        expect(presence.locator("li", has_text=NAMES[other])).to_have_count(1)
        expect(presence.locator("li", has_text=f"{NAMES[me]} (you)")).to_have_count(1)
        # The other's cursor, labelled with their name.
        expect(page.locator(".cm-ySelectionInfo", has_text=NAMES[other])).to_have_count(1)
        expect(page.locator(".cm-ySelectionInfo", has_text=NAMES[me])).to_have_count(0)

    # Where each one is: the clause under their cursor.
    expect(editor.locator("#collab-presence li", has_text=NAMES["chair"])).to_contain_text("Third Draft")
    expect(chair.locator("#collab-presence li", has_text=NAMES["editor"])).to_contain_text("Preamble")

    editor.evaluate("() => window.scrollTo(0, 0)")
    editor.locator(".cm-ySelectionCaret").first.hover()  # y-codemirror shows the name label on hover
    screenshot(editor, "coediting.png", full_page=False, caret="initial")


def test_offline_edits_reach_the_other_page_after_reconnecting(editor_and_chair: tuple[Any, Any]) -> None:
    editor, chair = editor_and_chair
    status = editor.locator("#collab-status")
    word = token("offline")

    move_cursor_to(editor, "## Preamble")
    editor.context.set_offline(True)
    expect(status).to_have_attribute("data-state", "offline")
    expect(status).to_have_text(LABELS["offline"])
    editor.keyboard.press("End")
    editor.keyboard.type(f" {word}")
    assert word in text_of(editor)
    time.sleep(1.0)
    assert word not in text_of(chair), "an edit made offline reached the other page while offline"
    expect(status).to_have_attribute("data-state", "offline")

    editor.context.set_offline(False)
    # Socket.IO reconnects with back-off; the rejoin sends whatever the server lacks.
    wait_for_text(chair, contains=(word,), seconds=RECONNECT_SECONDS)
    wait_saved(editor, RECONNECT_SECONDS)
    wait_saved(chair)
    assert text_of(editor) == text_of(chair)
    assert text_of(chair).count(word) == 1, "the offline edit was applied more than once"


def test_going_offline_raises_no_uncaught_errors(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    """The preview is fetched after each change; offline, that fetch fails and nothing may go unhandled."""
    editor = open_working_text(logged_in_page, "editor")
    wait_saved(editor)
    move_cursor_to(editor, "## Preamble")
    log = page_log(editor)
    log.page_errors.clear()
    editor.context.set_offline(True)
    editor.keyboard.press("End")
    editor.keyboard.type(f" {token('preview')}")
    time.sleep(1.2)  # the preview refresh runs 600 ms after the last change
    editor.context.set_offline(False)
    wait_saved(editor, RECONNECT_SECONDS)
    assert log.page_errors == [], f"uncaught errors while offline: {log.page_errors}"


def test_undo_takes_back_only_my_own_edit(editor_and_chair: tuple[Any, Any]) -> None:
    editor, chair = editor_and_chair
    mine, theirs = token("mine"), token("theirs")

    type_at_line(editor, "## Preamble", f" {mine}")
    wait_for_text(chair, contains=(mine,))
    type_at_line(chair, "## Preamble", theirs, above=True)
    wait_for_text(editor, contains=(theirs,))
    wait_saved(editor)
    wait_saved(chair)

    assert editor_has_focus(editor)
    editor.keyboard.press("Control+z")

    for page in (editor, chair):
        wait_for_text(page, contains=(theirs,), lacks=(mine,))
    wait_saved(editor)
    wait_saved(chair)
    assert text_of(editor) == text_of(chair)
    assert line_with(text_of(chair), theirs)[0] == theirs, "undo touched the chair's edit"


def test_observer_reads_along_but_cannot_change_the_text(logged_in_page: Callable[[str], Any]) -> None:
    observer = open_working_text(logged_in_page, "observer")
    editor = open_working_text(logged_in_page, "editor")
    wait_saved(editor)
    content = observer.locator(".cm-content")
    expect(content).to_have_attribute("aria-readonly", "true")
    # No fallback form to save with either.
    expect(observer.get_by_role("button", name="Save working text")).to_have_count(0)

    before = text_of(observer)
    type_at_line(observer, "## Preamble", " OBSERVERWAS HERE")
    observer.keyboard.press("Enter")
    observer.keyboard.press("Backspace")
    time.sleep(0.5)
    assert text_of(observer) == before, "typing changed the observer's copy of the text"
    assert "OBSERVERWAS" not in text_of(editor)
    expect(observer.locator(".cm-content")).not_to_contain_text("OBSERVERWAS")

    word = token("live")
    type_at_line(editor, "## Preamble", f" {word}")
    wait_for_text(observer, contains=(word,))
    expect(observer.locator(".cm-content")).to_contain_text(word)
    expect(observer.locator("#collab-presence")).to_contain_text(NAMES["editor"])
    expect(editor.locator("#collab-presence")).to_contain_text(NAMES["observer"])
    observer.evaluate("() => window.scrollTo(0, 0)")
    screenshot(observer, "working-text-observer.png", full_page=False)


def test_observer_is_told_the_text_is_read_only(logged_in_page: Callable[[str], Any]) -> None:
    """The page renders "Read only: …" for observers; the status must not claim their changes are saved."""
    observer = open_working_text(logged_in_page, "observer")
    # open_working_text waited for the join, after which the client has set the status.
    status = observer.locator("#collab-status")
    expect(status).to_contain_text("Read only", timeout=2000)
    expect(status).not_to_have_text(LABELS["saved"])


def test_stakeholder_outside_the_group_gets_not_found(logged_in_page: Callable[[str], Any]) -> None:
    page = logged_in_page("stakeholder")
    visit(page, WORKING, 404)
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.locator("#collab-editor")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Working text")


def test_tab_leaves_the_editor(logged_in_page: Callable[[str], Any]) -> None:
    """No keyboard trap (WCAG 2.1.2): Tab moves focus on, it does not indent."""
    page = open_working_text(logged_in_page, "editor")
    wait_saved(page)
    move_cursor_to(page, "## Preamble")
    assert editor_has_focus(page)
    before = text_of(page)
    page.keyboard.press("Tab")
    assert not editor_has_focus(page), "Tab kept the focus inside the editor"
    page.keyboard.press("Shift+Tab")
    assert editor_has_focus(page), "Shift+Tab did not return to the editor"
    page.keyboard.press("Shift+Tab")
    assert not editor_has_focus(page), "Shift+Tab kept the focus inside the editor"
    assert text_of(page) == before, "Tab changed the text"


def test_working_text_page_has_no_console_errors_or_csp_violations(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
) -> None:
    page = open_working_text(logged_in_page, "editor")
    wait_saved(page)
    type_at_line(page, "## Preamble", f" {token('clean')}")
    wait_saved(page)
    time.sleep(0.8)  # the preview refresh
    log = page_log(page)
    assert log.problems() == [], "the browser reported problems:\n" + "\n".join(log.problems())


def test_editor_is_a_bounded_scrolling_box(logged_in_page: Callable[[str], Any]) -> None:
    """The stylesheet caps the editor at 80vh; the text must scroll inside it, not stretch the page."""
    page = open_working_text(logged_in_page, "editor")
    box = page.locator(".collab-editor .cm-editor").bounding_box()
    assert box is not None
    assert box["height"] <= 0.8 * 900 + 2, f"the editor is {box['height']:.0f} px tall"
    overflow = page.evaluate("() => getComputedStyle(document.querySelector('.cm-scroller')).overflowY")
    assert overflow in {"auto", "scroll"}, f"the editor's scroller has overflow-y: {overflow}"
    page_height = page.evaluate("() => document.documentElement.scrollHeight")
    assert page_height < 3 * 900, f"the text spills out of the editor: the page is {page_height} px tall"


def test_others_hear_who_edited_which_clause_once_not_per_keystroke(editor_and_chair: tuple[Any, Any]) -> None:
    editor, chair = editor_and_chair
    word = token("activity")
    activity = chair.get_by_role("status").filter(has_text="edited")

    move_cursor_to(editor, "## Preamble")
    editor.keyboard.press("End")
    editor.keyboard.press("Enter")
    editor.keyboard.type(f"{word} ")
    wait_for_text(chair, contains=(word,))

    # Earlier tests on the shared server typed on the heading line itself, so it may say more after "Preamble".
    expect(chair.locator("#collab-activity")).to_have_text(re.compile(rf"^{NAMES['editor']} edited Preamble\b"))
    expect(activity).to_have_count(1)
    expect(editor.locator("#collab-activity")).to_have_text("")  # one's own edits are not announced
    # Count every write to the announcement from now on (writing the same text again is a mutation too).
    chair.evaluate(
        """() => {
          window.accordActivityWrites = 0;
          new MutationObserver(() => { window.accordActivityWrites += 1; }).observe(
            document.getElementById("collab-activity"), {childList: true, characterData: true, subtree: true});
        }"""
    )
    editor.keyboard.type("and more words in the same clause")
    wait_for_text(chair, contains=("and more words in the same clause",))
    time.sleep(1.5)  # the page gathers edits for a second before it announces
    assert chair.evaluate("() => window.accordActivityWrites") == 0, "the same person and clause, announced again"
