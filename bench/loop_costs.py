"""Where a server process's event-loop thread spends its CPU, callback by callback.

    LIVECHARTS_LOOP_COSTS=/tmp/daphne.json PYTHONPATH=bench/loop_costs_hook \\
        .venv/bin/python -m bench.peers --viewers 100 --stacks livecharts --runs 1 --seconds 30
    .venv/bin/python -m bench.loop_costs /tmp/daphne.json

Every asyncio callback the loop runs (`Handle._run`: a task's step, a timer, a socket turning
readable) is timed on the thread's CPU-time clock and charged to a name: the coroutine's
qualified name for a task's step, the callback's otherwise. At exit the totals are written as
JSON. A sampling profiler cannot say this on a 2-core machine: the loop thread, woken from
epoll, often waits for a core, and a sampler counts that wait as time in `select`.

The hook (bench/loop_costs_hook/sitecustomize.py) installs itself only in a process whose
program is named in LIVECHARTS_LOOP_COSTS_PROGRAMS (default: daphne), so the bench's clients
and feeds, which inherit the environment, are not timed.
"""

from __future__ import annotations

import argparse
import asyncio.events
import atexit
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "LIVECHARTS_LOOP_COSTS"
PROGRAMS_ENV = "LIVECHARTS_LOOP_COSTS_PROGRAMS"


class LoopCosts:
    """CPU ns and calls per callback name, and the thread's CPU since the first callback."""

    def __init__(self) -> None:
        self.cpu_ns: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.started_ns: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "thread_cpu_ns": time.thread_time_ns() - (self.started_ns or 0),
            "cpu_ns": dict(self.cpu_ns),
            "calls": dict(self.calls),
        }


def callback_name(handle: asyncio.events.Handle) -> str:
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', type(coro).__name__)}"
    return getattr(callback, "__qualname__", None) or type(callback).__name__


def install(costs: LoopCosts) -> Callable[[], None]:
    """Time every callback of every asyncio loop in this process (one thread runs them);
    returns what undoes it."""
    run = asyncio.events.Handle._run
    clock = time.thread_time_ns

    def timed_run(handle: asyncio.events.Handle) -> None:
        began = clock()
        if costs.started_ns is None:
            costs.started_ns = began
        try:
            run(handle)
        finally:
            name = callback_name(handle)
            costs.cpu_ns[name] += clock() - began
            costs.calls[name] += 1

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]

    def uninstall() -> None:
        asyncio.events.Handle._run = run  # type: ignore[method-assign]

    return uninstall


def install_from_environment(program: str) -> None:
    """The hook's entry: time this process when LIVECHARTS_LOOP_COSTS names where to write and
    `program` is one of LIVECHARTS_LOOP_COSTS_PROGRAMS."""
    path = os.environ.get(ENV)
    programs = os.environ.get(PROGRAMS_ENV, "daphne").split(",")
    if not path or os.path.basename(program) not in programs:
        return
    costs = LoopCosts()
    install(costs)
    atexit.register(lambda: Path(path).write_text(json.dumps(costs.as_json())))


def report(data: dict[str, Any], top: int = 15) -> str:
    total = data["thread_cpu_ns"]
    in_callbacks = sum(data["cpu_ns"].values())
    lines = [
        "| callback | CPU ms | calls | µs a call | share of the thread % |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    ranked = sorted(data["cpu_ns"].items(), key=lambda item: -item[1])
    for name, ns in ranked[:top]:
        calls = data["calls"][name]
        share = 100 * ns / total
        lines.append(f"| {name} | {ns / 1e6:,.1f} | {calls:,} | {ns / calls / 1e3:,.1f} | {share:.0f} |")
    outside = total - in_callbacks
    share = 100 * outside / total
    lines.append(f"| (the loop itself: select, timers) | {outside / 1e6:,.1f} | | | {share:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="the JSON a timed process wrote at exit")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    print(report(json.loads(args.path.read_text()), top=args.top))


if __name__ == "__main__":
    main()
