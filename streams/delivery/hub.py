"""One fan-out hub per process: one layer subscription per stream, one tick for every socket.

Channels' usual shape, every socket a group member with its own layer queue and receive
loop, costs a task wake-up, a dispatch and an ASGI send per socket per batch: past a few
thousand frames a second that overhead is most of daphne's CPU. Here the process joins each
stream's group once, on the hub's own channel; a batch from the layer is offered to the local
sockets of its stream (a list append each), and once per tick the hub builds each socket's
frame, sharing one encoded frame among sockets with the same pending batches (the usual
case: everyone watching the same stream), and writes it straight to the transport
(streams/delivery/transport.py).

The usual socket, one stream followed live with nothing held or pending, rides the stream's
live lane instead: a batch is appended to the lane once, not offered to each socket, and the
tick encodes the lane's frame once and writes it to each lane socket in one tight loop
(transport.write_each). A socket leaves the lane, its place in the stream written back as its
last id sent, whenever anything is not that simple (a client message, a batch whose `prev`
does not chain, a reader behind or anything buffered, access taken away, a disconnect), and
takes the general path, offer by offer; a tick that wrote it its frame there and finds it
simple again puts it back.

Under channels-redis's pub/sub layer (production) the hub does not receive through the layer:
it subscribes its streams' channels on a connection of its own and is called as each read
from Redis is parsed (streams/delivery/pubsub_reader.py); the batches of one read share a
tick, and when a tick is due at the read's end (READ_TICK_SPACING), the lanes' frames are
written in that same callback. Under the in-memory layer batches come through `receive`
and a timer (COALESCE_SECONDS) gathers them.

Overload: frames, not points, are what a process pays for. The hub watches its process's CPU
share and how late its ticks fire; when they say this process is saturated it widens the tick
for everyone (fewer, fuller frames: latency degrades, nothing queues without bound), and
narrows it back as the load falls. Late ticks alone do not count: on a machine whose cores
are busy with other processes the loop is late because it waits for a core, and fewer frames
would only add latency; lateness counts when the process itself is mostly busy. Each
socket's pending batches are bounded too; a socket that fell behind loses the oldest and
refills them through the `prev` chain, like any lost batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from streams.core import runtime
from streams.core.frames import points_frame
from streams.core.groups import group_name
from streams.core.ids import IdKey
from streams.delivery.latency import frame_sent
from streams.delivery.pubsub_reader import PubSubReader, reader_for
from streams.delivery.transport import LaneParts, prepare, write_each

log = logging.getLogger(__name__)

# Batches of different streams from one broadcast tick arrive a moment apart: wait this long
# after the first for them to share a frame.
COALESCE_SECONDS = 0.002
# A read from Redis (the direct reader) writes its lanes' frames at once when this share of a
# tick has passed since the last: batches come once per broadcast tick, a millisecond early or
# late, and one held for the rest of the tick because it came early puts every later tick on
# the timer, half a tick late (p50 57 ms against 32 ms at 100 viewers in bench.peers).
READ_TICK_SPACING = 0.8
# The tick widens up to this under overload (latency then grows to about this much).
MAX_TICK_SECONDS = 1.0
# How often the hub reconsiders its tick, and the CPU share / lateness that mean saturation.
ADAPT_EVERY_SECONDS = 0.5
WIDEN_ABOVE_CPU = 0.85
# Late ticks mean saturation only when this process is this busy too.
LATE_COUNTS_ABOVE_CPU = 0.6
NARROW_BELOW_CPU = 0.6
WIDEN_FACTOR = 1.5
NARROW_FACTOR = 1.5
# A stream's first join waits for its group subscription to take effect (a probe comes back):
# sent again this often, given up (logged) after this long.
PROBE_RESEND_SECONDS = 0.05
PROBE_GIVE_UP_SECONDS = 5.0
# At shutdown, how long close frames get to leave before Twisted drops the connections.
SHUTDOWN_FLUSH_SECONDS = 0.2


class Member(Protocol):
    """What the hub needs of whoever follows a stream: a socket (streams/delivery/consumers.py)
    or an event stream (streams/delivery/sse.py, which writes its own events)."""

    def offer(self, message: dict[str, Any]) -> bool:
        """Take a live batch; True when the member (then a Socket) has a frame to send."""

    async def send_status(self, message: dict[str, Any]) -> None: ...


class Socket(Member, Protocol):
    """What the hub needs of a socket: frames built and written on its ticks."""

    def take_texts(self) -> list[str] | None:
        """The pending batch texts (cleared), or None to be asked again next tick."""

    async def send_frame(self, frame: Frame) -> None: ...

    # Optional, the hot path: `write_frame(frame) -> bool` writes the frame at once and says
    # True, or says False and the hub awaits `send_frame` (streams/delivery/consumers.py).
    # Optional, the live lane: `lane_entry() -> (slug, last id sent, LaneParts) | None`,
    # asked once its frame is written, says whether the socket may ride that stream's lane;
    # `left_lane(slug, last=..., batches=...)` takes it back (its last id sent, and the lane's
    # batches not yet written to it, pending).

    def going_away(self) -> None:
        """The process is stopping: close the socket with 1001."""


class Clock(Protocol):
    """The hub's time for its ticks and load: now, and a call `delay` seconds from now. Tests
    drive a manual one (tests/clocks.py) instead of waiting for real ticks."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> object: ...


