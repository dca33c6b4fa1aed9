"""Peers: LiveCharts against the real products users pick instead, side by side in one run.

    .venv/bin/python -m bench.peers --viewers 100,500 --rate 1000 --runs 3

Each stack is installed from its package and started as its documentation recommends for
production, all on one private redis-server, loopback only:

- `livecharts`: daphne `livecharts.asgi` over RedisPubSubChannelLayer, fed through
  `streams.broadcast.Broadcaster` by bench/publisher.py, viewers from bench/clients.py (as in
  the fan-out section);
- `dash`: bench/peer_dash.py under gunicorn (sync workers, (2 x cores) + 1 of them), a
  `dcc.Interval` + `extendData` graph polled every 1 s (`--dash-interval-ms`); `dash-fast`:
  the same polled every 250 ms;
- `bokeh`: `bokeh serve bench/peer_bokeh_app.py` (one process), `ColumnDataSource.stream` from
  a periodic callback in each session;
- `eventstream`: django-eventstream under daphne (bench/peer_eventstream.py), one
  `send_event` per 50 ms tick relayed through Redis (EVENTSTREAM_REDIS).

The peers are fed by bench/peer_feed.py and watched by bench/peer_clients.py, which speak
each peer's own protocol. For each viewer count, each stack in turn gets its viewers (kept
for its runs, then dropped, so idle viewers of one stack, a Dash page polling or a Bokeh
session's callback, cost nothing during another's runs), then its runs: the feed publishes
`--rate` points/s into the stack's stream, and after a warm-up the window is measured:
points delivered per second (all viewers), publish-to-receipt latency of a sample of
viewers, the CPU of the server's processes (each one's CPU-time clock, a gunicorn's
master and workers summed) and points still missing after a drain. Every process is
bounded in time and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from bench.fanout import Worker, bench_bed, cpu_seconds, percentile, spread, went_quiet
from bench.report import beside_verdict, how_it_ran
from tests.processes import BIN, Stack, seed_streams

ROOT = Path(__file__).resolve().parent.parent
CLIENT_PROCESSES = 2
START_DELAY = 0.3  # seconds between READY and the feed's first point
GOAL = 10.0  # issue 16: LiveCharts' points/s per server core at least 10x each peer's
HOLDS = 0.9  # a stack "holds" a viewer count when it delivers at least this share of the points


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    package: str  # whose version the report names
    client: str  # the worker module holding its viewers
    protocol: str  # that module's protocol
    feed: str  # the feed module, and its protocol
    feed_protocol: str
    interval_ms: int = 0  # Dash: its dcc.Interval (0: --dash-interval-ms)


PEERS = {
    peer.name: peer
    for peer in (
        Peer(
            "livecharts",
            "LiveCharts",
            "daphne",
            "bench.clients",
            "livecharts",
            "bench.publisher",
            "livecharts",
        ),
        Peer("dash", "Dash", "dash", "bench.peer_clients", "dash", "bench.peer_feed", "redis-stream"),
        # The same app polled 4x as often: closer to LiveCharts' latency, at Dash's cost.
        Peer(
            "dash-fast",
            "Dash, 250 ms interval",
            "dash",
            "bench.peer_clients",
            "dash",
            "bench.peer_feed",
            "redis-stream",
            interval_ms=250,
        ),
        Peer(
            "bokeh", "Bokeh server", "bokeh", "bench.peer_clients", "bokeh", "bench.peer_feed", "redis-stream"
        ),
        Peer(
            "eventstream",
            "django-eventstream",
            "django-eventstream",
            "bench.peer_clients",
            "eventstream",
            "bench.peer_feed",
            "eventstream",
        ),
    )
}


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants alive now (gunicorn's workers), each
    read as bench.fanout.cpu_seconds reads one (every thread, to the nanosecond): the same
    method for every stack, so they compare at equal precision."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):  # gone meanwhile
            total += cpu_seconds(current)
        todo += children.get(current, [])
    return total


class Server:
    """One stack's server (a process tree), started once for the whole section."""

    def __init__(self, peer: Peer, *, stack: Stack, args: argparse.Namespace) -> None:
        self.peer, self.stack, self.args = peer, stack, args

    @property
    def pid(self) -> int:
        return self.stack.procs[self.peer.name].pid

    @property
    def url(self) -> str:
        return {
            "livecharts": self.stack.ws_url,
            "bokeh": f"ws://127.0.0.1:{self.stack.port}/peer_bokeh_app/ws",
        }.get(self.peer.name, self.stack.base_url)

    def argv(self) -> list[str]:
        port = str(self.stack.port)
        if self.peer.name == "livecharts":
            return [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", port, "livecharts.asgi:application"]
        if self.peer.protocol == "dash":
            workers = str(2 * (os.cpu_count() or 1) + 1)
            return [
                *(str(BIN / "gunicorn"), "bench.peer_dash:server", "--workers", workers),
                *("--bind", f"127.0.0.1:{port}", "--no-control-socket", "--backlog", "4096"),
            ]
        if self.peer.name == "bokeh":
            return [
                *(str(BIN / "bokeh"), "serve", "bench/peer_bokeh_app.py", "--port", port),
                *("--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"),
            ]
        return [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", port, "bench.peer_eventstream_asgi:application"]

    def start(self) -> None:
        self.stack.start(self.peer.name, self.argv())

    def wait(self) -> None:
        """Until it answers; on a fresh port again when another process took the picked one
        first (a server whose log says "address already in use": daphne, bokeh)."""
        self.stack.wait_listening(self.peer.name, self.argv, ready=self.answers)

    def answers(self, timeout: float = 60) -> None:
        path = "/static/js/bokeh.min.js" if self.peer.name == "bokeh" else "/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.stack.procs[self.peer.name]
            if proc.poll() is not None:
                raise self.stack.exited(self.peer.name)  # PortTaken when its bind failed
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.stack.base_url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.peer.label} did not answer on {self.stack.base_url} in {timeout} s")

    def settle(self, seconds: float = 3.0) -> None:
        """Wait (bounded) for the server to go quiet, so a backlog does not cost the next run."""
        went_quiet(lambda: tree_cpu_seconds(self.pid), seconds)


class Bench:
    def __init__(
        self, args: argparse.Namespace, *, servers: dict[str, Server], envs: dict[str, dict]
    ) -> None:
        self.args, self.servers = args, servers
        self.feeds = {
            module: Worker(module, envs[module]) for module in ("bench.publisher", "bench.peer_feed")
        }
        self.clients = {
            module: [Worker(module, envs[module]) for _ in range(CLIENT_PROCESSES)]
            for module in ("bench.clients", "bench.peer_clients")
        }

    def workers(self) -> list[Worker]:
        return [*self.feeds.values(), *(w for ws in self.clients.values() for w in ws)]

    async def run_all(self, redis_pid: int | None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for worker in self.workers():
            await worker.start()
        try:
            for viewers in self.args.viewers:
                for name in self.args.stacks:
                    rows += await self.run_stack(name, viewers, redis_pid)
        finally:
            for worker in self.workers():
                await worker.stop()
        return rows

    async def run_stack(self, name: str, viewers: int, redis_pid: int | None) -> list[dict[str, Any]]:
        """A stack's runs at one viewer count; a new pool (and stream) after a run with points missing."""
        rows, attempt, fresh = [], 0, True
        peer, server = PEERS[name], self.servers[name]
        clients = self.clients[peer.client]
        began = time.monotonic()
        for run in range(self.args.runs):
            stream = slug(name, viewers, attempt)
            server.settle()
            try:
                row = await self.run_once(peer, server, viewers, stream, fresh=fresh, redis_pid=redis_pid)
            except (RuntimeError, TimeoutError, ConnectionError) as error:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[-1][:300]
                print(f"{name} {viewers} run {run} failed: {reason}", file=sys.stderr, flush=True)
                rows.append({"target": name, "viewers": viewers, "run": run, "failed": reason})
                await self.close(clients, [stream])
                break  # a stack that refused its viewers once does not get them on a second try here
            fresh = False
            row["run"] = run
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "latencies"}), file=sys.stderr, flush=True)
            if row["lost"] > (1 - HOLDS) * row["expected"]:
                # It does not hold this many viewers: more runs would only tell the same at a
                # high price (a Dash pool's reconnection alone took a minute), so one it is.
                print(f"{name} x {viewers}: does not hold, no more runs", file=sys.stderr, flush=True)
                break
            if row["lost"]:
                # Points still queued for these viewers would keep arriving in the next run.
                await self.close(clients, [stream])
                attempt, fresh = attempt + 1, True
        await self.close(clients, [slug(name, viewers, a) for a in range(attempt + 1)])
        print(f"{name} x {viewers}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        return rows

    async def close(self, clients: list[Worker], pools: list[str]) -> None:
        for client in clients:
            await client.send(json.dumps({"op": "close", "pools": pools}))
            await client.expect("CLOSED", 60)

    async def run_once(
        self, peer: Peer, server: Server, viewers: int, stream: str, *, fresh: bool, redis_pid: int | None
    ) -> dict[str, Any]:
        args = self.args
        seconds = args.warmup + args.seconds
        feed = self.feeds[peer.feed]
        command = {"protocol": peer.feed_protocol, "layer": "pubsub", "streams": [stream]}
        await feed.send(json.dumps(command | {"rate": args.rate, "seconds": seconds, "fresh": fresh}))
        clients = self.clients[peer.client]
        shares = [viewers // len(clients) + (i < viewers % len(clients)) for i in range(len(clients))]
        busy = [(client, share) for client, share in zip(clients, shares, strict=True) if share]
        for client, share in busy:
            view = {"op": "run", "pool": stream, "url": server.url, "origin": server.stack.base_url}
            view |= {"streams": [stream], "viewers": share, "protocol": peer.protocol}
            view |= {"warmup": args.warmup, "seconds": args.seconds, "drain": args.drain}
            view |= {"expect": round(args.rate * seconds), "interval_ms": interval_ms(peer, args)}
            view |= {"connect_timeout": args.connect_timeout}
            await client.send(json.dumps(view))
        workers = [feed, *(client for client, _ in busy)]
        ready, failures = [], []
        connecting = time.monotonic()
        for worker in workers:
            kind, rest = await worker.expect_any(("READY", "FAILED"), args.connect_timeout + 30)
            (ready if kind == "READY" else failures).append(worker if kind == "READY" else json.loads(rest))
        if failures:
            for worker in ready:
                await worker.send("cancel")
            for worker in ready:
                await worker.expect_any(("RESULT", "CANCELLED"), 30)
            raise ConnectionError(
                f"its viewers did not all connect within {args.connect_timeout:g} s ({failures[0]})"
            )
        connect_s = time.monotonic() - connecting
        start = time.time() + START_DELAY
        for worker in workers:
            await worker.send(repr(start))
        await asyncio.sleep(start + args.warmup - time.time())
        server0, redis0 = tree_cpu_seconds(server.pid), redis_pid and tree_cpu_seconds(redis_pid)
        await asyncio.sleep(start + seconds - time.time())
        server1, redis1 = tree_cpu_seconds(server.pid), redis_pid and tree_cpu_seconds(redis_pid)
        timeout = args.drain + 30
        published = json.loads(await feed.expect("RESULT", timeout))
        results = [json.loads(await client.expect("RESULT", timeout)) for client, _ in busy]
        latencies = [ms for result in results for ms in result["latencies"]]
        return {
            "target": peer.name,
            "viewers": viewers,
            "rate": args.rate,
            "points_per_s": sum(r["points"] for r in results) / args.seconds,
            "messages_per_s": sum(r["frames"] for r in results) / args.seconds,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "server_cpu": 100 * (server1 - server0) / args.seconds,
            "redis_cpu": 100 * (redis1 - redis0) / args.seconds if redis_pid else float("nan"),
            "clients_cpu": max(100 * r["cpu_seconds"] / args.seconds for r in results),
            "published": published["published"],
            "publisher_lag_s": published["max_lag"],
            "lost": sum(r["lost"] for r in results),
            "expected": viewers * round(args.rate * seconds),
            "errors": sum(r.get("errors", 0) for r in results),
            "connect_s": connect_s,
        }


def interval_ms(peer: Peer, args: argparse.Namespace) -> int:
    return peer.interval_ms or args.dash_interval_ms


def slug(name: str, viewers: int, attempt: int) -> str:
    return f"peers-{name}-{viewers}-{attempt}"


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    quiet = {"LIVECHARTS_STORE_POINTS": "false"}
    with bench_bed("peers", redis_url=args.redis_url, keep=args.keep, env=quiet) as bed:
        stack, url, prefix, redis_pid = bed.stack, bed.redis_url, bed.prefix, bed.redis_pid
        peer_env = {
            **os.environ,
            "PEER_REDIS_URL": url,
            "PEER_PREFIX": prefix,
            "PEER_INTERVAL_MS": str(args.dash_interval_ms),
            "PEER_PERIOD_MS": str(args.bokeh_period_ms),
            "DJANGO_SETTINGS_MODULE": "bench.peer_eventstream",
            # `bokeh serve` runs the app file, which imports bench; a PYTHONPATH given is kept
            # (bench/loop_costs.py's hook).
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
        servers: dict[str, Server] = {}
        for name in args.stacks:
            if name == "livecharts":
                result = stack.manage("migrate", "--noinput", "-v", "0")
                assert result.returncode == 0, result.stderr
                specs = [
                    {"slug": slug(name, viewers, attempt), "title": "peers", "visibility": "public"}
                    | {"feed_kind": "push", "window_points": 100_000}
                    for viewers in args.viewers
                    for attempt in range(args.runs)
                ]
                seed_streams(stack, specs)
                servers[name] = Server(
                    PEERS[name], stack=Stack(workdir=stack.workdir, env=stack.env), args=args
                )
            else:
                env = {**peer_env, "PEER_INTERVAL_MS": str(interval_ms(PEERS[name], args))}
                servers[name] = Server(PEERS[name], stack=Stack(workdir=stack.workdir, env=env), args=args)
        envs = {
            "bench.publisher": stack.env,
            "bench.clients": stack.env,
            "bench.peer_feed": peer_env,
            "bench.peer_clients": peer_env,
        }
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():
                server.wait()
                print(f"{server.peer.label}: pid {server.pid}", file=sys.stderr, flush=True)
            return asyncio.run(Bench(args, servers=servers, envs=envs).run_all(redis_pid))
        finally:
            for server in servers.values():
                server.stack.stop_all()


# Reporting ---------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    values = sorted(v for v in values if v == v)
    if not values:
        return float("nan")
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def per_core(row: dict[str, Any]) -> float:
    """Points delivered per second of one core of the server (CPU under 1% counts as 1%)."""
    return row["points_per_s"] / (max(row["server_cpu"], 1.0) / 100)


def holds(runs: list[dict[str, Any]]) -> bool:
    """Every viewer connected, and at least HOLDS of the points each was sent it had by the end
    of the drain (median run): late is not lost; the latency columns say how late."""
    return bool(runs) and median([r["lost"] / r["expected"] for r in runs]) <= 1 - HOLDS


def runs_of(rows: list[dict[str, Any]], name: str, viewers: int) -> list[dict[str, Any]]:
    return [r for r in rows if r["target"] == name and r["viewers"] == viewers and "failed" not in r]


def ratio_text(ratio: float) -> str:
    """LiveCharts ÷ a peer, as the tables show it: never on the other side of the goal."""
    return beside_verdict(ratio, decimals=1, met=lambda shown: shown >= GOAL) + "x"


def goal_of(ratio: float, *, held: bool) -> str:
    """Met or missed; the goal is for the viewer counts a peer holds (issue 16: "at 500 where the
    peer holds 500 at all"), so beyond them the ratio is shown but judges nothing."""
    if not held:
        return "does not apply"
    return "met" if ratio >= GOAL else "missed"


def verdicts(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """One line per peer from the figures: the goal at each viewer count, and whether it holds."""
    lines = []
    for name in (name for name in args.stacks if name != "livecharts"):
        label, parts = PEERS[name].label, []
        for viewers in args.viewers:
            ours, theirs = runs_of(rows, "livecharts", viewers), runs_of(rows, name, viewers)
            failed = [
                r["failed"] for r in rows if r["target"] == name and r["viewers"] == viewers and "failed" in r
            ]
            if failed and not theirs:
                parts.append(f"{label} does not hold {viewers:,} viewers: {failed[0]}")
                continue
            if not theirs or not ours:
                parts.append(f"at {viewers:,} viewers not measured")
                continue
            ratio = median([per_core(r) for r in ours]) / median([per_core(r) for r in theirs])
            goal = goal_of(ratio, held=holds(theirs))
            text = (
                f"at {viewers:,} viewers LiveCharts delivers {ratio_text(ratio)} its points/s per server "
                f"core (goal {GOAL:g}x: {goal}), p99 {median([r['p99_ms'] for r in theirs]):,.0f} ms against "
                f"LiveCharts' {median([r['p99_ms'] for r in ours]):,.0f} ms"
            )
            if not holds(theirs):
                share = median([r["points_per_s"] for r in theirs]) / (viewers * args.rate)
                missing = median([r["lost"] / r["expected"] for r in theirs])
                text += (
                    f"; {label} does not hold {viewers:,} viewers ({share:.0%} of the points offered "
                    f"delivered in the window, {missing:.0%} still missing after the drain)"
                )
            parts.append(text)
        lines.append(f"- **{label}**: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| stack | viewers | points/s offered | points/s delivered | latency p50 ms | p99 ms | server CPU % "
        "| points/s per server core | missing per run | LiveCharts ÷ this, per core | goal: ≥ 10x per core |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for viewers in args.viewers:
        offered = viewers * args.rate
        ours = [
            r for r in rows if r["target"] == "livecharts" and r["viewers"] == viewers and "failed" not in r
        ]
        for name in args.stacks:
            label = PEERS[name].label
            runs = [r for r in rows if r["target"] == name and r["viewers"] == viewers and "failed" not in r]
            failed = [r for r in rows if r["target"] == name and r["viewers"] == viewers and "failed" in r]
            if not runs:
                reason = f"does not hold {viewers:,} viewers: {failed[0]['failed']}" if failed else "not run"
                lines.append(
                    f"| {label} | {viewers:,} | {offered:,} | - | - | - | - | - | - | - | {reason} |"
                )
                continue
            ratio, goal = "-", "-"
            if name != "livecharts" and ours:
                measured = median([per_core(r) for r in ours]) / median([per_core(r) for r in runs])
                ratio = ratio_text(measured)
                goal = goal_of(measured, held=holds(runs))
                if not holds(runs):
                    goal += f": {label} does not hold {viewers:,} viewers"
            elif name == "livecharts" and not holds(runs):
                goal = f"LiveCharts does not hold {viewers:,} viewers"
            delivered = median([r["points_per_s"] for r in runs]) / offered
            lines.append(
                f"| {label} | {viewers:,} | {offered:,} | {spread([r['points_per_s'] for r in runs])} "
                f"({delivered:.0%}) | {spread([r['p50_ms'] for r in runs])} "
                f"| {spread([r['p99_ms'] for r in runs])} "
                f"| {spread([r['server_cpu'] for r in runs])} | {spread([per_core(r) for r in runs])} "
                f"| {' / '.join(format(r['lost'], ',') for r in runs)} | {ratio} | {goal} |"
            )
    return "\n".join(lines)


def failures(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"- {PEERS[r['target']].label}, {r['viewers']:,} viewers, run {r['run'] + 1}: {r['failed']}"
        for r in rows
        if "failed" in r
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n")[0])
    numbers = lambda text: [int(n) for n in text.split(",") if n]  # noqa: E731
    parser.add_argument("--viewers", type=numbers, default=[100, 500])
    parser.add_argument("--rate", type=int, default=1000, help="points/s into each stack's one stream")
    parser.add_argument(
        "--stacks",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(PEERS),
        help=f"comma-separated, of {', '.join(PEERS)} (LiveCharts first: the ratios need it)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds of each run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--drain", type=float, default=2.0)
    parser.add_argument(
        "--dash-interval-ms", type=int, default=1000, help="the dcc.Interval of the Dash page"
    )
    parser.add_argument(
        "--bokeh-period-ms", type=int, default=100, help="the Bokeh periodic callback's period"
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=60, help="seconds to connect a pool's viewers"
    )
    parser.add_argument("--redis-url", default="", help="a shared Redis (default: a private redis-server)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    parser.add_argument("--json", type=Path, help="also write every run's row here")
    args = parser.parse_args(argv)
    unknown = set(args.stacks) - set(PEERS)
    if unknown:
        parser.error(f"unknown stack(s): {', '.join(sorted(unknown))}")
    return args


def section(argv: list[str]) -> str:
    """The peers section of docs/performance.md, measured now."""
    args = parse_args(argv)
    started = time.monotonic()
    rows = measure(args)
    took = time.monotonic() - started
    command = shlex.join([".venv/bin/python", "-m", "bench.peers", *argv])
    versions = ", ".join(f"{p} {version(p)}" for p in ("dash", "gunicorn", "bokeh", "django-eventstream"))
    workers = 2 * (os.cpu_count() or 1) + 1
    parts = [
        "## Peers: the products users pick instead, side by side in one run",
        "",
        "What a Django or Plotly user who wants live charts picks today, each installed from its",
        f"package ({versions}) and run as its documentation recommends for production, each",
        "fed the same points/s into one stream and watched by viewers speaking its own protocol:",
        "",
        "- **LiveCharts**: daphne `livecharts.asgi` over `RedisPubSubChannelLayer`, as in the",
        "  fan-out section (50 ms ticks, one frame per tick per socket).",
        "- **Dash** (bench/peer_dash.py): a `dcc.Graph` extended by `extendData` from a callback",
        f"  on a `dcc.Interval` of {args.dash_interval_ms} ms, as Dash's live-updates docs show; a",
        "  `dcc.Store` holds the viewer's last point (callbacks are stateless), points read from a",
        f"  Redis stream; gunicorn with {workers} sync workers ((2 x cores) + 1, gunicorn's advice).",
        "  Viewers do what dash-renderer does: GET the layout and dependencies, then POST",
        "  `_dash-update-component` at each interval, one at a time, each on a new connection",
        "  (sync workers close it). **Dash, 250 ms interval**: the same, polled 4x as often (its",
        "  own gunicorn), nearer LiveCharts' latency.",
        "- **Bokeh server** (bench/peer_bokeh.py): `bokeh serve` (one process), each session a",
        "  plot over a `ColumnDataSource` that a periodic callback",
        f"  ({args.bokeh_period_ms} ms) `stream`s new points into (rollover 10,000), the points read",
        "  from Redis by one thread shared by all sessions. Viewers speak BokehJS's websocket",
        "  protocol (a session token, ACK, PULL-DOC-REQ, then PATCH-DOC messages with",
        "  `ColumnsStreamed` events), as `bokeh.client` does.",
        "- **django-eventstream** (bench/peer_eventstream.py): its README's setup under daphne, one",
        "  `send_event` per 50 ms tick from the feed process, relayed through Redis",
        "  (`EVENTSTREAM_REDIS`); events not stored (the default). Version 5 serves SSE from an",
        "  async Django view; it no longer goes through a Channels consumer or channel layer.",
        "  Viewers are EventSource clients of `/events/<stream>/`.",
        "",
        "For each viewer count each stack in turn connects its viewers (kept for its runs, then",
        "dropped: a Dash page polls and a Bokeh session runs its callback even with nothing new,",
        "which must not load another stack's runs), then does its runs one after another.",
        f"Each run is {args.warmup:g} s of warm-up and {args.seconds:g} s measured, with",
        f"{args.rate:,} points/s published into the stack's stream; figures are medians of",
        f"{args.runs} runs with (min-max). *Points/s delivered* sums all viewers over the window",
        "(in brackets: the share of what the viewers were offered). Latency is receipt time minus",
        "publish time for every point received in the window by up to 40 viewers per client",
        "process. *Server CPU* is each server process's CPU-time clock over the window (every",
        "thread, to the nanosecond; 100 = one core), all of the stack's server processes summed",
        "(gunicorn's master and workers); *points/s per server core* divides the two, so stacks",
        "compare at equal CPU. *Missing* counts points a viewer did",
        f"not have {args.drain:g} s after the feed stopped. A stack *holds* a viewer count when",
        f"its viewers connect and have at least {HOLDS:.0%} of the points by then (late is not lost:",
        "the latency columns say how late); one that does not gets one run there. Goal (issue 16):",
        "LiveCharts delivers at least 10x each peer's points/s per server core, at 100 viewers and",
        "at 500 where the peer holds 500.",
        "",
        *how_it_ran([command, "# or, as part of make bench: .venv/bin/python -m bench --only peers"], took),
        "",
        table(rows, args),
        "",
        "By these figures:",
        "",
        verdicts(rows, args),
    ]
    if any("failed" in r for r in rows):
        parts += ["", "Runs that failed:", "", failures(rows)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    # Stopped from outside (timeout, make bench's allowance): unwind, so the servers go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    rows = measure(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows, args))
    print(verdicts(rows, args))
    if any("failed" in r for r in rows):
        print(failures(rows))


if __name__ == "__main__":
    main()
