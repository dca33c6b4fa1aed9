"""Rollup tiers: every tier agrees with the raw points it summarises, whatever the order, retries
and overlaps of the writes; a range read from any tier still shows every spike and dip at its
time; tiers survive a restart and a takeover and follow the points when they are pruned.

Runs on SQLite and again on PostgreSQL (make test)."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.frames import columns
from streams.core.ids import IdClock, format_id
from streams.core.points import Entry, Point
from streams.models import StoredBatch, StoredRollup, StoredRollupMark, StoredRollupSeries, Stream
from streams.storage import ranges, rollups
from streams.storage.store import ROW_FIELDS, batch_row, batches_in, iter_range, prune_stream, save_batches

T0 = 1_700_000_000.0

Values = Mapping[str, float | None]

_clock = IdClock()


def entries_of(points: Sequence[tuple[float, Values]]) -> list[Entry]:
    return [Entry(id=format_id(_clock.next()), point=Point(t=t, values=values)) for t, values in points]


def in_batches(entries: Sequence[Entry], size: int) -> list[list[Entry]]:
    return [list(entries[i : i + size]) for i in range(0, len(entries), size)]


def new_stream(**fields: object) -> Stream:
    return Stream.objects.create(
        slug=f"r-{uuid.uuid4().hex[:10]}", title="Rollups", visibility=Stream.Visibility.PUBLIC, **fields
    )


def stored_points(stream: Stream) -> list[tuple[float, dict[str, float | None]]]:
    """The raw points, in stored (id) order."""
    points = []
    for batch in iter_range(stream.pk, start=None, end=None):
        for index, t in enumerate(batch.t):
            points.append((t, {name: column[index] for name, column in batch.y.items()}))
    return points


def expected_tier(points: Sequence[tuple[float, Values]], width: int) -> dict[int, dict]:
    """What a tier must hold, computed plainly from the raw points (not with streams.rollups)."""
    buckets: dict[int, dict] = {}
    for order, (t, values) in enumerate(points):
        bucket = buckets.setdefault(math.floor(t / width) * width, {"count": 0, "series": {}})
        bucket["count"] += 1
        bucket["first_t"] = min(bucket.get("first_t", t), t)
        for name, value in values.items():
            if value is not None:
                bucket["series"].setdefault(name, []).append((t, order, value))
    for bucket in buckets.values():
        summary = {}
        for name, seen in bucket["series"].items():
            values = [value for _, _, value in seen]
            first = min(seen, key=lambda item: (item[0], item[1]))
            last = max(seen, key=lambda item: (item[0], item[1]))
            summary[name] = {
                "n": len(seen),
                "sum": math.fsum(values),
                "min": min(values),
                "max": max(values),
                "first": (first[2], first[0]),
                "last": (last[2], last[0]),
            }
        bucket["series"] = summary
    return buckets


def assert_tiers_agree(stream: Stream) -> None:
    """Below its mark every tier holds exactly the buckets of the stored points, and each bucket
    the stream's points have moved past is below the mark (rolled up)."""
    points = stored_points(stream)
    marks = rollups.rolled_until(stream.pk)
    newest = max((t for t, _ in points), default=None)
    for width in rollups.TIERS:
        want = {
            start: bucket for start, bucket in expected_tier(points, width).items() if start < marks[width]
        }
        passed = {
            start for start in expected_tier(points, width) if start < math.floor(newest / width) * width
        }
        assert passed <= set(want), f"tier {width}: buckets the points moved past are not rolled up"
        rows = StoredRollup.objects.filter(stream=stream, tier=width).values_list(
            "start", "count", "first_t", "first_point"
        )
        got = {start: (count, first_t, json.loads(first)) for start, count, first_t, first in rows}
        assert set(got) == set(want), f"tier {width}: buckets differ"
        series: dict[int, dict[str, tuple]] = {}
        for start, name, *stats in StoredRollupSeries.objects.filter(stream=stream, tier=width).values_list(
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
        ):
            series.setdefault(start, {})[name] = tuple(stats)
        assert set(series) <= set(got), f"tier {width}: series rows without a bucket"
        for start, (count, first_t, first) in got.items():
            bucket = want[start]
            assert count == bucket["count"], (width, start)
            assert first_t == bucket["first_t"] and first[0] == first_t, (width, start)
            kept = [first]
            assert set(series.get(start, {})) == set(bucket["series"]), (width, start)
            for name, stats in series.get(start, {}).items():
                n, total, low, low_point, high, high_point, first_value, first_at, last, last_at = stats
                truth = bucket["series"][name]
                assert n == truth["n"] and low == truth["min"] and high == truth["max"], (width, start, name)
                assert math.isclose(total, truth["sum"], rel_tol=1e-9, abs_tol=1e-9)
                low_point, high_point = json.loads(low_point), json.loads(high_point)
                assert low_point[1][name] == low and high_point[1][name] == high
                kept += [low_point, high_point]
                assert (first_value, first_at) == truth["first"] and (last, last_at) == truth["last"], (
                    width,
                    start,
                )
            # Kept points lie in the bucket and are real stored points.
            for t, values in kept:
                assert start <= t < start + width
                assert any(
                    pt == t and all(values.get(n) == pv.get(n) for n in set(values) | set(pv))
                    for pt, pv in points
                ), (width, start, t)


