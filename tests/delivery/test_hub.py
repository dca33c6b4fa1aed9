"""The per-process fan-out hub: one layer subscription per stream, frames shared, tick widened."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from streams.delivery import hub as hub_module
from streams.delivery.consumers import MAX_PENDING_BATCHES, StreamConsumer, Subscription
from streams.delivery.hub import Frame, Hub
from tests.clocks import ManualClock, ManualCpu
from tests.waits import eventually


class FakeSocket:
    """Takes every batch; records the frames the hub hands it."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.frames: list[Frame] = []
        self.statuses: list[dict[str, Any]] = []
        self.hold_back = False

    def offer(self, message: dict[str, Any]) -> bool:
        self.pending.append(message["text"])
        return True

    def take_texts(self) -> list[str] | None:
        if self.hold_back:
            return None
        texts, self.pending = self.pending, []
        return texts

    async def send_frame(self, frame: Frame) -> None:
        self.frames.append(frame)

    async def send_status(self, message: dict[str, Any]) -> None:
        self.statuses.append(message)


_ids = itertools.count(1)


def batch(slug: str, text: str | None = None) -> dict[str, Any]:
    n = next(_ids)
    return {
        "type": "stream.points",
        "stream": slug,
        "id": f"1-{n}",
        "key": [1, n],
        "prev": None,
        "text": text or f'{{"stream":"{slug}","n":{n}}}',
    }


async def received(hub: Hub, batches: int) -> None:
    """Wait until the hub has taken `batches` batches from the layer in all."""
    await eventually(
        lambda: hub.stats.batches_in >= batches, what=f"{batches} batches in", seen=lambda: hub.stats
    )


async def run_tick(hub: Hub, clock: ManualClock) -> None:
    """Move the manual clock to the hub's next tick and let that tick run to its end."""
    clock.next()
    await finish_tick(hub)


async def finish_tick(hub: Hub) -> None:
    if hub._flushing is not None:
        await hub._flushing


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer(capacity=10_000)


async def test_one_group_membership_per_stream_however_many_viewers(layer):
    hub = Hub(layer=layer, tick_seconds=0.02)
    viewers = [FakeSocket() for _ in range(5)]
    for viewer in viewers:
        await hub.join("plant", viewer)
    assert len(layer.groups["stream.plant"]) == 1
    for viewer in viewers[:4]:
        await hub.leave("plant", viewer)
    assert len(layer.groups["stream.plant"]) == 1  # one viewer still watches
    await hub.leave("plant", viewers[4])
    assert not layer.groups.get("stream.plant")


async def test_viewers_with_the_same_batches_share_one_encoded_frame(layer):
    clock = ManualClock()
    hub = Hub(layer=layer, tick_seconds=0.02, clock=clock)
    viewers = [FakeSocket() for _ in range(50)]
    for viewer in viewers:
        await hub.join("plant", viewer)
    await layer.group_send("stream.plant", batch("plant"))
    await received(hub, 1)
    await run_tick(hub, clock)
    assert [len(viewer.frames) for viewer in viewers] == [1] * 50
    assert len({id(viewer.frames[0]) for viewer in viewers}) == 1
    assert hub.stats.frames == 50
    assert hub.stats.frames_encoded == 1
    assert viewers[0].frames[0].text.startswith('{"op":"points","data":[{"stream":"plant"')


async def test_batches_of_one_tick_share_a_frame_and_ticks_are_spaced(layer):
    clock = ManualClock()
    hub = Hub(layer=layer, tick_seconds=0.1, clock=clock)
    viewer = FakeSocket()
    await hub.join("a", viewer)
    await hub.join("b", viewer)
    await layer.group_send("stream.a", batch("a"))
    await layer.group_send("stream.b", batch("b"))
    await received(hub, 2)
    # The first batch waits only a moment for others of its broadcast tick.
    assert clock.pending() == [pytest.approx(clock.now() + hub_module.COALESCE_SECONDS)]
    await run_tick(hub, clock)
    flushed_at = clock.now()
    assert len(viewer.frames) == 1
    assert '"stream":"a"' in viewer.frames[0].text and '"stream":"b"' in viewer.frames[0].text
    # A batch right after a frame waits for the next tick instead of a frame of its own.
    clock.advance(0.01)
    await layer.group_send("stream.a", batch("a"))
    await received(hub, 3)
    assert clock.pending() == [pytest.approx(flushed_at + 0.1)]
    clock.advance(0.05)
    await finish_tick(hub)
    assert len(viewer.frames) == 1
    await run_tick(hub, clock)
    assert len(viewer.frames) == 2


async def test_a_held_back_viewer_is_asked_again_next_tick(layer):
    clock = ManualClock()
    hub = Hub(layer=layer, tick_seconds=0.02, clock=clock)
    viewer = FakeSocket()
    await hub.join("plant", viewer)
    viewer.hold_back = True
    await layer.group_send("stream.plant", batch("plant"))
    await received(hub, 1)
    await run_tick(hub, clock)
    await run_tick(hub, clock)
    assert viewer.frames == []
    viewer.hold_back = False
    await run_tick(hub, clock)
    assert len(viewer.frames) == 1


