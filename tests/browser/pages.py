"""Signing a viewer in from Chromium, shared by the browser tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.processes import STACK_PASSWORD, Stack


def sign_in(page: Any, stack: Stack, path: str, *, username: str = "alice") -> None:
    """Sign in through the login form with `path` as its next page, and wait to be there."""
    page.goto(f"{stack.base_url}/accounts/login/?next={quote(path, safe='/')}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", STACK_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.base_url}{path}")


def signed_in_page(
    browser: Any, stack: Stack, path: str, *, viewport: dict | None = None, **context: Any
) -> Any:
    """A page in a browser context of its own (a second tab would share its session: signing out
    there signs this one out), signed in as alice at `path`, once its socket is live."""
    page = browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, **context).new_page()
    sign_in(page, stack, path)
    page.wait_for_function("document.body.dataset.connection === 'live'", timeout=15_000)
    return page
