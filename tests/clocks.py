"""A clock that tests drive: time moves only when the test says, and timers fire then.

Code that takes a clock (the fan-out hub's ticks and load) runs under it without real waits:
`advance` moves time and runs every callback that fell due, in order, so a test says "one tick
later" instead of sleeping for one, and "not yet" holds for certain (nothing fires by itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timer:
    due: float
    callback: Callable[[], None]


@dataclass
class ManualClock:
    at: float = 1_000.0
    timers: list[Timer] = field(default_factory=list)

    def now(self) -> float:
        return self.at

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.at + delay, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[float]:
        """When the timers still to fire are due, soonest first."""
        return sorted(timer.due for timer in self.timers)

    def advance(self, seconds: float) -> int:
        """Move time on by `seconds`, firing what falls due on the way; return how many fired."""
        end = self.at + seconds
        fired = 0
        while True:
            due = [timer for timer in self.timers if timer.due <= end]
            if not due:
                break
            timer = min(due, key=lambda timer: timer.due)
            self.timers.remove(timer)
            self.at = max(self.at, timer.due)
            timer.callback()
            fired += 1
        self.at = end
        return fired

    def next(self) -> int:
        """Move time on to the next timer and fire it (and any due at the same moment)."""
        pending = self.pending()
        assert pending, "no timer is pending"
        return self.advance(max(0.0, pending[0] - self.at))


class ManualCpu:
    """A process CPU clock on a manual clock: time that passes counts as `share` of a core
    (1.0: a saturated process, 0.0: an idle one); the test sets `share`."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.total = 0.0
        self.share = 0.0
        self._seen = clock.now()

    def __call__(self) -> float:
        now = self.clock.now()
        self.total += (now - self._seen) * self.share
        self._seen = now
        return self.total
