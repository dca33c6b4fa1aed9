"""Stored points: batch writes that a retry cannot duplicate, exact resumes, ranges, pruning.

Runs on SQLite and again on PostgreSQL (make test)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
from channels.db import database_sync_to_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.frames import times_and_columns
from streams.core.ids import IdClock, format_id
from streams.core.points import Entries, Entry, Point
from streams.models import StoredBatch, Stream
from streams.storage.backfill import stored_after
from streams.storage.store import (
    MERGE_POINTS,
    Persister,
    decode,
    iter_range,
    merge_batches,
    newest_stored_ids,
    prune_stream,
    read_after,
    save_batches,
)
from tests.waits import DEADLINE, eventually

pytestmark = pytest.mark.django_db(transaction=True)


def batches_of(clock: IdClock, sizes: list[int], *, start: float = 1_700_000_000.0) -> list[list[Entry]]:
    out, t = [], start
    for size in sizes:
        batch = []
        for _ in range(size):
            batch.append(
                Entry(id=format_id(clock.next()), point=Point(t=t, values={"a": t - start, "b": None}))
            )
            t += 1
        out.append(batch)
    return out


@pytest.fixture
def stream() -> Stream:
    return Stream.objects.create(slug="stored", title="Stored")


def test_a_batch_written_twice_is_stored_once(stream):
    batch = batches_of(IdClock(), [3])[0]
    save_batches([("stored", batch)])
    save_batches([("stored", batch)])  # a retry after a write that did land
    assert StoredBatch.objects.count() == 1
    row = StoredBatch.objects.get()
    assert (row.count, row.t_min, row.t_max) == (3, 1_700_000_000.0, 1_700_000_002.0)


def test_points_another_worker_stored_under_other_batches_are_not_stored_again(stream):
    # A worker that took the stream over stored the window's tail as one batch; the old owner's
    # late write of the same points, batched by tick, must not store them a second time.
    early, late_a, late_b = batches_of(IdClock(), [3, 2, 2])
    save_batches([("stored", early)])
    save_batches([("stored", late_a + late_b)])  # the new owner's tail, one row
    written = save_batches([("stored", late_a), ("stored", late_b)])  # the old owner, per tick
    assert written == 0
    stored = read_after("stored", after=None, limit=100)
    assert [entry.id for entry in stored] == [entry.id for entry in early + late_a + late_b]


def test_a_batch_overlapping_what_is_stored_keeps_only_its_newer_points(stream):
    first, second = batches_of(IdClock(), [3, 3])
    save_batches([("stored", first + second[:1])])
    assert save_batches([("stored", second)]) == 1
    stored = read_after("stored", after=None, limit=100)
    assert [entry.id for entry in stored] == [entry.id for entry in first + second]
    assert StoredBatch.objects.order_by("last_ms", "last_seq").last().count == 2


def test_newest_stored_ids_are_read_for_many_streams_at_once(stream):
    # More streams than one compound SELECT may hold on SQLite.
    slugs = [f"many-{n}" for n in range(450)]
    Stream.objects.bulk_create([Stream(slug=slug, title=slug) for slug in slugs])
    clock = IdClock()
    batches = [(slug, batches_of(clock, [1])[0]) for slug in slugs]
    assert save_batches(batches) == 450
    assert save_batches(batches) == 0
    assert StoredBatch.objects.count() == 450


def test_streams_that_do_not_store_or_no_longer_exist_are_skipped(stream):
    Stream.objects.create(slug="window-only", title="Window only", store_points=False)
    batch = batches_of(IdClock(), [2])[0]
    written = save_batches([("stored", batch), ("window-only", batch), ("deleted-meanwhile", batch)])
    assert written == 1 and StoredBatch.objects.get().stream == stream


def test_read_after_resumes_exactly_even_inside_a_batch_and_keeps_the_newest(stream):
    batches = batches_of(IdClock(), [3, 3, 3])
    save_batches([("stored", batch) for batch in batches])
    everything = [entry for batch in batches for entry in batch]
    assert read_after("stored", after=None, limit=100) == everything
    assert read_after("stored", after=everything[4].id, limit=100) == everything[5:]
    assert read_after("stored", after=everything[-1].id, limit=100) == []
    assert read_after("stored", after=None, limit=4) == everything[-4:]
    assert newest_stored_ids(["stored", "other"]) == {"stored": everything[-1].id, "other": None}
    assert read_after("other", after=None, limit=10) == []


def test_iter_range_yields_only_batches_with_points_in_the_range(stream):
    batches = batches_of(IdClock(), [10, 10, 10])  # t = start + 0..29
    save_batches([("stored", batch) for batch in batches])
    start = 1_700_000_000.0
    picked = list(iter_range(stream.pk, start=start + 12, end=start + 15))
    assert [decoded.ids for decoded in picked] == [[entry.id for entry in batches[1]]]
    assert len(list(iter_range(stream.pk, start=None, end=None))) == 3
    assert list(iter_range(stream.pk, start=start + 100, end=None)) == []


def test_prune_keeps_exactly_the_newest_points_by_count(stream):
    stream.keep_points, stream.keep_seconds = 25, None
    stream.save()
    batches = batches_of(IdClock(), [10] * 6)
    save_batches([("stored", batch) for batch in batches])
    assert prune_stream(stream) == 35
    kept = read_after("stored", after=None, limit=1000)
    newest = [entry for batch in batches for entry in batch][-25:]
    assert [entry.id for entry in kept] == [entry.id for entry in newest]
    # The row that held the oldest kept point was trimmed, and says so.
    oldest_row = StoredBatch.objects.order_by("last_ms", "last_seq").first()
    assert oldest_row.count == 5
    assert (oldest_row.t_min, oldest_row.t_max) == (newest[0].point.t, newest[4].point.t)
    assert format_id((oldest_row.first_ms, oldest_row.first_seq)) == newest[0].id
    assert prune_stream(stream) == 0, "a second prune finds nothing more to do"


def test_one_push_of_3000_points_to_a_stream_keeping_1000_keeps_exactly_1000(stream):
    stream.keep_points, stream.keep_seconds = 1000, None
    stream.save()
    (pushed,) = batches_of(IdClock(), [3000])
    save_batches(merge_batches([("stored", pushed)]))
    assert StoredBatch.objects.count() == 1, "one row, as the persister writes one push"
    assert prune_stream(stream) == 2000
    kept = read_after("stored", after=None, limit=10_000)
    assert [entry.id for entry in kept] == [entry.id for entry in pushed[-1000:]]
    assert [entry.point.values for entry in kept] == [entry.point.values for entry in pushed[-1000:]]
    assert StoredBatch.objects.get().count == 1000
    # A resume from before the kept points is told they are gone; from inside, it is exact.
    assert stored_after("stored", after=pushed[1000].id, limit=5000) == (False, kept)
    assert stored_after("stored", after=pushed[2500].id, limit=5000) == (True, pushed[2501:])


def test_a_row_that_ends_exactly_at_the_limit_is_kept_whole_and_the_rest_deleted(stream):
    stream.keep_points, stream.keep_seconds = 20, None
    stream.save()
    save_batches([("stored", batch) for batch in batches_of(IdClock(), [10] * 4)])
    assert prune_stream(stream) == 20
    assert sorted(StoredBatch.objects.values_list("count", flat=True)) == [10, 10]


def test_prune_drops_points_older_than_keep_seconds(stream):
    now = time.time()
    stream.keep_points, stream.keep_seconds = None, 3600
    stream.save()
    clock = IdClock()
    old = batches_of(clock, [5, 5], start=now - 7200)
    fresh = batches_of(clock, [5], start=now - 60)
    save_batches([("stored", batch) for batch in old])
    save_batches([("stored", fresh[0])])
    assert prune_stream(stream, now=now) == 10
    assert [entry.point.t for entry in read_after("stored", after=None, limit=100)] == [
        entry.point.t for entry in fresh[0]
    ]


def test_prune_with_no_limits_keeps_everything(stream):
    stream.keep_points = stream.keep_seconds = None
    stream.save()
    save_batches([("stored", batch) for batch in batches_of(IdClock(), [10] * 3)])
    assert prune_stream(stream) == 0 and StoredBatch.objects.count() == 3


async def test_the_persister_writes_behind_and_flushes_what_waits_on_close(stream):
    persister = Persister(flush_seconds=0.05)
    batches = batches_of(IdClock(), [2, 2])
    persister.add("stored", batches[0])
    await eventually(StoredBatch.objects.acount, what="the first batch written behind")
    persister.flush_seconds = 60  # the second batch would wait a minute: close writes it now
    persister.add("stored", batches[1])
    await persister.close()
    assert await StoredBatch.objects.acount() == 2 and persister.waiting == 0


async def test_streams_asking_for_their_waiting_batches_share_one_write_and_others_wait_for_none(stream):
    await Stream.objects.acreate(slug="other", title="Other")
    persister = Persister(flush_seconds=3600)
    writes = []
    write = persister._write

    async def counted() -> None:
        writes.append(1)
        await write()

    persister._write = counted
    clock = IdClock()
    persister.add("stored", batches_of(clock, [2])[0])
    persister.add("other", batches_of(clock, [3])[0])
    await asyncio.gather(persister.write_through("stored"), persister.write_through("other"))
    assert len(writes) == 1 and persister.waiting == 0
    assert await StoredBatch.objects.acount() == 2
    await persister.write_through("stored")  # written already
    await persister.write_through("never-added")
    assert len(writes) == 1


def test_newest_stored_ids_answer_every_stream_asked_even_one_with_nothing_stored():
    Stream.objects.bulk_create([Stream(slug=f"s{n}", title=f"s{n}") for n in range(3)])
    Stream.objects.create(slug="unstored", title="Unstored", store_points=False)
    clock = IdClock()
    first, second = batches_of(clock, [2, 4])
    save_batches([("s0", first), ("s0", second), ("s1", first)])
    found = newest_stored_ids(["s0", "s1", "s2", "unstored", "deleted"])
    assert found == {"s0": second[-1].id, "s1": first[-1].id, "s2": None, "unstored": None, "deleted": None}


async def test_deleting_a_stream_deletes_its_stored_points(stream):
    await database_sync_to_async(save_batches)([("stored", batches_of(IdClock(), [3])[0])])
    await stream.adelete()
    assert await StoredBatch.objects.acount() == 0


def test_a_streams_waiting_batches_are_merged_in_order_up_to_the_limit():
    first, second, third = batches_of(IdClock(), [2, 2, 3])
    merged = merge_batches([("a", first), ("b", second), ("a", third)], max_points=4)
    assert merged == [("a", first), ("a", third), ("b", second)]
    merged = merge_batches([("a", first), ("b", second), ("a", third)], max_points=5)
    assert merged == [("a", first + third), ("b", second)]
    assert len(first) == 2  # the caller's batches are not changed


async def test_the_persister_writes_a_streams_batches_of_one_flush_as_one_row(stream):
    persister = Persister(flush_seconds=60)
    batches = batches_of(IdClock(), [2, 3, 1])
    for batch in batches:
        persister.add("stored", batch)
    await persister.close()
    row = await StoredBatch.objects.aget()
    assert row.count == 6 and decode(row.data).ids == [e.id for batch in batches for e in batch]


@dataclass
class Hold:
    """A write held in its thread after it landed, until the test releases it."""

    landed: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def landing_then(monkeypatch, *, raising: bool = False, hold: Hold | None = None) -> None:
    """save_batches that writes, then (once) reports a failure or returns only when `hold` is
    released: a write that landed although the caller could not know it."""
    from streams.storage import store

    real, calls = store.save_batches, []

    def save(batches):
        written = real(batches)
        calls.append(len(batches))
        if len(calls) == 1:
            if hold is not None:
                hold.landed.set()
                assert hold.release.wait(DEADLINE), "the test never released the write"
            if raising:
                raise OSError("connection lost at commit")
        return written

    monkeypatch.setattr(store, "save_batches", save)


async def stored_ids() -> list[str]:
    rows = [decode(data).ids async for data in StoredBatch.objects.values_list("data", flat=True)]
    return sorted(point_id for ids in rows for point_id in ids)


async def test_a_write_that_landed_but_failed_is_retried_as_it_was_and_stored_once(stream, monkeypatch):
    landing_then(monkeypatch, raising=True)
    persister = Persister(flush_seconds=60)
    first, second = batches_of(IdClock(), [3, 2])
    persister.add("stored", first)
    with pytest.raises(OSError, match="connection lost"):
        await persister.flush()
    persister.add("stored", second)  # fits the same row: must not be merged into the retry
    await persister.close()
    assert await stored_ids() == sorted(e.id for e in first + second)


async def test_closing_while_a_write_is_in_flight_stores_every_point_once(stream, monkeypatch):
    hold = Hold()
    landing_then(monkeypatch, hold=hold)
    persister = Persister(flush_seconds=0.01)
    first, second = batches_of(IdClock(), [3, 2])
    persister.add("stored", first)
    await eventually(hold.landed.is_set, what="the first write in its thread")
    persister.add("stored", second)
    closing = asyncio.ensure_future(persister.close())
    await asyncio.sleep(0)  # close() starts, and waits for the write in flight
    hold.release.set()
    await closing
    assert await stored_ids() == sorted(e.id for e in first + second)


async def test_cancelling_close_while_it_waits_for_the_writer_task_propagates(stream):
    from tests.core.test_tasks import stubborn

    persister = Persister(flush_seconds=3600)
    task, cancelled, release = stubborn()
    persister._task = task
    await asyncio.sleep(0)  # let the stand-in writer start
    closing = asyncio.ensure_future(persister.close())
    try:
        await cancelled.wait()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
    finally:
        release.set()


# Batches joined as columns store what their points do -------------------------------------------

stored_value = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: round(v, 3)),
    st.integers(min_value=-1_000, max_value=1_000),
    st.sampled_from([None, math.nan, math.inf, -math.inf, 0, 0.0, -0.0, 1e-05, True]),
)
# Per flush, every point with series "a" (the usual stream), or "é" (a name orjson and the json
# module write apart), or "a" and "b"; or each point its own: a second series, a missing one, no
# value at all (parts whose columns differ are joined as Entries, in the same flush).
stored_shapes = st.sampled_from(["a", "a", "é", "ab", "mixed"])
mixed_values = st.one_of(
    st.fixed_dictionaries({"a": stored_value}),
    st.fixed_dictionaries({"a": stored_value}, optional={"b": stored_value}),
    st.fixed_dictionaries({"b": stored_value}),
    st.just({}),
)
stored_points = st.lists(
    st.tuples(
        st.floats(min_value=-3, max_value=25, allow_nan=False).map(lambda s: round(s, 3)),
        mixed_values,
        stored_value,
        stored_value,
    ),
    min_size=1,
    max_size=8,
)


def shaped(shape: str, offset: float, mixed: dict, a: object, b: object) -> tuple[float, dict]:
    if shape == "mixed":
        return offset, mixed
    return offset, {"a": a, "b": b} if shape == "ab" else {shape: a}


def stored_rows(stream_id: int) -> list[str]:
    """Every row the stream has in the store and the tiers, but its own ids, as exact text."""
    from streams.models import StoredRollup, StoredRollupMark, StoredRollupSeries

    rows = []
    for model, order in (
        (StoredBatch, ("last_ms", "last_seq")),
        (StoredRollup, ("tier", "start")),
        (StoredRollupSeries, ("tier", "start", "series")),
        (StoredRollupMark, ("stream",)),
    ):
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in ("id", "stream_id")]
        rows += [
            repr(row)
            for row in model.objects.filter(stream_id=stream_id).order_by(*order).values_list(*fields)
        ]
    return rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flushes=st.lists(
        st.tuples(stored_shapes, st.lists(stored_points, min_size=1, max_size=6)), min_size=1, max_size=5
    ),
    max_points=st.sampled_from([3, 10, MERGE_POINTS]),
    steps=st.lists(st.floats(min_value=0, max_value=40).map(lambda s: round(s, 2)), min_size=5, max_size=5),
    retry=st.booleans(),
    in_order=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_batches_merged_as_columns_store_exactly_the_rows_their_points_store(
    flushes, max_points, steps, retry, in_order
):
    # The same ticks to two streams: one as broadcast hands them to the Persister (Entries with
    # their columns made, joined as columns), one as lists of Entry (each Point read). Gaps,
    # non-finite values, whole numbers, series that come and go, late points, flushes that
    # cross second, 10 s and minute buckets (rolled up), a flush written again (a retry that
    # had landed).
    columns_stream, plain_stream = (
        Stream.objects.create(slug=f"p-{uuid.uuid4().hex[:8]}", title="P") for _ in range(2)
    )
    clock = IdClock()
    seen: set[tuple[int, int]] = set()
    base = 1_700_000_000.0
    for (shape, ticks), step, ordered in zip(flushes, steps, in_order, strict=False):
        base += step
        flush = [[shaped(shape, *point) for point in points] for points in ticks]
        if ordered:  # the usual flush: times in order across its ticks
            times = iter(sorted(offset for points in flush for offset, _ in points))
            flush = [[(next(times), values) for _, values in points] for points in flush]
        entries = []
        for points in flush:
            keys = [clock.next() for _ in points]
            seen.update(keys)
            ids = [format_id(key) for key in keys]
            entries.append((ids, [(base + offset, values) for offset, values in points]))
        joined = []
        for ids, points in entries:
            made = Entries(ids, [Point(t=t, values=dict(values)) for t, values in points])
            times_and_columns(made)  # as broadcast's texts do
            joined.append((columns_stream.slug, made))
        plain = [
            (
                plain_stream.slug,
                [
                    Entry(id=i, point=Point(t=t, values=dict(v)))
                    for i, (t, v) in zip(ids, points, strict=True)
                ],
            )
            for ids, points in entries
        ]
        for batches in (joined, plain):
            merged = merge_batches(batches, max_points=max_points)
            save_batches(merged)
            if retry:
                save_batches(merged)
    assert stored_rows(columns_stream.pk) == stored_rows(plain_stream.pk)
    # Every point once, in id order, in rows of at most max_points (but a bigger tick's own).
    rows = StoredBatch.objects.filter(stream=columns_stream).order_by("last_ms", "last_seq")
    ids = [decode(data).ids for data in rows.values_list("data", flat=True)]
    assert [i for row in ids for i in row] == [format_id(key) for key in sorted(seen)]
    assert all(len(row) <= max(max_points, 8) for row in ids)
    columns_stream.delete()
    plain_stream.delete()
