"""The history window: same answers from the in-process ring and from Redis Streams."""

from __future__ import annotations

import json
import time

import pytest

from streams.core.ids import IdClock, format_id
from streams.core.points import Entry, Point
from streams.core.retention import Retention
from streams.storage.window import MemoryHistory, RedisHistory, WindowAppend, entries_text, is_gap
from tests.fake_redis import FakeRedis


@pytest.fixture(params=["memory", "redis"])
def history(request):
    if request.param == "memory":
        return MemoryHistory()
    prefix = request.getfixturevalue("redis_prefix")
    from tests.services import require_redis

    return RedisHistory(require_redis(), prefix=prefix)


def make_entries(clock: IdClock, count: int, *, start: float = 0.0) -> list[Entry]:
    return [
        Entry(id=format_id(clock.next()), point=Point(t=start + i, values={"v": float(i)}))
        for i in range(count)
    ]


async def test_read_without_after_returns_the_whole_window(history):
    clock = IdClock()
    entries = make_entries(clock, 5)
    await history.append("s", entries, retention=Retention(points=10))
    backfill = await history.read("s", after=None, retention=Retention(points=10))
    assert [e.id for e in backfill.entries] == [e.id for e in entries]
    assert backfill.entries[2].point == Point(t=2.0, values={"v": 2.0})
    assert not backfill.gap


async def test_read_after_returns_only_newer_points(history):
    clock = IdClock()
    entries = make_entries(clock, 6)
    await history.append("s", entries[:3], retention=Retention(points=10))
    await history.append("s", entries[3:], retention=Retention(points=10))
    backfill = await history.read("s", after=entries[2].id, retention=Retention(points=10))
    assert [e.id for e in backfill.entries] == [e.id for e in entries[3:]]
    assert not backfill.gap
    assert await history.last_id("s") == entries[-1].id


async def test_window_is_trimmed_by_count_and_an_old_after_is_a_gap(history):
    clock = IdClock()
    entries = make_entries(clock, 10)
    await history.append("s", entries, retention=Retention(points=4))
    backfill = await history.read("s", after=entries[2].id, retention=Retention(points=4))
    assert backfill.gap
    assert [e.id for e in backfill.entries] == [e.id for e in entries[-4:]]


async def test_after_equal_to_the_last_dropped_point_is_not_a_gap(history):
    clock = IdClock()
    entries = make_entries(clock, 10)
    await history.append("s", entries, retention=Retention(points=4))
    backfill = await history.read("s", after=entries[5].id, retention=Retention(points=4))
    assert not backfill.gap
    assert [e.id for e in backfill.entries] == [e.id for e in entries[6:]]


async def test_window_is_trimmed_by_age(history):
    now_ms = int(time.time() * 1000)
    stale = [Entry(id=f"{now_ms - 60_000}-{i}", point=Point(t=i, values={"v": 1.0})) for i in range(3)]
    fresh = make_entries(IdClock(), 2)
    await history.append("s", stale + fresh, retention=Retention(points=None, seconds=30))
    backfill = await history.read("s", after=None, retention=Retention(points=None, seconds=30))
    assert [e.id for e in backfill.entries] == [e.id for e in fresh]


async def test_after_from_a_lost_history_is_a_gap(history):
    # The client holds ids this history never kept (Redis flushed, embedded server restarted).
    fresh = make_entries(IdClock(), 3)
    await history.append("s", fresh, retention=Retention(points=10))
    lost_id = format_id((int(time.time() * 1000) - 10_000, 0))
    assert (await history.read("s", after=lost_id, retention=Retention(points=10))).gap
    empty = await history.read("never-written", after=lost_id, retention=Retention(points=10))
    assert empty.gap and empty.entries == []


async def test_last_entry_is_the_newest_point_or_none(history):
    assert await history.last_entry("s") is None
    entries = make_entries(IdClock(), 3, start=100.0)
    await history.append("s", entries, retention=Retention(points=10))
    assert await history.last_entry("s") == entries[-1]


async def test_status_is_kept_per_stream(history):
    assert await history.get_status("s") is None
    await history.set_status("s", {"state": "live"})
    assert await history.get_status("s") == {"state": "live"}
    await history.drop_stream("s")
    assert await history.get_status("s") is None


def test_gap_rules():
    assert not is_gap(after=None, first=None, last=None, max_deleted=(0, 0), ever_added=0)
    assert is_gap(after=(5, 0), first=None, last=None, max_deleted=(0, 0), ever_added=0)
    assert not is_gap(after=(5, 0), first=None, last=None, max_deleted=(5, 0), ever_added=3)
    assert not is_gap(after=(5, 0), first=(6, 0), last=(9, 0), max_deleted=(5, 0), ever_added=9)
    assert is_gap(after=(4, 0), first=(6, 0), last=(9, 0), max_deleted=(5, 0), ever_added=9)
    assert is_gap(after=(10, 0), first=(6, 0), last=(9, 0), max_deleted=(5, 0), ever_added=9)


