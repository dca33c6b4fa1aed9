"""The ticker's turn before the feeds': from the moment a tick is due until its flush has ended,
a feed that comes back for its next batch waits here.

On a saturated worker every feed task reads once per event-loop iteration, and each await of a
flush (a Redis command costs redis-py three or four loop iterations) waited behind all of them:
with 1,000 feeds a flush took about a second of wall time and ticks came about once a second
instead of every 50 ms. Held feeds leave the loop to the flush, whose iterations are then short.

While Redis runs the tick's history script (tens of ms for 1,000 streams) the flush lets the
held feeds read once (`release_once`): that time is not lost, and its answer waits behind one
read of each at most. (Letting a few feeds through every loop iteration until the answer came
was tried and measured worse: each of the flush's many loop iterations then waited behind them.)

A feed is held only after it has handed over a batch, so each reads at least once between two
ticks (none is starved), and nothing is lost: what arrives meanwhile waits in its socket.
"""

from __future__ import annotations

import asyncio
import time


class TickGate:
    """Held from `due(at)` (the ticker's next tick, `time.monotonic()`) until `open()` (its
    flush done); never held while no tick is pending."""

    def __init__(self) -> None:
        self._due_at: float | None = None
        self._open = asyncio.Event()
        self._open.set()
        # Times a feed had to wait for a tick (tests: how often it held them).
        self.waits = 0

    def due(self, at: float) -> None:
        """The ticker's next tick comes at `at`: from then on, feeds wait for `open()`."""
        self._due_at = at

    def open(self) -> None:
        """The tick's flush is done (or the ticker stopped): let every waiting feed go on."""
        self._due_at = None
        self._open.set()

    def release_once(self) -> None:
        """Let the feeds waiting now go on, once: while the flush waits for Redis to run its
        script, they read; each then waits again when it comes back, so the flush's answer
        waits behind one read of each at most."""
        if self._open.is_set():
            return
        waiting, self._open = self._open, asyncio.Event()
        waiting.set()

    def held(self) -> bool:
        """Would a feed wait now?"""
        due_at = self._due_at
        return not self._open.is_set() or (due_at is not None and time.monotonic() >= due_at)

    async def wait_turn(self) -> None:
        """Return at once unless a tick is due or flushing; then once its flush has ended.
        Every feed calls this between two batches: the usual case costs no suspension."""
        if self._open.is_set():
            due_at = self._due_at
            if due_at is None or time.monotonic() < due_at:
                return
            self._open.clear()
        self.waits += 1
        await self._open.wait()
