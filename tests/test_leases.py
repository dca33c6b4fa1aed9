"""Redis leases split streams between ingest workers and hand them over when one dies."""

from __future__ import annotations

from streams.leases import Leases
from tests.services import require_redis
from tests.waits import eventually


def pair(prefix: str, lease_ms: int = 5_000) -> tuple[Leases, Leases]:
    url = require_redis()
    return Leases(url=url, prefix=prefix, lease_ms=lease_ms), Leases(
        url=url, prefix=prefix, lease_ms=lease_ms
    )


async def test_a_stream_is_held_by_one_worker_at_a_time(redis_prefix):
    first, second = pair(redis_prefix)
    assert await first.hold(["a", "b"], held=set()) == {"a", "b"}
    assert await second.hold(["a", "b", "c"], held=set()) == {"c"}
    # Renewing keeps them.
    assert await first.hold(["a", "b"], held={"a", "b"}) == {"a", "b"}


async def test_released_streams_are_taken_over_at_once(redis_prefix):
    first, second = pair(redis_prefix)
    await first.hold(["a"], held=set())
    await first.release(["a"])
    assert await second.hold(["a"], held=set()) == {"a"}


async def test_a_dead_workers_leases_expire_and_move(redis_prefix):
    first, second = pair(redis_prefix, lease_ms=200)
    await first.hold(["a"], held=set())
    assert await second.hold(["a"], held=set()) == set()
    # first stopped renewing: once its lease runs out, second takes the stream.
    await eventually(
        lambda: second.hold(["a"], held=set()), what="second to take the lease first stopped renewing"
    )
    assert await second.hold(["a"], held={"a"}) == {"a"}
    # The old owner cannot renew a lease it lost.
    assert await first.hold(["a"], held={"a"}) == set()


async def test_without_redis_every_stream_is_ours():
    leases = Leases(url="", prefix="unused")
    assert await leases.hold(["a", "b"], held=set()) == {"a", "b"}
