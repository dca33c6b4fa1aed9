"""The wire format of points: one JSON text per stream batch (its batch text), joined into
frames unchanged.

A batch text is encoded once (in broadcast, or once per backfill) and never re-encoded per socket.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

import numpy as np
import orjson

from streams.core.points import Entries, Entry, Point, last_id


def _as_list(value: object) -> object:
    if isinstance(value, np.ndarray):  # a batch's wire times (fill_ms_times)
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_as_list).encode
# orjson writes a float64 array's numbers exactly as it writes those floats in a list.
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def compact(value: object) -> str:
    """Compact JSON text of points data (a batch on the wire, a stored row).

    orjson writes the json module's text but for small floats (0.00001 for 1e-05) and non-ASCII
    (UTF-8 rather than \\u escapes), many times faster (a row of 100 points: 4 us against 66 us):
    broadcast encodes every stream's batch each tick, and it is the store's largest cost."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # what orjson cannot write (an integer past 64 bits): the json module
        return _compact(value)


def batch_text(*, slug: str, prev: str | None, entries: Sequence[Entry]) -> str:
    """One stream's batch as wire text, columnar JSON: `t` in ms since the epoch, `y` per series."""
    t, y = times_and_columns(entries)
    ms = entries.ms if type(entries) is Entries and entries.ms is not None else ms_times(t)
    return compact({"stream": slug, "prev": prev, "id": last_id(entries), "t": ms, "y": y})


# Times in ms from 2^40 to 2^41 (the years 2004 to 2039): each a whole number of 2^-12 ms.
_MS_LOW, _MS_HIGH = 2.0**40, 2.0**41


def ms_times(times: Sequence[float]) -> list[float]:
    """`round(t * 1000, 3)` of each time (seconds): ms since the epoch to the microsecond, as
    every other writer of wire times has them (ranges, export, backfills), bit for bit.

    round(x, 3) writes x's decimal digits and reads them back, about 500 ns a point: a tenth
    of a worker's path. In this century's binade x is k / 4096 for a whole k, so x * 1000 is
    k * 125 / 512, rounded half to even here in integers (exact, as round() is), then divided
    by 1000 (the double nearest the decimal, as round() gives): 200 ns. Others go to round()."""
    out: list[float] = []
    append = out.append
    low, high = _MS_LOW, _MS_HIGH
    for at in times:
        ms = at * 1000
        if low <= ms < high:
            scaled = int(ms * 4096.0) * 125  # exact: ms * 4096 is a whole number below 2^53
            whole, rest = scaled >> 9, scaled & 511
            if rest > 256 or (rest == 256 and whole & 1):
                whole += 1
            append(whole / 1000)
        else:
            append(round(ms, 3))
    return out


def fill_ms_times(batches: Sequence[Entries]) -> None:
    """Each batch's `ms`, its ms_times bit for bit, made for all of a tick's batches at once:
    a view of one array (orjson writes a float64 array's numbers as it writes the floats).

    Broadcast writes a thousand batches a tick: ms_times point by point was about 4% of a
    worker's CPU at 1,000 streams (py-spy); its integer rounding here, over every time of the
    tick in one array, and no float object per point, take the batch texts from about 520 to
    350 ns a point (25-point batches). A batch with a time outside this century's binade
    (NaN among them) is left to ms_times, which rounds such times with round()."""
    if not batches:
        return
    times = [times_and_columns(entries)[0] for entries in batches]
    ms = np.array(list(itertools.chain.from_iterable(times)), dtype=np.float64)
    ms *= 1000.0
    left_out: set[int] = set()
    if not (ms.min() >= _MS_LOW and ms.max() < _MS_HIGH):  # False with any NaN too
        outside = np.flatnonzero(~((ms >= _MS_LOW) & (ms < _MS_HIGH)))
        ends = np.cumsum([len(each) for each in times])
        left_out = set(np.searchsorted(ends, outside, side="right").tolist())
        ms[outside] = _MS_LOW  # a stand-in that keeps the integer work below in range
    ms *= 4096.0
    scaled = ms.astype(np.int64)  # exact: a whole number below 2^53
    scaled *= 125  # below 2^60
    # Halves to even, as ms_times: the remainder over 512 plus 255 carries past 512 when above
    # a half, and at exactly a half only when the quotient is odd (its low bit added).
    scaled += 255 + ((scaled >> 9) & 1)
    scaled >>= 9
    rounded = scaled / 1000.0
    start = 0
    for index, (entries, each) in enumerate(zip(batches, times, strict=True)):
        end = start + len(each)
        entries.ms = None if index in left_out else rounded[start:end]
        start = end


def times_and_columns(entries: Sequence[Entry]) -> tuple[list[float], dict[str, list[float | None]]]:
    """Each point's time (seconds) and `columns` of the points. Of an Entries, made once and kept
    on it: a tick's batch is written as history's text, the viewers' and the stored row from
    them. Never change what this returns."""
    if type(entries) is Entries:
        if entries.t is None or entries.y is None:
            points = entries.points
            entries.t, entries.y = [point.t for point in points], columns(points)
        return entries.t, entries.y
    points = [entry.point for entry in entries]
    return [point.t for point in points], columns(points)


def columns(points: Sequence[Point]) -> dict[str, list[float | None]]:
    """Each series' values, one per point (None where a point lacks the series), series in the
    order they first appear."""
    if not points:
        return {}
    values = [point.values for point in points]
    first = values[0]
    # The usual case, every point with the same series: one pass per series. As many names in
    # all as the first point's times the points, and each point holding each of those: the
    # same series everywhere (a check in C; a generator per point was most of the cost).
    if sum(map(len, values)) == len(first) * len(values):
        try:
            return {name: [value[name] for value in values] for name in first}
        except KeyError:
            pass
    series: dict[str, list[float | None]] = {}
    for index, point in enumerate(points):
        for name in point.values:
            if name not in series:
                series[name] = [None] * index
        for name, column in series.items():
            column.append(point.values.get(name))
    return series


def points_frame(batch_texts: Sequence[str]) -> str:
    return '{"op":"points","data":[' + ",".join(batch_texts) + "]}"


def encode(message: dict) -> str:
    return _compact(message)
