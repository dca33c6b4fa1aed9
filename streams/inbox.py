"""Points pushed through the API, waiting for the worker that runs the stream's push feed.

Why not publish from the web process: ids are given by the one process that owns a stream
(broadcast.py keeps an id clock per stream), and with several daphne processes any of them may
take a push. So the API only appends the request's points to the stream's inbox; the ingest
worker holding the stream's lease drains it and publishes, like any other feed.

With Redis the inbox is a Redis Stream (`<prefix>:inbox:<slug>`, one entry per request, so a
request is taken whole or not at all); in the embedded mode it is an in-process queue on the
one event loop that serves both the API and the worker.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from streams.feeds.base import Point
from streams.redis_clients import LoopClients

# Requests waiting per stream before the API answers 503: a stopped worker must not let a
# busy pusher fill Redis or memory.
MAX_WAITING_REQUESTS = 10_000


class InboxFull(Exception):
    """The stream's inbox holds MAX_WAITING_REQUESTS: its worker is not keeping up or not running."""


@dataclass(frozen=True)
class Delivery:
    """Points the worker took from an inbox; `receipt` acknowledges them once published."""

    points: list[Point]
    receipt: Any = None


def encode_points(points: Sequence[Point]) -> str:
    return json.dumps([[point.t, point.values] for point in points], separators=(",", ":"))


def decode_points(text: str | bytes) -> list[Point]:
    return [Point(t=t, values=values) for t, values in json.loads(text)]


class Inbox(ABC):
    @abstractmethod
    async def put(self, slug: str, points: Sequence[Point]) -> None:
        """Queue one request's points, all together. Raises InboxFull."""

    @abstractmethod
    async def take(self, slug: str, *, wait: float) -> Delivery | None:
        """Every waiting point, oldest first, waiting up to `wait` seconds for one; None if none."""

    @abstractmethod
    async def done(self, slug: str, delivery: Delivery) -> None:
        """Acknowledge a delivery: its points are published and may leave the inbox."""


@dataclass
class _Queue:
    requests: deque[list[Point]] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryInbox(Inbox):
    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    def _queue(self, slug: str) -> _Queue:
        queue = self._queues.get(slug)
        if queue is None:
            queue = self._queues[slug] = _Queue()
        return queue

    async def put(self, slug: str, points: Sequence[Point]) -> None:
        queue = self._queue(slug)
        if len(queue.requests) >= MAX_WAITING_REQUESTS:
            raise InboxFull(slug)
        queue.requests.append(list(points))
        queue.arrived.set()

    async def take(self, slug: str, *, wait: float) -> Delivery | None:
        queue = self._queue(slug)
        if not queue.requests:
            queue.arrived.clear()
            try:
                async with asyncio.timeout(wait):
                    await queue.arrived.wait()
            except TimeoutError:
                return None
        points = [point for request in queue.requests for point in request]
        # In-process: nothing survives a crash anyway, so the points leave the queue now.
        queue.requests.clear()
        return Delivery(points)

    async def done(self, slug: str, delivery: Delivery) -> None:
        return None


class RedisInbox(Inbox):
    # Per take, so one worker round stays bounded however far behind it is.
    MAX_TAKE = 1000

    def __init__(self, url: str, *, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._clients = LoopClients(url)

    def _redis(self) -> Any:
        return self._clients.get()

    def key(self, slug: str) -> str:
        return f"{self.prefix}:inbox:{slug}"

    async def put(self, slug: str, points: Sequence[Point]) -> None:
        client = self._redis()
        # Not atomic with the XADD: two racing requests may both pass at the limit, which is
        # harmless (it bounds a runaway, it is not a quota).
        if await client.xlen(self.key(slug)) >= MAX_WAITING_REQUESTS:
            raise InboxFull(slug)
        await client.xadd(self.key(slug), {"p": encode_points(points)})

    async def take(self, slug: str, *, wait: float) -> Delivery | None:
        # Always from the start: entries leave only when `done` deletes them, so a worker that
        # died between take and done leaves them for the next owner of the stream.
        found = await self._redis().xread(
            {self.key(slug): "0-0"}, count=self.MAX_TAKE, block=max(1, int(wait * 1000))
        )
        if not found:
            return None
        _, entries = found[0]
        points = [point for _, fields in entries for point in decode_points(fields[b"p"])]
        return Delivery(points, receipt=[entry_id for entry_id, _ in entries])

    async def done(self, slug: str, delivery: Delivery) -> None:
        if delivery.receipt:
            await self._redis().xdel(self.key(slug), *delivery.receipt)


_inbox: Inbox | None = None


def get_inbox() -> Inbox:
    """The process's inbox backend, chosen by REDIS_URL like history's."""
    global _inbox
    if _inbox is None:
        if settings.REDIS_URL:
            _inbox = RedisInbox(settings.REDIS_URL, prefix=settings.LIVECHARTS_REDIS_PREFIX)
        else:
            _inbox = MemoryInbox()
    return _inbox


def reset_inbox() -> None:
    """Forget the chosen backend (tests switch REDIS_URL between runs)."""
    global _inbox
    _inbox = None
