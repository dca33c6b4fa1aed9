"""broadcast: ids, history append, one group message per stream per tick, encoded once."""

from __future__ import annotations

import asyncio
import json
import math
from functools import partial

import pytest
from channels.layers import InMemoryChannelLayer

from streams.broadcast import Broadcaster
from streams.core.groups import group_name
from streams.core.ids import parse_id
from streams.core.points import Point
from streams.core.retention import Retention
from streams.storage.window import MemoryHistory
from tests.waits import eventually


class Listener(InMemoryChannelLayer):
    """A real in-memory channel layer with one channel in stream "s"'s group, recording
    what arrives there as (group, message)."""

    async def listen(self) -> None:
        self.channel = await self.new_channel()
        await self.group_add(group_name("s"), self.channel)
        self.received: list[tuple[str, dict]] = []

    @property
    def sent(self) -> list[tuple[str, dict]]:
        while True:
            try:
                message = self.receive_nowait(self.channel)
            except asyncio.QueueEmpty:
                return self.received
            self.received.append((group_name("s"), message))

    def receive_nowait(self, channel: str) -> dict:
        queue = self.channels.get(channel)
        if queue is None:
            raise asyncio.QueueEmpty
        return queue.get_nowait()[1]


class FlakyHistory(MemoryHistory):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next = 0
        self.appended: list[float] = []  # the times of every point stored, in order

    async def append(self, slug, entries, *, retention):
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("redis went away")
        await super().append(slug, entries, retention=retention)
        self.appended.extend(entry.point.t for entry in entries)


@pytest.fixture
async def layer() -> Listener:
    listener = Listener()
    await listener.listen()
    return listener


def broadcaster_with(layer: Listener, history: MemoryHistory | None = None) -> Broadcaster:
    return Broadcaster(history=history or MemoryHistory(), tick_seconds=0.05, layer=layer)


async def test_points_published_within_a_tick_become_one_group_message(layer):
    broadcaster = broadcaster_with(layer)
    for n in range(5):
        broadcaster.publish("s", [Point(t=n, values={"v": n})], retention=Retention())
    await broadcaster.flush()
    assert len(layer.sent) == 1
    group, message = layer.sent[0]
    assert group == group_name("s")
    batch = json.loads(message["text"])
    assert batch["t"] == [0, 1000, 2000, 3000, 4000]
    assert batch["y"] == {"v": [0, 1, 2, 3, 4]}
    assert batch["id"] == message["id"]
    assert batch["prev"] is None


async def test_ids_increase_and_each_batch_names_the_previous_one(layer):
    broadcaster = broadcaster_with(layer)
    for n in range(3):
        broadcaster.publish("s", [Point(t=n, values={"v": n})] * 2, retention=Retention())
        await broadcaster.flush()
    ids = [message["id"] for _, message in layer.sent]
    assert ids == sorted(ids, key=parse_id)
    assert len(set(ids)) == 3
    assert [message["prev"] for _, message in layer.sent] == [None, ids[0], ids[1]]


async def test_history_holds_every_point_with_its_id(layer):
    history = MemoryHistory()
    broadcaster = broadcaster_with(layer, history)
    broadcaster.publish(
        "s", [Point(t=1, values={"v": 1}), Point(t=2, values={"v": 2})], retention=Retention()
    )
    await broadcaster.flush()
    kept = (await history.read("s", after=None, retention=Retention())).entries
    assert [entry.point.t for entry in kept] == [1, 2]
    assert kept[-1].id == layer.sent[0][1]["id"]


async def test_series_missing_from_some_points_are_null_in_their_column(layer):
    broadcaster = broadcaster_with(layer)
    broadcaster.publish(
        "s",
        [Point(t=1, values={"a": 1}), Point(t=2, values={"b": 2}), Point(t=3, values={"a": 3})],
        retention=Retention(),
    )
    await broadcaster.flush()
    assert json.loads(layer.sent[0][1]["text"])["y"] == {"a": [1, None, 3], "b": [None, 2, None]}


async def test_non_finite_values_become_gaps_instead_of_breaking_the_batch(layer):
    broadcaster = broadcaster_with(layer)
    broadcaster.publish(
        "s", [Point(t=1, values={"v": math.nan}), Point(t=2, values={"v": math.inf})], retention=Retention()
    )
    await broadcaster.flush()
    assert json.loads(layer.sent[0][1]["text"])["y"] == {"v": [None, None]}


