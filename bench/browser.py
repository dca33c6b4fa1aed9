"""Scenario 7, the browser: how smooth a live page stays in headless Chromium.

    .venv/bin/python -m bench.browser [--quick]

Two pages, each served by its own embedded server (`manage.py serve`, a throwaway SQLite file,
simulated feeds provisioned from a file like demo/streams.yaml):

- stream: /streams/<slug>/ of one line stream fed 1,000 points/s with a 10,000-point window;
- dashboard: /dashboards/<slug>/ of 20 line panels, each on its own stream of 20 points/s.

Each page is opened in /usr/bin/chromium (headless, no GPU: software rendering) and, after
warming up, measured in consecutive windows: animation frames per second (requestAnimationFrame
callbacks counted in the page) and the renderer main thread's busy share (TaskDuration from the
DevTools Protocol's Performance.getMetrics at both ends of the window, over the wall time
between them), with script, layout and style time beside it, and chart draws per second.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.report import machine
from tests.processes import ROOT, Stack, make_stack

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

FAST_SLUG = "bench-fast"
FAST_RATE = 1000
FAST_WINDOW = 10_000
PANELS = 20
PANEL_RATE = 10
PANEL_WINDOW_SECONDS = 30
# Every panel in view (four a row, five rows of 300 px): panels out of view are not drawn.
STREAM_VIEWPORT = {"width": 1600, "height": 900}
DASHBOARD_VIEWPORT = {"width": 1600, "height": 1700}
# Target of issue 5: at least 30 frames/s, main thread at most half busy.
TARGET_FPS = 30
TARGET_BUSY = 0.5
# Target of issue 16 §5: every dashboard panel redrawn at least 5 times a second.
TARGET_PANEL_DRAWS = 5.0
# Goal of issue 16 §5 for the stream page: the display rate, 60 frames/s. Counted as a median of
# at least 57 (95 %): the count of a window is whole frames over a window's own clock, and a
# page that draws nothing (paused) counts 59.9-60.1 here, but on this shared 2-core machine
# another process's burst still costs an idle page a frame now and then. With it, the main
# thread at most half busy (as issue 5 asks).
TARGET_STREAM_FPS = 57.0
DISPLAY_FPS = 60
# The pages with every draw a full Plotly draw (window.livecharts.lightDraws = false): how they
# drew before light draws (streams/static/streams/lightdraw.js), measured in the same run.
FULL_DRAWS = "window.livecharts.lightDraws = false"
# The stream page's full-draw reference: measured on the same page after its own windows, in
# shorter windows (it only gives the "before"; the section must stay within its allowance).
STREAM_FULL_SECONDS = 3.0


def fast_stream() -> dict:
    return {
        "slug": FAST_SLUG,
        "title": "Bench: 1,000 points/s",
        "visibility": "public",
        "feed": {
            "kind": "simulate",
            "rate": FAST_RATE,
            "series": [{"name": "value", "period": 4, "amplitude": 1, "noise": 0.1}],
        },
        "chart": {"type": "line", "window_points": FAST_WINDOW},
        # The page is measured, not SQLite: 1,000 inserts/s would share the 2 cores with Chromium.
        "storage": {"store": False},
    }


def dashboard_file() -> dict:
    streams = [
        {
            "slug": f"bench-{index:02d}",
            "title": f"Bench {index:02d}",
            "visibility": "public",
            "feed": {
                "kind": "simulate",
                "rate": PANEL_RATE,
                "shape": ("sine", "walk", "noise")[index % 3],
                "series": [{"name": "value", "period": 10 + index, "amplitude": 1 + index % 4}],
            },
            "chart": {"type": "line", "window_seconds": PANEL_WINDOW_SECONDS},
            "storage": {"store": False},
        }
        for index in range(PANELS)
    ]
    panels = [
        {"title": f"Panel {index:02d}", "type": "line", "streams": [stream["slug"]], "width": 3}
        for index, stream in enumerate(streams)
    ]
    board = {"slug": "bench", "title": "Bench", "visibility": "public", "columns": 12, "panels": panels}
    return {"streams": streams, "dashboards": [board]}


# Counters the page keeps while a window is open: frames (requestAnimationFrame callbacks),
# chart draws, points taken. window.__bench.stop() returns them with the page's own elapsed time.
START_WINDOW = """() => {
  const hooks = window.livecharts;
  const draws = () => hooks.panels
    ? Object.values(hooks.panels).reduce((n, panel) => n + panel.draws, 0)
    : hooks.draws ?? 0;
  const perPanel = () => hooks.panels ? Object.values(hooks.panels).map((panel) => panel.draws) : [];
  const state = {frames: 0, worst: 0, running: true};
  const start = performance.now(), draws0 = draws(), points0 = hooks.pointsReceived, panels0 = perPanel();
  const drawMs0 = hooks.drawMs;
  let last = start;
  function tick(now) {
    if (!state.running) return;
    state.frames += 1; state.worst = Math.max(state.worst, now - last); last = now;
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
  // Points the page's charts draw now (traces' arrays, thinned or not).
  const drawn = () => Array.from(document.querySelectorAll(".js-plotly-plot"))
    .reduce((n, chart) => n + (chart.data ?? []).reduce((m, trace) => m + (trace.x?.length ?? 0), 0), 0);
  window.__bench = {stop() {
    state.running = false;
    const seconds = (performance.now() - start) / 1000;
    return {
      seconds, frames: state.frames, worstFrameMs: state.worst, drawMs: hooks.drawMs - drawMs0,
      draws: draws() - draws0, points: hooks.pointsReceived - points0,
      panelsDrawn: perPanel().filter((n, i) => n > panels0[i]).length, pointsDrawn: drawn(),
      panelDraws: perPanel().map((n, i) => n - panels0[i]),
    };
  }};
}"""
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


@dataclass
class Window:
    """One measured window of a page."""

    seconds: float
    fps: float
    busy: float  # share of wall time the renderer main thread ran tasks
    script: float
    layout: float  # layout and style recalculation
    draws_per_second: float
    points_per_second: float
    worst_frame_ms: float
    panels_drawn: int
    drawing: float  # share of wall time in Plotly calls (measured around them in the page)
    points_drawn: int  # points in the page's traces at the end of the window
    panel_draws_per_second: list[float]  # each dashboard panel's draws/s (empty for the stream page)


@dataclass
class Scenario:
    name: str
    what: str
    windows: list[Window] = field(default_factory=list)
    screenshot: Path | None = None


def metrics(cdp) -> dict[str, float]:
    values = {item["name"]: item["value"] for item in cdp.send("Performance.getMetrics")["metrics"]}
    return {name: values[name] for name in ("Timestamp", *METRICS)}


def measure_window(page, cdp, seconds: float) -> Window:
    page.evaluate(START_WINDOW)
    before = metrics(cdp)
    time.sleep(seconds)
    after = metrics(cdp)
    counts = page.evaluate("window.__bench.stop()")
    wall = after["Timestamp"] - before["Timestamp"]

    def share(name: str) -> float:
        return (after[name] - before[name]) / wall

    return Window(
        seconds=counts["seconds"],
        fps=counts["frames"] / counts["seconds"],
        busy=share("TaskDuration"),
        script=share("ScriptDuration"),
        layout=share("LayoutDuration") + share("RecalcStyleDuration"),
        draws_per_second=counts["draws"] / counts["seconds"],
        points_per_second=counts["points"] / counts["seconds"],
        worst_frame_ms=counts["worstFrameMs"],
        panels_drawn=counts["panelsDrawn"],
        drawing=counts["drawMs"] / 1000 / counts["seconds"],
        points_drawn=counts["pointsDrawn"],
        panel_draws_per_second=[n / counts["seconds"] for n in counts["panelDraws"]],
    )


@contextmanager
def served(root: Path, provisions: dict[str, dict]) -> Iterator[dict[str, Stack]]:
    """One `manage.py serve` per entry of `provisions` (name: provision file), each on its own
    copy of one migrated database; provisioned and started side by side to start sooner."""
    template = make_stack(workdir=root, redis_url=None, prefix="bench-browser")
    result = template.manage("migrate", "--noinput", "-v", "0")
    assert result.returncode == 0, result.stderr
    stacks: dict[str, Stack] = {}
    for name, provision in provisions.items():
        workdir = root / name
        workdir.mkdir()
        (workdir / "db.sqlite3").write_bytes((root / "db.sqlite3").read_bytes())
        (workdir / "provision.yaml").write_text(yaml.safe_dump(provision), encoding="utf-8")
        stacks[name] = make_stack(workdir=workdir, redis_url=None, prefix=f"bench-browser-{name}")
    try:
        with ThreadPoolExecutor(len(stacks)) as pool:
            for result in pool.map(provision_step, stacks.values()):
                assert result.returncode == 0, result.stderr

        def serve(stack: Stack) -> list[str]:
            return [sys.executable, "manage.py", "serve", "--port", str(stack.port)]

        for stack in stacks.values():  # all at once: they start in parallel
            stack.start("serve", serve(stack))
        for stack in stacks.values():
            # On a fresh port again when another process took the picked one first.
            stack.wait_listening("serve", lambda stack=stack: serve(stack))
        yield stacks
    finally:
        for stack in stacks.values():
            stack.stop_all()


def provision_step(stack: Stack):
    return stack.manage("provision", str(stack.workdir / "provision.yaml"))


def stop_soon(stack: Stack) -> None:
    """Ask a server to stop without waiting for it (it frees the CPU; stop_all waits later)."""
    for proc in stack.procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)


def wait_until(page, expression: str, *, timeout: float) -> None:
    """Poll `expression` from here: page.wait_for_function evaluates a string with eval(), which
    the pages' Content-Security-Policy refuses (page.evaluate goes through the DevTools protocol)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout:g} s: {expression}")
        time.sleep(0.1)


def open_page(browser, url: str, viewport: dict, errors: list[str]):
    page = browser.new_context(viewport=viewport).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    wait_until(page, "document.body.dataset.connection === 'live'", timeout=30)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable", {"timeDomain": "timeTicks"})  # wall time: what blocks input
    return page, cdp


def run_page(
    browser,
    *,
    scenario: Scenario,
    url: str,
    viewport: dict,
    ready: str,
    warmup: float,
    runs: int,
    seconds: float,
    setup: str | None = None,
    then: tuple[Scenario, str, float] | None = None,
) -> None:
    """Measure `scenario` on a page; `then` (scenario, setup, window seconds): another one on the
    same page right after, once `setup` ran and the page warmed up again."""
    errors: list[str] = []
    page, cdp = open_page(browser, url, viewport, errors)
    try:
        if setup is not None:
            page.evaluate(setup)
        wait_until(page, ready, timeout=60)
        time.sleep(warmup)
        for _ in range(runs):
            scenario.windows.append(measure_window(page, cdp, seconds))
        ARTIFACTS.mkdir(exist_ok=True)
        scenario.screenshot = ARTIFACTS / f"bench-browser-{scenario.name}.png"
        page.screenshot(path=str(scenario.screenshot), full_page=True)
        if then is not None:
            after, after_setup, after_seconds = then
            page.evaluate(after_setup)
            time.sleep(warmup)
            for _ in range(runs):
                after.windows.append(measure_window(page, cdp, after_seconds))
    finally:
        page.context.close()
    assert not errors, f"{scenario.name}: errors in the page: {errors}"


def measure(*, runs: int, seconds: float, warmup: float, fill: bool) -> list[Scenario]:
    """Both pages; `fill` waits for the windows to fill before opening them (not in quick mode)."""
    from playwright.sync_api import sync_playwright

    stream = Scenario(
        "stream",
        f"/streams/{FAST_SLUG}/: one line, {FAST_RATE:,} points/s, window {FAST_WINDOW:,} points",
    )
    stream_full = Scenario(
        "stream, full draws", "the same stream page, every draw a full Plotly draw (as before)"
    )
    board = Scenario(
        "dashboard",
        f"/dashboards/bench/: {PANELS} line panels, {PANEL_RATE} points/s each, window "
        f"{PANEL_WINDOW_SECONDS} s ({PANEL_RATE * PANEL_WINDOW_SECONDS} points) each",
    )
    board_full = Scenario(
        "dashboard, full draws", "the same dashboard, every draw a full Plotly draw (as before)"
    )
    provisions = {"dashboard": dashboard_file(), "stream": {"streams": [fast_stream()]}}
    # Both servers start together, so the dashboard's windows fill while the stream page is
    # measured (its 20 feeds of 20 points/s cost little next to the 1,000 points/s one).
    with (
        tempfile.TemporaryDirectory(prefix="bench-browser-") as directory,
        sync_playwright() as playwright,
        served(Path(directory), provisions) as stacks,
    ):
        began = time.monotonic()  # the servers are up, their feeds running
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            if fill:
                time.sleep(FAST_WINDOW / FAST_RATE + 1)  # the server's window holds 10,000
            run_page(
                browser,
                scenario=stream,
                url=f"{stacks['stream'].base_url}/streams/{FAST_SLUG}/",
                viewport=STREAM_VIEWPORT,
                ready=f"window.livecharts.pointsReceived >= {FAST_WINDOW if fill else 1}",
                warmup=warmup,
                runs=runs,
                seconds=seconds,
                then=(stream_full, FULL_DRAWS, STREAM_FULL_SECONDS if fill else seconds),
            )
            stop_soon(stacks["stream"])
            if fill:
                # Each panel's window holds its full 30 s of points before the page opens.
                time.sleep(max(0.0, PANEL_WINDOW_SECONDS + 1 - (time.monotonic() - began)))
            # The reference of full draws in windows half as long: it only gives the "before".
            for scenario, setup, window in ((board, None, seconds), (board_full, FULL_DRAWS, seconds / 2)):
                run_page(
                    browser,
                    scenario=scenario,
                    url=f"{stacks['dashboard'].base_url}/dashboards/bench/",
                    viewport=DASHBOARD_VIEWPORT,
                    ready="Object.values(window.livecharts.panels).every((panel) => panel.draws > 0)",
                    warmup=warmup,
                    runs=runs,
                    seconds=window,
                    setup=setup,
                )
        finally:
            browser.close()
    return [stream, stream_full, board, board_full]


def chromium_version() -> str:
    result = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True)
    return result.stdout.strip().split(" built")[0] or "Chromium (version unknown)"


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def draw_ms(window: Window) -> float:
    """Main-thread ms per chart draw: the window's busy time over its draws."""
    return 1000 * window.busy / max(window.draws_per_second, 0.01)


