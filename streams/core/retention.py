"""How much of a stream is kept live in its window."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of a stream is kept live: a count, an age in seconds, or both."""

    points: int | None = 1000
    seconds: int | None = None

    @classmethod
    def of(cls, stream: Any) -> Retention:
        return cls(points=stream.window_points, seconds=stream.window_seconds)

    def oldest_kept_ms(self) -> int | None:
        return None if self.seconds is None else int((time.time() - self.seconds) * 1000)
