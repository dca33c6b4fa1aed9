"""Points kept in the database: written in batches behind broadcast, read for ranges and resumes.

Broadcast hands every sent batch to a Persister, which writes them from a thread in bulk, once
a second, so ingest never waits for the database (SQLite allows one writer at a time; a slow
disk must not slow the live path). A failed write is kept and retried; what is queued is
written on shutdown. Pruning (`prune_stream`) deletes in small chunks for the same reason.

On PostgreSQL the table is partitioned by day of the rows' last id (storage/partitions.py):
an insert that finds no partition for its day makes it and is retried once, and whole days
that no stream keeps are dropped (`partitions.drop_expired`) before the chunked deletes run,
which then only trim inside the days still needed. SQLite keeps one plain table.

Every write also merges its points into the rollup tiers (storage/rollups.py), in the same
transaction; every prune trims them to the points kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.db import IntegrityError, connection, transaction

from streams.core.frames import compact, times_and_columns
from streams.core.ids import IdKey, parse_id
from streams.core.points import Entries, Entry, Point, ids_and_points
from streams.core.tasks import finished
from streams.storage import partitions, rollups

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
# Rows waiting for the database, across streams; past this the oldest are dropped (and logged):
# a database that is down for long must not eat the worker's memory.
MAX_WAITING_BATCHES = 100_000
# A flush writes each stream's waiting batches as rows of up to this many points: a row per
# stream per second rather than per tick (a thousand streams at 20 ticks/s are 20,000 rows/s).
MERGE_POINTS = 5_000
PRUNE_CHUNK = 2_000


@dataclass(frozen=True, slots=True)
class DecodedRow:
    """A StoredBatch row's `data`, decoded: each point's id and time, and each series' values."""

    ids: list[str]
    t: list[float]
    y: dict[str, list[float | None]]

    def entries(self) -> list[Entry]:
        series = self.y.items()
        return [
            Entry(id=point_id, point=Point(t=t, values={name: column[index] for name, column in series}))
            for index, (point_id, t) in enumerate(zip(self.ids, self.t, strict=True))
        ]


def encode_entries(entries: Sequence[Entry]) -> str:
    """A StoredBatch row's `data`: columnar JSON with every point's id (times in seconds)."""
    times, y = times_and_columns(entries)
    return compact({"ids": ids_and_points(entries)[0], "t": times, "y": y})


def decode(data: str) -> DecodedRow:
    raw = json.loads(data)
    return DecodedRow(ids=raw["ids"], t=raw["t"], y=raw["y"])


# StoredBatch's columns as save_batches writes them, in the order of batch_row's values.
ROW_FIELDS = ("stream", "first_ms", "first_seq", "last_ms", "last_seq", "t_min", "t_max", "count", "data")


def batch_row(stream_id: int, entries: Sequence[Entry]) -> tuple[Any, ...]:
    """A StoredBatch row's values, in ROW_FIELDS order."""
    return _row_and_columns(stream_id, entries, parse_id(entries[0].id), parse_id(entries[-1].id))[0]


def _row_and_columns(
    stream_id: int, entries: Sequence[Entry], first: IdKey, last: IdKey
) -> tuple[tuple[Any, ...], rollups.Columns]:
    """A StoredBatch row's values (batch_row), and the columns its data was encoded from, which
    the rollup tiers summarise (made once for both; of broadcast's Entries, made once a tick)."""
    ids, points = ids_and_points(entries)
    times, y = times_and_columns(entries)
    t_min, t_max = min(times), max(times)
    row = (
        stream_id,
        first[0],
        first[1],
        last[0],
        last[1],
        t_min,
        t_max,
        len(entries),
        compact({"ids": ids, "t": times, "y": y}),
    )
    made = rollups.Columns(
        stream_id=stream_id, last_ms=last[0], points=points, t=times, y=y, t_min=t_min, t_max=t_max
    )
    return row, made


def _insert_sql() -> str:
    from streams.models import StoredBatch

    meta, quote = StoredBatch._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in ROW_FIELDS)
    values = ", ".join(["%s"] * len(ROW_FIELDS))
    # A row whose last id is stored already (a retried write that did land) is skipped, as
    # bulk_create(ignore_conflicts=True) did; SQLite >= 3.24 and PostgreSQL both say it so.
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING"


# Sync reads and writes (call through database_sync_to_async from async code) ----------------


