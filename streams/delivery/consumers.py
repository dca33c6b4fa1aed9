"""The browser socket at /ws/: subscribe, backfill, then forward live batches.

Thin on purpose: parse, ask access/rules.py, join or leave a stream at this process's fan-out hub
(streams/delivery/hub.py), which offers each live batch and asks for one frame per socket per tick.
Frames go straight to daphne's transport when there is one (streams/delivery/transport.py).

Per subscription the wire order is `subscribed`, the backfill (frames of bounded size chained
by `prev`), then live batches. The hub is joined before history is read, so no batch falls
between the two; while the backfill is read and written the subscription is "backfilling":
live batches offered meanwhile are held (bounded), and released after the backfill's last
frame, less what the backfill already held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autobahn.websocket.protocol import PreparedMessage
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from streams.access.revocation import Refusal, Viewing, Watch, get_watcher
from streams.access.rules import is_signed_in, viewable_stream
from streams.core import runtime
from streams.core.frames import encode
from streams.core.ids import IdKey, parse_id
from streams.core.retention import Retention
from streams.delivery.backfills import Handout, backfill_slices, get_shared_backfills
from streams.delivery.hub import Frame, get_hub
from streams.delivery.latency import timed_subscribe
from streams.delivery.transport import LaneParts, direct_writer, prepare
from streams.storage.backfill import Segment, pages_since
from streams.storage.window import get_history

if TYPE_CHECKING:
    from streams.models import Stream

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
MAX_STREAMS_PER_SOCKET = 100
# Client messages draw on a token bucket: a burst, then a steady refill per second. A message
# costs one token; a subscribe costs SUBSCRIBE_TOKENS (an access check and history reads), and
# one more per backfill frame after its first, charged once sent (the bucket may go below
# zero: a socket that asked for large backfills waits before it may ask again). The burst
# lets a dashboard subscribe to as many streams as a socket may hold at once.
SUBSCRIBE_TOKENS = 2
RATE_BURST = MAX_STREAMS_PER_SOCKET * SUBSCRIBE_TOKENS
RATE_PER_SECOND = 20.0
# Live batches held per stream for a socket that is behind (or backfilling); older ones are
# dropped and the client refills them through the `prev` chain.
MAX_PENDING_BATCHES = 200
# A reader more than LIVECHARTS_SEND_BUDGET_BYTES behind (written but not taken by its kernel)
# gets nothing more until it catches up; one that stays behind LIVECHARTS_SLOW_READER_SECONDS
# is closed with CLOSE_TOO_SLOW and back-fills when it reconnects. A backfill waits between
# frames the same way.
# Open sockets per signed-in user in one process (tabs, dashboards); one more is closed. Per
# client address: LIVECHARTS_MAX_SOCKETS_PER_ADDRESS.
MAX_SOCKETS_PER_USER = 30
# Close codes (docs/protocol.md); the client reconnects after either, with backoff.
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY_SOCKETS = 4029


@dataclass
class SocketCounts:
    """Open sockets per signed-in user id, and per client address, in this process."""

    per_user: Counter[Any] = field(default_factory=Counter)
    per_address: Counter[str] = field(default_factory=Counter)


def socket_counts() -> SocketCounts:
    return runtime.shared("delivery.socket_counts", SocketCounts)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, *, stream: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stream = stream


class Superseded(Exception):
    """The subscription being backfilled ended meanwhile (access taken away, socket closed)."""


@dataclass
class Subscription:
    # The newest id this socket has been sent for the stream; older live batches are dropped.
    last_sent: IdKey | None
    # This process's access watcher re-checks the viewer (streams/access/revocation.py).
    watch: Watch | None = None
    # While the backfill is read and written: the live batches offered meanwhile, in order,
    # each as (id, text, prev). None once live.
    held: list[tuple[IdKey, str, str | None]] | None = None
    # The feed's health when it changed during the backfill: sent right after it.
    held_status: dict[str, Any] | None = None
    # How the stream keeps its points, for a refill (set once access is granted).
    retention: Retention | None = None
    stored: bool = False


def client_address(scope: dict[str, Any]) -> str | None:
    """The client's address: the TCP peer, or behind LIVECHARTS_TRUSTED_PROXY_HOPS proxies the
    X-Forwarded-For entry the outermost trusted proxy wrote (entries left of it are the
    client's own words; daphne's --proxy-headers takes the leftmost, so it is not used)."""
    hops = settings.LIVECHARTS_TRUSTED_PROXY_HOPS
    if hops:
        entries = [
            entry.strip()
            for name, value in scope.get("headers", ())
            if name.lower() == b"x-forwarded-for"
            for entry in value.decode("latin-1").split(",")
            if entry.strip()
        ]
        if len(entries) >= hops:
            return entries[-hops]
    client = scope.get("client")
    return str(client[0]) if client else None


def _viewable_stream(user: Any, slug: str) -> tuple[Stream | None, bool]:
    return viewable_stream(user, slug)  # looked up at each call (tests replace it)


# The access check's database read, on the database thread: wrapped once (asgiref's wrapper
# inspects the function as it is made, and a storm's subscribes made 2,000 of them).
read_viewable_stream = database_sync_to_async(_viewable_stream)


class StreamConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per socket: live batches come from the process's hub, so a
    # socket's own layer queue and receive loop would only cost memory and a Redis subscription.
    channel_layer_alias = "livecharts.sockets-have-no-layer-channel"
    channel_layer = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """channels' AsyncConsumer.__call__ for a consumer with no layer channel: each client
        message dispatched in turn, as channels' `await_many_dispatch` does with one source,
        less its new task and `asyncio.wait` per message and its settings lookup for the
        layer (about 5% of a reconnect storm's CPU: three messages per viewer)."""
        self.scope = scope
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def connect(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        # Live batches not yet sent, per stream: (last id, pre-encoded text).
        self.pending: dict[str, list[tuple[IdKey, str]]] = {}
        # Tasks this socket started (an access refusal's frame): awaited or cancelled at the end.
        self.tasks: set[asyncio.Task[None]] = set()
        self.hub = get_hub()
        self.hub.connected(self)
        self.writer = direct_writer(self.base_send)
        self.behind_since: float | None = None
        self.tokens = float(RATE_BURST)
        self.tokens_at = time.monotonic()
        self.refused = False
        user = self.scope.get("user")
        self.user_id = user.pk if is_signed_in(user) else None
        session = self.scope.get("session")
        self.session_key = session.session_key if session is not None and self.user_id is not None else None
        self.address = client_address(self.scope)
        await self.accept()
        limit = settings.LIVECHARTS_MAX_SOCKETS_PER_ADDRESS
        counts = socket_counts()
        if self.address is not None and counts.per_address[self.address] >= limit:
            self.address = self.user_id = None  # not counted, so not uncounted at disconnect
            await self.refuse_socket(f"at most {limit} open sockets per address: close other tabs")
            return
        if self.user_id is not None and counts.per_user[self.user_id] >= MAX_SOCKETS_PER_USER:
            self.address = self.user_id = None
            await self.refuse_socket(
                f"at most {MAX_SOCKETS_PER_USER} open sockets per user: close other tabs"
            )
            return
        if self.address is not None:
            counts.per_address[self.address] += 1
        if self.user_id is not None:
            counts.per_user[self.user_id] += 1

    async def dispatch(self, message: dict[str, Any]) -> None:
        """A client message (connect, receive, disconnect) to its handler. channels 4.3's
        dispatch first hops to a thread to close old database connections, for every message
        (DESIGN.md, what costs what): a reconnect storm paid two hops per viewer. Every ORM
        call here goes through database_sync_to_async, which does that itself around the call."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """As channels' own, less its `aclose_old_connections()` thread hop (see dispatch): a
        socket holds no database connection, and it has no layer groups to leave."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def refuse_socket(self, message: str) -> None:
        self.refused = True
        await self.send(text_data=encode({"op": "error", "code": "rate_limited", "message": message}))
        await self.close(code=CLOSE_TOO_MANY_SOCKETS)

    async def disconnect(self, code: int) -> None:
        hub = getattr(self, "hub", None)
        if hub is None:
            return
        counts = socket_counts()
        uncount(counts.per_user, self.user_id)
        uncount(counts.per_address, self.address)
        self.user_id = self.address = None
        hub.disconnected(self)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for slug in list(self.subscriptions):
            await self.drop(slug)
        self.pending.clear()

    async def drop(self, slug: str) -> None:
        """Stop sending `slug` to this socket."""
        subscription = self.subscriptions.pop(slug, None)
        self.pending.pop(slug, None)
        if subscription is None:
            return
        if subscription.watch is not None:
            get_watcher().release(subscription.watch)
        await self.hub.leave(slug, self)

    # Client messages ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.refused:
            return  # closing: nothing it asks for is served
        self.hub.leave_lane(self)  # whatever it asks, its subscriptions are ours to change
        try:
            self.take_tokens(1)
            request = self.parse(text_data, bytes_data)
            if request["op"] == "subscribe":
                self.take_tokens(SUBSCRIBE_TOKENS - 1, stream=request["stream"])
                await self.subscribe(request)
            else:
                await self.unsubscribe(request)
        except BadRequest as error:
            frame = {"op": "error", "code": error.code, "message": error.message}
            if error.stream is not None:
                frame["stream"] = error.stream
            await self.send(text_data=encode(frame))

    def take_tokens(self, count: float, *, stream: str | None = None) -> None:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.tokens_at) * RATE_PER_SECOND)
        self.tokens_at = now
        if self.tokens < count:
            message = (
                f"more than {RATE_PER_SECOND:g} messages/s (a subscribe counts {SUBSCRIBE_TOKENS},"
                " more with a large backfill): slow down"
            )
            raise BadRequest("rate_limited", message, stream=stream)
        self.tokens -= count

    def parse(self, text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise BadRequest("bad_request", "send JSON in text frames, not binary")
        if len(text_data) > MAX_MESSAGE_BYTES or len(text_data.encode()) > MAX_MESSAGE_BYTES:
            raise BadRequest("too_large", f"messages are limited to {MAX_MESSAGE_BYTES // 1024} KiB")
        try:
            request = json.loads(text_data)
        except ValueError as error:
            raise BadRequest("bad_request", f"malformed JSON: {error}") from None
        except RecursionError:
            raise BadRequest("bad_request", "JSON nested too deeply") from None
        if not isinstance(request, dict):
            raise BadRequest("bad_request", "a message must be a JSON object")
        op = request.get("op")
        if op is None:
            raise BadRequest("bad_request", "missing field 'op'")
        if op not in ("subscribe", "unsubscribe"):
            raise BadRequest("bad_request", f"unknown op {repr(op)[:40]} (known: subscribe, unsubscribe)")
        slug = request.get("stream")
        if slug is None:
            raise BadRequest("bad_request", "missing field 'stream'")
        if not isinstance(slug, str) or not slug or len(slug) > 64:
            raise BadRequest("bad_request", "'stream' must be a stream slug")
        after = request.get("after")
        if after is not None:
            try:
                parse_id(after)
            except ValueError:
                raise BadRequest("bad_request", "'after' must be a point id or null", stream=slug) from None
        return request

    @timed_subscribe
    async def subscribe(self, request: dict[str, Any]) -> None:
        slug, after = request["stream"], request.get("after")
        if slug not in self.subscriptions and len(self.subscriptions) >= MAX_STREAMS_PER_SOCKET:
            raise BadRequest("too_large", f"at most {MAX_STREAMS_PER_SOCKET} streams per socket", stream=slug)
        # A re-subscribe (the client noticed a lost batch) restarts this stream from `after`.
        # Backfilling from here, before the first await: the hub's offers for it are held, not
        # sent, until `subscribed` and the backfill are out (nothing of the old subscription
        # follows the client's ask either).
        known = self.subscriptions.get(slug)
        watch = known.watch if known is not None else None
        self.subscriptions[slug] = subscription = Subscription(last_sent=None, watch=watch, held=[])
        self.pending.pop(slug, None)
        try:
            stream, since = await self.stream_for(slug)
            self.check_current(slug, subscription)
            if subscription.watch is None:
                subscription.watch = self.watch(slug, since=since)
            else:
                get_watcher().check_by(since)
            # Join before reading history so no batch falls between backfill and live.
            await self.hub.join(slug, self)
            self.check_current(slug, subscription)
            retention = subscription.retention = Retention.of(stream)
            stored = subscription.stored = stream.store_points
            # The window, else the database (a Redis restart empties the window), else a gap:
            # read once for every subscriber asking alike at the moment (a reconnect storm),
            # else (too large to keep) a page at a time, each once the one before it is written.
            shared = await get_shared_backfills().get(
                slug,
                after=after,
                retention=retention,
                stored=stored,
                max_bytes=settings.LIVECHARTS_BACKFILL_FRAME_BYTES,
                pages=lambda: pages_since(slug, after=after, retention=retention, stored=stored),
            )
            self.check_current(slug, subscription)
            if shared is not None:
                last, frames = await self.send_shared(slug, shared=shared, subscription=subscription)
            else:
                status = await get_history().get_status(slug)
                self.check_current(slug, subscription)
                await self.write_text(encode({"op": "subscribed", "stream": slug, "status": status}))
                pages = pages_since(slug, after=after, retention=retention, stored=stored)
                async with contextlib.aclosing(pages):
                    last, frames = await self.send_backfill(
                        slug, after=after, pages=pages, subscription=subscription
                    )
        except Superseded:
            return  # taken away (its error frame is on the way) or the socket is gone
        except BaseException:
            if self.subscriptions.get(slug) is subscription:
                await self.drop(slug)
            raise
        self.go_live(slug, subscription, last)
        if subscription.held_status is not None:
            status, subscription.held_status = subscription.held_status, None
            await self.send(text_data=encode({"op": "status", "stream": slug, **status}))
        # Paid after the fact: a large backfill costs the socket a wait before its next ask.
        self.tokens -= max(0, frames - 1)

    async def stream_for(self, slug: str) -> tuple[Stream, float]:
        """The stream the client may see, and when (loop time) that answer was read: the row a
        subscribe on this loop read less than a second ago, or is reading now, where the row
        alone answers (a reconnect storm's thousand subscribes to twenty public streams), else
        the database. The watcher re-checks from that time on (streams/access/revocation.py)."""
        user = self.scope.get("user")
        stream, allowed, since = await get_watcher().stream_for(user, slug, read=read_viewable_stream)
        if stream is None:
            raise BadRequest("not_found", f"no stream {slug!r}", stream=slug)
        if not allowed:
            raise BadRequest("forbidden", f"you may not see stream {slug!r}", stream=slug)
        return stream, since

    async def send_backfill(
        self, slug: str, *, after: str | None, pages: AsyncIterator[Segment], subscription: Subscription
    ) -> tuple[IdKey | None, int]:
        """Write the backfill in frames of bounded size; returns the last id it held (else
        `after`) and how many points frames it took."""
        prev = after
        frames = 0
        async for segment in pages:
            self.check_current(slug, subscription)
            if segment.gap:
                await self.write_text(encode({"op": "gap", "stream": slug}))
                prev = None
            if not segment.entries:
                continue
            max_bytes = settings.LIVECHARTS_BACKFILL_FRAME_BYTES
            for text in backfill_slices(slug=slug, prev=prev, entries=segment.entries, max_bytes=max_bytes):
                await self.wait_for_reader(slug, subscription)
                await self.write_text(text)
                frames += 1
                self.hub.stats.backfill_frames += 1
                self.hub.stats.backfill_bytes += len(text)
            prev = segment.entries[-1].id
        return (parse_id(prev) if prev is not None else None), frames

    async def send_shared(
        self, slug: str, *, shared: Handout, subscription: Subscription
    ) -> tuple[IdKey | None, int]:
        """`subscribed` and a shared backfill (streams/delivery/backfills.py), as
        send_backfill writes its own."""
        prepared = iter(shared.prepared)
        await self.write_shared(shared.subscribed, next(prepared))
        for text, frame in zip(shared.frames, prepared, strict=True):
            await self.wait_for_reader(slug, subscription)
            await self.write_shared(text, frame)
            if text.startswith('{"op":"points"'):  # as send_backfill counts: not gap frames
                self.hub.stats.backfill_frames += 1
                self.hub.stats.backfill_bytes += len(text)
        return shared.last, shared.points_frames

    def go_live(
        self, slug: str, subscription: Subscription, last: IdKey | None, *, may_refill: bool = True
    ) -> None:
        """The backfill is out: release the batches held meanwhile that it did not hold. No
        await here, so no tick runs between the backfill's end and the release.

        A backfill that sent nothing (an empty window when it was read) leaves a client holding
        nothing, which applies any batch: were the first held batch one that follows batches
        the live path lost meanwhile, their points would be missing for good. The window is
        then sent from its start first (as `offer` does live), once: a refill that still finds
        nothing releases what it holds."""
        held = subscription.held or []
        fresh = [(key, text, prev) for key, text, prev in held if last is None or key > last]
        if may_refill and last is None and fresh and fresh[0][2] is not None:
            subscription.held = fresh
            self.start(self.refill(slug, subscription))
            return
        subscription.held = None
        subscription.last_sent = fresh[-1][0] if fresh else last
        if fresh:
            self.pending[slug] = [(key, text) for key, text, _ in fresh]
            self.hub.wake(self)

    def check_current(self, slug: str, subscription: Subscription) -> None:
        if self.subscriptions.get(slug) is not subscription:
            raise Superseded(slug)
        if self.writer is not None and not self.writer.is_open:
            raise Superseded(slug)

    async def wait_for_reader(self, slug: str, subscription: Subscription) -> None:
        """Return once the client is within its send budget (at once, usually); a client that
        stays behind LIVECHARTS_SLOW_READER_SECONDS is closed with 4008, as on the live path."""
        self.check_current(slug, subscription)
        if self.writer is None:
            return  # plain ASGI sends: the server applies its own flow control
        while self.is_behind():
            self.check_current(slug, subscription)
            # Polled at the tick: Twisted's buffer is free to read, the kernel's is cached.
            await asyncio.sleep(settings.LIVECHARTS_TICK_MS / 1000)
        self.check_current(slug, subscription)

    async def write_text(self, text: str) -> None:
        """A frame of this socket's own (not the hub's), in order with the hub's frames."""
        if self.writer is not None:
            self.writer.write(prepare(text))
        else:
            await self.send(text_data=text)

    async def write_shared(self, text: str, prepared: PreparedMessage) -> None:
        """write_text for a frame already framed for the wire (`prepared`: `text`, framed)."""
        if self.writer is not None:
            self.writer.write(prepared)
        else:
            await self.send(text_data=text)

    async def unsubscribe(self, request: dict[str, Any]) -> None:
        slug = request["stream"]
        await self.drop(slug)
        await self.send(text_data=encode({"op": "unsubscribed", "stream": slug}))

    # Access taken away ----------------------------------------------------------------------

    def watch(self, slug: str, *, since: float) -> Watch:
        viewing = Viewing(session_key=self.session_key, user_id=self.user_id, slug=slug)
        watch = get_watcher().watch(viewing, since=since)
        watch.revoked.add_done_callback(lambda revoked: self.revoked(slug, watch, revoked))
        return watch

    def revoked(self, slug: str, watch: Watch, revoked: asyncio.Future[Refusal]) -> None:
        subscription = self.subscriptions.get(slug)
        if revoked.cancelled() or subscription is None or subscription.watch is not watch:
            return
        # Nothing more of this stream from now on, even before the error frame is out (and a
        # backfill under way stops at its next frame).
        self.hub.leave_lane(self)
        del self.subscriptions[slug]
        self.pending.pop(slug, None)
        self.start(self.refuse(slug, subscription, revoked.result()))

    async def refuse(self, slug: str, subscription: Subscription, refusal: Refusal) -> None:
        if subscription.watch is not None:
            get_watcher().release(subscription.watch)
        if slug not in self.subscriptions:  # not subscribed again meanwhile
            await self.hub.leave(slug, self)
        message = {"op": "error", "code": refusal.code, "stream": slug, "message": refusal.message}
        await self.send(text_data=encode(message))

    # The hub's side (streams/delivery/hub.py) ------------------------------------------------------

    def offer(self, message: dict[str, Any]) -> bool:
        slug = message["stream"]
        subscription = self.subscriptions.get(slug)
        if subscription is None:
            return False  # unsubscribed while the batch was in flight
        key = message["key"]
        if type(key) is not tuple:
            key = tuple(key)  # a list after msgpack (the hub makes it a tuple once for all)
        last = subscription.last_sent
        if last is not None and subscription.held is None and last < key:
            # Live, and a newer batch (the usual case, once per socket per batch): pending.
            subscription.last_sent = key
            self.queue(slug, key, message["text"])
            return True
        if subscription.held is not None:
            # Backfilling: kept until the backfill is out (then compared with its last id).
            subscription.held.append((key, message["text"], message.get("prev")))
            self.bound(subscription.held)
            return False
        if subscription.last_sent is not None and key <= subscription.last_sent:
            return False  # already sent in the backfill
        if subscription.last_sent is None and message.get("prev") is not None:
            # Nothing sent yet (an empty window) and this batch follows one we never had (lost
            # on the live path): a client holding nothing applies any batch, so the points
            # before it would be missing for good. Send them from history first, held as in
            # a subscribe.
            subscription.held = [(key, message["text"], message.get("prev"))]
            self.start(self.refill(slug, subscription))
            return False
        subscription.last_sent = key
        self.queue(slug, key, message["text"])
        return True

    def queue(self, slug: str, key: IdKey, text: str) -> None:
        """A batch to send at the next tick, after the stream's others (at most
        MAX_PENDING_BATCHES of them: the oldest are dropped and counted)."""
        waiting = self.pending.get(slug)
        if waiting is None:
            self.pending[slug] = [(key, text)]
            return
        waiting.append((key, text))
        if len(waiting) > MAX_PENDING_BATCHES:
            self.bound(waiting)

    def start(self, coroutine: Any) -> None:
        """Run `coroutine` as this socket's task: cancelled and awaited at disconnect."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def refill(self, slug: str, subscription: Subscription) -> None:
        """The window from its start, for a live subscription that had nothing of it."""
        assert subscription.retention is not None
        try:
            pages = pages_since(
                slug, after=None, retention=subscription.retention, stored=subscription.stored
            )
            async with contextlib.aclosing(pages):
                last, _ = await self.send_backfill(slug, after=None, pages=pages, subscription=subscription)
        except Superseded:
            return
        except Exception:
            log.exception("socket: could not refill stream %s; the client re-asks on the next batch", slug)
            last = None
        if self.subscriptions.get(slug) is subscription:
            self.go_live(slug, subscription, last, may_refill=False)

    def bound(self, waiting: list[Any]) -> None:
        if len(waiting) > MAX_PENDING_BATCHES:
            self.hub.stats.dropped_batches += len(waiting) - MAX_PENDING_BATCHES
            del waiting[: len(waiting) - MAX_PENDING_BATCHES]

    def take_texts(self) -> list[str] | None:
        pending = self.pending
        if not pending:
            return []
        if self.writer is not None and self.is_behind():
            return None
        self.pending = {}
        if len(pending) == 1:  # one stream (the usual case)
            (waiting,) = pending.values()
            if len(waiting) == 1:
                return [waiting[0][1]]
            return [text for _, text in waiting]
        return [text for waiting in pending.values() for _, text in waiting]

    def is_behind(self) -> bool:
        """Whether the client has stopped reading; drops it when that lasts too long."""
        assert self.writer is not None
        if not self.writer.behind(settings.LIVECHARTS_SEND_BUDGET_BYTES):
            self.behind_since = None
            return False
        now = time.monotonic()
        if self.behind_since is None:
            self.behind_since = now
        elif now - self.behind_since > settings.LIVECHARTS_SLOW_READER_SECONDS and self.writer.is_open:
            # The client reconnects later and back-fills from `after`.
            seconds = settings.LIVECHARTS_SLOW_READER_SECONDS
            self.hub.stats.slow_closes += 1
            self.writer.close(CLOSE_TOO_SLOW, f"not reading for {seconds} s: reconnect")
            self.pending = {}
        return True

    def lane_entry(self) -> tuple[str, IdKey, LaneParts] | None:
        """For the hub, once a frame is written: this socket's one stream, its last id sent and
        its writer's parts, when nothing but that stream's live batches is to come (so the hub
        may carry it in the stream's lane), else None."""
        if (
            self.writer is None
            or len(self.subscriptions) != 1
            or self.pending
            or self.behind_since is not None
            or self.refused
        ):
            return None
        ((slug, subscription),) = self.subscriptions.items()
        if subscription.held is not None or subscription.last_sent is None:
            return None
        parts = self.writer.lane_parts()
        return None if parts is None else (slug, subscription.last_sent, parts)

    def left_lane(self, slug: str, *, last: IdKey | None, batches: list[tuple[IdKey, str]]) -> None:
        """The hub took this socket out of `slug`'s lane: the lane had sent it up to `last`,
        and owes it `batches` (pending from now on)."""
        subscription = self.subscriptions.get(slug)
        if subscription is None:
            return
        subscription.last_sent = last
        if batches:
            self.pending[slug] = waiting = list(batches)
            self.bound(waiting)

    def write_frame(self, frame: Frame) -> bool:
        """The hub's hot path: the frame written now (True), or False: use `send_frame`."""
        writer = self.writer
        if writer is None:
            return False
        writer.write(frame.prepared)
        return True

    async def send_frame(self, frame: Frame) -> None:
        if self.writer is not None:
            self.writer.write(frame.prepared)
        else:
            await self.send(text_data=frame.text)

    def going_away(self) -> None:
        if self.writer is not None:
            self.writer.going_away()

    async def send_status(self, message: dict[str, Any]) -> None:
        subscription = self.subscriptions.get(message["stream"])
        if subscription is None:
            return
        if subscription.held is not None:
            subscription.held_status = message["status"]  # after `subscribed` and the backfill
            return
        await self.send(text_data=encode({"op": "status", "stream": message["stream"], **message["status"]}))


def uncount(counter: Counter[Any], key: Any) -> None:
    if key is None:
        return
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
