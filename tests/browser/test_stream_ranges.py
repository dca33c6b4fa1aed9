"""Range views in a real Chromium: a preset shows stored history thinned by the server, a zoom
asks for finer points, and Live comes back whole, with no gap."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser.pages import signed_in_page
from tests.processes import Stack, embedded_stack
from tests.waits import wait_in_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(150)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
# 55 minutes of stored history at 10 points/s: 33,000 points, well over the 2,000 a range sends.
HISTORY_SECONDS = 55 * 60
HISTORY_STEP = 0.1
SEED_HISTORY = """
import math
from streams.core.points import Entry, Point
from streams.storage.store import save_batches
END = {end!r}
count = int({seconds} / {step})
entries = []
for i in range(count):
    t = END - (count - i) * {step}
    point = Point(t=t, values={{"a": 10 * math.sin(i / 600) + (i % 7), "b": 5 * math.cos(i / 900)}})
    entries.append(Entry(id=f"{{round(t * 1000)}}-0", point=point))
save_batches([("line", entries[n : n + 200]) for n in range(0, count, 200)])
"""
CHART = "document.getElementById('chart')"
# The chart's x values are local wall time written as UTC (live.js): back to UTC ms for checks.
TRACE = f"""(name) => {{
  const trace = {CHART}.data.find((each) => each.name === name);
  return Array.from(trace ? trace.x : []).map((x) => typeof x === 'number' ? x : Date.parse(x + 'Z'))
    .map((x) => x + new Date(x).getTimezoneOffset() * 60000);
}}"""
LIVE_WINDOW = """(name) => window.livecharts.liveWindow(name).x
  .map((x) => x + new Date(x).getTimezoneOffset() * 60000)"""
RANGE_DONE = "(count) => window.livecharts.range.requests >= count && !window.livecharts.range.loading"

# The stream page's viewport in these tests.
WIDE = {"width": 1400, "height": 900}


@pytest.fixture
def embedded(tmp_path) -> Iterator[Stack]:
    """One `serve` process on SQLite whose database already holds 55 minutes of stream 'line'."""
    with embedded_stack(tmp_path) as stack:
        seeded = stack.manage(
            "shell",
            "-c",
            SEED_HISTORY.format(end=time.time() - 1, seconds=HISTORY_SECONDS, step=HISTORY_STEP),
        )
        assert seeded.returncode == 0, seeded.stderr
        yield stack


def in_window(xs: list[float], start: float, end: float) -> int:
    return sum(start <= x <= end for x in xs)


def id_key(point_id: str) -> tuple[int, int]:
    ms, seq = point_id.split("-")
    return int(ms), int(seq)


def test_a_preset_shows_stored_history_a_zoom_gets_finer_points_and_live_comes_back_whole(
    embedded: Stack, browser
):
    embedded.start_serve()
    page = signed_in_page(browser, embedded, "/streams/line/", viewport=WIDE)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if "/range" in request.url else None)
    live_since = time.time() * 1000
    page.wait_for_function("(window.livecharts.lastIds.line || '') !== ''", timeout=15_000)
    page.wait_for_function(f"({TRACE})('a').filter((t) => t > {live_since}).length > 20", timeout=15_000)
    id_before = page.evaluate("window.livecharts.lastIds.line")

    # 1 h: the chart stops following the socket and shows the stored hour, thinned by the server.
    page.click("[data-range='1h']")
    page.wait_for_function(f"({RANGE_DONE})(1)", timeout=15_000)
    assert len(requests) == 1
    query = parse_qs(urlparse(requests[0]).query)
    start, end = int(query["start"][0]), int(query["end"][0])
    assert abs((end - start) - 3_600_000) <= 1
    assert abs(end - time.time() * 1000) < 30_000
    assert page.get_attribute("[data-range='1h']", "aria-pressed") == "true"
    assert page.get_attribute("[data-range='live']", "aria-pressed") == "false"
    assert page.text_content("#connection-badge") == "range"
    assert page.is_disabled("#pause-button")
    note = page.text_content("#range-note")
    assert re.fullmatch(r"[\d,]+ points · downsampled to [\d,]+ per series", note), note
    stored = int(note.split(" ")[0].replace(",", ""))
    assert stored >= HISTORY_SECONDS / HISTORY_STEP
    hour = page.evaluate(TRACE, "a")
    assert 500 < len(hour) <= 2000, len(hour)
    # The stored history is there, from its first minutes on; the live tail too (stored by serve).
    assert min(hour) < live_since - (HISTORY_SECONDS - 120) * 1000
    assert max(hour) > live_since
    # Live batches still reach the page (the subscription stays open). A listener added now runs
    # after the page's own for each message: once it has seen a live frame of the stream, and two
    # animation frames (the draws) have passed, nothing of that frame may be on the chart.
    page.evaluate(
        """() => {
          window.liveFramesSeen = 0;
          window.livecharts.socket.addEventListener("message", (event) => {
            if (event.data.includes('"op":"points"') && event.data.includes('"stream":"line"'))
              window.liveFramesSeen += 1;
          });
        }"""
    )
    wait_in_page(page, "() => window.liveFramesSeen > 0", what="a live frame during the range view")
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    assert page.evaluate(TRACE, "a") == hour, "live points were drawn into the range view"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stream_ranges.png"), full_page=True)

    # Zoom into five minutes of the stored hour (as a drag would): finer points for that window.
    zoom_start = live_since - 30 * 60_000
    zoom_end = zoom_start + 5 * 60_000
    coarse = in_window(hour, zoom_start, zoom_end)
    page.evaluate(
        f"""([start, end]) => Plotly.relayout({CHART}, {{
          'xaxis.range': [start, end].map((t) => t - new Date(t).getTimezoneOffset() * 60000)}})""",
        [zoom_start, zoom_end],
    )
    page.wait_for_function(f"({RANGE_DONE})(2)", timeout=15_000)
    assert len(requests) == 2
    query = parse_qs(urlparse(requests[1]).query)
    assert abs(int(query["start"][0]) - zoom_start) <= 1000
    assert abs(int(query["end"][0]) - zoom_end) <= 1000
    fine = in_window(page.evaluate(TRACE, "a"), zoom_start, zoom_end)
    assert fine > 4 * coarse, (coarse, fine)
    page.screenshot(path=str(ARTIFACTS / "stream_ranges_zoomed.png"), full_page=True)

    # A double click (autorange) is back to the hour already loaded: no request.
    page.evaluate(f"() => Plotly.relayout({CHART}, {{'xaxis.autorange': true}})")
    page.wait_for_function(f"window.livecharts.range.start === {start}", timeout=15_000)
    assert page.evaluate(TRACE, "a") == hour
    # No request for it: the next request is a later zoom's (a marker), and nothing came before it.
    marker_start = zoom_start + 10 * 60_000
    page.evaluate(
        f"""([start, end]) => Plotly.relayout({CHART}, {{
          'xaxis.range': [start, end].map((t) => t - new Date(t).getTimezoneOffset() * 60000)}})""",
        [marker_start, marker_start + 5 * 60_000],
    )
    page.wait_for_function(f"({RANGE_DONE})(3)", timeout=15_000)
    assert len(requests) == 3
    assert abs(int(parse_qs(urlparse(requests[2]).query)["start"][0]) - marker_start) <= 1000

    # Live: the whole live window again, then new points; ids go on from where they were.
    page.click("[data-range='live']")
    page.wait_for_function("window.livecharts.range.view === 'live'", timeout=15_000)
    assert page.text_content("#connection-badge") == "live"
    assert page.is_enabled("#pause-button")
    assert page.is_hidden("#range-note")
    back_at = time.time() * 1000
    page.wait_for_function(f"({TRACE})('a').some((t) => t > {back_at + 1000})", timeout=15_000)
    id_after = page.evaluate("window.livecharts.lastIds.line")
    assert id_key(id_after) > id_key(id_before)
    # No gap: every 50 ms step since the page opened is there once, across the range view (in
    # the live window the chart holds: its trace draws a thinned copy of a window this long).
    live = [t for t in page.evaluate(LIVE_WINDOW, "a") if t > live_since]
    assert live[0] < live_since + 1000 and live[-1] > back_at + 1000
    steps = {round(b - a) for a, b in itertools.pairwise(live)}
    assert steps == {50}, f"gaps or duplicates in the live trace: {sorted(steps)[:10]}"
    assert errors == []


def test_a_custom_range_is_checked_then_shown(embedded: Stack, browser):
    embedded.start_serve()
    page = signed_in_page(browser, embedded, "/streams/line/", viewport=WIDE)
    page.click("[data-range='custom']")
    assert page.is_visible("#custom-range")
    assert page.get_attribute("[data-range='custom']", "aria-expanded") == "true"

    page.fill("#custom-range input[name=start]", "2030-01-01T10:00")
    page.fill("#custom-range input[name=end]", "2030-01-01T09:00")
    page.click("#custom-range button[type=submit]")
    assert "before the end" in page.text_content("#custom-range-error")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stream_ranges_custom.png"))
    assert page.evaluate("window.livecharts.range.requests") == 0

    # Ten minutes of the stored history, typed as local time.
    start, end = page.evaluate(
        """() => {
          const text = (t) => { const d = new Date(t - d0(t)); return d.toISOString().slice(0, 16); };
          const d0 = (t) => new Date(t).getTimezoneOffset() * 60000;
          const end = Math.floor(Date.now() / 60000) * 60000 - 20 * 60000;
          return [text(end - 10 * 60000), text(end)];
        }"""
    )
    page.fill("#custom-range input[name=start]", start)
    page.fill("#custom-range input[name=end]", end)
    page.click("#custom-range button[type=submit]")
    page.wait_for_function(f"({RANGE_DONE})(1)", timeout=15_000)
    assert page.is_hidden("#custom-range")
    assert page.get_attribute("[data-range='custom']", "aria-pressed") == "true"
    assert page.evaluate("window.livecharts.range.end - window.livecharts.range.start") == 600_000
    # 10 minutes at 10 points/s: 6,000 stored, thinned to the 2,000 a chart asks for.
    note = page.text_content("#range-note")
    assert re.fullmatch(r"6,0\d\d points · downsampled to [\d,]+ per series", note), note


def test_zooming_out_of_the_live_window_shows_stored_points_and_a_double_click_is_live_again(
    embedded: Stack, browser
):
    embedded.start_serve()
    page = signed_in_page(browser, embedded, "/streams/line/", viewport=WIDE)
    page.wait_for_function(f"({TRACE})('a').length > 20", timeout=15_000)
    # The live window holds the last 5,000 points (about 8 minutes here): ask for 20 to 10 minutes ago.
    end = time.time() * 1000 - 10 * 60_000
    page.evaluate(
        f"""([start, end]) => Plotly.relayout({CHART}, {{
          'xaxis.range': [start, end].map((t) => t - new Date(t).getTimezoneOffset() * 60000)}})""",
        [end - 10 * 60_000, end],
    )
    page.wait_for_function(f"({RANGE_DONE})(1)", timeout=15_000)
    assert page.text_content("#connection-badge") == "range"
    assert page.evaluate("window.livecharts.range.view") == "range"
    assert page.locator("#range-picker [aria-pressed='true']").count() == 0, "no preset was chosen"
    xs = page.evaluate(TRACE, "a")
    assert len(xs) > 2000 * 0.5 and min(xs) >= end - 10 * 60_000 - 1000 and max(xs) <= end + 1000

    page.evaluate(f"() => Plotly.relayout({CHART}, {{'xaxis.autorange': true}})")
    page.wait_for_function("window.livecharts.range.view === 'live'", timeout=5000)
    assert page.get_attribute("[data-range='live']", "aria-pressed") == "true"
    back_at = time.time() * 1000
    page.wait_for_function(f"({TRACE})('a').some((t) => t > {back_at + 500})", timeout=15_000)
    assert page.evaluate("window.livecharts.range.requests") == 1


def test_a_viewer_signed_out_in_another_tab_is_told_so(embedded: Stack, browser):
    embedded.start_serve()
    page = signed_in_page(browser, embedded, "/streams/line/", viewport=WIDE)
    other = page.context.new_page()
    other.goto(f"{embedded.base_url}/streams/line/")
    other.click("form.inline button[type=submit]")  # the header's Sign out
    other.wait_for_load_state()

    page.click("[data-range='24h']")
    page.wait_for_function(f"({RANGE_DONE})(1)", timeout=15_000)
    page.wait_for_function("document.getElementById('banner').textContent.includes('signed out')")
    assert page.is_visible("#banner")
    assert page.text_content("#range-note") == "could not load this range"
