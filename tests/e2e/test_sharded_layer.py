"""The channel layer sharded over two Redis servers (LIVECHARTS_LAYER_REDIS_URLS): one worker and
two daphne processes; each stream's group lives on the shard its name hashes to, and a viewer
on either daphne gets the same batches of streams on both shards.

The shared Redis is shard 0 (and REDIS_URL: history, leases); a private redis-server on a free
port is shard 1."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest
import redis
from channels_redis.utils import _consistent_hash
from websockets.asyncio.client import connect

from tests.processes import (
    STACK_PASSWORD,
    make_stack,
    on_free_port,
    seed_streams,
    start_daphne_at,
    start_redis,
)
from tests.services import missing, require_redis

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BATCHES = 10  # per stream and viewer: half a second of a 20 points/s stream at 50 ms ticks


def group_channel(prefix: str, slug: str) -> str:
    """The Redis channel RedisPubSubChannelLayer publishes a stream's group on
    (settings: prefix `<LIVECHARTS_REDIS_PREFIX>:asgi`; broadcast.group_name)."""
    return f"{prefix}:asgi__group__stream.{slug}"


def slug_on_each_shard(prefix: str) -> list[str]:
    """Two slugs whose groups hash to shard 0 and shard 1, as every process hashes them."""
    chosen: dict[int, str] = {}
    for number in range(100):
        slug = f"sharded-{number}"
        chosen.setdefault(_consistent_hash(group_channel(prefix, slug), 2), slug)
        if len(chosen) == 2:
            return [chosen[0], chosen[1]]
    raise AssertionError("no slug hashed to both shards")


async def watch(
    ws_url: str, origin: str, slugs: list[str], *, ready: asyncio.Event, done: asyncio.Event
) -> dict[str, list[dict]]:
    """Subscribe to every slug on one socket and collect BATCHES of each, chained by prev; then
    set `ready` and hold the socket open until `done` (the shards are looked at meanwhile)."""
    batches: dict[str, list[dict]] = {slug: [] for slug in slugs}
    async with connect(ws_url, origin=origin, open_timeout=10) as socket:
        for slug in slugs:
            await socket.send(json.dumps({"op": "subscribe", "stream": slug, "after": None}))
        deadline = time.monotonic() + 30
        while min(len(each) for each in batches.values()) < BATCHES:
            assert time.monotonic() < deadline, f"batches so far: { {s: len(b) for s, b in batches.items()} }"
            frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
            assert frame["op"] != "error", frame
            for batch in frame.get("data", []) if frame["op"] == "points" else []:
                held = batches[batch["stream"]]
                if held:
                    assert batch["prev"] == held[-1]["id"], "a batch was lost on the live path"
                held.append(batch)
        ready.set()
        await asyncio.wait_for(done.wait(), timeout=30)
    return batches


def flatten(batches: list[dict]) -> list[tuple[float, tuple]]:
    """Every point of a viewer's batches: (t, its value in each series, by series name)."""
    return [
        (t, tuple((name, values[index]) for name, values in sorted(batch["y"].items())))
        for batch in batches
        for index, t in enumerate(batch["t"])
    ]


def subscribers(client: redis.Redis, channel: str) -> int:
    return client.pubsub_numsub(channel)[0][1]


def test_two_daphne_processes_over_a_two_shard_layer_show_the_same_points(tmp_path, redis_prefix):
    shared = require_redis()
    if shutil.which("redis-server") is None:
        missing("redis-server", "the redis-server program (apt-get install -y redis-server)")
    port, private = on_free_port(start_redis)
    shards = [redis.from_url(shared), redis.Redis(port=port)]
    stack = make_stack(workdir=tmp_path, redis_url=shared, prefix=redis_prefix)
    stack.env["LIVECHARTS_LAYER_REDIS_URLS"] = f"{shared},redis://127.0.0.1:{port}/0"
    slugs = slug_on_each_shard(redis_prefix)
    try:
        stack.seed(STACK_PASSWORD)
        seed_streams(
            stack,
            [
                {
                    "slug": slug,
                    "title": slug,
                    "feed_kind": "simulate",
                    "feed_settings": {"rate": 20},
                    "visibility": "public",
                }
                for slug in slugs
            ],
        )
        stack.start_ingest()
        stack.start_daphne()
        other, _ = on_free_port(lambda port: start_daphne_at(stack, "daphne-b", port=port))

        async def scenario() -> tuple[list[dict[str, list[dict]]], dict[str, list[int]]]:
            ready = [asyncio.Event(), asyncio.Event()]
            done = asyncio.Event()
            watchers = asyncio.gather(
                watch(stack.ws_url, stack.base_url, slugs, ready=ready[0], done=done),
                watch(
                    f"ws://127.0.0.1:{other}/ws/",
                    f"http://127.0.0.1:{other}",
                    slugs,
                    ready=ready[1],
                    done=done,
                ),
            )
            waiting = asyncio.ensure_future(asyncio.gather(*(event.wait() for event in ready)))
            await asyncio.wait([waiting, watchers], return_when=asyncio.FIRST_COMPLETED)
            # Both viewers are watching both streams: count each group's subscribers per shard.
            counts = {
                slug: [subscribers(shard, group_channel(redis_prefix, slug)) for shard in shards]
                for slug in slugs
            }
            done.set()
            return await watchers, counts

        (seen_a, seen_b), counts = asyncio.run(scenario())

        # Each group is subscribed once per daphne process, on the shard its name hashes to only.
        assert counts == {slugs[0]: [2, 0], slugs[1]: [0, 2]}
        # The same points through either process: over the span both watched, the same times
        # and values (a first batch is the backfill: the window so far, under the live id).
        for slug in slugs:
            points_a, points_b = flatten(seen_a[slug]), flatten(seen_b[slug])
            start = max(points_a[0][0], points_b[0][0])
            end = min(points_a[-1][0], points_b[-1][0])
            common_a = [point for point in points_a if start <= point[0] <= end]
            common_b = [point for point in points_b if start <= point[0] <= end]
            assert len(common_a) >= BATCHES // 2, f"{slug}: the viewers watched no common span"
            assert common_a == common_b, f"{slug}: the two processes showed different points"
    finally:
        stack.stop_all()
        for client in shards:
            client.close()
        private.terminate()
        private.wait(timeout=10)
