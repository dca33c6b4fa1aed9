"""A stream's inbox: points pushed through the API, waiting for the worker that runs the
stream's push feed (streams/ingest/feeds/push.py). The API's side is streams/ingest/push_api.py.

Why not publish from the web process: ids are given by the one process that owns a stream
(streams/broadcast.py keeps an id clock per stream), and with several daphne processes any of
them may take a push. So the API only appends the request's points to the stream's inbox; the ingest
worker holding the stream's lease drains it and publishes, like any other feed.

With Redis the inbox is a Redis Stream (`<prefix>:inbox:<slug>`, one entry per request, so a
request is taken whole or not at all); in the embedded mode it is an in-process queue on the
one event loop that serves both the API and the worker.

What a worker takes goes through three steps: `take` (read, still in the inbox), `handed`
(given to broadcast: later takes in this process skip it) and `stored` (broadcast put its points
in history: only now it is deleted, in one XDEL per stream for all that a tick stored). A worker
killed before `stored` leaves the entry for the next owner of the stream, so nothing answered
202 is lost; killed between the store and the XDEL, the next owner publishes it again
(at-least-once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from streams.core import runtime
from streams.core.points import Point
from streams.core.tasks import cancel_and_wait
from streams.storage.redis_clients import loop_client, parse_address

log = logging.getLogger(__name__)

# Requests waiting per stream before the API answers 503: a stopped worker must not let a
# busy pusher fill Redis or memory.
MAX_WAITING_REQUESTS = 10_000
# A failed acknowledgement (Redis blip) is tried again after this long.
ACK_RETRY_SECONDS = 1.0
# A stop waits this long for its acknowledgements (within the worker's 10 s to exit).
SETTLE_SECONDS = 2.0


class InboxFull(Exception):
    """The stream's inbox holds MAX_WAITING_REQUESTS: its worker is not keeping up or not running."""


class InboxUnavailable(Exception):
    """Redis did not take the request, or took it without a replica confirming it: the caller
    answers 503 and the pusher sends again (an identical repeat is dropped by the time rules)."""


# Under Sentinel a master may die before its replica has a request it answered: a failover
# then loses a point the pusher was told is kept. So a push is acknowledged once the replicas
# have it (Redis WAIT, up to `ack_replicas` of those connected), within this long. A master
# with no replica connected (just promoted, its old master dead) acknowledges alone: with
# nothing to fail over to, it is as safe as it gets, and pushes keep flowing.
ACK_REPLICA_TIMEOUT_MS = 1000
# How long the count of connected replicas (ROLE) is trusted before it is asked again.
REPLICA_COUNT_SECONDS = 1.0


@dataclass(frozen=True)
class Taken:
    """Points the worker took from an inbox (`take`); `receipt` names them for `handed` and `stored`."""

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
    async def take(self, slug: str, *, wait: float) -> Taken | None:
        """Every waiting point not yet handed to broadcast, oldest first, waiting up to `wait`
        seconds for one; None if none. Taking twice without `handed` gives the same points."""

    @abstractmethod
    def handed(self, slug: str, taken: Taken) -> None:
        """These points were given to broadcast: later takes in this process skip them."""

    def stored(self, slug: str, taken: Taken) -> None:
        """Broadcast stored these points in history: acknowledge them soon (batched)."""
        return None

    async def settle(self) -> None:
        """Send every acknowledgement still queued (the stop path)."""
        return None

    @abstractmethod
    async def done(self, slug: str, taken: Taken) -> None:
        """Acknowledge these points now: they are in history and may leave the inbox."""


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

    async def take(self, slug: str, *, wait: float) -> Taken | None:
        queue = self._queue(slug)
        if not queue.requests:
            queue.arrived.clear()
            try:
                async with asyncio.timeout(wait):
                    await queue.arrived.wait()
            except TimeoutError:
                return None
        # Left in the queue until handed to broadcast: a feed cancelled in between (a stop,
        # an edit in admin) leaves them for the stop's drain or the next feed task.
        points = [point for request in queue.requests for point in request]
        return Taken(points, receipt=len(queue.requests))

    def handed(self, slug: str, taken: Taken) -> None:
        # In-process: broadcast's queue dies with the process as this one would, so the points
        # may leave now (a stop flushes broadcast; no later acknowledgement protects more).
        requests = self._queue(slug).requests
        for _ in range(min(taken.receipt or 0, len(requests))):
            requests.popleft()

    async def done(self, slug: str, taken: Taken) -> None:
        return None


