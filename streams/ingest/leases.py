"""Which ingest worker runs which stream: a Redis lease per stream, shared out by load.

Each worker claims streams with SET NX PX and renews the ones it holds on every rescan; a
worker that dies stops renewing, its leases expire, and another worker takes the streams over.
Workers also keep a heartbeat in a sorted set of live workers and publish each stream's rate
(points/s); from one survey of leases, workers and rates every worker computes the same plan
(`plan`): free streams go to the least loaded worker, and a worker well above the least loaded
hands streams over until the loads are even. The supervisor does the hand-over at a flush.
Without Redis (the embedded mode) there is one process, so every claim succeeds.
"""

from __future__ import annotations

import bisect
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from streams.storage.redis_clients import loop_client

LEASE_MS = 5_000

# Renew a lease we hold (ARGV[3] = '1': compare the owner, then extend, atomically), else claim
# it if it is free (ARGV[4] = '1'); 1 if it is ours now. One call per stream, all pipelined.
HOLD_SCRIPT = """
if ARGV[3] == '1' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if ARGV[4] == '1' and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# The live workers: a sorted set scored by when each one's heartbeat runs out, on Redis's clock
# (hosts' clocks may differ). Drops the expired, adds or refreshes ARGV[1] (none: only read),
# returns who is alive. ARGV[2]: the heartbeat's life in ms.
HEARTBEAT_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
# A move must shrink the gap between the two workers by at least the stream's own weight: a
# stream of weight w moves only if w <= MOVE_FRACTION * gap. So a move never reverses (after
# it, the gap is at most gap / 3 < w), and rates that wobble a little do not make streams flap
# (3 against 2 equal streams is a gap of one stream: it stays).
MOVE_FRACTION = 2 / 3
# And only between workers whose loads differ by more than this fraction of the average load: a
# move pauses the stream for a second (a live-only source loses that second), which rates that
# wander by a tenth (bursty sources) are not worth.
MIN_GAP_FRACTION = 0.2
# Every stream costs this much on top of its points/s (a task, a connection), so idle streams
# are shared out too.
BASE_WEIGHT = 1.0


@dataclass(frozen=True)
class Survey:
    """One look at the shared state: who is alive, who holds what, and each stream's rate."""

    workers: list[str]
    owners: dict[str, str | None]
    rates: dict[str, float]


@dataclass
class Plan:
    """What one worker should do now: streams to claim, streams to hand over."""

    claim: set[str] = field(default_factory=set)
    release: set[str] = field(default_factory=set)
    # Every live worker's load once the plan is done (points/s plus BASE_WEIGHT per stream).
    loads: dict[str, float] = field(default_factory=dict)
    # False while a worker no longer alive still holds leases (they run out within a lease
    # period): nothing is handed over until its streams are free and in the plan. (Free
    # streams are no reason to wait: the plan gives them out first, then plans moves.)
    settled: bool = True


def weights_of(slugs: Iterable[str], rates: Mapping[str, float]) -> dict[str, float]:
    """Each stream's weight: its rate plus BASE_WEIGHT; a stream never measured (new) counts
    as the average of those measured."""
    slugs = list(slugs)
    known = [rates[slug] for slug in slugs if slug in rates]
    average = sum(known) / len(known) if known else 0.0
    return {slug: BASE_WEIGHT + max(0.0, rates.get(slug, average)) for slug in slugs}


def plan(*, me: str, survey: Survey) -> Plan:
    """Share the streams out by weight. Deterministic: every worker that sees the same survey
    computes the same plan, and each does its own part of it (ties go by worker id)."""
    live = sorted(set(survey.workers) | {me})
    weights = weights_of(survey.owners, survey.rates)
    loads = dict.fromkeys(live, 0.0)
    # Each worker's streams as (weight, slug), lightest first: the heaviest that may move is a
    # bisection away (a worker joining 5,000 streams plans 2,500 moves in one scan).
    held: dict[str, list[tuple[float, str]]] = {worker: [] for worker in live}
    free: list[str] = []
    orphaned = False
    for slug, owner in survey.owners.items():
        if owner is None:
            free.append(slug)
        elif owner in loads:
            loads[owner] += weights[slug]
            held[owner].append((weights[slug], slug))
        else:
            orphaned = True  # a dead worker's lease, not yet expired: it comes free soon

    def least() -> str:
        return min(live, key=lambda worker: (loads[worker], worker))

    result = Plan(loads=loads, settled=not orphaned)
    # Free streams, heaviest first, each to the least loaded worker.
    for slug in sorted(free, key=lambda slug: (-weights[slug], slug)):
        taker = least()
        loads[taker] += weights[slug]
        if taker == me:
            result.claim.add(slug)
    if not result.settled:
        return result
    for streams in held.values():
        streams.sort()
    min_gap = MIN_GAP_FRACTION * sum(loads.values()) / len(live)
    # Then from the most loaded workers to the least loaded, while a move is worth it: each
    # time the heaviest stream that may move.
    while True:
        taker = least()
        for giver in sorted(live, key=lambda worker: (-loads[worker], worker)):
            streams, gap = held[giver], loads[giver] - loads[taker]
            index = bisect.bisect_right(streams, (MOVE_FRACTION * gap, "\uffff"))
            if index and gap > min_gap:
                weight, slug = streams.pop(index - 1)
                bisect.insort(held[taker], (weight, slug))
                loads[giver] -= weight
                loads[taker] += weight
                if giver == me:
                    result.release.add(slug)
                break
        else:
            return result