async def test_a_failed_history_append_keeps_the_points_for_the_next_tick(layer):
    history = FlakyHistory()
    history.fail_next = 1
    broadcaster = broadcaster_with(layer, history)
    broadcaster.publish("s", [Point(t=1, values={"v": 1})], retention=Retention())
    await broadcaster.flush()
    assert layer.sent == []
    broadcaster.publish("s", [Point(t=2, values={"v": 2})], retention=Retention())
    await broadcaster.flush()
    assert json.loads(layer.sent[0][1]["text"])["t"] == [1000, 2000]


async def test_a_source_is_told_its_points_are_stored_only_after_the_history_append(layer):
    history = FlakyHistory()
    history.fail_next = 1
    broadcaster = broadcaster_with(layer, history)
    told: list[list[float]] = []

    def tell() -> None:
        # What history holds when broadcast calls back: the points must already be in it.
        told.append(list(history.appended))

    broadcaster.publish("s", [Point(t=1, values={"v": 1})], retention=Retention(), on_stored=tell)
    assert told == []  # queued for the tick, not stored
    await broadcaster.flush()
    assert told == []  # the append failed: the points wait for the next tick, and so does the call
    broadcaster.publish("s", [Point(t=2, values={"v": 2})], retention=Retention(), on_stored=tell)
    await broadcaster.flush()
    assert told == [[1, 2], [1, 2]]  # once per publish, after the append that held them


async def test_points_dropped_while_history_is_down_are_never_reported_stored(layer, monkeypatch):
    monkeypatch.setattr("streams.broadcast.MAX_PENDING_POINTS", 2)
    history = FlakyHistory()
    history.fail_next = 1
    broadcaster = broadcaster_with(layer, history)
    told: list[str] = []
    broadcaster.publish(
        "s", [Point(t=1, values={"v": 1})], retention=Retention(), on_stored=lambda: told.append("a")
    )
    await broadcaster.flush()
    for t in (2, 3):
        broadcaster.publish(
            "s", [Point(t=t, values={"v": t})], retention=Retention(), on_stored=lambda: told.append("b")
        )
    await broadcaster.flush()
    # One point was dropped, and which request it came from is not kept: none is acknowledged,
    # so a source that can send again (the push inbox) keeps them all.
    assert broadcaster.waiting("s") == 0 and told == []


async def test_ids_continue_after_the_last_stored_one_when_a_process_restarts(layer):
    history = MemoryHistory()
    first = broadcaster_with(layer, history)
    first.publish("s", [Point(t=1, values={"v": 1})], retention=Retention())
    await first.flush()
    restarted = broadcaster_with(layer, history)
    restarted.publish("s", [Point(t=2, values={"v": 2})], retention=Retention())
    await restarted.flush()
    before, after = (message for _, message in layer.sent)
    assert after["prev"] == before["id"]
    assert parse_id(after["id"]) > parse_id(before["id"])


async def test_the_ticker_flushes_on_its_own(layer):
    broadcaster = broadcaster_with(layer)
    broadcaster.publish("s", [Point(t=1, values={"v": 1})], retention=Retention())
    await eventually(lambda: layer.sent, what="the ticker's flush")
    assert len(layer.sent) == 1
    await broadcaster.close()


