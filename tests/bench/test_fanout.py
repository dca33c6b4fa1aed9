"""The fan-out bench harness, smoke-sized: every stack answers its viewers and every table fills.

One run per configuration, 3 viewers, under a second of window each: this proves the harness
(servers, publisher protocols, client modes, tables), not the figures.
"""

from __future__ import annotations

import pytest

from bench import fanout
from tests.services import require_redis

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(400)]

ARGS = [
    "--viewers", "3",
    "--rates", "100",
    "--compare", "baseline:3x100,raw:3x100,websockets:3x100,sse:3x100,core:3x100",
    "--dashboard", "2x3x100",
    "--runs", "1",
    "--seconds", "0.6",
    "--warmup", "0.3",
    # A deadline, not a wait: each run ends as soon as every viewer has every point; a loaded
    # machine (CI beside other work) may need more than the bench's own 2 s to deliver them.
    "--drain", "30",
]  # fmt: skip


def test_every_stack_delivers_every_point_to_its_viewers_and_every_table_has_its_row() -> None:
    args = fanout.parse_args([*ARGS, "--redis-url", require_redis()])
    rows = fanout.measure(args)

    assert [r for r in rows if "failed" in r] == []
    by_stack = {(r["target"], r["streams"]): r for r in rows}
    assert set(by_stack) == {
        ("livecharts", 1),
        ("livecharts", 3),
        ("baseline", 1),
        ("raw", 1),
        ("websockets", 1),
        ("sse", 1),
        ("core", 1),
    }
    for row in rows:
        # Nothing is missing at this load: each viewer got every point published (3 streams for
        # the dashboard), and some of them inside the measured window.
        assert row["lost"] == 0, row
        assert row["complete"] == row["viewers"], row
        assert row["points_per_s"] > 0, row
        assert row["published"] == round(100 * 0.9) * row["streams"], row

    tables = dict(fanout.report(rows, args))
    assert set(tables) == {"main", "compare", "dashboard", "layers"}
    for name, label in [
        ("compare", "baseline (a)"),
        ("compare", "baseline (b)"),
        ("compare", "peer (c) websockets"),
        ("compare", "peer (c) SSE"),
        ("layers", "`RedisChannelLayer`"),
        ("layers", "`RedisPubSubChannelLayer`"),
    ]:
        assert f"| {label} | 3 | 100 |" in tables[name]
    assert "| 2 | 3 | 100 |" in tables["dashboard"]
    assert "| 3 | 100 |" in tables["main"]