class Leases:
    def __init__(
        self, *, url: str | None = None, prefix: str | None = None, lease_ms: int = LEASE_MS
    ) -> None:
        self.url = settings.REDIS_URL if url is None else url
        self.prefix = settings.LIVECHARTS_REDIS_PREFIX if prefix is None else prefix
        self.lease_ms = lease_ms
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._hold: Any = None

    def _redis(self) -> Any:
        client = loop_client(self.url, user="leases", blocking=False)
        if self._hold is None:
            # Script objects: each runs on the pipeline it is given, whichever loop's.
            self._hold = client.register_script(HOLD_SCRIPT)
            self._release = client.register_script(RELEASE_SCRIPT)
            self._heartbeat = client.register_script(HEARTBEAT_SCRIPT)
        return client

    def key(self, slug: str) -> str:
        return f"{self.prefix}:lease:{slug}"

    @property
    def workers_key(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def rates_key(self) -> str:
        return f"{self.prefix}:rates"

    async def survey(self, slugs: Iterable[str], *, rates: Mapping[str, float]) -> Survey:
        """Beat our heart, publish the rates we measured, and read who holds what: one round
        trip. Without Redis: we are the only worker and every stream is free to us."""
        slugs = list(slugs)
        if not self.url:
            return Survey(workers=[self.owner], owners=dict.fromkeys(slugs), rates=dict(rates))
        client = self._redis()
        async with client.pipeline(transaction=False) as pipe:
            await self._heartbeat(keys=[self.workers_key], args=[self.owner, self.lease_ms], client=pipe)
            if rates:
                pipe.hset(self.rates_key, mapping={slug: f"{rate:.3f}" for slug, rate in rates.items()})
            if slugs:
                pipe.mget([self.key(slug) for slug in slugs])
            pipe.hgetall(self.rates_key)
            replies = await pipe.execute()
        workers = [_text(worker) for worker in replies[0]]
        owners = replies[-2] if slugs else []
        shared = {_text(slug): float(rate) for slug, rate in replies[-1].items()}
        known = set(slugs)
        gone = [slug for slug in shared if slug not in known]
        if gone:
            # Streams deleted or disabled: their rates no longer weigh anything.
            await client.hdel(self.rates_key, *gone)
        return Survey(
            workers=workers,
            owners={
                slug: None if owner is None else _text(owner)
                for slug, owner in zip(slugs, owners, strict=True)
            },
            rates={slug: rate for slug, rate in shared.items() if slug in known},
        )

    async def leave(self) -> None:
        """Leave the live workers at once (a clean stop), so the others share our streams out
        without waiting for the heartbeat to run out."""
        if not self.url:
            return
        await self._redis().zrem(self.workers_key, self.owner)

    async def hold(self, slugs: Iterable[str], *, held: set[str], renew_only: Iterable[str] = ()) -> set[str]:
        """Renew the leases in `held`, try to claim the rest; return the slugs now ours.
        `renew_only`: streams being handed over, kept while they flush but never claimed again."""
        slugs = list(slugs)
        if not self.url:
            return set(slugs)
        if not slugs:
            return set()
        renew_only = set(renew_only)
        # One round trip for all of them: a worker with thousands of streams rescans every second.
        async with self._redis().pipeline(transaction=False) as pipe:
            for slug in slugs:
                renew, claim = int(slug in held), int(slug not in renew_only)
                await self._hold(
                    keys=[self.key(slug)], args=[self.owner, self.lease_ms, renew, claim], client=pipe
                )
            replies = await pipe.execute()
        return {slug for slug, ours in zip(slugs, replies, strict=True) if ours}

    async def release(self, slugs: Iterable[str]) -> None:
        if not self.url:
            return
        slugs = list(slugs)
        if not slugs:
            return
        async with self._redis().pipeline(transaction=False) as pipe:
            for slug in slugs:
                await self._release(keys=[self.key(slug)], args=[self.owner], client=pipe)
            await pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
