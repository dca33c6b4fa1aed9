"""The largest window the model allows, 100,000 points of 10 series, opens in Chromium and is
drawn: its backfill comes in frames under the bound, chained by `prev` (one message of about
10 MB used to close the socket with 1011 and the page never filled)."""

from __future__ import annotations

import pytest

from tests.history_fill import POINTS, SERIES, expected_value, seed_big_window
from tests.processes import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_100000_point_window_of_10_series_opens_and_is_drawn(stack: Stack, browser):
    ids = seed_big_window(stack)
    stack.start_daphne()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.base_url}/streams/big/")
    page.wait_for_function(f"window.livecharts.lastIds.big === {ids[-1]!r}", timeout=180_000)
    assert page.evaluate("window.livecharts.pointsReceived") == POINTS
    # Every point of every series held by the chart once drawn (it draws per animation frame).
    held = f"Array.from({{length: {SERIES}}}, (_, k) => window.livecharts.liveWindow('s' + k).x.length)"
    page.wait_for_function(f"({held}).every((n) => n === {POINTS})", timeout=60_000)
    first = page.evaluate("window.livecharts.liveWindow('s3').y.slice(0, 3)")
    assert first == [expected_value(n, 3) for n in range(3)]
    # Drawn: every series has a trace with points on the plot (a thinned copy of so many).
    page.wait_for_function(
        f"document.getElementById('chart').data.filter((trace) => trace.x.length > 0).length === {SERIES}",
        timeout=30_000,
    )
    assert page.evaluate("document.body.dataset.connection") == "live"
    assert errors == []
    assert "Traceback" not in stack.log("daphne")
