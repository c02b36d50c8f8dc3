"""The plugin admin end to end: the demo on a real uvicorn, driven in headless Chromium.

Signs in through the demo's login, sees the plugin list, disables and re-enables a plugin,
uploads a package built here, grants what it asks, calls it and watches its log lines arrive in
the live tail. Screenshots of the list and detail pages are saved in ``test-artifacts/``; the
list's also goes to ``docs/admin-list.png`` when that file is missing or
``GOATKIT_UPDATE_SCREENSHOTS=1`` is set (so ordinary runs leave the docs alone).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from goatkit_asgi.demo.app import build_app
from tests.browser import BROWSER_MARKS
from tests.fixtures.wat import REGISTRATION, make_plugin
from tests.web.server import serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "admin-list.png"

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")


def package(tmp_path: Path) -> Path:
    """A plugin package that asks to read tickets and serves a route that logs."""
    registration = {
        **REGISTRATION,
        "name": "ticket-notes",
        "description": "Notes on tickets",
        "routes": [{"method": "GET", "path": "/ticket-notes/log", "handler": "log"}],
    }
    src = make_plugin(
        tmp_path / "src",
        "ticket-notes",
        manifest={"description": "Notes on tickets", "capabilities": {"db": {"read": ["tickets"]}}},
        registration=registration,
    )
    path = tmp_path / "ticket-notes-1.0.0.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f.name)
    path.write_bytes(buf.getvalue())
    return path


def test_operator_signs_in_disables_uploads_grants_and_tails_logs(
    tmp_path: Path, browser_page: Any
) -> None:
    page = browser_page
    expect = sync_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    zip_path = package(tmp_path)
    with serve(build_app(tmp_path / "demo")) as base:
        # sign in through the host's own login; the admin sent us there
        page.goto(f"{base}/admin/plugins/")
        assert page.url == f"{base}/login?next=/admin/plugins/"
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "admin")
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{base}/admin/plugins/")

        # the list
        rows = page.locator("table.plugins tbody tr")
        expect(page.locator("tr[data-plugin=hello-wasm]")).to_be_visible()
        expect(page.locator("tr[data-plugin=desk-digest]")).to_be_visible()
        assert rows.count() >= 2
        assert (
            page.locator("link[rel=stylesheet]").evaluate(
                "el => getComputedStyle(document.body).backgroundColor"
            )
            == "rgb(245, 246, 248)"
        )  # the packaged CSS was served and applied

        # disable and re-enable hello-wasm from its page
        page.click("tr[data-plugin=hello-wasm] a.plugin-name")
        page.wait_for_url(f"{base}/admin/plugins/plugins/hello-wasm")
        page.click("button[data-action=disable]")
        expect(page.locator(".flash-ok")).to_have_text("hello-wasm is disabled.")
        expect(page.locator("#plugin-state")).to_have_text("disabled")
        assert httpx.get(f"{base}/hello/Ada").status_code == 404
        page.click("button[data-action=enable]")
        expect(page.locator(".flash-ok")).to_have_text("hello-wasm is enabled.")
        expect(page.locator("#plugin-state")).to_have_text("discovered")
        assert httpx.get(f"{base}/hello/Ada").status_code == 200

        # upload a package: it lands on its page for the capability review
        page.goto(f"{base}/admin/plugins/")
        page.set_input_files("input[name=package]", str(zip_path))
        page.click("button:has-text('Upload and review')")
        page.wait_for_url(f"{base}/admin/plugins/plugins/ticket-notes")
        expect(page.locator(".flash-ok")).to_contain_text(
            "Installed ticket-notes from ticket-notes-1.0.0.zip."
        )
        expect(page.locator("td.pending")).to_have_text("tickets")
        page.click("button[data-action=grant-requested]")
        expect(page.locator(".flash-ok")).to_have_text(
            'ticket-notes is granted {"db": {"read": ["tickets"]}}.'
        )
        expect(page.locator("td.pending")).to_have_count(0)
        expect(page.locator("button[data-action=grant-requested]")).to_have_count(0)

        # call it; its log lines arrive in the live tail without a reload
        expect(page.locator("#tail-status")).to_have_text("live")
        for i in range(3):
            r = httpx.get(f"{base}/ticket-notes/log", params={"note": f"from-the-browser-test-{i}"})
            assert r.status_code == 200 and r.json() == {"ok": True}
        fresh = page.locator("#log-tail li.fresh", has_text="from-the-browser-test-2")
        expect(fresh).to_be_visible()
        expect(page.locator("#log-tail li.fresh", has_text="from-the-browser-test")).to_have_count(
            3
        )
        assert page.locator("#log-tail li.fresh .level").first.text_content() == "warn"
        page.reload()  # and the numbers show on the page
        expect(page.locator("#log-tail li", has_text="from-the-browser-test-0")).to_have_count(1)
        assert re.search(r"\b3 calls\b", page.locator("main").inner_text())
        page.screenshot(path=str(ARTIFACTS / "admin-detail.png"), full_page=True)

        page.goto(f"{base}/admin/plugins/")
        expect(page.locator("tr[data-plugin=ticket-notes] td").nth(3)).to_have_text("loaded")
        page.screenshot(path=str(ARTIFACTS / "admin-list.png"), full_page=True)
        if not DOCS_SCREENSHOT.exists() or os.environ.get("GOATKIT_UPDATE_SCREENSHOTS") == "1":
            DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(DOCS_SCREENSHOT))
    assert (ARTIFACTS / "admin-list.png").stat().st_size > 10_000
    assert (ARTIFACTS / "admin-detail.png").stat().st_size > 10_000
