"""The ingest supervisor: one task per enabled pulled stream, restarted with backoff.

It re-reads the stream table every second, so streams created, edited, disabled or deleted
in admin are picked up without a restart. With Redis, several workers split the streams by
lease (streams/leases.py) and take over a dead worker's streams when its leases expire.
Used by `manage.py ingest` (its own process) and by `manage.py serve` (on daphne's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async

from streams.broadcast import Broadcaster, get_broadcaster
from streams.feeds import build_feed
from streams.history import Retention
from streams.leases import Leases

log = logging.getLogger(__name__)

RESCAN_SECONDS = 1.0
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
STOP_TIMEOUT = 5.0


def backoff_delay(attempt: int, *, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP) -> float:
    """Exponential backoff with full jitter (attempt 1 waits up to `first` seconds)."""
    return random.uniform(0, min(cap, first * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class StreamSpec:
    """What a running feed task was started from; a change restarts the task."""

    slug: str
    kind: str
    settings_json: str
    retention: Retention

    @classmethod
    def of(cls, stream: Any) -> StreamSpec:
        return cls(
            slug=stream.slug,
            kind=stream.feed_kind,
            settings_json=json.dumps(stream.feed_settings, sort_keys=True),
            retention=Retention.of(stream),
        )


def load_specs() -> dict[str, StreamSpec]:
    from streams.models import Stream

    return {stream.slug: StreamSpec.of(stream) for stream in Stream.objects.pulled()}


class Supervisor:
    def __init__(self, *, broadcaster: Broadcaster | None = None, leases: Leases | None = None) -> None:
        self.broadcaster = broadcaster
        self.leases = leases or Leases()
        self.tasks: dict[str, tuple[StreamSpec, asyncio.Task[None]]] = {}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Keep the running feeds in step with the database until `stop` is set."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    await self.sync()
                except Exception:
                    log.exception("could not read the stream table; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESCAN_SECONDS)
        finally:
            await self.stop_all()

    async def sync(self) -> None:
        """Start, restart and stop feed tasks to match the enabled streams we hold leases on."""
        specs = await database_sync_to_async(load_specs)()
        ours = await self.leases.hold(specs, held=set(self.tasks))
        specs = {slug: spec for slug, spec in specs.items() if slug in ours}
        for slug in list(self.tasks):
            running_spec, task = self.tasks[slug]
            if specs.get(slug) != running_spec or task.done():
                task.cancel()
                del self.tasks[slug]
                log.info("stream %s: feed stopped", slug)
        for slug, spec in specs.items():
            if slug not in self.tasks:
                task = asyncio.get_running_loop().create_task(self.run_feed(spec), name=f"feed:{slug}")
                self.tasks[slug] = (spec, task)
                log.info("stream %s: %s feed started", slug, spec.kind)

    async def stop_all(self) -> None:
        tasks = [task for _, task in self.tasks.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a task that swallows its cancellation (seen rarely with a Redis call in
            # flight) must not hang shutdown.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            for task in stuck:
                log.warning("feed task %s did not stop within %s s", task.get_name(), STOP_TIMEOUT)
        if self.broadcaster is not None:
            await self.broadcaster.close()
        # Hand the streams over at once rather than after the leases expire.
        await self.leases.release(self.tasks)
        self.tasks.clear()

    @staticmethod
    async def report(broadcaster: Broadcaster, slug: str, status: dict[str, Any]) -> None:
        """Publish a feed's health, and honour a cancellation the Redis call may have eaten."""
        await broadcaster.publish_status(slug, status)
        # redis-py 8 runs every command under asyncio.wait_for (default socket_timeout 5 s),
        # which on Python < 3.12 can swallow a cancellation that lands as the command finishes
        # (CPython gh-86296; seen as feed tasks that never stopped). The task still counts
        # the request, so re-raise it here.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    async def run_feed(self, spec: StreamSpec) -> None:
        """Run one stream's feed forever: reconnect with capped, jittered backoff."""
        broadcaster = self.broadcaster = self.broadcaster or get_broadcaster()
        attempt = 0
        while True:
            await self.report(broadcaster, spec.slug, {"state": "connecting"})
            try:
                feed = build_feed(spec.kind, json.loads(spec.settings_json))
                live = False
                async for batch in feed.batches():
                    if not live:
                        live = True
                        attempt = 0
                        await self.report(broadcaster, spec.slug, {"state": "live"})
                    broadcaster.publish(spec.slug, batch, retention=spec.retention)
                raise ConnectionError("the feed ended")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                attempt += 1
                delay = backoff_delay(attempt)
                log.warning("stream %s: %s; retrying in %.1f s", spec.slug, error, delay)
                await self.report(
                    broadcaster,
                    spec.slug,
                    {"state": "error", "error": str(error)[:500], "retry_at": time.time() + delay},
                )
                await asyncio.sleep(delay)
