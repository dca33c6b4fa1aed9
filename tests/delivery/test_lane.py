"""The hub's live lane: sockets that follow one stream live get each batch from one append and
one frame per tick, leave the lane whenever anything is not simple, and come back.

Real consumers with real direct writers over socket pairs (what daphne hands over, as in
test_transport.py), the process's hub driven by hand: a batch dispatched as the layer would,
a tick run when the test says. Each client reads its socket's frames off the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
from typing import Any

import pytest
import txaio
from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.protocol import TrafficStats
from channels.layers import InMemoryChannelLayer
from twisted.internet import tcp

from streams.access.revocation import Refusal, Viewing, Watch
from streams.core.groups import points_message
from streams.core.ids import format_id, parse_id
from streams.core.points import Entry, Point
from streams.delivery import hub as hub_module
from streams.delivery.consumers import StreamConsumer, Subscription
from streams.delivery.hub import Hub
from streams.delivery.latency import BROADCAST_TO_SOCKET
from streams.delivery.transport import DirectWriter
from tests.clocks import ManualClock
from tests.delivery.test_transport import FakeReactor

SLUG = "plant"


class Client:
    """One viewer: a consumer whose direct writer writes to a socket pair, and the other end."""

    def __init__(self, hub: Hub) -> None:
        ours, self.peer = socket.socketpair()
        ours.setblocking(False)
        self.peer.setblocking(False)
        protocol = WebSocketServerProtocol()
        self.transport = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, FakeReactor())
        protocol.transport, protocol.state = self.transport, WebSocketServerProtocol.STATE_OPEN
        protocol._perMessageCompress, protocol.send_queue = None, []
        protocol.log, protocol.trafficStats = txaio.make_logger(), TrafficStats()
        protocol.logOctets = False
        self.protocol = protocol
        consumer = StreamConsumer()
        consumer.scope = {"type": "websocket", "path": "/ws/", "headers": []}
        consumer.subscriptions, consumer.pending, consumer.tasks = {}, {}, set()
        consumer.hub, consumer.writer = hub, DirectWriter(protocol)
        consumer.behind_since, consumer.refused = None, False
        consumer.tokens, consumer.tokens_at = 100.0, 0.0
        consumer.user_id = consumer.address = None
        self.sent: list[dict[str, Any]] = []

        async def base_send(message: dict[str, Any]) -> None:
            self.sent.append(message)

        consumer.base_send = base_send
        self.consumer = consumer
        hub.connected(consumer)
        self.buffer = b""
        self.batches: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []  # frames other than points
        self.points_bytes = 0

    async def live(self, slug: str, *, after: str) -> None:
        """Subscribed, its backfill out up to `after`: live from there."""
        subscription = Subscription(last_sent=None, held=[])
        self.consumer.subscriptions[slug] = subscription
        await self.consumer.hub.join(slug, self.consumer)
        self.consumer.go_live(slug, subscription, parse_id(after))

    def read(self) -> list[dict[str, Any]]:
        """The batches of the points frames written to it since last read."""
        while True:
            try:
                chunk = self.peer.recv(1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        new = []
        while len(self.buffer) >= 2:
            assert self.buffer[0] == 0x81, "one unfragmented text frame"
            size, start = self.buffer[1], 2
            if size == 126:
                (size,), start = struct.unpack("!H", self.buffer[2:4]), 4
            elif size == 127:
                (size,), start = struct.unpack("!Q", self.buffer[2:10]), 10
            if len(self.buffer) < start + size:
                break
            frame = json.loads(self.buffer[start : start + size])
            self.buffer = self.buffer[start + size :]
            if frame["op"] != "points":
                self.others.append(frame)
                continue
            self.points_bytes += size
            new.extend(frame["data"])
        self.batches.extend(new)
        return new

    def ids(self) -> list[str]:
        return [batch["id"] for batch in self.batches]

    def close(self) -> None:
        self.transport.socket.close()
        self.peer.close()


class Feed:
    """A stream's batches as broadcast makes them, chained by `prev`."""

    def __init__(self, slug: str = SLUG) -> None:
        self.slug = slug
        self.prev: str | None = None
        self.seq = itertools.count(1)
        self.ids: list[str] = []

    def next(self, *, lost: bool = False) -> dict[str, Any]:
        entries = []
        for _ in range(3):
            n = next(self.seq)
            entries.append(Entry(id=format_id((1_000, n)), point=Point(t=float(n), values={"v": float(n)})))
        message = points_message(self.slug, entries, prev=self.prev, key=list(parse_id(entries[-1].id)))
        self.prev = entries[-1].id
        if not lost:
            self.ids.append(entries[-1].id)
        return message