async def test_status_goes_to_the_streams_viewers_only(layer):
    hub = Hub(layer=layer, tick_seconds=0.02)
    watching, other = FakeSocket(), FakeSocket()
    await hub.join("plant", watching)
    await hub.join("other", other)
    await layer.group_send("stream.plant", {"type": "stream.status", "stream": "plant", "status": {}})
    # A later status of the other stream marks when the first one has been handed out.
    marker = {"type": "stream.status", "stream": "other", "status": {"marker": True}}
    await layer.group_send("stream.other", marker)
    await eventually(lambda: other.statuses, what="the marker status")
    assert len(watching.statuses) == 1 and other.statuses == [marker]


class ClosingSocket(FakeSocket):
    """A socket whose client went away while a status was on its way to it."""

    async def send_status(self, message: dict[str, Any]) -> None:
        raise ConnectionResetError("the client went away")


async def test_a_socket_failing_a_status_costs_the_other_viewers_nothing(layer):
    hub = Hub(layer=layer, tick_seconds=0.02)
    # Many viewers beside it: whatever the set's order, some come after the one that fails.
    gone, watching = ClosingSocket(), [FakeSocket() for _ in range(20)]
    await hub.join("plant", gone)
    for viewer in watching:
        await hub.join("plant", viewer)
    await layer.group_send("stream.plant", {"type": "stream.status", "stream": "plant", "status": {}})
    await eventually(lambda: hub.stats.flush_errors, what="the status to reach the failing socket")
    assert [len(viewer.statuses) for viewer in watching] == [1] * 20


async def feed(hub: Hub, layer, clock: ManualClock, slug: str, seconds: float) -> None:
    """Batches every 5 ms of the manual clock for a while, like a busy stream; the hub's ticks
    run as they fall due."""
    end = clock.now() + seconds
    while clock.now() < end:
        expected = hub.stats.batches_in + 1
        await layer.group_send(f"stream.{slug}", batch(slug))
        await received(hub, expected)
        clock.advance(0.005)
        await finish_tick(hub)


async def test_a_saturated_process_widens_the_tick_and_narrows_it_back(layer, monkeypatch):
    monkeypatch.setattr(hub_module, "ADAPT_EVERY_SECONDS", 0.1)
    clock = ManualClock()
    cpu = ManualCpu(clock)
    cpu.share = 1.0  # the process saturated: a whole core
    hub = Hub(layer=layer, tick_seconds=0.02, cpu_clock=cpu, clock=clock)
    viewer = FakeSocket()
    await hub.join("plant", viewer)
    await feed(hub, layer, clock, "plant", 1.0)
    assert hub.tick > 0.02 * hub_module.WIDEN_FACTOR, "the tick must widen under saturation"
    assert hub.stats.widened >= 2
    # Fewer, fuller frames: far fewer than the 200 batches of that second (one per 5 ms).
    assert len(viewer.frames) < 60
    cpu.share = 0.0
    await feed(hub, layer, clock, "plant", 2.5)
    assert hub.tick == pytest.approx(0.02), "the tick narrows back once the load is gone"
    await run_tick(hub, clock)
    # And no batch was lost on the way.
    texts = [text for frame in viewer.frames for text in frame.text.split('{"stream"')[1:]]
    assert len(texts) == hub.stats.batches_in


def adapt_after(hub: Hub, *, cpu_share: float, late_seconds: float, clock: dict[str, float]) -> None:
    """One second of load as the hub records it (its CPU share, how late its ticks fired), then
    the hub's reconsideration of its tick."""
    hub._load = hub_module._Load(since=time.monotonic() - 1.0, cpu=clock["cpu"], ticks=20)
    hub._load.late_total = 20 * late_seconds
    clock["cpu"] += cpu_share
    hub._adapt(time.monotonic())


def test_late_ticks_of_a_process_that_is_not_busy_keep_the_tick(layer):
    # A shared machine: ticks fire 40 ms late while the loop waits for a core that other
    # processes hold, this process itself at 40% of one. Fewer frames would not help.
    clock = {"cpu": 0.0}
    hub = Hub(layer=layer, tick_seconds=0.05, cpu_clock=lambda: clock["cpu"])
    for _ in range(5):
        adapt_after(hub, cpu_share=0.4, late_seconds=0.04, clock=clock)
    assert hub.stats.widened == 0 and hub.tick == pytest.approx(0.05)


def test_late_ticks_of_a_busy_process_widen_the_tick(layer):
    # Below the CPU share that widens on its own, but busy enough that late ticks are its own.
    clock = {"cpu": 0.0}
    hub = Hub(layer=layer, tick_seconds=0.05, cpu_clock=lambda: clock["cpu"])
    share = (hub_module.LATE_COUNTS_ABOVE_CPU + hub_module.WIDEN_ABOVE_CPU) / 2
    adapt_after(hub, cpu_share=share, late_seconds=0.04, clock=clock)
    assert hub.stats.widened == 1 and hub.tick == pytest.approx(0.05 * hub_module.WIDEN_FACTOR)
    # On time again at that share: kept (between narrowing and widening), then narrowed when idle.
    adapt_after(hub, cpu_share=share, late_seconds=0.0, clock=clock)
    assert hub.tick == pytest.approx(0.05 * hub_module.WIDEN_FACTOR)
    adapt_after(hub, cpu_share=0.2, late_seconds=0.0, clock=clock)
    assert hub.tick == pytest.approx(0.05)


