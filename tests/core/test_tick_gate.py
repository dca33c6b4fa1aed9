"""core/tick_gate: feeds wait from a tick's time until its flush is done, never otherwise."""

from __future__ import annotations

import asyncio
import time

from streams.core.tick_gate import TickGate


async def turn_taken_without_suspending(gate: TickGate) -> bool:
    """Did wait_turn return without giving the loop away? (A coroutine stepped by hand.)"""
    step = gate.wait_turn()
    try:
        step.send(None)
    except StopIteration:
        return True
    step.close()
    return False


async def test_a_feed_goes_on_at_once_while_no_tick_is_due():
    gate = TickGate()
    assert await turn_taken_without_suspending(gate)
    gate.due(time.monotonic() + 3600)
    assert await turn_taken_without_suspending(gate)
    assert gate.waits == 0 and not gate.held()


async def test_feeds_wait_from_the_tick_until_its_flush_is_done_then_all_go_on():
    gate = TickGate()
    gate.due(time.monotonic() - 0.001)  # due already
    assert gate.held()
    feeds = [asyncio.ensure_future(gate.wait_turn()) for _ in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not any(feed.done() for feed in feeds), "held while the tick is due"
    gate.open()
    await asyncio.wait_for(asyncio.gather(*feeds), 30)
    assert gate.waits == 3 and not gate.held()
    assert await turn_taken_without_suspending(gate), "open until the next tick is due"


async def test_a_feed_cancelled_while_it_waits_leaves_the_others_waiting():
    gate = TickGate()
    gate.due(time.monotonic() - 0.001)
    first, second = asyncio.ensure_future(gate.wait_turn()), asyncio.ensure_future(gate.wait_turn())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert first.cancelled() and not second.done()
    gate.open()
    await asyncio.wait_for(second, 30)


async def test_released_once_a_feed_waits_again_when_it_comes_back():
    gate = TickGate()
    gate.due(time.monotonic() - 0.001)
    first = asyncio.ensure_future(gate.wait_turn())
    await asyncio.sleep(0)
    gate.release_once()
    await asyncio.wait_for(first, 30)
    again = asyncio.ensure_future(gate.wait_turn())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not again.done(), "held again: the flush is still under way"
    gate.open()
    await asyncio.wait_for(again, 30)
