"""Headless Debian Chromium, driven by playwright, for tests that need a real browser.

Registered for every test module by ``tests/conftest.py``. ``browser_page`` yields a page and fails the test if the page logged a script error, a Content
Security Policy violation, or a request that answered 400 or more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Marks for a module of browser tests: slow, and skipped where Debian's Chromium is missing.
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


@pytest.fixture
def browser_page() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 760})
            page = context.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            failed: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "console",
                lambda msg: (
                    errors.append(msg.text)
                    if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                    else None
                ),
            )
            page.on(
                "response",
                lambda r: (
                    failed.append(r.url)
                    if r.status >= 400 and not r.url.endswith("/favicon.ico")
                    else None
                ),
            )
            yield page
            # no script errors, no Content-Security-Policy violations, no broken requests
            assert errors == []
            assert failed == []
        finally:
            browser.close()
