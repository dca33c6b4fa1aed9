"""Rollup tiers: per-bucket summaries of a stream's stored points, so a long range never reads them all.

Each tier cuts time into buckets of TIERS seconds (1 s up to 6 h). A tier row (StoredRollup)
summarises the stream's points whose time falls in one bucket: how many there are and, per
series, how many values, their sum, min, max, first and last (each with its time), plus the
points themselves that hold a series' min or max and the bucket's first point. Those points are
real stored points with every series' value, so a range drawn from a tier shows each spike and
dip at its own time with the other series' values beside it, exactly as a raw read does.

Written as points are stored (save_batches calls `add_points` inside its own transaction, with
only the points its id fence let through), so a tier never lags the raw points and a retried or
overlapping write never counts a point twice. A write merges into the stored row (min of mins,
sums of sums...) after reading it: the merge is done here, not in SQL, because both databases
would need JSON functions for it; the store's transaction makes the read and the write one step
(PostgreSQL: the stream's row is locked by the id fence; SQLite: one writer at a time).

Pruning (`trim`) drops the buckets before the oldest kept point and rebuilds the one bucket per
tier that straddles it, each from the finer tier's rows (the finest from the raw points), so
tiers keep agreeing with what is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection

from streams.frames import Entry

# Bucket widths in seconds, finest first; each divides the next (a bucket is rebuilt from the
# finer tier's buckets inside it). Ratios of 6 to 10 keep a range within 10x its row budget.
TIERS: tuple[int, ...] = (1, 10, 60, 600, 3_600, 21_600)
# Keys per SELECT of stored rows (3 parameters each; SQLite's default limit is 32,766).
KEYS_PER_QUERY = 300

_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


# A stored point kept by a bucket: [time, {series: value or None}], a list so that it is stored
# as it is (orjson) and compared by identity while merging.
Kept = list[Any]


@dataclass(slots=True)
class Bucket:
    """The summary of one bucket: count of points, per-series stats, and its first point."""

    count: int = 0
    first: Kept | None = None
    series: dict[str, list[Any]] = field(default_factory=dict)
    # series[name] = [n, sum, min, min point, max, max point, first, first_t, last, last_t]

    def add(self, t: float, values: Mapping[str, float | None]) -> None:
        # The store's hottest loop (every stored point passes here once): a Kept is made only
        # when the point becomes one of the bucket's kept points.
        kept = None
        self.count += 1
        if self.first is None or t < self.first[0]:
            kept = self.first = [t, dict(values)]
        series = self.series
        for name, value in values.items():
            # Null, NaN or infinite (x - x is NaN for both): the store writes those as null.
            if value is None or value - value != 0:
                continue
            stats = series.get(name)
            if stats is None:
                kept = kept or [t, dict(values)]
                series[name] = [1, value, value, kept, value, kept, value, t, value, t]
                continue
            stats[0] += 1
            stats[1] += value
            if value < stats[2]:
                kept = kept or [t, dict(values)]
                stats[2], stats[3] = value, kept
            elif value > stats[4]:
                kept = kept or [t, dict(values)]
                stats[4], stats[5] = value, kept
            if t < stats[7]:
                stats[6], stats[7] = value, t
            if t >= stats[9]:  # a tie goes to the later stored point, as a raw read orders them
                stats[8], stats[9] = value, t

    def merge(self, other: Bucket) -> None:
        """Fold in `other`, whose points were stored after this bucket's."""
        self.count += other.count
        if other.first is not None and (self.first is None or other.first[0] < self.first[0]):
            self.first = other.first
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

    def kept_points(self) -> list[Kept]:
        """The bucket's kept points, oldest first, each once."""
        seen: dict[int, Kept] = {}
        if self.first is not None:
            seen[id(self.first)] = self.first
        for stats in self.series.values():
            seen.setdefault(id(stats[3]), stats[3])
            seen.setdefault(id(stats[5]), stats[5])
        return sorted(seen.values(), key=lambda kept: kept[0])

    # Stored form: {"p": [[t, {series: value}], ...], "f": i, "s": {name: [n, sum, min, i_min,
    # max, i_max, first, first_t, last, last_t]}}, "f" and the i_ indexes into "p".

    def encode(self) -> str:
        points = self.kept_points()
        index = {id(kept): i for i, kept in enumerate(points)}
        data = {
            "p": points,
            "f": 0 if self.first is None else index[id(self.first)],
            "s": {
                name: [s[0], s[1], s[2], index[id(s[3])], s[4], index[id(s[5])], s[6], s[7], s[8], s[9]]
                for name, s in self.series.items()
            },
        }
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # an integer past 64 bits: the json module writes it
            return _compact(data)

    @classmethod
    def decode(cls, count: int, data: str) -> Bucket:
        raw = orjson.loads(data)
        points = raw["p"]
        bucket = cls(count=count, first=points[raw["f"]] if points else None)
        for name, s in raw["s"].items():
            bucket.series[name] = [s[0], s[1], s[2], points[s[3]], s[4], points[s[5]], s[6], s[7], s[8], s[9]]
        return bucket


