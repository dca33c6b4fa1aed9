"""How smooth a dashboard of many live panels stays in a real browser.

    .venv/bin/python -m bench.dashboard --panels 20 --seconds 10

Starts the embedded server (`manage.py serve`, a throwaway SQLite file) with the demo streams
(50, 20, 10 and 5 points/s), provisions a dashboard of N panels over them (every chart type,
four a row), opens it in headless Chromium (/usr/bin/chromium, software rendering) as staff and,
after the backfill is drawn, counts for S seconds: animation frames per second, the worst frame,
time in long tasks (> 50 ms) per second, panel draws per second, and what each kind of panel
costs per draw. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from tests.processes import make_stack

KINDS = [
    {"type": "line", "streams": ["factory-sensors"]},
    {"type": "area", "streams": ["public-sine"]},
    {"type": "scatter", "streams": ["market"]},
    {"type": "candlestick", "streams": ["market"], "series": "GLOBEX", "candle_seconds": 5},
    {"type": "gauge", "streams": ["market"], "series": "ACME"},
    {"type": "bar", "streams": ["request-latency"]},
    {"type": "line", "streams": ["public-sine", "request-latency"]},
]

MEASURE = """(seconds) => new Promise((resolve) => {
  const panels = () => Object.values(window.livecharts.panels);
  const draws0 = panels().map((p) => p.draws);
  let frames = 0, worst = 0, longMs = 0, longTasks = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) { longTasks += 1; longMs += entry.duration; }
  }).observe({ entryTypes: ["longtask"] });
  const start = performance.now();
  let last = start;
  function tick(now) {
    frames += 1; worst = Math.max(worst, now - last); last = now;
    if (now - start < seconds * 1000) { requestAnimationFrame(tick); return; }
    const elapsed = (now - start) / 1000;
    const kinds = {};
    panels().forEach((p, i) => {
      const kind = (kinds[p.chartType] ??= { panels: 0, drawsPerSecond: 0, msPerDraw: 0 });
      kind.panels += 1;
      kind.drawsPerSecond += (p.draws - draws0[i]) / elapsed;
      kind.msPerDraw = Math.max(kind.msPerDraw, p.cost);
    });
    resolve({
      fps: frames / elapsed, worstFrameMs: worst, longTasks, longTaskMsPerSecond: longMs / elapsed,
      drawsPerSecond: Object.values(kinds).reduce((n, k) => n + k.drawsPerSecond, 0), kinds,
      webglCanvases: document.querySelectorAll(".gl-canvas").length,
      subscriptions: window.livecharts.streams.length,
    });
  }
  requestAnimationFrame(tick);
})"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--panels", type=int, default=20, help="panels on the dashboard (default 20)")
    parser.add_argument("--seconds", type=float, default=10, help="measuring time (default 10)")
    parser.add_argument("--viewport", default="1600x1200", help="browser window, WxH (default 1600x1200)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=30,
        help="seconds the page runs before measuring, windows filling (default 30)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    width, height = (int(part) for part in args.viewport.split("x"))
    panels = [{"title": f"Panel {i}", "width": 3, **KINDS[i % len(KINDS)]} for i in range(args.panels)]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as directory:
        workdir = Path(directory)
        board = workdir / "board.yaml"
        board.write_text(
            yaml.safe_dump({"dashboards": [{"slug": "bench", "title": "Bench", "panels": panels}]})
        )
        stack = make_stack(workdir=workdir, redis_url=None, prefix="bench-dashboard")
        for step in (("migrate", "--noinput", "-v", "0"), ("demo",), ("provision", str(board))):
            result = stack.manage(*step)
            assert result.returncode == 0, result.stderr
        stack.start_serve()
        try:
            result = measure(
                stack.base_url, width=width, height=height, seconds=args.seconds, warmup=args.warmup
            )
        finally:
            stack.stop_all()
    print(report(result, args=args))


def measure(base_url: str, *, width: int, height: int, seconds: float, warmup: float) -> dict:
    from playwright.sync_api import sync_playwright

    from bench.browser import wait_until
    from tests.browser.conftest import CHROMIUM_ARGS
    from tests.services import require_chromium

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{base_url}/accounts/login/?next=/dashboards/bench/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin-livecharts")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/dashboards/bench/")
            wait_until(page, "document.body.dataset.connection === 'live'", timeout=30)
            time.sleep(warmup)  # the backfill drawn, windows filling
            return page.evaluate(MEASURE, seconds)
        finally:
            browser.close()


def report(result: dict, *, args: argparse.Namespace) -> str:
    lines = [
        f"Dashboard of {args.panels} panels, {args.viewport}, {args.seconds:g} s after {args.warmup:g} s, "
        f"headless Chromium (software rendering), {result['subscriptions']} subscriptions, "
        f"{result['webglCanvases']} WebGL canvases",
        "",
        "| frames/s | worst frame | long tasks | in long tasks | panel draws/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {result['fps']:.1f} | {result['worstFrameMs']:.0f} ms | {result['longTasks']} | "
        f"{result['longTaskMsPerSecond']:.0f} ms/s | {result['drawsPerSecond']:.1f} |",
        "",
        "| panel kind | panels | draws/s per panel | ms per draw (costliest) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind, figures in sorted(result["kinds"].items()):
        lines.append(
            f"| {kind} | {figures['panels']} | {figures['drawsPerSecond'] / figures['panels']:.1f} | "
            f"{figures['msPerDraw']:.1f} |"
        )
    return "\n".join(lines) + "\n\n" + json.dumps(result)


if __name__ == "__main__":
    main()