def assert_spans_hold(stream: Stream) -> None:
    """The stream's spans are known and every stored row keeps to them (rollups.id_bounds)."""
    mark = StoredRollupMark.objects.get(stream=stream)
    assert mark.ahead_ms is not None and mark.behind_ms is not None
    for last_ms, t_min, t_max in StoredBatch.objects.filter(stream=stream).values_list(
        "last_ms", "t_min", "t_max"
    ):
        assert t_max * 1000 - last_ms <= mark.ahead_ms
        assert last_ms - t_min * 1000 <= mark.behind_ms


# Every tier agrees with the raw points -------------------------------------------------------------

value = st.one_of(
    st.none(),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: round(v, 3)),
    st.integers(min_value=-1_000, max_value=1_000),  # whole numbers beside floats in one tier write
    st.sampled_from([math.nan, math.inf, -math.inf]),  # stored as null
)
point = st.tuples(
    st.floats(min_value=0, max_value=50_000, allow_nan=False).map(lambda s: T0 + round(s, 2)),
    st.fixed_dictionaries({"a": value}, optional={"b": value, "c": value}),
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    points=st.lists(point, min_size=1, max_size=150),
    size=st.integers(min_value=1, max_value=40),
    retried=st.integers(min_value=0, max_value=5),
    in_order=st.booleans(),
    flushes=st.integers(min_value=1, max_value=6),
)
def test_every_tier_agrees_with_the_points_it_summarises(points, size, retried, in_order, flushes):
    # Times in any order (late points) or in time order (the usual flush, summarised a second at
    # a time), nulls, series that come and go, batches of any size, written in one or several
    # flushes (a late point then lands in buckets rolled up already); then the last batches
    # written again (a retry that had landed, a takeover's overlap).
    stream = new_stream()
    if in_order:
        points = sorted(points, key=lambda point: point[0])
    batches = in_batches(entries_of(points), size)
    per_flush = -(-len(batches) // flushes)
    for first in range(0, len(batches), per_flush):
        save_batches([(stream.slug, batch) for batch in batches[first : first + per_flush]])
    save_batches([(stream.slug, batch) for batch in batches[-retried:]] if retried else [])
    assert StoredBatch.objects.filter(stream=stream).count() == len(batches)
    assert_tiers_agree(stream)
    assert_spans_hold(stream)
    stream.delete()


tied = st.one_of(value, st.sampled_from([0, 1, 1.0, 2.5]))  # equal values: which point is kept
in_order_point = st.tuples(
    st.floats(min_value=0, max_value=5, allow_nan=False).map(lambda s: T0 + round(s, 2)),
    st.fixed_dictionaries({"a": tied}, optional={"b": tied, "c": tied}),
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(in_order_point, min_size=1, max_size=60), min_size=1, max_size=3))
def test_the_1s_tier_from_columns_is_what_the_points_make(rows):
    # The flush summarises the 1 s tier from the columns it encoded the rows from; the rows it
    # writes are those the Point path (Bucket per point and _run) writes, kept points and ties
    # alike (min and max at their first occurrence, first and last at the earliest and latest).
    times = sorted(t for row in rows for t, _ in row)
    at = 0
    made = []
    for row in rows:  # one stream's rows of a flush, in time order across them
        points = [Point(t=times[at + i], values=values) for i, (_, values) in enumerate(row)]
        at += len(row)
        made.append(
            rollups.Columns(
                stream_id=7,
                last_ms=0,
                points=points,
                t=[p.t for p in points],
                y=columns(points),
                t_min=min(p.t for p in points),
                t_max=max(p.t for p in points),
            )
        )
    points, joined_t, y = rollups._joined(made)
    got_buckets: list[tuple] = []
    got_series: list[tuple] = []
    rollups._finest_rows(7, points, joined_t, y, got_buckets, got_series)
    want_buckets: list[tuple] = []
    want_series: list[tuple] = []
    rollups._delta_rows({7: {1: rollups._finest(points, joined_t)}}, want_buckets, want_series)
    # Per point, one at a time (Bucket.add), too.
    one_by_one: dict[int, rollups.Bucket] = {}
    for point in points:
        one_by_one.setdefault(math.floor(point.t), rollups.Bucket()).add(point)
    added_buckets: list[tuple] = []
    added_series: list[tuple] = []
    rollups._delta_rows({7: {1: one_by_one}}, added_buckets, added_series)
    assert got_buckets == want_buckets == added_buckets
    assert sorted(got_series, key=repr) == sorted(want_series, key=repr) == sorted(added_series, key=repr)
    for got in got_series:  # exact types too: an int sum stays an int, as before
        want = next(row for row in want_series if row[:4] == got[:4])
        assert [type(v) for v in got] == [type(v) for v in want]


