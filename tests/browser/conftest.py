from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from tests.services import require_chromium

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser() -> Iterator:
    """Debian's Chromium driven by Playwright (never `playwright install`: no internet here)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        # Playwright's wait_for_function runs its expression through eval() in the page, which
        # the Content-Security-Policy (script-src 'self', livecharts/csp.py) refuses, so pages
        # bypass it by default; tests/browser/test_csp.py asks for bypass_csp=False.
        browser.new_page = functools.partial(browser.new_page, bypass_csp=True)
        browser.new_context = functools.partial(browser.new_context, bypass_csp=True)
        try:
            yield browser
        finally:
            browser.close()
