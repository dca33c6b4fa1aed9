"""Stored points on PostgreSQL: a partition per day of ids, made ahead and on demand, dropped
whole when no stream keeps a row of it; the migration from the plain table moves every row.

PostgreSQL only (DATABASE_URL=postgres://...); SQLite keeps one plain table."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor

from streams.core.ids import format_id
from streams.core.points import Entry, Point
from streams.ingest.supervisor import prune_streams
from streams.models import StoredBatch, Stream
from streams.storage import partitions, rollups
from streams.storage.backfill import stored_after
from streams.storage.partitions import AHEAD_DAYS, DAY_MS, partition_name
from streams.storage.store import iter_range, prune_stream, read_after, save_batches

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="partitions are PostgreSQL's; SQLite keeps one plain table"
    ),
]

TODAY = int(time.time() * 1000) // DAY_MS
HOUR_MS = 3_600_000


def day_entries(days: list[int], *, per_day: int = 3, points: int = 2) -> list[list[Entry]]:
    """Batches of `points` points, `per_day` batches an hour apart on each day, ids and times
    following one clock (t = id time)."""
    batches = []
    for day in days:
        for hour in range(per_day):
            ms = day * DAY_MS + (hour + 1) * HOUR_MS
            batch = [
                Entry(id=format_id((ms + i, 0)), point=Point(t=(ms + i) / 1000, values={"v": i}))
                for i in range(points)
            ]
            batches.append(batch)
    return batches


def store(slug: str, batches: list[list[Entry]]) -> None:
    save_batches([(slug, batch) for batch in batches])


def made() -> set[str]:
    """The partitions of the table, as PostgreSQL's catalog lists them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'streams_storedbatch'::regclass"
        )
        return {name for (name,) in cursor.fetchall()}


def ids_of(slug: str) -> list[str]:
    return [entry.id for entry in read_after(slug, after=None, limit=10**6)]


@pytest.fixture(autouse=True)
def no_past_partitions() -> Iterator[None]:
    """Past days' partitions left by other tests are empty (the test database is flushed, not
    re-created) and would be dropped with the ones a test looks at."""
    yield
    for name, _, to_ms in partitions.partitions():
        if to_ms <= TODAY * DAY_MS:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {connection.ops.quote_name(name)}")