# Range reads bound last_ms (the partition key) without losing a point ------------------------------


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.floats(min_value=-3e6, max_value=3e6, allow_nan=False), min_size=1, max_size=80),
    size=st.integers(min_value=1, max_value=12),
    flushes=st.integers(min_value=1, max_value=5),
    edges=st.tuples(st.floats(min_value=-4e6, max_value=4e6), st.floats(min_value=-4e6, max_value=4e6)),
)
def test_a_range_bounds_last_ms_and_still_finds_every_batch(offsets, size, flushes, edges):
    # Points up to a month before and after their ids' clock (a backfill, a feed's clock ahead),
    # written over several flushes, so the spans grow as rows stray further.
    now = time.time()
    stream = new_stream()
    batches = in_batches(entries_of([(now + offset, {"v": offset}) for offset in offsets]), size)
    per_flush = -(-len(batches) // flushes)
    for first in range(0, len(batches), per_flush):
        save_batches([(stream.slug, batch) for batch in batches[first : first + per_flush]])
    assert_spans_hold(stream)
    start, end = now + min(edges), now + max(edges)
    low, high = rollups.id_bounds(stream.pk, start=start, end=end)
    assert low is not None and high is not None
    plain = StoredBatch.objects.filter(stream=stream).overlapping(start=start, end=end)
    assert set(batches_in(stream.pk, start=start, end=end).values_list("pk", flat=True)) == set(
        plain.values_list("pk", flat=True)
    )
    assert sorted(t for batch in iter_range(stream.pk, start=start, end=end) for t in batch.t) == sorted(
        t for batch in plain for t in json.loads(batch.data)["t"]
    )
    stream.delete()


@pytest.mark.django_db
def test_unknown_spans_bound_nothing_until_a_write_sets_them_from_every_row():
    stream = new_stream(keep_points=None, keep_seconds=None)
    early = entries_of([(T0 + i, {"v": float(i)}) for i in range(100)])  # years before their ids
    save_batches([(stream.slug, batch) for batch in in_batches(early, 10)])
    rollups.rebuild(stream.pk)  # a repair: the mark is made anew, its spans unknown
    assert rollups.id_bounds(stream.pk, start=T0, end=T0 + 10) == (None, None)
    assert sum(len(batch.t) for batch in iter_range(stream.pk, start=T0, end=T0 + 9.5)) == 10
    now = time.time()
    save_batches([(stream.slug, entries_of([(now, {"v": 1.0})]))])
    assert_spans_hold(stream)  # the old rows too, not only the one just written
    assert sum(len(batch.t) for batch in iter_range(stream.pk, start=T0, end=T0 + 9.5)) == 10


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    points=st.lists(point, min_size=1, max_size=300),
    edges=st.tuples(st.floats(min_value=-10, max_value=50_010), st.floats(min_value=-10, max_value=50_010)),
)
def test_a_range_from_the_tiers_counts_exactly_and_keeps_each_series_extremes(points, edges):
    stream = new_stream()
    save_batches([(stream.slug, batch) for batch in in_batches(entries_of(points), 20)])
    start, end = T0 + min(edges), T0 + max(edges)
    inside = [(t, v) for t, v in points if start <= t <= end]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ranges, "RAW_POINTS", -1)  # always the tiers, however few the points
        columns, stored, _ = ranges.read_range(stream.pk, start=start, end=end, points=10)
    assert stored == len(inside)
    assert all(start <= t <= end for t in columns.t.tolist())
    for name in ("a", "b", "c"):
        values = [v[name] for _, v in inside if v.get(name) is not None and math.isfinite(v[name])]
        drawn = [x for x in columns.y[name].tolist() if x == x] if name in columns.y else []
        if values:
            assert (min(drawn), max(drawn)) == (min(values), max(values)), name
        else:
            assert not drawn
    stream.delete()


