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

All series share one time axis (the wire format's columns): each series picks its own rows
with a share of the budget, the answer holds the union, and every series has a value (or null)
on every row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import Sum
from tsdownsample import MinMaxLTTBDownsampler

from streams.core.times import BadTime, parse_time
from streams.storage.store import DecodedRow, iter_range

DEFAULT_POINTS = 2_000
MAX_POINTS = 5_000
MIN_POINTS = 10
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
    from streams.models import StoredBatch

    capacity = (
        StoredBatch.objects.filter(stream_id=stream_id)
        .overlapping(start=start, end=end)
        .aggregate(points=Sum("count"))["points"]
    )
    batches = iter_range(stream_id, start=start, end=end)
    return columns_of(batches, start=start, end=end, capacity=capacity or 0)


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
    if len(columns.y) > 1 and len(rows) < points * 3 // 4:
        # Series that turn at the same times pick the same rows: give each a bigger share.
        wider = _union_of_picks(columns, budget=budget * points // max(len(rows), 1))
        if len(wider) <= points:
            rows = wider
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
    columns = read_columns(stream.pk, start=start, end=end)
    stored = len(columns)
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
        "downsampled": rows is not None,
    }
