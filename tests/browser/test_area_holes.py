"""An area chart with a hole in its data (a server restart, a feed that was down), in a real
Chromium against a real `serve`: the fill stops at both sides of the hole as the line does, on
the stream page (filled towards zero, and to the next series), in its range view and in a
dashboard panel, and in the PNG their mode bar downloads; the value axis still holds the values,
not the fill's base; and a dashboard panel's window still holds its whole count of points beside
the break.

Asked of the screenshot's pixels, not of the SVG: Plotly's fill path does span the hole
(plotly.js #5918, #7448), what the viewer sees must not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.browser.pages import signed_in_page
from tests.browser.pixels import decode_png
from tests.browser.test_chart_truth import PRICE, RANGE_DRAWN, push, wait_stored
from tests.processes import Stack, embedded_stack, seed_streams

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
# PRICE is the chart-truth tests' area stream (a pushed series "v", a window of 1,000 points).
BANDS = {**PRICE, "slug": "bands", "title": "Bands", "feed_settings": {"series": "low"}, "area_fill": "next"}
# A line of a small window (30 points), to see a panel keep its whole window after a hole.
SMALL = {**PRICE, "slug": "small", "title": "Small", "chart_type": "line", "window_points": 30}
BOARD = {
    "dashboards": [
        {
            "slug": "board",
            "title": "Board",
            "visibility": "signed_in",
            "panels": [
                {"title": "Price area", "type": "area", "streams": ["price"], "width": 12},
                {"title": "Small line", "type": "line", "streams": ["small"], "width": 12},
            ],
        }
    ]
}
# Ten minutes ago, 20 points half a second apart; nothing for five minutes (the server was down);
# 20 more. Stored, so a 15 minute range view shows the same, the hole a third of its width.
BEFORE_S, HOLE_S, STEP_S, COUNT = 600, 290, 0.5, 20


@pytest.fixture
def embedded(tmp_path) -> Iterator[tuple[Stack, dict[str, str]]]:
    """One `serve` on SQLite: the area streams "price" and "bands", the line "small", and a
    dashboard of "price" and "small"."""
    with embedded_stack(tmp_path) as stack:
        tokens = seed_streams(stack, [PRICE, BANDS, SMALL])
        board = tmp_path / "board.yaml"
        board.write_text(yaml.safe_dump(BOARD), encoding="utf-8")
        provisioned = stack.manage("provision", str(board))
        assert provisioned.returncode == 0, provisioned.stderr
        stack.start_serve()
        yield stack, tokens


def times(now: float) -> tuple[list[float], list[float]]:
    start = now - BEFORE_S
    before = [start + i * STEP_S for i in range(COUNT)]
    after = [before[-1] + HOLE_S + i * STEP_S for i in range(COUNT)]
    return before, after


def strip(page, element_id: str, *, x_of: str, above: float) -> dict:
    """Where to look: the plot's column at the x `x_of` (a JS expression on the chart's first
    trace, `xs`), from just above the plot's bottom up to just below the value `above`."""
    return page.evaluate(
        f"""() => {{
            const element = document.getElementById('{element_id}');
            const box = element.getBoundingClientRect();
            const size = element._fullLayout._size;
            const xs = Array.from(element.data[0].x).filter((x, i) => element.data[0].y[i] !== null);
            const x = box.left + size.l + element._fullLayout.xaxis.c2p({x_of});
            const top = box.top + size.t + element._fullLayout.yaxis.c2p({above}) + 4;
            const bottom = box.top + size.t + size.h - 2;
            return {{x: Math.round(x), y: Math.ceil(top), width: 1, height: Math.floor(bottom - top)}};
        }}"""
    )


def filled_share(page, clip: dict) -> float:
    """The share of the column's pixels a fill colours (Plotly's fill is the trace colour at half
    opacity: on the white plot one of its channels stays under 200; white and the grid lines,
    #EBF0F8, are lighter in all three)."""
    assert clip["height"] > 20, clip
    pixels = [row[0] for row in decode_png(page.screenshot(clip=clip))]
    return sum(1 for pixel in pixels if min(pixel) < 215) / len(pixels)