class RefusingHistory(MemoryHistory):
    """Refuses every batch of the streams in `refused` (as Redis refuses one stream's script)."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__()
        self.refused = refused

    async def append(self, slug, entries, *, retention):
        if slug in self.refused:
            raise ConnectionError(f"{slug} refused")
        await super().append(slug, entries, retention=retention)


async def test_a_stream_whose_batch_is_refused_keeps_its_points_and_the_others_are_sent(layer):
    history = RefusingHistory({"other"})
    broadcaster = broadcaster_with(layer, history)
    broadcaster.publish("other", [Point(t=1, values={"v": 1})], retention=Retention())
    broadcaster.publish("s", [Point(t=1, values={"v": 1})], retention=Retention())
    await broadcaster.flush()
    assert [json.loads(message["text"])["t"] for _, message in layer.sent] == [[1000]]
    assert broadcaster.waiting("other") == 1
    history.refused.clear()
    broadcaster.publish("other", [Point(t=2, values={"v": 2})], retention=Retention())
    await broadcaster.flush()
    kept = await history.read("other", after=None, retention=Retention())
    assert [entry.point.t for entry in kept.entries] == [1, 2]


async def test_many_streams_in_one_tick_reach_their_groups_on_the_redis_pubsub_layer(redis_prefix):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from streams.storage.window import RedisHistory
    from tests.services import require_redis

    url = require_redis()
    layer = RedisPubSubChannelLayer(hosts=[url], prefix=f"{redis_prefix}:asgi")
    channel = await layer.new_channel()
    slugs = [f"s{n}" for n in range(20)]
    for slug in slugs:
        await layer.group_add(group_name(slug), channel)
    broadcaster = Broadcaster(history=RedisHistory(url, prefix=redis_prefix), tick_seconds=0.05, layer=layer)
    try:
        for n, slug in enumerate(slugs):
            broadcaster.publish(slug, [Point(t=n, values={"v": float(n)})], retention=Retention())
        await broadcaster.flush()
        received = [await asyncio.wait_for(layer.receive(channel), 5) for _ in slugs]
        assert sorted(message["stream"] for message in received) == sorted(slugs)
        for message in received:
            batch = json.loads(message["text"])
            assert batch["id"] == message["id"] and message["prev"] is None
            assert batch["y"] == {"v": [float(slugs.index(message["stream"]))]}
    finally:
        await broadcaster.close()
        await layer.flush()


async def test_a_stream_whose_cached_ids_were_dropped_goes_on_from_the_last_id_another_worker_stored(layer):
    # Two workers share one history; "s" moved to the other one (its host's clock ahead) while
    # this one lost the lease. Back with this one, ids go on past the other's, not below them.
    from streams.core.ids import format_id
    from streams.core.points import Entry

    history = MemoryHistory()
    ours = broadcaster_with(layer, history)
    ours.publish("s", [Point(t=1, values={"v": 1})], retention=Retention())
    await ours.flush()
    (_, first), *_ = layer.sent
    ahead = format_id((first["key"][0] + 60_000, 0))  # a minute ahead of our clock
    await history.append("s", [Entry(ahead, Point(t=2, values={"v": 2}))], retention=Retention())

    ours.drop_cached_ids("s")
    ours.publish("s", [Point(t=3, values={"v": 3})], retention=Retention())
    await ours.flush()
    _, message = layer.sent[-1]
    assert message["prev"] == ahead
    assert parse_id(message["id"]) > parse_id(ahead)


class BrokenOnceHistory(MemoryHistory):
    """Its first append_many raises (a bug, not a refused batch): the whole tick fails."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def append_many(self, batches):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug in the tick")
        return await super().append_many(batches)


async def test_the_ticker_survives_a_failed_tick_and_keeps_its_batches(layer):
    history = BrokenOnceHistory()
    broadcaster = Broadcaster(history=history, tick_seconds=0.02, layer=layer)
    broadcaster.publish(
        "s", [Point(t=1, values={"v": 1.0}), Point(t=2, values={"v": 2.0})], retention=Retention()
    )
    try:
        # No publish after the failure: the ticker itself must go on and send the kept points.
        await eventually(lambda: layer.sent, what="the failed tick's points to be sent")
        assert history.failures == 0 and broadcaster.stats.tick_errors == 1
        kept = await history.read("s", after=None, retention=Retention())
        assert [entry.point.t for entry in kept.entries] == [1, 2]
        assert json.loads(layer.sent[0][1]["text"])["y"] == {"v": [1.0, 2.0]}
        broadcaster.publish("s", [Point(t=3, values={"v": 3.0})], retention=Retention())
        await eventually(lambda: len(layer.sent) == 2, what="the next tick")
    finally:
        await broadcaster.close()


