"""Fan-out: how many points one daphne process delivers to N viewers of one stream.

    .venv/bin/python -m bench.fanout --viewers 10,100,500,1000 --rates 100,1000 --runs 3

One real daphne (`livecharts.asgi`) over RedisPubSubChannelLayer, on a private redis-server
(a free port, nothing saved; or --redis-url with a unique key prefix, deleted afterwards), and
a throwaway SQLite file with one public stream per run. For each run: viewer processes
(bench/clients.py, one per 250 viewers, at most 2) connect and subscribe, a publisher process
(bench/publisher.py) feeds the stream at an exact rate through streams.broadcast.Broadcaster,
and after a warm-up the window is measured: points and frames delivered per second (all
viewers), publish-to-receipt latency, the CPU of daphne, redis, the publisher and the clients
(/proc), and points lost after gap-fill. With --baseline, every configuration also runs
against baseline (a) (bench/baseline_asgi.py: one group_send and one frame per point) in its
own daphne, interleaved with ours, and the ratio of points delivered per second is reported.
Every process is bounded in time and stopped at the end; everything is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.processes import BIN, Stack, free_port, make_stack, seed_streams

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
VIEWERS_PER_CLIENT = 250
MAX_CLIENTS = 2
APPS = {"livecharts": "livecharts.asgi:application", "baseline": "bench.baseline_asgi:application"}
PROTOCOL = {"livecharts": "livecharts", "baseline": "point"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc, no psutil needed)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Server:
    """One daphne serving one ASGI app; restarted when a run leaves it with a backlog."""

    stack: Stack
    app: str

    @property
    def name(self) -> str:
        return f"daphne-{self.app}"

    @property
    def pid(self) -> int:
        return self.stack.procs[self.name].pid

    def start(self) -> None:
        argv = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.stack.port), APPS[self.app]]
        self.stack.start(self.name, argv)
        self.stack.wait_http()
        print(f"{self.name} pid {self.pid}", file=sys.stderr, flush=True)

    def restart(self) -> None:
        self.stack.stop(self.name)
        self.start()

    def settled(self, seconds: float = 5.0) -> bool:
        """Wait for daphne to go quiet (under 10% of a core); False if it is still busy."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            before = cpu_seconds(self.pid)
            time.sleep(0.5)
            if cpu_seconds(self.pid) - before < 0.05:
                return True
        return False


@contextlib.contextmanager
def private_redis(url: str) -> Iterator[tuple[str, int | None]]:
    """(url, pid): a private redis-server on a free port, or the given one (pid unknown)."""
    if url:
        yield url, None
        return
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def start_process(module: str, args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env=env,
        cwd=str(ROOT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=2**28,  # result lines carry latency samples
    )


async def expect_line(proc: asyncio.subprocess.Process, prefix: str, seconds: float) -> str:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), seconds)).decode()
        if not line:
            assert proc.stderr is not None
            error = (await proc.stderr.read()).decode()[-2000:]
            raise RuntimeError(f"a bench process ended before {prefix}: {error}")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(share * len(values)))]


