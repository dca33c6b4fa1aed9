"""Backfills shared by the subscribers of a stream who ask for the same thing at once.

A daphne that dies sends its viewers back all at once, each asking for its stream's window
(`after` null) or for what followed the same last batch (every viewer of a stream held the same
one). Read and encoded per socket, that is a window read and its JSON per subscribe; here the
process's loop reads and encodes it once per (stream, after) and hands the same frame texts to
every subscriber asking while it is in use (until SHARE_SECONDS pass without one asking, or
its live tail reaches MAX_TAIL_BATCHES).

Exact by construction: the shared backfill follows the stream at the hub like a socket does,
joined before its window read, and appends each live batch the hub offers after what it read.
A subscriber joins the hub itself before it asks, so what the backfill holds when handed over
and what the hub holds for the subscriber from then on overlap and leave no gap (the consumer
drops the overlap, as with its own reads). A batch that does not follow the backfill's last
(lost on the live path) ends the sharing: later subscribers read for themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from autobahn.websocket.protocol import PreparedMessage

from streams.core import runtime
from streams.core.frames import batch_text, encode, points_frame
from streams.core.ids import IdKey, parse_id
from streams.core.points import Entry
from streams.core.retention import Retention
from streams.delivery.hub import Hub, get_hub
from streams.delivery.transport import prepare
from streams.storage.backfill import Segment
from streams.storage.window import get_history

log = logging.getLogger(__name__)

# How long after its last handout a shared backfill is kept for the next subscriber. It grows
# with the live batches meanwhile (at most MAX_TAIL_BATCHES of them, then it is read again):
# a reconnect storm, whose jitter and queue spread it over seconds, reads each stream's window
# about once (it expired a second after its read before: three reads per stream in a 3 s storm,
# a fifth of the surviving daphne's CPU in a 2,000-viewer storm of full backfills).
SHARE_SECONDS = 1.0
# Larger backfills are not kept (each subscriber pages through its own, bounded in memory).
MAX_SHARED_POINTS = 20_000
# Live batches appended to a shared backfill at most (20 per second at the default tick).
MAX_TAIL_BATCHES = 100


def backfill_slices(
    *, slug: str, prev: str | None, entries: Sequence[Entry], max_bytes: int
) -> Iterator[str]:
    """`entries` as points frames of at most `max_bytes` of UTF-8 each (a single point larger
    than that goes alone), each batch's `prev` the id before it. Slices are sized from the
    bytes per point seen so far, and halved when a frame comes out too large."""
    start = 0
    count = 64  # a probe; later slices are sized from what it weighed
    while start < len(entries):
        while True:
            chunk = entries[start : start + count]
            text = points_frame([batch_text(slug=slug, prev=prev, entries=chunk)])
            size = len(text.encode())
            if size <= max_bytes or len(chunk) == 1:
                break
            count = max(1, min(len(chunk) // 2, int(len(chunk) * max_bytes * 0.9 / size)))
        yield text
        prev = chunk[-1].id
        start += len(chunk)
        count = max(1, int(max_bytes * 0.9 * len(chunk) / size))


@dataclass(frozen=True, slots=True)
class Handout:
    """What a subscriber sends after joining the hub: its `subscribed` frame (`subscribed`,
    with `status`), then `frames` in order (gap and points frames); `last` is the newest id
    they hold (else `after`). `prepared` holds each of those frames framed for the wire
    (transport.prepare), `subscribed` first: made once for every subscriber it is handed to."""

    status: dict[str, Any] | None
    subscribed: str
    frames: list[str]
    prepared: list[PreparedMessage]
    points_frames: int
    last: IdKey | None


@dataclass(eq=False)
class SharedBackfill:
    """One (stream, after) backfill and the live batches since: a member of the hub."""

    slug: str
    max_bytes: int
    ready: asyncio.Future[None]
    status: dict[str, Any] | None = None
    frames: list[str] = field(default_factory=list)
    points_frames: int = 0
    last: IdKey | None = None
    # Live batch texts after `frames`, in order; `tail_frames` joins them once per change.
    tail: list[str] = field(default_factory=list)
    tail_frames: list[str] | None = None
    # The frames, the tail's and the `subscribed` frame framed for the wire, each made at its
    # first handout (and again when the tail or the status changes): a reconnect storm's
    # subscribers share them rather than each encoding a whole window's text again.
    prepared: list[PreparedMessage] | None = None
    tail_prepared: list[PreparedMessage] | None = None
    subscribed: tuple[dict[str, Any] | None, str, PreparedMessage] | None = None
    # Offered while the window was being read: sorted out against its last id once read.
    early: list[tuple[IdKey, IdKey | None, str]] = field(default_factory=list)
    usable: bool = True
    # More than MAX_SHARED_POINTS: kept (empty) until it expires, so that the subscribers
    # asking meanwhile read their own at once rather than each trying to share again.
    oversized: bool = False
    # Loop time until which it is kept: SHARE_SECONDS after its read, then after each handout.
    keep_until: float = 0.0

    def offer(self, message: dict[str, Any]) -> bool:
        key = tuple(message["key"])  # a list after msgpack
        prev = message.get("prev")
        item = (key, None if prev is None else parse_id(prev), message["text"])
        if not self.ready.done():
            self.early.append(item)
        elif self.usable:
            self.extend(item)
        return False  # nothing for the hub to send: this member is not a socket

    async def send_status(self, message: dict[str, Any]) -> None:
        self.status = message["status"]

    def extend(self, item: tuple[IdKey, IdKey | None, str]) -> None:
        key, prev, text = item
        if self.last is not None and key <= self.last:
            return  # already in the window read
        if prev != self.last or len(self.tail) >= MAX_TAIL_BATCHES:
            # A batch the hub never had: what followed `last` is not all here.
            self.usable = False
            return
        self.tail.append(text)
        self.tail_frames = None
        self.last = key

    def handout(self) -> Handout:
        if self.tail_frames is None:
            self.tail_frames = list(join_batches(self.tail, max_bytes=self.max_bytes))
            self.tail_prepared = [prepare(text) for text in self.tail_frames]
        if self.prepared is None:
            self.prepared = [prepare(text) for text in self.frames]
        if self.subscribed is None or self.subscribed[0] is not self.status:
            text = encode({"op": "subscribed", "stream": self.slug, "status": self.status})
            self.subscribed = (self.status, text, prepare(text))
        assert self.tail_prepared is not None
        _, subscribed, subscribed_prepared = self.subscribed
        return Handout(
            status=self.status,
            subscribed=subscribed,
            frames=self.frames + self.tail_frames,
            prepared=[subscribed_prepared, *self.prepared, *self.tail_prepared],
            points_frames=self.points_frames + len(self.tail_frames),
            last=self.last,
        )


def join_batches(texts: Sequence[str], *, max_bytes: int) -> Iterator[str]:
    """Batch texts as points frames of at most `max_bytes` (a larger batch goes alone)."""
    chunk: list[str] = []
    size = 0
    for text in texts:
        weight = len(text.encode()) + 1
        if chunk and size + weight > max_bytes - 32:
            yield points_frame(chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += weight
    if chunk:
        yield points_frame(chunk)


class SharedBackfills:
    """The loop's shared backfills, by (stream, after, retention, stored, frame size)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._entries: dict[tuple[Any, ...], SharedBackfill] = {}
        self._timers: dict[SharedBackfill, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Window reads made for sharing, and handouts given (for tests and /metrics).
        self.reads = 0
        self.handouts = 0

    async def get(
        self,
        slug: str,
        *,
        after: str | None,
        retention: Retention,
        stored: bool,
        max_bytes: int,
        pages: Callable[[], AsyncIterator[Segment]],
    ) -> Handout | None:
        """The shared backfill for a subscriber that has joined the hub for `slug`, reading
        it (with `pages`) when no one has lately; None when it cannot be shared (too large,
        a lost batch, a failed read): the subscriber then reads its own."""
        key = (slug, after, retention, stored, max_bytes)
        entry = self._entries.get(key)
        if entry is None:
            loop = asyncio.get_running_loop()
            entry = SharedBackfill(slug=slug, max_bytes=max_bytes, ready=loop.create_future())
            self._entries[key] = entry
            task = loop.create_task(self._fill(key, entry, after=after, pages=pages))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(entry.ready)
        if not entry.usable:
            if not entry.oversized:
                self._forget(key, entry)
            return None
        self.handouts += 1
        entry.keep_until = asyncio.get_running_loop().time() + SHARE_SECONDS
        return entry.handout()

    async def _fill(
        self,
        key: tuple[Any, ...],
        entry: SharedBackfill,
        *,
        after: str | None,
        pages: Callable[[], AsyncIterator[Segment]],
    ) -> None:
        """Join, read the status and the window, encode; expire after SHARE_SECONDS. Its own
        task: a subscriber that goes away meanwhile does not cancel the others' read."""
        joined = False
        try:
            await self.hub.join(entry.slug, entry)
            joined = True
            entry.status = await get_history().get_status(entry.slug)
            self.reads += 1
            await self._read(entry, after=after, pages=pages())
        except Exception:
            log.exception("shared backfill of %s: read failed; subscribers read their own", entry.slug)
            entry.usable = False
        finally:
            early, entry.early = entry.early, []
            for item in early:
                if entry.usable:
                    entry.extend(item)
            if not entry.ready.done():
                entry.ready.set_result(None)
            if not entry.usable:
                if not entry.oversized:
                    self._forget(key, entry)
                if joined:
                    await self.hub.leave(entry.slug, entry)
        if entry.usable or entry.oversized:
            loop = asyncio.get_running_loop()
            entry.keep_until = max(entry.keep_until, loop.time() + SHARE_SECONDS)
            self._timers[entry] = loop.call_at(entry.keep_until, self._expire, key, entry)

    async def _read(self, entry: SharedBackfill, *, after: str | None, pages: AsyncIterator[Segment]) -> None:
        prev, count = after, 0
        async with contextlib.aclosing(pages):
            async for segment in pages:
                if segment.gap:
                    entry.frames.append(encode({"op": "gap", "stream": entry.slug}))
                    prev = None
                if not segment.entries:
                    continue
                count += len(segment.entries)
                if count > MAX_SHARED_POINTS:
                    entry.usable, entry.oversized = False, True
                    entry.frames, entry.points_frames = [], 0
                    return
                for text in backfill_slices(
                    slug=entry.slug, prev=prev, entries=segment.entries, max_bytes=entry.max_bytes
                ):
                    entry.frames.append(text)
                    entry.points_frames += 1
                prev = segment.entries[-1].id
        entry.last = parse_id(prev) if prev is not None else None

    def _forget(self, key: tuple[Any, ...], entry: SharedBackfill) -> None:
        if self._entries.get(key) is entry:
            del self._entries[key]

    def _expire(self, key: tuple[Any, ...], entry: SharedBackfill) -> None:
        loop = asyncio.get_running_loop()
        if entry.usable and loop.time() < entry.keep_until:
            # Handed out meanwhile: kept until SHARE_SECONDS after the last handout (one timer
            # per entry, moved here rather than at every handout).
            self._timers[entry] = loop.call_at(entry.keep_until, self._expire, key, entry)
            return
        self._timers.pop(entry, None)
        self._forget(key, entry)
        entry.usable = False
        task = asyncio.get_running_loop().create_task(self.hub.leave(entry.slug, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._entries.clear()


def get_shared_backfills() -> SharedBackfills:
    """This loop's shared backfills (with the loop's hub)."""
    return runtime.get(
        "delivery.shared_backfills", lambda: SharedBackfills(get_hub()), close=SharedBackfills.close
    )
