"""Calls many tasks make at once are made as one call for all of them."""

from __future__ import annotations

import asyncio

import pytest

from streams.core.batched import Batched
from tests.waits import eventually


async def test_calls_made_together_are_one_call_and_each_gets_its_own_answer():
    asked: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        asked.append(items)
        return [2 * item for item in items]

    batched = Batched(double, max_items=40)
    answers = await asyncio.gather(*(batched.call(n) for n in range(100)))
    assert answers == [2 * n for n in range(100)]
    assert [len(items) for items in asked] == [40, 40, 20] and batched.calls == 3


async def test_a_failed_call_fails_every_caller_of_it_and_the_next_calls_go_on():
    async def failing(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ConnectionError("down")
        return items

    batched = Batched(failing)
    results = await asyncio.gather(batched.call("bad"), batched.call("good"), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    assert await batched.call("good") == "good"


async def test_a_caller_cancelled_while_it_waits_leaves_the_others_their_answers():
    release = asyncio.Event()
    asked: list[list[int]] = []

    async def slow(items: list[int]) -> list[int]:
        asked.append(items)
        await release.wait()
        return items

    batched = Batched(slow)
    first, second = asyncio.ensure_future(batched.call(1)), asyncio.ensure_future(batched.call(2))
    await eventually(lambda: asked == [[1, 2]], what="the call under way with both")
    first.cancel()
    release.set()
    assert await second == 2
    with pytest.raises(asyncio.CancelledError):
        await first
