"""A backfill of any size through real daphne: the largest window the model allows opens, a
resume 90,000 points back is exact, each in frames under the bound (daphne refuses a message
over 1 MiB and closed such a socket with 1011)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from tests.history_fill import POINTS, SERIES, expected_value, seed_big_window
from tests.processes import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FRAME_BYTES = 256 * 1024


async def backfill(stack: Stack, *, after: str | None, points: int) -> dict:
    """Subscribe and read until `points` points came; the frames' sizes, chain and values."""
    async with connect(stack.ws_url, origin=stack.base_url, open_timeout=10, max_size=None) as socket:
        await socket.send(json.dumps({"op": "subscribe", "stream": "big", "after": after}))
        first = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
        assert first["op"] == "subscribed", first
        sizes, prevs, ids, times, values = [], [], [], [], []
        while len(times) < points:
            raw = await asyncio.wait_for(socket.recv(), timeout=30)
            frame = json.loads(raw)
            assert frame["op"] == "points", frame
            sizes.append(len(raw.encode()))
            for batch in frame["data"]:
                prevs.append(batch["prev"])
                ids.append(batch["id"])
                times.extend(batch["t"])
                values.extend(batch["y"]["s3"])
        return {"sizes": sizes, "prevs": prevs, "ids": ids, "times": times, "s3": values}


def check_chain(result: dict, *, after: str | None, last: str) -> None:
    assert result["prevs"][0] == after
    assert result["prevs"][1:] == result["ids"][:-1], "each frame's prev is the id before it"
    assert result["ids"][-1] == last


def test_the_largest_window_and_a_long_resume_arrive_whole_in_bounded_frames(stack: Stack):
    stack.env.update(LIVECHARTS_BACKFILL_FRAME_BYTES=str(FRAME_BYTES))
    ids = seed_big_window(stack)
    stack.start_daphne()

    whole = asyncio.run(backfill(stack, after=None, points=POINTS))
    assert len(whole["times"]) == POINTS
    assert whole["s3"] == [expected_value(index, 3) for index in range(POINTS)]
    assert max(whole["sizes"]) <= FRAME_BYTES
    check_chain(whole, after=None, last=ids[-1])
    print(f"window {POINTS:,} x {SERIES}: {len(whole['sizes'])} frames, largest {max(whole['sizes']):,} B")

    after = ids[POINTS - 90_000 - 1]
    resume = asyncio.run(backfill(stack, after=after, points=90_000))
    assert len(resume["times"]) == 90_000
    assert resume["s3"] == [expected_value(index, 3) for index in range(POINTS - 90_000, POINTS)]
    assert max(resume["sizes"]) <= FRAME_BYTES
    check_chain(resume, after=after, last=ids[-1])
    print(f"resume 90,000 back: {len(resume['sizes'])} frames")
    log = stack.log("daphne")
    assert "Traceback" not in log and "PayloadExceeded" not in log, log
