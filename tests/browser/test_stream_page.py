"""A real viewer in Chromium: sign in, watch the chart move, survive a server restart."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(150)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
TRACE_POINTS = "() => document.getElementById('chart').data.reduce((n, trace) => n + trace.x.length, 0)"
TRACE_X = "() => Array.from(document.getElementById('chart').data[0].x)"


def sign_in(page, stack: Stack, username: str) -> None:
    page.goto(f"{stack.base_url}/accounts/login/?next=/streams/line/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.base_url}/streams/line/")


def test_viewer_sees_the_chart_grow_and_continue_after_a_server_restart(stack: Stack, browser):
    stack.start_ingest()
    stack.start_daphne()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, stack, "alice")

    page.wait_for_function("document.body.dataset.connection === 'live'", timeout=15_000)
    page.wait_for_function(f"({TRACE_POINTS})() > 20", timeout=15_000)
    before = page.evaluate(TRACE_POINTS)
    page.wait_for_function(f"({TRACE_POINTS})() > {before + 20}", timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stream_page.png"), full_page=True)

    stack.stop("daphne", sig=9)
    page.wait_for_function("document.body.dataset.connection !== 'live'", timeout=15_000)
    stalled = page.evaluate(TRACE_POINTS)
    stack.start_daphne()
    page.wait_for_function("document.body.dataset.connection === 'live'", timeout=30_000)
    page.wait_for_function(f"({TRACE_POINTS})() > {stalled + 40}", timeout=20_000)

    # The chart went on from where it was: every 50 ms step present once, none missing.
    x = page.evaluate(TRACE_X)
    steps = {round(b - a) for a, b in itertools.pairwise(x)}
    assert steps == {50}, f"gaps or duplicates in the trace: {sorted(steps)[:10]}"
    assert errors == []


def test_forbidden_viewer_gets_a_message_not_a_chart(stack: Stack, browser):
    stack.start_daphne()
    page = browser.new_page()
    page.goto(f"{stack.base_url}/accounts/login/")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "E2E line" not in page.content()
    response = page.goto(f"{stack.base_url}/streams/line/")
    assert response.status == 403
