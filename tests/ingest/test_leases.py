"""Redis leases split streams between ingest workers, share them out by load (the plan), hand
them over at a flush, and move them when a worker dies."""

from __future__ import annotations

import pytest

from streams.core.retention import Retention
from streams.ingest.leases import Leases
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


# Sharing the streams out (plan, survey) ------------------------------------------------------


def survey(owners: dict[str, str | None], *, workers: list[str], rates: dict[str, float] | None = None):
    from streams.ingest.leases import Survey

    return Survey(workers=workers, owners=owners, rates=rates or dict.fromkeys(owners, 20.0))


def counts(owners: dict[str, str | None]) -> dict[str | None, int]:
    return {owner: list(owners.values()).count(owner) for owner in set(owners.values())}


def settle(owners: dict[str, str | None], workers: list[str], rates: dict[str, float] | None = None) -> int:
    """Run every worker's plan, round after round (each releases, then each claims), until
    nothing moves; the rounds it took."""
    from streams.ingest.leases import plan

    for rounds in range(1, 50):
        moved = False
        for worker in workers:
            for slug in plan(me=worker, survey=survey(owners, workers=workers, rates=rates)).release:
                owners[slug], moved = None, True
        for worker in workers:
            for slug in plan(me=worker, survey=survey(owners, workers=workers, rates=rates)).claim:
                assert owners[slug] is None, "planned to claim a stream someone holds"
                owners[slug], moved = worker, True
        if not moved:
            return rounds
    raise AssertionError(f"never settled: {owners}")


def test_free_streams_go_to_the_least_loaded_workers():
    from streams.ingest.leases import plan

    owners = {f"s{i}": None for i in range(6)}
    first = plan(me="a", survey=survey(owners, workers=["a"]))
    assert first.claim == set(owners) and not first.release
    # Two workers see the same survey: they split the free streams, no stream claimed by both.
    a = plan(me="a", survey=survey(owners, workers=["a", "b"])).claim
    b = plan(me="b", survey=survey(owners, workers=["a", "b"])).claim
    assert a | b == set(owners) and not a & b and len(a) == len(b) == 3


def test_a_worker_that_joins_gets_its_share_and_nothing_flaps():
    owners: dict[str, str | None] = {f"s{i}": "a" for i in range(6)}
    settle(owners, ["a", "b"])
    assert counts(owners) == {"a": 3, "b": 3}
    settle(owners, ["a", "b", "c"])
    assert counts(owners) == {"a": 2, "b": 2, "c": 2}
    # Settled: another round moves nothing.
    assert settle(owners, ["a", "b", "c"]) == 1


def test_a_leaving_workers_streams_spread_over_the_rest():
    owners: dict[str, str | None] = {f"s{i}": "abc"[i % 3] for i in range(6)}
    for slug, owner in owners.items():
        if owner == "b":
            owners[slug] = None  # b released them at its stop
    settle(owners, ["a", "c"])
    assert counts(owners) == {"a": 3, "c": 3}


def test_an_uneven_split_stays_put_when_rates_wobble():
    # 5 streams on 2 workers: 3 against 2 is a gap of one stream, which no move narrows.
    owners: dict[str, str | None] = {"s0": "a", "s1": "a", "s2": "a", "s3": "b", "s4": "b"}
    rates = {"s0": 21.0, "s1": 20.5, "s2": 19.0, "s3": 18.0, "s4": 19.5}
    assert settle(owners, ["a", "b"], rates) == 1
    assert counts(owners) == {"a": 3, "b": 2}


def test_loads_a_tenth_apart_are_left_alone_and_a_real_difference_is_not():
    # Ten streams each: bursty sources measured 10 % above and below their usual rate.
    owners: dict[str, str | None] = {**{f"a{i}": "a" for i in range(10)}, **{f"b{i}": "b" for i in range(10)}}
    wobble = {**{f"a{i}": 22.0 for i in range(10)}, **{f"b{i}": 18.0 for i in range(10)}}
    assert settle(dict(owners), ["a", "b"], wobble) == 1
    # Streams twice as busy on one worker: that is worth a move.
    busy = {**{f"a{i}": 30.0 for i in range(10)}, **{f"b{i}": 15.0 for i in range(10)}}
    assert settle(owners, ["a", "b"], busy) > 1
    loads = {w: sum(busy[s] + 1 for s, o in owners.items() if o == w) for w in ("a", "b")}
    assert abs(loads["a"] - loads["b"]) <= 0.2 * sum(loads.values()) / 2


def test_streams_are_shared_by_points_per_second_not_by_count():
    # One busy stream weighs as much as ten quiet ones.
    rates = {"busy": 100.0, **{f"q{i}": 9.0 for i in range(10)}}
    owners: dict[str, str | None] = dict.fromkeys(rates, "a")
    settle(owners, ["a", "b"], rates)
    busy_owner = owners["busy"]
    assert sum(1 for owner in owners.values() if owner == busy_owner) == 1  # the busy one alone
    assert counts(owners)[{"a": "b", "b": "a"}[busy_owner]] == 10


def test_free_streams_are_given_out_first_and_moves_planned_on_top():
    from streams.ingest.leases import plan

    # A stream in flight (released by one worker, not yet claimed by its taker) is in the plan.
    owners: dict[str, str | None] = {**{f"s{i}": "a" for i in range(6)}, "s6": None}
    assert plan(me="b", survey=survey(owners, workers=["a", "b"])).claim == {"s6"}
    assert len(plan(me="a", survey=survey(owners, workers=["a", "b"])).release) == 2  # 4 and 3


