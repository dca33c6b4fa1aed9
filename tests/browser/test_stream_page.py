"""A real viewer in Chromium: sign in, watch the chart move, survive a server restart."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.pages import sign_in
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack, embedded_stack, seed_streams
from tests.waits import wait_in_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(150)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
TRACE_POINTS = "() => document.getElementById('chart').data.reduce((n, trace) => n + trace.x.length, 0)"
TRACE_X = "() => Array.from(document.getElementById('chart').data[0].x)"


def test_viewer_sees_the_chart_grow_and_continue_after_a_server_restart(stack: Stack, browser):
    stack.start_ingest()
    stack.start_daphne()
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, stack, "/streams/line/", username="alice")

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


# Each drawn line of the chart while its last draw was light: its points, where its last point is
# drawn (slide included) and where the axes put the newest x; null after a full draw.
LIGHT_LINES = r"""(() => {
    if (window.livecharts.lastDraw !== "light") return null;
    const element = document.getElementById('chart');
    const xaxis = element._fullLayout.xaxis;
    const slide = Number(/translate\((-?[\d.]+)/.exec(
        element.querySelector('.scatterlayer').getAttribute('transform') ?? 'translate(0')[1]);
    return [...element.querySelectorAll('.scatterlayer .trace')].map((group) => {
        const trace = element.data[group.__data__[0].trace.index];
        const points = group.querySelector('path.js-line').getAttribute('d').match(/[ML][^ML]+/g);
        const last = Number(points.at(-1).slice(1).split(',')[0]);
        return {values: trace.y.filter((y) => y !== null).length, points: points.length,
                held: window.livecharts.liveWindow(trace.name).x.length,
                last: last + slide, newest: xaxis.c2p(trace.x.at(-1)) + slide,
                width: element._fullLayout._size.w, slide,
                rendering: group.querySelector('path.js-line').getAttribute('shape-rendering')};
    });
})()"""
# Once the plot slid an x label or grid line out of the plot (left of its left edge): whether each
# of them is hidden, as [x on screen, plot's left, hidden]; null until one slid out.
SLID_OUT_TICKS = r"""(() => {
    const element = document.getElementById('chart');
    const layer = element.querySelector('.xaxislayer-above');
    const slide = -Number(/translate\((-?[\d.]+)/.exec(layer.getAttribute('transform') ?? '')?.[1] ?? 0);
    const left = element._fullLayout._size.l;
    const at = (node) => Number(/translate\((-?[\d.]+)/.exec(node.getAttribute('transform') ?? '')?.[1]);
    const ticks = [...element.querySelectorAll('.xaxislayer-above .xtick')]
        .map((tick) => [at(tick.firstElementChild), tick.getAttribute('visibility') === 'hidden'])
        .concat([...element.querySelectorAll('.gridlayer > .x > path')]
            .map((line) => [at(line), line.getAttribute('visibility') === 'hidden']));
    const out = ticks.filter(([x]) => x - slide < left - 0.5).map(([x, hidden]) => [x - slide, left, hidden]);
    return out.length > 0 ? out : null;
})()"""
QUICK = {
    "slug": "quick",
    "title": "Quick",
    "visibility": "public",
    "feed_kind": "simulate",
    "feed_settings": {"rate": 20, "series": ["a", "b"]},
    "window_points": 100,
}


@pytest.fixture
def embedded(tmp_path) -> Iterator[Stack]:
    """One `serve` on SQLite running a public stream of 20 points/s whose window (100 points) is
    full within 5 s: from then on its plot slides between layouts of the x axis."""
    with embedded_stack(tmp_path) as stack:
        seed_streams(stack, [QUICK])
        stack.start_serve()
        yield stack


def test_the_chart_moves_by_light_draws_of_every_point_and_keeps_a_zoom(embedded: Stack, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{embedded.base_url}/streams/quick/")
    page.mouse.move(1, 1)  # under the pointer the chart draws fully (hover knows every point)

    # Most draws are light (streams/static/streams/lightdraw.js): the lines are drawn by us from
    # the points the traces hold (every point of the window at this rate), newest at the right.
    wait_in_page(page, f"window.livecharts.lightDrawn > 5 && ({TRACE_POINTS})() >= 200", what="light draws")
    lines = None
    while lines is None or lines[0]["slide"] == 0:  # a full draw or a layout came: wait for a slide
        wait_in_page(page, f"{LIGHT_LINES} !== null", what="a light draw to look at")
        lines = page.evaluate(LIGHT_LINES)
    assert len(lines) == 2
    for line in lines:
        assert line["points"] == line["values"] == line["held"] == 100
        assert abs(line["last"] - line["newest"]) < 0.05
        assert line["rendering"] is None  # 100 points across the plot: a sparse line, anti-aliased
    assert min(abs(line["last"] - line["width"]) for line in lines) < 1.5
    # A label or grid line slid out of the plot is hidden, not left among the value axis' labels.
    out = wait_in_page(page, SLID_OUT_TICKS, what="an x label slid out of the plot")
    assert all(hidden for _, _, hidden in out), out
    # The light draws' own layouts of the axes are not a viewer's zoom: still live, nothing fetched.
    wait_in_page(page, "window.livecharts.axisDraws > 0", what="a light draw that laid the axes out")
    assert page.evaluate("[window.livecharts.range.view, window.livecharts.range.requests]") == ["live", 0]

    # The viewer zooms (as a drag-zoom does): no slide, full draws that keep the viewer's range;
    # a double click (autorange) and the chart draws light again.
    chart = "document.getElementById('chart')"
    page.evaluate(
        f"""() => {{
            const xs = {chart}.data[0].x;
            return Plotly.relayout({chart}, {{'xaxis.range[0]': xs[0], 'xaxis.range[1]': xs[10]}});
        }}"""
    )
    assert page.evaluate(f"{chart}.querySelector('.scatterlayer').getAttribute('transform')") is None
    full_draws = "window.livecharts.draws - window.livecharts.lightDrawn"
    full = page.evaluate(full_draws)
    wait_in_page(page, f"{full_draws} > {full + 3}", what="full draws, zoomed")
    assert page.evaluate(f"[{chart}.layout.xaxis.autorange, {chart}.layout.xaxis.range.length]") == [False, 2]
    light = page.evaluate("window.livecharts.lightDrawn")
    page.evaluate(f"() => Plotly.relayout({chart}, {{'xaxis.autorange': true}})")
    wait_in_page(page, f"window.livecharts.lightDrawn > {light + 3}", what="light draws again after the zoom")
    assert page.evaluate("window.livecharts.range.view") == "live"

    # In a narrow window the same 100 points are denser than the plot's pixel columns: the
    # light draws rasterise the lines without anti-aliasing (lightdraw.js lineRendering).
    page.set_viewport_size({"width": 200, "height": 800})
    dense = f"""(() => {{
        const lines = {LIGHT_LINES};
        return lines !== null
            && lines.every((line) => line.width <= 100 && line.rendering === 'optimizeSpeed');
    }})()"""
    wait_in_page(page, dense, what="light draws of dense lines without anti-aliasing")
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