def issue16_goal(scenario: Scenario) -> tuple[str, bool]:
    """Issue 16's goal for the scenario's page, said as in the table, and whether it was met."""
    windows = scenario.windows
    busy = statistics.median(w.busy for w in windows) <= TARGET_BUSY
    if all(w.panel_draws_per_second for w in windows):
        slowest = statistics.median(min(w.panel_draws_per_second) for w in windows)
        return f"≥ {TARGET_PANEL_DRAWS:g} draws/s per panel", busy and slowest >= TARGET_PANEL_DRAWS
    fps = statistics.median(w.fps for w in windows)
    return f"{DISPLAY_FPS} frames/s (≥ {TARGET_STREAM_FPS:g})", busy and fps >= TARGET_STREAM_FPS


def table(scenarios: list[Scenario]) -> str:
    lines = [
        "| page | frames/s | main thread busy | in Plotly calls | script | layout + style "
        "| chart draws/s | main thread per draw | draws/s per panel: slowest, median | points/s taken "
        "| points drawn | worst frame | issue 5: ≥ 30 frames/s, ≤ 50 % busy "
        "| issue 16: goal, ≤ 50 % busy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for scenario in scenarios:
        windows = scenario.windows
        fps = [w.fps for w in windows]
        busy = [w.busy for w in windows]
        met5 = statistics.median(fps) >= TARGET_FPS and statistics.median(busy) <= TARGET_BUSY
        goal, met16 = issue16_goal(scenario)
        per_panel = "n/a"
        if all(w.panel_draws_per_second for w in windows):
            slowest = [min(w.panel_draws_per_second) for w in windows]
            typical = [statistics.median(w.panel_draws_per_second) for w in windows]
            per_panel = f"{spread(slowest, '.1f')}, {spread(typical, '.1f')}"

        def percent(values: list[float]) -> str:
            return spread([100 * value for value in values], ".0f") + " %"

        def said(met: bool) -> str:
            return "yes" if met else "**no**"

        lines.append(
            f"| {scenario.name} | {spread(fps, '.1f')} | {percent(busy)} "
            f"| {percent([w.drawing for w in windows])} "
            f"| {percent([w.script for w in windows])} "
            f"| {percent([w.layout for w in windows])} "
            f"| {spread([w.draws_per_second for w in windows], '.1f')} "
            f"| {spread([draw_ms(w) for w in windows], '.1f')} ms | {per_panel} "
            f"| {spread([w.points_per_second for w in windows], ',.0f')} "
            f"| {spread([float(w.points_drawn) for w in windows], ',.0f')} "
            f"| {spread([w.worst_frame_ms for w in windows], '.0f')} ms "
            f"| {said(met5)} | {goal}: {said(met16)} |"
        )
    return "\n".join(lines)


def section(quick: bool) -> str:
    argv = ["--quick"] if quick else []
    args = parse_args(argv)
    started = time.monotonic()
    scenarios = measure(runs=args.runs, seconds=args.seconds, warmup=args.warmup, fill=not quick)
    took = time.monotonic() - started
    command = shlex.join([".venv/bin/python", "-m", "bench.browser", *argv])
    stream, stream_full, board, board_full = scenarios
    panels_drawn = min(w.panels_drawn for w in board.windows)

    def per_draw(scenario: Scenario) -> str:
        """Main-thread ms per chart draw, median of the windows."""
        return f"{statistics.median(draw_ms(w) for w in scenario.windows):.0f}"

    def median(scenario: Scenario, value) -> float:
        return statistics.median(value(w) for w in scenario.windows)

    def slowest(scenario: Scenario) -> float:
        return median(scenario, lambda w: min(w.panel_draws_per_second))

    stream_seconds = STREAM_FULL_SECONDS if not quick else args.seconds
    parts = [
        "## Browser: a fast stream page and a 20-chart dashboard in headless Chromium",
        "",
        f"{chromium_version()} (Debian's, driven by playwright {_version('playwright')}), headless with",
        "`--disable-gpu`: software rendering, as on a machine without a GPU; every chart is SVG",
        "(Plotly `scatter`), never WebGL. Each page has its own embedded server (`manage.py serve`,",
        "a throwaway SQLite file, simulated feeds, points not stored) and is measured in",
        f"{args.runs} consecutive windows of {args.seconds:g} s after the backfill is drawn and "
        f"{args.warmup:g} s of warm-up (the full-draw references: windows of "
        f"{stream_seconds:g} s on the stream page, right after its own windows on the same page, and "
        f"{args.seconds / 2:g} s on the dashboard);",
        "every figure is the median of the windows with (min-max).",
        "",
        *[f"- **{s.name}**: {s.what}." for s in scenarios],
        "",
        "*Frames/s* counts `requestAnimationFrame` callbacks in the page (at most 60: the display",
        "rate). *Main thread busy* is the renderer main thread's task time (`TaskDuration` of the",
        "DevTools Protocol's `Performance.getMetrics`, wall-clock, read at both ends of a window) over",
        "the wall time; *in Plotly calls* is the part the page measured around its own drawing calls",
        "(`window.livecharts.drawMs`), *script* and *layout + style* are `ScriptDuration` and",
        "`LayoutDuration` + `RecalcStyleDuration` (the rest of *busy* is mostly painting). *Chart",
        "draws/s* counts chart updates, all charts of the page together, and *main thread per draw* is",
        "the busy time over them; *draws/s per panel* is the",
        "slowest panel's and the median panel's of each window. *Points drawn* is what the page's",
        "traces hold at the end of a window. *Worst frame* is the longest gap between two animation",
        f"frames. Targets: at least {TARGET_FPS} frames/s and the main thread at most "
        f"{TARGET_BUSY:.0%} busy on",
        "both pages (issue 5). Issue 16, section 5: the stream page at the display rate,",
        f"{DISPLAY_FPS} frames/s, taken as a median of at least {TARGET_STREAM_FPS:g} (95 %: a page that",
        "draws nothing counts 59.9-60.1 here, but on this shared machine another process's burst still",
        "costs it a frame now and then), and every dashboard panel redrawn at least",
        f"{TARGET_PANEL_DRAWS:g} times a second; on both, the main thread at most {TARGET_BUSY:.0%} busy.",
        f"In every dashboard window {panels_drawn} of {PANELS} panels drew (all",
        "are in view: panels out of view are not drawn).",
        "",
        "How the client keeps to it (streams/static/streams/): after each draw a page rests until",
        "drawing, with the styling, layout and painting that follow it, has taken at most 45 % of the",
        "main thread (`pace.js`); a chart then moves as often as the machine allows, and points",
        "arriving meanwhile are drawn together. The stream page keeps every point of its window but",
        "draws at most two a pixel column (`decimate.js`: each two-column bucket's first, lowest,",
        "highest and last point, so every spike stays; 10,000 points become about 2,000). Axes",
        "neither measure their labels for overflow nor re-angle them on every draw (`axes.js`), and",
        "each chart is a CSS containment box, so a draw lays out its own chart, not the page.",
        "",
        "Light draws (`lightdraw.js`): a full Plotly draw costs far more than its points (a profile of",
        "a dashboard panel: about a third working the figure's defaults out again, most of the rest",
        "drawing and measuring the axes' labels; the points about 2 %), and on the stream page each",
        "full draw of the thinned line was one task longer than a frame (14-21 ms of Plotly calls,",
        "22-38 ms of main thread), so it dropped frames. So most draws of a line chart are light:",
        "the new points go into the traces' arrays (a dashboard panel: as extendTraces would put",
        "them; the stream page: its thinned copy, every spike kept), each line's SVG path is built",
        "from them with the axes' own mapping, and the plot (lines, x grid, x labels) slides left",
        "by as far as the newest point moved on. Plotly lays the axes out again (`Plotly.relayout`",
        "of the ranges alone, 10-20 ms on the stream page) once the plot slid 40 px (a wide chart:",
        "8 % of its width, at most 100 px: the stream page lays them out about once a second)",
        "or a value left the value axis, and draws fully every 15 s, when traces come or go, while",
        "the viewer has zoomed, and while the pointer is over the chart (hover then knows every",
        "point). A dashboard's scheduler counts a panel's light and full draws apart and draws first",
        "a panel that waited a second (`panel.js`), so one slow draw no longer leaves a panel still",
        "for seconds.",
        "",
        "This run, main-thread time per chart draw: stream page "
        f"{per_draw(stream)} ms light, {per_draw(stream_full)} ms with full draws only",
        f"({median(stream, lambda w: w.fps):.1f} against "
        f"{median(stream_full, lambda w: w.fps):.1f} frames/s, "
        f"{100 * median(stream, lambda w: w.busy):.0f} % against "
        f"{100 * median(stream_full, lambda w: w.busy):.0f} % busy);",
        f"dashboard {per_draw(board)} ms light, {per_draw(board_full)} ms with full draws only; the slowest",
        f"panel drew {slowest(board):.1f} times a second, against {slowest(board_full):.1f} "
        "with full draws only.",
        "",
        "Before (issue 5's changes; commit 420d287 and earlier, not a same-run comparison): stream",
        "12.0 frames/s, 66 % busy, 6.2 draws/s; dashboard 40.7 frames/s, 69 % busy, 13.6 draws/s.",
        "Before light draws: the rows of full draws are the same pages with them switched off",
        "(`window.livecharts.lightDraws = false`).",
        "",
        "```sh",
        command,
        "# or, as part of make bench: .venv/bin/python -m bench --only browser",
        "```",
        "",
        machine(),
        f"This section took {took / 60:.1f} min.",
        "",
        table(scenarios),
    ]
    return "\n".join(parts)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.browser", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures not for the docs)")
    args = parser.parse_args(argv)
    # 3 windows x 10 s per page: each page measured over 30 s (issue 5); quick: 3 x 0.5 s,
    # windows not filled first.
    args.runs = 3
    args.seconds = 0.5 if args.quick else 10.0
    args.warmup = 0.5 if args.quick else 2.0
    return args


def main() -> None:
    args = parse_args()
    print(section(args.quick))
    for name in ("stream", "dashboard"):
        print(f"screenshot: {ARTIFACTS / f'bench-browser-{name}.png'}")


if __name__ == "__main__":
    main()
