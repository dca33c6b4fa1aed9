"""The ingest supervisor follows the stream table and keeps feeds running."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from channels.db import database_sync_to_async

from streams.broadcast import Broadcaster, get_broadcaster
from streams.core.ids import IdClock, format_id
from streams.core.points import Entry, Point
from streams.core.retention import Retention
from streams.ingest import supervisor as supervisor_module
from streams.ingest.feeds.base import Feed
from streams.ingest.leases import Leases
from streams.ingest.supervisor import StreamSpec, Supervisor, backoff_delay
from streams.models import Stream
from streams.storage.store import Persister, read_after, save_batches
from streams.storage.window import get_history
from tests.json_api import serve_json_api
from tests.waits import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    for attempt in range(1, 12):
        assert 0 <= backoff_delay(attempt, first=0.5, cap=30) <= min(30, 0.5 * 2 ** (attempt - 1))
    assert max(backoff_delay(20, first=0.5, cap=30) for _ in range(200)) > 10


async def test_supervisor_starts_feeds_for_enabled_streams_and_stops_disabled_ones(memory_layer):
    stream = await database_sync_to_async(Stream.objects.create)(
        slug="sim", title="Sim", feed_kind="simulate", feed_settings={"rate": 50}
    )
    supervisor = Supervisor()
    await supervisor.sync()
    assert set(supervisor.tasks) == {"sim"}

    async def has_points() -> bool:
        backfill = await get_history().read("sim", after=None, retention=Retention())
        return len(backfill.entries) >= 5

    await eventually(has_points, what="points in history")
    assert (await get_history().get_status("sim"))["state"] == "live"

    stream.enabled = False
    await database_sync_to_async(stream.save)()
    await supervisor.sync()
    assert supervisor.tasks == {}
    await supervisor.stop_all()


async def test_edited_settings_restart_the_feed(memory_layer):
    stream = await database_sync_to_async(Stream.objects.create)(
        slug="sim", title="Sim", feed_kind="simulate", feed_settings={"rate": 5}
    )
    supervisor = Supervisor()
    await supervisor.sync()
    first_task = supervisor.tasks["sim"].task
    stream.feed_settings = {"rate": 50}
    await database_sync_to_async(stream.save)()
    await supervisor.sync()
    await eventually(first_task.done, what="the old feed task to stop")
    assert supervisor.tasks["sim"].task is not first_task
    await supervisor.stop_all()


async def test_a_failing_feed_reports_error_and_does_not_touch_other_streams(memory_layer):
    await database_sync_to_async(Stream.objects.create)(slug="good", title="Good", feed_settings={"rate": 50})
    # Settings saved behind the model's validation (a raw update) so the feed fails at start.
    bad = await database_sync_to_async(Stream.objects.create)(slug="bad", title="Bad")
    await database_sync_to_async(Stream.objects.filter(pk=bad.pk).update)(feed_settings={"rate": 0})
    supervisor = Supervisor()
    await supervisor.sync()

    async def both_reported() -> bool:
        bad_status = await get_history().get_status("bad")
        good = await get_history().read("good", after=None, retention=Retention())
        return bool(bad_status and bad_status["state"] == "error" and good.entries)

    await eventually(both_reported, what="both streams reported")
    assert "rate" in (await get_history().get_status("bad"))["error"]
    await supervisor.stop_all()
    await get_broadcaster().close()


async def test_two_workers_split_the_streams_between_them(redis_layer):
    for slug in ("a", "b", "c", "d"):
        await database_sync_to_async(Stream.objects.create)(slug=slug, title=slug, feed_settings={"rate": 1})
    first, second = Supervisor(), Supervisor()
    await first.sync()
    await second.sync()
    # The first worker to scan claims every stream; the second runs none of them twice.
    assert set(first.tasks) == {"a", "b", "c", "d"}
    assert second.tasks == {}
    # When the first stops it releases its leases and the second takes everything over.
    await first.stop_all()
    await second.sync()
    assert set(second.tasks) == {"a", "b", "c", "d"}
    await second.stop_all()


async def test_a_worker_that_loses_a_lease_stops_the_feed_and_drops_its_cached_ids(redis_layer):
    await database_sync_to_async(Stream.objects.create)(slug="a", title="a", feed_settings={"rate": 1})
    worker = Supervisor()
    await worker.sync()
    assert set(worker.tasks) == {"a"}
    await eventually(lambda: worker.broadcaster, what="the feed task to start and take the broadcaster")
    dropped: list[str] = []
    worker.broadcaster.drop_cached_ids = dropped.append
    # The lease expired (a long pause) and another worker holds it now.
    await worker.leases._redis().set(worker.leases.key("a"), "another-worker", px=5_000)
    await worker.sync()
    assert worker.tasks == {}
    assert dropped == ["a"]
    await worker.stop_all()


def test_rates_are_measured_over_a_whole_period_of_the_supervisors_clock():
    now = [100.0]
    worker = Supervisor(leases=Leases(url="", prefix="unused"), clock=lambda: now[0])
    assert worker.measure({"a"}) == {}
    worker.published["a"] = 40
    now[0] += supervisor_module.RATE_SECONDS / 2
    assert worker.measure({"a"}) == {}, "half a period is not measured yet"
    now[0] += supervisor_module.RATE_SECONDS / 2
    assert worker.measure({"a"}) == {"a": pytest.approx(40 / supervisor_module.RATE_SECONDS)}
    assert worker.measure(set()) == {}, "a stream no longer held weighs nothing"


def test_a_stream_taken_over_is_measured_from_its_first_points_not_from_the_handover():
    # Taken over at 100; its feed starts two seconds later (a handover's pause on a busy
    # machine) and gives 100 points/s. Measured from the handover it would be 60 points/s, and
    # the plan would move another stream to make up for a load that is not there.
    now = [100.0]
    worker = Supervisor(leases=Leases(url="", prefix="unused"), clock=lambda: now[0])
    measured = []
    for _ in range(12):
        worker.published["a"] = max(0, round((now[0] - 102.0) * 100))
        measured.append(worker.measure({"a"}).get("a"))
        now[0] += 1.0
    rates = [rate for rate in measured if rate is not None]
    assert rates, "measured within a period of its first points"
    assert rates == [pytest.approx(100.0)] * len(rates)


def test_a_feed_silent_since_it_was_taken_is_measured_at_nothing():
    now = [100.0]
    worker = Supervisor(leases=Leases(url="", prefix="unused"), clock=lambda: now[0])
    for _ in range(2 * round(supervisor_module.RATE_SECONDS) + 1):
        rates = worker.measure({"quiet"})
        now[0] += 1.0
    assert rates == {"quiet": 0.0}


async def test_a_stream_left_free_for_a_lease_period_is_taken_whatever_the_plan_says(redis_layer):
    for slug in ("a", "b"):
        await database_sync_to_async(Stream.objects.create)(slug=slug, title=slug, feed_settings={"rate": 1})
    now = [100.0]
    worker = Supervisor(clock=lambda: now[0])
    idle = Leases()  # a live worker that never claims the share the plan gives it
    await idle.survey([], rates={})
    try:
        await worker.sync()
        assert len(worker.tasks) == 1, "the plan gives the other stream to the idle worker"
        lease_seconds = worker.leases.lease_ms / 1000
        now[0] += lease_seconds * 0.9
        await worker.sync()
        assert len(worker.tasks) == 1
        now[0] += lease_seconds * 0.1
        await worker.sync()
        assert set(worker.tasks) == {"a", "b"}
    finally:
        await worker.stop_all()


@pytest.fixture
def api():
    """A real local JSON API the test steers (tests/json_api.py)."""
    with serve_json_api() as served:
        yield served


async def status_of(slug: str) -> dict:
    return await get_history().get_status(slug) or {}


async def test_health_counts_points_and_bad_payloads_and_goes_stalled_when_data_stops(memory_layer, api):
    state, url = api
    state.body, state.etag = {"v": 1}, None
    await database_sync_to_async(Stream.objects.create)(
        slug="polled",
        title="Polled",
        feed_kind="poll",
        feed_settings={"url": url, "interval": 0.1, "stall_after": 1, "extract": {"value": "v"}},
    )
    supervisor = Supervisor()
    await supervisor.sync()

    async def counted() -> bool:
        status = await status_of("polled")
        return status.get("state") == "live" and status.get("points", 0) >= 1

    await eventually(counted, what="the points counted")
    state.body = b"not json"

    async def bad_counted() -> bool:
        return (await status_of("polled")).get("bad_payloads", 0) >= 2

    await eventually(bad_counted, what="the bad payloads counted")

    async def stalled() -> bool:
        return (await status_of("polled")).get("state") == "stalled"

    await eventually(stalled, what="the stream reported stalled")
    status = await status_of("polled")
    assert status["last_point_at"] is not None and status["stall_after"] == 1

    state.body = {"v": 2}

    async def live_again() -> bool:
        return (await status_of("polled")).get("state") == "live"

    await eventually(live_again, what="the stream live again")
    await supervisor.stop_all()


async def test_a_feed_that_cannot_connect_reports_the_error_and_counts_reconnects(memory_layer, api):
    state, url = api
    state.status = 503
    await database_sync_to_async(Stream.objects.create)(
        slug="down",
        title="Down",
        feed_kind="poll",
        feed_settings={"url": url, "interval": 0.1, "extract": {"value": "v"}},
    )
    supervisor = Supervisor()
    await supervisor.sync()

    async def errored_twice() -> bool:
        status = await status_of("down")
        return status.get("state") == "error" and status.get("reconnects", 0) >= 2

    await eventually(errored_twice, what="two errors reported")
    status = await status_of("down")
    assert "HTTP 503" in status["error"] and status["retry_at"] > status["error_at"]

    state.status = 200
    state.body = {"v": 5}

    async def recovered() -> bool:
        status = await status_of("down")
        return status.get("state") == "live" and status.get("points", 0) >= 1

    # Backoff after two failures waits at most 2 s, then grows: recovery is well within 40 s.
    await eventually(recovered, what="the feed recovered", within=40)
    status = await status_of("down")
    assert status["bad_payloads"] == 0 and "HTTP 503" in status["error"]  # the last error stays on record
    await supervisor.stop_all()


async def test_a_restarted_poll_feed_does_not_store_the_window_it_already_stored(memory_layer, api):
    state, url = api
    state.body = [{"t": 1_700_000_000 + i, "v": i} for i in range(5)]
    await database_sync_to_async(Stream.objects.create)(
        slug="window",
        title="Window",
        feed_kind="poll",
        feed_settings={"url": url, "interval": 0.1, "extract": {"time": "t", "value": "v"}},
    )

    async def stored() -> list[float]:
        backfill = await get_history().read("window", after=None, retention=Retention(points=100))
        return [entry.point.t for entry in backfill.entries]

    async def has_five() -> bool:
        return len(await stored()) == 5

    first = Supervisor()
    await first.sync()
    await eventually(has_five, what="five points")
    await first.stop_all()
    # A new worker (a restart) polls the same window plus one new point.
    state.body = [{"t": 1_700_000_000 + i, "v": i} for i in range(6)]
    second = Supervisor()
    await second.sync()

    async def has_six() -> bool:
        return len(await stored()) >= 6

    await eventually(has_six, what="six points")
    # Two more polls of the same window: the answer to the first is handled (published) before
    # the second is asked; the flush then puts whatever it published in history.
    polls = len(state.requests)
    await eventually(lambda: len(state.requests) >= polls + 2, what="two more polls")
    await get_broadcaster().flush()
    await second.stop_all()
    assert await stored() == [1_700_000_000.0 + i for i in range(6)]


async def test_points_are_stored_and_a_restarted_serve_refills_its_window_from_the_database(memory_layer):
    from streams.core import runtime
    from streams.models import StoredBatch

    await database_sync_to_async(Stream.objects.create)(
        slug="kept", title="Kept", feed_settings={"rate": 50}, window_points=500
    )
    first = Supervisor()
    await first.sync()

    async def stored_some() -> bool:
        return await StoredBatch.objects.filter(stream__slug="kept").acount() >= 3

    await eventually(stored_some, what="three batches stored")
    await first.stop_all()  # flushes what waits for the database
    before = await get_history().read("kept", after=None, retention=Retention(points=500))
    stored = await database_sync_to_async(lambda: sum(StoredBatch.objects.values_list("count", flat=True)))()
    assert stored == len(before.entries)

    runtime.reset()  # what a restart of `serve` does to the in-process window
    second = Supervisor()
    await second.sync()

    async def refilled_and_moving() -> bool:
        backfill = await get_history().read("kept", after=None, retention=Retention(points=500))
        return len(backfill.entries) > len(before.entries)

    await eventually(refilled_and_moving, what="the window refilled and moving")
    await second.stop_all()
    after = await get_history().read("kept", after=None, retention=Retention(points=500))
    ids = [entry.id for entry in after.entries]
    assert ids[: len(before.entries)] == [entry.id for entry in before.entries]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))  # ids carry on in order


async def test_a_stream_that_does_not_store_points_writes_nothing(memory_layer):
    from streams.models import StoredBatch

    await database_sync_to_async(Stream.objects.create)(
        slug="fleeting", title="Fleeting", feed_settings={"rate": 50}, store_points=False
    )
    supervisor = Supervisor()
    await supervisor.sync()

    async def live() -> bool:
        backfill = await get_history().read("fleeting", after=None, retention=Retention())
        return len(backfill.entries) >= 5

    await eventually(live, what="the stream live")
    await supervisor.stop_all()
    assert await StoredBatch.objects.acount() == 0


async def test_a_stop_stores_each_pushed_point_exactly_once_and_empties_the_inbox(layer, settings):
    """SIGTERM's path (stop_all) with requests at every step: stored, handed to broadcast but
    waiting for the tick, and never taken by the feed."""
    from streams.core import runtime
    from streams.core.points import Point
    from streams.ingest.inbox import RedisInbox, get_inbox
    from streams.models import StoredBatch
    from streams.storage.store import read_after

    settings.LIVECHARTS_TICK_MS = 86_400_000  # no tick of its own: what is handed over waits for the stop
    runtime.reset()
    await database_sync_to_async(Stream.objects.create)(slug="pushed", title="Pushed", feed_kind="push")
    inbox = get_inbox()
    supervisor = Supervisor()
    await supervisor.sync()
    broadcaster = get_broadcaster()
    await inbox.put("pushed", [Point(0.0, {"value": 0.0})])

    def waiting(count: int):
        async def check() -> bool:
            return broadcaster.waiting("pushed") == count

        return check

    await eventually(waiting(1), what="one batch waiting for a tick")
    await broadcaster.flush()  # stored in history, acknowledged soon after
    for n in range(1, 4):  # handed over, waiting for the next tick
        await inbox.put("pushed", [Point(float(n), {"value": float(n)})])
    await eventually(waiting(3), what="three batches waiting for a tick")
    supervisor.tasks["pushed"].task.cancel()  # the stop's first step, before the feed takes more
    for n in range(4, 6):  # never taken by the feed: the stop's drain takes them
        await inbox.put("pushed", [Point(float(n), {"value": float(n)})])
    await inbox.put("pushed", [Point(1.0, {"value": 99.0})])  # late: the drain keeps the time rules
    await supervisor.stop_all()

    window = await get_history().read("pushed", after=None, retention=Retention())
    assert [entry.point.values["value"] for entry in window.entries] == [float(n) for n in range(6)]
    stored = await database_sync_to_async(read_after)("pushed", after=None, limit=100)
    assert [entry.point.values["value"] for entry in stored] == [float(n) for n in range(6)]
    assert await StoredBatch.objects.acount() >= 1
    if layer == "redis":
        # Acknowledged, all of them: the next owner of the stream finds nothing to publish again.
        next_owner = RedisInbox(settings.REDIS_URL, prefix=settings.LIVECHARTS_REDIS_PREFIX)
        assert await next_owner.take("pushed", wait=0.01) is None


async def test_points_far_ahead_late_or_repeated_are_kept_out_of_history_and_counted(layer, settings):
    import time

    from streams.core.points import Point
    from streams.ingest.inbox import RedisInbox, get_inbox

    await database_sync_to_async(Stream.objects.create)(slug="pushed", title="Pushed", feed_kind="push")
    supervisor = Supervisor()
    await supervisor.sync()
    now = time.time()
    inbox = get_inbox()
    try:
        await inbox.put("pushed", [Point(now, {"value": 1.0})])
        await eventually(lambda: _values_are("pushed", [1.0]), what="the first pushed point")
        await inbox.put(
            "pushed",
            [
                Point(now + 3600, {"value": 2.0}),  # an hour ahead: a local time sent as UTC
                Point(now - 60, {"value": 3.0}),  # late
                Point(now, {"value": 1.0}),  # the same point again: dropped, not counted
                Point(now + 1, {"value": 4.0}),
            ],
        )
        await inbox.put("pushed", [Point(now + 7200, {"value": 5.0})])  # nothing left to publish

        async def counted() -> bool:
            return (await status_of("pushed")).get("bad_payloads") == 3

        await eventually(counted, what="the points counted")
        assert await _values_are("pushed", [1.0, 4.0])
    finally:
        await supervisor.stop_all()
    if layer == "redis":
        # Every request acknowledged, the one whose points were all dropped too.
        next_owner = RedisInbox(settings.REDIS_URL, prefix=settings.LIVECHARTS_REDIS_PREFIX)
        assert await next_owner.take("pushed", wait=0.01) is None


async def _values_are(slug: str, values: list[float]) -> bool:
    window = await get_history().read(slug, after=None, retention=Retention())
    return [entry.point.values["value"] for entry in window.entries] == values


def spec_of(slug: str, settings_json: str) -> StreamSpec:
    return StreamSpec(slug=slug, kind="simulate", settings_json=settings_json, retention=Retention())


async def test_a_changed_feeds_old_task_has_finished_before_the_new_one_starts(monkeypatch):
    events: list[str] = []
    specs = {"s": spec_of("s", "{}")}

    async def load() -> dict[str, StreamSpec]:
        return dict(specs)

    async def run_feed(self, spec: StreamSpec) -> None:
        events.append(f"start {spec.settings_json}")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # Still publishing for a moment after the cancellation (a batch in hand, a report
            # in flight): a few turns of the loop.
            for _ in range(5):
                await asyncio.sleep(0)
            events.append(f"end {spec.settings_json}")
            raise

    monkeypatch.setattr(supervisor_module, "load_specs", lambda: specs)
    monkeypatch.setattr(Supervisor, "run_feed", run_feed)
    supervisor = Supervisor(leases=Leases(url=""))
    await supervisor.sync()
    await eventually(lambda: events == ["start {}"], what="the first feed started")
    specs["s"] = spec_of("s", '{"rate": 2}')
    await supervisor.sync()
    await eventually(lambda: len(events) == 3, what="the feed restarted with its new settings")
    assert events == ["start {}", "end {}", 'start {"rate": 2}']
    await supervisor.stop_all()
    assert events[-1] == 'end {"rate": 2}'


async def test_a_stream_whose_old_task_will_not_stop_is_not_started_twice(monkeypatch, caplog):
    specs = {"s": spec_of("s", "{}")}
    release = asyncio.Event()
    running: list[str] = []

    async def run_feed(self, spec: StreamSpec) -> None:
        running.append(spec.settings_json)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # a task that takes long to stop
            raise
        finally:
            running.remove(spec.settings_json)

    monkeypatch.setattr(supervisor_module, "load_specs", lambda: specs)
    monkeypatch.setattr(supervisor_module, "STOP_TIMEOUT", 0.05)
    monkeypatch.setattr(Supervisor, "run_feed", run_feed)
    supervisor = Supervisor(leases=Leases(url=""))
    try:
        await supervisor.sync()
        await eventually(lambda: running == ["{}"], what="the first feed running")
        specs["s"] = spec_of("s", '{"rate": 2}')
        await supervisor.sync()
        await supervisor.sync()
        assert running == ["{}"] and "s" not in supervisor.tasks and "s" in supervisor.stopping
        assert "old feed task has not stopped" in caplog.text
        release.set()
        await eventually(lambda: not running, what="no feed running")
        await supervisor.sync()
        await eventually(lambda: running == ['{"rate": 2}'], what="the new feed running")
        assert supervisor.stopping == {}
    finally:
        release.set()
        await supervisor.stop_all()


async def test_cancelling_a_running_supervisor_stops_its_feeds_and_propagates(monkeypatch):
    # The pruner takes a moment to stop; the caller is cancelled meanwhile (a shutdown that
    # gives up waiting): that cancellation must reach it, after the feeds are stopped.
    pruner_started, pruner_cancelled, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def prune_forever(self) -> None:
        pruner_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pruner_cancelled.set()
            await release.wait()
            raise

    stopped = asyncio.Event()

    async def stop_all(self) -> None:
        stopped.set()

    monkeypatch.setattr(supervisor_module, "load_specs", dict)
    monkeypatch.setattr(Supervisor, "prune_forever", prune_forever)
    monkeypatch.setattr(Supervisor, "stop_all", stop_all)
    stop = asyncio.Event()
    running = asyncio.ensure_future(Supervisor(leases=Leases(url="")).run(stop))
    try:
        await pruner_started.wait()
        stop.set()
        await pruner_cancelled.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert stopped.is_set()
    finally:
        release.set()


async def test_a_stop_lost_in_a_feeds_start_up_still_stops_it(memory_layer, monkeypatch, caplog):
    """CPython gh-86296: asyncio.wait_for (redis-py runs every command under it) can swallow a
    cancellation landing as the command finishes; the start-up step (here: the look-ups before
    the feed reads) then returns normally. The task still counts the request, so the feed must
    stop at its next step, not run on past stop_all's wait."""
    await database_sync_to_async(Stream.objects.create)(
        slug="sim", title="Sim", feed_kind="simulate", feed_settings={"rate": 5}
    )
    entered = asyncio.Event()

    async def start_up_that_swallows_a_stop(self, spec, broadcaster) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return None  # as wait_for does when its command completed in the same turn

    monkeypatch.setattr(Supervisor, "start_up", start_up_that_swallows_a_stop)
    supervisor = Supervisor()
    await supervisor.sync()
    task = supervisor.tasks["sim"].task
    await asyncio.wait_for(entered.wait(), 30)
    with caplog.at_level("WARNING", logger="streams.ingest.supervisor"):
        await supervisor.stop_all()
    assert task.cancelled()
    assert "did not stop" not in caplog.text


