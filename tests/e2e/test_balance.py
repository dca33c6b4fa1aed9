"""Ingest workers share the streams (streams/ingest/leases.py `plan`): six streams, one worker holds
them all; a second joins and takes three, a third joins and each holds two; one stops (SIGTERM)
and the other two hold three each. Each hand-over happens at a flush: every stream has every
50 ms step exactly once, in the database and in its live window, across all of it."""

from __future__ import annotations

import collections
import itertools
import json
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e.test_workers import Workers, id_key, simulated, stored, workers_of
from tests.processes import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

RATE = 20  # points/s of every stream: one step is 50 ms
STEP_MS = 1000 // RATE
SLUGS = ("line", "s2", "s3", "s4", "s5", "s6")  # "line" comes with the seeded stack
MORE = [simulated(slug, rate=RATE, window_points=5000) for slug in SLUGS[1:]]
# Generous: on an idle machine each step balances in 2-4 s (docs/deploy.md); this only stops a
# hung test.
BALANCE_DEADLINE = 60.0


def holdings(workers: Workers) -> collections.Counter[int | None]:
    return collections.Counter(workers.owner_pid(slug) for slug in SLUGS)


def wait_balanced(workers: Workers, procs: list[subprocess.Popen], share: int, *, what: str) -> float:
    """Wait until each of `procs` holds `share` streams; the seconds it took."""
    want = collections.Counter({proc.pid: share for proc in procs})
    return workers.wait(lambda: holdings(workers) == want, what=what, seconds=BALANCE_DEADLINE)


def wait_scans(workers: Workers, procs: list[subprocess.Popen], scans: int) -> None:
    """Wait until each of `procs` has rescanned `scans` times: each rescan refreshes its
    heartbeat (its score in the live workers' set)."""
    key = f"{workers.prefix}:workers"

    def beats() -> dict[int, float]:
        return {
            int(member.split(":")[1]): score
            for member, score in workers.redis.zrange(key, 0, -1, withscores=True)
        }

    seen = {proc.pid: [beats().get(proc.pid)] for proc in procs}

    def done() -> bool:
        for pid, score in beats().items():
            if pid in seen and score != seen[pid][-1]:
                seen[pid].append(score)
        return all(len(scores) > scans for scores in seen.values())

    workers.wait(done, what=f"{scans} rescans of every worker", seconds=BALANCE_DEADLINE)


def moved(stack: Stack, names: list[str]) -> int:
    """Streams handed over, by the workers' logs."""
    return sum(
        len(line.split("handed over ", 1)[1].split(", "))
        for name in names
        for line in (stack.workdir / f"{name}.log").read_text(errors="replace").splitlines()
        if "handed over " in line
    )


def assert_every_step_once(stack: Stack, workers: Workers, slug: str) -> int:
    ids, times = stored(stack, slug)
    assert len(ids) == len(set(ids)), f"{slug}: a point was stored twice"
    assert all(id_key(a) < id_key(b) for a, b in itertools.pairwise(ids)), f"{slug}: ids out of order"
    steps = [round((b - a) * 1000) for a, b in itertools.pairwise(times)]
    holes = [(i, step) for i, step in enumerate(steps) if step != STEP_MS]
    assert not holes, f"{slug}: {len(times)} points stored, steps not {STEP_MS} ms: {holes[:10]}"
    # The live window (what viewers get as backfill) holds the very same points: this run is
    # shorter than its 5,000 points.
    window = workers.redis.xrange(f"{workers.prefix}:window:{slug}")
    assert [entry_id for entry_id, _ in window] == ids, f"{slug}: the live window and the database differ"
    assert [json.loads(fields["p"])[0] for _, fields in window] == times
    return len(ids)


@pytest.fixture
def workers(stack: Stack) -> Iterator[Workers]:
    with workers_of(stack, MORE) as workers:
        yield workers


