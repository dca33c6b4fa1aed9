"""Two `manage.py ingest` workers share the streams through Redis leases (streams/ingest/leases.py;
how they share: tests/e2e/test_balance.py): kill -9 of one, its streams resume on the other
within the lease time; SIGTERM of one, it exits within 10 s and hands its leases over at once.
Nothing stored twice, nothing lost on a handoff. A pushed request leaves its inbox only once
its points are in history (a kill -9 loses none)."""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis as redis_sync

from tests.processes import Stack, seed_streams
from tests.services import require_redis
from tests.waits import eventually, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SLUGS = ("line", "second", "third")
RATE = 20  # points/s of every simulate stream here


def simulated(slug: str, *, rate: int = RATE, **more: object) -> dict:
    """A public stream simulated at `rate` points/s with one series "v" (`more` adds keys)."""
    return {
        "slug": slug,
        "title": slug,
        "visibility": "public",
        "feed_kind": "simulate",
        "feed_settings": {"rate": rate, "series": ["v"]},
        **more,
    }


MORE = [simulated(slug) for slug in SLUGS[1:]]
# What the issue asks of a takeover after kill -9 (the lease is 5 s, rescans 1 s apart).
TAKEOVER_LIMIT_SECONDS = 10.0


@contextlib.contextmanager
def workers_of(stack: Stack, streams: list[dict]) -> Iterator[Workers]:
    """`streams` seeded in the stack (beside its "line"), and what Redis says of its workers."""
    seed_streams(stack, streams)
    workers = Workers(stack)
    try:
        yield workers
    finally:
        workers.redis.close()


class Workers:
    """The stack's workers and what Redis says about them (leases and live windows)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.prefix = stack.env["LIVECHARTS_REDIS_PREFIX"]
        self.redis = redis_sync.from_url(require_redis(), decode_responses=True)

    def start(self, name: str) -> subprocess.Popen:
        """A worker, once it has claimed what it could and started those feeds."""
        return self.stack.start_ingest(name)

    def start_two(self) -> tuple[subprocess.Popen, subprocess.Popen]:
        """ingest-a, once it holds every stream, then ingest-b, once they share the streams
        (tests/e2e/test_balance.py): the second takes one of the three."""
        first = self.start("ingest-a")
        self.wait(lambda: self.all_held_by(first), what="the first worker to hold every stream")
        second = self.start("ingest-b")
        self.wait(lambda: self.shared(first, second), what="the workers to share the streams")
        return first, second

    def owner_pid(self, slug: str) -> int | None:
        owner = self.redis.get(f"{self.prefix}:lease:{slug}")
        return None if owner is None else int(owner.split(":")[1])

    def last_id(self, slug: str) -> str | None:
        newest = self.redis.xrevrange(f"{self.prefix}:window:{slug}", count=1)
        return newest[0][0] if newest else None

    def window(self, slug: str) -> list[str]:
        return [entry_id for entry_id, _ in self.redis.xrange(f"{self.prefix}:window:{slug}")]

    def all_held_by(self, proc: subprocess.Popen) -> bool:
        return all(self.owner_pid(slug) == proc.pid for slug in SLUGS)

    def shared(self, first: subprocess.Popen, second: subprocess.Popen) -> bool:
        """Two of the three streams on `first`, one on `second`: as even as three goes."""
        owners = [self.owner_pid(slug) for slug in SLUGS]
        return owners.count(first.pid) == 2 and owners.count(second.pid) == 1

    @staticmethod
    def wait(check, *, what: str, seconds: float = 30) -> float:
        """Poll `check` until true; the seconds it took. The bound only stops a hung test."""
        started = time.monotonic()
        wait_until(check, what=what, within=seconds)
        return time.monotonic() - started

    def wait_for_renewals(self, proc: subprocess.Popen) -> None:
        """Until `proc` has renewed its lease of every stream (seen as the lease's time to
        live going back up): it keeps them while another worker runs."""
        renewed: set[str] = set()
        ttls = {slug: self.redis.pttl(f"{self.prefix}:lease:{slug}") for slug in SLUGS}

        def all_renewed() -> bool:
            for slug in SLUGS:
                ttl = self.redis.pttl(f"{self.prefix}:lease:{slug}")
                if ttl > ttls[slug] and self.owner_pid(slug) == proc.pid:
                    renewed.add(slug)
                ttls[slug] = ttl
            return renewed == set(SLUGS)

        self.wait(all_renewed, what=f"worker {proc.pid} to renew every lease", seconds=60)

    def wait_for_points(self, count: int) -> None:
        """Until every stream's window holds `count` points more than now."""
        sizes = {slug: self.redis.xlen(f"{self.prefix}:window:{slug}") for slug in SLUGS}
        for slug in SLUGS:
            self.wait(
                lambda slug=slug: self.redis.xlen(f"{self.prefix}:window:{slug}") >= sizes[slug] + count,
                what=f"{count} more points of {slug}",
                seconds=60,
            )