async def test_a_cancelled_flush_puts_its_points_back_for_the_next(layer):
    class SlowHistory(MemoryHistory):
        def __init__(self) -> None:
            super().__init__()
            self.entered = asyncio.Event()
            self.block = True

        async def append_many(self, batches):
            if self.block:
                self.entered.set()
                await asyncio.Event().wait()
            return await super().append_many(batches)

    history = SlowHistory()
    broadcaster = Broadcaster(history=history, tick_seconds=60, layer=layer)
    broadcaster.publish("s", [Point(t=1, values={"v": 1.0})], retention=Retention())
    flushing = asyncio.ensure_future(broadcaster.flush())
    await history.entered.wait()
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert broadcaster.waiting("s") == 1
    history.block = False
    await broadcaster.close()
    kept = await history.read("s", after=None, retention=Retention())
    assert [entry.point.t for entry in kept.entries] == [1]


class Hiding:
    """Stands for an object of channels_redis whose private names `hidden` were renamed."""

    def __init__(self, target: object, hidden: set[str]) -> None:
        self._target, self._hidden = target, hidden

    def __getattr__(self, name: str):
        if name in self._hidden:
            raise AttributeError(f"{type(self._target).__name__!r} object has no attribute {name!r}")
        return getattr(self._target, name)


PROXIED = ("new_channel", "send", "receive", "group_add", "group_discard", "group_send", "flush")


