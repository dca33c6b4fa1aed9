"""Stopping background tasks: cancel, then wait until they have finished, without swallowing
the caller's own cancellation.

`task.cancel()` then `with contextlib.suppress(BaseException): await task` is the usual idiom,
and it is wrong: when the caller itself is cancelled while it waits, the CancelledError it
gets is its own, and the suppress eats it, so the caller runs on as if never cancelled (a
shutdown that does not stop, a wait_for that does not time out). `asyncio.wait` never raises
the task's outcome, only the caller's cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def finished(task: asyncio.Task[Any], *, within: float | None = None) -> bool:
    """Wait until `task` is done (at most `within` seconds); True when it is. An error it
    ended with is logged, not raised (the caller is stopping it); a cancellation of the
    caller propagates."""
    if not task.done():
        await asyncio.wait([task], timeout=within)
        if not task.done():
            return False
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("task %s ended with an error", task.get_name(), exc_info=error)
    return True


async def cancel_and_wait(task: asyncio.Task[Any] | None, *, within: float | None = None) -> bool:
    """Cancel `task` and wait until it has finished, as `finished` does; True when it has."""
    if task is None:
        return True
    task.cancel()
    return await finished(task, within=within)


def honour_cancellation() -> None:
    """Raise CancelledError if this task was asked to stop and the request got lost.

    redis-py 8 runs every command under asyncio.wait_for, which on Python < 3.12 can swallow
    a cancellation that lands as the command finishes (CPython gh-86296): the call returns,
    and a loop of such calls (a feed draining its inbox) never stops. The task still counts
    the request (`cancelling()`), so a loop calls this after each such await."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
