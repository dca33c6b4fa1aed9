"""Memory: daphne's RSS with 0 / 1,000 / 5,000 idle viewers, and the memory per connection.

    .venv/bin/python -m bench.memory --viewers 1000,5000 --runs 3

One daphne (`livecharts.asgi`, production settings) over RedisPubSubChannelLayer on a private
redis-server, a throwaway SQLite file with one public stream and no points flowing. Viewers are
websocket sockets in two client processes (bench/idle_clients.py): each connects, subscribes
to the stream (the realistic idle viewer: a page left open on a quiet stream) and then sends
nothing. RSS (VmRSS from /proc) is read with no viewer, then at each count once every socket
is subscribed and daphne has settled; memory per viewer is the growth over the count. A fresh
daphne each run. The file-descriptor limit is raised to its hard limit for this process and
the processes it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.fanout import Worker, bench_bed, cpu_seconds, rss_mb, spread
from bench.report import beside_verdict, how_it_ran
from tests.processes import Stack, seed_streams

STREAM = "memory-idle"
CLIENTS = 2
TARGET_KB = 50


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Soft limit up to the hard one when `needed` file descriptors would not fit; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, needed))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def settle(pid: int, seconds: float = 10.0) -> None:
    """Wait until daphne is idle (under 5% of a core over 0.3 s), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.3)
        if cpu_seconds(pid) - before < 0.015:
            return


