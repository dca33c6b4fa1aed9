"""What a Grafana user expects, in a real Chromium against a real `serve`: a dashboard time-range
picker that changes every panel and the address, a shared address that opens at its range (the
dashboard and the stream page), live sparklines on the stream list; and screenshots of the three
pages at desktop and phone sizes (test-artifacts/)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from tests.browser.pages import signed_in_page
from tests.processes import Stack, embedded_stack, seed_streams

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
# 20 minutes of stored history of "line" (series a and b, about the simulated feed's size), one
# point a second.
HISTORY_SECONDS = 20 * 60
SEED_HISTORY = """
import math
from streams.core.points import Entry, Point
from streams.storage.store import save_batches
END = {end!r}
entries = []
for i in range({seconds}):
    t = END - ({seconds} - i)
    point = Point(t=t, values={{"a": math.sin(i / 60), "b": 0.5 * math.cos(i / 90)}})
    entries.append(Entry(id=f"{{round(t * 1000)}}-0", point=point))
save_batches([("line", entries[n : n + 200]) for n in range(0, len(entries), 200)])
"""
QUIET = {
    "slug": "quiet",
    "title": "Quiet",
    "visibility": "signed_in",
    "feed_kind": "push",
    "feed_settings": {"series": "v"},
    "window_points": 1000,
}
BOARD = {
    "dashboards": [
        {
            "slug": "board",
            "title": "Board",
            "visibility": "signed_in",
            "panels": [
                {"title": "Line over time", "type": "line", "streams": ["line"], "width": 8},
                {"title": "Line a now", "type": "gauge", "streams": ["line"], "series": "a", "width": 4},
                {
                    "title": "Line a candles",
                    "type": "candlestick",
                    "streams": ["line"],
                    "series": "a",
                    "candle_seconds": 5,
                    "width": 6,
                },
                {"title": "Line area", "type": "area", "streams": ["line"], "width": 6},
                {"title": "Nothing yet", "type": "line", "streams": ["quiet"], "width": 12},
            ],
        }
    ]
}
# A Plotly date value (a number, or "2025-11-22 08:00:00.5" with no zone) as ms.
AS_MS = "(x) => typeof x === 'number' ? x : Date.parse(x.replace(' ', 'T') + 'Z')"
PANELS = "Object.values(window.livecharts.panels)"
RANGE_SHOWN = "window.livecharts.range.view === 'range' && !window.livecharts.range.loading"


@pytest.fixture
def embedded(tmp_path) -> Iterator[Stack]:
    """One `serve` on SQLite: "line" with 20 minutes of stored history, "quiet" (no points),
    and the dashboard "board" of both."""
    with embedded_stack(tmp_path) as stack:
        seed_streams(stack, [{**QUIET, "viewers": []}])
        seeded = stack.manage(
            "shell", "-c", SEED_HISTORY.format(end=time.time() - 1, seconds=HISTORY_SECONDS)
        )
        assert seeded.returncode == 0, seeded.stderr
        board = tmp_path / "board.yaml"
        board.write_text(yaml.safe_dump(BOARD), encoding="utf-8")
        provisioned = stack.manage("provision", str(board))
        assert provisioned.returncode == 0, provisioned.stderr
        stack.start_serve()
        yield stack


def query(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def panel_span(page, title: str) -> float:
    """Minutes between the first and last x of a panel's first trace."""
    element = f"document.querySelector('section.panel[aria-label=\"{title}\"] .panel-chart')"
    return page.evaluate(
        f"""() => {{
          const xs = Array.from({element}.data[0].x).map({AS_MS});
          return xs.length ? (Math.max(...xs) - Math.min(...xs)) / 60000 : 0;
        }}"""
    )


def axis_span(page, title: str) -> float | None:
    """Minutes the panel's x axis is fixed to; None while it autoranges (live)."""
    element = f"document.querySelector('section.panel[aria-label=\"{title}\"] .panel-chart')"
    return page.evaluate(
        f"""() => {{
          const axis = {element}.layout.xaxis;
          if (axis.autorange !== false) return null;
          const [low, high] = axis.range.map({AS_MS});
          return (high - low) / 60000;
        }}"""
    )


