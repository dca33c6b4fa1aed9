"""The process's runtime objects in one registry: per event loop (fan-out hubs, broadcasters,
access watchers, Redis clients) and per process (the recent window, the inbox, socket counts).

asyncio objects (tasks, futures, redis.asyncio connections) belong to the loop that made them.
Production runs one loop per process, but tests run one per test and async_to_sync in sync
views one per call. Modelled on channels_redis (`RedisPubSubChannelLayer._get_layer` and
`utils._wrap_close`): the first object made on a loop hooks the loop's `close`, which first
closes that loop's objects (those registered with a `close`) and forgets them. `reset()`
forgets everything at once (tests switch settings between runs; a restart in a test).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
Close = Callable[[Any], Awaitable[object]]

log = logging.getLogger(__name__)

# Per loop: key -> (the object, how to close it or None).
_loops: dict[asyncio.AbstractEventLoop, dict[Hashable, tuple[Any, Close | None]]] = {}
_process: dict[Hashable, Any] = {}
_hooked: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
# Taken to make or forget objects, never to find one: async_to_sync runs loops in other
# threads. Reentrant: a factory may ask for another object (the broadcaster's for the window).
_lock = threading.RLock()


def get(
    key: Hashable, factory: Callable[[], T], *, close: Callable[[T], Awaitable[object]] | None = None
) -> T:
    """The running loop's object for `key`, made by `factory` on first use. `close`, when
    given, is awaited on it when the loop closes or at `reset()`."""
    loop = asyncio.get_running_loop()
    things = _loops.get(loop)
    found = things.get(key) if things is not None else None
    if found is None:
        with _lock:
            things = _loops.get(loop)
            if things is None:
                # Loops whose close could not be hooked (a class without instance attributes).
                for stale in [known for known in _loops if known.is_closed()]:
                    del _loops[stale]
                things = _loops[loop] = {}
                _hook_close(loop)
            found = things.get(key)
            if found is None:
                found = things[key] = (factory(), close)
    return found[0]


def all(key: Hashable) -> list[Any]:  # shadows the builtin here, reads well as runtime.all
    """The object for `key` of every open loop of this process (for /metrics)."""
    with _lock:
        return [things[key][0] for loop, things in _loops.items() if key in things and not loop.is_closed()]


def shared(key: Hashable, factory: Callable[[], T]) -> T:
    """The process's one object for `key`, made by `factory` on first use: for state every
    loop must see (the embedded mode's window is also read through async_to_sync)."""
    thing = _process.get(key)
    if thing is None:
        with _lock:
            thing = _process.get(key)
            if thing is None:
                thing = _process[key] = factory()
    return thing


def reset() -> None:
    """Forget every object, per loop and per process, closing those registered with a close
    on their loop: at once on a loop at rest, scheduled on a running one."""
    with _lock:
        loops = list(_loops.items())
        _loops.clear()
        _process.clear()
    for loop, things in loops:
        if loop.is_closed() or not any(close for _, close in things.values()):
            continue
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(_close(things), loop)
        else:
            loop.run_until_complete(_close(things))


def _hook_close(loop: asyncio.AbstractEventLoop) -> None:
    """Close the loop's objects when the loop closes, while it can still run them."""
    if loop in _hooked:
        return  # a loop that outlived a reset keeps its first hook
    original = loop.close

    def close(self: asyncio.AbstractEventLoop) -> None:
        with _lock:
            things = _loops.pop(loop, None)
        try:
            if things and not loop.is_running():
                loop.run_until_complete(_close(things))
        finally:
            original()

    try:
        loop.close = types.MethodType(close, loop)  # type: ignore[method-assign]
    except AttributeError:
        return  # uvloop's loops take no attributes: their objects go when a new loop comes
    _hooked.add(loop)


async def _close(things: dict[Hashable, tuple[Any, Close | None]]) -> None:
    for key, (thing, close) in reversed(things.items()):
        if close is not None:
            try:
                await close(thing)
            except Exception:
                # One that fails must not keep the others open (a Redis gone away).
                log.exception("could not close the runtime's %r", key)