async def test_a_feed_hands_over_no_further_batch_while_a_tick_is_due(memory_layer, monkeypatch):
    # The ticker goes first (streams/core/tick_gate.py): a feed that handed over a batch when
    # a tick was due waits until that tick's flush is done, then goes on.
    import time

    broadcaster = get_broadcaster()
    monkeypatch.setattr(broadcaster, "_ensure_ticker", lambda: None)  # the test plays the ticker
    broadcaster.gate.due(time.monotonic() - 1)
    await database_sync_to_async(Stream.objects.create)(
        slug="sim", title="Sim", feed_kind="simulate", feed_settings={"rate": 50}
    )
    supervisor = Supervisor(broadcaster=broadcaster)
    await supervisor.sync()
    try:
        await eventually(lambda: broadcaster.gate.waits >= 1, what="the feed waiting for the tick")
        held = supervisor.published.get("sim", 0)
        assert held > 0
        for _ in range(50):
            await asyncio.sleep(0)
        assert supervisor.published.get("sim", 0) == held, "no batch handed over while held"
        broadcaster.gate.open()
        await eventually(lambda: supervisor.published.get("sim", 0) > held, what="the feed going on")
    finally:
        broadcaster.gate.open()
        await supervisor.stop_all()


# Start-up beside stored streams: a worker (re)started with full windows and database -------


