"""The one way points enter: give ids, append to history, coalesce per tick, group_send.

Nothing else calls the channel layer's send side. Feeds (and later the push API) call
`publish()`; once per tick every stream that moved is stored as one batch, encoded to JSON
once, and sent to its group as one message. Consumers join those texts into frames as is.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from streams.core import runtime
from streams.core.frames import fill_ms_times
from streams.core.groups import group_name, points_message
from streams.core.ids import IdClock, parse_id
from streams.core.points import Entries, Point
from streams.core.retention import Retention
from streams.core.tasks import finished
from streams.core.tick_gate import TickGate
from streams.storage.store import Persister
from streams.storage.window import History, WindowAppend, get_history

log = logging.getLogger(__name__)

# A stream whose history append keeps failing keeps at most this many points waiting.
MAX_PENDING_POINTS = 100_000
# Group sends in flight at once on layers without a pipelined publish.
SEND_CONCURRENCY = 50
# The ticker stops after this many idle ticks and starts again on the next publish.
IDLE_TICKS_BEFORE_STOP = 40
# After ticks that failed in a row, the ticker waits up to this long before the next.
MAX_TICK_BACKOFF_SECONDS = 5.0


@dataclass
class BroadcastStats:
    """Counters for /metrics; never reset."""

    # Batches sent by plain group_send on the Redis pub/sub layer because channels_redis's
    # internals were not as publish_pipelined expects (slower, one round trip each).
    publish_fallbacks: int = 0
    # Ticks whose flush failed unexpectedly; their batches went back for the next tick.
    tick_errors: int = 0


@dataclass
class _Pending:
    retention: Retention
    store: bool = False
    points: list[Point] = field(default_factory=list)
    # Called once these points are in history (the push feed then acknowledges its inbox).
    on_stored: list[Callable[[], None]] = field(default_factory=list)


class Broadcaster:
    def __init__(
        self, *, history: History, tick_seconds: float, layer: Any = None, persister: Persister | None = None
    ) -> None:
        self.history = history
        # Writes sent batches to the database (streams/storage/store.py); None keeps only the window.
        self.persister = persister
        self.tick_seconds = tick_seconds
        self.layer = layer if layer is not None else get_channel_layer()
        self._pending: dict[str, _Pending] = {}
        self._clocks: dict[str, IdClock] = {}
        # The last id of each stream's last batch sent: the next batch's `prev`. Not the clock's
        # last id: a batch whose history append failed took ids (the clock moved on) but was
        # never sent, and its points go again under new ids.
        self._last_ids: dict[str, str | None] = {}
        # Streams whose cached ids are dropped at the next flush (drop_cached_ids()).
        self._ids_to_drop: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        # Feeds' health for the next tick: (status, notify viewers), newest per stream.
        self._statuses: dict[str, tuple[dict[str, Any], bool]] = {}
        self._flush_lock = asyncio.Lock()
        # The streams whose batches the flush under way took, and set when a flush ends (then
        # replaced): what `sent` waits for.
        self._flushing: frozenset[str] = frozenset()
        self._flushed = asyncio.Event()
        # Held from each tick's time until its flush is done: feeds wait on it between batches.
        self.gate = TickGate()
        self.stats = BroadcastStats()

    def publish(
        self,
        slug: str,
        points: Iterable[Point],
        *,
        retention: Retention,
        store: bool = False,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """Queue points for the next tick. Non-finite values become gaps (None). With `store`,
        the sent batch is also written to the database. `on_stored` is called once the points
        are in history (never, if they are dropped)."""
        pending = self._pending.get(slug)
        if pending is None:
            pending = self._pending[slug] = _Pending(retention)
        pending.retention = retention
        pending.store = store
        pending.points.extend(_finite(points))
        if on_stored is not None:
            pending.on_stored.append(on_stored)
        if len(pending.points) > MAX_PENDING_POINTS:
            dropped = len(pending.points) - MAX_PENDING_POINTS
            del pending.points[:dropped]
            # Which callbacks the dropped points belonged to is not kept: call none, so a
            # source that can send again (the push inbox) keeps all of them.
            pending.on_stored.clear()
            log.warning("stream %s: dropped %d points waiting for history", slug, dropped)
        self._ensure_ticker()

    def waiting(self, slug: str) -> int:
        """Points of a stream queued for the next tick (a source can hold back while it is high)."""
        pending = self._pending.get(slug)
        return 0 if pending is None else len(pending.points)

    async def sent(self, slug: str) -> None:
        """Wait until every point of `slug` published here so far has left broadcast: in
        history and handed to the Persister (or dropped). Waits for the ticker's flushes, never
        makes one: streams restarting at once wait for the same tick, not a whole flush each."""
        while self.waiting(slug) or slug in self._flushing:
            self._ensure_ticker()
            await self._flushed.wait()

    async def publish_status(self, slug: str, status: dict[str, Any], *, notify: bool = True) -> None:
        """Store a stream's health and, with `notify`, tell its viewers (a refresh of an
        unchanged status only keeps it fresh for pages, no frame)."""
        status = {**status, "at": time.time()}
        # Newer than one queued for the tick, which must not land after it.
        self._statuses.pop(slug, None)
        await self.history.set_status(slug, status)
        if not notify:
            return
        await self.layer.group_send(
            group_name(slug), {"type": "stream.status", "stream": slug, "status": status}
        )

    def queue_status(self, slug: str, status: dict[str, Any], *, notify: bool = True) -> None:
        """A feed's health, stored at the next tick with every other stream's in one command
        and, with `notify`, sent to its viewers with the tick's batches: a worker of 1,000
        streams refreshes 1,000 statuses a second, a round trip each when stored one by one.
        The newest status of a stream wins; a notify is kept when a store-only one replaces it."""
        earlier = self._statuses.get(slug)
        notify = notify or (earlier is not None and earlier[1])
        self._statuses[slug] = ({**status, "at": time.time()}, notify)
        self._ensure_ticker()

    def _requeue_statuses(self, statuses: dict[str, tuple[dict[str, Any], bool]]) -> None:
        """Statuses a cancelled flush had taken, back in the queue under any newer ones."""
        for slug, (status, notify) in statuses.items():
            newer = self._statuses.get(slug)
            self._statuses[slug] = (status, notify) if newer is None else (newer[0], newer[1] or notify)

    async def flush(self) -> None:
        """Send every stream that moved since the last tick (the ticker calls this).

        The queued statuses and all streams' batches go to history in one round trip (the
        statuses first: one queued before the points is stored when they show), then every
        group message in one more; a stream whose batch could not be stored keeps its points
        for the next tick (a Redis blip must not lose them) and the others go on.
        """
        async with self._flush_lock:
            try:
                await self._flush()
            finally:
                self._flushing = frozenset()
                flushed, self._flushed = self._flushed, asyncio.Event()
                flushed.set()

    async def _flush(self) -> None:
        """flush's work, under its lock."""
        for slug in self._ids_to_drop:
            self._clocks.pop(slug, None)
            self._last_ids.pop(slug, None)
        self._ids_to_drop.clear()
        # The tick's points are taken first, at the tick: what is published while the
        # round trips below are under way goes with the next tick (a source held back until
        # its batch has left sees it leave at the tick, not a round trip later).
        pending, self._pending = self._pending, {}
        statuses, self._statuses = self._statuses, {}
        moved = {slug: item for slug, item in pending.items() if item.points}
        self._flushing = frozenset(moved)
        stored = {slug: status for slug, (status, _) in statuses.items()}
        # Told with the tick's batches, before them (statuses are best effort: sent even
        # when storing them failed, as the next one carries the health anyway).
        messages: list[tuple[str, dict[str, Any]]] = [
            (group_name(slug), {"type": "stream.status", "stream": slug, "status": status})
            for slug, (status, notify) in statuses.items()
            if notify
        ]
        try:
            await self._start_clocks([slug for slug in moved if slug not in self._clocks])
        except Exception:
            log.exception("could not read the last ids of new streams; retrying")
            for slug, item in moved.items():
                self._keep(slug, item)
            moved = {}
        except BaseException:
            for slug, item in moved.items():
                self._keep(slug, item)
            self._requeue_statuses(statuses)
            raise
        try:
            work: list[tuple[str, _Pending, Entries]] = []
            for slug, item in moved.items():
                # No Entry per point: history, the group message and the Persister read
                # the ids and the points as they are (and the columns made once of them).
                entries = Entries(_take_ids(self._clocks[slug], len(item.points)), item.points)
                work.append((slug, item, entries))
            appending = self.history.start_append_tick(
                [WindowAppend(slug, entries, item.retention) for slug, item, entries in work],
                statuses=stored,
            )
            # While Redis runs the script: the held feeds read once, and each batch's group
            # message is made (sent only once its batch is stored).
            self.gate.release_once()
            try:
                self._fill_wire_times([entries for _, _, entries in work])
                prepared = [self._prepare_message(slug, entries) for slug, _, entries in work]
                errors = await appending
            except BaseException:
                appending.cancel()
                raise
        except BaseException:
            # Taken from _pending above and not in history: put back, or the tick's points
            # are lost (a bug here, a cancelled task). They get new ids next time.
            for slug, item in moved.items():
                self._keep(slug, item)
            self._requeue_statuses(statuses)
            raise
        for (slug, item, entries), error, message in zip(work, errors, prepared, strict=True):
            if error is not None:
                log.error("stream %s: could not store a batch (%s); retrying", slug, error)
                self._keep(slug, item)
                continue
            # In history now, with ids: never put back (they would be stored twice). What
            # fails from here costs this batch's live message only (viewers refill from
            # history), never the other streams' batches.
            self._last_ids[slug] = entries.ids[-1]
            try:
                if item.store and self.persister is not None:
                    self.persister.add(slug, entries)
                _call_all(slug, item.on_stored)
                if message is not None:
                    messages.append((group_name(slug), message))
            except Exception:
                log.exception("stream %s: a stored batch could not be sent", slug)
        await self._send_all(messages)

    async def _start_clocks(self, slugs: list[str]) -> None:
        """Id clocks for streams first seen, going on from the last id in history (one round
        trip for all of them: a thousand streams starting must not cost a thousand)."""
        if not slugs:
            return
        for slug, last in (await self.history.last_ids(slugs)).items():
            self._last_ids[slug] = last
            self._clocks[slug] = IdClock(parse_id(last) if last else None)

    def _keep(self, slug: str, item: _Pending) -> None:
        """Put a batch back in front of what was published since, for the next tick."""
        waiting = self._pending.setdefault(slug, _Pending(item.retention, item.store))
        waiting.points[:0] = item.points
        waiting.on_stored[:0] = item.on_stored
        self._ensure_ticker()

    @staticmethod
    def _fill_wire_times(batches: list[Entries]) -> None:
        """The tick's wire times at once (frames.fill_ms_times); when that fails, each batch's
        message makes its own (batch_text), so one odd time cannot cost the others theirs."""
        try:
            fill_ms_times(batches)
        except Exception:
            log.exception("could not make the tick's wire times at once; making them batch by batch")

    def _prepare_message(self, slug: str, entries: Entries) -> dict[str, Any] | None:
        """The batch's group message, `prev` the last batch sent (the flush moves that on only
        once this one is stored); None, logged, when it cannot be made."""
        try:
            return points_message(slug, entries, prev=self._last_ids.get(slug), key=self._clocks[slug].last)
        except Exception:
            log.exception("stream %s: a batch's group message could not be made", slug)
            return None

    async def _send_all(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """group_send every message; on the pub/sub layer, all in one round trip. A failed send
        is only logged: the points are in history, and viewers fill the gap from there (the
        next batch's `prev` tells them)."""
        if not messages:
            return
        try:
            left = await publish_pipelined(self.layer, messages)
        except Exception:
            log.exception("could not send %d batches to their groups", len(messages))
            return
        if left is None:  # no pipelined publish on this layer: group_send is the way
            left = messages
        elif left:
            self.stats.publish_fallbacks += len(left)
        messages = left
        for start in range(0, len(messages), SEND_CONCURRENCY):
            chunk = messages[start : start + SEND_CONCURRENCY]
            results = await asyncio.gather(
                *(self.layer.group_send(group, message) for group, message in chunk), return_exceptions=True
            )
            for (group, _), result in zip(chunk, results, strict=True):
                if isinstance(result, Exception):
                    log.error("could not send a batch to %s: %s", group, result)

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._run_ticker())

    async def _run_ticker(self) -> None:
        idle = failures = 0
        try:
            while idle < IDLE_TICKS_BEFORE_STOP:
                # Sleep to the next tick boundary so all processes tick roughly together.
                delay = self.tick_seconds - (time.time() % self.tick_seconds)
                # Feeds wait from the tick's time until its flush is done (core/tick_gate.py).
                self.gate.due(time.monotonic() + delay)
                await asyncio.sleep(delay)
                backoff = 0.0
                try:
                    if self._statuses or any(item.points for item in self._pending.values()):
                        idle = 0
                        try:
                            await self.flush()
                            failures = 0
                        except Exception:
                            # A tick that fails must not end the ticker (nothing would flush until
                            # the next publish): flush put the tick's batches back; try again,
                            # backing off so a lasting fault is not a log line every tick.
                            failures += 1
                            self.stats.tick_errors += 1
                            log.exception("a broadcast tick failed; its batches wait for the next")
                            backoff = min(MAX_TICK_BACKOFF_SECONDS, self.tick_seconds * 2**failures)
                    else:
                        idle += 1
                finally:
                    self.gate.open()
                if backoff:
                    await asyncio.sleep(backoff)
        finally:
            # Stopped or cancelled: no tick is coming, so no feed may wait for one.
            self.gate.open()

    async def close(self) -> None:
        """Flush what is queued and stop the ticker."""
        if self._ticker is not None:
            # Cancel it only between flushes: a flush cut short would lose the batches it had
            # taken (seen as the last pushed point missing after an ingest restart).
            async with self._flush_lock:
                self._ticker.cancel()
            await finished(self._ticker)
            self._ticker = None
        await self.flush()
        if self.persister is not None:
            await self.persister.close()

    def drop_cached_ids(self, slug: str) -> None:
        """Drop the cached ids of a stream another worker may have gone on with (its lease was
        lost): its next batch goes on from the last id in history, not from ours. Done at the
        next flush, so a flush in flight keeps the clock it started with."""
        self._ids_to_drop.add(slug)