@pytest.mark.django_db
def test_late_points_are_merged_into_buckets_rolled_up_already():
    stream = new_stream(keep_points=None, keep_seconds=None)
    points = [(T0 + i * 7.0, {"a": float(i), "b": None if i % 3 else 1.0}) for i in range(5_000)]
    save_batches([(stream.slug, batch) for batch in in_batches(entries_of(points), 50)])
    late = [(T0 + 100 + i * 3.1, {"a": -float(i), "b": 2.0}) for i in range(300)]
    # About ten hours stored: every tier is rolled up past the late points before they come.
    assert all(mark > late[-1][0] for mark in rollups.rolled_until(stream.pk).values())
    save_batches([(stream.slug, batch) for batch in in_batches(entries_of(late), 50)])
    assert_tiers_agree(stream)


# Spikes from every tier ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("width", rollups.TIERS)
def test_spikes_planted_in_a_dense_range_are_in_the_answer_from_every_tier(client, monkeypatch, width):
    budget = 100
    span = width * budget  # budget / 2 buckets of this tier fit; twice as many as needed
    size = 4_000
    step = span / size
    stream = new_stream(keep_points=None, keep_seconds=None)
    points = [(T0 + i * step, {"a": math.sin(i / 50), "b": float(i % 7)}) for i in range(size)]
    spike, dip = 1_234, 3_210
    points[spike] = (points[spike][0], {"a": 90.0, "b": 5.5})
    points[dip] = (points[dip][0], {"a": -70.0, "b": 2.5})
    save_batches([(stream.slug, batch) for batch in in_batches(entries_of(points), 200)])

    tiers_read = []
    read_buckets = rollups.read_buckets

    def spy(stream_id: int, *, tier: int, start: int, end: int) -> tuple[int, list[str]]:
        tiers_read.append(tier)
        return read_buckets(stream_id, tier=tier, start=start, end=end)

    monkeypatch.setattr(rollups, "read_buckets", spy)
    monkeypatch.setattr(ranges, "RAW_POINTS", 1_000)
    answer = client.get(f"/streams/{stream.slug}/range", {"points": budget}).json()
    assert max(tiers_read) == width  # this tier answered the middle of the range
    assert answer["stored"] == size and answer["downsampled"] is True
    assert answer["returned"] <= budget
    t, a, b = answer["t"], answer["y"]["a"], answer["y"]["b"]
    # Each at its own time, with the other series' value of that very point beside it.
    assert (
        max(a) == 90.0 and t[a.index(90.0)] == round(points[spike][0] * 1000, 3) and b[a.index(90.0)] == 5.5
    )
    assert (
        min(a) == -70.0 and t[a.index(-70.0)] == round(points[dip][0] * 1000, 3) and b[a.index(-70.0)] == 2.5
    )
    assert min(b) == 0.0 and max(b) == 6.0


