"""The browser socket at /ws/: subscribe, backfill, then forward live batches.

Thin on purpose: parse, ask access.py, join or leave groups, forward the pre-encoded batch
texts from broadcast. At most one points frame per socket per tick.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from streams.access import viewable_stream
from streams.broadcast import group_name
from streams.frames import encode, encode_batch, points_frame
from streams.history import Retention, get_history
from streams.ids import IdKey, parse_id

MAX_MESSAGE_BYTES = 64 * 1024
MAX_STREAMS_PER_SOCKET = 100
# Client messages: a burst (a dashboard subscribing at once), then a steady refill per second.
RATE_BURST = 60
RATE_PER_SECOND = 20.0
# Batches of different streams from one broadcast tick arrive a moment apart: wait this long
# for them to share a frame.
COALESCE_SECONDS = 0.002


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


class StreamConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.pending: dict[str, list[str]] = {}
        self.tick = settings.LIVECHARTS_TICK_MS / 1000
        self.last_frame_at = 0.0
        self.flush_handle: asyncio.TimerHandle | None = None
        self.flush_task: asyncio.Task[None] | None = None
        self.tokens = float(RATE_BURST)
        self.tokens_at = time.monotonic()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
        for slug in list(getattr(self, "subscriptions", {})):
            await self.channel_layer.group_discard(group_name(slug), self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Hot path: channels' dispatch hops to a thread (aclose_old_connections) on every
        # message; live batches touch no database, so they skip it (DESIGN.md, what costs what).
        kind = message["type"]
        if kind == "stream.points":
            self.stream_points(message)
        elif kind == "stream.status":
            await self.stream_status(message)
        else:
            await super().dispatch(message)

    # Client messages ---------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
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
        if not isinstance(request, dict):
            raise BadRequest("bad_request", "a message must be a JSON object")
        op = request.get("op")
        if op is None:
            raise BadRequest("bad_request", "missing field 'op'")
        if op not in ("subscribe", "unsubscribe"):
            raise BadRequest("bad_request", f"unknown op {op!r} (known: subscribe, unsubscribe)")
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
        if slug not in self.subscriptions:
            # Join before reading history so no batch falls between backfill and live.
            await self.channel_layer.group_add(group_name(slug), self.channel_name)
        # A re-subscribe (the client noticed a lost batch) restarts this stream from `after`.
        self.subscriptions[slug] = subscription = Subscription(last_sent=None)
        self.pending.pop(slug, None)
        history = get_history()
        backfill = await history.read(slug, after=after, retention=Retention.of(stream))
        status = await history.get_status(slug)
        await self.send(text_data=encode({"op": "subscribed", "stream": slug, "status": status}))
        if backfill.gap:
            await self.send(text_data=encode({"op": "gap", "stream": slug}))
        if backfill.entries:
            prev = None if backfill.gap else after
            text = encode_batch(slug=slug, prev=prev, entries=backfill.entries)
            await self.send(text_data=points_frame([text]))
            subscription.last_sent = parse_id(backfill.entries[-1].id)
        elif after is not None and not backfill.gap:
            subscription.last_sent = parse_id(after)

    async def unsubscribe(self, request: dict[str, Any]) -> None:
        slug = request["stream"]
        if self.subscriptions.pop(slug, None) is not None:
            await self.channel_layer.group_discard(group_name(slug), self.channel_name)
        self.pending.pop(slug, None)
        await self.send(text_data=encode({"op": "unsubscribed", "stream": slug}))

    # Layer events ------------------------------------------------------------------------

    def stream_points(self, message: dict[str, Any]) -> None:
        subscription = self.subscriptions.get(message["stream"])
        if subscription is None:
            return  # unsubscribed while the batch was in flight
        key = tuple(message["key"])  # a list after msgpack
        if subscription.last_sent is not None and key <= subscription.last_sent:
            return  # already sent in the backfill
        subscription.last_sent = key
        self.pending.setdefault(message["stream"], []).append(message["text"])
        self.schedule_flush()

    async def stream_status(self, message: dict[str, Any]) -> None:
        if message["stream"] in self.subscriptions:
            await self.send(
                text_data=encode({"op": "status", "stream": message["stream"], **message["status"]})
            )

    def schedule_flush(self) -> None:
        if self.flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(COALESCE_SECONDS, self.last_frame_at + self.tick - loop.time())
        self.flush_handle = loop.call_later(delay, self.start_flush)

    def start_flush(self) -> None:
        self.flush_handle = None
        self.flush_task = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        if not self.pending:
            return
        texts = [text for batch_texts in self.pending.values() for text in batch_texts]
        self.pending = {}
        self.last_frame_at = asyncio.get_running_loop().time()
        # Batches arriving while this sends schedule the next flush, a tick after this one.
        await self.send(text_data=points_frame(texts))