def test_a_consumer_holds_a_bounded_number_of_batches_per_stream():
    consumer = StreamConsumer()
    consumer.hub = Hub(layer=InMemoryChannelLayer(), tick_seconds=0.05)
    consumer.subscriptions = {"plant": Subscription(last_sent=None)}
    consumer.pending = {}
    consumer.writer = None
    for n in range(MAX_PENDING_BATCHES + 50):
        assert consumer.offer({"stream": "plant", "key": [1, n], "text": str(n)})
    texts = consumer.take_texts()
    assert texts == [str(n) for n in range(50, MAX_PENDING_BATCHES + 50)]
    assert consumer.hub.stats.dropped_batches == 50
    # An old batch (already sent) is not offered again.
    assert not consumer.offer({"stream": "plant", "key": [1, 3], "text": "old"})


class AwaitingLayer:
    """The in-memory layer, but every call yields to the loop a few times first, as a layer
    that talks to Redis does (the in-memory one never awaits, so it cannot show a race)."""

    def __init__(self, inner: InMemoryChannelLayer) -> None:
        self.inner = inner
        self.channels_made = 0

    async def _yield(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    async def new_channel(self, prefix: str = "specific.") -> str:
        await self._yield()
        self.channels_made += 1
        return await self.inner.new_channel(prefix)

    async def group_add(self, group: str, channel: str) -> None:
        await self._yield()
        await self.inner.group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._yield()
        await self.inner.group_discard(group, channel)

    async def receive(self, channel: str) -> dict[str, Any]:
        return await self.inner.receive(channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.inner.group_send(group, message)


async def every_stream_delivers(hub: Hub, layer: Any, slugs: list[str]) -> None:
    viewers = {slug: FakeSocket() for slug in slugs}
    await asyncio.gather(*(hub.join(slug, viewers[slug]) for slug in slugs))
    for slug in slugs:
        await layer.group_send(f"stream.{slug}", batch(slug))
    await eventually(
        lambda: all(viewer.frames for viewer in viewers.values()), what="a frame on every stream"
    )


async def test_first_joins_of_many_streams_at_once_share_one_channel(layer):
    """A restart under load: 16 viewers subscribe at once to 16 streams; each stream is live."""
    awaiting = AwaitingLayer(layer)
    hub = Hub(layer=awaiting, tick_seconds=0.02)
    await every_stream_delivers(hub, awaiting, [f"s{n}" for n in range(16)])
    assert awaiting.channels_made == 1


async def test_a_join_racing_the_last_leave_is_delivered(layer):
    """The last stream leaves (the channel is dropped) while another stream's first join runs."""
    awaiting = AwaitingLayer(layer)
    hub = Hub(layer=awaiting, tick_seconds=0.02)
    for round_ in range(5):
        leaving, joining = FakeSocket(), FakeSocket()
        await hub.join(f"old{round_}", leaving)
        await asyncio.gather(hub.leave(f"old{round_}", leaving), hub.join(f"new{round_}", joining))
        await layer.group_send(f"stream.new{round_}", batch(f"new{round_}"))
        await eventually(lambda joining=joining: len(joining.frames) == 1, what="the joining viewer's frame")
        await hub.leave(f"new{round_}", joining)


async def test_first_joins_at_once_on_redis_are_all_delivered(redis_layer):
    from channels.layers import get_channel_layer

    redis = get_channel_layer()
    hub = Hub(layer=redis, tick_seconds=0.02)
    slugs = [f"s{n}" for n in range(16)]
    await every_stream_delivers(hub, redis, slugs)
    for slug in slugs:
        await hub.leave(slug, next(iter(hub._members[slug])))
    assert hub._channel is None
    # And a new burst after everyone left starts a new channel that works too.
    await every_stream_delivers(hub, redis, [f"t{n}" for n in range(8)])


class FailingSocket(FakeSocket):
    """Its first turn in a tick raises (a bug in one socket's code)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def take_texts(self) -> list[str] | None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("one viewer's bug")
        return super().take_texts()


async def test_one_viewers_exception_loses_no_batch_and_stops_no_tick(layer):
    hub = Hub(layer=layer, tick_seconds=0.02)
    failing, others = FailingSocket(), [FakeSocket() for _ in range(3)]
    for viewer in (failing, *others):
        await hub.join("plant", viewer)
    await layer.group_send("stream.plant", batch("plant"))
    # The others get their frame in that tick; the failing one its batch a tick later.
    await eventually(lambda: all(len(v.frames) == 1 for v in (failing, *others)), what="one frame each")
    assert hub.stats.flush_errors == 1
    # Later ticks still run.
    await layer.group_send("stream.plant", batch("plant"))
    await eventually(lambda: all(len(v.frames) == 2 for v in (failing, *others)), what="two frames each")