def test_workers_share_the_streams_as_they_join_and_leave_with_every_step_once(
    stack: Stack, workers: Workers, record_property
):
    first = workers.start("ingest-1")
    wait_balanced(workers, [first], 6, what="the first worker to hold every stream")

    started = time.monotonic()
    second = workers.start("ingest-2")
    two = wait_balanced(workers, [first, second], 3, what="3 streams on each of two workers")
    two_from_start = time.monotonic() - started

    started = time.monotonic()
    third = workers.start("ingest-3")
    three = wait_balanced(workers, [first, second, third], 2, what="2 streams on each of three workers")
    three_from_start = time.monotonic() - started

    # Settled: nothing moves while the membership stays.
    wait_scans(workers, [first, second, third], 4)
    names = ["ingest-1", "ingest-2", "ingest-3"]
    assert holdings(workers) == {first.pid: 2, second.pid: 2, third.pid: 2}
    assert moved(stack, names) == 5, "3 streams to the second worker, then 1 from each to the third"
    before = {slug: workers.last_id(slug) for slug in SLUGS}
    for slug in SLUGS:
        workers.wait(lambda slug=slug: workers.last_id(slug) != before[slug], what=f"{slug} to go on")

    stopped_at = time.monotonic()
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=10)
    stack.procs.pop("ingest-1")
    left = wait_balanced(workers, [second, third], 3, what="3 streams on each of the two left")
    left_from_stop = time.monotonic() - stopped_at

    # Points from the new owners, then clean stops that flush them.
    before = {slug: workers.last_id(slug) for slug in SLUGS}
    for slug in SLUGS:
        workers.wait(lambda slug=slug: workers.last_id(slug) != before[slug], what=f"{slug} to go on")
    assert moved(stack, names) == 5, "the SIGTERM'd worker's streams were released, not handed over"
    stack.stop("ingest-2")
    stack.stop("ingest-3")

    figures = {
        "second_joins_s": round(two_from_start, 2),
        "third_joins_s": round(three_from_start, 2),
        "one_leaves_s": round(left_from_stop, 2),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(
        f"balanced: {figures} (after the worker's 'running' line: {two:.2f} s, {three:.2f} s, {left:.2f} s)"
    )
    for slug in SLUGS:
        assert_every_step_once(stack, workers, slug)


def test_a_busy_stream_weighs_as_much_as_several_quiet_ones(stack: Stack, workers: Workers, record_property):
    # "line" at 120 points/s (weight 121) against five at 20 (weight 21 each, 105 together):
    # by points/s the even split is the busy one alone on one worker, not three and three.
    code = (
        "from streams.models import Stream\n"
        "Stream.objects.filter(slug='line').update(feed_settings={'rate': 120, 'series': ['a', 'b']})"
    )
    assert stack.manage("shell", "-c", code).returncode == 0
    first = workers.start("ingest-1")
    wait_balanced(workers, [first], 6, what="the first worker to hold every stream")
    rates_key = f"{workers.prefix}:rates"
    workers.wait(
        lambda: len(workers.redis.hgetall(rates_key)) == len(SLUGS), what="every stream's rate measured"
    )
    assert float(workers.redis.hget(rates_key, "line")) > 3 * float(workers.redis.hget(rates_key, "s2"))

    second = workers.start("ingest-2")
    took = workers.wait(
        lambda: (
            holdings(workers) == {first.pid: 5, second.pid: 1} and workers.owner_pid("line") == second.pid
        ),
        what="the busy stream alone on the second worker, the five quiet ones on the first",
        seconds=BALANCE_DEADLINE,
    )
    record_property("weighted_balance_s", round(took, 2))
    # And it stays so, also once the second worker has measured the busy stream itself (over
    # 5 s): more scans move nothing (one move in all).
    wait_scans(workers, [first, second], 7)
    assert moved(stack, ["ingest-1", "ingest-2"]) == 1
    assert holdings(workers) == {first.pid: 5, second.pid: 1}
