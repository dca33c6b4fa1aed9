"""Waiting for a condition, never for a length of time: the one way tests synchronise.

Each helper polls its condition until it holds and returns what the condition returned; at the
deadline it fails with what was awaited and, when given, the state last seen, so a failure on a
busy machine says what did not happen rather than "timeout". Deadlines are generous on purpose:
they bound a hung test, they do not measure speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Long enough for a loaded 2-core machine (seven helpers, Chromium, daphne, ingest at once).
DEADLINE = 30.0
POLL = 0.02


def _failure(what: str, within: float, seen: Callable[[], object] | None) -> AssertionError:
    message = f"waited {within:g} s for {what}"
    if seen is not None:
        try:
            message += f"; last seen: {seen()!r}"
        except Exception as error:  # the state itself may be what broke
            message += f"; the state could not be read: {error!r}"
    return AssertionError(message)


def wait_until(
    condition: Callable[[], T],
    *,
    what: str,
    within: float = DEADLINE,
    seen: Callable[[], object] | None = None,
    poll: float = POLL,
) -> T:
    """Call `condition` until it returns something truthy, and return that."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _failure(what, within, seen)
        time.sleep(poll)  # polling interval, not synchronisation


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    what: str,
    within: float = DEADLINE,
    seen: Callable[[], object] | None = None,
    poll: float = POLL,
) -> T:
    """The async `wait_until`: `condition` may be a plain or a coroutine function."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _failure(what, within, seen)
        await asyncio.sleep(poll)  # polling interval, not synchronisation


def wait_in_page(page: Any, expression: str, *, what: str, arg: Any = None, within: float = DEADLINE) -> Any:
    """Playwright's wait_for_function with a failure that says what was awaited. The expression
    runs in one go in the page, so everything it reads is read at one moment; what it returns
    (when truthy) comes back as JSON."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        handle = page.wait_for_function(expression, arg=arg, timeout=within * 1000)
    except PlaywrightTimeout:
        raise AssertionError(f"waited {within:g} s in the page for {what}") from None
    return handle.json_value()
