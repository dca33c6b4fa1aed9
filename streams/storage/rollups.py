"""Rollup tiers: per-bucket summaries of a stream's stored points, so a long range never reads them all.

Each tier cuts time into buckets of TIERS seconds (1 s up to 6 h). Per bucket a StoredRollup row
holds how many points fall in it and its first point; per bucket and series a StoredRollupSeries
row holds the series' count, sum, min, max, first and last (with their times), and the stored
points that hold its min and max. A kept point is a real stored point with every series' value
(`[t, {series: value}]` as JSON text), so a range drawn from a tier shows each spike and dip at
its own time with the other series' values beside it, exactly as a raw read does.

Written as points are stored: save_batches calls `add_points` inside its own transaction with only
the points its id fence let through, so a retried or overlapping write never counts a point
twice. A flush summarises every stream's new points per bucket in memory in one pass and writes
the 1 s tier with one upsert per table whose ON CONFLICT DO UPDATE merges in SQL (sums added,
min / max / first / last picked with CASE, the kept point's text following its value; SQLite
>= 3.24 and PostgreSQL both say it so): no row is read back. A coarser bucket is written once,
when the stream's points have moved past it, by an INSERT ... SELECT that rolls it up from the
finer tier; a late point in a bucket rolled already is merged into it by the same upsert. So
each coarser tier is complete below the stream's mark (StoredRollupMark, rounded down to the
tier's buckets: `rolled_until`) and holds nothing above it, and a flush writes a row per stream
and series, not one per tier (writing every tier each flush cost 2.5 to 5 times the raw write).

Pruning (`trim`) drops the buckets before the oldest kept point and rebuilds the one bucket per
tier that straddles it, each from the finer tier's rows (the finest from the raw points), so
tiers keep agreeing with what is kept.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection, transaction

from streams.core.ids import parse_id
from streams.core.points import Entry, Point

# Bucket widths in seconds, finest first; each divides the next (a bucket is rebuilt from the
# finer tier's buckets inside it). Ratios of 6 to 10 keep a range within 10x its row budget.
TIERS: tuple[int, ...] = (1, 10, 60, 600, 3_600, 21_600)

_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

# A kept point: the Point itself while a flush summarises, its stored text once read back.
Kept = Point | str


@dataclass(slots=True)
class Bucket:
    """The summary of one bucket: its point count, first point, and per-series stats."""

    count: int = 0
    first_t: float = math.inf
    first: Kept | None = None
    # series[name] = [n, sum, min, min point, max, max point, first, first_t, last, last_t]
    series: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, point: Point) -> None:
        # A point at a time: points out of time order, and late points (see _run for the rest).
        t = point.t
        self.count += 1
        if t < self.first_t:  # a tie keeps the earlier stored point, as the upsert does
            self.first_t, self.first = t, point
        series = self.series
        for name, value in point.values.items():
            if not _counts(value):
                continue
            stats = series.get(name)
            if stats is None:
                series[name] = [1, value, value, point, value, point, value, t, value, t]
                continue
            stats[0] += 1
            stats[1] += value
            if value < stats[2]:
                stats[2], stats[3] = value, point
            elif value > stats[4]:
                stats[4], stats[5] = value, point
            if t < stats[7]:
                stats[6], stats[7] = value, t
            if t >= stats[9]:  # a tie goes to the later stored point, as a raw read orders them
                stats[8], stats[9] = value, t

    def merge(self, other: Bucket) -> None:
        """Fold in `other`, whose points were stored after this bucket's (the upsert's rules)."""
        self.count += other.count
        if other.first_t < self.first_t:
            self.first_t, self.first = other.first_t, other.first
        for name, theirs in other.series.items():
            mine = self.series.get(name)
            if mine is None:
                self.series[name] = list(theirs)
                continue
            mine[0] += theirs[0]
            mine[1] += theirs[1]
            if theirs[2] < mine[2]:
                mine[2], mine[3] = theirs[2], theirs[3]
            if theirs[4] > mine[4]:
                mine[4], mine[5] = theirs[4], theirs[5]
            if theirs[7] < mine[7]:
                mine[6], mine[7] = theirs[6], theirs[7]
            if theirs[9] >= mine[9]:
                mine[8], mine[9] = theirs[8], theirs[9]


def _counts(value: Any) -> bool:
    """Whether a stored value enters the stats: a finite number (the store writes NaN and the
    infinities as null; x - x is NaN for both); null and text (rows written by other means) do not."""
    return isinstance(value, int | float) and value - value == 0


def bucket_start(t: float, width: int) -> int:
    return math.floor(t / width) * width


def summarise(points: Sequence[Point]) -> dict[int, dict[int, Bucket]]:
    """{tier: {bucket start: Bucket}} of `points`, in stored order."""
    width = TIERS[0]
    finest = _finest(points, [point.t for point in points])
    tiers = {width: finest}
    for coarser in TIERS[1:]:
        tiers[coarser] = _coarsen(tiers[width], coarser)
        width = coarser
    return tiers


def _finest(points: Sequence[Point], times: list[float]) -> dict[int, Bucket]:
    """{bucket start: Bucket} of the 1 s tier; `times` are the points' times."""
    finest: dict[int, Bucket] = {}
    width = TIERS[0]
    if times == sorted(times):
        # The usual flush: points in time order, so each second is a run of them, summarised a
        # column at a time with builtins (a point at a time was most of a flush's cost).
        at = 0
        while at < len(points):
            start = math.floor(times[at])
            end = bisect.bisect_left(times, start + width, lo=at)
            finest[start] = _run(points[at:end], times[at:end])
            at = end
    else:
        for point in points:
            start = math.floor(point.t / width) * width
            bucket = finest.get(start)
            if bucket is None:
                bucket = finest[start] = Bucket()
            bucket.add(point)
    return finest


