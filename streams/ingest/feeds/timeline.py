"""The time rules every stream's points pass on their way from a feed to broadcast.

Broadcast gives ids in arrival order, history keeps that order, and the browser appends each
series' values in that order (Plotly.extendTraces draws a line in array order, and the rolling
window expires points from the front). So a live chart is append-only, per series:

- Far ahead: a point more than LIVECHARTS_MAX_FUTURE_SECONDS ahead of our clock is a bad
  payload (a wrong time unit, a local time sent as UTC): dropped and counted. Kept, it would
  make every later point of its series late, and empty a chart whose window is measured from
  its newest point.
- Late: a value earlier than the newest time of its series is dropped and counted, unless it
  is at most LATE_SLACK_SECONDS late: then it is kept as it came (arrival times of requests
  racing through two daphne processes, a clock slewed by NTP; too little to see on a chart).
- Repeated: a value equal to the newest value of its series, at the same time, is dropped
  without counting (a redelivered push, a re-read window, a replayed message). Another value
  at the same time is kept: a second reading (the records of one message, or the numbers of
  one push, all at its arrival time), drawn at the same x in arrival order. When the points
  carry the source's record id (`extract.id`, Point.key), a repeat is a point whose id was
  already seen at that time instead: two trades in one millisecond at one price are two points.

A batch (one message, one poll answer, one take of pushed requests) is put in time order first
(stable), so a source that lists the newest first loses nothing; what is late is what is
earlier than the batches before it.

Series are independent: two MQTT topics may share a time, and a point keeps the values that
pass (a point left with none is dropped).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from streams.core.points import Batch, Point
from streams.core.times import utc_text

LATE_SLACK_SECONDS = 0.25

# A counted drop is reported through this, once per point: Feed.skip, the bad-payload counter
# (logged sampled).
Skip = Callable[[str], None]


class Timeline:
    """The newest point of each series of one stream, and the rules above."""

    __slots__ = ("keys", "max_ahead", "newest", "top")

    def __init__(self, *, max_ahead: float) -> None:
        self.max_ahead = max_ahead
        # series -> the newest point that carried it
        self.newest: dict[str, Point] = {}
        # The newest time of any series: a point after it needs no per-series look-up.
        self.top = -math.inf
        # series -> (its newest time, the record ids seen at that time); kept only once two
        # keyed points meet at one time, so the usual in-order path never pays for it.
        self.keys: dict[str, tuple[float, set[str]]] = {}

    def resume(self, point: Point, *, now: float) -> None:
        """Go on from a stored point (the newest in history), so a redelivery is not drawn twice."""
        if point.t > now + self.max_ahead:
            # Stored before this rule (a time unit read wrong): going on from it would make
            # every new point late until the clock caught up, maybe for ever.
            return
        # Only the series with a value: a stored point may carry another series as a gap (None)
        # only because its batch was columnar.
        for name, value in point.values.items():
            if value is not None:
                self.newest[name] = point
        self.top = max(self.top, point.t)

    def admit(self, batch: Batch, *, now: float, skip: Skip) -> Batch:
        """The points of `batch` that pass, in time order; `batch` itself when all of them do."""
        latest = now + self.max_ahead
        newest = self.newest
        previous = self.top
        for point in batch:  # the usual case: each later than anything seen, none far ahead
            t = point.t
            if not previous < t <= latest:
                break
            previous = t
        else:
            for point in batch:
                for name in point.values:
                    newest[name] = point
            self.top = previous
            return batch
        # One batch is one message, answer or take of pushed requests: put it in time order
        # first (stable, so equal times keep their arrival order), so a source that lists the
        # newest first loses nothing; only what is earlier than earlier batches is late.
        kept: Batch = []
        for point in sorted(batch, key=_time):
            passed = self._check(point, latest=latest, skip=skip)
            if passed is not None:
                kept.append(passed)
                if passed.t > self.top:
                    self.top = passed.t
        return kept

    def _check(self, point: Point, *, latest: float, skip: Skip) -> Point | None:
        """One point not plainly after every series: the point, the part that passes, or None."""
        t = point.t
        if t > latest:
            skip(ahead_reason(t, now=latest - self.max_ahead, max_ahead=self.max_ahead))
            return None
        newest = self.newest
        values = point.values
        passing: dict[str, float | None] = {}
        problem = None
        for name, value in values.items():
            before = newest.get(name)
            if before is None or t > before.t:
                passing[name] = value
                newest[name] = point
            elif t == before.t:
                # A repeat is dropped (not counted): by record id once ids were seen at this
                # time, else by value (a stored point has no id); another value at the same
                # time is a second reading (records of one message at its arrival time).
                key = point.key
                # Built before `newest` moves on to a point without an id, so ids are not lost.
                seen = None if key is None and before.key is None else self._keys_at(name, before)
                repeat = key in seen if key is not None and seen else before.values.get(name) == value
                if not repeat:
                    passing[name] = value
                    newest[name] = point
                    if key is not None and seen is not None:
                        seen.add(key)
            elif before.t - t <= LATE_SLACK_SECONDS:
                passing[name] = value
            elif problem is None:
                problem = (
                    f"series {name!r}: {utc_text(t)} is {before.t - t:.3g} s before its newest point "
                    "(a live chart only appends); dropped"
                )
        if problem is not None:
            skip(problem)
        if len(passing) == len(values):
            return point
        return Point(t=t, values=passing, key=point.key) if passing else None

    def _keys_at(self, name: str, before: Point) -> set[str]:
        """The record ids seen for series `name` at its newest time, `before.t`."""
        entry = self.keys.get(name)
        # Times of a series only go up, so an entry for another time is stale.
        if entry is None or entry[0] != before.t:
            entry = self.keys[name] = (before.t, {before.key} if before.key is not None else set())
        return entry[1]


def _time(point: Point) -> float:
    return point.t


def ahead_reason(t: float, *, now: float, max_ahead: float) -> str:
    """What is wrong with a time too far ahead of `now`, for logs and the push API's 400."""
    return (
        f"time {utc_text(t)} is {t - now:.0f} s ahead of this server's clock (at most "
        f"LIVECHARTS_MAX_FUTURE_SECONDS={max_ahead:g}): check the time and its unit"
    )