async def test_append_many_stores_every_stream_and_answers_per_batch(history):
    clock = IdClock()
    first, second = make_entries(clock, 3), make_entries(clock, 2, start=10)
    errors = await history.append_many(
        [WindowAppend("a", first, Retention(points=10)), WindowAppend("b", second, Retention(points=1))]
    )
    assert errors == [None, None]
    assert [e.id for e in (await history.read("a", after=None, retention=Retention(points=10))).entries] == [
        e.id for e in first
    ]
    # Each batch is trimmed by its own retention.
    kept = await history.read("b", after=None, retention=Retention(points=1))
    assert [e.point for e in kept.entries] == [second[-1].point]


async def test_append_tick_stores_the_statuses_and_the_batches_and_answers_per_batch(history):
    clock = IdClock()
    entries = make_entries(clock, 2)
    statuses = {"a": {"state": "live", "note": 'a "quoted"\nline'}, "quiet": {"state": "stalled"}}
    errors = await history.append_tick([WindowAppend("a", entries, Retention())], statuses=statuses)
    assert errors == [None]
    assert await history.get_statuses(["a", "quiet"]) == statuses
    assert [e.id for e in (await history.read("a", after=None, retention=Retention())).entries] == [
        e.id for e in entries
    ]
    # No batch: the statuses alone.
    assert await history.append_tick([], statuses={"a": {"state": "error"}}) == []
    assert await history.get_status("a") == {"state": "error"}


async def test_a_refused_batch_in_redis_leaves_the_other_streams_stored(redis_prefix):
    from tests.services import require_redis

    history = RedisHistory(require_redis(), prefix=redis_prefix)
    clock = IdClock()
    old, new = make_entries(clock, 1), make_entries(clock, 1)
    await history.append("a", new, retention=Retention())
    # An id below the stream's newest is refused by Redis: only that batch fails.
    errors = await history.append_many(
        [WindowAppend("a", old, Retention()), WindowAppend("b", new, Retention())]
    )
    assert errors[0] is not None and errors[1] is None
    assert await history.last_id("b") == new[0].id
    assert await history.last_id("a") == new[0].id


async def test_a_tick_whose_batches_redis_all_refuses_answers_each_with_its_error(redis_prefix):
    from tests.services import require_redis

    history = RedisHistory(require_redis(), prefix=redis_prefix)
    clock = IdClock()
    old, new = make_entries(clock, 1), make_entries(clock, 1)
    await history.append_many([WindowAppend("a", new, Retention()), WindowAppend("b", new, Retention())])
    errors = await history.append_many(
        [WindowAppend("a", old, Retention()), WindowAppend("b", old, Retention())]
    )
    assert all(error is not None for error in errors) and len(errors) == 2
    assert await history.last_id("a") == await history.last_id("b") == new[0].id


async def test_a_ticks_append_goes_to_redis_while_the_loop_is_busy(redis_prefix):
    """The tick's script is sent by the appender thread: broadcast makes the tick's group
    messages while Redis runs it, and the loop's other work never holds the command back."""
    import redis

    from tests.services import require_redis
    from tests.waits import wait_until

    history = RedisHistory(require_redis(), prefix=redis_prefix)
    entries = make_entries(IdClock(), 3)
    answers = history.start_append_tick(
        [WindowAppend("s", entries, Retention())], statuses={"s": {"state": "live"}}
    )
    # Not one await since: the loop has not run, so only the thread can have sent it.
    client = redis.Redis.from_url(require_redis())
    try:
        wait_until(lambda: client.xlen(history.key("s")) == 3, what="the points in Redis, the loop held")
    finally:
        client.close()
    assert await answers == [None]
    assert await history.get_status("s") == {"state": "live"}


async def test_a_redis_that_never_answers_fails_the_tick_instead_of_holding_it(monkeypatch):
    """A Redis that takes the script and never answers (hung, or its packets dropped): the
    appender thread gives up after APPEND_TIMEOUT_SECONDS and every batch answers with the
    error, so broadcast keeps them for the next tick, rather than the flush (and every feed it
    holds) waiting for good. A real server on loopback that answers the connection's handshake
    and then swallows the script call."""
    import asyncio

    import redis

    from streams.storage import window

    monkeypatch.setattr(window, "APPEND_TIMEOUT_SECONDS", 0.5)
    server = FakeRedis()
    history = RedisHistory(server.url, prefix="hung")
    try:
        answers = history.start_append_tick(
            [WindowAppend("a", make_entries(IdClock(), 2), Retention()), WindowAppend("b", [], Retention())],
            statuses={},
        )
        errors = await asyncio.wait_for(answers, timeout=30)  # bounded either way
    finally:
        server.close()
    assert server.swallowed  # the script reached it: a timeout, not a refused connection
    # Its own timeout, whatever redis-py's default (5 s from 8.0, none before): no clock read.
    assert history._appender_redis().connection_pool.connection_kwargs["socket_timeout"] == 0.5
    timed_out = [isinstance(error, redis.exceptions.TimeoutError) for error in errors]
    assert timed_out == [True, True], errors


