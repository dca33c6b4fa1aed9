"""Stopping a background task never swallows the caller's own cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streams.core.tasks import cancel_and_wait, finished


def stubborn() -> tuple[asyncio.Task[None], asyncio.Event, asyncio.Event]:
    """A task that, once cancelled, takes until `release` is set to finish (a write in flight)."""
    cancelled, release = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await release.wait()
            raise

    return asyncio.get_running_loop().create_task(run(), name="stubborn"), cancelled, release


async def test_a_caller_cancelled_while_it_waits_for_a_cancelled_task_is_cancelled():
    task, cancelled, release = stubborn()
    await asyncio.sleep(0)  # let it start waiting
    caller = asyncio.ensure_future(cancel_and_wait(task))
    await cancelled.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not task.done(), "the inner task finishes in its own time"
    release.set()
    assert await finished(task) and task.cancelled()


async def test_a_task_that_ended_with_an_error_is_logged_not_raised(caplog):
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.get_running_loop().create_task(broken(), name="broken")
    await asyncio.wait([task])
    with caplog.at_level(logging.ERROR, logger="streams.core.tasks"):
        assert await cancel_and_wait(task)
    assert "broken" in caplog.text and "boom" in caplog.text


async def test_a_task_that_does_not_stop_in_time_is_reported_and_left_running():
    task, cancelled, release = stubborn()
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, within=0.01) is False
    assert cancelled.is_set() and not task.done()
    release.set()
    assert await finished(task)