# Restarts, takeovers, pruning ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rollups_survive_a_restart_and_a_takeover():
    stream = new_stream(keep_points=None, keep_seconds=None)
    entries = entries_of([(T0 + i * 0.05, {"v": float(i % 113)}) for i in range(3_000)])
    save_batches([(stream.slug, batch) for batch in in_batches(entries[:2_000], 20)])

    def tiers() -> list[tuple]:
        return [
            *StoredRollup.objects.filter(stream=stream).order_by("tier", "start").values_list(),
            *StoredRollupSeries.objects.filter(stream=stream)
            .order_by("tier", "start", "series")
            .values_list(),
        ]

    before = tiers()
    connection.close()  # a restart: a new connection reads what the old one wrote
    after = tiers()
    assert before == after and before
    # A worker that takes the stream over stores its window (overlapping what is stored) and
    # the new points; the old owner's late write of points stored meanwhile lands after it.
    save_batches([(stream.slug, batch) for batch in in_batches(entries[1_500:2_600], 20)])
    save_batches([(stream.slug, batch) for batch in in_batches(entries[1_900:2_400], 50)])
    save_batches([(stream.slug, batch) for batch in in_batches(entries[2_600:], 20)])
    assert sum(StoredBatch.objects.filter(stream=stream).values_list("count", flat=True)) == 3_000
    assert sum(StoredRollup.objects.filter(stream=stream, tier=1).values_list("count", flat=True)) == 3_000
    _, stored, _ = ranges.read_range(stream.pk, start=None, end=None, points=10)
    assert stored == 3_000
    assert_tiers_agree(stream)


@pytest.mark.django_db
@pytest.mark.parametrize("keep", [{"keep_seconds": 3_600, "keep_points": None}, {"keep_points": 2_345}])
def test_pruning_keeps_tiers_and_raw_points_consistent(keep):
    stream = new_stream(**keep)
    now = T0 + 20_000
    # Seven seconds apart over about five and a half hours: the prune's edge cuts buckets of
    # every tier in two.
    points = [
        (T0 - 7 + i * 7.3, {"v": float(i % 31), "w": None if i % 5 == 0 else -float(i)}) for i in range(2_800)
    ]
    save_batches([(stream.slug, batch) for batch in in_batches(entries_of(points), 10)])
    assert prune_stream(stream, now=now) > 0
    kept = stored_points(stream)
    assert 0 < len(kept) < len(points)
    assert_tiers_agree(stream)
    assert sum(StoredRollup.objects.filter(stream=stream, tier=1).values_list("count", flat=True)) == len(
        kept
    )
    # Pruning everything leaves no tier rows.
    Stream.objects.filter(pk=stream.pk).update(keep_seconds=60, keep_points=None)
    stream.refresh_from_db()
    prune_stream(stream, now=now + 100_000)
    assert not StoredBatch.objects.filter(stream=stream).exists()
    assert not StoredRollup.objects.filter(stream=stream).exists()
    assert not StoredRollupSeries.objects.filter(stream=stream).exists()


@pytest.mark.django_db
def test_the_backfill_builds_the_tiers_of_points_stored_before_them():
    stream = new_stream()
    save_batches(
        [
            (stream.slug, batch)
            for batch in in_batches(entries_of([(T0 + i, {"v": float(i)}) for i in range(500)]), 25)
        ]
    )
    StoredRollupSeries.objects.filter(stream=stream).delete()  # as before migration 0009
    StoredRollup.objects.filter(stream=stream).delete()
    assert rollups.rebuild(stream.pk) > 0
    assert_tiers_agree(stream)


@pytest.mark.django_db(transaction=True)
def test_the_migration_builds_tiers_for_points_stored_before_it():
    from django.db.migrations.executor import MigrationExecutor

    before = [("streams", "0008_stored_batch_partitions")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        stream = old.get_model("streams", "Stream").objects.create(slug="old", title="Old")
        entries = entries_of([(T0 + i * 0.5, {"v": float(i % 17)}) for i in range(400)])
        old.get_model("streams", "StoredBatch").objects.bulk_create(
            old.get_model("streams", "StoredBatch")(
                stream_id=stream.pk,
                **dict(zip(ROW_FIELDS[1:], batch_row(stream.pk, batch)[1:], strict=True)),
            )
            for batch in in_batches(entries, 40)
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())  # 0009's tiers, 0010's spans
    stream = Stream.objects.get(slug="old")
    assert_tiers_agree(stream)
    assert_spans_hold(stream)