STREAMS_PER_QUERY = 500


def stream_ids(slugs: Sequence[str]) -> dict[str, int]:
    """The primary keys of the streams that still exist and store points."""
    from streams.models import Stream

    # Plain SQL: the ORM's lookup of a thousand slugs (each parameter prepared by its field)
    # cost more than the query, every flush.
    meta, quote = Stream._meta, connection.ops.quote_name
    slug, pk = quote(meta.get_field("slug").column), quote(meta.pk.column)
    store = quote(meta.get_field("store_points").column)
    found: dict[str, int] = {}
    with connection.cursor() as cursor:
        for at in range(0, len(slugs), STREAMS_PER_QUERY):
            chunk = list(slugs[at : at + STREAMS_PER_QUERY])
            cursor.execute(
                f"SELECT {slug}, {pk} FROM {quote(meta.db_table)} WHERE {store} = %s "
                f"AND {slug} IN ({', '.join(['%s'] * len(chunk))})",
                [True, *chunk],
            )
            found.update(cursor.fetchall())
    return found


def save_batches(batches: Sequence[tuple[str, Sequence[Entry]]]) -> int:
    """Write batches of (slug, entries); a point at or before its stream's newest stored id is
    skipped (already stored, by this process or another). Returns rows written."""
    try:
        return _save_batches(batches)
    except IntegrityError as error:
        # PostgreSQL: a day past the partitions made ahead (a worker down for a week, a clock
        # gone wrong). Make the days of these rows (each row's key is its last id) and retry.
        if not partitions.is_missing_partition(error):
            raise
        partitions.make_partitions_for(parse_id(entries[-1].id)[0] for _, entries in batches if entries)
        return _save_batches(batches)


def _save_batches(batches: Sequence[tuple[str, Sequence[Entry]]]) -> int:
    ids = stream_ids(sorted({slug for slug, _ in batches}))
    wanted = [(ids[slug], entries) for slug, entries in batches if slug in ids and entries]
    if not wanted:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        newest = _newest_stored(cursor, sorted({stream_id for stream_id, _ in wanted}))
        rows = []
        fresh: list[rollups.Columns] = []
        for stream_id, entries in wanted:
            after = newest.get(stream_id)
            first = parse_id(entries[0].id)
            if after is not None and first <= after:
                # Ids only grow per stream, so this is a batch stored already (a retry that had
                # landed) or overlapping what another worker stored: a worker that took the
                # stream over stores the window past the newest stored id, and the old owner's
                # late write must not store those points a second time under other batch ids.
                entries = [entry for entry in entries if parse_id(entry.id) > after]
                if not entries:
                    continue
                first = parse_id(entries[0].id)
            last = parse_id(entries[-1].id)
            row, made = _row_and_columns(stream_id, entries, first, last)
            rows.append(row)
            fresh.append(made)
            newest[stream_id] = last
        # One executemany rather than bulk_create: the ORM's model objects and per-field SQL
        # were a third of a write's cost (about 100 us a row), for rows that need none of it.
        if rows:
            cursor.executemany(_insert_sql(), rows)
            # The rollup tiers take exactly the points the fence let through, in this
            # transaction, summarised from the columns the rows were encoded from.
            rollups.add_columns(cursor, fresh)
    return len(rows)


NEWEST_PER_QUERY = 500