class LoopClock:
    """The running event loop's timers on the monotonic clock (what loop.time() reads)."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        return asyncio.get_running_loop().call_later(delay, callback)


class Frame:
    """A points frame as text, framed for the wire once, when a direct writer first needs it."""

    __slots__ = ("_prepared", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._prepared: Any = None

    @property
    def prepared(self) -> Any:
        if self._prepared is None:
            self._prepared = prepare(self.text)
        return self._prepared


# Batches a lane keeps for its next frame: past this (no tick for seconds), its sockets go back
# to the general path, whose own bound (consumers.MAX_PENDING_BATCHES, the same number) drops
# the oldest and counts them in `dropped_batches`.
MAX_LANE_BATCHES = 200


class Lane:
    """One stream's live lane: the sockets following only it, in step with its last batch."""

    __slots__ = ("batches", "last_id", "last_key", "outside", "slug", "sockets")

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.sockets: dict[Socket, LaneParts] = {}
        # The stream's other members, offered each batch (streams/delivery/consumers.py `offer`).
        self.outside: set[Member] = set()
        # Appended for the lane since its last frame, written at the next tick.
        self.batches: list[tuple[IdKey, str]] = []
        # The newest batch this hub has had of the stream: where every lane socket stands.
        self.last_key: IdKey | None = None
        self.last_id: str | None = None


@dataclass
class HubStats:
    """Counters for /metrics and the benchmarks; never reset."""

    frames: int = 0
    frames_encoded: int = 0
    bytes_sent: int = 0
    batches_in: int = 0
    # Batches handed to sockets (one batch to 100 sockets counts 100), and points likewise.
    batches_out: int = 0
    points_out: int = 0
    ticks: int = 0
    widened: int = 0
    tick_seconds: float = 0.0
    streams: int = 0
    # Sockets' batches dropped for being too far behind, and sockets closed for not reading.
    dropped_batches: int = 0
    slow_closes: int = 0
    # Backfill frames written (subscribes: a page opening, a resume) and their bytes.
    backfill_frames: int = 0
    backfill_bytes: int = 0
    # Sockets whose turn in a tick raised (logged; their batches wait for the next tick).
    flush_errors: int = 0
    # Per stream: seconds from broadcast (the batch id's time) to this process, last seen.
    lag_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Load:
    """CPU and lateness since the hub last reconsidered its tick."""

    since: float
    cpu: float
    late_total: float = 0.0
    ticks: int = 0

    def mean_late(self) -> float:
        return self.late_total / self.ticks if self.ticks else 0.0