class HeldFeed(Feed):
    """Connects, then hands over the batches the test puts in its stream's queue."""

    kind = "held"
    queues: ClassVar[dict[str, asyncio.Queue]] = {}
    reading: ClassVar[set[str]] = set()

    @classmethod
    def clean_settings(cls, raw):
        return dict(raw)

    async def batches(self):
        queue = self.queues.setdefault(self.slug, asyncio.Queue())
        yield []
        self.reading.add(self.slug)
        try:
            while True:
                yield await queue.get()
        finally:
            self.reading.discard(self.slug)


@pytest.fixture
def held_feeds(monkeypatch):
    HeldFeed.queues, HeldFeed.reading = {}, set()
    monkeypatch.setattr(supervisor_module, "build_feed", lambda kind, settings: HeldFeed(settings))
    return HeldFeed


def points_from(start: int, count: int) -> list[Point]:
    return [Point(t=1_700_000_000.0 + n, values={"v": float(n)}) for n in range(start, start + count)]


def entries_of(clock: IdClock, points: list[Point]) -> list[Entry]:
    return [Entry(id=format_id(clock.next()), point=point) for point in points]


async def stored_times(slug: str) -> list[float]:
    entries = await database_sync_to_async(read_after)(slug, after=None, limit=1_000_000)
    return [entry.point.t for entry in entries]