def _newest_stored(cursor: Any, stream_ids: Sequence[int], *, lock: bool = True) -> dict[int, IdKey]:
    """The newest stored id of each stream, read inside the write's transaction. On PostgreSQL
    the streams' rows are locked first (in id order, so two writers cannot deadlock), which
    makes two workers' writes of one stream take turns between this read and their insert;
    `lock=False` for a read outside any write."""
    from streams.models import StoredBatch, Stream

    quote = connection.ops.quote_name
    streams, pk = quote(Stream._meta.db_table), quote(Stream._meta.pk.column)
    if lock and connection.vendor == "postgresql":
        marks = ", ".join(["%s"] * len(stream_ids))
        cursor.execute(
            f"SELECT {pk} FROM {streams} WHERE {pk} IN ({marks}) ORDER BY 1 FOR UPDATE", list(stream_ids)
        )
    meta = StoredBatch._meta
    table, stream = quote(meta.db_table), quote(meta.get_field("stream").column)
    last_ms, last_seq = quote(meta.get_field("last_ms").column), quote(meta.get_field("last_seq").column)

    # Per stream, the unique index's last entry for it (a GROUP BY with MAX would read every
    # stored row of the streams), as a subquery of the streams' rows: a UNION ALL of a part per
    # stream cost 4 times as much on SQLite (a thousand parts parsed, every flush).
    def newest(column: str) -> str:
        return (
            f"(SELECT x.{column} FROM {table} x WHERE x.{stream} = s.{pk} "
            f"ORDER BY x.{last_ms} DESC, x.{last_seq} DESC LIMIT 1)"
        )

    found: dict[int, IdKey] = {}
    for start in range(0, len(stream_ids), NEWEST_PER_QUERY):
        chunk = list(stream_ids[start : start + NEWEST_PER_QUERY])
        cursor.execute(
            f"SELECT s.{pk}, {newest(last_ms)}, {newest(last_seq)} FROM {streams} s "
            f"WHERE s.{pk} IN ({', '.join(['%s'] * len(chunk))})",
            chunk,
        )
        for stream_id, ms, seq in cursor.fetchall():
            if ms is not None:
                found[stream_id] = (ms, seq)
    return found


def read_after(slug: str, *, after: str | None, limit: int) -> list[Entry]:
    """Stored points after the id `after` (all, when None), oldest first, at most the newest `limit`."""
    from streams.models import StoredBatch

    batches = StoredBatch.objects.filter(stream__slug=slug)
    if after is not None:
        ms, seq = parse_id(after)
        batches = batches.filter(last_ms__gt=ms) | batches.filter(last_ms=ms, last_seq__gt=seq)
    # Newest first, so `limit` keeps the newest points; reversed to oldest first below.
    picked: list[Entry] = []
    after_key = None if after is None else parse_id(after)
    for data in (
        batches.order_by("-last_ms", "-last_seq").values_list("data", flat=True).iterator(chunk_size=200)
    ):
        entries = decode(data).entries()
        if after_key is not None:
            entries = [entry for entry in entries if parse_id(entry.id) > after_key]
        picked[:0] = entries
        if len(picked) >= limit:
            return picked[-limit:]
    return picked


def newest_stored_ids(slugs: Sequence[str]) -> dict[str, str | None]:
    """The newest stored id of each stream (None: nothing stored, or the stream stores no
    points), in a query per STREAMS_PER_QUERY streams, reading no row's data: a worker starting
    a thousand streams asks for all of them at once."""
    ids = stream_ids(slugs)
    with connection.cursor() as cursor:
        newest = _newest_stored(cursor, sorted(ids.values()), lock=False)
    found: dict[str, str | None] = dict.fromkeys(slugs)
    for slug, stream_id in ids.items():
        key = newest.get(stream_id)
        if key is not None:
            found[slug] = f"{key[0]}-{key[1]}"
    return found


def batches_in(stream_id: int, *, start: float | None, end: float | None) -> Any:
    """The stream's stored batches with a point in [start, end] (None: open-ended), their
    last_ms bounded too (rollups.id_bounds), so on PostgreSQL only the partitions of the days
    that can hold such a batch are read."""
    from streams.models import StoredBatch

    low, high = rollups.id_bounds(stream_id, start=start, end=end)
    return (
        StoredBatch.objects.filter(stream_id=stream_id)
        .overlapping(start=start, end=end)
        .ids_within(low, high)
    )


def iter_range(stream_id: int, *, start: float | None, end: float | None) -> Iterator[DecodedRow]:
    """Every stored batch with a point in [start, end], in id order, without loading them all."""
    rows = batches_in(stream_id, start=start, end=end).in_id_order().values_list("data", flat=True)
    for data in rows.iterator(chunk_size=500):
        yield decode(data)


