"""Make the README's screenshots again: the embedded server with the demo, in headless Chromium.

    .venv/bin/python docs/screenshots.py            # writes docs/img/*.png

Starts `manage.py serve` on a free port with a fresh SQLite file and the demo streams, signs
in as the demo viewer, waits until the charts hold points (and the dashboard's candles have
formed), and saves desktop PNGs of a stream page and of the demo dashboard, and the stream page
at a phone's 390 x 844. Needs Debian's chromium (CHROMIUM overrides /usr/bin/chromium) and the
playwright package from the [test] extra; no `playwright install`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USERNAME, PASSWORD = "demo", "demo-livecharts"  # streams.config.demo.DEMO_LOGINS
STREAM = "factory-sensors"  # three series at 50 points/s, a 30 s window
DASHBOARD = "operations"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Every chart on the page holds points (gauges: a value), and the candles have formed.
CHARTS_FILLED = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const filled = (plot) => (plot.data || []).some((trace) =>
    (trace.x && trace.x.length > 0) || (trace.open && trace.open.length > 0) || trace.value !== undefined);
  return plots.length > 0 && plots.every(filled);
}"""
# The stream page's chart spans at least `seconds` of points (its window fills from history and
# then moves): what a full chart means, waited for rather than slept for.
CHART_SPANS = """(seconds) => {
  const plot = document.querySelector('.js-plotly-plot');
  const x = plot && plot.data && plot.data[0] && plot.data[0].x;
  if (!x || x.length < 2) return false;
  return new Date(x[x.length - 1]).getTime() - new Date(x[0]).getTime() >= seconds * 1000;
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def embedded_server(workdir: Path) -> Iterator[str]:
    """`manage.py serve` on a free port over a new SQLite file with the demo; yields its URL."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    for command in (["migrate", "--noinput", "-v", "0"], ["demo"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=300)
    server, url = start_serve(env, workdir / "serve.log")
    try:
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def start_serve(env: dict[str, str], log_path: Path, *, attempts: int = 5) -> tuple[subprocess.Popen, str]:
    """`manage.py serve` on a free port, once it answers; returns it and its URL. The port is
    free only until someone binds it: when another process took it first (serve exits saying
    "address already in use"), serve starts again on another one."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:  # serve keeps its own copy of the descriptor
            offset = log.tell()
            server = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                with log_path.open("rb") as log:
                    log.seek(offset)
                    said = log.read().decode(errors="replace")
                if "address already in use" in said.lower() and attempt < attempts:
                    print(f"port {port} was taken, starting serve on another", file=sys.stderr)
                    break
                raise SystemExit(f"serve exited: {said}")
            try:
                # Still running once it answers: on a port it failed to bind, it exits.
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200 and server.poll() is None:
                    return server, url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"serve did not answer in 60 s: {log_path.read_text()}")
            time.sleep(0.2)
    raise SystemExit(f"serve found its port taken {attempts} times")


def sign_in(page, url: str, next_path: str) -> None:
    page.goto(f"{url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{next_path}")
    page.wait_for_function("document.body.dataset.connection === 'live'", timeout=30_000)


def shoot(url: str, out: Path, *, fill_seconds: float) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    stream_path, board_path = f"/streams/{STREAM}/", f"/dashboards/{DASHBOARD}/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # wait_for_function evals its expression in the page, which the site's CSP forbids.
        desktop = browser.new_context(viewport=DESKTOP, bypass_csp=True)
        page = desktop.new_page()
        sign_in(page, url, stream_path)
        # The stream's window is 30 s: let it fill, so the picture shows a full chart.
        page.wait_for_function(CHARTS_FILLED, timeout=30_000)
        page.wait_for_function(CHART_SPANS, arg=fill_seconds, timeout=(fill_seconds + 30) * 1000)
        written.append(out / "stream.png")
        page.screenshot(path=str(written[-1]), full_page=True)  # the feed's health under the chart

        page.goto(f"{url}{board_path}")
        page.wait_for_function("document.body.dataset.connection === 'live'", timeout=30_000)
        # Panels out of view are not drawn: make the window as tall as the whole dashboard.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": DESKTOP["width"], "height": max(DESKTOP["height"], height)})
        page.wait_for_function(CHARTS_FILLED, timeout=60_000)
        page.wait_for_function(
            "Object.values(window.livecharts.panels)"
            ".filter((panel) => panel.chartType === 'candlestick').every((panel) => panel.candles >= 4)",
            timeout=90_000,
        )
        written.append(out / "dashboard.png")
        page.screenshot(path=str(written[-1]), full_page=True)
        desktop.close()

        phone = browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, bypass_csp=True
        )
        page = phone.new_page()
        sign_in(page, url, stream_path)
        page.wait_for_function(CHARTS_FILLED, timeout=30_000)
        # The window is full already (history fills it at once): wait until it is drawn so.
        page.wait_for_function(CHART_SPANS, arg=fill_seconds, timeout=(fill_seconds + 30) * 1000)
        written.append(out / "stream-phone.png")
        page.screenshot(path=str(written[-1]))
        phone.close()
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default {OUT})")
    parser.add_argument("--fill", type=float, default=29, help="seconds of points each stream shot shows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="livecharts-shots-") as tmp, embedded_server(Path(tmp)) as url:
        for path in shoot(url, args.out, fill_seconds=args.fill):
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            print(f"{shown}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