async def run_once(stack: Stack, args: argparse.Namespace, run: int) -> list[dict[str, Any]]:
    await asyncio.to_thread(stack.start_daphne)
    pid = stack.procs["daphne"].pid
    clients = [Worker("bench.idle_clients", stack.env) for _ in range(CLIENTS)]
    rows = []
    try:
        for client in clients:
            await client.start()
            await client.send(json.dumps({"url": stack.ws_url, "origin": stack.base_url, "stream": STREAM}))
        await settle(pid)
        have, retried = 0, [0]
        # Later runs stop below the largest count: one run there keeps the bench within its time.
        levels = args.viewers if run < args.full_runs else args.viewers[:-1]
        for viewers in [0, *levels]:
            more = viewers - have
            started = time.monotonic()
            if more > 0:
                shares = [more // CLIENTS + (i < more % CLIENTS) for i in range(CLIENTS)]
                for client, share in zip(clients, shares, strict=True):
                    await client.send(f"OPEN {share}")
                retried = [int((await client.expect("HAVE", 600)).split()[1]) for client in clients]
                have = viewers
            connected = time.monotonic()
            await settle(pid)
            row = {
                "run": run,
                "viewers": viewers,
                "rss_mb": rss_mb(pid),
                "fds": open_fds(pid),
                "retried": sum(retried),
            }
            row["open_s"] = connected - started
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        for client in clients:
            await client.send("STOP")
        for client in clients:
            await client.expect("STOPPED", 60)
    finally:
        for client in clients:
            await client.stop()
        stack.stop("daphne")
    return rows


async def run_all(stack: Stack, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The runs --parallel at a time, each its own daphne (own port) and client processes: a
    process's RSS is its own whatever runs beside it, and opening thousands of sockets through
    one daphne is bound by that daphne's one core."""
    rows: list[dict[str, Any]] = []
    for first in range(0, args.runs, args.parallel):
        batch = range(first, min(args.runs, first + args.parallel))
        stacks = [Stack(workdir=stack.workdir, env=stack.env) for _ in batch]
        for result in await asyncio.gather(
            *(run_once(s, args, run) for s, run in zip(stacks, batch, strict=True))
        ):
            rows += result
    return rows


def measure(args: argparse.Namespace) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    limits = raise_fd_limit(max(args.viewers) + 1_000)
    with bench_bed("memory", redis_url=args.redis_url, keep=False, env={}) as bed:
        stack = bed.stack
        result = stack.manage("migrate", "--noinput", "-v", "0")
        assert result.returncode == 0, result.stderr
        seed_streams(stack, [{"slug": STREAM, "title": "idle", "visibility": "public", "feed_kind": "push"}])
        return asyncio.run(run_all(stack, args)), limits


def per_viewer_kb(rows: list[dict[str, Any]], viewers: int) -> list[float]:
    """Per run: RSS growth from no viewer to `viewers`, per viewer, in KB."""
    slopes = []
    for run in sorted({r["run"] for r in rows}):
        base = next(r for r in rows if r["run"] == run and r["viewers"] == 0)
        at = next((r for r in rows if r["run"] == run and r["viewers"] == viewers), None)
        if at is not None and viewers:
            slopes.append((at["rss_mb"] - base["rss_mb"]) * 1024 / viewers)
    return slopes


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| idle viewers | daphne RSS MB | daphne open files | KB per viewer (growth from 0) "
        "| handshakes retried per run |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for viewers in [0, *args.viewers]:
        runs = [r for r in rows if r["viewers"] == viewers]
        slope = spread(per_viewer_kb(rows, viewers), "{:.1f}") if viewers else "-"
        lines.append(
            f"| {viewers:,} | {spread([r['rss_mb'] for r in runs], '{:.1f}')} "
            f"| {spread([r['fds'] for r in runs])} | {slope} "
            f"| {' / '.join(str(r['retried']) for r in runs)} |"
        )
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    most = max(args.viewers)
    slopes = per_viewer_kb(rows, most)
    if not slopes:
        return ""
    kb = statistics.median(slopes)
    shown = beside_verdict(kb, decimals=1, met=lambda v: v <= TARGET_KB)
    if kb <= TARGET_KB:
        return f"Target (at most {TARGET_KB} KB per idle viewer): **met**, {shown} KB per viewer at {most:,}."
    return (
        f"Target (at most {TARGET_KB} KB per idle viewer): **missed** by {kb - TARGET_KB:,.2f} KB "
        f"({kb / TARGET_KB:.2f}x), {shown} KB per viewer at {most:,}."
    )


def section(quick: bool) -> str:
    """docs/performance.md's memory section (bench/__main__.py)."""
    argv = ["--viewers", "50,200", "--runs", "3"] if quick else ["--viewers", "1000,5000", "--runs", "3"]
    argv += ["--parallel", "3"]
    args = parse_args(argv)
    started = time.monotonic()
    rows, (before, after) = measure(args)
    took = time.monotonic() - started
    most = max(args.viewers)
    limit = (
        f"{before:,}"
        if before == after
        else f"{before:,}, raised to {after:,} for the bench and its processes"
    )
    return "\n".join(
        [
            "## Memory: idle viewers on one daphne",
            "",
            "One daphne process (`livecharts.asgi`, production settings) over `RedisPubSubChannelLayer` on a",
            "private redis-server, one public stream with no points flowing. Each viewer is a websocket",
            "that connects, subscribes to the stream and then stays idle (a page left open on a quiet",
            "stream: the realistic idle viewer; not signed in, so no session is loaded), opened from two",
            "client processes (bench/idle_clients.py, 100 handshakes at a time). Daphne's RSS (`VmRSS`)",
            "is read with no viewer, then at each count once every socket has its `subscribed` answer and",
            "daphne is idle; memory per viewer is the growth from no viewer, per viewer. A fresh daphne",
            "each run; "
            + (
                f"{args.full_runs} run(s) go up to {most:,} viewers and the others stop at "
                f"{args.viewers[-2]:,}."
                if args.full_runs < args.runs and len(args.viewers) > 1
                else f"{args.runs} runs, each up to {most:,} viewers"
            )
            + (
                f", {args.parallel} at a time (each its own daphne on its own port and its own client "
                "processes: a process's RSS is its own, and opening sockets is bound by each daphne's "
                "one core, so runs side by side take less time than one after another)."
                if args.parallel > 1
                else "."
            ),
            f"Open-file limit (`ulimit -n`): {limit}.",
            "",
            *how_it_ran([shlex.join([".venv/bin/python", "-m", "bench.memory", *argv])], took),
            "",
            table(rows, args),
            "",
            verdict(rows, args),
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    numbers = lambda text: sorted(int(n) for n in text.split(",") if n)  # noqa: E731
    parser.add_argument("--viewers", type=numbers, default=[1000, 5000], help="idle viewer counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--full-runs",
        type=int,
        default=3,
        help="runs that go up to the largest count (the others stop before)",
    )
    parser.add_argument(
        "--parallel", type=int, default=1, help="runs at the same time, each with its own daphne"
    )
    parser.add_argument("--redis-url", default="", help="a shared Redis (default: a private redis-server)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows, (before, after) = measure(args)
    print(f"file descriptors: soft limit {before} -> {after}")
    print(table(rows, args))
    print()
    print(verdict(rows, args))


if __name__ == "__main__":
    main()
