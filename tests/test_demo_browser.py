"""The demo's first-party plugins in headless Chromium, on a real uvicorn, as a user clicks.

The dashboard's widget, the statistics page with a chosen range, an FAQ search from the portal,
a suggestion followed from a ticket, an appointment made through the calendar's form (whose
script fills in the zone's UTC offset), and the workflow designer drawn by its script. The
``browser_page`` fixture fails the test on any script error or answer of 400 or more.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from goatkit_asgi.demo.app import build_app
from tests.browser import BROWSER_MARKS
from tests.web.server import serve

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")


def test_the_four_plugins_work_in_a_browser(tmp_path: Path, browser_page: Any) -> None:
    page = browser_page
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(build_app(tmp_path / "demo")) as base:
        page.goto(base + "/")
        nav = page.locator("header nav")

        def menu(label: str) -> Any:  # the layout's CSS puts a diamond before plugin items
            return nav.get_by_role("link", name=re.compile(rf"^\W*{label}$"))

        for label in ("Statistics", "FAQ", "Calendar", "Workflows"):
            expect(menu(label)).to_be_visible()
        expect(page.locator("#widget-stats-stats-overview svg")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "demo-dashboard.png"), full_page=True)

        # statistics: the menu, then a range of the last week through the date form
        menu("Statistics").click()
        expect(page.locator("svg").first).to_be_visible()
        today = dt.datetime.now(dt.UTC).date()
        week_ago = today - dt.timedelta(days=7)
        page.fill("#stats-from", week_ago.isoformat())
        page.fill("#stats-to", today.isoformat())
        page.locator("form.stats-range button[type=submit]").click()
        page.wait_for_url(re.compile(rf"from={week_ago.isoformat()}"))
        expect(page.locator("#stats-from")).to_have_value(week_ago.isoformat())
        page.screenshot(path=str(ARTIFACTS / "demo-stats.png"), full_page=True)

        # FAQ: search from the portal, open the hit
        menu("FAQ").click()
        page.fill("#faq-q", "vpn")
        page.locator("form.faq-search button[type=submit]").click()
        page.wait_for_url(re.compile(r"/faq/search\?q=vpn"))
        page.get_by_role("link", name="The VPN keeps dropping: what can I do?").click()
        expect(page.locator("h1")).to_contain_text("The VPN keeps dropping")

        # a ticket suggests the same article
        page.goto(base + "/tickets/2")
        suggestion = page.locator("#faq-suggestions a").first
        expect(suggestion).to_have_text("The VPN keeps dropping: what can I do?")

        # calendar: a new appointment in Berlin; the script fills in the offset of that day
        page.goto(base + "/calendar/new")
        day = today + dt.timedelta(days=2)
        page.fill("#f-title", "Browser-made meeting")
        page.fill("#f-start", f"{day.isoformat()}T10:00")
        page.fill("#f-end", f"{day.isoformat()}T11:00")
        page.select_option("#f-tzid", "Europe/Berlin")
        offset = dt.datetime.combine(day, dt.time(10), ZoneInfo("Europe/Berlin")).strftime("%z")
        expected = f"{offset[:3]}:{offset[3:]}"
        expect(page.locator("#f-start-offset")).to_have_value(expected)
        page.locator("form.cal-form button[type=submit]").click()
        page.wait_for_url(re.compile(r"/calendar"))
        expect(page.get_by_text("Browser-made meeting").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "demo-calendar.png"), full_page=True)

        # workflows: the designer draws the seeded workflow's four states
        menu("Workflows").click()
        page.get_by_role("link", name="Helpdesk tickets").first.click()
        expect(page.locator("#process-canvas g.process-node")).to_have_count(4)
        page.screenshot(path=str(ARTIFACTS / "demo-process.png"), full_page=True)
