"""Point ids: "<ms>-<seq>", ordered by (ms, seq), the same shape Redis Streams use."""

from __future__ import annotations

import re
import time

_ID = re.compile(r"^(\d{1,15})-(\d{1,9})$")

IdKey = tuple[int, int]


def parse_id(value: str) -> IdKey:
    """The sort key of an id; ValueError when it is not one of ours."""
    match = _ID.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"not a point id: {value!r}")
    return int(match[1]), int(match[2])


def format_id(key: IdKey) -> str:
    return f"{key[0]}-{key[1]}"


class IdClock:
    """Hands out strictly increasing ids that follow the wall clock when they can."""

    def __init__(self, last: IdKey | None = None) -> None:
        self.last: IdKey = last or (0, 0)

    def next(self) -> IdKey:
        now_ms = int(time.time() * 1000)
        ms, seq = self.last
        self.last = (now_ms, 0) if now_ms > ms else (ms, seq + 1)
        return self.last
