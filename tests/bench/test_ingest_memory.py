"""The ingest and memory benches, smoke-sized: the harness measures and its tables fill.

One run of each, a few streams or viewers, under a second of window: this proves the harness
(worker process, counters read from Redis, the store, idle viewers, tables), not the figures.
"""

from __future__ import annotations

import pytest

from bench import ingest, memory
from tests.services import require_redis

pytestmark = [pytest.mark.timeout(150)]


@pytest.mark.e2e
@pytest.mark.redis
def test_ingest_counts_points_that_reach_history_and_the_database() -> None:
    args = ingest.parse_args(
        ["--streams", "1,3", "--runs", "1", "--seconds", "0.6", "--warmup", "0.3", "--rate", "2000"]
    )
    args.redis_url = require_redis()
    rows = ingest.measure(args)

    assert [r["streams"] for r in rows] == [1, 3]
    for row in rows:
        assert row["points_per_s"] > 0 and row["messages_per_s"] > 0, row
        assert row["stored"] == row["appended"] > 0, row  # the store kept up by the end of the run
        assert row["json_loads_us"] > 0 and row["ratio"] > 1, row
        # The worker's own counts over the window: every feed read, what it read had arrived.
        assert row["ticks_per_s"] > 0 and row["reads_per_feed_s"][0] > 0, row
        # The window's points are the worker's count between two flushes' starts.
        assert row["history_points"] > 0 and row["history_s"] > 0, row
        assert row["points_per_s"] == row["history_points"] / row["history_s"], row
        assert 0 < row["read_per_s"] <= row["due_per_s"] + row["streams"] / row["window_s"], row
    assert "| 3 | 2,000 |" in ingest.table(rows, args)
    assert "| 3 |" in ingest.source_table(rows, args)


def _target_row(**changes: float) -> dict:
    row = {"streams": ingest.TARGET_STREAMS, "offered_per_s": 110_000.0, "points_per_s": 104_000.0}
    row.update({"worker_cpu": 90.0, "dropped_per_s": 0.0, "stored": 500_000, "appended": 500_000})
    return {**row, **changes}


@pytest.mark.parametrize(
    ("changes", "met"),
    [
        ({}, True),
        ({"points_per_s": 99_000.0}, False),  # short of the target, however little
        ({"dropped_per_s": 120.0}, False),  # the sources lost points: it did not keep up
        ({"stored": 499_990}, False),  # not every point stored once
        ({"stored": 0}, False),  # nothing reached the database
    ],
)
def test_ingest_verdict_wants_the_target_nothing_lost_every_point_stored(changes: dict, met: bool) -> None:
    rows = [_target_row(), _target_row(**changes), _target_row(**changes)]
    text = ingest.verdict(rows)
    assert ("**met**" in text) is met, text
    assert ("**missed**" in text) is not met, text


def test_ingest_verdict_shows_a_rate_just_short_of_the_target_as_short_of_it() -> None:
    text = ingest.verdict([_target_row(points_per_s=99_999.6)] * 3)
    assert "**missed**, 99,999.6 of the 110,000 points/s" in text, text


@pytest.mark.parametrize(
    ("growth_mb", "said"),
    [
        (0.0488, "**met**, 50.0 KB"),  # 49.97 KB a viewer: within the target, shown as 50.0
        (0.1694, "**missed** by 123.47 KB (3.47x), 173.5 KB"),
        (0.04885, "**missed** by 0.02 KB (1.00x), 50.02 KB"),  # not "50.0" beside missed
    ],
)
def test_memory_verdict_reads_on_its_side_of_the_target(growth_mb: float, said: str) -> None:
    rows = [
        {"run": 0, "viewers": 0, "rss_mb": 100.0},
        {"run": 0, "viewers": 1000, "rss_mb": 100.0 + growth_mb * 1000},
    ]
    text = memory.verdict(rows, memory.parse_args(["--viewers", "1000"]))
    assert said in text, text


@pytest.mark.e2e
@pytest.mark.redis
def test_memory_reads_daphnes_rss_with_idle_subscribed_viewers() -> None:
    args = memory.parse_args(["--viewers", "5", "--runs", "1", "--redis-url", require_redis()])
    rows, (before, after) = memory.measure(args)

    assert [r["viewers"] for r in rows] == [0, 5]
    assert rows[1]["fds"] >= rows[0]["fds"] + 5  # daphne holds every viewer's socket
    assert after >= before
    assert "| 5 |" in memory.table(rows, args)
