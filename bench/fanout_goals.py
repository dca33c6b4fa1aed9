"""The fan-out goals, each beside what the main table measured for it (met or missed).

Issue 5: one daphne carries 1,000 viewers x 1,000 points/s, every point delivered, p99 at
most 250 ms. Issue 16 §2: 2,000 viewers x 1,000 points/s at 19 frames/s per socket or more
(the tick not widened), p99 at most 150 ms, nothing lost, and a frame costing daphne at most
8 µs of CPU. A figure is the median of the configuration's runs; a goal on a configuration
that did not run (cut by --budget, or every run failed) says so rather than passing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import send_floor
from bench.fanout import Config, frame_us, group, median
from bench.report import beside_verdict

Row = dict[str, Any]


@dataclass(frozen=True)
class Goal:
    issue: str
    viewers: int
    rate: int
    figure: str  # what is measured, as the table names it
    wanted: str  # the goal, as written beside it
    measure: Callable[[list[Row]], float]  # the runs' median
    met: Callable[[float], bool]
    decimals: int = 0  # shown with more where these would read as the goal's other side


def _frames_per_socket(runs: list[Row]) -> float:
    return median([r["frames_per_s"] / r["viewers"] for r in runs])


def _p99(runs: list[Row]) -> float:
    return median([r["p99_ms"] for r in runs])


def _worst_missing(runs: list[Row]) -> float:
    # Nothing lost means in every run, not in the median one.
    return float(max(r["lost"] for r in runs))


def _frame_us(runs: list[Row]) -> float:
    return median([frame_us(r) for r in runs])


GOALS = [
    Goal("5", 1000, 1000, "points missing (worst run)", "0", _worst_missing, lambda v: v == 0),
    Goal("5", 1000, 1000, "latency p99 ms", "≤ 250", _p99, lambda v: v <= 250),
    Goal("16 §2", 2000, 1000, "frames/s per socket", "≥ 19", _frames_per_socket, lambda v: v >= 19, 1),
    Goal("16 §2", 2000, 1000, "latency p99 ms", "≤ 150", _p99, lambda v: v <= 150),
    Goal("16 §2", 2000, 1000, "points missing (worst run)", "0", _worst_missing, lambda v: v == 0),
    Goal("16 §2", 2000, 1000, "daphne µs CPU per frame", "≤ 8", _frame_us, lambda v: v <= 8, 1),
]


def goals_table(rows: list[Row], args: argparse.Namespace | None = None) -> str:
    """One line per goal: the issue, the configuration, the figure, the goal, met or missed."""
    lines = [
        "| issue | viewers x points/s | figure | measured (median of runs) | goal | |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for goal in GOALS:
        runs = group(rows, Config("livecharts", goal.viewers, goal.rate))
        head = f"| {goal.issue} | {goal.viewers:,} x {goal.rate:,} | {goal.figure}"
        if not runs:
            lines.append(f"{head} | not run | {goal.wanted} | not measured |")
            continue
        value = goal.measure(runs)
        verdict = "met" if value == value and goal.met(value) else "**missed**"
        shown = beside_verdict(value, decimals=goal.decimals, met=goal.met)
        lines.append(f"{head} | {shown} | {goal.wanted} | {verdict} |")
    return "\n".join(lines)


# The configuration whose frame cost issue 16 §2 judges, and the points in each of its frames.
FLOOR_CONFIG = Config("livecharts", 2000, 1000)
FLOOR_POINTS = 1000 // 20  # a 50 ms tick of a 1,000 points/s stream


def floor_note(rows: list[Row]) -> str:
    """The send floor under the frame-cost goal, measured now (bench/send_floor.py, a reader
    process as the viewers read): what the kernel alone charges daphne's `send` of such a frame
    on this machine, beside what daphne spent per frame. Empty when that configuration did not run."""
    runs = group(rows, FLOOR_CONFIG)
    if not runs:
        return ""
    floor, size = send_floor.floor_us(FLOOR_CONFIG.viewers, FLOOR_POINTS)
    spent = _frame_us(runs)
    return (
        f"The floor under the last goal, measured after the runs: a bare `socket.send` of a "
        f"{size:,}-byte points frame ({FLOOR_POINTS} points, one tick of the stream) to "
        f"{FLOOR_CONFIG.viewers:,} loopback sockets read by another process as the viewers read "
        f"theirs (`.venv/bin/python -m bench.send_floor --points {FLOOR_POINTS} --reader process`, "
        f"median of 3) costs **{floor:.1f} µs** of CPU on this machine; daphne spent {spent:.1f} µs "
        f"a frame, {spent - floor:.1f} µs above it (the tick's Redis read, the lane's checks, the "
        "Python around each send)."
    )
