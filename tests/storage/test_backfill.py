"""A socket's backfill read in pages: whole and in order, and a window trimmed past the pages
already read answers a gap and the window from its start."""

from __future__ import annotations

import pytest

from streams.core.ids import format_id
from streams.core.points import Entry, Point
from streams.core.retention import Retention
from streams.storage.backfill import pages_since
from streams.storage.window import get_history


def entries(first: int, count: int) -> list[Entry]:
    return [
        Entry(id=format_id((1_000 + n, 0)), point=Point(t=n, values={"v": n}))
        for n in range(first, first + count)
    ]


@pytest.mark.parametrize("after", [None, 2_499])
async def test_a_window_comes_in_pages_whole_and_in_order(layer, after):
    retention = Retention(points=10_000)
    await get_history().append("plant", entries(0, 10_000), retention=retention)
    pages = [
        segment
        async for segment in pages_since(
            "plant",
            after=None if after is None else format_id((1_000 + after, 0)),
            retention=retention,
            stored=False,
            page_points=1_000,
        )
    ]
    start = 0 if after is None else after + 1
    assert [entry.point.t for page in pages for entry in page.entries] == list(range(start, 10_000))
    assert max(len(page.entries) for page in pages) == 1_000
    assert not any(page.gap for page in pages)


async def test_a_window_trimmed_past_the_pages_read_gives_a_gap_then_its_start(layer):
    retention = Retention(points=3_000)
    history = get_history()
    await history.append("plant", entries(0, 3_000), retention=retention)
    pages = pages_since("plant", after=None, retention=retention, stored=False, page_points=1_000)
    first = await anext(pages)
    assert [entry.point.t for entry in first.entries] == list(range(len(first.entries)))
    # While the first page is written, the stream moves on 5,000 points: the rest are gone.
    await history.append("plant", entries(3_000, 5_000), retention=retention)
    rest = [segment async for segment in pages]
    assert rest[0].gap
    assert [entry.point.t for page in rest for entry in page.entries] == list(range(5_000, 8_000))
