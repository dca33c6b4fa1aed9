"""Calls that many tasks make at once, made as one call for all of them.

A thousand feeds starting together each ask for their stream's newest point in history and
in the database: a round trip each is a thousand commands queued on one Redis pool and on the
one database thread, behind the ticks and the Persister's writes. `Batched.call` gathers what
is asked in the same turn of the loop, and while the previous call is under way, into one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batched(Generic[T, R]):
    """`call(item)` answered by `call_many([item, ...])` (one answer per item, in order),
    made for every item asked meanwhile, at most `max_items` at a time."""

    def __init__(
        self, call_many: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_items: int = 1000
    ) -> None:
        self.call_many = call_many
        self.max_items = max_items
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        # call_many's calls so far (tests count them).
        self.calls = 0

    async def call(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queued.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name="batched")
        # A caller cancelled here cancels only its own future; the runner skips it.
        return await future

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # the tasks woken in the same turn ask too
            while self._queued:
                taken = [(item, f) for item, f in self._queued[: self.max_items] if not f.done()]
                del self._queued[: self.max_items]
                if not taken:
                    continue
                self.calls += 1
                try:
                    answers = list(await self.call_many([item for item, _ in taken]))
                    if len(answers) != len(taken):
                        raise RuntimeError(f"{len(answers)} answers to {len(taken)} items")
                except Exception as error:
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(error)
                    continue
                except BaseException:
                    for _, future in taken:
                        future.cancel()
                    raise
                for (_, future), answer in zip(taken, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            # Stopped (the loop shutting down): nobody may wait for an answer that never comes.
            for _, future in self._queued:
                future.cancel()
            self._queued.clear()