# Every group message of a tick in one command. ARGV: the channels, one a line; the messages'
# lengths in bytes, space-separated; the messages, end to end. Three arguments rather than two
# per stream: redis-py packs each argument in Python, about 3 us apiece.
PUBLISH_SCRIPT = """
local at, lengths = 1, string.gmatch(ARGV[2], '%d+')
for channel in string.gmatch(ARGV[1], '[^\\n]+') do
  local length = tonumber(lengths())
  redis.call('PUBLISH', channel, string.sub(ARGV[3], at, at + length - 1))
  at = at + length
end
"""


async def publish_pipelined(
    layer: Any, messages: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]] | None:
    """A hack: channels_redis's RedisPubSubChannelLayer.group_send is one PUBLISH round trip,
    serialised by a per-shard lock, so 1,000 streams a tick cost 1,000 round trips. This makes
    the same PUBLISHes (same channel names, same serializer) in one script call per shard,
    under that lock, through the layer's internals (channels_redis 4.3, pinned in pyproject).

    Returns None for any other layer, else the messages it did not send: those of a shard whose
    internals are not what this expects (a channels_redis that renamed them), for group_send.
    Every internal is looked up before anything is published, so none is sent twice."""
    try:
        from channels_redis.pubsub import RedisPubSubChannelLayer
    except ImportError:
        return None
    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    try:
        loop_layer = layer._get_layer()
        channel_of, shard_of = loop_layer._get_group_channel_name, loop_layer._get_shard
        by_shard: dict[Any, list[tuple[str, dict[str, Any], str]]] = {}
        for group, message in messages:
            channel = channel_of(group)
            by_shard.setdefault(shard_of(channel), []).append((group, message, channel))
    except AttributeError as error:
        _internals_changed(error)
        return messages
    left: list[tuple[str, dict[str, Any]]] = []
    for shard, items in by_shard.items():
        try:
            lock, ensure_redis = shard._lock, shard._ensure_redis
        except AttributeError as error:
            _internals_changed(error)
            left += [(group, message) for group, message, _ in items]
            continue
        payloads = [layer.serialize(message) for _, message, _ in items]
        lengths = " ".join([str(len(payload)) for payload in payloads])
        channels = "\n".join([channel for _, _, channel in items])
        async with lock:
            ensure_redis()
            client = getattr(shard, "_redis", None)
            if client is None:
                _internals_changed(AttributeError(f"{type(shard).__name__} has no connection in _redis"))
                left += [(group, message) for group, message, _ in items]
                continue
            await client.eval(PUBLISH_SCRIPT, 0, channels, lengths, b"".join(payloads))
    return left