def bucket_start(t: float, width: int) -> int:
    return math.floor(t / width) * width


def summarise(points: Iterable[tuple[float, Mapping[str, float | None]]]) -> dict[int, dict[int, Bucket]]:
    """{tier: {bucket start: Bucket}} of `points` (time, values), in stored order."""
    finest: dict[int, Bucket] = {}
    width = TIERS[0]
    for t, values in points:
        start = math.floor(t / width) * width
        bucket = finest.get(start)
        if bucket is None:
            bucket = finest[start] = Bucket()
        bucket.add(t, values)
    tiers = {width: finest}
    for coarser in TIERS[1:]:
        tiers[coarser] = _coarsen(tiers[width], coarser)
        width = coarser
    return tiers


def _coarsen(buckets: Mapping[int, Bucket], width: int) -> dict[int, Bucket]:
    groups: dict[int, list[Bucket]] = {}
    # In time order; the merge's tie rules then match points added one by one in stored order
    # only when stored order is time order, which is all ties can tell apart anyway.
    for start in sorted(buckets):
        groups.setdefault(bucket_start(start, width), []).append(buckets[start])
    coarse: dict[int, Bucket] = {}
    for start, group in groups.items():
        if len(group) == 1:
            # The usual flush (a second of points): one bucket per tier, shared, never mutated
            # (write_deltas merges a delta into the stored row, not the other way round).
            coarse[start] = group[0]
            continue
        target = coarse[start] = Bucket()
        for bucket in group:
            target.merge(bucket)
    return coarse


# Writing -------------------------------------------------------------------------------------


def _table() -> tuple[str, str, str, str, str, str]:
    from streams.models import StoredRollup

    meta, quote = StoredRollup._meta, connection.ops.quote_name
    return (
        quote(meta.db_table),
        quote(meta.get_field("stream").column),
        quote(meta.get_field("tier").column),
        quote(meta.get_field("start").column),
        quote(meta.get_field("count").column),
        quote(meta.get_field("data").column),
    )


def add_points(cursor: Any, batches: Sequence[tuple[int, Sequence[Entry]]]) -> int:
    """Merge newly stored points, (stream id, entries), into every tier; call inside the write's
    transaction with exactly the points that write stores. Returns the tier rows written."""
    per_stream: dict[int, list[Entry]] = {}
    for stream_id, entries in batches:
        per_stream.setdefault(stream_id, []).extend(entries)
    deltas = {
        stream_id: summarise((entry.point.t, entry.point.values) for entry in entries)
        for stream_id, entries in per_stream.items()
    }
    return write_deltas(cursor, deltas)


def write_deltas(cursor: Any, deltas: Mapping[int, Mapping[int, Mapping[int, Bucket]]]) -> int:
    """Merge {stream id: {tier: {start: Bucket}}} into the stored rows (an upsert that merges)."""
    keys = [
        (stream_id, tier, start)
        for stream_id, tiers in deltas.items()
        for tier, buckets in tiers.items()
        for start in buckets
    ]
    if not keys:
        return 0
    stored = _read_rows(cursor, keys)
    rows = []
    encoded: dict[int, str] = {}  # a delta shared by several tiers is encoded once
    for stream_id, tier, start in keys:
        delta = deltas[stream_id][tier][start]
        existing = stored.get((stream_id, tier, start))
        if existing is not None:
            existing.merge(delta)
            rows.append((stream_id, tier, start, existing.count, existing.encode()))
            continue
        text = encoded.get(id(delta))
        if text is None:
            text = encoded[id(delta)] = delta.encode()
        rows.append((stream_id, tier, start, delta.count, text))
    _upsert(cursor, rows)
    return len(rows)