async def make_stored_streams(slugs: list[str], *, stored: int, in_window: int) -> None:
    """Streams whose windows hold `in_window` points, the first `stored` of them in the database
    (all of them: as a clean stop leaves it; fewer: as a worker killed with kill -9 does)."""
    for slug in slugs:
        await database_sync_to_async(Stream.objects.create)(
            slug=slug, title=slug, feed_kind="simulate", window_points=1000
        )
        entries = entries_of(IdClock(), points_from(0, in_window))
        await database_sync_to_async(save_batches)([(slug, entries[:stored])])
        await get_history().append(slug, entries, retention=Retention(points=1000))


async def test_a_fresh_start_beside_stored_windows_makes_no_flush_and_shares_its_look_ups(
    redis_layer, held_feeds
):
    slugs = [f"busy-{n}" for n in range(20)]
    await make_stored_streams(slugs, stored=50, in_window=50)
    # No tick and no timed write of the Persister in the test's time: any flush is start-up's.
    broadcaster = Broadcaster(
        history=get_history(), tick_seconds=3600, persister=Persister(flush_seconds=3600)
    )
    flushes, writes, reads = [], [], []
    flush, write, read = broadcaster.flush, broadcaster.persister._write, broadcaster.history.read

    async def counted_flush():
        flushes.append(1)
        await flush()

    async def counted_write():
        writes.append(1)
        await write()

    async def counted_read(*args, **kwargs):
        reads.append(1)
        return await read(*args, **kwargs)

    broadcaster.flush, broadcaster.persister._write = counted_flush, counted_write
    broadcaster.history.read = counted_read
    supervisor = Supervisor(broadcaster=broadcaster)
    try:
        await supervisor.sync()
        await eventually(lambda: held_feeds.reading == set(slugs), what="every feed reading")
        # Each stream's start was a look-up in history and one in the database, made together.
        assert (flushes, writes, reads) == ([], [], [])
        assert supervisor.newest_in_window.calls <= 2 and supervisor.newest_stored.calls <= 2
        assert supervisor.tail_writes.calls == 0
    finally:
        broadcaster.flush, broadcaster.history.read = flush, read
        await supervisor.stop_all()
    for slug in slugs:
        assert await stored_times(slug) == [p.t for p in points_from(0, 50)]