async def run_once(
    server: Server, *, slug: str, viewers: int, rate: int, args: argparse.Namespace, redis_pid: int | None
) -> dict[str, Any]:
    env = server.stack.env
    protocol = PROTOCOL[server.app]
    total = round(rate * (args.warmup + args.seconds))
    publisher = await start_process(
        "bench.publisher",
        [
            *("--stream", slug, "--rate", str(rate), "--seconds", str(args.warmup + args.seconds)),
            *("--protocol", protocol),
        ],
        env,
    )
    clients_count = min(MAX_CLIENTS, -(-viewers // VIEWERS_PER_CLIENT))
    shares = [viewers // clients_count + (i < viewers % clients_count) for i in range(clients_count)]
    clients = []
    procs = [publisher]
    try:
        for share in shares:
            client = await start_process(
                "bench.clients",
                [
                    *("--url", server.stack.ws_url, "--origin", server.stack.base_url, "--stream", slug),
                    *("--viewers", str(share), "--warmup", str(args.warmup), "--seconds", str(args.seconds)),
                    *("--drain", str(args.drain), "--expect", str(total), "--protocol", protocol),
                ],
                env,
            )
            clients.append(client)
            procs.append(client)
        for proc in procs:
            await expect_line(proc, "READY", 120)
        start = time.time() + 0.3
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start!r}\n".encode())
            await proc.stdin.drain()
        window = (start + args.warmup, start + args.warmup + args.seconds)
        await asyncio.sleep(window[0] - time.time())
        daphne0, redis0 = cpu_seconds(server.pid), redis_pid and cpu_seconds(redis_pid)
        await asyncio.sleep(window[1] - time.time())
        daphne1, redis1 = cpu_seconds(server.pid), redis_pid and cpu_seconds(redis_pid)
        rss = rss_mb(server.pid)
        timeout = args.drain + 30
        published = json.loads(await expect_line(publisher, "RESULT", timeout))
        results = [json.loads(await expect_line(client, "RESULT", timeout)) for client in clients]
    finally:
        for proc in procs:
            await stop(proc)
    latencies = [ms for result in results for ms in result["latencies"]]
    return {
        "app": server.app,
        "viewers": viewers,
        "rate": rate,
        "points_per_s": sum(r["points"] for r in results) / args.seconds,
        "frames_per_s": sum(r["frames"] for r in results) / args.seconds,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "daphne_cpu": 100 * (daphne1 - daphne0) / args.seconds,
        "redis_cpu": 100 * (redis1 - redis0) / args.seconds if redis_pid else float("nan"),
        "clients_cpu": max(100 * r["cpu_seconds"] / args.seconds for r in results),
        "clients": len(results),
        "daphne_rss_mb": rss,
        "published": published["published"],
        "publisher_lag_s": published["max_lag"],
        "lost": sum(r["lost"] for r in results),
        "resubscribes": sum(r["resubscribes"] for r in results),
        "gaps": sum(r["gaps"] for r in results),
        "complete": sum(r["complete"] for r in results),
        "load": os.getloadavg()[0],
    }


def configurations(args: argparse.Namespace) -> list[tuple[int, int]]:
    return [(viewers, rate) for rate in args.rates for viewers in args.viewers]


async def run_all(args: argparse.Namespace, stack: Stack, redis_pid: int | None) -> list[dict[str, Any]]:
    servers = [Server(stack, "livecharts")]
    if args.baseline:
        baseline_stack = Stack(workdir=stack.workdir, env=stack.env)
        servers.append(Server(baseline_stack, "baseline"))
    rows: list[dict[str, Any]] = []
    try:
        for server in servers:
            server.start()
        for run in range(args.runs):
            for viewers, rate in configurations(args):
                for server in servers:
                    if server.app == "baseline" and viewers not in args.baseline_viewers:
                        continue
                    slug = f"fan-{viewers}-{rate}-{run}"
                    if not server.settled():
                        server.restart()  # a backlog from the last run would cost this one
                    row = await run_once(
                        server, slug=slug, viewers=viewers, rate=rate, args=args, redis_pid=redis_pid
                    )
                    row["run"] = run
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        stack.stop_all()
        for server in servers:
            server.stack.stop_all()
    return rows


def slugs(args: argparse.Namespace) -> list[str]:
    return [f"fan-{v}-{r}-{run}" for run in range(args.runs) for v, r in configurations(args)]


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    prefix = f"bench-fanout-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    try:
        with private_redis(args.redis_url) as (url, redis_pid):
            stack = make_stack(workdir=workdir, redis_url=url, prefix=prefix)
            stack.env.update(
                {
                    "DEBUG": "false",
                    "SECRET_KEY": secrets.token_hex(32),
                    "SECURE_SSL_REDIRECT": "false",  # plain http on loopback
                    "LIVECHARTS_STORE_POINTS": "false",
                    "LIVECHARTS_TICK_MS": str(args.tick_ms),
                }
            )
            result = stack.manage("migrate", "--noinput", "-v", "0")
            assert result.returncode == 0, result.stderr
            specs = [
                {
                    "slug": slug,
                    "title": slug,
                    "visibility": "public",
                    "feed_kind": "push",
                    "window_points": 100_000,
                }
                for slug in slugs(args)
            ]
            seed_streams(stack, specs)
            try:
                return asyncio.run(run_all(args, stack, redis_pid))
            finally:
                client = redis.Redis.from_url(url)
                keys = list(client.scan_iter(f"{prefix}:*"))
                if keys:
                    client.delete(*keys)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# Reporting -------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """median (min-max)"""
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return "-"
    median = fmt.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def group(rows: list[dict[str, Any]], app: str, viewers: int, rate: int) -> list[dict[str, Any]]:
    return [r for r in rows if r["app"] == app and r["viewers"] == viewers and r["rate"] == rate]


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| viewers | points/s in | points/s delivered | frames/s | latency p50 ms | p99 ms "
        "| daphne CPU % | redis CPU % | clients CPU % (busiest) | missing per run | re-subscribes per run |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for viewers, rate in configurations(args):
        runs = group(rows, "livecharts", viewers, rate)
        if not runs:
            continue
        lines.append(
            f"| {viewers:,} | {rate:,} | {spread([r['points_per_s'] for r in runs])} "
            f"| {spread([r['frames_per_s'] for r in runs])} "
            f"| {spread([r['p50_ms'] for r in runs])} | {spread([r['p99_ms'] for r in runs])} "
            f"| {spread([r['daphne_cpu'] for r in runs])} | {spread([r['redis_cpu'] for r in runs])} "
            f"| {spread([r['clients_cpu'] for r in runs])} "
            f"| {' / '.join(str(r['lost']) for r in runs)} "
            f"| {' / '.join(str(r['resubscribes']) for r in runs)} |"
        )
    return "\n".join(lines)


def baseline_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| viewers | points/s in | LiveCharts points/s | baseline (a) points/s | ratio "
        "| LiveCharts / baseline points per daphne CPU-second | baseline p50 / p99 ms "
        "| baseline daphne CPU % | baseline missing per run |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for viewers, rate in configurations(args):
        ours, theirs = group(rows, "livecharts", viewers, rate), group(rows, "baseline", viewers, rate)
        if not ours or not theirs:
            continue
        pairs = [(o, t) for o in ours for t in theirs if o["run"] == t["run"] and t["points_per_s"] > 0]
        ratios = [o["points_per_s"] / t["points_per_s"] for o, t in pairs]
        efficiency = [
            (o["points_per_s"] / max(o["daphne_cpu"], 1)) / (t["points_per_s"] / max(t["daphne_cpu"], 1))
            for o, t in pairs
        ]
        lost = " / ".join(f"{r['lost']:,}" for r in theirs)
        lines.append(
            f"| {viewers:,} | {rate:,} | {spread([r['points_per_s'] for r in ours])} "
            f"| {spread([r['points_per_s'] for r in theirs])} | {spread(ratios, '{:.1f}x')} "
            f"| {spread(efficiency, '{:.1f}x')} "
            f"| {spread([r['p50_ms'] for r in theirs])} / {spread([r['p99_ms'] for r in theirs])} "
            f"| {spread([r['daphne_cpu'] for r in theirs])} "
            f"| {lost} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    numbers = lambda text: [int(n) for n in text.split(",") if n]  # noqa: E731
    parser.add_argument("--viewers", type=numbers, default=[10, 100, 500, 1000])
    parser.add_argument("--rates", type=numbers, default=[100, 1000], help="points/s")
    parser.add_argument("--runs", type=int, default=3, help="runs of each configuration (at least 3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of each run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds published before measuring")
    parser.add_argument(
        "--drain", type=float, default=5.0, help="seconds allowed after the window for the rest"
    )
    parser.add_argument("--tick-ms", type=int, default=50)
    parser.add_argument("--baseline", action="store_true", help="also run baseline (a), interleaved")
    parser.add_argument(
        "--baseline-viewers", type=numbers, default=[10, 100, 500, 1000], help="viewer counts for baseline"
    )
    parser.add_argument("--redis-url", default="", help="a shared Redis (default: a private redis-server)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (daphne logs)")
    parser.add_argument("--json", type=Path, help="also write every run's row here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = measure(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows, args))
    if args.baseline:
        print()
        print(baseline_table(rows, args))


if __name__ == "__main__":
    main()