def test_the_migration_moves_every_stored_row_exactly_and_keeps_the_id_sequence():
    executor = MigrationExecutor(connection)
    executor.migrate([("streams", "0007_stream_feed_settings_text")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'streams_storedbatch'")
        assert cursor.fetchone()[0] == "r", "before: the plain table"
    Stream.objects.create(slug="moved", title="Moved")
    with pytest.MonkeyPatch.context() as patch:
        # No rollup tables before 0009 (whose backfill builds the tiers of these rows).
        patch.setattr(rollups, "add_columns", lambda cursor, rows: 0)
        store("moved", day_entries([TODAY - 40, TODAY - 3, TODAY]))
    columns = "id, stream_id, first_ms, first_seq, last_ms, last_seq, t_min, t_max, count, data"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM streams_storedbatch ORDER BY id")
        before = cursor.fetchall()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM streams_storedbatch ORDER BY id")
        assert cursor.fetchall() == before
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'streams_storedbatch'")
        assert cursor.fetchone()[0] == "p"
    assert {partition_name(day) for day in (TODAY - 40, TODAY - 3)} <= made()
    assert {partition_name(day) for day in range(TODAY, TODAY + AHEAD_DAYS + 1)} <= made()
    assert len(before) == 9
    # New rows take ids after the moved ones.
    store("moved", day_entries([TODAY + 1]))
    assert StoredBatch.objects.order_by("id").last().id > before[-1][0]


def test_a_prune_drops_whole_days_no_stream_keeps_and_no_row_a_stream_keeps():
    aged = Stream.objects.create(slug="aged", title="Aged", keep_seconds=30 * 86_400, keep_points=None)
    counted = Stream.objects.create(slug="counted", title="Counted", keep_seconds=None, keep_points=12)
    store("aged", day_entries([TODAY - 45, TODAY - 40, TODAY - 20, TODAY - 10]))
    # 18 points: the 6 of day -45 are beyond its count limit, the rest it keeps.
    store("counted", day_entries([TODAY - 45, TODAY - 20, TODAY - 10]))
    old_days = {partition_name(TODAY - 45), partition_name(TODAY - 40)}
    assert old_days <= made()
    kept = {slug: ids_of(slug) for slug in ("aged", "counted")}

    # The worker's prune pass: whole days first, then each stream's rows.
    assert prune_streams(["aged", "counted"]) == 0, "nothing left for a row-by-row delete"

    assert not old_days & made()
    assert {partition_name(TODAY - 20), partition_name(TODAY - 10)} <= made()
    assert ids_of("aged") == kept["aged"][12:]
    assert ids_of("counted") == kept["counted"][6:]
    assert prune_stream(aged) == 0 and prune_stream(counted) == 0, "what the prune rule keeps"


@pytest.mark.parametrize(
    "keeper",
    [
        {"keep_seconds": None, "keep_points": None},  # keeps forever
        {"keep_seconds": None, "keep_points": 7},  # its count limit reaches into the old day
        {"keep_seconds": None, "keep_points": 1000},  # every point fits its count limit
        {"store_points": False},  # a stream that stores no more is never pruned
    ],
)
def test_a_day_any_stream_still_keeps_a_row_of_stays_and_only_its_expired_rows_go(keeper):
    aged = Stream.objects.create(slug="aged", title="Aged", keep_seconds=30 * 86_400, keep_points=None)
    Stream.objects.create(slug="keeper", title="Keeper", keep_seconds=30 * 86_400, keep_points=None)
    store("aged", day_entries([TODAY - 45, TODAY - 10]))
    store("keeper", day_entries([TODAY - 45, TODAY - 10]))
    Stream.objects.filter(slug="keeper").update(**keeper)  # after the writes: store_points=False skips them
    kept = ids_of("keeper")

    assert partitions.drop_expired() == []
    assert partition_name(TODAY - 45) in made()
    assert prune_stream(aged) == 6, "the chunked delete still prunes inside a day that stays"
    assert len(ids_of("aged")) == 6
    keeper_stream = Stream.objects.get(slug="keeper")
    if keeper_stream.store_points:
        prune_stream(keeper_stream)
    assert ids_of("keeper") == (kept[-7:] if keeper.get("keep_points") == 7 else kept)


def test_a_range_and_a_resume_spanning_days_are_exact():
    stream = Stream.objects.create(slug="spans", title="Spans", keep_seconds=None, keep_points=None)
    batches = day_entries([TODAY - 3, TODAY - 2, TODAY - 1, TODAY], per_day=4, points=5)
    store("spans", batches)
    everything = [entry for batch in batches for entry in batch]
    assert len({partition_name(day) for day in range(TODAY - 3, TODAY + 1)} & made()) == 4

    # A resume from inside a batch of the second day: every later point once, in order.
    after = everything[23]
    assert read_after("spans", after=after.id, limit=10**6) == everything[24:]
    assert read_after("spans", after=None, limit=30) == everything[-30:]
    assert stored_after("spans", after=after.id, limit=10**6) == (True, everything[24:])

    # A range from the middle of day -3 to the middle of day -1.
    start, end = everything[12].point.t, everything[47].point.t
    in_range = [
        e.id
        for row in iter_range(stream.pk, start=start, end=end)
        for e in row.entries()
        if start <= e.point.t <= end
    ]
    assert in_range == [entry.id for entry in everything[12:48]]


def scanned(queryset) -> set[str]:
    """The partitions of the table a query's plan reads (EXPLAIN after plan-time pruning)."""
    plan = queryset.explain()
    return {name for name in made() if name in plan}


def test_a_range_reads_only_the_days_that_can_hold_it_and_stays_exact():
    from streams.models import StoredRollupMark
    from streams.storage.ranges import read_range
    from streams.storage.store import batches_in

    stream = Stream.objects.create(slug="pruned", title="Pruned", keep_seconds=None, keep_points=None)
    days = list(range(TODAY - 12, TODAY + 1))
    store("pruned", day_entries(days, per_day=3, points=4))
    every = {partition_name(day) for day in days}
    assert every <= made()
    start, end = (TODAY - 8) * DAY_MS / 1000, (TODAY - 7) * DAY_MS / 1000  # day -8, one hour past
    plain = StoredBatch.objects.filter(stream=stream).overlapping(start=start, end=end)
    assert scanned(plain) >= every, "without the last_ms bound every day's partition is probed"
    bounded = batches_in(stream.pk, start=start, end=end)
    assert scanned(bounded) <= {
        partition_name(TODAY - 9),
        partition_name(TODAY - 8),
        partition_name(TODAY - 7),
    }
    assert partition_name(TODAY - 8) in scanned(bounded)
    assert sorted(bounded.values_list("pk", flat=True)) == sorted(plain.values_list("pk", flat=True))

    # A backfill stored today with points of day -8: the stream's spans widen, today's
    # partition is read too, and no point is lost.
    late = [
        Entry(
            id=format_id((TODAY * DAY_MS + 20 * HOUR_MS + i, 0)),
            point=Point(t=start + 60 + i, values={"v": -i}),
        )
        for i in range(5)
    ]
    store("pruned", [late])
    mark = StoredRollupMark.objects.get(stream=stream)
    assert mark.behind_ms > 8 * DAY_MS  # today 20:00 back to day -8 00:01
    bounded = batches_in(stream.pk, start=start, end=end)
    assert partition_name(TODAY) in scanned(bounded)
    assert partition_name(TODAY - 10) not in scanned(bounded), "the lower bound still prunes"
    assert sorted(bounded.values_list("pk", flat=True)) == sorted(plain.values_list("pk", flat=True))
    times = sorted(
        t for row in iter_range(stream.pk, start=start, end=end) for t in row.t if start <= t <= end
    )
    assert times == sorted(
        [e.point.t for b in day_entries([TODAY - 8], per_day=3, points=4) for e in b]
        + [e.point.t for e in late]
    )
    columns, stored, exact = read_range(stream.pk, start=start, end=end, points=2_000)
    assert exact and stored == len(times) and columns.t.tolist() == times


def test_an_insert_for_a_day_with_no_partition_makes_it_and_succeeds():
    Stream.objects.create(slug="far", title="Far", keep_seconds=None, keep_points=None)
    far_ahead, far_back = TODAY + AHEAD_DAYS + 30, TODAY - 400
    assert not {partition_name(far_ahead), partition_name(far_back)} & made()
    batches = day_entries([far_back, far_ahead])
    store("far", batches)
    assert {partition_name(far_ahead), partition_name(far_back)} <= made()
    assert ids_of("far") == [entry.id for batch in batches for entry in batch]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {partition_name(far_ahead)}")


def test_the_prune_pass_makes_partitions_ahead():
    later = time.time() + 20 * 86_400
    prune_streams([])
    assert {partition_name(day) for day in range(TODAY, TODAY + AHEAD_DAYS + 1)} <= made()
    partitions.make_ahead(now=later)
    ahead = {partition_name(TODAY + 20 + day) for day in range(AHEAD_DAYS + 1)}
    assert ahead <= made()
    assert partitions.make_ahead(now=later) == 0, "made once"
    with connection.cursor() as cursor:
        for name in ahead:
            cursor.execute(f"DROP TABLE {name}")


def test_two_workers_making_the_same_days_at_once_make_each_once():
    days = range(TODAY + 40, TODAY + 43)
    start, made_by = threading.Barrier(2), []

    def worker() -> None:
        try:
            start.wait()
            made_by.append(partitions.make_partitions(days))
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made_by) == [0, 3]
    names = {partition_name(day) for day in days}
    assert names <= made()
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP TABLE {name}")