class RedisInbox(Inbox):
    # Per take, so one worker round stays bounded however far behind it is.
    MAX_TAKE = 1000

    def __init__(self, url: str, *, prefix: str, ack_replicas: int = 0) -> None:
        self.url = url
        self.prefix = prefix
        self.ack_replicas = ack_replicas
        # (when counted, replicas connected to the master), for the WAIT of each push.
        self._replicas: tuple[float, int] | None = None
        parse_address(url)  # a malformed address fails here, not at the first command
        # Per stream, the id of the last entry handed to broadcast; takes read after it.
        self._handed: dict[str, bytes] = {}
        # Entry ids whose points are in history, waiting for their XDEL.
        self._acks: dict[str, list[bytes]] = {}
        self._acking: asyncio.Task[None] | None = None

    def _redis(self) -> Any:
        return loop_client(self.url, user="inbox")

    def key(self, slug: str) -> str:
        return f"{self.prefix}:inbox:{slug}"

    async def put(self, slug: str, points: Sequence[Point]) -> None:
        client = self._redis()
        # Not atomic with the XADD: two racing requests may both pass at the limit, which is
        # harmless (it bounds a runaway, it is not a quota).
        if await client.xlen(self.key(slug)) >= MAX_WAITING_REQUESTS:
            raise InboxFull(slug)
        wanted = await self._replicas_to_wait_for(client)
        if not wanted:
            await client.xadd(self.key(slug), {"p": encode_points(points)})
            return
        # WAIT counts the replicas that have this connection's writes: one pipeline, one connection.
        async with client.pipeline(transaction=False) as pipe:
            pipe.xadd(self.key(slug), {"p": encode_points(points)})
            pipe.execute_command("WAIT", wanted, ACK_REPLICA_TIMEOUT_MS)
            _, confirmed = await pipe.execute()
        if int(confirmed) < wanted:
            self._replicas = None  # ask again: one may have left
            raise InboxUnavailable(f"{confirmed} of {wanted} replicas confirmed the request")

    async def _replicas_to_wait_for(self, client: Any) -> int:
        if not self.ack_replicas:
            return 0
        now = time.monotonic()
        if self._replicas is None or now - self._replicas[0] > REPLICA_COUNT_SECONDS:
            role = await client.execute_command("ROLE")
            if role[0] not in (b"master", "master"):
                raise InboxUnavailable("the Redis answering is not a master (failing over)")
            self._replicas = (now, len(role[2]))
        return min(self.ack_replicas, self._replicas[1])

    async def take(self, slug: str, *, wait: float) -> Taken | None:
        # From the start, or after what this process handed to broadcast: entries leave only
        # once stored, so a worker that died before leaves them for the next owner (who reads
        # from the start), and entries handed but not yet stored are not published twice.
        found = await self._redis().xread(
            {self.key(slug): self._handed.get(slug, b"0-0")},
            count=self.MAX_TAKE,
            block=max(1, int(wait * 1000)),
        )
        if not found:
            return None
        _, entries = found[0]
        points = [point for _, fields in entries for point in decode_points(fields[b"p"])]
        return Taken(points, receipt=[entry_id for entry_id, _ in entries])

    def handed(self, slug: str, taken: Taken) -> None:
        if taken.receipt:
            self._handed[slug] = taken.receipt[-1]

    def stored(self, slug: str, taken: Taken) -> None:
        if not taken.receipt:
            return
        self._acks.setdefault(slug, []).extend(taken.receipt)
        # One task sends what every stream's batch of a tick stored (broadcast calls `stored`
        # for all of them in one go), not a round trip per request.
        if self._acking is None or self._acking.done():
            self._acking = asyncio.get_running_loop().create_task(self._send_acks())

    async def _send_acks(self) -> None:
        while self._acks:
            acks, self._acks = self._acks, {}
            slugs = list(acks)
            results = await asyncio.gather(
                *(self.done(slug, Taken([], receipt=acks[slug])) for slug in slugs),
                return_exceptions=True,
            )
            failed = False
            for slug, result in zip(slugs, results, strict=True):
                if isinstance(result, BaseException):
                    failed = True
                    log.warning("stream %s: could not acknowledge pushed points (%s); retrying", slug, result)
                    self._acks.setdefault(slug, [])[:0] = acks[slug]
            if failed:
                await asyncio.sleep(ACK_RETRY_SECONDS)

    async def settle(self) -> None:
        task = self._acking
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), SETTLE_SECONDS)
        except TimeoutError:
            # Redis is not answering: the entries stay, and the next owner publishes them
            # again (at-least-once), rather than a stop that never ends.
            log.warning("could not acknowledge pushed points at stop: %d streams left", len(self._acks))
            await cancel_and_wait(task)

    async def done(self, slug: str, taken: Taken) -> None:
        if taken.receipt:
            await self._redis().xdel(self.key(slug), *taken.receipt)


def get_inbox() -> Inbox:
    """The process's inbox backend, chosen by REDIS_URL like history's."""
    return runtime.shared("ingest.inbox", _new_inbox)


def _new_inbox() -> Inbox:
    if settings.REDIS_URL:
        return RedisInbox(
            settings.REDIS_URL,
            prefix=settings.LIVECHARTS_REDIS_PREFIX,
            ack_replicas=getattr(settings, "LIVECHARTS_REDIS_ACK_REPLICAS", 0),
        )
    return MemoryInbox()