# The middle of the hole, and the middle of the points before it (x: the first trace's points).
HOLE_X = f"(xs[{COUNT - 1}] + xs[{COUNT}]) / 2"
DATA_X = f"xs[{COUNT // 2}]"


def holds(lowest: float, highest: float, *, low: float, high: float) -> bool:
    """Whether an axis from `low` to `high` shows the values with no more than 10 % room."""
    room = 0.1 * (highest - lowest)
    return lowest - room < low < lowest and highest < high < highest + room


def assert_fill_stops_at_the_hole(page, element_id: str, *, lowest: float) -> None:
    inside = filled_share(page, strip(page, element_id, x_of=DATA_X, above=lowest))
    across = filled_share(page, strip(page, element_id, x_of=HOLE_X, above=lowest))
    assert inside > 0.9, f"the points before the hole are filled: {inside:.2f}"
    assert across == 0, f"the hole is filled ({across:.2f} of the column): the fill spans it"


def test_an_area_does_not_fill_a_hole_live_in_its_png_or_in_a_range_view(embedded, browser):
    stack, tokens = embedded
    page = signed_in_page(browser, stack, "/streams/price/")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    before, after = times(time.time())
    # The first point lowest: the axis reaches down to it, the column under the others is tall.
    values = [12_300] + [12_345 + (i % 5) for i in range(1, 2 * COUNT)]
    points = [{"t": t, "value": v} for t, v in zip(before + after, values, strict=True)]
    push(stack, tokens["price"], "price", points)
    page.wait_for_function(
        f"document.getElementById('chart').data[0].y.filter((y) => y !== null).length === {2 * COUNT}",
        timeout=15_000,
    )
    page.wait_for_function("window.livecharts.gapBreaks === 1", timeout=15_000)
    page.mouse.move(1, 1)  # no hover label over the plot
    page.screenshot(path=str(artifact("area_hole_live.png")))
    assert_fill_stops_at_the_hole(page, "chart", lowest=min(values[1:]))
    # The value axis holds the prices, with 5 % room (the fill's base, zero, is far below it).
    low, high = page.evaluate("document.getElementById('chart').layout.yaxis.range")
    assert holds(min(values), max(values), low=low, high=high), (low, high)
    # The mode bar's "Download plot as a PNG": Plotly's own button drew a hidden copy of the
    # chart, which the clips never reached.
    picture = downloaded_png(page, "chart", filename="price.png")
    assert picture_filled(page, "chart", picture, x_of=DATA_X, above=min(values[1:])) > 0.9
    assert picture_filled(page, "chart", picture, x_of=HOLE_X, above=min(values[1:])) == 0

    # The same points as stored history, in a range view.
    wait_stored(stack, "price", 2 * COUNT)
    page.click("[data-range='15m']")
    page.wait_for_function(RANGE_DRAWN, timeout=15_000)
    page.screenshot(path=str(artifact("area_hole_range.png")))
    assert_fill_stops_at_the_hole(page, "chart", lowest=min(values[1:]))
    assert errors == []


def downloaded_png(page, element_id: str, *, filename: str) -> list[list[tuple[int, int, int]]]:
    """The picture the chart's mode bar button "Download plot as a PNG" saves, as pixel rows."""
    page.hover(f"#{element_id}")
    with page.expect_download(timeout=15_000) as download:
        page.click(f'#{element_id} .modebar-btn[data-title="Download plot as a PNG"]')
    assert download.value.suggested_filename == filename
    data = Path(download.value.path()).read_bytes()
    artifact(f"area_hole_download_{element_id}.png").write_bytes(data)
    return decode_png(data)


def picture_filled(page, element_id: str, picture: list, *, x_of: str, above: float) -> float:
    """filled_share of the same column as `strip`, in a picture of the chart at its own size."""
    spot = page.evaluate(
        f"""() => {{
            const element = document.getElementById('{element_id}');
            const size = element._fullLayout._size;
            const xs = Array.from(element.data[0].x).filter((x, i) => element.data[0].y[i] !== null);
            return {{
                x: Math.round(size.l + element._fullLayout.xaxis.c2p({x_of})),
                top: Math.ceil(size.t + element._fullLayout.yaxis.c2p({above}) + 4),
                bottom: Math.floor(size.t + size.h - 2),
            }};
        }}"""
    )
    assert spot["bottom"] - spot["top"] > 20, spot
    pixels = [picture[y][spot["x"]] for y in range(spot["top"], spot["bottom"])]
    return sum(1 for pixel in pixels if min(pixel) < 215) / len(pixels)


