"""The largest window the model allows, 100,000 points of 10 series, opens in Chromium and is
drawn: its backfill comes in frames under the bound, chained by `prev` (one message of about
10 MB used to close the socket with 1011 and the page never filled)."""

from __future__ import annotations

import pytest

from tests.history_fill import fill_window
from tests.processes import Stack, seed_streams

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

POINTS = 100_000
SERIES = 10
BIG = {"slug": "big", "title": "Big", "feed_kind": "push", "visibility": "public", "window_points": POINTS}


def test_a_100000_point_window_of_10_series_opens_and_is_drawn(stack: Stack, browser):
    seed_streams(stack, [BIG])
    ids = fill_window(
        redis_url=stack.env["REDIS_URL"],
        prefix=stack.env["LIVECHARTS_REDIS_PREFIX"],
        slug="big",
        points=POINTS,
        series=SERIES,
    )
    stack.start_daphne()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.base_url}/streams/big/")
    page.wait_for_function(f"window.livecharts.lastIds.big === {ids[-1]!r}", timeout=180_000)
    assert page.evaluate("window.livecharts.pointsReceived") == POINTS
    held = page.evaluate(
        f"Array.from({{length: {SERIES}}}, (_, k) => window.livecharts.liveWindow('s' + k).x.length)"
    )
    assert held == [POINTS] * SERIES
    # Drawn: every series has a trace with points on the plot (a thinned copy of so many).
    page.wait_for_function(
        f"document.getElementById('chart').data.filter((trace) => trace.x.length > 0).length === {SERIES}",
        timeout=30_000,
    )
    assert page.evaluate("document.body.dataset.connection") == "live"
    assert errors == []
    assert "Traceback" not in stack.log("daphne")