def test_nothing_is_handed_over_while_a_dead_workers_leases_run_out():
    from streams.ingest.leases import plan

    owners: dict[str, str | None] = {**{f"s{i}": "a" for i in range(6)}, "s6": "dead"}
    assert not plan(me="a", survey=survey(owners, workers=["a", "b"])).release
    owners["s6"] = "a"
    assert len(plan(me="a", survey=survey(owners, workers=["a", "b"])).release) == 3


async def test_a_survey_sees_live_workers_owners_and_rates(redis_prefix):
    first, second = pair(redis_prefix, lease_ms=300)
    await first.hold(["a", "b"], held=set())
    seen = await first.survey(["a", "b", "c"], rates={"a": 12.5, "b": 3.0})
    assert seen.workers == [first.owner]
    assert seen.owners == {"a": first.owner, "b": first.owner, "c": None}
    assert seen.rates == {"a": 12.5, "b": 3.0}
    seen = await second.survey(["a", "c"], rates={})
    assert sorted(seen.workers) == sorted([first.owner, second.owner])
    # A stream no longer enabled weighs nothing any more.
    assert seen.rates == {"a": 12.5}
    # A clean stop leaves at once; a dead worker's heartbeat runs out.
    await second.leave()
    assert (await first.survey([], rates={})).workers == [first.owner]

    # first's heartbeat (300 ms, on Redis's own clock) runs out while second's is renewed.
    async def only_second_alive() -> bool:
        return (await second.survey([], rates={})).workers == [second.owner]

    await eventually(only_second_alive, what="first's heartbeat to run out")


async def test_a_stream_being_handed_over_is_renewed_but_never_claimed_again(redis_prefix):
    first, _ = pair(redis_prefix)
    await first.hold(["a"], held=set())
    assert await first.hold(["a"], held={"a"}, renew_only={"a"}) == {"a"}
    await first.release(["a"])
    assert await first.hold(["a"], held={"a"}, renew_only={"a"}) == set()


# The supervisor's part: hand-over at a flush ---------------------------------------------------


async def settled_sync(supervisor) -> None:
    """One rescan, and the hand-over it may start run to its end."""
    await supervisor.sync()
    if supervisor.handover is not None:
        await supervisor.handover


def owners_of(supervisor, slugs) -> dict[str, str | None]:
    import redis as redis_sync

    client = redis_sync.from_url(supervisor.leases.url, decode_responses=True)
    try:
        return {slug: client.get(supervisor.leases.key(slug)) for slug in slugs}
    finally:
        client.close()


@pytest.mark.django_db(transaction=True)
async def test_a_worker_hands_streams_over_only_once_flushed_and_keeps_what_it_could_not_flush(
    redis_layer, settings, monkeypatch
):
    from channels.db import database_sync_to_async

    from streams.broadcast import get_broadcaster
    from streams.ingest.supervisor import HANDOVER_SCANS, Supervisor
    from streams.models import Stream
    from streams.storage.store import read_after

    settings.LIVECHARTS_STORE_POINTS = True
    slugs = ["a", "b", "c", "d"]
    for slug in slugs:
        await database_sync_to_async(Stream.objects.create)(
            slug=slug, title=slug, feed_settings={"rate": 20}, store_points=True
        )
    first, second = Supervisor(), Supervisor()
    try:
        await first.sync()
        assert set(first.tasks) == set(slugs)
        history = get_broadcaster().history

        async def all_have_points() -> bool:
            return all([await history.last_entry(slug) for slug in slugs])

        await eventually(all_have_points, what="points in history for every stream")
        await second.sync()  # alive now; the first holds everything until it hands over
        assert second.tasks == {}
        persister = get_broadcaster().persister
        assert persister is not None

        async def broken() -> None:
            raise ConnectionError("the database is gone")

        # The database refuses the flush: nothing is released (the next owner would store the
        # window's tail that this worker still means to write: points stored twice).
        monkeypatch.setattr(persister, "flush", broken)
        for _ in range(HANDOVER_SCANS):
            await settled_sync(first)
        assert set(owners_of(first, slugs).values()) == {first.leases.owner}
        assert first.kept and not first.leaving
        await first.sync()
        assert set(first.tasks) == set(slugs), "the streams it could not hand over run again"
        assert not first.kept

        monkeypatch.undo()
        for _ in range(HANDOVER_SCANS):
            await settled_sync(first)
        given = {slug for slug, owner in owners_of(first, slugs).items() if owner is None}
        assert len(given) == 2 and set(first.tasks) == set(slugs) - given
        # Released after the flush: every point the first worker's feeds made is stored.
        for slug in given:
            window = await history.read(slug, after=None, retention=Retention())
            stored = await database_sync_to_async(read_after)(slug, after=None, limit=10_000)
            assert window.entries and [e.id for e in stored] == [e.id for e in window.entries]
        await second.sync()
        assert set(second.tasks) == given
        # Settled: more rescans move nothing.
        for _ in range(HANDOVER_SCANS + 1):
            await settled_sync(first)
            await settled_sync(second)
        assert set(second.tasks) == given and set(first.tasks) == set(slugs) - given
    finally:
        await first.stop_all()
        await second.stop_all()