async def test_a_killed_workers_window_tail_is_stored_once_by_the_next_worker(redis_layer, held_feeds):
    # The dead worker appended 80 points to each window and wrote only the first 50.
    await make_stored_streams(["left-a", "left-b"], stored=50, in_window=80)
    supervisor = Supervisor()
    try:
        await supervisor.sync()
        await eventually(lambda: held_feeds.reading == {"left-a", "left-b"}, what="both feeds reading")
        assert supervisor.tail_writes.calls <= 2
    finally:
        await supervisor.stop_all()
    for slug in ("left-a", "left-b"):
        assert await stored_times(slug) == [p.t for p in points_from(0, 80)]


async def test_a_feed_restarted_in_the_same_process_stores_every_point_once(redis_layer, held_feeds):
    # A window of 5 points and batches of 20: what the Persister holds is mostly out of the
    # window already. A restart that stored the window's tail before the Persister's queue would
    # have the fence drop the older points (lost); one that stored it after newer batches would
    # drop the tail.
    stream = await database_sync_to_async(Stream.objects.create)(
        slug="edited", title="Edited", feed_kind="simulate", window_points=5
    )
    broadcaster = Broadcaster(
        history=get_history(), tick_seconds=0.05, persister=Persister(flush_seconds=3600)
    )
    supervisor = Supervisor(broadcaster=broadcaster)

    async def reached(t: float) -> bool:
        entry = await get_history().last_entry("edited")
        return entry is not None and entry.point.t == t

    try:
        await supervisor.sync()
        await eventually(lambda: "edited" in held_feeds.reading, what="the feed reading")
        for start in (0, 20, 40):
            held_feeds.queues["edited"].put_nowait(points_from(start, 20))
        await eventually(lambda: reached(points_from(59, 1)[0].t), what="60 points in history")
        # Handed to broadcast, maybe not in history yet, when the edit restarts the feed.
        held_feeds.queues["edited"].put_nowait(points_from(60, 20))
        await eventually(lambda: supervisor.published.get("edited") == 80, what="80 points handed over")
        old = supervisor.tasks["edited"].task
        stream.feed_settings = {"rate": 2}
        await database_sync_to_async(stream.save)()
        await supervisor.sync()
        await eventually(
            lambda: old.done() and "edited" in held_feeds.reading, what="the restarted feed reading"
        )
        held_feeds.queues["edited"].put_nowait(points_from(80, 20))
        await eventually(lambda: reached(points_from(99, 1)[0].t), what="100 points in history")
    finally:
        await supervisor.stop_all()
    assert await stored_times("edited") == [p.t for p in points_from(0, 100)]
