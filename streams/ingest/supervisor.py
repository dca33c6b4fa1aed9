"""The ingest supervisor: one task per enabled pulled stream, restarted with backoff.

It re-reads the stream table every second, so streams created, edited, disabled or deleted
in admin are picked up without a restart. With Redis, several workers split the streams by
lease (streams/ingest/leases.py): each claims its share (by points/s), hands streams to a worker that
joins (cleanly, at a flush) and takes over a dead worker's streams when its leases expire.
Used by `manage.py ingest` (its own process) and by `manage.py serve` (on daphne's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from streams.broadcast import Broadcaster, get_broadcaster
from streams.core import collector
from streams.core.batched import Batched
from streams.core.ids import parse_id
from streams.core.points import Batch, Entry
from streams.core.retention import Retention
from streams.core.tasks import cancel_and_wait, finished, honour_cancellation
from streams.ingest.feed_health import CONNECTING, LIVE, STALLED, FeedHealth
from streams.ingest.feeds import build_feed
from streams.ingest.feeds.base import Feed
from streams.ingest.feeds.push import PushFeed, hand_over
from streams.ingest.feeds.timeline import Timeline
from streams.ingest.inbox import get_inbox
from streams.ingest.leases import Leases, plan
from streams.storage import partitions
from streams.storage.store import newest_stored_ids, prune_stream, read_after, save_batches

log = logging.getLogger(__name__)

RESCAN_SECONDS = 1.0
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
STOP_TIMEOUT = 5.0
# A window with no count limit is refilled with at most this many stored points.
WARM_MAX_POINTS = 100_000
# Points per database row when storing what a dead worker left only in the live window.
TAIL_ROW_POINTS = 1_000
# Streams whose windows' tails one database write stores (a dead worker's thousand streams
# taken over at once: ten writes of about a second of points each, not a thousand).
TAILS_PER_WRITE = 100
# A feed restarted in this process waits at most this long for what it published before to
# be in history and written (a tick and one write of the Persister, unless Redis or the
# database is down); past it, the window's tail is left alone, as when they fail.
SETTLE_SECONDS = 30.0
# Changed counters reach viewers at most this often, and the stored status (pages, admin) at
# most every STORE_SECONDS; state changes go out at once.
STATUS_SECONDS = 5.0
STORE_SECONDS = 1.0
# An unchanged status is re-stored this often so pages can tell a live worker from a dead one.
STATUS_REFRESH_SECONDS = 10.0
# A stream's rate (points/s, its weight when workers share the streams out) is measured over
# this many seconds.
RATE_SECONDS = 5.0
# A worker hands streams over only once the plan has asked for it on this many rescans in a
# row: a worker that joins or leaves moves streams once, not on every wobble of the survey.
HANDOVER_SCANS = 2
# The young generation is collected once this many more container objects are alive than at
# the last collection (CPython counts each one made and takes back each one freed; default
# 700). A worker's points live until the Persister writes them, about a second: at 100,000
# points/s, 50,000 set off a collection of 50,000-80,000 young objects two or three times a
# second, each finding nothing. 300,000 (more than a second of them) still set one off about
# every 2 s at 1,000 streams, where the ticks' and the Persister's points live longer: 50-100
# ms each (one of 200-300 ms now and then), 4% of the worker's CPU, finding nothing. 1,000,000:
# one about every 6 s, of about 200 ms, 2% (bench.ingest 6 s runs, timed by gc.callbacks; in
# alternating timed runs, quiet machine, 93,600 and 103,800 points/s, medians of 4). Cyclic
# garbage waits longer, at most about this many objects of it; a worker makes almost none
# (40 objects found in a whole run).
GC_YOUNG_THRESHOLD = 1_000_000


def tune_gc() -> bool:
    """The collector set for a worker, once, before the feeds start (streams/core/collector.py)."""
    return collector.tune_gc(GC_YOUNG_THRESHOLD)


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
    store: bool = False

    @classmethod
    def of(cls, stream: Any) -> StreamSpec:
        return cls(
            slug=stream.slug,
            kind=stream.feed_kind,
            settings_json=json.dumps(stream.feed_settings, sort_keys=True),
            retention=Retention.of(stream),
            store=stream.store_points,
        )


@dataclass(eq=False)
class Running:
    """A stream whose feed runs here: what it was started from, its task, and once the feed has
    started its time rules (a stop's drain of the push inbox applies them too)."""

    spec: StreamSpec
    task: asyncio.Task[None]
    timeline: Timeline | None = None


def load_specs() -> dict[str, StreamSpec]:
    from streams.models import Stream

    return {stream.slug: StreamSpec.of(stream) for stream in Stream.objects.pulled()}


def _dropped_at_stop(slug: str, reason: str) -> None:
    log.warning("stream %s: a pushed point drained at stop was dropped: %s", slug, reason[:300])


def prune_streams(slugs: list[str]) -> int:
    """Make the stored points' partitions ahead and drop whole days no stream keeps (PostgreSQL;
    any worker may, for all streams), then prune these streams' rows. Returns points deleted."""
    from streams.models import Stream

    partitions.maintain()
    return sum(prune_stream(stream) for stream in Stream.objects.filter(slug__in=slugs, store_points=True))


class Supervisor:
    def __init__(
        self,
        *,
        broadcaster: Broadcaster | None = None,
        leases: Leases | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broadcaster = broadcaster
        self.leases = leases or Leases()
        # What the rescans measure rates and free streams' waits by (tests drive their own).
        self.clock = clock
        self.tasks: dict[str, Running] = {}
        # Feed tasks cancelled and not finished yet: their streams start again only once they
        # have (two tasks of one stream would both publish it).
        self.stopping: dict[str, asyncio.Task[None]] = {}
        # Streams being handed to another worker: feed stopped, flushing, lease still ours.
        self.leaving: dict[str, StreamSpec] = {}
        self.handover: asyncio.Task[None] | None = None
        # Streams a hand-over could not flush: still ours, their feeds start again.
        self.kept: set[str] = set()
        self.surplus_scans = 0
        # Points each stream's feed gave us, and the rate measured from them (the plan's weights).
        self.published: dict[str, int] = {}
        self.samples: dict[str, tuple[float, int]] = {}
        self.rates: dict[str, float] = {}
        # When we began to hold each stream (by `clock`): its first window waits for its points.
        self.held_since: dict[str, float] = {}
        # When we first saw each free stream (by `clock`): one left free for a lease period is
        # taken by any worker, whatever the plan says.
        self.free_since: dict[str, float] = {}
        # What feeds ask as they start, asked for all the feeds starting meanwhile at once
        # (streams/core/batched.py): a worker starting a thousand streams makes a few round
        # trips to Redis and the database, not a thousand queued behind the ticks and writes.
        self.newest_in_window: Batched[str, Entry | None] = Batched(self._newest_in_window)
        self.newest_stored: Batched[str, str | None] = Batched(self._newest_stored)
        self.tail_writes: Batched[tuple[str, list[Entry]], None] = Batched(
            self._write_tails, max_items=TAILS_PER_WRITE
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Keep the running feeds in step with the database until `stop` is set."""
        stop = stop or asyncio.Event()
        pruner = asyncio.get_running_loop().create_task(self.prune_forever(), name="prune")
        try:
            while not stop.is_set():
                try:
                    await self.sync()
                except Exception:
                    log.exception("could not read the stream table; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESCAN_SECONDS)
        finally:
            try:
                await cancel_and_wait(pruner)
            finally:  # a cancellation of run() itself still stops the feeds, then propagates
                await self.stop_all()

    async def prune_forever(self) -> None:
        """Prune the stored points of the streams this worker runs, every LIVECHARTS_PRUNE_SECONDS.
        In a thread, in small chunks: ingest never waits for it."""
        while True:
            await asyncio.sleep(settings.LIVECHARTS_PRUNE_SECONDS)
            slugs = [slug for slug, running in self.tasks.items() if running.spec.store]
            try:
                deleted = await database_sync_to_async(prune_streams)(slugs)
            except Exception:
                log.exception("could not prune stored points; trying again later")
                continue
            if deleted:
                log.info("pruned %d stored points", deleted)

    async def sync(self) -> None:
        """Start, restart and stop feed tasks to match the enabled streams we hold leases on."""
        specs = await database_sync_to_async(load_specs)()
        ours = await self.claim(specs)
        specs = {slug: spec for slug, spec in specs.items() if slug in ours}
        stopped: list[asyncio.Task[None]] = []
        for slug in list(self.tasks):
            task = self.tasks[slug].task
            if specs.get(slug) != self.tasks[slug].spec or task.done():
                task.cancel()
                del self.tasks[slug]
                self.stopping[slug] = task
                stopped.append(task)
                log.info("stream %s: feed stopped", slug)
                if slug not in ours and self.broadcaster is not None:
                    # Another worker may run it now, issuing ids past ours: if the lease comes
                    # back, go on from history's last id (a host's clock behind could otherwise
                    # issue ids below the stream's newest).
                    self.broadcaster.drop_cached_ids(slug)
        if stopped:
            # A cancelled feed task may still publish (a batch in hand when the cancellation
            # lands at its next await): its replacement starts only once it has finished.
            await asyncio.wait(stopped, timeout=STOP_TIMEOUT)
        await self._reap_stopping()
        for slug, spec in specs.items():
            if slug not in self.tasks and slug not in self.stopping:
                task = asyncio.get_running_loop().create_task(self.run_feed(spec), name=f"feed:{slug}")
                self.tasks[slug] = Running(spec, task)
                log.info("stream %s: %s feed started", slug, spec.kind)

    async def _reap_stopping(self) -> None:
        """Forget the stopped feed tasks that have finished (logging an error one ended with);
        name those that still have not."""
        for slug, task in list(self.stopping.items()):
            if task.done():
                del self.stopping[slug]
                await finished(task)
            else:
                log.warning("stream %s: the old feed task has not stopped; restarted once it has", slug)

    async def claim(self, specs: dict[str, StreamSpec]) -> set[str]:
        """Our share of the streams: survey the workers, do our part of the plan (claim the free
        streams it gives us, start handing over what it takes from us), renew what we keep.
        Returns the streams whose leases we hold and whose feeds should run."""
        # A hand-over may end (release its leases) at any await below: what was leaving when
        # we began is only ever renewed, never claimed again, and never started.
        leaving, kept = set(self.leaving), set(self.kept)
        # A feed task still stopping (its settings changed) keeps its stream ours meanwhile.
        held = set(self.tasks) | set(self.stopping) | leaving | kept
        survey = await self.leases.survey(specs, rates=self.measure(held))
        ours_now = plan(me=self.leases.owner, survey=survey)
        now = self.clock()
        free = [slug for slug, owner in survey.owners.items() if owner is None]
        self.free_since = {slug: self.free_since.get(slug, now) for slug in free}
        lease_seconds = self.leases.lease_ms / 1000
        overdue = {slug for slug, since in self.free_since.items() if now - since >= lease_seconds}
        wanted = (held & set(specs)) | leaving | ours_now.claim | overdue
        ours = await self.leases.hold(wanted, held=held, renew_only=leaving | set(self.leaving))
        ours -= leaving | set(self.leaving)
        self.kept -= kept  # renewed (or lost) like any other held stream from now on
        self.surplus_scans = self.surplus_scans + 1 if ours_now.release else 0
        giving = ours_now.release & ours & set(self.tasks)
        if giving and self.surplus_scans >= HANDOVER_SCANS and self.handover is None:
            self.surplus_scans = 0
            self.hand_over(giving)
            ours -= giving
        return ours

    def measure(self, held: set[str]) -> dict[str, float]:
        """The rates (points/s over RATE_SECONDS) of the streams we hold, for the survey."""
        now = self.clock()
        for slug in list(self.samples):
            if slug not in held:
                del self.samples[slug]
                self.rates.pop(slug, None)
                self.published.pop(slug, None)
                self.held_since.pop(slug, None)
        for slug in held:
            count = self.published.get(slug, 0)
            if count == 0 and now - self.held_since.setdefault(slug, now) < RATE_SECONDS:
                # Nothing from its feed yet (starting, or just handed over: a second's pause,
                # more on a busy machine): its first window starts with its points. Counting the
                # pause measured a stream taken over too low, and the plan moved another one to
                # make up for it, to be moved back once measured right. A feed silent for a
                # whole period is measured (0) a period later.
                self.samples[slug] = (now, 0)
                continue
            since, counted = self.samples.setdefault(slug, (now, count))
            if now - since >= RATE_SECONDS:
                self.rates[slug] = (count - counted) / (now - since)
                self.samples[slug] = (now, count)
        return dict(self.rates)

    def hand_over(self, slugs: set[str]) -> None:
        """Give streams to another worker, as a stop does but for these only: stop their feeds,
        flush to history and the database, then release the leases (kept until then, so no
        one else writes the stream meanwhile). Runs beside the rescans, which renew them."""
        leaving = {slug: self.tasks.pop(slug) for slug in sorted(slugs)}
        for slug, running in leaving.items():
            self.leaving[slug] = running.spec
            running.task.cancel()
        log.info("handing %d streams to other workers: %s", len(leaving), ", ".join(leaving))
        self.handover = asyncio.get_running_loop().create_task(self._hand_over(leaving), name="handover")

    async def _hand_over(self, leaving: dict[str, Running]) -> None:
        slugs = list(leaving)
        released = False
        try:
            _, stuck = await asyncio.wait(
                [running.task for running in leaving.values()], timeout=STOP_TIMEOUT
            )
            if stuck:
                raise RuntimeError(f"{len(stuck)} feed tasks did not stop within {STOP_TIMEOUT} s")
            broadcaster = self.broadcaster
            if broadcaster is not None:
                await self.drain_inboxes(leaving)
                await broadcaster.flush()
                if broadcaster.persister is not None:
                    await broadcaster.persister.flush()
                await get_inbox().settle()
                waiting = [slug for slug in slugs if broadcaster.waiting(slug)]
                if waiting:
                    raise RuntimeError(f"points of {', '.join(waiting)} are not in history yet")
            await self.leases.release(slugs)
            released = True
            log.info("handed over %s", ", ".join(slugs))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Keep them (their feeds start again on the next rescan): a stream released with
            # points not yet stored would have them stored by its next owner too.
            log.warning("could not hand over %s (%s); keeping them", ", ".join(slugs), error)
            self.kept.update(slugs)
        finally:
            for slug in slugs:
                self.leaving.pop(slug, None)
                if released and self.broadcaster is not None:
                    # Its next owner issues ids past ours: if it comes back, go on from history.
                    self.broadcaster.drop_cached_ids(slug)
            self.handover = None

    async def stop_all(self) -> None:
        with contextlib.suppress(Exception):  # best effort: our heartbeat runs out anyway
            await self.leases.leave()
        if self.handover is not None:
            # Bounded (STOP_TIMEOUT and a flush); its streams are released or back in no task.
            # finished(), not suppress(BaseException): a cancellation of this stop must go on.
            await finished(self.handover)
        # Keep the leases while stopping: a stop slower than the lease (a loaded machine, a
        # long final flush) would otherwise let another worker take a stream over and store
        # the window's tail while this one still writes it (points stored twice).
        keeper = asyncio.get_running_loop().create_task(self._keep_leases(set(self.tasks)), name="leases")
        try:
            await self._stop_feeds_and_flush()
        finally:
            await cancel_and_wait(keeper)
        # Hand the streams over at once rather than after the leases expire; with Redis gone (or
        # failing over) they expire on their own, and the stop goes on.
        try:
            await self.leases.release(self.tasks)
        except Exception as error:
            log.warning("could not release the leases at stop (%s): they expire on their own", error)
        self.tasks.clear()

    async def _keep_leases(self, slugs: set[str]) -> None:
        while True:
            await asyncio.sleep(RESCAN_SECONDS)
            with contextlib.suppress(Exception):  # best effort: the stop goes on regardless
                await self.leases.hold(slugs, held=slugs)

    async def _stop_feeds_and_flush(self) -> None:
        tasks = [running.task for running in self.tasks.values()] + list(self.stopping.values())
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a task that swallows its cancellation (seen rarely with a Redis call in
            # flight) must not hang shutdown.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            for task in stuck:
                log.warning("feed task %s did not stop within %s s", task.get_name(), STOP_TIMEOUT)
            for task in tasks:
                if task.done():
                    await finished(task)  # an error it ended with is logged, not lost
        self.stopping.clear()
        await self.drain_inboxes()
        if self.broadcaster is not None:
            await self.broadcaster.close()
        # The close stored what the feeds and the drain handed over: acknowledge it now, or the
        # next owner would publish it again.
        try:
            await get_inbox().settle()
        except Exception:
            log.exception("could not acknowledge pushed points at stop")

    async def drain_inboxes(self, streams: dict[str, Running] | None = None) -> int:
        """Publish what push requests left in the inboxes of the push streams we ran (`streams`,
        by default all, their feeds stopped): they were answered 202, so a stop must not lose
        them (the in-process inbox dies with us). What the feeds already handed to broadcast is
        not taken again. Returns the points drained."""
        drained = 0
        if self.broadcaster is None:
            return drained
        inbox = get_inbox()
        for slug, running in (self.tasks if streams is None else streams).items():
            spec = running.spec
            if spec.kind != PushFeed.kind:
                continue
            try:
                taken = await inbox.take(slug, wait=0.01)
            except Exception:
                log.exception("stream %s: could not drain the push inbox at stop", slug)
                continue
            if taken is None or not taken.points:
                continue
            on_stored = hand_over(inbox, slug, taken)
            points = taken.points
            if running.timeline is not None:
                points = running.timeline.admit(points, now=time.time(), skip=partial(_dropped_at_stop, slug))
            if not points:
                on_stored()
                continue
            self.broadcaster.publish(
                slug, points, retention=spec.retention, store=spec.store, on_stored=on_stored
            )
            drained += len(points)
        return drained

    @staticmethod
    async def report(broadcaster: Broadcaster, slug: str, health: FeedHealth, *, notify: bool = True) -> None:
        """Publish a feed's health at the next tick (stored with every stream's in one command,
        sent to viewers with the tick's batches). Never fails: with Redis down the feed keeps
        running, and the status goes with a later tick."""
        broadcaster.queue_status(slug, health.as_status(), notify=notify)

    async def run_feed(self, spec: StreamSpec) -> None:
        """Run one stream's feed forever: reconnect with capped, jittered backoff.

        The Feed object lives as long as the spec does, so what it keeps for resuming (the
        SSE Last-Event-ID, the poll feed's newest time) survives reconnects.
        """
        broadcaster = self.broadcaster = self.broadcaster or get_broadcaster()
        health = FeedHealth()
        try:
            feed = build_feed(spec.kind, json.loads(spec.settings_json))
            feed.slug = spec.slug
        except Exception as error:
            # Settings saved around admin's validation: nothing to retry until they change
            # (which restarts this task).
            health.failed(f"bad feed settings: {error}", retry_at=None, now=time.time())
            log.warning("stream %s: %s", spec.slug, health.error)
            await self.report(broadcaster, spec.slug, health)
            await asyncio.Event().wait()
            return
        health.stall_after = feed.stall_seconds()
        newest = await self.start_up(spec, broadcaster)
        honour_cancellation()
        # This task's record is in `tasks` until a stop or hand-over, which cancels it first.
        timeline = self.tasks[spec.slug].timeline = Timeline(max_ahead=settings.LIVECHARTS_MAX_FUTURE_SECONDS)
        self.resume(feed, newest, timeline=timeline)
        attempt = 0
        while True:
            honour_cancellation()
            health.state = CONNECTING
            await self.report(broadcaster, spec.slug, health)
            try:
                async for batch in self.watch(feed, health, spec=spec, broadcaster=broadcaster):
                    if batch:
                        attempt = 0
                        self.published[spec.slug] = self.published.get(spec.slug, 0) + len(batch)
                        on_stored = feed.handed_over(batch)
                        batch = timeline.admit(batch, now=time.time(), skip=feed.skip)
                        if batch:
                            broadcaster.publish(
                                spec.slug,
                                batch,
                                retention=spec.retention,
                                store=spec.store,
                                on_stored=on_stored,
                            )
                        elif on_stored is not None:
                            on_stored()  # every point dropped: nothing to wait for
                    # A due tick goes first: on a busy worker its flush would otherwise wait
                    # behind every feed's next read at each of its Redis round trips.
                    await broadcaster.gate.wait_turn()
                raise ConnectionError("the feed ended")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                attempt += 1
                health.reconnects += 1
                delay = max(backoff_delay(attempt), feed.retry_after or 0.0)
                feed.retry_after = None
                message = str(error) or type(error).__name__
                log.warning("stream %s: %s; retrying in %.1f s", spec.slug, message, delay)
                health.bad_payloads = feed.bad_payloads
                health.failed(message, retry_at=time.time() + delay, now=time.time())
                await self.report(broadcaster, spec.slug, health)
                await asyncio.sleep(delay)

    async def start_up(self, spec: StreamSpec, broadcaster: Broadcaster) -> Entry | None:
        """What a feed does before it reads: with the store, the window's unstored tail written
        (store_window_tail) or an empty window refilled (warm_history). Returns the newest point
        in history, where the feed resumes (None: an empty window, or history could not tell).

        Per stream, a fresh start costs one look-up in history and, when the window holds
        points, one in the database, each shared with the feeds starting meanwhile; the window
        is read only when it holds points past the stored ones."""
        # Each start-up step awaits Redis: a stop landing as a command finishes can be lost
        # there (CPython gh-86296), and the feed would then run on past stop_all's wait.
        settled = not spec.store or await self.settle(spec, broadcaster)
        honour_cancellation()
        try:
            newest = await self.newest_in_window.call(spec.slug)
        except Exception as error:
            log.warning(
                "stream %s: could not read the newest point in history (%s); starting afresh",
                spec.slug,
                error,
            )
            return None
        honour_cancellation()
        if spec.store:
            if settled:
                await self.store_window_tail(spec, broadcaster, newest=newest)
                honour_cancellation()
            if newest is None:
                newest = await self.warm_history(spec, broadcaster)
                honour_cancellation()
        return newest

    @staticmethod
    async def settle(spec: StreamSpec, broadcaster: Broadcaster) -> bool:
        """Wait until what this process itself has published of the stream is in history and
        written (a feed restarted by an edit in admin, a lease lost and won back), so the
        window's tail holds only points nobody alive will write: the Persister writing an
        older batch after the tail was stored would find it fenced off (lost), the tail stored
        after a newer batch likewise. On a fresh start there is nothing to wait for. False
        (logged) when it cannot be done: the tail is then left alone."""
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                await broadcaster.sent(spec.slug)
                if broadcaster.persister is not None:
                    await broadcaster.persister.write_through(spec.slug)
        except Exception:
            log.exception("stream %s: could not write its points sent before the restart", spec.slug)
            return False
        return True

    async def store_window_tail(
        self, spec: StreamSpec, broadcaster: Broadcaster, *, newest: Entry | None
    ) -> None:
        """Store what the live window holds past the newest stored point. A worker killed
        (kill -9, OOM) between its history append and its once-a-second database write left
        those points only in Redis; the worker taking the stream over writes them, so the
        database loses nothing a viewer saw. A clean stop flushes first: then there is none.
        `newest` is history's newest point, read after `settle`."""
        if newest is None:
            return  # an empty window holds no tail (warm_history refills it)
        try:
            after = await self.newest_stored.call(spec.slug)
            if after is not None and parse_id(newest.id) <= parse_id(after):
                return  # all stored: the usual case, and no need to read the window
            backfill = await broadcaster.history.read(spec.slug, after=after, retention=spec.retention)
            # A window that lost its place (Redis restarted) answers with all it has: keep only
            # what comes after the stored points, never a point twice.
            tail = [e for e in backfill.entries if after is None or parse_id(e.id) > parse_id(after)]
            if not tail:
                return
            await self.tail_writes.call((spec.slug, tail))
            log.info("stream %s: stored %d points left in the live window", spec.slug, len(tail))
        except Exception:
            log.exception("stream %s: could not store the live window's unstored points", spec.slug)

    async def _newest_in_window(self, slugs: list[str]) -> list[Entry | None]:
        return await (self.broadcaster or get_broadcaster()).history.last_entries(slugs)

    @staticmethod
    async def _newest_stored(slugs: list[str]) -> list[str | None]:
        found = await database_sync_to_async(newest_stored_ids)(slugs)
        return [found[slug] for slug in slugs]

    @staticmethod
    async def _write_tails(tails: list[tuple[str, list[Entry]]]) -> list[None]:
        rows = [
            (slug, tail[start : start + TAIL_ROW_POINTS])
            for slug, tail in tails
            for start in range(0, len(tail), TAIL_ROW_POINTS)
        ]
        # One transaction, each stream fenced by its newest stored id as any write is.
        await database_sync_to_async(save_batches)(rows)
        return [None] * len(tails)

    @staticmethod
    async def warm_history(spec: StreamSpec, broadcaster: Broadcaster) -> Entry | None:
        """Refill an empty live window from the database (the in-process window after a
        restart of `serve`), so viewers get their backfill and ids carry on in order. Returns
        the newest point refilled."""
        history = broadcaster.history
        try:
            limit = spec.retention.points or WARM_MAX_POINTS
            entries = await database_sync_to_async(read_after)(spec.slug, after=None, limit=limit)
            oldest_ms = spec.retention.oldest_kept_ms()
            if oldest_ms is not None:
                entries = [entry for entry in entries if entry.point.t * 1000 >= oldest_ms]
            if entries:
                await history.append(spec.slug, entries, retention=spec.retention)
                log.info("stream %s: live window refilled with %d stored points", spec.slug, len(entries))
                return entries[-1]
        except Exception:
            log.exception("stream %s: could not refill the live window from the database", spec.slug)
        return None

    @staticmethod
    def resume(feed: Feed, newest: Entry | None, *, timeline: Timeline | None = None) -> None:
        """Tell the feed (and the stream's time rules) where the stored stream ends, at
        `newest`; without history it starts afresh."""
        if newest is not None:
            feed.resume_after(newest.point.t)
            if timeline is not None:
                timeline.resume(newest.point, now=time.time())

    async def watch(
        self, feed: Feed, health: FeedHealth, *, spec: StreamSpec, broadcaster: Broadcaster
    ) -> AsyncIterator[Batch]:
        """The feed's batches, while keeping its health current: live on the first batch,
        stalled after `stall_after` seconds without one, counters re-published every few seconds.

        A batch costs only its count: the clock-driven part (stalls, counters) runs in a
        monitor task every STORE_SECONDS / 2. (Waiting for each batch with a timeout, a task
        and asyncio.wait per batch, cost 20 us a batch: with a websocket feed, a batch is a
        message.)
        """
        reports = _Reports(broadcaster, spec.slug, health)
        connected_at = time.time()
        monitor = asyncio.get_running_loop().create_task(
            self._monitor(feed, health, reports, connected_at=connected_at), name=f"health:{spec.slug}"
        )
        batches = feed.batches()
        try:
            async for batch in batches:
                health.bad_payloads = feed.bad_payloads
                if batch:
                    changed = health.got_points(len(batch), now=time.time())
                else:
                    # An empty batch: connected and answering, nothing new yet (a feed yields
                    # one when its connection is up; an ETag'd poll answers 304).
                    changed = health.state == CONNECTING
                    if changed:
                        health.state = LIVE
                if changed:
                    await reports.now()  # awaits Redis: see honour_cancellation
                    honour_cancellation()
                yield batch
        finally:
            await cancel_and_wait(monitor)
            with contextlib.suppress(Exception):
                await batches.aclose()

    @staticmethod
    async def _monitor(feed: Feed, health: FeedHealth, reports: _Reports, *, connected_at: float) -> None:
        """A watched feed's clock: stalled after `stall_after` seconds without a batch, and
        changed counters reported when due."""
        while True:
            await asyncio.sleep(STORE_SECONDS / 2)
            try:
                health.bad_payloads = feed.bad_payloads
                if health.is_stalled(now=time.time(), since=connected_at):
                    health.state = STALLED
                    await reports.now()
                else:
                    await reports.if_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not report a feed's health")


class _Reports:
    """A watched feed's health reports: what viewers and the stored status last got, and when.
    One at a time, so a slow report never lands after a newer one."""

    def __init__(self, broadcaster: Broadcaster, slug: str, health: FeedHealth) -> None:
        self.broadcaster, self.slug, self.health = broadcaster, slug, health
        self.notified = self.stored = health.as_status()
        self.notified_at = self.stored_at = time.monotonic()
        self.lock = asyncio.Lock()

    async def now(self) -> None:
        """The state changed: tell viewers at once."""
        async with self.lock:
            status = self.health.as_status()
            await Supervisor.report(self.broadcaster, self.slug, self.health)
            self.notified = self.stored = status
            self.notified_at = self.stored_at = time.monotonic()

    async def if_due(self) -> None:
        """Changed counters to viewers every STATUS_SECONDS; the stored status (pages, admin)
        kept current every STORE_SECONDS, and fresh every STATUS_REFRESH_SECONDS."""
        async with self.lock:
            status = self.health.as_status()
            since_stored = time.monotonic() - self.stored_at
            if time.monotonic() - self.notified_at >= STATUS_SECONDS and status != self.notified:
                await Supervisor.report(self.broadcaster, self.slug, self.health)
                self.notified = self.stored = status
                self.notified_at = self.stored_at = time.monotonic()
            elif (status != self.stored and since_stored >= STORE_SECONDS) or (
                since_stored >= STATUS_REFRESH_SECONDS
            ):
                # Pages and admin read the stored status: keep it current (and fresh) without
                # sending every viewer a frame.
                await Supervisor.report(self.broadcaster, self.slug, self.health, notify=False)
                self.stored, self.stored_at = status, time.monotonic()