def _run(points: Sequence[Point], times: Sequence[float]) -> Bucket:
    """The Bucket of points in time order, as Bucket.add would make it (ties alike: min and max
    at their first occurrence, first at the earliest stored, last at the latest stored)."""
    bucket = Bucket(count=len(points), first_t=times[0], first=points[0])
    names = list(points[0].values)
    # Series that come and go (rare): the others' names too, gathered dict by dict in C.
    names += sorted(set().union(*[point.values for point in points]).difference(names))
    for name in names:
        column = [point.values.get(name) for point in points]
        keep, at = points, times
        try:
            total = sum(column)
            clean = total - total == 0
        except TypeError:  # a null or a text
            clean = False
        if not clean:
            picked = [i for i, value in enumerate(column) if _counts(value)]
            if not picked:
                continue
            column = [column[i] for i in picked]
            keep = [points[i] for i in picked]
            at = [times[i] for i in picked]
            total = sum(column)
        low, high = min(column), max(column)
        bucket.series[name] = [
            len(column),
            total,
            low,
            keep[column.index(low)],
            high,
            keep[column.index(high)],
            column[0],
            at[0],
            column[-1],
            at[-1],
        ]
    return bucket


def _coarsen(buckets: Mapping[int, Bucket], width: int) -> dict[int, Bucket]:
    if len(buckets) == 1:  # the usual flush: a second of points
        ((start, bucket),) = buckets.items()
        return {bucket_start(start, width): bucket}
    groups: dict[int, list[Bucket]] = {}
    # In time order: buckets of one group never share a time, so ties cannot tell them apart.
    for start in sorted(buckets):
        groups.setdefault(bucket_start(start, width), []).append(buckets[start])
    coarse: dict[int, Bucket] = {}
    for start, group in groups.items():
        if len(group) == 1:
            # The usual flush (a second of points): one bucket shared by every tier, never
            # mutated afterwards (the merge with stored rows happens in SQL).
            coarse[start] = group[0]
            continue
        target = coarse[start] = Bucket()
        for bucket in group:
            target.merge(bucket)
    return coarse


# Writing -------------------------------------------------------------------------------------

BUCKET_FIELDS = ("stream", "tier", "start", "count", "first_t", "first_point")
MARK_FIELDS = ("stream", "until")
SERIES_FIELDS = (
    "stream",
    "tier",
    "start",
    "series",
    "count",
    "sum",
    "min",
    "min_point",
    "max",
    "max_point",
    "first",
    "first_t",
    "last",
    "last_t",
)


def _encode(point: Point) -> str:
    try:
        return orjson.dumps([point.t, point.values]).decode()  # NaN and infinities: null
    except TypeError:  # an integer past 64 bits: the json module writes it
        return _compact(
            [point.t, {n: v if v is None or math.isfinite(v) else None for n, v in point.values.items()}]
        )


class _Texts:
    """Each kept point encoded once, however many buckets, tiers and series keep it."""

    def __init__(self) -> None:
        self._done: dict[int, str] = {}

    def __call__(self, kept: Kept) -> str:
        if isinstance(kept, str):
            return kept
        text = self._done.get(id(kept))
        if text is None:
            text = self._done[id(kept)] = _encode(kept)
        return text


@dataclass(frozen=True, slots=True)
class Columns:
    """One stored row's points for the tiers: the Points (whose text a bucket keeps), their
    times, and each series' values one per point (frames.columns: None where a point lacks the
    series, which enters no stats, as the point's missing value does not)."""

    stream_id: int
    last_ms: int  # the row's last id's milliseconds
    points: Sequence[Point]
    t: list[float]
    y: Mapping[str, Sequence[Any]]
    t_min: float  # min(t) and max(t), as the row stores them
    t_max: float