def prune_stream(stream: Any, *, now: float | None = None) -> int:
    """Delete the stream's stored points beyond its keep_seconds / keep_points, in small
    chunks (each its own short transaction). Returns the number of points deleted.

    keep_points is exact: the row holding the oldest point to keep is trimmed to its newest
    points (a row holds a whole tick, or up to MERGE_POINTS points of a second: one push of
    3,000 points to a stream keeping 1,000 is one row)."""
    from streams.models import StoredBatch

    now = time.time() if now is None else now
    batches = StoredBatch.objects.filter(stream_id=stream.pk)
    deleted = 0
    if stream.keep_seconds is not None:
        deleted += _delete_in_chunks(batches.filter(t_max__lt=now - stream.keep_seconds))
    cut = None if stream.keep_points is None else count_cut(stream.pk, keep_points=stream.keep_points)
    if cut is not None:
        if cut.trim is not None:
            deleted += _trim_row(cut.trim, keep=cut.room)
        ms, seq = cut.keep_from
        deleted += _delete_in_chunks(
            batches.filter(last_ms__lt=ms) | batches.filter(last_ms=ms, last_seq__lt=seq)
        )
    # The tiers drop what the points dropped, here or in a partition dropped whole.
    rollups.trim(stream.pk, points_deleted=deleted > 0)
    return deleted


@dataclass(frozen=True, slots=True)
class CountCut:
    """Where a stream's keep_points cuts its stored rows: every row whose last id is before
    `keep_from` goes, and row `trim` (when set) keeps only its newest `room` points."""

    keep_from: IdKey
    trim: int | None
    room: int


def count_cut(stream_id: int, *, keep_points: int) -> CountCut | None:
    """Where keep_points cuts the stream's stored rows; None when every point fits."""
    from streams.models import StoredBatch

    kept = 0
    rows = (
        StoredBatch.objects.filter(stream_id=stream_id)
        .order_by("-last_ms", "-last_seq")
        .values_list("pk", "last_ms", "last_seq", "count")
    )
    for pk, last_ms, last_seq, count in rows.iterator(chunk_size=5_000):
        room = keep_points - kept
        if count <= room:
            kept += count
            continue
        # This row holds the oldest point to keep (or, with no room left, is the first to go):
        # it keeps its newest `room` points, and every row before it goes.
        if room > 0:
            return CountCut(keep_from=(last_ms, last_seq), trim=pk, room=room)
        return CountCut(keep_from=(last_ms, last_seq + 1), trim=None, room=0)
    return None


def _trim_row(pk: int, *, keep: int) -> int:
    """Keep only the newest `keep` points of one stored row (its last id, the row's key, stays).
    Returns the points removed."""
    from streams.models import StoredBatch

    with transaction.atomic():
        # Locked (PostgreSQL) and read again inside the transaction: another worker's prune
        # may have trimmed it since the scan.
        row = StoredBatch.objects.select_for_update().filter(pk=pk).values_list("count", "data").first()
        if row is None or row[0] <= keep:
            return 0
        batch = decode(row[1])
        ids, times = batch.ids[-keep:], batch.t[-keep:]
        text = compact(
            {"ids": ids, "t": times, "y": {name: column[-keep:] for name, column in batch.y.items()}}
        )
        first_ms, first_seq = parse_id(ids[0])
        StoredBatch.objects.filter(pk=pk).update(
            first_ms=first_ms,
            first_seq=first_seq,
            t_min=min(times),
            t_max=max(times),
            count=len(ids),
            data=text,
        )
        return row[0] - len(ids)


def _delete_in_chunks(queryset: Any) -> int:
    """Delete the queryset's rows a chunk at a time; returns the points they held."""
    from streams.models import StoredBatch

    deleted = 0
    while True:
        chunk = list(
            queryset.order_by("last_ms", "last_seq").values_list("pk", "last_ms", "count")[:PRUNE_CHUNK]
        )
        if not chunk:
            return deleted
        # The chunk's span of last_ms lets PostgreSQL look for the ids in those days' partitions
        # only, not in every partition's index.
        StoredBatch.objects.filter(
            pk__in=[pk for pk, _, _ in chunk], last_ms__gte=chunk[0][1], last_ms__lte=chunk[-1][1]
        ).delete()
        deleted += sum(count for _, _, count in chunk)