def test_an_area_to_the_next_series_does_not_fill_a_hole(embedded, browser):
    stack, tokens = embedded
    page = signed_in_page(browser, stack, "/streams/bands/")
    before, after = times(time.time())
    points = [
        {"t": t, "values": {"low": 10 + i % 3, "high": 20 + i % 3}} for i, t in enumerate(before + after)
    ]
    push(stack, tokens["bands"], "bands", points)
    page.wait_for_function(
        f"""document.getElementById('chart').data.length === 2 && document.getElementById('chart').data
            .every((trace) => trace.y.filter((y) => y !== null).length === {2 * COUNT})""",
        timeout=15_000,
    )
    page.mouse.move(1, 1)
    page.screenshot(path=str(artifact("area_hole_next.png")))
    # From the plot's bottom up to the top series: both fills (to zero, then to the next) stop.
    assert_fill_stops_at_the_hole(page, "chart", lowest=22)


def test_a_dashboard_area_panel_does_not_fill_a_hole(embedded, browser):
    stack, tokens = embedded
    before, after = times(time.time())
    values = [480] + [500 + (i % 7) for i in range(1, 2 * COUNT)]
    points = [{"t": t, "value": v} for t, v in zip(before + after, values, strict=True)]
    push(stack, tokens["price"], "price", points)
    page = signed_in_page(browser, stack, "/dashboards/board/")
    element = page.get_attribute('section.panel[aria-label="Price area"] .panel-chart', "id")
    page.wait_for_function(
        f"document.getElementById('{element}').data[0].y.filter((y) => y !== null).length === {2 * COUNT}",
        timeout=15_000,
    )
    page.mouse.move(1, 1)
    page.screenshot(path=str(artifact("area_hole_dashboard.png")))
    assert_fill_stops_at_the_hole(page, element, lowest=min(values[1:]))
    low, high = page.evaluate(f"document.getElementById('{element}').layout.yaxis.range")
    assert holds(min(values), max(values), low=low, high=high), (low, high)
    # The panel's "Download plot as a PNG" too.
    picture = downloaded_png(page, element, filename="price.png")
    assert picture_filled(page, element, picture, x_of=DATA_X, above=min(values[1:])) > 0.9
    assert picture_filled(page, element, picture, x_of=HOLE_X, above=min(values[1:])) == 0


def test_a_dashboard_panel_keeps_its_whole_window_after_a_hole(embedded, browser):
    """The null that breaks a line at a hole takes a place in the trace's arrays; it must not
    take a point's place in the window (30 points stay 30, not 29, once the next point comes)."""
    stack, tokens = embedded
    before, after = times(time.time() - 1)
    push(stack, tokens["small"], "small", [{"t": t, "value": 1} for t in before + after])
    page = signed_in_page(browser, stack, "/dashboards/board/")
    element = page.get_attribute('section.panel[aria-label="Small line"] .panel-chart', "id")
    counts = f"""() => {{
        const ys = Array.from(document.getElementById('{element}').data[0]?.y ?? []);
        return {{points: ys.filter((y) => y !== null).length, breaks: ys.filter((y) => y === null).length}};
    }}"""
    # The window: the newest 30 of the 40 points, the hole among them.
    page.wait_for_function(f"({counts})().points === 30", timeout=15_000)
    assert page.evaluate(counts) == {"points": 30, "breaks": 1}
    newest = after[-1] + STEP_S
    push(stack, tokens["small"], "small", [{"t": newest, "value": 2}])
    page.wait_for_function(f"document.getElementById('{element}').data[0].y.at(-1) === 2", timeout=15_000)
    assert page.evaluate(counts) == {"points": 30, "breaks": 1}


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