def add_points(cursor: Any, batches: Sequence[tuple[int, Sequence[Entry]]]) -> int:
    """add_columns of (stream id, entries), one stored row per (stream, entries)."""
    from streams.core.frames import columns

    made = []
    for stream_id, entries in batches:
        points = [entry.point for entry in entries]
        made.append(
            Columns(
                stream_id=stream_id,
                last_ms=parse_id(entries[-1].id)[0],
                points=points,
                t=(times := [point.t for point in points]),
                y=columns(points),
                t_min=min(times),
                t_max=max(times),
            )
        )
    return add_columns(cursor, made)


def add_columns(cursor: Any, rows: Sequence[Columns]) -> int:
    """Merge newly stored points, a Columns per stored row, into the tiers; call inside the
    write's transaction with exactly the points that write stores. Returns the tier rows written.

    Every point enters the 1 s tier. A coarser bucket is written once, rolled up from the finer
    tier when the stream's points have moved past it (`roll_up`); a point that falls in a bucket
    rolled already (a late one) is merged into it directly. So a flush upserts a row per stream
    and series instead of one per tier. The stream's spans (StoredRollupMark.ahead_ms and
    behind_ms) grow when a row strays further from its id than any before."""
    per_stream: dict[int, list[Columns]] = {}
    strays: dict[int, tuple[float, float]] = {}
    for row in rows:
        per_stream.setdefault(row.stream_id, []).append(row)
        ahead, behind = row.t_max * 1000 - row.last_ms, row.last_ms - row.t_min * 1000
        if row.stream_id in strays:
            known = strays[row.stream_id]
            ahead, behind = max(known[0], ahead), max(known[1], behind)
        strays[row.stream_id] = (ahead, behind)
    marks, spans = _marks_and_spans(cursor, sorted(per_stream))
    buckets: list[tuple[Any, ...]] = []
    series: list[tuple[Any, ...]] = []
    writes: dict[int, dict[int, dict[int, Bucket]]] = {}
    newest: dict[int, float] = {}
    for stream_id, parts in per_stream.items():
        points, times, y = _joined(parts)
        newest[stream_id] = max(part.t_max for part in parts)
        if times == sorted(times):
            # The usual flush: a run of points per second, summarised a column at a time.
            _finest_rows(stream_id, points, times, y, buckets, series)
        else:
            writes[stream_id] = {TIERS[0]: _finest(points, times)}
        mark = marks.get(stream_id)
        if mark is not None and min(part.t_min for part in parts) < mark:
            # Late points: those in buckets rolled already are merged into them directly.
            tiers = summarise([point for point in points if point.t < mark])
            for width in TIERS[1:]:
                rolled = bucket_start(mark, width)
                late = {start: bucket for start, bucket in tiers[width].items() if start < rolled}
                if late:
                    writes.setdefault(stream_id, {})[width] = late
    _delta_rows(writes, buckets, series)
    _upsert(cursor, _bucket_sql, buckets)
    _upsert(cursor, _series_sql, series)
    written = len(buckets) + len(series)
    written += roll_up(cursor, newest=newest, marks=marks)  # every stream has a mark after it
    grown = {}
    for stream_id, (ahead, behind) in strays.items():
        known = spans.get(stream_id)
        if known is None:
            continue  # unknown: from every stored row of the stream, below
        ahead_ms, behind_ms = max(known[0], _span_ms(ahead)), max(known[1], _span_ms(behind))
        if (ahead_ms, behind_ms) != known:
            grown[stream_id] = (ahead_ms, behind_ms)
    unknown = [stream_id for stream_id in strays if spans.get(stream_id) is None]
    if unknown:
        grown.update(_spans_of_rows(cursor, unknown))
    _set_spans(cursor, grown)
    return written


def _joined(parts: Sequence[Columns]) -> tuple[Sequence[Point], list[float], Mapping[str, Sequence[Any]]]:
    """One stream's rows of a flush as one: points, times and columns in stored order."""
    if len(parts) == 1:  # the usual flush: a row per stream
        return parts[0].points, parts[0].t, parts[0].y
    points: list[Point] = []
    times: list[float] = []
    y: dict[str, list[Any]] = {}
    for part in parts:
        for name in part.y:
            if name not in y:
                y[name] = [None] * len(times)
        for name, column in y.items():
            column.extend(part.y.get(name, [None] * len(part.t)))
        points.extend(part.points)
        times.extend(part.t)
    return points, times, y