_internals_reported: set[str] = set()


def _internals_changed(error: Exception) -> None:
    """Say once per process and cause that the pipelined publish is off."""
    reason = str(error)
    if reason in _internals_reported:
        return
    _internals_reported.add(reason)
    log.warning(
        "channels_redis's internals are not as this version expects (%s): live batches go by "
        "group_send, one round trip each (livecharts_publish_fallback_batches_total counts them); "
        "install the channels-redis version pyproject.toml pins",
        reason,
    )


def _take_ids(clock: IdClock, count: int) -> list[str]:
    """`count` increasing ids from one reading of the clock: the batch's first id as
    `clock.next()` gives it, the rest its sequence numbers after it, in the same millisecond."""
    ms, first = clock.next()
    clock.last = (ms, first + count - 1)
    prefix = f"{ms}-"
    return [prefix + str(seq) for seq in range(first, first + count)]


def _call_all(slug: str, callbacks: list[Callable[[], None]]) -> None:
    """Tell the sources of a stored batch; one that fails must not stop the tick."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("stream %s: a stored-points callback failed", slug)


def _finite(points: Iterable[Point]) -> list[Point]:
    """The points with every non-finite value made a gap (None)."""
    points = list(points)
    isfinite = math.isfinite
    for index, point in enumerate(points):
        for value in point.values.values():
            if value is not None and not isfinite(value):
                points[index] = Point(
                    t=point.t,
                    values={k: v if v is None or isfinite(v) else None for k, v in point.values.items()},
                )
                break
    return points


BROADCASTER = "broadcast.broadcaster"


def get_broadcaster() -> Broadcaster:
    """This event loop's broadcaster (one per process in practice; tests run many loops)."""
    return runtime.get(BROADCASTER, _new_broadcaster)


def _new_broadcaster() -> Broadcaster:
    return Broadcaster(
        history=get_history(),
        tick_seconds=settings.LIVECHARTS_TICK_MS / 1000,
        persister=Persister() if settings.LIVECHARTS_STORE_POINTS else None,
    )


def all_broadcasters() -> list[Broadcaster]:
    """Every loop's broadcaster in this process (for /metrics: their `stats`)."""
    return runtime.all(BROADCASTER)