def test_the_range_picker_changes_every_panel_and_the_address(embedded: Stack, browser):
    page = signed_in_page(browser, embedded, "/dashboards/board/")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.wait_for_function(f"{PANELS}.filter((panel) => panel.points > 20).length === 4", timeout=15_000)
    # The panel of a stream with no point yet says so, not Plotly's default axes.
    quiet = page.locator('section.panel[aria-label="Nothing yet"]')
    assert quiet.get_attribute("data-empty") == "true"
    assert quiet.locator(".chart-empty-title").text_content() == "Waiting for the first point"
    assert axis_span(page, "Line over time") is None  # live: the axis follows the points

    page.click("[data-range='1h']")
    page.wait_for_function(RANGE_SHOWN, timeout=15_000)
    assert query(page) == {"range": ["1h"]}
    assert page.get_attribute("[data-range='1h']", "aria-pressed") == "true"
    assert page.text_content("#connection-badge") == "range"
    # Every panel shows the stored hour: the 20 minutes of history and what serve stored since.
    page.wait_for_function(f"{PANELS}.every((panel) => panel.rangePoints !== undefined)", timeout=15_000)
    by_title = {
        page.get_attribute(f'section.panel[data-panel="{panel_id}"]', "aria-label"): hook
        for panel_id, hook in page.evaluate("window.livecharts.panels").items()
    }
    for title in ("Line over time", "Line a candles", "Line area", "Line a now"):
        assert by_title[title]["rangePoints"] > 0, (title, by_title[title])
    assert by_title["Nothing yet"]["rangePoints"] == 0
    assert quiet.locator(".chart-empty-title").text_content() == "No stored points in this range"
    assert panel_span(page, "Line over time") > 19
    assert panel_span(page, "Line area") > 19
    for title in ("Line over time", "Line area", "Line a candles"):
        assert 59.9 < axis_span(page, title) < 60.1, title
    # An hour of 5 s candles is 720, over the panel's 500: 10 s candles, one for each 10 s of history.
    assert 120 <= by_title["Line a candles"]["candles"] <= 130

    # Live again: the address loses its range, every panel follows the socket again.
    page.click("[data-range='live']")
    page.wait_for_function("window.livecharts.range.view === 'live'", timeout=15_000)
    assert query(page) == {}
    before = page.evaluate(f"{PANELS}.map((panel) => panel.points)")
    page.wait_for_function(
        f"{PANELS}.every((panel, i) => panel.chartType === 'line' && panel.streams[0] === 'quiet'"
        f" || panel.points > {before}[i] + 20)",
        timeout=15_000,
    )
    assert axis_span(page, "Line over time") is None
    # Back in the browser's history: the hour again.
    page.go_back()
    page.wait_for_function(RANGE_SHOWN + " && window.livecharts.range.chosen === '1h'", timeout=15_000)
    assert errors == []


def test_a_shared_address_opens_the_dashboard_and_the_stream_page_at_its_range(embedded: Stack, browser):
    start = int((time.time() - 15 * 60) * 1000)
    end = int((time.time() - 5 * 60) * 1000)
    page = signed_in_page(browser, embedded, f"/dashboards/board/?start={start}&end={end}")
    page.wait_for_function(RANGE_SHOWN + " && window.livecharts.range.start !== null", timeout=15_000)
    assert page.evaluate("[window.livecharts.range.start, window.livecharts.range.end]") == [start, end]
    assert page.get_attribute("[data-range='custom']", "aria-pressed") == "true"
    assert 9.5 < panel_span(page, "Line over time") <= 10

    stream = signed_in_page(browser, embedded, "/streams/line/?range=15m")
    stream.wait_for_function(RANGE_SHOWN + " && window.livecharts.range.chosen === '15m'", timeout=15_000)
    assert stream.get_attribute("[data-range='15m']", "aria-pressed") == "true"
    stream.click("[data-range='24h']")
    stream.wait_for_function("window.livecharts.range.chosen === '24h'", timeout=15_000)
    assert query(stream) == {"range": ["24h"]}
    stream.click("[data-range='live']")
    stream.wait_for_function("window.livecharts.range.view === 'live'", timeout=15_000)
    assert query(stream) == {}
    # A range the address cannot mean is Live, with a word why.
    bad = signed_in_page(browser, embedded, "/streams/line/?range=2y")
    bad.wait_for_selector("#banner:not([hidden])", timeout=15_000)
    assert "no range" in bad.text_content("#banner")
    assert bad.evaluate("window.livecharts.range.view") == "live"


def test_the_stream_list_cards_have_sparklines_that_move(embedded: Stack, browser):
    page = signed_in_page(browser, embedded, "/")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.wait_for_function("(window.livecharts.sparks.line?.draws ?? 0) > 2", timeout=15_000)
    first = page.evaluate("window.livecharts.sparks.line.path")
    assert first.startswith("M")
    page.wait_for_function(f"window.livecharts.sparks.line.path !== {first!r}", timeout=10_000)
    card = page.locator('[data-card="line"]')
    assert card.get_attribute("data-spark") == "drawn"
    assert card.locator(".spark path").get_attribute("d") != first
    value = card.locator("[data-spark-value]").text_content()
    assert value and value != "—"
    # The card's health line follows the stream too.
    age = 'document.querySelector(\'[data-card="line"] [data-health="last_point"]\').textContent'
    page.wait_for_function(f"{age} === 'just now'", timeout=10_000)
    # A stream with no points yet has a flat placeholder, not an invented line.
    assert page.locator('[data-card="quiet"]').get_attribute("data-spark") == "empty"
    assert errors == []


@pytest.mark.parametrize(("size", "viewport"), [("desktop", (1280, 800)), ("phone", (390, 844))])
def test_screenshots_of_the_three_pages(embedded: Stack, browser, size: str, viewport: tuple[int, int]):
    width, height = viewport
    context = {"viewport": {"width": width, "height": height}}
    if size == "phone":
        context.update(has_touch=True, is_mobile=True, device_scale_factor=2)
    ARTIFACTS.mkdir(exist_ok=True)
    page = signed_in_page(browser, embedded, "/", **context)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.wait_for_function("(window.livecharts.sparks.line?.draws ?? 0) > 2", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / f"list_{size}.png"), full_page=True)
    page.goto(f"{embedded.base_url}/streams/line/")
    page.wait_for_function("document.getElementById('chart').data[0].x.length > 50", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / f"stream_{size}.png"), full_page=True)
    page.goto(f"{embedded.base_url}/dashboards/board/")
    page.wait_for_function(f"{PANELS}.filter((panel) => panel.draws > 2).length >= 3", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{size}.png"), full_page=True)
    page.click("[data-range='1h']")
    page.wait_for_function(RANGE_SHOWN + " && window.livecharts.range.start !== null", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / f"dashboard_1h_{size}.png"), full_page=True)
    assert errors == []