def _finest_rows(
    stream_id: int,
    points: Sequence[Point],
    times: list[float],
    y: Mapping[str, Sequence[Any]],
    buckets: list[tuple[Any, ...]],
    series: list[tuple[Any, ...]],
) -> None:
    """Append the 1 s tier's rows (write_deltas' values) of points in time order to `buckets`
    and `series`: as _run makes the Buckets (ties alike), from the columns, each kept point
    encoded once."""
    texts: dict[int, str] = {}

    def text(index: int) -> str:
        found = texts.get(index)
        if found is None:
            found = texts[index] = _encode(points[index])
        return found

    width = TIERS[0]
    tier = TIERS[0]
    at = 0
    count = len(times)
    while at < count:
        start = math.floor(times[at])
        end = bisect.bisect_left(times, start + width, lo=at)
        buckets.append((stream_id, tier, start, end - at, times[at], text(at)))
        for name, values in y.items():
            column = values[at:end]
            try:
                total = sum(column)
                clean = total - total == 0
            except TypeError:  # a null or a text
                clean = False
            # Where each of `column`'s values stands among the points: the usual clean second
            # is a plain run; a second with nulls or texts keeps only its counted values.
            positions: Sequence[int] = range(at, end)
            if not clean:
                positions = [at + i for i, value in enumerate(column) if _counts(value)]
                if not positions:
                    continue
                column = [values[i] for i in positions]
                total = sum(column)
            low, high = min(column), max(column)
            series.append(
                (
                    stream_id,
                    tier,
                    start,
                    name,
                    len(column),
                    total,
                    low,
                    text(positions[column.index(low)]),
                    high,
                    text(positions[column.index(high)]),
                    column[0],
                    times[positions[0]],
                    column[-1],
                    times[positions[-1]],
                )
            )
        at = end


def _span_ms(stray: float) -> int:
    """A stray in milliseconds (float) as the whole number stored: rounded up, plus 1 ms for
    the float arithmetic of readers (t * 1000 is not exact)."""
    return math.ceil(stray) + 1


