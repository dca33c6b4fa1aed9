"""The fan-out goals table: each goal judged from its configuration's runs, never passed unrun; and
the main table's *overload* label, for what is beyond those goals only."""

from __future__ import annotations

from typing import Any

from bench import fanout
from bench.fanout_goals import GOALS, goals_table


def run(viewers: int, *, frames_per_socket: float, p99: float, lost: int, cpu: float) -> dict[str, Any]:
    return {
        "target": "livecharts",
        "viewers": viewers,
        "rate": 1000,
        "streams": 1,
        "frames_per_s": frames_per_socket * viewers,
        "p99_ms": p99,
        "lost": lost,
        "server_cpu": cpu,
    }


def line(table: str, viewers: str, figure: str) -> str:
    (found,) = [row for row in table.splitlines() if f"| {viewers} x 1,000 | {figure} |" in row]
    return found


def test_each_goal_is_met_or_missed_by_the_median_and_loss_by_the_worst_run() -> None:
    rows = [
        run(1000, frames_per_socket=19.5, p99=120, lost=0, cpu=30),
        run(1000, frames_per_socket=19.6, p99=900, lost=0, cpu=30),
        run(1000, frames_per_socket=19.4, p99=110, lost=0, cpu=30),
        # 2,000 viewers x 19.5 frames/s = 39,000 frames/s; 30% of a core is 7.7 µs a frame.
        run(2000, frames_per_socket=19.5, p99=140, lost=0, cpu=30),
        run(2000, frames_per_socket=19.5, p99=140, lost=3, cpu=30),
        run(2000, frames_per_socket=19.5, p99=140, lost=0, cpu=60),
    ]
    table = goals_table(rows)
    assert line(table, "1,000", "latency p99 ms").endswith("| 120 | ≤ 250 | met |")
    assert line(table, "1,000", "points missing (worst run)").endswith("| 0 | 0 | met |")
    assert line(table, "2,000", "frames/s per socket").endswith("| 19.5 | ≥ 19 | met |")
    assert line(table, "2,000", "points missing (worst run)").endswith("| 3 | 0 | **missed** |")
    assert line(table, "2,000", "daphne µs CPU per frame").endswith("| 7.7 | ≤ 8 | met |")


def test_a_widened_tick_and_a_costly_frame_are_missed() -> None:
    rows = [run(2000, frames_per_socket=9.4, p99=430, lost=0, cpu=60)]
    table = goals_table(rows)
    assert line(table, "2,000", "frames/s per socket").endswith("| 9.4 | ≥ 19 | **missed** |")
    assert line(table, "2,000", "latency p99 ms").endswith("| 430 | ≤ 150 | **missed** |")
    assert line(table, "2,000", "daphne µs CPU per frame").endswith("| 31.9 | ≤ 8 | **missed** |")


def test_a_frame_cost_just_over_the_goal_is_shown_over_it() -> None:
    # 39,000 frames/s at 31.356% of a core: 8.04 µs a frame, which one decimal shows as 8.0.
    table = goals_table([run(2000, frames_per_socket=19.5, p99=140, lost=0, cpu=31.356)])
    assert line(table, "2,000", "daphne µs CPU per frame").endswith("| 8.04 | ≤ 8 | **missed** |")


def test_a_configuration_that_did_not_run_is_not_measured_rather_than_met() -> None:
    failed = {**run(2000, frames_per_socket=20, p99=50, lost=0, cpu=10), "failed": "restarted"}
    table = goals_table([failed])
    assert line(table, "2,000", "frames/s per socket").endswith("| not run | ≥ 19 | not measured |")
    assert line(table, "1,000", "latency p99 ms").endswith("| not run | ≤ 250 | not measured |")


def test_the_target_is_the_largest_configuration_the_goals_name() -> None:
    assert max((goal.viewers, goal.rate) for goal in GOALS) == fanout.TARGET == (2000, 1000)


def test_only_rows_beyond_the_goals_are_labelled_overload_whether_or_not_asked_by_flag() -> None:
    args = fanout.parse_args(
        ["--viewers", "1000,2000", "--rates", "100,1000,10000", "--overload", "2000x1000,4000x1000"]
    )
    done = {"p50_ms": 40, "p99_ms": 80, "server_wait": 1, "redis_cpu": 1, "clients_cpu": 5}
    done |= {"server_rss_mb": 150, "resubscribes": 0}
    rows = [
        {**run(viewers, frames_per_socket=20, p99=80, lost=0, cpu=30), **done, "rate": rate}
        | {"points_per_s": viewers * rate}
        for viewers, rate in [(1000, 1000), (2000, 100), (2000, 1000), (2000, 10000), (4000, 1000)]
    ]
    labels = [line.split(" | ")[0] for line in fanout.table(rows, args).splitlines()[2:]]
    assert labels == ["| 2,000", "| 1,000", "| 2,000", "| 2,000 (overload)", "| 4,000 (overload)"]


def test_the_send_floor_is_written_under_the_goals_only_when_the_goal_ran(monkeypatch) -> None:
    from bench import fanout_goals

    measured: list[tuple[int, int]] = []

    def floor_us(sockets: int, points: int) -> tuple[float, int]:
        measured.append((sockets, points))
        return 7.4, 1157

    monkeypatch.setattr(fanout_goals.send_floor, "floor_us", floor_us)
    assert fanout_goals.floor_note([run(1000, frames_per_socket=20, p99=60, lost=0, cpu=19)]) == ""
    assert measured == []
    note = fanout_goals.floor_note([run(2000, frames_per_socket=20, p99=70, lost=0, cpu=40)])
    assert measured == [(2000, 50)]
    # 40% of a core over 40,000 frames/s: 10.0 µs a frame, 2.6 above the floor.
    assert "**7.4 µs**" in note and "1,157-byte" in note and "10.0 µs a frame, 2.6 µs above it" in note
