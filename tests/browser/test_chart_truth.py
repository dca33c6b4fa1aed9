"""Charts that tell the truth, in a real Chromium against a real `serve`: a hole in the data breaks
the line (live and range views), an empty stream says it is waiting instead of drawing Plotly's
default axes, the health line's age ticks every second and its count follows the chart, and on a
phone Plotly's mode bar does not cover the legend."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.pages import signed_in_page
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack, embedded_stack, seed_streams, sign_in
from tests.waits import wait_in_page, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(150)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
PUSHED = {
    "slug": "pushed",
    "title": "Pushed",
    "visibility": "signed_in",
    "feed_kind": "push",
    "feed_settings": {"series": "v"},
    "window_points": 1000,
    "decimals": 2,
}
QUIET = {**PUSHED, "slug": "quiet", "title": "Quiet", "decimals": None}
PRICE = {**PUSHED, "slug": "price", "title": "Price", "chart_type": "area"}
CHART = "document.getElementById('chart')"
# Every value the chart draws of its first trace, nulls included (a null is where the line breaks).
DRAWN_Y = f"() => Array.from({CHART}.data[0]?.y ?? [])"
RANGE_DRAWN = "window.livecharts.range.answer && !window.livecharts.range.loading"
DRAWN_X = f"() => Array.from({CHART}.data[0]?.x ?? [])"


@pytest.fixture
def embedded(tmp_path) -> Iterator[tuple[Stack, dict[str, str]]]:
    """One `serve` on SQLite with alice, bob, the simulated stream "line" and two push streams."""
    with embedded_stack(tmp_path) as stack:
        tokens = seed_streams(stack, [PUSHED, QUIET, PRICE])
        stack.start_serve()
        yield stack, tokens


def push(stack: Stack, token: str, slug: str, points: list[dict]) -> None:
    response = httpx.post(
        f"{stack.base_url}/api/streams/{slug}/points",
        json=points,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code in (200, 202), response.text


def wait_stored(stack: Stack, slug: str, count: int, *, timeout: float = 20) -> None:
    """Until the database holds `count` points of the stream (the store writes in batches)."""
    client = sign_in(stack, "alice", PASSWORD)

    def stored() -> int:
        return client.get(f"/streams/{slug}/range").json()["stored"]

    wait_until(
        lambda: stored() >= count, what=f"{count} points stored", within=timeout, seen=stored, poll=0.2
    )


def test_a_hole_in_the_data_breaks_the_line_live_and_in_a_range_view(embedded, browser):
    stack, tokens = embedded
    page = signed_in_page(browser, stack, "/streams/pushed/")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    now = time.time()
    # 20 points 100 ms apart, nothing for 5 s (a server restart, say), 20 more.
    # All in the past: a point stamped ahead of the clock falls outside a range that ends "now"
    # (the range view then drew 39 of the 40 when clicked within a second).
    before = [{"t": now - 10 + i * 0.1, "value": 10 + i} for i in range(20)]
    after = [{"t": now - 3 + i * 0.1, "value": 40 + i} for i in range(20)]
    push(stack, tokens["pushed"], "pushed", before + after)
    page.wait_for_function(f"({DRAWN_Y})().filter((y) => y !== null).length === 40", timeout=15_000)
    ys = page.evaluate(DRAWN_Y)
    xs = page.evaluate(DRAWN_X)
    # One null, between the last point before the hole and the first after it.
    assert ys.count(None) == 1, ys
    hole = ys.index(None)
    assert ys[hole - 1] == 29 and ys[hole + 1] == 40
    assert xs[hole - 1] < xs[hole] < xs[hole + 1]
    assert page.evaluate("window.livecharts.gapBreaks") == 1

    # The same points as stored history: the range view breaks there too.
    wait_stored(stack, "pushed", 40)
    page.click("[data-range='15m']")
    page.wait_for_function(RANGE_DRAWN, timeout=15_000)
    ys = page.evaluate(DRAWN_Y)
    assert ys.count(None) == 1 and len(ys) == 41, ys
    assert errors == []


def test_an_empty_stream_says_it_is_waiting_instead_of_drawing_default_axes(embedded, browser):
    stack, tokens = embedded
    page = signed_in_page(browser, stack, "/streams/quiet/")
    note = page.locator(".chart-card .chart-empty")
    note.wait_for(state="visible", timeout=10_000)
    assert note.locator(".chart-empty-title").text_content() == "Waiting for the first point"
    # The feed's state is said; Plotly's default axes (Jan 2000 to Jan 2001) are not shown.
    page.wait_for_function("document.body.dataset.feed !== undefined", timeout=10_000)
    assert "feed" in note.locator(".chart-empty-detail").text_content().lower()
    assert page.evaluate(f"getComputedStyle({CHART}).visibility") == "hidden"
    assert page.get_attribute(".chart-card", "data-empty") == "true"
    page.screenshot(path=str(artifact("empty_stream.png")))

    push(stack, tokens["quiet"], "quiet", [{"value": 1.5}])
    note.wait_for(state="hidden", timeout=15_000)
    assert page.evaluate(f"getComputedStyle({CHART}).visibility") == "visible"
    assert page.get_attribute(".chart-card", "data-empty") == "false"


def test_the_health_line_ages_every_second_and_counts_what_the_chart_holds(embedded, browser):
    stack, tokens = embedded
    page = signed_in_page(browser, stack, "/streams/quiet/")
    cell = "document.querySelector('#feed-health [data-health=\"last_point\"]')"
    points_cell = "document.querySelector('#feed-health [data-health=\"points\"]')"
    # Every text the age cell shows, recorded in the page as it is written: a test that polls
    # for "2 s ago" misses it when the points are drawn more than 3 s after the push (a busy
    # machine), and a value read after a wait may already be the next second's.
    page.evaluate(
        f"""() => {{
            const cell = {cell};
            window.lcAges = [];
            const record = () => {{
                if (window.lcAges.at(-1) !== cell.textContent) window.lcAges.push(cell.textContent);
            }};
            new MutationObserver(record).observe(
                cell, {{ childList: true, characterData: true, subtree: true }}
            );
        }}"""
    )
    push(stack, tokens["quiet"], "quiet", [{"value": i} for i in range(3)])
    page.wait_for_function(f"({DRAWN_Y})().length === 3", timeout=15_000)
    page.wait_for_function(f"{points_cell}.textContent === '3'", timeout=15_000)
    # Every second, not every status frame (those come every few seconds): n, n + 1, n + 2 s in
    # turn (n is 2 unless the points took longer than that to be drawn).
    in_seconds = "window.lcAges.filter((text) => text.endsWith(' s ago'))"
    seen = wait_in_page(
        page, f"{in_seconds}.length >= 3 && {in_seconds}", what="the age to tick three seconds"
    )[:3]
    first = int(seen[0].split()[0])
    assert first >= 2 and seen == [f"{first} s ago", f"{first + 1} s ago", f"{first + 2} s ago"], seen

    push(stack, tokens["quiet"], "quiet", [{"value": 10 + i} for i in range(4)])
    # In step with the chart at once, whatever the next status frame says later: read in the
    # same moment as the chart, the age is the new points' (under 4 s), never the old ones'
    # (4 s and more: they were `first + 2` s old above). It says "just now" unless the push
    # took 2 s or more to be drawn.
    drawn, count, age = wait_in_page(
        page,
        f"({DRAWN_Y})().length === 7 && [7, {points_cell}.textContent, {cell}.textContent]",
        what="the four new points drawn",
    )
    assert (drawn, count) == (7, "7")
    assert age in ("just now", "2 s ago", "3 s ago"), age


def test_on_a_phone_the_mode_bar_does_not_cover_the_legend(embedded, browser):
    stack, tokens = embedded
    # Four series with long names: on a phone the legend takes the whole width of the chart.
    names = ["temperature inside", "temperature outside", "relative humidity", "air pressure"]
    now = time.time()
    points = [
        {"t": now - 5 + i * 0.5, "values": {name: i + k for k, name in enumerate(names)}} for i in range(10)
    ]
    push(stack, tokens["pushed"], "pushed", points)
    phone = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
    page = signed_in_page(browser, stack, "/streams/pushed/", **phone)
    page.wait_for_function(f"{CHART}.data.filter((trace) => trace.x.length === 10).length === 4")
    legend = page.locator("#chart .legend").bounding_box()
    assert legend is not None and legend["width"] > 100
    # A tap on the chart is what shows a mode bar on a touch screen.
    page.tap("#chart .nsewdrag", position={"x": 50, "y": 50})
    bar = page.locator("#chart .modebar").bounding_box()
    page.screenshot(path=str(artifact("phone_legend.png")))
    if bar is not None:
        overlap_x = min(bar["x"] + bar["width"], legend["x"] + legend["width"]) - max(bar["x"], legend["x"])
        overlap_y = min(bar["y"] + bar["height"], legend["y"] + legend["height"]) - max(bar["y"], legend["y"])
        assert overlap_x <= 0 or overlap_y <= 0, (bar, legend)


def test_an_area_of_prices_keeps_its_shape_and_its_numbers_one_format(embedded, browser):
    stack, tokens = embedded
    now = time.time()
    prices = [12_345 + 2 * math.sin(i / 5) for i in range(60)]
    points = [{"t": now - 6 + i * 0.1, "value": price} for i, price in enumerate(prices)]
    push(stack, tokens["price"], "price", points)
    page = signed_in_page(browser, stack, "/streams/price/")
    page.wait_for_function(f"({DRAWN_Y})().length === 60", timeout=15_000)
    # The value axis holds the prices (not 0 to 12,347 with the line flat along the top).
    low, high = page.evaluate(f"{CHART}.layout.yaxis.range")
    assert min(prices) - 1 < low < min(prices) and max(prices) < high < max(prices) + 1
    # Ticks and hover: thousands separated, the stream's 2 decimals.
    ticks = page.locator("#chart .ytick text").all_text_contents()
    assert ticks and all(re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{2}", tick) for tick in ticks), ticks
    assert page.evaluate(f"{CHART}.layout.yaxis.hoverformat") == ",.2f"
    # No time label is cut at the right edge of the chart.
    chart = page.locator("#chart").bounding_box()
    for label in page.locator("#chart .xtick text").all():
        box = label.bounding_box()
        assert box["x"] + box["width"] <= chart["x"] + chart["width"], label.text_content()
    page.screenshot(path=str(artifact("price_area.png")))


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