@pytest.fixture
def hub() -> Hub:
    return Hub(layer=InMemoryChannelLayer(capacity=10_000), tick_seconds=0.05, clock=ManualClock())


@pytest.fixture
def clients(hub):
    made: list[Client] = []

    def make(count: int) -> list[Client]:
        new = [Client(hub) for _ in range(count)]
        made.extend(new)
        return new

    yield make
    for client in made:
        client.close()


def in_lane(hub: Hub, client: Client) -> bool:
    return client.consumer in hub._lane_of


async def publish(hub: Hub, feed: Feed, *, lost: bool = False) -> dict[str, Any]:
    message = feed.next(lost=lost)
    if not lost:
        await hub.dispatch(message)
    return message


async def started(hub: Hub, clients: list[Client], feed: Feed) -> None:
    """The clients live on the feed's stream, in its lane (one batch through the general path)."""
    first = feed.next()
    for client in clients:
        await client.live(feed.slug, after=first["id"])
    await publish(hub, feed)
    await hub._flush()
    assert all(in_lane(hub, client) for client in clients)
    for client in clients:
        assert [batch["id"] for batch in client.read()] == feed.ids[1:]
        client.points_bytes = 0


async def test_live_sockets_ride_the_lane_and_get_every_batch_once_in_order(hub, clients):
    viewers = clients(3)
    feed = Feed()
    await started(hub, viewers, feed)
    offers = []
    for viewer in viewers:
        viewer.consumer.offer = lambda message, offers=offers: offers.append(message) or True
    stats_before = (hub.stats.frames, hub.stats.batches_out, hub.stats.points_out, hub.stats.bytes_sent)
    observed = BROADCAST_TO_SOCKET.count
    for _ in range(4):
        await publish(hub, feed)
        await publish(hub, feed)  # two batches of one tick share a frame
        await hub._flush()
    assert offers == [], "a lane socket is not offered batch by batch"
    for viewer in viewers:
        viewer.read()
        assert viewer.ids() == feed.ids[1:]
        assert [batch["prev"] for batch in viewer.batches[1:]] == viewer.ids()[:-1], "chained"
        assert [t for batch in viewer.batches for t in batch["t"]] == [n * 1000.0 for n in range(4, 31)]
    frames, batches, points, size = (
        now - before
        for now, before in zip(
            (hub.stats.frames, hub.stats.batches_out, hub.stats.points_out, hub.stats.bytes_sent),
            stats_before,
            strict=True,
        )
    )
    assert (frames, batches, points) == (3 * 4, 3 * 8, 3 * 8 * 3)
    assert size == sum(viewer.points_bytes for viewer in viewers)
    assert BROADCAST_TO_SOCKET.count - observed == 12, "latency observed once per frame written"


