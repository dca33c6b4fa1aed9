"""A reconnect storm: many subscribers of one stream at once, while it publishes, share the
window's read and still each get `subscribed`, the backfill and live batches, one gapless
chain with nothing repeated."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from streams.core.groups import points_message
from streams.core.ids import IdClock, format_id
from streams.core.points import Entry, Point
from streams.core.retention import Retention
from streams.delivery import backfills, consumers
from streams.delivery.backfills import get_shared_backfills
from streams.delivery.consumers import StreamConsumer
from streams.delivery.hub import get_hub
from streams.delivery.transport import prepare
from streams.models import Stream
from streams.storage.window import get_history
from tests.waits import eventually

SLUG = "storm"
WINDOW = 10_000
VIEWERS = 200


def allow(monkeypatch: pytest.MonkeyPatch, stream_row: Stream) -> None:
    """Everyone may see the stream; no database (a thread hop as database_sync_to_async
    makes, without its connection upkeep)."""
    monkeypatch.setattr(
        consumers, "read_viewable_stream", sync_to_async(lambda user, slug: (stream_row, True))
    )


class Feed:
    """The stream as broadcast feeds it: into the window, then offered by the hub."""

    def __init__(self) -> None:
        self.clock = IdClock()
        self.prev: str | None = None
        self.t = 1_000.0
        self.ids: list[str] = []
        self.times: list[float] = []  # ms, as on the wire

    async def publish(self, points: int = 3) -> None:
        entries = []
        for _ in range(points):
            self.t += 1
            entries.append(
                Entry(id=format_id(self.clock.next()), point=Point(t=self.t, values={"v": self.t}))
            )
            self.times.append(round(self.t * 1000, 3))
        await get_history().append(SLUG, entries, retention=Retention(points=WINDOW))
        # As it arrives through the layer: msgpack makes the key a list.
        message = points_message(SLUG, entries, prev=self.prev, key=list(self.clock.last))
        self.prev = entries[-1].id
        self.ids.append(self.prev)
        await get_hub().dispatch(message)


class Viewer:
    """A socket whose frames are recorded, checked against the wire order per subscription."""

    def __init__(self, after: str | None) -> None:
        self.after = after
        self.frames: list[dict[str, Any]] = []
        consumer = self.consumer = StreamConsumer()
        consumer.scope = {"type": "websocket", "path": "/ws/", "headers": []}
        consumer.base_send = self.base_send
        consumer.watch = lambda slug, since: None  # no access re-checks here (no database)

    async def base_send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            self.frames.append(json.loads(message["text"]))

    async def subscribe(self) -> None:
        text = json.dumps({"op": "subscribe", "stream": SLUG, "after": self.after})
        await self.consumer.receive(text_data=text)

    def chain(self) -> tuple[list[str | None], list[str], list[float]]:
        """(each batch's prev, each batch's id, every point's time), in wire order, after
        checking `subscribed` came first and nothing else but points frames after it."""
        assert self.frames[0]["op"] == "subscribed", self.frames[0]
        assert all(frame["op"] == "points" for frame in self.frames[1:]), [f["op"] for f in self.frames]
        batches = [batch for frame in self.frames[1:] for batch in frame["data"]]
        times = [t for batch in batches for t in batch["t"]]
        return [b["prev"] for b in batches], [b["id"] for b in batches], times


async def test_a_storm_of_subscribes_reads_the_window_a_few_times_and_each_gets_an_exact_chain(
    memory_layer, monkeypatch
):
    stream_row = Stream(slug=SLUG, title="Storm", window_points=WINDOW, store_points=False)
    allow(monkeypatch, stream_row)
    history = get_history()
    reads = 0
    real_read = history.read

    async def counted_read(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.001)  # a window read takes a while (Redis): others ask meanwhile
        return await real_read(*args, **kwargs)

    monkeypatch.setattr(history, "read", counted_read)
    feed = Feed()
    for _ in range(500):  # a window of 1,500 points
        await feed.publish()
    # Half the viewers come back from the same last batch (they were all live on it), half
    # open the page afresh.
    resume_from = feed.ids[-1]
    resume_index = len(feed.times)
    rng = random.Random(16)
    viewers = [Viewer(after=resume_from if index % 2 else None) for index in range(VIEWERS)]
    for viewer in viewers:
        await viewer.consumer.connect()
    publishing = True

    async def publisher() -> None:
        while publishing:
            await feed.publish()
            await asyncio.sleep(0.002)

    async def arrive(viewer: Viewer) -> None:
        await asyncio.sleep(rng.uniform(0, 0.2))  # jittered, as live.js reconnects
        await viewer.subscribe()

    feeding = asyncio.create_task(publisher())
    await asyncio.gather(*(arrive(viewer) for viewer in viewers))
    publishing = False
    await feeding
    await feed.publish()  # the last batch: every viewer must end on it
    last = feed.ids[-1]
    await eventually(
        lambda: all(
            v.frames and v.frames[-1]["op"] == "points" and v.frames[-1]["data"][-1]["id"] == last
            for v in viewers
        ),
        what="every viewer live up to the last batch",
    )
    for viewer in viewers:
        prevs, ids, times = viewer.chain()
        assert prevs == [viewer.after, *ids[:-1]], "a gap or a repeat in the chain"
        expected = feed.times if viewer.after is None else feed.times[resume_index:]
        assert times == expected
    shared = get_shared_backfills()
    assert shared.handouts > VIEWERS / 2
    assert reads < VIEWERS / 10, f"{reads} window reads for {VIEWERS} subscribes"
    for viewer in viewers:
        await viewer.consumer.disconnect(1000)


@pytest.mark.parametrize("lost_at", [0, 1])
async def test_a_batch_lost_on_the_live_path_stops_the_sharing_and_later_subscribers_read_their_own(
    memory_layer, monkeypatch, lost_at
):
    stream_row = Stream(slug=SLUG, title="Storm", window_points=WINDOW, store_points=False)
    allow(monkeypatch, stream_row)
    feed = Feed()
    for _ in range(10):
        await feed.publish()
    first, second = Viewer(after=None), Viewer(after=None)
    await first.consumer.connect()
    await second.consumer.connect()
    await first.subscribe()
    # The hub never sees one batch (lost between broadcast and this process); the next shows it.
    for index in range(2):
        if index == lost_at:
            dispatch, feed_hub = get_hub().dispatch, get_hub()

            async def drop(message: dict[str, Any]) -> None:
                return None

            feed_hub.dispatch = drop  # type: ignore[method-assign]
            await feed.publish()
            feed_hub.dispatch = dispatch  # type: ignore[method-assign]
        else:
            await feed.publish()
    await second.subscribe()
    await feed.publish()
    last = feed.ids[-1]
    await eventually(
        lambda: (
            second.frames
            and second.frames[-1]["op"] == "points"
            and second.frames[-1]["data"][-1]["id"] == last
        ),
        what="the second viewer live up to the last batch",
    )
    prevs, ids, times = second.chain()
    if lost_at == 0:
        # Seen before the second subscribe: it read the window itself, lost batch included.
        assert prevs == [None, *ids[:-1]]
        assert times == feed.times
    else:
        # Lost after the shared backfill's last batch, seen only with the next: like any batch
        # the live path loses, the next one's `prev` shows the hole and the client asks again.
        assert prevs[:-1] == [None, *ids[:-2]] and prevs[-1] == feed.ids[-2] != ids[-2]
        held = len(times) - 3
        second.frames.clear()
        second.after = ids[-2]
        await second.subscribe()
        await eventually(lambda: len(second.frames) >= 2, what="the re-subscribe's backfill")
        prevs, ids, times = second.chain()
        assert prevs == [second.after, *ids[:-1]]
        assert times == feed.times[held:]
    await first.consumer.disconnect(1000)
    await second.consumer.disconnect(1000)


async def test_a_window_too_large_to_share_is_read_by_each_subscriber_after_one_try(
    memory_layer, monkeypatch
):
    stream_row = Stream(slug=SLUG, title="Storm", window_points=WINDOW, store_points=False)
    allow(monkeypatch, stream_row)
    monkeypatch.setattr(backfills, "MAX_SHARED_POINTS", 20)
    feed = Feed()
    for _ in range(10):  # 30 points: more than may be shared
        await feed.publish()
    viewers = [Viewer(after=None) for _ in range(3)]
    for viewer in viewers:
        await viewer.consumer.connect()
        await viewer.subscribe()
    await feed.publish()
    last = feed.ids[-1]
    for viewer in viewers:
        await eventually(
            lambda viewer=viewer: (
                viewer.frames[-1]["op"] == "points" and viewer.frames[-1]["data"][-1]["id"] == last
            ),
            what="every viewer live up to the last batch",
        )
        prevs, ids, times = viewer.chain()
        assert prevs == [None, *ids[:-1]]
        assert times == feed.times
    shared = get_shared_backfills()
    assert (shared.reads, shared.handouts) == (1, 0)  # tried once, then each read its own
    for viewer in viewers:
        await viewer.consumer.disconnect(1000)


async def test_a_shared_backfill_is_kept_while_subscribers_keep_asking_for_it(memory_layer, monkeypatch):
    """A storm lasts seconds: its window is read once, not once per SHARE_SECONDS after a read.
    The expiry timer is fired by hand here (no waiting on the clock)."""
    stream_row = Stream(slug=SLUG, title="Storm", window_points=WINDOW, store_points=False)
    allow(monkeypatch, stream_row)
    monkeypatch.setattr(backfills, "SHARE_SECONDS", 60.0)
    feed = Feed()
    for _ in range(10):
        await feed.publish()
    shared = get_shared_backfills()

    async def viewer_subscribes() -> Viewer:
        viewer = Viewer(after=None)
        await viewer.consumer.connect()
        await viewer.subscribe()
        return viewer

    viewers = [await viewer_subscribes()]
    ((key, entry),) = shared._entries.items()
    viewers.append(await viewer_subscribes())  # a handout: kept 60 s from now
    shared._expire(key, entry)  # the timer set at the read fires: a handout came since
    viewers.append(await viewer_subscribes())
    assert (shared.reads, shared.handouts) == (1, 3)
    monkeypatch.setattr(backfills, "SHARE_SECONDS", 0.0)
    viewers.append(await viewer_subscribes())  # kept until now, no longer
    shared._expire(key, entry)
    assert not shared._entries
    viewers.append(await viewer_subscribes())
    assert (shared.reads, shared.handouts) == (2, 4)
    for viewer in viewers:
        assert viewer.chain()[2] == feed.times
        await viewer.consumer.disconnect(1000)


async def test_a_handout_is_framed_once_and_as_each_socket_would_frame_it(memory_layer, monkeypatch):
    """Subscribers of a storm share the frames framed for the wire (transport.prepare): the
    same bytes a socket framing the handout's texts itself would write, `subscribed` first
    with the stream's status of the moment, and the live tail's frames after the window's."""
    stream_row = Stream(slug=SLUG, title="Storm", window_points=WINDOW, store_points=False)
    allow(monkeypatch, stream_row)
    monkeypatch.setattr(backfills, "SHARE_SECONDS", 60.0)
    monkeypatch.setattr(settings, "LIVECHARTS_BACKFILL_FRAME_BYTES", 16 * 1024)
    feed = Feed()
    for _ in range(500):
        await feed.publish()
    first = Viewer(after=None)
    await first.consumer.connect()
    await first.subscribe()
    (entry,) = get_shared_backfills()._entries.values()

    def framed(handout: backfills.Handout) -> list[bytes]:
        texts = [handout.subscribed, *handout.frames]
        assert [prepared.payloadHybi for prepared in handout.prepared] == [
            prepare(text).payloadHybi for text in texts
        ]
        return [prepared.payloadHybi for prepared in handout.prepared]

    before = entry.handout()
    assert len(before.frames) > 1  # a window in several frames
    assert json.loads(before.subscribed) == {"op": "subscribed", "stream": SLUG, "status": entry.status}
    framed(before)
    again = entry.handout()
    assert all(a is b for a, b in zip(again.prepared, before.prepared, strict=True))  # framed once
    await feed.publish()  # a live batch: the tail grows
    await entry.send_status({"status": {"state": "stalled"}})
    after = entry.handout()
    assert framed(after)[1 : len(before.prepared)] == framed(before)[1:]
    assert len(after.frames) == len(before.frames) + 1
    assert json.loads(after.frames[-1])["data"][-1]["id"] == feed.ids[-1]
    assert json.loads(after.subscribed)["status"] == {"state": "stalled"}
    await first.consumer.disconnect(1000)