def stored(stack: Stack, slug: str) -> tuple[list[str], list[float]]:
    """Every point stored in the database for `slug`: ids and times, oldest first."""
    code = (
        "import json\n"
        "from streams.storage.store import read_after\n"
        f"entries = read_after({slug!r}, after=None, limit=10**6)\n"
        "print(json.dumps([[e.id for e in entries], [e.point.t for e in entries]]))"
    )
    result = stack.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    ids, times = json.loads(result.stdout.strip().splitlines()[-1])
    return ids, times


def id_key(point_id: str) -> tuple[int, int]:
    ms, seq = point_id.split("-")
    return int(ms), int(seq)


def assert_stored_once_and_in_order(stack: Stack, workers: Workers, slug: str) -> None:
    ids, times = stored(stack, slug)
    assert ids, f"{slug}: nothing stored"
    assert len(ids) == len(set(ids)), f"{slug}: a point was stored twice"
    assert all(id_key(a) < id_key(b) for a, b in itertools.pairwise(ids)), f"{slug}: ids out of order"
    assert len(times) == len(set(times)), f"{slug}: two stored points share a timestamp"
    assert all(a < b for a, b in itertools.pairwise(times)), f"{slug}: times out of order"
    # Everything the live window still holds (every point of this short run) is stored too.
    missing = sorted(set(workers.window(slug)) - set(ids), key=id_key)
    assert not missing, f"{slug}: {len(missing)} points in the live window were never stored: {missing[:5]}"


@pytest.fixture
def workers(stack: Stack) -> Iterator[Workers]:
    with workers_of(stack, MORE) as workers:
        yield workers


def test_kill_9_of_a_worker_moves_its_streams_to_the_other_within_the_lease_time(
    stack: Stack, workers: Workers, record_property
):
    first, second = workers.start_two()

    moving = [slug for slug in SLUGS if workers.owner_pid(slug) == first.pid]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = time.monotonic()
    stack.procs.pop("ingest-a")
    last = {slug: workers.last_id(slug) for slug in SLUGS}
    resumed = {}
    for slug in moving:
        workers.wait(
            lambda slug=slug: workers.owner_pid(slug) == second.pid and workers.last_id(slug) != last[slug],
            what=f"{slug} to resume on the second worker",
        )
        resumed[slug] = time.monotonic() - killed_at
    slowest = max(resumed.values())
    record_property("takeover_seconds", round(slowest, 2))
    print(f"takeover after kill -9: {', '.join(f'{s} {v:.2f} s' for s, v in resumed.items())}")
    assert slowest < TAKEOVER_LIMIT_SECONDS

    workers.wait_for_points(RATE)  # points from the second worker, then a clean stop that flushes them
    stack.stop("ingest-b")
    for slug in SLUGS:
        assert_stored_once_and_in_order(stack, workers, slug)


def test_sigterm_stops_a_worker_within_10_s_and_hands_its_streams_over_at_once(
    stack: Stack, workers: Workers, record_property
):
    first, second = workers.start_two()

    first.send_signal(signal.SIGTERM)
    first.wait(timeout=10)  # TimeoutExpired fails the test: systemd would have to kill it
    stack.procs.pop("ingest-a")
    # Released, not left to expire: the moment it has exited, no lease still names it.
    assert not any(workers.owner_pid(slug) == first.pid for slug in SLUGS)
    took = workers.wait(lambda: workers.all_held_by(second), what="the second worker to take every stream")
    record_property("handover_seconds", round(took, 2))
    print(f"handover after SIGTERM: {took:.2f} s after the first worker exited")
    last = {slug: workers.last_id(slug) for slug in SLUGS}
    for slug in SLUGS:
        workers.wait(lambda slug=slug: workers.last_id(slug) != last[slug], what=f"{slug} to resume")

    workers.wait_for_points(RATE)
    stack.stop("ingest-b")
    for slug in SLUGS:
        assert_stored_once_and_in_order(stack, workers, slug)


@pytest.mark.django_db(transaction=True)
async def test_a_push_request_leaves_the_inbox_only_once_its_points_are_in_history(
    redis_layer, settings, monkeypatch
):
    from channels.db import database_sync_to_async

    from streams.broadcast import get_broadcaster
    from streams.core import runtime
    from streams.core.points import Point
    from streams.ingest.inbox import get_inbox
    from streams.ingest.supervisor import Supervisor
    from streams.models import Stream

    # A long tick, so a tick boundary cannot fall by chance between publish and acknowledge.
    settings.LIVECHARTS_TICK_MS = 5_000
    runtime.reset()
    await database_sync_to_async(Stream.objects.create)(slug="pushed", title="Pushed", feed_kind="push")
    inbox = get_inbox()
    queued_at_ack: list[int] = []
    acknowledge = inbox.done

    async def done(slug, taken):
        queued_at_ack.append(get_broadcaster().waiting(slug))  # points not yet in history
        await acknowledge(slug, taken)

    monkeypatch.setattr(inbox, "done", done)
    supervisor = Supervisor()
    await supervisor.sync()
    try:
        await inbox.put("pushed", [Point(t=1_763_800_000.0, values={"value": 1.0})])
        await eventually(lambda: queued_at_ack, what="the worker to take the pushed request")
        assert queued_at_ack[0] == 0, "acknowledged while its point still waited for the tick"
    finally:
        await supervisor.stop_all()