async def test_a_batch_that_does_not_chain_sends_the_lane_back_and_the_sockets_return(hub, clients):
    viewers = clients(2)
    feed = Feed()
    await started(hub, viewers, feed)
    await publish(hub, feed, lost=True)  # lost in the layer: this process never has it
    gap = await publish(hub, feed)
    assert not any(in_lane(hub, viewer) for viewer in viewers), "each on its own path"
    await hub._flush()
    for viewer in viewers:
        viewer.read()
        assert viewer.batches[-1]["id"] == gap["id"] and viewer.batches[-1]["prev"] != viewer.ids()[-2], (
            "sent as it came: its `prev` shows the client the hole to ask for"
        )
    assert all(in_lane(hub, viewer) for viewer in viewers), "back once their frame is out"
    await publish(hub, feed)
    await hub._flush()
    for viewer in viewers:
        viewer.read()
        assert viewer.ids() == feed.ids[1:]


async def test_a_reader_behind_leaves_the_lane_is_held_back_and_returns_when_it_reads(hub, clients):
    slow, quick = clients(2)
    feed = Feed()
    await started(hub, [slow, quick], feed)
    # The kernel said (just now) that the slow client's queue is past the budget.
    writer = slow.consumer.writer
    writer._kernel_queued = 10 * 1024 * 1024
    writer._kernel_checked_at = 1e12  # no new answer before the test says
    for _ in range(3):
        await publish(hub, feed)
        await hub._flush()
    assert not in_lane(hub, slow) and in_lane(hub, quick)
    assert slow.read() == [] and slow.consumer.behind_since is not None
    assert len(slow.consumer.pending[SLUG]) == 3, "its batches wait for it"
    quick.read()
    assert quick.ids() == feed.ids[1:]
    writer._kernel_queued = 0  # it read everything
    await hub._flush()
    assert slow.read() and slow.ids() == feed.ids[1:], "each batch once, in order"
    assert in_lane(hub, slow)
    await publish(hub, feed)
    await hub._flush()
    slow.read()
    assert slow.ids() == feed.ids[1:]


async def test_bytes_buffered_before_the_frame_keep_their_order(hub, clients):
    (viewer,) = clients(1)
    feed = Feed()
    await started(hub, [viewer], feed)
    # A frame written through autobahn (a status, say) that the kernel did not take at once:
    # in Twisted's buffer until the socket is writable.
    viewer.transport.write(b'\x81\x0f{"op":"status"}')
    await publish(hub, feed)
    await hub._flush()
    assert viewer.read() == [], "nothing jumps ahead of Twisted's buffer"
    assert in_lane(hub, viewer), "written behind it by the general path, and back"
    viewer.transport.doWrite()  # the loop says the socket is writable
    viewer.read()
    assert viewer.others == [{"op": "status"}] and viewer.ids() == feed.ids[1:]
    await publish(hub, feed)
    await hub._flush()
    viewer.read()
    assert viewer.ids() == feed.ids[1:], "straight to the socket again"


async def test_a_client_message_takes_the_socket_out_and_two_streams_keep_it_out(hub, clients):
    (viewer,) = clients(1)
    feed = Feed()
    await started(hub, [viewer], feed)
    owed = await publish(hub, feed)  # appended to the lane, not yet written
    await viewer.consumer.receive(text_data="not json")
    assert not in_lane(hub, viewer)
    assert viewer.consumer.subscriptions[SLUG].last_sent == parse_id(owed["id"])
    assert [key for key, _ in viewer.consumer.pending[SLUG]] == [parse_id(owed["id"])]
    viewer.consumer.subscriptions["other"] = Subscription(last_sent=(1, 0))  # a second stream
    await hub._flush()
    await publish(hub, feed)
    await hub._flush()
    assert not in_lane(hub, viewer), "a socket of two streams takes the general path"
    del viewer.consumer.subscriptions["other"]
    await publish(hub, feed)
    await hub._flush()
    assert in_lane(hub, viewer)
    await publish(hub, feed)
    await hub._flush()
    viewer.read()
    assert viewer.ids() == feed.ids[1:]


