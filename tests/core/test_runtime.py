"""The runtime registry: one object per event loop (or per process), closed with its loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from streams.core import runtime
from tests.waits import eventually, wait_until


class Thing:
    """A registered object with an async close that remembers where it ran."""

    def __init__(self) -> None:
        self.closed_on: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        self.closed_on = asyncio.get_running_loop()


def thing() -> Thing:
    return runtime.get("test.thing", Thing, close=Thing.close)


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    runtime.reset()
    yield
    runtime.reset()


def test_a_loop_gets_one_instance_however_often_it_asks():
    async def twice() -> tuple[Thing, Thing]:
        return thing(), thing()

    first, second = asyncio.run(twice())
    assert first is second


def test_a_new_loop_gets_a_new_instance():
    async def one() -> Thing:
        return thing()

    assert asyncio.run(one()) is not asyncio.run(one())


def test_a_process_wide_instance_is_shared_by_every_loop():
    async def one() -> object:
        return runtime.shared("test.shared", object)

    assert asyncio.run(one()) is asyncio.run(one()) is runtime.shared("test.shared", object)


def test_a_thing_with_an_async_close_is_closed_on_its_loop_when_the_loop_closes():
    loops: list[asyncio.AbstractEventLoop] = []

    async def one() -> Thing:
        loops.append(asyncio.get_running_loop())
        return thing()

    made = asyncio.run(one())
    assert made.closed_on is loops[0]


def test_closed_loops_are_dropped_and_all_lists_the_open_ones():
    started, stop = threading.Event(), threading.Event()
    in_thread: list[Thing] = []

    async def hold_a_loop_open() -> None:
        in_thread.append(thing())
        started.set()
        await asyncio.to_thread(stop.wait)

    other = threading.Thread(target=asyncio.run, args=(hold_a_loop_open(),))
    other.start()
    try:
        wait_until(started.is_set, what="the other loop to make its thing")

        async def here() -> tuple[Thing, list[Thing]]:
            return thing(), runtime.all("test.thing")

        mine, listed = asyncio.run(here())
        assert listed == [in_thread[0], mine]
        # This loop has closed since: only the other one's is left.
        assert runtime.all("test.thing") == [in_thread[0]]
    finally:
        stop.set()
        other.join()
    assert runtime.all("test.thing") == []
    assert in_thread[0].closed_on is not None


def test_reset_closes_on_a_loop_at_rest_and_forgets_every_instance():
    loop = asyncio.new_event_loop()
    try:

        async def one() -> tuple[Thing, object]:
            return thing(), runtime.shared("test.shared", object)

        made, shared = loop.run_until_complete(one())
        runtime.reset()
        assert made.closed_on is loop
        assert runtime.all("test.thing") == []
        again, shared_again = loop.run_until_complete(one())
        assert again is not made
        assert shared_again is not shared
    finally:
        loop.close()
    assert again.closed_on is loop  # the loop's hook outlived the reset


async def test_reset_on_a_running_loop_closes_its_things_there_soon():
    made = thing()
    runtime.reset()
    assert thing() is not made
    await eventually(lambda: made.closed_on is asyncio.get_running_loop(), what="the old thing to close")


def test_a_close_that_fails_leaves_the_others_closed(caplog):
    async def broken(_: object) -> None:
        raise ConnectionError("Redis went away")

    async def both() -> Thing:
        made = thing()
        runtime.get("test.broken", object, close=broken)  # made last, closed first
        return made

    made = asyncio.run(both())
    assert made.closed_on is not None
    assert "could not close the runtime's 'test.broken'" in caplog.text