def _spans_of_rows(cursor: Any, stream_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """{stream: (ahead_ms, behind_ms)} from every stored row of the streams (those with rows)."""
    from streams.models import StoredBatch

    meta, quote = StoredBatch._meta, connection.ops.quote_name
    col = {name: quote(meta.get_field(name).column) for name in ("stream", "last_ms", "t_min", "t_max")}
    found: dict[int, tuple[int, int]] = {}
    for at in range(0, len(stream_ids), MARKS_PER_QUERY):
        chunk = list(stream_ids[at : at + MARKS_PER_QUERY])
        cursor.execute(
            f"SELECT {col['stream']}, MAX({col['t_max']} * 1000 - {col['last_ms']}), "
            f"MAX({col['last_ms']} - {col['t_min']} * 1000) FROM {quote(meta.db_table)} "
            f"WHERE {col['stream']} IN ({', '.join(['%s'] * len(chunk))}) GROUP BY {col['stream']}",
            chunk,
        )
        for stream_id, ahead, behind in cursor.fetchall():
            found[stream_id] = (_span_ms(ahead), _span_ms(behind))
    return found


def _set_spans(cursor: Any, spans: Mapping[int, tuple[int, int]]) -> None:
    """Store the streams' spans on their marks (which exist: roll_up made them)."""
    if not spans:
        return
    from streams.models import StoredRollupMark

    table, c, _ = _insert(StoredRollupMark, (*MARK_FIELDS, "ahead_ms", "behind_ms"))
    cursor.executemany(
        f"UPDATE {table} SET {c['ahead_ms']} = %s, {c['behind_ms']} = %s WHERE {c['stream']} = %s",
        [(ahead, behind, stream_id) for stream_id, (ahead, behind) in spans.items()],
    )


def id_bounds(stream_id: int, *, start: float | None, end: float | None) -> tuple[int | None, int | None]:
    """(low, high): every stored row of the stream with a point in [start, end] has
    low <= last_ms <= high (None: no bound that way). A row with t_max >= start has
    last_ms >= t_max * 1000 - ahead_ms >= start * 1000 - ahead_ms; one with t_min <= end has
    last_ms <= t_min * 1000 + behind_ms <= end * 1000 + behind_ms. Unknown spans: no bounds."""
    from streams.models import StoredRollupMark

    if start is None and end is None:
        return None, None  # no query (migration 0009's rebuild runs before these columns exist)
    spans = StoredRollupMark.objects.filter(stream_id=stream_id).values_list("ahead_ms", "behind_ms").first()
    if spans is None or spans[0] is None or spans[1] is None:
        return None, None
    ahead, behind = spans
    low = None if start is None else math.floor(start * 1000) - ahead - 1
    high = None if end is None else math.ceil(end * 1000) + behind + 1
    return low, high


# Below any bucket start: a stream with no mark yet is rolled from its first finer bucket on.
NO_MARK = -(2**62)
# Streams per query of marks, and per roll statement (3 parameters each).
MARKS_PER_QUERY = 500
ROLLS_PER_STATEMENT = 300


def _marks(cursor: Any, stream_ids: Sequence[int]) -> dict[int, int]:
    """{stream: its StoredRollupMark.until}, for the streams that have one."""
    return _marks_and_spans(cursor, stream_ids)[0]


def _marks_and_spans(
    cursor: Any, stream_ids: Sequence[int]
) -> tuple[dict[int, int], dict[int, tuple[int, int] | None]]:
    """({stream: its mark's until}, {stream: its (ahead_ms, behind_ms), None when unknown}),
    for the streams that have a mark, in one query."""
    from streams.models import StoredRollupMark

    table, c, _ = _insert(StoredRollupMark, (*MARK_FIELDS, "ahead_ms", "behind_ms"))
    marks: dict[int, int] = {}
    spans: dict[int, tuple[int, int] | None] = {}
    for at in range(0, len(stream_ids), MARKS_PER_QUERY):
        chunk = list(stream_ids[at : at + MARKS_PER_QUERY])
        cursor.execute(
            f"SELECT {c['stream']}, {c['until']}, {c['ahead_ms']}, {c['behind_ms']} FROM {table} "
            f"WHERE {c['stream']} IN ({', '.join(['%s'] * len(chunk))})",
            chunk,
        )
        for stream_id, until, ahead, behind in cursor.fetchall():
            marks[stream_id] = until
            spans[stream_id] = None if ahead is None or behind is None else (ahead, behind)
    return marks, spans


def roll_up(cursor: Any, *, newest: Mapping[int, float], marks: Mapping[int, int] | None = None) -> int:
    """Roll up each coarser tier of the streams to the bucket that holds their `newest` point
    (exclusive) from their marks (read when not given), and move their marks there. Call in
    the transaction that wrote the 1 s tier. Returns the rows written."""
    if marks is None:
        marks = _marks(cursor, sorted(newest))
    moved = {}
    for stream_id, t in newest.items():
        until = bucket_start(t, TIERS[1])
        mark = marks.get(stream_id)
        if mark is None or until > mark:
            moved[stream_id] = (NO_MARK if mark is None else mark, until)
    if not moved:
        return 0  # the usual flush: still inside the stream's current 10 s bucket
    written = 0
    for finer, width in itertools.pairwise(TIERS):
        spans = [
            (stream_id, bucket_start(since, width), bucket_start(until, width))
            for stream_id, (since, until) in moved.items()
            if bucket_start(since, width) < bucket_start(until, width)
        ]
        written += _roll(cursor, finer=finer, width=width, spans=spans)
    _upsert(cursor, _mark_sql, [(stream_id, until) for stream_id, (_, until) in moved.items()])
    return written


def rolled_until(stream_id: int) -> dict[int, float]:
    """{tier: time below which the tier is complete} for one stream (the 1 s tier always is)."""
    with connection.cursor() as cursor:
        mark = _marks(cursor, [stream_id]).get(stream_id)
    return {
        width: math.inf if width == TIERS[0] else -math.inf if mark is None else bucket_start(mark, width)
        for width in TIERS
    }


def _roll(cursor: Any, *, finer: int, width: int, spans: Sequence[tuple[int, int, int]]) -> int:
    """Write the `width` buckets of (stream, from, to) spans from the finer tier's rows in them,
    in SQL: sums added, min / max / first / last with their points picked from the finer row
    that holds them (the earliest on a tie, as Bucket.merge in time order). Returns rows written."""
    from streams.models import StoredRollup, StoredRollupSeries

    written = 0
    for at in range(0, len(spans), ROLLS_PER_STATEMENT):
        chunk = spans[at : at + ROLLS_PER_STATEMENT]
        params = [value for span in chunk for value in span]
        for model, fields, sql in (
            (StoredRollup, BUCKET_FIELDS, _roll_buckets_sql),
            (StoredRollupSeries, SERIES_FIELDS, _roll_series_sql),
        ):
            table, c, _ = _insert(model, fields)
            where = " OR ".join(
                [f"({c['stream']} = %s AND {c['start']} >= %s AND {c['start']} < %s)"] * len(chunk)
            )
            # Finer rows with their coarse bucket's start, g (widths and tiers are our integers).
            finer_rows = (
                f"(SELECT *, ({c['start']} / {width}) * {width} AS g FROM {table} "
                f"WHERE {c['tier']} = {finer} AND ({where})) AS f"
            )
            cursor.execute(sql(table, c, finer_rows, finer=finer, width=width), params)
            written += max(cursor.rowcount, 0)
    return written


def _roll_buckets_sql(table: str, c: dict[str, str], rows: str, *, finer: int, width: int) -> str:
    pick = (
        f"(SELECT x.{c['first_point']} FROM {table} x WHERE x.{c['stream']} = f.{c['stream']} "
        f"AND x.{c['tier']} = {finer} AND x.{c['start']} >= f.g AND x.{c['start']} < f.g + {width} "
        f"ORDER BY x.{c['first_t']}, x.{c['start']} LIMIT 1)"
    )
    return (
        f"INSERT INTO {table} ({', '.join(c.values())}) "
        f"SELECT f.{c['stream']}, {width}, f.g, SUM(f.{c['count']}), MIN(f.{c['first_t']}), {pick} "
        f"FROM {rows} GROUP BY f.{c['stream']}, f.g"
    )


def _roll_series_sql(table: str, c: dict[str, str], rows: str, *, finer: int, width: int) -> str:
    def pick(column: str, order: str) -> str:
        return (
            f"(SELECT x.{c[column]} FROM {table} x WHERE x.{c['stream']} = f.{c['stream']} "
            f"AND x.{c['series']} = f.{c['series']} AND x.{c['tier']} = {finer} "
            f"AND x.{c['start']} >= f.g AND x.{c['start']} < f.g + {width} ORDER BY {order} LIMIT 1)"
        )

    values = [
        f"f.{c['stream']}",
        str(width),
        "f.g",
        f"f.{c['series']}",
        f"SUM(f.{c['count']})",
        f"SUM(f.{c['sum']})",
        f"MIN(f.{c['min']})",
        pick("min_point", f"x.{c['min']}, x.{c['start']}"),
        f"MAX(f.{c['max']})",
        pick("max_point", f"x.{c['max']} DESC, x.{c['start']}"),
        pick("first", f"x.{c['first_t']}, x.{c['start']}"),
        f"MIN(f.{c['first_t']})",
        pick("last", f"x.{c['last_t']} DESC, x.{c['start']} DESC"),
        f"MAX(f.{c['last_t']})",
    ]
    return (
        f"INSERT INTO {table} ({', '.join(c.values())}) SELECT {', '.join(values)} "
        f"FROM {rows} GROUP BY f.{c['stream']}, f.g, f.{c['series']}"
    )


def write_deltas(cursor: Any, deltas: Mapping[int, Mapping[int, Mapping[int, Bucket]]]) -> int:
    """Merge {stream id: {tier: {start: Bucket}}} into the stored rows: one upsert per table,
    merging in SQL."""
    buckets: list[tuple[Any, ...]] = []
    series: list[tuple[Any, ...]] = []
    _delta_rows(deltas, buckets, series)
    _upsert(cursor, _bucket_sql, buckets)
    _upsert(cursor, _series_sql, series)
    return len(buckets) + len(series)


def _delta_rows(
    deltas: Mapping[int, Mapping[int, Mapping[int, Bucket]]],
    buckets: list[tuple[Any, ...]],
    series: list[tuple[Any, ...]],
) -> None:
    """Append the rows of {stream id: {tier: {start: Bucket}}} to `buckets` and `series`."""
    text = _Texts()
    # The usual flush shares one Bucket between all tiers: its values are made once.
    made: dict[int, tuple[tuple[Any, ...], list[tuple[Any, ...]]]] = {}
    for stream_id, tiers in deltas.items():
        for tier, by_start in tiers.items():
            for start, bucket in by_start.items():
                values = made.get(id(bucket))
                if values is None:
                    first = None if bucket.first is None else text(bucket.first)
                    values = made[id(bucket)] = (
                        (bucket.count, bucket.first_t, first),
                        [
                            (name, s[0], s[1], s[2], text(s[3]), s[4], text(s[5]), *s[6:])
                            for name, s in bucket.series.items()
                        ],
                    )
                key = (stream_id, tier, start)
                buckets.append(key + values[0])
                series.extend(key + row for row in values[1])


def _upsert(cursor: Any, sql: Callable[[], str], rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if connection.vendor == "postgresql":
        cursor.execute(sql(), [_array(column) for column in zip(*rows, strict=True)])
    else:
        # In process, a statement per row is no round trip, and one small statement is compiled
        # once (a VALUES list of thousands of rows took longer to parse than to run).
        cursor.executemany(sql(), rows)


def _array(column: Sequence[Any]) -> list[Any]:
    # psycopg dumps a list of one type: whole numbers among a float column's values become floats.
    if len({type(value) for value in column} - {type(None)}) > 1:
        return [None if value is None else float(value) for value in column]
    return list(column)


def _insert(model: Any, fields: Sequence[str]) -> tuple[str, dict[str, str], str]:
    """(table, {field: column}, the INSERT up to its ON CONFLICT) for rows of `fields`.

    PostgreSQL takes every row in one statement as one array per column (unnest): a VALUES list
    of thousands of rows spent more time being parsed and planned than being written (about
    200 ms against 70 ms for 3,600 rows, measured here). SQLite takes one row per execution."""
    meta, quote = model._meta, connection.ops.quote_name
    table = quote(meta.db_table)
    columns = {name: quote(meta.get_field(name).column) for name in fields}
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{meta.get_field(name).db_type(connection)}[]" for name in fields)
        source = f"SELECT * FROM unnest({arrays})"
    else:
        source = "VALUES (" + ", ".join(["%s"] * len(fields)) + ")"
    return table, columns, f"INSERT INTO {table} ({', '.join(columns.values())}) {source}"


def _mark_sql() -> str:
    from streams.models import StoredRollupMark

    _, c, insert = _insert(StoredRollupMark, MARK_FIELDS)
    # Only forwards: roll_up computed it under the stream's lock (PostgreSQL) or SQLite's one writer.
    return f"{insert} ON CONFLICT ({c['stream']}) DO UPDATE SET {c['until']} = EXCLUDED.{c['until']}"


def _bucket_sql() -> str:
    from streams.models import StoredRollup

    table, c, insert = _insert(StoredRollup, BUCKET_FIELDS)
    # Every SET expression sees the stored row as it was (both databases), so the point and its
    # time are picked by the same comparison. A tie keeps the stored one (stored earlier).
    earlier = f"EXCLUDED.{c['first_t']} < {table}.{c['first_t']}"
    return (
        f"{insert} ON CONFLICT ({c['stream']}, {c['tier']}, {c['start']}) DO UPDATE SET "
        f"{c['count']} = {table}.{c['count']} + EXCLUDED.{c['count']}, "
        f"{c['first_point']} = CASE WHEN {earlier} THEN EXCLUDED.{c['first_point']} "
        f"ELSE {table}.{c['first_point']} END, "
        f"{c['first_t']} = CASE WHEN {earlier} THEN EXCLUDED.{c['first_t']} ELSE {table}.{c['first_t']} END"
    )


def _series_sql() -> str:
    from streams.models import StoredRollupSeries

    table, c, insert = _insert(StoredRollupSeries, SERIES_FIELDS)

    def pick(test: str, name: str) -> str:
        return f"{c[name]} = CASE WHEN {test} THEN EXCLUDED.{c[name]} ELSE {table}.{c[name]} END"

    lower = f"EXCLUDED.{c['min']} < {table}.{c['min']}"
    higher = f"EXCLUDED.{c['max']} > {table}.{c['max']}"
    earlier = f"EXCLUDED.{c['first_t']} < {table}.{c['first_t']}"
    # A tie goes to the points being stored now (stored later), as a raw read orders them.
    later = f"EXCLUDED.{c['last_t']} >= {table}.{c['last_t']}"
    sets = [
        f"{c['count']} = {table}.{c['count']} + EXCLUDED.{c['count']}",
        f"{c['sum']} = {table}.{c['sum']} + EXCLUDED.{c['sum']}",
        pick(lower, "min"),
        pick(lower, "min_point"),
        pick(higher, "max"),
        pick(higher, "max_point"),
        pick(earlier, "first"),
        pick(earlier, "first_t"),
        pick(later, "last"),
        pick(later, "last_t"),
    ]
    return (
        f"{insert} ON CONFLICT ({c['stream']}, {c['tier']}, {c['start']}, {c['series']}) DO UPDATE SET "
        + ", ".join(sets)
    )


# Reading -------------------------------------------------------------------------------------


def read_buckets(stream_id: int, *, tier: int, start: int, end: int) -> tuple[int, list[str]]:
    """The points in the tier's buckets with start <= bucket start < end, and the texts of the
    points they keep (each once, in no order)."""
    from streams.models import StoredRollup, StoredRollupSeries

    where = {"stream_id": stream_id, "tier": tier, "start__gte": start, "start__lt": end}
    points = 0
    kept: set[str] = set()
    for count, first in StoredRollup.objects.filter(**where).values_list("count", "first_point"):
        points += count
        kept.add(first)
    for low, high in StoredRollupSeries.objects.filter(**where).values_list("min_point", "max_point"):
        kept.add(low)
        kept.add(high)
    return points, list(kept)


def decode_points(texts: Sequence[str]) -> list[list[Any]]:
    """Kept points' texts as [t, {series: value}] lists (one parse for them all)."""
    return orjson.loads("[" + ",".join(texts) + "]") if texts else []


def tier_counts(stream_id: int, *, start: int, end: int) -> dict[int, int]:
    """{second: points} of the 1 s tier with start <= second < end."""
    from streams.models import StoredRollup

    return dict(
        StoredRollup.objects.filter(
            stream_id=stream_id, tier=TIERS[0], start__gte=start, start__lt=end
        ).values_list("start", "count")
    )


# Pruning -------------------------------------------------------------------------------------


def trim(stream_id: int, *, points_deleted: bool) -> int:
    """Make the stream's tiers agree with its stored points after a prune: buckets wholly before
    the oldest kept point are deleted, the one bucket per tier that holds it is rebuilt. Also
    after a prune that deleted nothing here (whole partitions dropped) when the tiers begin
    before the oldest point. Returns the bucket rows deleted. Assumes a prune removes the
    oldest points in time (keep_seconds, and keep_points for points stored in time order)."""
    from streams.models import StoredBatch, StoredRollup, StoredRollupSeries, Stream

    with transaction.atomic():
        # Lock the stream's row as save_batches does (PostgreSQL), so a write of late points
        # into a bucket being rebuilt waits for the rebuild rather than being overwritten by it.
        list(Stream.objects.select_for_update().filter(pk=stream_id).values_list("pk"))
        oldest = (
            StoredBatch.objects.filter(stream_id=stream_id)
            .order_by("t_min")
            .values_list("t_min", flat=True)
            .first()
        )
        buckets = StoredRollup.objects.filter(stream_id=stream_id)
        series = StoredRollupSeries.objects.filter(stream_id=stream_id)
        if oldest is None:
            series.delete()
            return buckets.delete()[0]
        if not points_deleted:
            first = buckets.filter(tier=TIERS[0]).order_by("start").values_list("start", flat=True).first()
            if first is None or first >= bucket_start(oldest, TIERS[0]):
                return 0
        deleted = 0
        for width in TIERS:
            series.filter(tier=width, start__lte=oldest - width).delete()
            deleted += buckets.filter(tier=width, start__lte=oldest - width).delete()[0]
        _rebuild_around(stream_id, oldest)
    return deleted


def _rebuild_around(stream_id: int, moment: float) -> None:
    """Rebuild the bucket holding `moment` in every tier: the finest from the stored points,
    each coarser one from the finer tier's rows inside it (written just before)."""
    from streams.models import StoredRollup, StoredRollupSeries
    from streams.storage.store import iter_range  # the store calls this module: a late import

    width = TIERS[0]
    start = bucket_start(moment, width)
    bucket = Bucket()
    for row in iter_range(stream_id, start=start, end=start + width):
        for point in _points_of(row.t, row.y):
            if start <= point.t < start + width:
                bucket.add(point)
    marks = rolled_until(stream_id)
    with connection.cursor() as cursor:
        for coarser in (None, *TIERS[1:]):
            if coarser is not None:
                finer, width = width, coarser
                start = bucket_start(moment, width)
                if start >= marks[width]:
                    continue  # not rolled yet: its roll reads the finer tier, trimmed already
                bucket = _read_merged(stream_id, tier=finer, start=start, end=start + width)
            where = {"stream_id": stream_id, "tier": width, "start": start}
            StoredRollupSeries.objects.filter(**where).delete()
            StoredRollup.objects.filter(**where).delete()
            if bucket.count:
                write_deltas(cursor, {stream_id: {width: {start: bucket}}})


def _read_merged(stream_id: int, *, tier: int, start: int, end: int) -> Bucket:
    """The tier's stored buckets in [start, end) merged into one, in time order."""
    from streams.models import StoredRollup, StoredRollupSeries

    where = {"stream_id": stream_id, "tier": tier, "start__gte": start, "start__lt": end}
    parts: dict[int, Bucket] = {}
    for at, count, first_t, first in StoredRollup.objects.filter(**where).values_list(
        "start", "count", "first_t", "first_point"
    ):
        parts[at] = Bucket(count=count, first_t=first_t, first=first)
    for at, name, *stats in StoredRollupSeries.objects.filter(**where).values_list(
        "start", "series", *SERIES_FIELDS[4:]
    ):
        parts[at].series[name] = stats
    merged = Bucket()
    for at in sorted(parts):
        merged.merge(parts[at])
    return merged


def _points_of(t: Sequence[float], y: Mapping[str, Sequence[float | None]]) -> list[Point]:
    return [Point(t=at, values={name: column[i] for name, column in y.items()}) for i, at in enumerate(t)]


def rebuild(stream_id: int) -> int:
    """Recompute every tier of the stream from its stored points (the migration's backfill, and
    a repair): the 1 s tier from the points, then every coarser tier rolled up from it. Returns
    the tier rows written."""
    from streams.models import StoredRollup, StoredRollupMark, StoredRollupSeries
    from streams.storage.store import iter_range  # the store calls this module: a late import

    StoredRollupSeries.objects.filter(stream_id=stream_id).delete()
    StoredRollup.objects.filter(stream_id=stream_id).delete()
    StoredRollupMark.objects.filter(stream_id=stream_id).delete()
    written = 0
    newest = -math.inf
    chunk: list[Point] = []
    with connection.cursor() as cursor:
        for row in iter_range(stream_id, start=None, end=None):
            chunk.extend(_points_of(row.t, row.y))
            if len(chunk) >= 100_000:
                written += write_finest(cursor, {stream_id: chunk})
                newest = max(newest, *(point.t for point in chunk))
                chunk = []
        if chunk:
            written += write_finest(cursor, {stream_id: chunk})
            newest = max(newest, *(point.t for point in chunk))
        if newest > -math.inf:
            # Its mark is made anew with unknown spans: the next write sets them from every row.
            written += roll_up(cursor, newest={stream_id: newest}, marks={})
    return written


def write_finest(cursor: Any, points: Mapping[int, Sequence[Point]]) -> int:
    """Merge {stream id: points} into the 1 s tier only (a rebuild or a bulk load, rolled up
    after with `roll_up`). Returns the rows written."""
    finest = {
        stream_id: {TIERS[0]: _finest(chunk, [point.t for point in chunk])}
        for stream_id, chunk in points.items()
    }
    return write_deltas(cursor, finest)