async def test_a_socket_gone_between_the_batch_and_the_tick_costs_the_others_nothing(hub, clients):
    gone, closed, stays = clients(3)
    feed = Feed()
    await started(hub, [gone, closed, stays], feed)
    await publish(hub, feed)
    await gone.consumer.disconnect(1000)
    closed.protocol.state = WebSocketServerProtocol.STATE_CLOSED  # its connection dropped first
    frames = hub.stats.frames
    await hub._flush()
    assert not in_lane(hub, gone) and not in_lane(hub, closed)
    assert gone.read() == [] and closed.read() == []
    stays.read()
    assert stays.ids() == feed.ids[1:]
    assert hub.stats.frames - frames == 2, "the closed one counted by the general path, as before"
    assert hub.stats.flush_errors == 0
    await publish(hub, feed)
    await hub._flush()
    assert not in_lane(hub, closed), "a closed socket does not come back"
    stays.read()
    assert stays.ids() == feed.ids[1:]


async def test_access_taken_away_takes_the_socket_out_before_its_stream_is_dropped(hub, clients):
    revoked, kept = clients(2)
    feed = Feed()
    await started(hub, [revoked, kept], feed)
    watch = Watch(
        viewing=Viewing(session_key=None, user_id=None, slug=SLUG),
        revoked=asyncio.get_running_loop().create_future(),
    )
    revoked.consumer.subscriptions[SLUG].watch = watch
    await publish(hub, feed)  # in the lane, not yet written
    revoked.consumer.revoked(SLUG, watch, _done(Refusal(code="forbidden", message="no longer")))
    assert not in_lane(hub, revoked) and SLUG not in revoked.consumer.subscriptions
    await asyncio.gather(*revoked.consumer.tasks)
    await hub._flush()
    await publish(hub, feed)
    await hub._flush()
    assert revoked.read() == [], "nothing more of the stream, not even the batch the lane owed"
    assert [message["text"] for message in revoked.sent if "text" in message][-1].startswith('{"op":"error"')
    kept.read()
    assert kept.ids() == feed.ids[1:]
    assert revoked.consumer not in hub._members.get(SLUG, set())


def _done(result: Any) -> asyncio.Future[Any]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


async def test_a_lane_whose_write_fails_costs_the_other_lanes_nothing(hub, clients, monkeypatch):
    failing, other = clients(2)
    plant, boiler = Feed(SLUG), Feed("boiler")
    await started(hub, [failing], plant)
    await started(hub, [other], boiler)
    real = hub_module.write_each

    def write_each(targets, frame, budget):
        if failing.consumer in targets:
            raise RuntimeError("a fault of this lane's")
        return real(targets, frame, budget)

    monkeypatch.setattr(hub_module, "write_each", write_each)
    lost = await publish(hub, plant)
    await publish(hub, boiler)
    await hub._flush()
    assert hub.stats.flush_errors == 1
    other.read()
    assert other.ids() == boiler.ids[1:]
    monkeypatch.setattr(hub_module, "write_each", real)
    await publish(hub, plant)
    await hub._flush()
    failing.read()
    assert lost["id"] not in failing.ids() and failing.ids()[-1] == plant.ids[-1]
    assert failing.batches[-1]["prev"] == lost["id"], "the client sees the hole and asks for it"


async def test_a_lane_without_a_tick_for_too_long_is_bounded_and_counts_its_drops(hub, clients, monkeypatch):
    monkeypatch.setattr(hub_module, "MAX_LANE_BATCHES", 4)
    monkeypatch.setattr("streams.delivery.consumers.MAX_PENDING_BATCHES", 4)
    viewer = clients(1)[0]
    feed = Feed()
    await started(hub, [viewer], feed)
    dropped = hub.stats.dropped_batches
    for _ in range(5):  # no tick in between: a stalled loop
        await publish(hub, feed)
    assert not in_lane(hub, viewer), "past the lane's bound the socket takes its own path"
    assert hub.stats.dropped_batches - dropped == 1, "the oldest batch dropped, and counted"
    await hub._flush()
    viewer.read()
    # The dropped batch shows as a `prev` gap the client asks for; nothing else is missing.
    assert viewer.ids() == feed.ids[1:2] + feed.ids[3:]
