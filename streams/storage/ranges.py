"""Range reads: a stream's stored points between two times, thinned to what a chart can show.

A range answer holds about `points` rows (default 2,000, at most 5,000) however many points
are stored: a year at 20 points/s is 600 million points, a screen is 2,000 pixels wide.

Why MinMaxLTTB (tsdownsample's `MinMaxLTTBDownsampler`): it keeps the min and max of many
small buckets first, then runs LTTB (Largest-Triangle-Three-Buckets) on those. LTTB alone
picks the points that keep a line's shape, but it is slow on millions of points; min/max per
pixel bucket is fast and keeps every extreme but draws a jagged band and spends two points per
bucket. MinMaxLTTB gives near-LTTB pictures at min/max speed, so a lone spike stays visible. It
is compiled code (Rust) from the plotly-resampler authors (Van Der Donckt et al., "MinMaxLTTB:
Leveraging MinMax-Preselection to Scale LTTB", 2023): a million points take about 3 ms.

Nulls (gaps) are handled here, not by tsdownsample's NaN-aware variant: that one answers any
bucket holding a NaN with the NaN, so a series with 0.1 % scattered nulls came back about 30 %
null and a spike beside a null was lost (measured, tsdownsample 0.1.5). Instead each series is
thinned over its non-null points, and one null row is kept inside each run of nulls (the
longest runs when there are too many) so the chart still breaks its line there.

A range holding more than RAW_POINTS points is not read raw: the rollup tiers
(storage/rollups.py) give each bucket's stored count and the real points that hold each series'
min and max, so the coarsest tier with about `points / 2` buckets answers it and `stored` stays
exact (the ends no whole bucket covers come from finer tiers and the raw points).

All series share one time axis (the wire format's columns): each series picks its own rows
with a share of the budget, the answer holds the union, and every series has a value (or null)
on every row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import Sum
from tsdownsample import MinMaxLTTBDownsampler

from streams.core.times import BadTime, parse_time
from streams.storage import rollups
from streams.storage.store import DecodedRow, batches_in, decode, iter_range

DEFAULT_POINTS = 2_000
MAX_POINTS = 5_000
MIN_POINTS = 10
# A range holding at most this many points is read raw and exact (about 50 ms); a larger one
# from the rollup tiers, whatever its size.
RAW_POINTS = 50_000
# How long before an end of a range a stored batch may begin and still be found by the quick
# query for that end (a batch normally spans one flush, a second).
EDGE_LOOKBACK = 600
# LTTB needs at least three points (tsdownsample panics below that).
_LTTB_MIN = 3

_downsampler = MinMaxLTTBDownsampler()
# Beyond the year 5000 (either way) a bound is a unit mistake, not a time.
MAX_BOUND_SECONDS = 1e11


class BadParameter(ValueError):
    """A query parameter is wrong; `name` says which, for the 400 answer."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


# Parameters --------------------------------------------------------------------------------


def parse_bound(value: str | None, *, name: str) -> float | None:
    """Seconds since the epoch from epoch milliseconds (plain decimals) or ISO 8601 (UTC when no
    offset given; an unencoded "+" arrives as a space: "…T10:00:00 02:00"); None for an absent
    or empty value (an open end)."""
    if value is None or value.strip() == "":
        return None
    try:
        return parse_time(
            value, numbers="ms", plain_numbers=True, space_for_plus=True, limit=MAX_BOUND_SECONDS
        )
    except BadTime as error:
        raise BadParameter(name, str(error)) from None


def parse_points(value: str | None) -> int:
    """The row budget: DEFAULT_POINTS when absent, at most MAX_POINTS (larger asks get that)."""
    if value is None or value.strip() == "":
        return DEFAULT_POINTS
    try:
        points = int(value)
    except ValueError:
        raise BadParameter("points", f"{value!r} is not a whole number") from None
    if points < MIN_POINTS:
        raise BadParameter("points", f"must be at least {MIN_POINTS}")
    return min(points, MAX_POINTS)


def parse_bounds(query: Mapping[str, str]) -> tuple[float | None, float | None]:
    """(start, end) in seconds from a query string; start after end is a BadParameter."""
    start = parse_bound(query.get("start"), name="start")
    end = parse_bound(query.get("end"), name="end")
    if start is not None and end is not None and start > end:
        raise BadParameter("start", "the range starts after it ends")
    return start, end


