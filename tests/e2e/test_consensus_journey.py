"""Positions and the consensus dashboard in a real browser, against the demo rounds of the European AI Alliance.

The demo seeds a closed round on v1 and an open one on v2 of the GPAI code (see app/consensus/demo.py). The
stakeholder records positions with the keyboard in the open round; the chair reads the heat map; the public
reads the closed round's summary. Nothing here changes what other browser tests look at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PageLog, screenshot, visit

pytestmark = pytest.mark.browser

FORUM = "/forums/european-ai-alliance"


def round_url(page: Any, title: str) -> str:
    visit(page, FORUM)
    link = page.get_by_role("link", name=title)
    href = link.get_attribute("href")
    assert href is not None
    assert re.fullmatch(r"/rounds/\d+", href)
    return href


def test_a_stakeholder_records_positions_with_the_keyboard(
    logged_in_page: Callable[[str], Any], page_log: Callable[[Any], PageLog]
):
    page = logged_in_page("stakeholder")
    url = round_url(page, "Survey on the second draft")
    visit(page, url)
    page.get_by_role("link", name="Record your positions").click()
    expect(page.get_by_role("heading", name="Your positions")).to_be_visible()
    expect(page.locator("#answered-count")).to_contain_text("You have answered 0 of")
    fieldsets = page.locator("fieldset.position")
    first, second = fieldsets.nth(0), fieldsets.nth(1)

    # Keyboard only: Space picks the focused stance, the arrow keys move within the group.
    first.get_by_role("radio", name="Support", exact=True).focus()
    page.keyboard.press("Space")
    second.get_by_role("radio", name="Support", exact=True).focus()
    page.keyboard.press("Space")
    for _ in range(3):  # Support → Support with changes → Abstain → Oppose
        page.keyboard.press("ArrowRight")
    expect(second.get_by_role("radio", name="Oppose")).to_be_checked()
    page.get_by_role("button", name="Record my positions").focus()
    page.keyboard.press("Enter")

    # Opposing without a rationale is refused as a whole, and the form keeps what was chosen.
    expect(page.locator(".flash-error")).to_contain_text("Nothing was recorded")
    expect(second.locator(".field-error")).to_contain_text("rationale is required")
    expect(first.get_by_role("radio", name="Support", exact=True)).to_be_checked()
    assert [p for p in page_log(page).problems() if "422" not in p] == []
    page_log(page).clear()  # the 422 answer itself is logged by Chromium as a failed resource
    second.get_by_label("Rationale (required when you oppose)").fill("Too vague to audit.")
    page.get_by_role("button", name="Record my positions").click()
    expect(page.locator(".flash-success")).to_contain_text("positions recorded")
    expect(page.locator("#answered-count")).to_contain_text("You have answered 2 of")
    expect(fieldsets.nth(1).get_by_label("Rationale (required when you oppose)")).to_have_value("Too vague to audit.")
    screenshot(page, "consensus-positions.png", full_page=False)
    assert page_log(page).problems() == []


def test_the_chair_reads_the_heat_map_and_the_public_the_closed_round(
    logged_in_page: Callable[[str], Any], new_page: Callable[[], Any], page_log: Callable[[Any], PageLog]
):
    chair = logged_in_page("chair")
    url = round_url(chair, "Survey on the second draft")
    visit(chair, f"{url}?sort=contested")
    heat_map = chair.locator("table.heat-map")
    expect(heat_map).to_be_visible()
    first_row = heat_map.locator("tbody tr").first
    # Numbers in every coloured cell, never colour alone.
    expect(first_row.locator("td").first).to_contain_text(re.compile(r"\d+\s?%\s*\(n=\d+\)"))
    expect(chair.get_by_role("heading", name="Trend across versions in this forum")).to_be_visible()
    expect(chair.locator("table.trends svg").first).to_be_visible()
    expect(chair.get_by_text("diverges").first).to_be_visible()
    screenshot(chair, "consensus-dashboard.png", full_page=False)
    assert page_log(chair).problems() == []

    public = new_page()
    closed = round_url(public, "Survey on the first draft")
    visit(public, closed)
    expect(public.locator("table.heat-map tbody tr")).not_to_have_count(0)
    expect(public.get_by_role("link", name="tallies (CSV)")).to_be_visible()
    open_round = round_url(public, "Survey on the second draft")
    visit(public, open_round)
    expect(public.get_by_text("published when it closes")).to_be_visible()
    expect(public.locator("table.heat-map")).to_have_count(0)
    assert page_log(public).problems() == []