# Batches of every shape history writes: number columns, and point by point (gaps, other series,
# what orjson cannot write, names that need escaping).
SHAPES = [
    [{"v": 1.5}, {"v": -0.0}],
    [{"a": 1.0, "b": 2.25}, {"a": 4.0, "b": 3.0}],
    [{"a": 1.0, "b": 2.25}, {"b": 3.0, "a": 4.0}],
    [{"a": 1.0, "b": 2.0, "c": 3.5}, {"a": 4.0, "b": 5.0, "c": 6.5}, {"a": 7.0, "b": 8.0, "c": -9.0}],
    [{"v": 1.0}, {"v": None}],
    [{"v": 1}, {"v": 2.0}],
    [{"a": 1.0}, {"b": 2.0}],
    [{"a": 1.0, "b": 2.0}, {"a": 3.0}],
    [{"v": 1.0}, {}],
    [{'é\n",:': 1e300}, {'é\n",:': 5e-324}],
    [{"v": 1e-05}, {"v": 123456789.123456789}, {"v": -1e22}],
    [{"v": 2**70}, {"v": True}],
    [{}],
]


@pytest.mark.parametrize("values", SHAPES)
async def test_the_stored_json_of_a_batch_reads_back_as_the_points(values, redis_prefix):
    from tests.services import require_redis

    history = RedisHistory(require_redis(), prefix=redis_prefix)
    entries = [Entry(id=f"1-{n}", point=Point(t=1.0 + n / 3, values=v)) for n, v in enumerate(values)]
    await history.append("s", entries, retention=Retention())
    stored = await history._redis().xrange(history.key("s"))
    assert [i.decode() for i, _ in stored] == [e.id for e in entries]
    # The json module's text, but for the form of some floats (orjson writes columns).
    texts = [fields[b"p"].decode() for _, fields in stored]
    expected = [json.dumps([e.point.t, e.point.values], separators=(",", ":")) for e in entries]
    assert [repr(json.loads(text)) for text in texts] == [repr(json.loads(text)) for text in expected]
    backfill = await history.read("s", after=None, retention=Retention())
    assert [repr(e.point) for e in backfill.entries] == [repr(e.point) for e in entries]


async def test_a_tick_of_batches_of_every_shape_stores_each_in_its_own_stream(redis_prefix):
    """One script call parses where each batch and each of its lines ends: neighbours of other
    shapes must not bleed into one another."""
    from tests.services import require_redis

    history = RedisHistory(require_redis(), prefix=redis_prefix)
    batches = {
        f"s{index}": [Entry(id=f"1-{n}", point=Point(t=1.0 + n / 3, values=v)) for n, v in enumerate(values)]
        for index, values in enumerate(SHAPES)
    }
    errors = await history.append_tick(
        [WindowAppend(slug, entries, Retention(points=2)) for slug, entries in batches.items()],
        statuses={"s0": {"state": "live"}},
    )
    assert errors == [None] * len(SHAPES)
    assert await history.get_status("s0") == {"state": "live"}
    for slug, entries in batches.items():
        backfill = await history.read(slug, after=None, retention=Retention(points=2))
        assert [repr(e.point) for e in backfill.entries] == [repr(e.point) for e in entries[-2:]], slug


def test_number_columns_go_as_columns_and_the_rest_point_by_point():
    def text(*values):
        return entries_text([Entry(id=f"1-{n}", point=Point(t=1.5, values=v)) for n, v in enumerate(values)])

    assert text({"v": 1.5}, {"v": 2.0}) == 'c\n1-0,1-1\n1.5,1.5\n"v"\n1.5,2.0\n'
    assert text({"a": 1.0, "b": 2}) == 'c\n1-0\n1.5\n"a"\n1.0\n"b"\n2\n'
    assert text({"v": None}).startswith("p\n")
    assert text({"v": float("nan")}).startswith("p\n")
    assert text({"v": 2**70}).startswith("p\n")
    assert text({"a": 1.0}, {"b": 2.0}).startswith("p\n")


async def test_last_ids_of_several_streams_at_once(history):
    clock = IdClock()
    entries = make_entries(clock, 2)
    await history.append("a", entries, retention=Retention())
    assert await history.last_ids(["a", "none"]) == {"a": entries[-1].id, "none": None}
