"""The browser socket at /ws/: subscribe, backfill, then forward live batches.

Thin on purpose: parse, ask access.py, join or leave a stream at this process's fan-out hub
(streams/fanout.py), which offers each live batch and asks for one frame per socket per tick.
Frames go straight to daphne's transport when there is one (streams/transport.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from streams.access import is_signed_in, viewable_stream
from streams.backfill import read_since
from streams.fanout import Frame, get_hub
from streams.frames import encode, encode_batch, points_frame
from streams.history import Retention, get_history
from streams.ids import IdKey, parse_id
from streams.revocation import Refusal, Viewer, Watch, get_watcher
from streams.transport import direct_writer

MAX_MESSAGE_BYTES = 64 * 1024
MAX_STREAMS_PER_SOCKET = 100
# Client messages: a burst (a dashboard subscribing at once), then a steady refill per second.
RATE_BURST = 60
RATE_PER_SECOND = 20.0
# Live batches held per stream for a socket that is behind; older ones are dropped and the
# client refills them through the `prev` chain.
MAX_PENDING_BATCHES = 200
# A reader more than LIVECHARTS_SEND_BUDGET_BYTES behind (written but not taken by its kernel)
# gets nothing more until it catches up; one that stays behind LIVECHARTS_SLOW_READER_SECONDS
# is closed with CLOSE_TOO_SLOW and back-fills when it reconnects.
# Open sockets per signed-in user in one process (tabs, dashboards); one more is closed.
MAX_SOCKETS_PER_USER = 30
# Close codes (docs/protocol.md); the client reconnects after either, with backoff.
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY_SOCKETS = 4029

# Open sockets per signed-in user id, in this process.
_sockets_per_user: Counter[Any] = Counter()


class BadRequest(Exception):
    def __init__(self, code: str, message: str, *, stream: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stream = stream


@dataclass
class Subscription:
    # The newest id this socket has been sent for the stream; older live batches are dropped.
    last_sent: IdKey | None
    # This process's access watcher re-checks the viewer (streams/revocation.py).
    watch: Watch | None = None


class StreamConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per socket: live batches come from the process's hub, so a
    # socket's own layer queue and receive loop would only cost memory and a Redis subscription.
    channel_layer_alias = "livecharts.sockets-have-no-layer-channel"

    async def connect(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        # Live batches not yet sent, per stream: (last id, pre-encoded text).
        self.pending: dict[str, list[tuple[IdKey, str]]] = {}
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
        await self.accept()
        if self.user_id is None:
            return
        if _sockets_per_user[self.user_id] >= MAX_SOCKETS_PER_USER:
            self.user_id = None  # not counted, so not uncounted at disconnect
            self.refused = True
            message = f"at most {MAX_SOCKETS_PER_USER} open sockets per user: close other tabs"
            await self.send(text_data=encode({"op": "error", "code": "rate_limited", "message": message}))
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        _sockets_per_user[self.user_id] += 1

    async def disconnect(self, code: int) -> None:
        hub = getattr(self, "hub", None)
        if hub is None:
            return
        if self.user_id is not None:
            _sockets_per_user[self.user_id] -= 1
            if _sockets_per_user[self.user_id] <= 0:
                del _sockets_per_user[self.user_id]
        hub.forget(self)
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
        try:
            self.take_token()
            request = self.parse(text_data, bytes_data)
            if request["op"] == "subscribe":
                await self.subscribe(request)
            else:
                await self.unsubscribe(request)
        except BadRequest as error:
            frame = {"op": "error", "code": error.code, "message": error.message}
            if error.stream is not None:
                frame["stream"] = error.stream
            await self.send(text_data=encode(frame))

    def take_token(self) -> None:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.tokens_at) * RATE_PER_SECOND)
        self.tokens_at = now
        if self.tokens < 1:
            raise BadRequest("rate_limited", f"more than {RATE_PER_SECOND:g} messages/s: slow down")
        self.tokens -= 1

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

    async def subscribe(self, request: dict[str, Any]) -> None:
        slug, after = request["stream"], request.get("after")
        if slug not in self.subscriptions and len(self.subscriptions) >= MAX_STREAMS_PER_SOCKET:
            raise BadRequest("too_large", f"at most {MAX_STREAMS_PER_SOCKET} streams per socket", stream=slug)
        stream, allowed = await database_sync_to_async(viewable_stream)(self.scope.get("user"), slug)
        if stream is None:
            raise BadRequest("not_found", f"no stream {slug!r}", stream=slug)
        if not allowed:
            raise BadRequest("forbidden", f"you may not see stream {slug!r}", stream=slug)
        # A re-subscribe (the client noticed a lost batch) restarts this stream from `after`.
        known = self.subscriptions.get(slug)
        self.subscriptions[slug] = subscription = Subscription(
            last_sent=None, watch=known.watch if known is not None else self.watch(slug)
        )
        self.pending.pop(slug, None)
        # Join before reading history so no batch falls between backfill and live.
        await self.hub.join(slug, self)
        # The window, else the database (a Redis restart empties the window), else a gap.
        segments = await read_since(
            slug, after=after, retention=Retention.of(stream), stored=stream.store_points
        )
        status = await get_history().get_status(slug)
        await self.send(text_data=encode({"op": "subscribed", "stream": slug, "status": status}))
        prev = after
        for segment in segments:
            if segment.gap:
                await self.send(text_data=encode({"op": "gap", "stream": slug}))
                prev = None
            if segment.entries:
                text = encode_batch(slug=slug, prev=prev, entries=segment.entries)
                await self.send(text_data=points_frame([text]))
                prev = segment.entries[-1].id
        if prev is not None:
            subscription.last_sent = parse_id(prev)
        # Batches that arrived while history was read and are in the backfill: not twice.
        if subscription.last_sent is not None and slug in self.pending:
            last = subscription.last_sent
            self.pending[slug] = [item for item in self.pending[slug] if item[0] > last]

    async def unsubscribe(self, request: dict[str, Any]) -> None:
        slug = request["stream"]
        await self.drop(slug)
        await self.send(text_data=encode({"op": "unsubscribed", "stream": slug}))

    # Access taken away ----------------------------------------------------------------------

    def watch(self, slug: str) -> Watch:
        watch = get_watcher().watch(Viewer(session_key=self.session_key, user_id=self.user_id, slug=slug))
        watch.revoked.add_done_callback(lambda revoked: self.revoked(slug, watch, revoked))
        return watch

    def revoked(self, slug: str, watch: Watch, revoked: asyncio.Future[Refusal]) -> None:
        subscription = self.subscriptions.get(slug)
        if revoked.cancelled() or subscription is None or subscription.watch is not watch:
            return
        # Nothing more of this stream from now on, even before the error frame is out.
        self.pending.pop(slug, None)
        subscription.last_sent = (2**63, 0)
        asyncio.get_running_loop().create_task(self.refuse(slug, revoked.result()))

    async def refuse(self, slug: str, refusal: Refusal) -> None:
        await self.drop(slug)
        message = {"op": "error", "code": refusal.code, "stream": slug, "message": refusal.message}
        await self.send(text_data=encode(message))

    # The hub's side (streams/fanout.py) ------------------------------------------------------

    def offer(self, message: dict[str, Any]) -> bool:
        slug = message["stream"]
        subscription = self.subscriptions.get(slug)
        if subscription is None:
            return False  # unsubscribed while the batch was in flight
        key = tuple(message["key"])  # a list after msgpack
        if subscription.last_sent is not None and key <= subscription.last_sent:
            return False  # already sent in the backfill
        subscription.last_sent = key
        waiting = self.pending.get(slug)
        if waiting is None:
            waiting = self.pending[slug] = []
        waiting.append((key, message["text"]))
        if len(waiting) > MAX_PENDING_BATCHES:
            self.hub.stats.dropped_batches += len(waiting) - MAX_PENDING_BATCHES
            del waiting[: len(waiting) - MAX_PENDING_BATCHES]
        return True

    def take_texts(self) -> list[str] | None:
        if not self.pending:
            return []
        if self.writer is not None and self.is_behind():
            return None
        texts = [text for waiting in self.pending.values() for _, text in waiting]
        self.pending = {}
        return texts

    def is_behind(self) -> bool:
        """Whether the client has stopped reading; drops it when that lasts too long."""
        assert self.writer is not None
        if self.writer.backlog_bytes() <= settings.LIVECHARTS_SEND_BUDGET_BYTES:
            self.behind_since = None
            return False
        now = time.monotonic()
        if self.behind_since is None:
            self.behind_since = now
        elif now - self.behind_since > settings.LIVECHARTS_SLOW_READER_SECONDS:
            # The client reconnects later and back-fills from `after`.
            seconds = settings.LIVECHARTS_SLOW_READER_SECONDS
            self.hub.stats.slow_closes += 1
            self.writer.close(CLOSE_TOO_SLOW, f"not reading for {seconds} s: reconnect")
            self.pending = {}
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
        if message["stream"] in self.subscriptions:
            await self.send(
                text_data=encode({"op": "status", "stream": message["stream"], **message["status"]})
            )
