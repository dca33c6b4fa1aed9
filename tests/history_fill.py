"""Fill a stream's live window in a stack's Redis straight from the test (no feed needed):
a large history in seconds, for the backfill tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from streams.core.ids import format_id
from streams.core.points import Entry, Point
from streams.core.retention import Retention
from streams.storage.window import RedisHistory
from tests.processes import Stack, seed_streams

CHUNK = 5_000
# The largest window the model allows, of 10 series: what the large backfill tests open.
POINTS = 100_000
SERIES = 10
BIG = {"slug": "big", "title": "Big", "feed_kind": "push", "visibility": "public", "window_points": POINTS}


def expected_value(index: int, series: int) -> float:
    return round(index * 0.25 + series, 2)


def fill_window(*, redis_url: str, prefix: str, slug: str, points: int, series: int) -> list[str]:
    """`points` points of `series` series, 1 ms apart and ending about now; returns their ids."""

    async def fill() -> list[str]:
        history = RedisHistory(redis_url, prefix=prefix)
        start_ms = int(time.time() * 1000) - points - 1_000
        ids: list[str] = []
        for first in range(0, points, CHUNK):
            entries = []
            for index in range(first, min(points, first + CHUNK)):
                ms = start_ms + index
                values = {f"s{k}": expected_value(index, k) for k in range(series)}
                entries.append(Entry(id=format_id((ms, 0)), point=Point(t=ms / 1000, values=values)))
            await history.append(slug, entries, retention=Retention(points=points, seconds=None))
            ids.extend(entry.id for entry in entries)
        return ids

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, fill()).result()


def seed_big_window(stack: Stack) -> list[str]:
    """The stream BIG seeded in the stack and its window filled whole; returns the points' ids."""
    seed_streams(stack, [BIG])
    return fill_window(
        redis_url=stack.env["REDIS_URL"],
        prefix=stack.env["LIVECHARTS_REDIS_PREFIX"],
        slug="big",
        points=POINTS,
        series=SERIES,
    )