class Hub:
    def __init__(
        self,
        *,
        layer: Any,
        tick_seconds: float,
        cpu_clock: Callable[[], float] = time.process_time,
        clock: Clock | None = None,
    ) -> None:
        self.layer = layer
        self.base_tick = tick_seconds
        self.tick = tick_seconds
        self.cpu_clock = cpu_clock
        self.clock = clock or LoopClock()
        self.stats = HubStats(tick_seconds=tick_seconds)
        self._members: dict[str, set[Member]] = {}
        # Per stream joined; and each socket riding a lane, to its lane.
        self._lanes: dict[str, Lane] = {}
        self._lane_of: dict[Socket, Lane] = {}
        self._due_lanes: dict[Lane, None] = {}  # lanes with batches for the next tick
        # Every open socket of this process, subscribed or not (closed with 1001 at shutdown).
        self.sockets: set[Socket] = set()
        self._joined: set[str] = set()
        # One lock for every change the layer sees (the hub's channel made or dropped, a group
        # joined or left): the pub/sub layer's new_channel awaits a SUBSCRIBE, and two first
        # joins of different streams each made a channel, the second overwriting the first
        # (the first stream's batches then went to a channel nobody read: a frozen chart).
        self._layer_lock = asyncio.Lock()
        self._channel: str | None = None
        # Per stream joined, done once the layer delivers its group's messages here.
        self._probes: dict[str, asyncio.Future[None]] = {}
        # Per stream whose subscription the reader awaits: that subscription, and the one wait
        # for its confirmation every join meanwhile shares (_wait_confirmed).
        self._confirming: dict[str, tuple[asyncio.Future[None], asyncio.Task[None]]] = {}
        self._id = uuid.uuid4().hex
        self._receiver: asyncio.Task[None] | None = None
        # Under channels-redis's pub/sub layer the hub reads its streams' channels itself
        # (streams/delivery/pubsub_reader.py); under any other layer, through `receive`.
        self._reader: PubSubReader | None = reader_for(layer, self.deliver, self.read_started, self.read_done)
        # True while the reader hands over the messages of one read: ticks wait for its end.
        self._reading = False
        self._wanted = False
        self._dirty: dict[Socket, None] = {}  # insertion-ordered set
        self._flush_handle: object | None = None
        self._flush_due = 0.0
        self._flushing: asyncio.Task[None] | None = None
        self._last_flush = 0.0
        self._load = _Load(since=self.clock.now(), cpu=cpu_clock())

    # Membership ---------------------------------------------------------------------------

    async def join(self, slug: str, member: Member) -> None:
        """Deliver the stream's live batches to `member`; when this returns, none is missed."""
        if slug in self._joined:
            # Already in the group on the live channel: no layer call. A leave that is about to
            # discard the group re-checks the members under the lock.
            self._add(slug, member)
            self._count()
        else:
            async with self._layer_lock:
                if slug not in self._joined:
                    loop = asyncio.get_running_loop()
                    if self._reader is not None:
                        # Done once Redis confirms the subscription on the reader's connection.
                        self._probes[slug] = loop.create_task(self._reader.subscribe(group_name(slug)))
                    else:
                        if self._channel is None:
                            self._channel = await self.layer.new_channel("hub.")
                        await self.layer.group_add(group_name(slug), self._channel)
                        self._probes[slug] = loop.create_future()
                    self._joined.add(slug)
                self._add(slug, member)
                if self._reader is None:
                    self._ensure_receiver()
            self._count()
        probe = self._probes.get(slug)
        if probe is not None and not probe.done():
            if self._reader is not None:
                await self._wait_confirmed(slug, probe)
            else:
                await self._wait_subscribed(slug, probe)

    def _add(self, slug: str, member: Member) -> None:
        self._members.setdefault(slug, set()).add(member)
        lane = self._lanes.get(slug)
        if lane is None:
            lane = self._lanes[slug] = Lane(slug)
        if self._lane_of.get(member) is lane:  # type: ignore[call-overload]
            # Joined again from the lane (a re-subscribe that did not leave it first): its
            # subscription starts over from its own backfill, nothing of the lane's is owed.
            del self._lane_of[member]  # type: ignore[arg-type]
            del lane.sockets[member]  # type: ignore[arg-type]
        lane.outside.add(member)

    async def _wait_confirmed(self, slug: str, subscribing: asyncio.Future[None]) -> None:
        """Return once the reader's subscription to the stream is confirmed by Redis (or the
        stream was left meanwhile, or it took too long: logged, joined anyway).

        The joins waiting for one subscription share one wait (and its one timer): in a
        reconnect storm hundreds of a stream's subscribes wait for it while the loop is busy
        with handshakes, and a timer each was 2-3% of the storm's CPU."""
        waiting = self._confirming.get(slug)
        if waiting is None or waiting[0] is not subscribing:
            task = asyncio.get_running_loop().create_task(self._confirm(slug, subscribing))
            self._confirming[slug] = waiting = (subscribing, task)
            task.add_done_callback(lambda _, waiting=waiting: self._confirmed(slug, waiting))
        # Shielded: a joiner that goes away (its socket closed) does not end the others' wait.
        await asyncio.shield(waiting[1])

    @staticmethod
    async def _confirm(slug: str, subscribing: asyncio.Future[None]) -> None:
        await asyncio.wait({subscribing}, timeout=PROBE_GIVE_UP_SECONDS)
        if not subscribing.done():
            log.warning("fan-out hub: Redis did not confirm stream %s's subscription; joined anyway", slug)

    def _confirmed(self, slug: str, waiting: tuple[asyncio.Future[None], asyncio.Task[None]]) -> None:
        if self._confirming.get(slug) is waiting:
            del self._confirming[slug]

    async def _wait_subscribed(self, slug: str, probe: asyncio.Future[None]) -> None:
        """Return once the group subscription is in effect at the layer's server.

        The pub/sub layer's group_add sends SUBSCRIBE and returns without its answer, so a
        batch published right after it (on another connection) could miss this process: lost
        between backfill and live. A probe published to the group after group_add that comes
        back proves every later publish comes back too. Sent again until one does."""
        deadline = time.monotonic() + PROBE_GIVE_UP_SECONDS
        while not probe.done() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                # Hack: the one group_send outside broadcast.py, a control message to the
                # stream's group (other processes' hubs ignore probes that are not theirs).
                await self.layer.group_send(
                    group_name(slug), {"type": "hub.probe", "stream": slug, "hub": self._id}
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(probe), PROBE_RESEND_SECONDS)
        if not probe.done():
            log.warning("fan-out hub: no probe of stream %s came back; joined anyway", slug)

    async def leave(self, slug: str, member: Member) -> None:
        members = self._members.get(slug)
        if members is None or member not in members:
            return
        members.discard(member)
        lane = self._lanes.get(slug)
        if lane is not None:
            lane.outside.discard(member)
            if lane.sockets.pop(member, None) is not None:  # type: ignore[call-overload]
                del self._lane_of[member]  # type: ignore[arg-type]
        self._count()
        if members:
            return
        async with self._layer_lock:
            # Someone may have joined while we waited for the lock.
            if self._members.get(slug) or slug not in self._joined:
                return
            self._members.pop(slug, None)
            self._lanes.pop(slug, None)
            self._joined.discard(slug)
            self._probes.pop(slug, None)
            self.stats.lag_seconds.pop(slug, None)
            if self._reader is not None:
                self._reader.unsubscribe(group_name(slug))
                return
            with contextlib.suppress(Exception):
                await self.layer.group_discard(group_name(slug), self._channel)
            if not self._joined and self._receiver is not None:
                # Nothing left to listen for. A layer forgets a channel whose receive was
                # cancelled (the pub/sub layer unsubscribes it), so the next join starts on a
                # new one. Under the lock: a join of another stream waits, then makes that one.
                self._receiver.cancel()
                self._receiver = None
                self._channel = None

    def connected(self, socket: Socket) -> None:
        self.sockets.add(socket)

    def disconnected(self, socket: Socket) -> None:
        self._dirty.pop(socket, None)
        self.sockets.discard(socket)
        lane = self._lane_of.pop(socket, None)
        if lane is not None:
            del lane.sockets[socket]  # gone: nothing owed (leave drops it from the stream)

    def leave_lane(self, socket: Socket) -> None:
        """Take `socket` out of its live lane, if it rides one, back to the general path (its
        last id sent and its batches not yet written handed back): before anything that
        changes its subscriptions."""
        lane = self._lane_of.pop(socket, None)
        if lane is None:
            return
        del lane.sockets[socket]
        lane.outside.add(socket)
        socket.left_lane(lane.slug, last=lane.last_key, batches=lane.batches)  # type: ignore[attr-defined]
        if lane.batches:
            self._dirty[socket] = None
            self._schedule()

    def _empty_lane(self, lane: Lane) -> None:
        for socket in list(lane.sockets):
            self.leave_lane(socket)

    def _enter_lane(self, socket: Socket) -> None:
        """Put `socket`, its frame just written, in its stream's lane when it is simple: one
        stream, nothing pending or held, and in step with the stream's last batch here (the
        lane owes nothing yet at this point of a tick, so it owes the socket nothing either)."""
        entry = socket.lane_entry()  # type: ignore[attr-defined]
        if entry is None:
            return
        slug, last, parts = entry
        lane = self._lanes.get(slug)
        if (
            lane is None
            or lane.batches
            or last != lane.last_key
            or socket not in lane.outside
            or socket not in self.sockets  # disconnecting
        ):
            return
        lane.outside.discard(socket)
        lane.sockets[socket] = parts
        self._lane_of[socket] = lane

    def going_away(self) -> None:
        """Close every socket with 1001, so clients reconnect at once (process shutdown)."""
        for socket in list(self.sockets):
            try:
                socket.going_away()
            except Exception:
                log.exception("fan-out hub: could not close a socket at shutdown")

    def wake(self, socket: Socket) -> None:
        """`socket` has batches to send that no offer announced (held during its backfill)."""
        self._dirty[socket] = None
        self._schedule()

    @property
    def layer_reconnects(self) -> int:
        """Times the direct reader's Redis connection was opened again (0 on the layer's path)."""
        return self._reader.reconnects if self._reader is not None else 0

    def _count(self) -> None:
        self.stats.streams = len(self._members)

    # Layer side ---------------------------------------------------------------------------

    def _ensure_receiver(self) -> None:
        if self._channel is not None and (self._receiver is None or self._receiver.done()):
            self._receiver = asyncio.get_running_loop().create_task(self._receive(self._channel))

    async def _receive(self, channel: str) -> None:
        """Read `channel` for good (until cancelled when the hub drops it)."""
        delay = 0.1
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis gone: the layer reconnects and resubscribes; viewers refill via `prev`.
                log.exception("fan-out hub: layer receive failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            try:
                await self.dispatch(message)
            except Exception:
                log.exception("fan-out hub: could not dispatch %s", message.get("type"))

    def deliver(self, message: dict[str, Any]) -> None:
        """A layer message, from the direct reader's read callback: batches offered at once,
        a status sent from a task of its own (its sends are awaited)."""
        try:
            if message.get("type") == "stream.status":
                task = asyncio.get_running_loop().create_task(self.dispatch(message))
                _status_tasks.add(task)
                task.add_done_callback(_status_tasks.discard)
            else:
                self._offer(message)
        except Exception:
            log.exception("fan-out hub: could not dispatch %s", message.get("type"))

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "stream.status":
            await self._send_status(message)
        else:
            self._offer(message)

    def _offer(self, message: dict[str, Any]) -> None:
        if message.get("type") == "hub.probe":
            probe = self._probes.get(message.get("stream", ""))
            if message.get("hub") == self._id and probe is not None and not probe.done():
                probe.set_result(None)
            return
        slug = message.get("stream", "")
        members = self._members.get(slug)
        if not members:
            return
        kind = message.get("type")
        if kind == "stream.points":
            # Once for every socket's offer (msgpack gives a list).
            key = message["key"] = tuple(message["key"])
            stats = self.stats
            stats.batches_in += 1
            stats.lag_seconds[slug] = max(0.0, time.time() - key[0] / 1000)
            offered = 0
            lane = self._lanes[slug]
            if lane.last_key is None or key > lane.last_key:
                if lane.sockets:
                    if len(lane.batches) >= MAX_LANE_BATCHES:
                        # No tick for that long (a stalled loop): each socket on its own path,
                        # offered this batch below, whose bound drops the oldest and counts them.
                        self._empty_lane(lane)
                    elif message.get("prev") == lane.last_id:
                        lane.batches.append((key, message["text"]))
                        self._due_lanes[lane] = None
                        offered = len(lane.sockets)
                    else:
                        # A batch this hub never had comes before it (lost in the layer): each
                        # socket on its own path, as for any; the client asks for the gap.
                        self._empty_lane(lane)
                lane.last_key, lane.last_id = key, message.get("id")
            dirty = self._dirty
            for socket in lane.outside:
                if socket.offer(message):
                    dirty[socket] = None
                    offered += 1
            stats.batches_out += offered
            stats.points_out += offered * message.get("points", 0)
            if offered:
                self._schedule()

    async def _send_status(self, message: dict[str, Any]) -> None:
        members = self._members.get(message.get("stream", ""))
        if members:
            for socket in list(members):
                try:
                    await socket.send_status(message)
                except Exception as error:
                    # A socket closing under us (its client gone) costs the others nothing.
                    self.stats.flush_errors += 1
                    log.warning("fan-out hub: a status could not be sent (%s)", type(error).__name__)

    # Ticks --------------------------------------------------------------------------------

    def read_done(self) -> None:
        """The reader handed over every message of one read from Redis (a broadcast tick's
        batches of several streams arrive together): the tick they want runs now when it is
        due and only lanes have frames (written in this callback: no timer, no task), else as
        usual. Reading them all first is the coalescing the timer gives the layer's path."""
        self._reading = False
        if not self._wanted:
            return
        self._wanted = False
        now = self.clock.now()
        if (
            not self._dirty
            and self._flush_handle is None
            and self._flushing is None
            and now >= self._last_flush + self.tick * READ_TICK_SPACING
        ):
            self._load.ticks += 1
            self._write_lanes_now(now)
        else:
            self._schedule()

    def read_started(self) -> None:
        self._reading = True

    def _write_lanes_now(self, now: float) -> None:
        self._last_flush = now
        stats = self.stats
        stats.ticks += 1
        dirty: dict[Socket, None] = {}
        sent, size = self._write_lanes({}, dirty)
        stats.frames += sent
        stats.bytes_sent += size
        try:
            self._adapt(self.clock.now())
        except Exception:
            log.exception("fan-out hub: could not reconsider the tick")
        if dirty:
            self._dirty.update(dirty)
            self._schedule()

    def _write_lanes(
        self, frames: dict[Any, tuple[Frame, list[str]]], dirty: dict[Socket, None]
    ) -> tuple[int, int]:
        """Every due lane's frame to its sockets; those that cannot take it join `dirty`.
        Returns the frames written and their bytes."""
        sent = size = 0
        lanes, self._due_lanes = self._due_lanes, {}
        for lane in lanes:
            if not lane.batches:
                continue
            try:
                written, length = self._write_lane(lane, frames=frames, dirty=dirty)
            except Exception:
                # Taken, so not sent again: its clients refill through the `prev` chain.
                self.stats.flush_errors += 1
                log.exception("fan-out hub: a lane's frame failed")
                continue
            sent += written
            size += written * length
        return sent, size

    def _schedule(self) -> None:
        if self._reading:
            self._wanted = True
            return
        if self._flush_handle is not None or (self._flushing is not None and not self._flushing.done()):
            return  # a flush is due or running; the one running reschedules for what is left
        now = self.clock.now()
        self._flush_due = max(now + COALESCE_SECONDS, self._last_flush + self.tick)
        self._flush_handle = self.clock.call_later(self._flush_due - now, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_handle = None
        self._load.late_total += max(0.0, self.clock.now() - self._flush_due)
        self._load.ticks += 1
        self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        self._last_flush = self.clock.now()
        dirty, self._dirty = self._dirty, {}
        # Per distinct batch list: its frame, and the list (held, so that no id in a key is
        # reused by a new text while the tick runs).
        frames: dict[Any, tuple[Frame, list[str]]] = {}
        stats = self.stats
        stats.ticks += 1
        sent = size = 0
        try:
            # The lanes first: their sockets that cannot take the frame at once join `dirty`.
            sent, size = self._write_lanes(frames, dirty)
            # The general path: one turn per socket per tick, so no coroutine per socket
            # and nothing looked up twice; a socket with a direct writer writes at once.
            for socket in dirty:
                try:
                    texts = socket.take_texts()
                    if texts is None:
                        self._dirty[socket] = None  # held back (a slow reader): ask again next tick
                        continue
                    if not texts:
                        continue
                    # Same batch objects in the same order = same frame: encode it once.
                    key = id(texts[0]) if len(texts) == 1 else tuple(map(id, texts))
                    entry = frames.get(key)
                    if entry is None:
                        frame = Frame(points_frame(texts))
                        frames[key] = (frame, texts)
                        stats.frames_encoded += 1
                    else:
                        frame = entry[0]
                except Exception:
                    # One socket's fault costs neither the others' batches nor later ticks;
                    # its own batches are still pending (taken only when a frame is built).
                    stats.flush_errors += 1
                    self._dirty[socket] = None
                    log.exception("fan-out hub: a socket's frame failed; asking it again next tick")
                    continue
                try:
                    write_frame = getattr(socket, "write_frame", None)
                    if write_frame is None or not write_frame(frame):
                        await socket.send_frame(frame)
                    elif hasattr(socket, "lane_entry"):
                        self._enter_lane(socket)
                    frame_sent(frame, texts)
                except Exception:
                    # Taken, so not sent again: the client refills it through the `prev` chain.
                    log.exception("fan-out hub: a frame could not be sent")
                sent += 1
                size += len(frame.text)
            try:
                self._adapt(self.clock.now())
            except Exception:
                log.exception("fan-out hub: could not reconsider the tick")
        finally:
            stats.frames += sent
            stats.bytes_sent += size
            # Whatever happened (even a cancellation), later offers schedule ticks again.
            self._flushing = None
            if self._dirty or self._due_lanes:
                self._schedule()

    def _write_lane(
        self, lane: Lane, *, frames: dict[Any, tuple[Frame, list[str]]], dirty: dict[Socket, None]
    ) -> tuple[int, int]:
        """The lane's batches as one frame to each of its sockets; those that cannot take it
        at once leave the lane with the batches pending and join `dirty`, the general path,
        this same tick. Returns the frames written and the frame's length."""
        batches, lane.batches = lane.batches, []
        texts = [text for _, text in batches]
        frame = Frame(points_frame(texts))
        # Shared with any general socket of this tick pending the same batches.
        frames[id(texts[0]) if len(texts) == 1 else tuple(map(id, texts))] = (frame, texts)
        self.stats.frames_encoded += 1
        if not lane.sockets:
            return 0, 0
        skipped = write_each(lane.sockets, frame.prepared, settings.LIVECHARTS_SEND_BUDGET_BYTES)
        for socket in skipped:
            del self._lane_of[socket], lane.sockets[socket]
            lane.outside.add(socket)
            socket.left_lane(lane.slug, last=lane.last_key, batches=batches)  # type: ignore[attr-defined]
            dirty[socket] = None
        written = len(lane.sockets)  # the skipped ones have left it
        if written:
            # One observation per socket, all at this moment (the loop's end: a bound above).
            frame_sent(frame, texts, written)
        return written, len(frame.text)

    def _adapt(self, now: float) -> None:
        """Widen the tick when the process is saturated, narrow it back when it is not."""
        load = self._load
        wall = now - load.since
        if wall < ADAPT_EVERY_SECONDS:
            return
        cpu_share = (self.cpu_clock() - load.cpu) / wall
        # Ticks that fire late on average mean the loop is behind its own work, but only if that
        # work keeps it busy: a process at 40% of a core with late ticks is waiting for a core
        # (the machine is shared), and widening would add latency without sparing that wait.
        late = load.mean_late() > self.tick / 2 and cpu_share > LATE_COUNTS_ABOVE_CPU
        saturated = cpu_share > WIDEN_ABOVE_CPU or late
        if saturated and self.tick < MAX_TICK_SECONDS:
            self.tick = min(MAX_TICK_SECONDS, self.tick * WIDEN_FACTOR)
            self.stats.widened += 1
            log.info(
                "fan-out hub: process busy (CPU %.0f%%): tick now %.0f ms", cpu_share * 100, self.tick * 1000
            )
        elif not saturated and cpu_share < NARROW_BELOW_CPU and self.tick > self.base_tick:
            self.tick = max(self.base_tick, self.tick / NARROW_FACTOR)
        self.stats.tick_seconds = self.tick
        self._load = _Load(since=now, cpu=self.cpu_clock())


# Status sends in flight (the loop keeps only weak references to tasks).
_status_tasks: set[asyncio.Task[None]] = set()

HUB = "delivery.hub"


def get_hub() -> Hub:
    """This event loop's hub (one per process in practice; tests run many loops)."""
    return runtime.get(HUB, _new_hub)


def _new_hub() -> Hub:
    hub = Hub(layer=get_channel_layer(), tick_seconds=settings.LIVECHARTS_TICK_MS / 1000)
    _close_at_shutdown(hub)
    return hub


def _close_at_shutdown(hub: Hub) -> None:
    """Under daphne (a running Twisted reactor), close the hub's sockets with 1001 when the
    process stops, and give the close frames a moment to leave before connections drop."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    if not reactor.running:
        return

    def going_away() -> Any:
        hub.going_away()
        return deferLater(reactor, SHUTDOWN_FLUSH_SECONDS, lambda: None)

    reactor.addSystemEventTrigger("before", "shutdown", going_away)


def all_hubs() -> list[Hub]:
    return runtime.all(HUB)