def changed_layer(url: str, *, prefix: str, hidden: set[str]):
    """A RedisPubSubChannelLayer as a later channels_redis might be: the private names in
    `hidden` gone (renamed), its public API working as ever."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    class ChangedLayer(RedisPubSubChannelLayer):
        def __getattribute__(self, name: str):
            if name in hidden:
                raise AttributeError(name)
            return super().__getattribute__(name)

        def __getattr__(self, name: str):
            if name in PROXIED:
                return partial(self._call, name)
            if name in hidden:
                raise AttributeError(name)
            return getattr(self._loop_layer(), name)

        def _get_layer(self):
            return self._loop_layer()

        def _loop_layer(self):
            loop_layer = RedisPubSubChannelLayer._get_layer(self)
            if not isinstance(loop_layer._shards[0], Hiding):
                loop_layer._shards = [Hiding(shard, hidden) for shard in loop_layer._shards]
            return Hiding(loop_layer, hidden)

        async def _call(self, name: str, *args, **kwargs):
            return await getattr(self._loop_layer(), name)(*args, **kwargs)

    return ChangedLayer(hosts=[url], prefix=prefix)


@pytest.mark.parametrize(
    "hidden", ["_get_layer", "_get_group_channel_name", "_get_shard", "_lock", "_ensure_redis", "_redis"]
)
async def test_live_points_reach_viewers_by_group_send_when_channels_redis_internals_change(
    redis_prefix, hidden, caplog
):
    from streams import broadcast
    from streams.storage.window import RedisHistory
    from tests.services import require_redis

    url = require_redis()
    layer = changed_layer(url, prefix=f"{redis_prefix}:asgi", hidden={hidden})
    channel = await layer.new_channel()
    for slug in ("a", "b"):
        await layer.group_add(group_name(slug), channel)
    broadcaster = Broadcaster(history=RedisHistory(url, prefix=redis_prefix), tick_seconds=0.05, layer=layer)
    broadcast._internals_reported.clear()
    try:
        for tick in range(2):
            broadcaster.publish("a", [Point(t=tick, values={"v": 1.0})], retention=Retention())
            broadcaster.publish("b", [Point(t=tick, values={"v": 2.0})], retention=Retention())
            await broadcaster.flush()
        received = [await asyncio.wait_for(layer.receive(channel), 10) for _ in range(4)]
        assert sorted((m["stream"], json.loads(m["text"])["y"]["v"][0]) for m in received) == [
            ("a", 1.0),
            ("a", 1.0),
            ("b", 2.0),
            ("b", 2.0),
        ]
        assert broadcaster.stats.publish_fallbacks == 4
        warnings = [r for r in caplog.records if "channels_redis's internals" in r.getMessage()]
        assert len(warnings) == 1 and hidden in warnings[0].getMessage(), "said once, naming what is missing"
    finally:
        await broadcaster.close()
        await layer.flush()


async def test_the_pipelined_publish_is_used_and_counts_no_fallback_on_channels_redis_as_pinned(redis_prefix):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from streams.broadcast import publish_pipelined
    from tests.services import require_redis

    layer = RedisPubSubChannelLayer(hosts=[require_redis()], prefix=f"{redis_prefix}:asgi")
    channel = await layer.new_channel()
    await layer.group_add(group_name("a"), channel)
    try:
        message = {"type": "stream.points", "stream": "a", "text": "{}"}
        assert await publish_pipelined(layer, [(group_name("a"), message)]) == []
        assert (await asyncio.wait_for(layer.receive(channel), 10))["stream"] == "a"
        assert await publish_pipelined(InMemoryChannelLayer(), [(group_name("a"), message)]) is None
    finally:
        await layer.flush()


async def test_cancelling_close_while_it_waits_for_the_ticker_propagates(layer):
    # The ticker takes a moment to stop; whoever is closing is cancelled meanwhile (a shutdown
    # that gives up): the cancellation reaches it instead of being swallowed.
    from tests.core.test_tasks import stubborn

    broadcaster = broadcaster_with(layer)
    ticker, cancelled, release = stubborn()
    broadcaster._ticker = ticker
    await asyncio.sleep(0)  # let the stand-in ticker start
    closing = asyncio.ensure_future(broadcaster.close())
    try:
        await cancelled.wait()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
    finally:
        release.set()


async def test_queued_statuses_are_stored_at_the_tick_newest_first_and_a_notify_is_kept(layer):
    history = MemoryHistory()
    broadcaster = broadcaster_with(layer, history)
    broadcaster.queue_status("s", {"state": "live", "points": 1})
    broadcaster.queue_status("s", {"state": "live", "points": 2}, notify=False)
    broadcaster.queue_status("other", {"state": "stalled"}, notify=False)
    assert await history.get_status("s") is None  # nothing before the tick
    await broadcaster.flush()
    assert (await history.get_status("s"))["points"] == 2
    assert (await history.get_status("other"))["state"] == "stalled"
    # The first one asked to tell viewers: they get the newest, once; "other" only stored.
    statuses = [message for _, message in layer.sent if message["type"] == "stream.status"]
    assert [(m["stream"], m["status"]["points"]) for m in statuses] == [("s", 2)]


async def test_the_ticker_stores_a_queued_status_without_points(layer):
    history = MemoryHistory()
    broadcaster = broadcaster_with(layer, history)
    broadcaster.queue_status("s", {"state": "error"}, notify=False)

    async def stored() -> bool:
        return await history.get_status("s") is not None

    await eventually(stored, what="the status stored by the ticker")
    await broadcaster.close()


async def test_a_due_tick_is_not_held_behind_every_feed_read_and_each_point_is_stored_once_in_order(
    redis_prefix,
):
    # Feeds as on a saturated worker (readable again at once, one read each loop iteration),
    # on real Redis, where each of a flush's commands takes several loop iterations: while a
    # flush is under way each feed reads at most twice (the read it was in as the tick came,
    # and one while Redis runs the history script), where without the tick gate it read once
    # per loop iteration of the flush (hundreds); and no point is lost, doubled or reordered.
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from streams.storage.window import RedisHistory
    from tests.services import require_redis

    url = require_redis()
    layer = RedisPubSubChannelLayer(hosts=[url], prefix=f"{redis_prefix}:asgi")
    history = RedisHistory(url, prefix=redis_prefix)
    broadcaster = Broadcaster(history=history, tick_seconds=0.05, layer=layer)
    keep_all = Retention(points=None)
    slugs = [f"f{n}" for n in range(40)]
    channel = await layer.new_channel()
    await layer.group_add(group_name(slugs[0]), channel)
    sent = dict.fromkeys(slugs, 0)
    reads_in_flush: dict[str, int] = {}
    most_reads_in_a_flush, flushes = [], 0
    flush = broadcaster.flush

    async def counted_flush() -> None:
        nonlocal flushes
        reads_in_flush.clear()
        reads_in_flush["flushing"] = 1
        try:
            await flush()
        finally:
            del reads_in_flush["flushing"]
            most_reads_in_a_flush.append(max(reads_in_flush.values(), default=0))
            flushes += 1

    broadcaster.flush = counted_flush

    async def feed(slug: str) -> None:
        while True:
            if "flushing" in reads_in_flush:
                reads_in_flush[slug] = reads_in_flush.get(slug, 0) + 1
            n = sent[slug]
            sent[slug] += 1
            broadcaster.publish(slug, [Point(t=n, values={"v": float(n)})], retention=keep_all)
            await broadcaster.gate.wait_turn()
            await asyncio.sleep(0)

    feeds = [asyncio.ensure_future(feed(slug)) for slug in slugs]
    try:
        await eventually(lambda: flushes >= 5, what="five ticks")
    finally:
        for task in feeds:
            task.cancel()
        await asyncio.gather(*feeds, return_exceptions=True)
        await broadcaster.close()
    try:
        assert broadcaster.gate.waits > 0
        assert max(most_reads_in_a_flush) <= 2, most_reads_in_a_flush
        for slug in slugs:
            kept = await history.read(slug, after=None, retention=keep_all)
            assert [entry.point.t for entry in kept.entries] == list(range(sent[slug])), slug
        # One group's live batches: every point once, in order, each naming the one before.
        values, prev = [], None
        while len(values) < sent[slugs[0]]:
            message = await asyncio.wait_for(layer.receive(channel), 10)
            batch = json.loads(message["text"])
            assert batch["prev"] == prev
            prev = batch["id"]
            values += batch["y"]["v"]
        assert values == [float(n) for n in range(sent[slugs[0]])]
    finally:
        await layer.flush()


def count_commands(history) -> list[str]:
    """The names of the commands the history's Redis clients (the loop's and the appender
    thread's) send from now on."""
    client, blocking = history._redis(), history._appender_redis()
    sent: list[str] = []
    execute, execute_blocking = client.execute_command, blocking.execute_command

    async def counted(*args, **options):
        sent.append(str(args[0]))
        return await execute(*args, **options)

    def counted_blocking(*args, **options):
        sent.append(str(args[0]))
        return execute_blocking(*args, **options)

    client.execute_command = counted
    blocking.execute_command = counted_blocking
    return sent


