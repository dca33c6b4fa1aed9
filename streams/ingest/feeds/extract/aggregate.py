"""`extract.aggregate`: records buffered in intervals of `every` seconds, one point per closed
interval and series (count, sum, mean, min or max of its records)."""

from __future__ import annotations

import math
from collections.abc import Callable

from streams.core.points import Point
from streams.core.times import utc_text
from streams.ingest.feeds.extract.errors import BadPayload
from streams.ingest.feeds.extract.settings import Aggregate

# One record read: (time, series -> value or None, record id or None).
Row = tuple[float, dict[str, float | None], str | None]
# Records far in the future (a wrong time_unit) would keep intervals open forever: cap them.
MAX_OPEN_INTERVALS = 10_000


class Aggregator:
    """The open intervals of one feed's aggregate; it lives as long as the feed."""

    def __init__(
        self, aggregate: Aggregate, *, scale: float, offset: float, on_drop: Callable[[str], None] | None
    ) -> None:
        self._every = aggregate.every
        self._how = aggregate.how
        self._grace = aggregate.grace
        self._scale = scale
        self._offset = offset
        self._on_drop = on_drop
        # Records dropped as too late (also reported through on_drop).
        self.dropped_late = 0
        # interval index -> series -> [count, sum, min, max]
        self._open: dict[int, dict[str, list[float]]] = {}
        # Intervals below this index were flushed already.
        self._flushed_before: int | None = None
        # Series seen so far: a count or sum of nothing in an active interval is 0, not a gap.
        self._seen: dict[str, None] = {}

    def add(self, rows: list[Row]) -> None:
        """Count the values of `rows` in their intervals; raises BadPayload when too many are open."""
        counting = self._how == "count"
        for t, values, _ in rows:
            index = self._interval(t)
            # A record for an interval already flushed (later than the grace) is dropped: its
            # point is out, and a second point for the same time would draw as a spike. Said
            # and counted per record, as a bad payload: never silently.
            if self._flushed_before is not None and index < self._flushed_before:
                self._dropped_late(t, index=index)
                continue
            if index not in self._open and len(self._open) >= MAX_OPEN_INTERVALS:
                raise BadPayload(f"more than {MAX_OPEN_INTERVALS} intervals waiting to close; check time")
            cells = self._open.setdefault(index, {})
            for name, value in values.items():
                if value is None:
                    continue
                self._seen.setdefault(name, None)
                amount = 1.0 if counting else value
                cell = cells.get(name)
                if cell is None:
                    cells[name] = [1, amount, amount, amount]
                else:
                    cell[0] += 1
                    cell[1] += amount
                    cell[2] = min(cell[2], amount)
                    cell[3] = max(cell[3], amount)

    def flush(self, now: float) -> list[Point]:
        """Points for every interval that closed by `now`, stamped with the interval's end."""
        # An interval stays open `grace` seconds past its end for records that come late.
        before = self._interval(now - self._grace)
        if self._flushed_before is None or before > self._flushed_before:
            self._flushed_before = before
        closed = sorted(index for index in self._open if index < before)
        scale, offset = self._scale, self._offset
        points = []
        for index in closed:
            cells = self._open.pop(index)
            values: dict[str, float | None] = {}
            for name in self._seen:
                cell = cells.get(name)
                if cell is not None:
                    values[name] = _aggregate(cell, how=self._how) * scale + offset
                elif self._how in ("count", "sum"):
                    values[name] = offset  # zero, scaled
            points.append(Point(t=(index + 1) * self._every, values=values))
        return points

    def _interval(self, t: float) -> int:
        # The same floor for records and for `now`, so float rounding cannot split them.
        return math.floor(t / self._every)

    def _dropped_late(self, t: float, *, index: int) -> None:
        self.dropped_late += 1
        if self._on_drop is not None:
            end = (index + 1) * self._every
            self._on_drop(
                f"aggregate: a record at {utc_text(t)} came after its interval (to {utc_text(end)}) "
                f"was closed {self._grace:g} s past its end; not counted: raise extract.aggregate.grace "
                "if the source is often this late"
            )


def _aggregate(cell: list[float], *, how: str) -> float:
    count, total, low, high = cell
    if how == "count":
        return float(count)
    if how == "sum":
        return total
    if how == "mean":
        return total / count
    return low if how == "min" else high
