"""The one way points enter: give ids, append to history, coalesce per tick, group_send.

Nothing else calls the channel layer's send side. Feeds (and later the push API) call
`publish()`; once per tick every stream that moved is stored as one batch, encoded to JSON
once, and sent to its group as one message. Consumers join those texts into frames as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from streams.feeds.base import Point
from streams.frames import Entry, encode_batch
from streams.history import History, Retention, get_history
from streams.ids import IdClock, format_id, parse_id
from streams.store import Persister

log = logging.getLogger(__name__)

# A stream whose history append keeps failing keeps at most this many points waiting.
MAX_PENDING_POINTS = 100_000
# The ticker stops after this many idle ticks and starts again on the next publish.
IDLE_TICKS_BEFORE_STOP = 40


def group_name(slug: str) -> str:
    """The channel-layer group of a stream's viewers (slugs are [-a-zA-Z0-9_], all allowed)."""
    return f"stream.{slug}"


@dataclass
class _Pending:
    retention: Retention
    store: bool = False
    points: list[Point] = field(default_factory=list)


class Broadcaster:
    def __init__(
        self, *, history: History, tick_seconds: float, layer: Any = None, persister: Persister | None = None
    ) -> None:
        self.history = history
        # Writes sent batches to the database (streams/store.py); None keeps only the window.
        self.persister = persister
        self.tick_seconds = tick_seconds
        self.layer = layer if layer is not None else get_channel_layer()
        self._pending: dict[str, _Pending] = {}
        self._clocks: dict[str, IdClock] = {}
        self._last_ids: dict[str, str | None] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    def publish(
        self, slug: str, points: Iterable[Point], *, retention: Retention, store: bool = False
    ) -> None:
        """Queue points for the next tick. Non-finite values become gaps (None). With `store`,
        the sent batch is also written to the database."""
        pending = self._pending.get(slug)
        if pending is None:
            pending = self._pending[slug] = _Pending(retention)
        pending.retention = retention
        pending.store = store
        pending.points.extend(_finite(point) for point in points)
        if len(pending.points) > MAX_PENDING_POINTS:
            dropped = len(pending.points) - MAX_PENDING_POINTS
            del pending.points[:dropped]
            log.warning("stream %s: dropped %d points waiting for history", slug, dropped)
        self._ensure_ticker()

    async def publish_status(self, slug: str, status: dict[str, Any], *, notify: bool = True) -> None:
        """Store a stream's health and, with `notify`, tell its viewers (a refresh of an
        unchanged status only keeps it fresh for pages, no frame)."""
        status = {**status, "at": time.time()}
        await self.history.set_status(slug, status)
        if not notify:
            return
        await self.layer.group_send(
            group_name(slug), {"type": "stream.status", "stream": slug, "status": status}
        )

    async def flush(self) -> None:
        """Send every stream that moved since the last tick (the ticker calls this)."""
        async with self._flush_lock:
            pending, self._pending = self._pending, {}
            for slug, item in pending.items():
                if not item.points:
                    continue
                try:
                    await self._send_batch(slug, item)
                except Exception:
                    # Keep the points for the next tick: a Redis blip must not lose them.
                    log.exception("stream %s: could not store or send a batch; retrying", slug)
                    waiting = self._pending.setdefault(slug, _Pending(item.retention, item.store))
                    waiting.points[:0] = item.points

    async def _send_batch(self, slug: str, item: _Pending) -> None:
        clock = self._clocks.get(slug)
        if clock is None:
            last = await self.history.last_id(slug)
            self._last_ids[slug] = last
            clock = self._clocks[slug] = IdClock(parse_id(last) if last else None)
        entries = [Entry(id=format_id(clock.next()), point=point) for point in item.points]
        await self.history.append(slug, entries, retention=item.retention)
        if item.store and self.persister is not None:
            self.persister.add(slug, entries)
        prev = self._last_ids.get(slug)
        self._last_ids[slug] = entries[-1].id
        text = encode_batch(slug=slug, prev=prev, entries=entries)
        # `key` is the last id already parsed, so consumers compare it per socket without a regex.
        await self.layer.group_send(
            group_name(slug),
            {
                "type": "stream.points",
                "stream": slug,
                "id": entries[-1].id,
                "key": clock.last,
                "prev": prev,
                "text": text,
            },
        )

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._run_ticker())

    async def _run_ticker(self) -> None:
        idle = 0
        while idle < IDLE_TICKS_BEFORE_STOP:
            # Sleep to the next tick boundary so all processes tick roughly together.
            await asyncio.sleep(self.tick_seconds - (time.time() % self.tick_seconds))
            if any(item.points for item in self._pending.values()):
                idle = 0
                await self.flush()
            else:
                idle += 1

    async def close(self) -> None:
        """Flush what is queued and stop the ticker."""
        if self._ticker is not None:
            # Cancel it only between flushes: a flush cut short would lose the batches it had
            # taken (seen as the last pushed point missing after an ingest restart).
            async with self._flush_lock:
                self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.flush()
        if self.persister is not None:
            await self.persister.close()

    def forget(self, slug: str) -> None:
        """Drop cached ids of a stream (its history was reset)."""
        self._clocks.pop(slug, None)
        self._last_ids.pop(slug, None)


def _finite(point: Point) -> Point:
    values = point.values
    if all(value is None or math.isfinite(value) for value in values.values()):
        return point
    return Point(
        t=point.t, values={k: v if v is None or math.isfinite(v) else None for k, v in values.items()}
    )


_broadcasters: dict[asyncio.AbstractEventLoop, Broadcaster] = {}


def get_broadcaster() -> Broadcaster:
    """This event loop's broadcaster (one per process in practice; tests run many loops)."""
    loop = asyncio.get_running_loop()
    broadcaster = _broadcasters.get(loop)
    if broadcaster is None:
        for stale in [known for known in _broadcasters if known.is_closed()]:
            del _broadcasters[stale]
        broadcaster = _broadcasters[loop] = Broadcaster(
            history=get_history(),
            tick_seconds=settings.LIVECHARTS_TICK_MS / 1000,
            persister=Persister() if settings.LIVECHARTS_STORE_POINTS else None,
        )
    return broadcaster


def reset_broadcasters() -> None:
    """Forget every loop's broadcaster (tests switch history backends between runs)."""
    _broadcasters.clear()