async def test_a_tick_of_many_streams_and_their_statuses_is_one_command_to_history(layer, redis_prefix):
    from streams.storage.window import RedisHistory
    from tests.services import require_redis

    history = RedisHistory(require_redis(), prefix=redis_prefix)
    broadcaster = broadcaster_with(layer, history)
    slugs = [f"s{n}" for n in range(30)]
    for n in range(2):
        for slug in slugs:
            broadcaster.publish(slug, [Point(t=n, values={"v": float(n)})], retention=Retention())
            broadcaster.queue_status(slug, {"state": "live", "points": n})
        if n == 0:
            await broadcaster.flush()  # the first reads where each stream's ids go on from
            sent = count_commands(history)
    await broadcaster.flush()
    await broadcaster.close()
    assert sent == ["EVALSHA"], "statuses and every stream's points in one command"
    for slug in slugs:
        assert (await history.get_status(slug))["points"] == 1
        kept = await history.read(slug, after=None, retention=Retention())
        assert [entry.point.t for entry in kept.entries] == [0, 1]


async def test_a_tick_whose_history_command_fails_stores_its_points_once_at_the_next(layer, redis_prefix):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from streams.storage.window import RedisHistory
    from tests.services import require_redis

    history = RedisHistory(require_redis(), prefix=redis_prefix)
    broadcaster = broadcaster_with(layer, history)
    broadcaster.publish("s", [Point(t=0, values={"v": 0.0})], retention=Retention())
    await broadcaster.flush()
    client = history._appender_redis()
    execute = client.execute_command

    def lost_once(*args, **options):
        client.execute_command = execute
        raise RedisConnectionError("Redis went away")

    client.execute_command = lost_once
    broadcaster.publish("s", [Point(t=1, values={"v": 1.0})], retention=Retention())
    broadcaster.queue_status("s", {"state": "live"})
    await broadcaster.flush()
    assert broadcaster.waiting("s") == 1, "kept for the next tick"
    broadcaster.publish("s", [Point(t=2, values={"v": 2.0})], retention=Retention())
    await broadcaster.flush()
    await broadcaster.close()
    kept = await history.read("s", after=None, retention=Retention())
    assert [entry.point.t for entry in kept.entries] == [0, 1, 2]
    points = [message for _, message in layer.sent if message["type"] == "stream.points"]
    assert [json.loads(m["text"])["y"]["v"] for m in points] == [[0.0], [1.0, 2.0]]
    assert points[1]["prev"] == points[0]["id"]
