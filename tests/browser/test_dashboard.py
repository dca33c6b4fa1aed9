"""A dashboard in Chromium: bob sees the panels of streams he may see, moving over one socket;
the panel with a stream he may not see is not on the page and its stream is never subscribed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.browser.pages import sign_in
from tests.processes import Stack
from tests.waits import wait_in_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

# A signed-in stream of two simulated series (tests/browser/test_csp.py charts it too).
TEMPS = {
    "slug": "temps",
    "title": "Temperatures",
    "visibility": "signed_in",
    "feed": {"kind": "simulate", "rate": 20, "series": ["a", "b"]},
    "chart": {"window_points": 2000},
}
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"

# The seeded stack has "line" (E2E line), restricted to alice; bob may see the signed-in streams.
BOARD = {
    "streams": [
        TEMPS,
        {
            "slug": "market",
            "title": "Market",
            "visibility": "signed_in",
            "feed": {
                "kind": "simulate",
                "rate": 20,
                "shape": "walk",
                "series": [{"name": "price", "offset": 100}],
            },
            "chart": {"window_points": 2000},
        },
    ],
    "dashboards": [
        {
            "slug": "board",
            "title": "Board",
            "visibility": "signed_in",
            "panels": [
                {"title": "Temps over time", "type": "line", "streams": ["temps"], "width": 8},
                {
                    "title": "Temp a now",
                    "type": "gauge",
                    "streams": ["temps"],
                    "series": "a",
                    "min": -2,
                    "max": 2,
                    "width": 4,
                },
                {
                    "title": "Price candles",
                    "type": "candlestick",
                    "streams": ["market"],
                    "candle_seconds": 1,
                    "width": 8,
                },
                # bob may see "temps" but not "line": the whole panel is left out for him.
                {"title": "Secret comparison", "type": "line", "streams": ["temps", "line"], "width": 4},
            ],
        }
    ],
}

# Recorded before any page script runs: every message the page sends on its sockets, and the
# last value of series "a" of temps that arrived.
RECORD_SOCKET = """
window.__sent = [];
window.__lastA = null;
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.__sent.push(String(data));
  return send.call(this, data);
};
const listen = WebSocket.prototype.addEventListener;
WebSocket.prototype.addEventListener = function (type, listener, ...rest) {
  if (type !== "message") return listen.call(this, type, listener, ...rest);
  const recording = (event) => {
    const frame = JSON.parse(event.data);
    for (const batch of frame.op === "points" ? frame.data : []) {
      if (batch.stream !== "temps") continue;
      for (const value of batch.y.a ?? []) if (value !== null) window.__lastA = value;
    }
    return listener.call(this, event);
  };
  return listen.call(this, type, recording, ...rest);
};
"""


def panel_id(page, title: str) -> str:
    return page.get_attribute(f'section.panel[aria-label="{title}"]', "data-panel")


def trace_points(element_id: str) -> str:
    return f"document.getElementById('{element_id}').data.reduce((n, trace) => n + trace.x.length, 0)"


def test_bob_sees_his_panels_move_over_one_socket_and_never_the_forbidden_one(
    stack: Stack, browser, tmp_path
):
    board = tmp_path / "board.yaml"
    board.write_text(yaml.safe_dump(BOARD), encoding="utf-8")
    result = stack.manage("provision", str(board))
    assert result.returncode == 0, result.stderr
    stack.start_ingest()
    stack.start_daphne()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.add_init_script(RECORD_SOCKET)
    sign_in(page, stack, "/dashboards/board/", username="bob")
    wait_in_page(page, "document.body.dataset.connection === 'live'", what="the socket to be live")

    # Three panels; the fourth is not in the page at all (not hidden: absent).
    assert page.locator("section.panel").count() == 3
    html = page.content()
    for absent in ("Secret comparison", "E2E line", 'data-stream="line"', '"slug": "line"', "/streams/line/"):
        assert absent not in html
    assert "1 panel of this dashboard shows streams you may not see" in " ".join(html.split())

    line = f"panel-chart-{panel_id(page, 'Temps over time')}"
    gauge = panel_id(page, "Temp a now")
    candles = panel_id(page, "Price candles")

    # The line chart moves.
    wait_in_page(page, f"{trace_points(line)} > 40", what="40 points on the line chart")
    before = page.evaluate(trace_points(line))
    wait_in_page(page, f"{trace_points(line)} > {before + 40}", what="40 more points on the line chart")

    # Most draws of the line panel are light (streams/static/streams/lightdraw.js): its lines are
    # drawn by us from every point of the traces (none thinned away), and slid so the newest
    # point is at the right end of the plot. Away from the panel: under the pointer it draws fully.
    page.mouse.move(1, 1)
    hook = f"window.livecharts.panels['{panel_id(page, 'Temps over time')}']"
    wait_in_page(page, f"{hook}.lightDraws > 5", what="light draws of the line panel")
    drawn = rf"""(() => {{
        if ({hook}.lastDraw !== "light") return null;
        const element = document.getElementById('{line}');
        const xaxis = element._fullLayout.xaxis;
        const slide = Number(/translate\((-?[\d.]+)/.exec(
            element.querySelector('.scatterlayer').getAttribute('transform') ?? 'translate(0')[1]);
        return [...element.querySelectorAll('.scatterlayer .trace')].map((group) => {{
            const trace = element.data[group.__data__[0].trace.index];
            const points = group.querySelector('path.js-line').getAttribute('d').match(/[ML][^ML]+/g);
            const last = Number(points.at(-1).slice(1).split(',')[0]);
            return {{values: trace.y.filter((y) => y !== null).length, points: points.length,
                     last: last + slide, newest: xaxis.c2p(trace.x.at(-1)) + slide,
                     width: element._fullLayout._size.w}};
        }});
    }})()"""
    lines = None
    while lines is None:  # a full draw may come between the wait and the look: wait again
        wait_in_page(page, f"{drawn} !== null", what="a light draw of the line panel to look at")
        lines = page.evaluate(drawn)
    assert len(lines) == 2
    for line_drawn in lines:
        assert line_drawn["points"] == line_drawn["values"] > 40
        assert abs(line_drawn["last"] - line_drawn["newest"]) < 0.05
    assert min(abs(each["last"] - each["width"]) for each in lines) < 1.5

    # The viewer zooms (Plotly.relayout as a drag-zoom does it): the panel is no longer slid, it
    # draws fully and keeps the viewer's range; a double click (autorange) and it draws light again.
    element = f"document.getElementById('{line}')"
    page.evaluate(
        f"""() => {{
            const xs = {element}.data[0].x;
            return Plotly.relayout({element}, {{'xaxis.range[0]': xs[0], 'xaxis.range[1]': xs[10]}});
        }}"""
    )
    assert page.evaluate(f"{element}.querySelector('.scatterlayer').getAttribute('transform')") is None
    full = page.evaluate(f"{hook}.draws - {hook}.lightDraws")
    wait_in_page(page, f"{hook}.draws - {hook}.lightDraws > {full + 3}", what="full draws, zoomed")
    zoomed = page.evaluate(f"[{element}.layout.xaxis.autorange, {element}.layout.xaxis.range.length]")
    assert zoomed == [False, 2]
    light = page.evaluate(f"{hook}.lightDraws")
    page.evaluate(f"() => Plotly.relayout({element}, {{'xaxis.autorange': true}})")
    wait_in_page(page, f"{hook}.lightDraws > {light + 3}", what="light draws again after the zoom")

    # The gauge moves with series "a" of temps.
    wait_in_page(page, f"window.livecharts.panels['{gauge}'].draws > 2", what="the gauge drawn 3 times")

    # Candles form: one a second, each with low <= open, close <= high, on a date axis.
    wait_in_page(page, f"window.livecharts.panels['{candles}'].candles >= 3", what="3 candles")
    trace, axis_type = page.evaluate(
        f"""() => {{
            const element = document.getElementById('panel-chart-{candles}');
            const t = element.data[0];
            return [{{x: Array.from(t.x), open: Array.from(t.open), high: Array.from(t.high),
                      low: Array.from(t.low), close: Array.from(t.close)}}, element._fullLayout.xaxis.type];
        }}"""
    )
    assert axis_type == "date"
    assert len(trace["x"]) >= 3
    assert all(b - a == 1000 for a, b in zip(trace["x"], trace["x"][1:], strict=False))
    for o, h, lo, c in zip(trace["open"], trace["high"], trace["low"], trace["close"], strict=True):
        assert lo <= min(o, c) <= max(o, c) <= h
    assert any(h > lo for h, lo in zip(trace["high"], trace["low"], strict=True))

    # One socket, one subscription per stream (temps feeds two panels), never one for "line".
    sent = [json.loads(message) for message in page.evaluate("window.__sent")]
    first = [m["stream"] for m in sent if m.get("op") == "subscribe" and m.get("after") is None]
    assert sorted(first) == ["market", "temps"]
    assert all(m.get("stream") != "line" for m in sent)
    assert page.evaluate("window.livecharts.streams") == ["temps", "market"]
    assert page.evaluate("Object.keys(window.livecharts.lastIds).sort()") == ["market", "temps"]

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # A panel scrolled well out of view is not drawn (its points are still taken), and catches up
    # when it comes back.
    page.set_viewport_size({"width": 1280, "height": 260})
    page.evaluate("window.scrollTo(0, 0)")
    hook = f"window.livecharts.panels['{candles}']"
    assert page.evaluate(
        f"document.getElementById('panel-chart-{candles}').getBoundingClientRect().top > innerHeight + 200"
    )
    # The page learns that the panel left the view from its IntersectionObserver, some frames
    # later. Ours, on the same element with the same margin, is made after the page's and so is
    # told after it (observers are notified in the order they were made): once ours says "out
    # of view", so has the page's, and no draw of the candles may follow.
    page.evaluate(
        """(id) => {
            window.__candlesInView = null;
            new IntersectionObserver((entries) => {
                for (const entry of entries) window.__candlesInView = entry.isIntersecting;
            }, {rootMargin: "200px 0px"}).observe(document.getElementById(id));
        }""",
        f"panel-chart-{candles}",
    )
    wait_in_page(page, "window.__candlesInView === false", what="the candles panel to be out of view")
    draws, points = page.evaluate(f"[{hook}.draws, {hook}.points]")
    wait_in_page(page, f"{hook}.points > {points + 20}", what="20 more points for the hidden candles")
    assert page.evaluate(f"{hook}.draws") == draws
    page.locator(f"#panel-chart-{candles}").scroll_into_view_if_needed()
    wait_in_page(page, f"{hook}.draws > {draws}", what="the candles drawn again once in view")

    # With the feeds stopped, the gauge shows the last value "a" had on the socket, as drawn text.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.evaluate("window.scrollTo(0, 0)")
    stack.stop("ingest")
    # The worker flushed its last batch before it exited: the page has it once its last id for
    # temps is the window's newest. The page draws its panels in separate frames (a busy page
    # draws a few panels a frame and then rests, dashboard.js: DrawScheduler), so the gauge, the
    # line and the socket agree only once both have drawn it: read all three in one go, then.
    final_id = stack.newest_id("temps")
    assert final_id is not None
    shown, last_line, last_a, text = wait_in_page(
        page,
        """([gauge, line, finalId]) => {
            if (window.livecharts.lastIds.temps !== finalId || window.__lastA === null) return null;
            const shown = document.getElementById(`panel-chart-${gauge}`).data[0].value;
            const trace = document.getElementById(line).data.find((t) => t.name === "a");
            const lastLine = Array.from(trace.y).at(-1);
            if (shown !== window.__lastA || lastLine !== window.__lastA) return null;
            const text = document.querySelector(`#panel-chart-${gauge} .number`).textContent;
            return [shown, lastLine, window.__lastA, text];
        }""",
        arg=[gauge, line, final_id],
        what=f"the gauge and the line to draw the last value of a (batch {final_id})",
    )
    assert shown == last_line == last_a
    assert page.evaluate(f"window.livecharts.panels['{gauge}'].value") == last_a
    # Drawn with 5 significant digits (and a typographic minus).
    assert float(text.replace("\u2212", "-").replace(",", "")) == pytest.approx(
        shown, abs=1e-4 + abs(shown) * 1e-4
    )
    assert errors == []