def merge_batches(
    batches: Sequence[tuple[str, Sequence[Entry]]], *, max_points: int = MERGE_POINTS
) -> list[tuple[str, Sequence[Entry]]]:
    """Each stream's batches joined in order into as few batches of at most `max_points` as
    they fit in (a batch is never split). Broadcast's Entries are joined as Entries (their
    columns too); other batches into lists."""
    # Grouped per stream first, then cut: the usual stream's second of ticks fits one row, so
    # the per-batch step is one dict lookup (the chunk bookkeeping per batch, twenty batches a
    # second for each of a thousand streams, was a tenth of the merge).
    groups: dict[str, list[Sequence[Entry]]] = {}
    for slug, entries in batches:
        group = groups.get(slug)
        if group is None:
            groups[slug] = [entries]
        else:
            group.append(entries)
    merged: list[tuple[str, Sequence[Entry]]] = []
    for slug, parts in groups.items():
        if len(parts) == 1:
            merged.append((slug, _joined(parts)))
            continue
        # Entries' ids, not their __len__: a Python call per batch.
        sizes = [len(part.ids) if type(part) is Entries else len(part) for part in parts]  # type: ignore[attr-defined]
        if sum(sizes) <= max_points:
            merged.append((slug, _joined(parts)))
            continue
        chunk: list[Sequence[Entry]] = []
        size = 0
        for part, length in zip(parts, sizes, strict=True):
            if chunk and size + length <= max_points:
                chunk.append(part)
                size += length
            else:
                if chunk:
                    merged.append((slug, _joined(chunk)))
                chunk, size = [part], length
        merged.append((slug, _joined(chunk)))
    return merged


def _joined(parts: Sequence[Sequence[Entry]]) -> Sequence[Entry]:
    if all(type(part) is Entries for part in parts):
        return parts[0] if len(parts) == 1 else Entries.joined(parts)  # type: ignore[arg-type]
    return [entry for part in parts for entry in part]


# The async side: a write-behind queue in the broadcaster -----------------------------------


class Persister:
    """Queues sent batches and writes them from a thread about once a second."""

    def __init__(self, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.flush_seconds = flush_seconds
        self._waiting: list[tuple[str, Sequence[Entry]]] = []
        # The rows of a write that failed, retried exactly as they were: it may have landed
        # (the connection lost at commit), and only the very same rows are skipped by their
        # unique last id; merged with later batches they would store its points twice.
        self._rows: list[tuple[str, Sequence[Entry]]] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Batches are numbered as added: each stream's last one, and the last one written (a
        # write takes every batch added before it), tell whether a stream has any waiting.
        self._added = 0
        self._last_added: dict[str, int] = {}
        self._written = 0

    def add(self, slug: str, entries: Sequence[Entry]) -> None:
        # Called for each stream every tick, on the event loop: no property or other call
        # that is not needed. Broadcast's Entries are its own, never changed after: kept as
        # they are.
        waiting = self._waiting
        waiting.append((slug, entries if type(entries) is Entries else list(entries)))
        self._added = added = self._added + 1
        self._last_added[slug] = added
        excess = len(waiting) + len(self._rows) - MAX_WAITING_BATCHES
        if excess > 0:
            from_rows = min(excess, len(self._rows))
            del self._rows[:from_rows]
            del waiting[: excess - from_rows]
            log.error("the database is not taking points: dropped the %d oldest waiting batches", excess)
        task = self._task
        if task is None or task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def waiting(self) -> int:
        return len(self._rows) + len(self._waiting)

    async def _run(self) -> None:
        failures = 0
        while self.waiting:
            await asyncio.sleep(self.flush_seconds if failures == 0 else min(30.0, 2.0**failures))
            try:
                await self.flush()
                failures = 0
            except Exception:
                failures += 1
                log.exception("could not store %d batches; retrying", self.waiting)

    async def flush(self) -> None:
        """Write everything waiting now; on failure it stays queued (and the error is raised)."""
        async with self._lock:
            await self._write()

    async def write_through(self, slug: str) -> None:
        """Write now what waits of `slug`, if anything does (with everything else waiting, in
        one write that the streams asking meanwhile share); raises as `flush` does."""
        wanted = self._last_added.get(slug, 0)
        if self._written >= wanted:
            return
        async with self._lock:
            if self._written < wanted:  # else a write while we waited for the lock took it
                await self._write()

    async def _write(self) -> None:
        through = self._added
        taken = self._rows + merge_batches(self._waiting)
        self._rows, self._waiting = [], []
        if not taken:
            self._written = through
            return
        try:
            await database_sync_to_async(save_batches)(taken)
        except BaseException:
            self._rows = taken
            raise
        self._written = through

    async def close(self) -> None:
        """Write what is queued (one attempt) and stop."""
        if self._task is not None:
            # Cancel it only between writes: a write cut short still lands from its thread,
            # and its rows, put back, would be merged with what came since and stored twice.
            async with self._lock:
                self._task.cancel()
            await finished(self._task)
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("could not store %d batches at shutdown", self.waiting)