# Reading -----------------------------------------------------------------------------------


@dataclass
class Columns:
    """Points as arrays: `t` in seconds (sorted), one float array per series, NaN for null."""

    t: np.ndarray
    y: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)

    def take(self, rows: np.ndarray) -> Columns:
        return Columns(t=self.t[rows], y={name: values[rows] for name, values in self.y.items()})


class _Filler:
    """Fills preallocated arrays batch by batch, so a million points never exist as a million
    Python floats at once: each decoded batch is copied in and dropped."""

    def __init__(self, capacity: int) -> None:
        self.size = 0
        self.t = np.empty(capacity)
        self.y: dict[str, np.ndarray] = {}

    def add(self, t: list[float], y: Mapping[str, list[float | None]]) -> None:
        end = self.size + len(t)
        if end > len(self.t):  # points written after the capacity was counted
            self._grow(end)
        self.t[self.size : end] = t
        for name, column in y.items():
            values = self.y.get(name)
            if values is None:
                values = self.y[name] = np.full(len(self.t), np.nan)
            values[self.size : end] = column  # numpy turns None into NaN
        self.size = end

    def _grow(self, needed: int) -> None:
        capacity = max(needed, len(self.t) * 3 // 2)
        self.t = np.resize(self.t, capacity)
        for name, values in self.y.items():
            grown = np.full(capacity, np.nan)
            grown[: self.size] = values[: self.size]
            self.y[name] = grown

    def columns(self) -> Columns:
        return Columns(t=self.t[: self.size], y={name: v[: self.size] for name, v in self.y.items()})


def columns_of(
    batches: Iterable[DecodedRow], *, start: float | None, end: float | None, capacity: int
) -> Columns:
    """The points of `batches` with start <= t <= end, sorted by time (stable: ties keep id order)."""
    low = -math.inf if start is None else start
    high = math.inf if end is None else end
    filler = _Filler(capacity)
    for batch in batches:
        if batch.t and (min(batch.t) < low or max(batch.t) > high):
            # A batch across an end of the range: keep only its points inside.
            keep = [index for index, t in enumerate(batch.t) if low <= t <= high]
            filler.add([batch.t[i] for i in keep], {n: [c[i] for i in keep] for n, c in batch.y.items()})
        else:
            filler.add(batch.t, batch.y)
    columns = filler.columns()
    t = columns.t
    if len(t) > 1 and bool(np.any(t[1:] < t[:-1])):
        # Feeds may send late points (a poll of a past window, a pushed backlog).
        columns = columns.take(np.argsort(t, kind="stable"))
    return columns


def read_columns(stream_id: int, *, start: float | None, end: float | None) -> Columns:
    """The stream's stored points in [start, end] (seconds, None: open), as sorted arrays."""
    capacity = batches_in(stream_id, start=start, end=end).aggregate(points=Sum("count"))["points"]
    batches = iter_range(stream_id, start=start, end=end)
    return columns_of(batches, start=start, end=end, capacity=capacity or 0)


def read_range(
    stream_id: int, *, start: float | None, end: float | None, points: int
) -> tuple[Columns, int, bool]:
    """The points to thin for a range of about `points` rows per series: (columns, points stored
    in the range, whether the columns are every stored point). A range holding more than
    RAW_POINTS points is read from the coarsest rollup tier that still has `points / 2` buckets
    in it (a bucket gives a series its min and max), its ends from finer tiers and the raw points."""
    bounds = _bounds(stream_id, start=start, end=end)
    if bounds is None:
        return Columns(t=np.empty(0)), 0, True
    low, high = bounds
    coarse = [level for level, width in enumerate(rollups.TIERS) if (high - low) / width >= points / 2]
    if coarse:
        # Half-open inside: [low, just past high) holds the inclusive end.
        columns, stored = _read_cover(
            stream_id, low=low, high=math.nextafter(high, math.inf), level=coarse[-1]
        )
        if stored > RAW_POINTS:
            return columns, stored, False
    columns = read_columns(stream_id, start=start, end=end)
    return columns, len(columns), True


def _bounds(stream_id: int, *, start: float | None, end: float | None) -> tuple[float, float] | None:
    """The part of [start, end] that holds stored points (its ends at the oldest / newest stored
    point), so a range asked from year 0 picks its tier by the time it really spans; None when
    nothing is stored there."""
    from streams.models import StoredBatch

    batches = StoredBatch.objects.filter(stream_id=stream_id)
    oldest = batches.order_by("t_min").values_list("t_min", flat=True).first()
    newest = batches.order_by("-t_max").values_list("t_max", flat=True).first()
    if oldest is None or newest is None:
        return None
    low = oldest if start is None else max(start, oldest)
    high = newest if end is None else min(end, newest)
    return None if low > high else (low, high)


def _read_cover(stream_id: int, *, low: float, high: float, level: int) -> tuple[Columns, int]:
    """The kept points of the tier buckets wholly inside [low, high) at `level` and, for the ends
    no such bucket covers, of finer tiers down to the raw points; with the points they stand for."""
    parts: list[tuple[int | None, float, float]] = []  # (tier or None for raw, from, to)
    marks = rollups.rolled_until(stream_id)

    def cover(low: float, high: float, level: int) -> None:
        if level < 0:
            parts.append((None, low, high))
            return
        width = rollups.TIERS[level]
        first = math.ceil(low / width) * width
        # Buckets start in [first, last); above its mark a tier is not rolled up yet.
        last = min(math.floor(high / width) * width, marks[width])
        if first >= last:
            cover(low, high, level - 1)
            return
        if low < first:
            cover(low, first, level - 1)
        parts.append((width, first, last))
        if last < high:
            cover(last, high, level - 1)

    cover(low, high, level)
    # Plain lists, made arrays once: a row holds a few points, too few for numpy per row.
    times: list[float] = []
    series: dict[str, list[float | None]] = {}
    stored = 0

    def add(points: Iterable[Sequence[Any]]) -> None:
        """Append (t, {series: value}) points, every series a value or None on each."""
        for t, values in points:
            for name in values.keys() - series.keys():
                series[name] = [None] * len(times)
            for name, column in series.items():
                column.append(values.get(name))
            times.append(t)

    for width, begin, until in parts:
        if width is None:
            inside = _raw_edge(stream_id, begin=begin, until=until)
            add(inside)
            stored += len(inside)
            continue
        count, kept = rollups.read_buckets(stream_id, tier=width, start=int(begin), end=int(until))
        add(rollups.decode_points(kept))
        stored += count
    columns = Columns(
        t=np.array(times, dtype=np.float64),
        y={name: np.array(values, dtype=np.float64) for name, values in series.items()},
    )
    t = columns.t
    if len(t) > 1 and bool(np.any(t[1:] < t[:-1])):  # kept points come in no order
        columns = columns.take(np.argsort(t, kind="stable"))
    return columns, stored


def _raw_edge(stream_id: int, *, begin: float, until: float) -> list[tuple[float, dict[str, float | None]]]:
    """The stored points with begin <= t < until (less than two seconds: an end of a range that
    no tier bucket covers), in id order.

    Which batches overlap a short time is a question neither time index answers alone: over a
    long history "t_max >= begin" or "t_min <= until" each holds half the table (2.5 s of a 3 s
    range over 12 million points). So first the batches that begin at most EDGE_LOOKBACK before
    it (one index range), checked against the 1 s tier's count of every second it touches: a
    batch spanning longer (late points, a backfill) makes the counts differ, and then the
    overlap query is run after all."""
    seconds = range(math.floor(begin), math.ceil(until))
    expected = rollups.tier_counts(stream_id, start=seconds.start, end=seconds.stop)
    near = (
        batches_in(stream_id, start=seconds.start, end=seconds.stop)
        .filter(t_min__gte=seconds.start - EDGE_LOOKBACK, t_min__lt=seconds.stop)
        .in_id_order()
        .values_list("data", flat=True)
    )
    points = [
        (t, values)
        for data in near
        for batch in [decode(data)]
        for t, values in zip(batch.t, _values_of(batch.y, len(batch.t)), strict=True)
        if seconds.start <= t < seconds.stop
    ]
    found: dict[int, int] = {}
    for t, _ in points:
        found[math.floor(t)] = found.get(math.floor(t), 0) + 1
    if found != expected:
        points = []
        for batch in iter_range(stream_id, start=begin, end=until):
            points.extend(zip(batch.t, _values_of(batch.y, len(batch.t)), strict=True))
    return [(t, values) for t, values in points if begin <= t < until]


def _values_of(y: Mapping[str, Sequence[float | None]], size: int) -> list[dict[str, float | None]]:
    return [{name: column[i] for name, column in y.items()} for i in range(size)]


# Thinning ----------------------------------------------------------------------------------


def thin_rows(columns: Columns, *, points: int) -> np.ndarray | None:
    """The rows to keep so the answer has at most `points` rows; None to keep every row."""
    rows_in = len(columns)
    if rows_in <= points:
        return None
    if not columns.y:
        return np.unique(np.linspace(0, rows_in - 1, points).round().astype(np.intp))
    budget = max(_LTTB_MIN, points // len(columns.y))
    rows = _union_of_picks(columns, budget=budget)
    if len(columns.y) > 1:
        # Series that turn at the same times pick the same rows: give each a bigger share, as
        # big as keeps the union within `points` (a few tries, each guessing from the last).
        low, high, failed = budget, points, False
        for _ in range(6):
            if len(rows) >= points * 9 // 10 or low >= high:
                break
            guess = (low + high + 1) // 2 if failed else low * points // max(len(rows), 1)
            guess = min(high, max(low + 1, guess))
            wider = _union_of_picks(columns, budget=guess)
            if len(wider) <= points:
                rows, low = wider, guess
            else:
                high, failed = guess - 1, True
    return rows


def _union_of_picks(columns: Columns, *, budget: int) -> np.ndarray:
    picks = [_series_rows(columns.t, values, budget=budget) for values in columns.y.values()]
    return np.unique(np.concatenate(picks)) if picks else np.empty(0, dtype=np.intp)


def _series_rows(t: np.ndarray, values: np.ndarray, *, budget: int) -> np.ndarray:
    """At most `budget` rows that draw this series: its shape and extremes, and its gaps."""
    missing = np.isnan(values)
    gaps = np.empty(0, dtype=np.intp)
    present: np.ndarray | None = None  # rows with a value; None: every row (no copies)
    if missing.any():
        present = np.flatnonzero(~missing)
        if len(present) == 0:
            return present
        # The first null of each run of nulls that a value follows and another value ends; the
        # nulls before the first value or after the last one break no line.
        gaps = np.flatnonzero(missing[1:] & ~missing[:-1]) + 1
        gaps = gaps[gaps < present[-1]]
        most_gaps = budget // 4
        if len(gaps) > most_gaps:
            # Too many to show: keep the widest in time, which are the ones a viewer can see.
            after = present[np.searchsorted(present, gaps)]
            widths = t[after] - t[gaps - 1]
            gaps = np.sort(gaps[np.argsort(-widths, kind="stable")[:most_gaps]])
        t, values = t[present], values[present]
    value_budget = budget - len(gaps)
    if len(values) <= value_budget:
        picked = np.arange(len(values), dtype=np.intp)
    else:
        # LTTB keeps the shape, not always the very top and bottom of a wandering series: add
        # both, so the chart's y axis spans what is stored.
        extremes = np.array([np.argmin(values), np.argmax(values)], dtype=np.intp)
        picked = np.concatenate([_lttb(t, values, max(_LTTB_MIN, value_budget - 2)), extremes])
    return np.concatenate([picked if present is None else present[picked], gaps])


def _lttb(t: np.ndarray, values: np.ndarray, n_out: int) -> np.ndarray:
    if len(t) <= n_out:
        return np.arange(len(t), dtype=np.intp)
    t = np.ascontiguousarray(t)
    values = np.ascontiguousarray(values)
    return _downsampler.downsample(t, values, n_out=max(n_out, _LTTB_MIN)).astype(np.intp)


# The answer --------------------------------------------------------------------------------


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _json_values(values: np.ndarray) -> list[float | None]:
    # NaN is not JSON: null instead (x != x only for NaN).
    return [None if value != value else value for value in values.tolist()]


def range_answer(stream: Any, *, start: float | None, end: float | None, points: int) -> dict[str, Any]:
    """The JSON answer of GET /streams/<slug>/range: times in ms, at most `points` rows."""
    columns, stored, _ = read_range(stream.pk, start=start, end=end, points=points)
    rows = thin_rows(columns, points=points)
    if rows is not None:
        columns = columns.take(rows)
    return {
        "stream": stream.slug,
        "start": _ms(start),
        "end": _ms(end),
        "t": np.round(columns.t * 1000, 3).tolist(),
        "y": {name: _json_values(values) for name, values in columns.y.items()},
        "stored": stored,
        "returned": len(columns),
        "downsampled": len(columns) < stored,
    }