def _read_rows(cursor: Any, keys: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int, int], Bucket]:
    table, stream, tier, start, count, data = _table()
    found: dict[tuple[int, int, int], Bucket] = {}
    for first in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[first : first + KEYS_PER_QUERY]
        # OR of equalities, one index probe each on both databases (SQLite scans the whole table
        # for a row-value IN (VALUES ...)).
        match = " OR ".join([f"({stream} = %s AND {tier} = %s AND {start} = %s)"] * len(chunk))
        cursor.execute(
            f"SELECT {stream}, {tier}, {start}, {count}, {data} FROM {table} WHERE {match}",
            [part for key in chunk for part in key],
        )
        for stream_id, width, bucket, points, text in cursor.fetchall():
            found[(stream_id, width, bucket)] = Bucket.decode(points, text)
    return found


def _upsert(cursor: Any, rows: Sequence[tuple[int, int, int, int, str]]) -> None:
    table, stream, tier, start, count, data = _table()
    cursor.executemany(
        f"INSERT INTO {table} ({stream}, {tier}, {start}, {count}, {data}) VALUES (%s, %s, %s, %s, %s) "
        f"ON CONFLICT ({stream}, {tier}, {start}) DO UPDATE SET {count} = EXCLUDED.{count}, "
        f"{data} = EXCLUDED.{data}",
        rows,
    )


# Reading -------------------------------------------------------------------------------------


def read_buckets(stream_id: int, *, tier: int, start: int, end: int) -> Iterator[tuple[int, int, str]]:
    """(bucket start, count, data) of the tier's buckets with start <= bucket start < end."""
    from streams.models import StoredRollup

    rows = (
        StoredRollup.objects.filter(stream_id=stream_id, tier=tier, start__gte=start, start__lt=end)
        .order_by("start")
        .values_list("start", "count", "data")
    )
    yield from rows.iterator(chunk_size=2_000)


# Pruning -------------------------------------------------------------------------------------


def trim(stream_id: int) -> int:
    """Make the stream's tiers agree with its stored points after a prune: buckets wholly before
    the oldest kept point are deleted, the one bucket per tier that holds it is rebuilt. Returns
    the tier rows deleted. Assumes a prune removes the oldest points in time (keep_seconds, and
    keep_points for points stored in time order)."""
    from django.db import transaction

    from streams.models import StoredBatch, StoredRollup, Stream

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
        rollups = StoredRollup.objects.filter(stream_id=stream_id)
        if oldest is None:
            return rollups.delete()[0]
        deleted = 0
        for width in TIERS:
            deleted += rollups.filter(tier=width, start__lte=oldest - width).delete()[0]
        _rebuild_around(stream_id, oldest)
    return deleted


def _rebuild_around(stream_id: int, moment: float) -> None:
    """Rebuild the bucket holding `moment` in every tier: the finest from the stored points,
    each coarser one from the finer tier's rows inside it (written just before)."""
    from streams.models import StoredRollup
    from streams.store import iter_range

    width = TIERS[0]
    start = bucket_start(moment, width)
    bucket = Bucket()
    for batch in iter_range(stream_id, start=start, end=start + width):
        for t, values in zip(batch.t, _rows_of(batch.y, len(batch.t)), strict=True):
            if start <= t < start + width:
                bucket.add(t, values)
    with connection.cursor() as cursor:
        for coarser in (None, *TIERS[1:]):
            if coarser is not None:
                finer, width = width, coarser
                start = bucket_start(moment, width)
                bucket = Bucket()
                for _, count, data in read_buckets(stream_id, tier=finer, start=start, end=start + width):
                    bucket.merge(Bucket.decode(count, data))
            if bucket.count == 0:
                StoredRollup.objects.filter(stream_id=stream_id, tier=width, start=start).delete()
            else:
                _upsert(cursor, [(stream_id, width, start, bucket.count, bucket.encode())])


def _rows_of(y: Mapping[str, Sequence[float | None]], size: int) -> list[dict[str, float | None]]:
    names = list(y)
    return [{name: y[name][i] for name in names} for i in range(size)]


def rebuild(stream_id: int) -> int:
    """Recompute every tier of the stream from its stored points (the migration's backfill, and
    a repair). Returns the tier rows written."""
    from streams.models import StoredRollup
    from streams.store import iter_range

    StoredRollup.objects.filter(stream_id=stream_id).delete()
    written = 0
    chunk: list[tuple[float, dict[str, float | None]]] = []
    with connection.cursor() as cursor:
        for batch in iter_range(stream_id, start=None, end=None):
            chunk.extend(zip(batch.t, _rows_of(batch.y, len(batch.t)), strict=True))
            if len(chunk) >= 100_000:
                written += write_deltas(cursor, {stream_id: summarise(chunk)})
                chunk = []
        if chunk:
            written += write_deltas(cursor, {stream_id: summarise(chunk)})
    return written
