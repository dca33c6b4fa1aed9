"""The fan-out bench's feed: points at an exact rate into one or more streams, run after run.

    .venv/bin/python -m bench.publisher      (then one JSON command per line on stdin)

Run by bench/fanout.py with the daphne's environment (same Redis, same prefix) and kept for
the whole bench, so Django and the layers are set up once. Each command line is
`{"protocol": ..., "layer": ..., "streams": [...], "rate": R, "seconds": D}`; the publisher
sets up, prints "READY", reads a start time (epoch seconds) from stdin, waits for it, then
publishes R points/s into every stream for D seconds, each point's `t` its publish time, so a
viewer's receipt time minus `t` is publish-to-receipt latency, and prints one "RESULT" line.

- `livecharts`: streams.broadcast.Broadcaster directly (what `ingest` does after parsing):
  points queued, one batch per stream per tick, history append, one group_send per tick, on
  the pub/sub layer or (`"layer": "core"`) on RedisChannelLayer. No database.
- `point`: baseline (a), the recipe users write today: one `group_send` per point.
- `raw`: baseline (b): the points of one tick encoded once as a LiveCharts frame and sent
  with one `group_send` (no history, no ids from a clock: the raw stack alone).
- `peer`: the peers (c): one Redis PUBLISH per point, which bench/peer_*.py relay as is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

STEP_SECONDS = 0.005  # how often due points are published: a 1,000 points/s feed sends 5 at a time


def peer_channel(prefix: str, stream: str) -> str:
    """The Redis pub/sub channel the peers (bench/peer_*.py) relay a stream's points from."""
    return f"{prefix}:peer:{stream}"


class Publisher:
    """Holds what outlives a run: the layers, the history, a Redis client for the peers."""

    def __init__(self) -> None:
        import redis.asyncio
        from channels.layers import get_channel_layer
        from channels_redis.core import RedisChannelLayer
        from django.conf import settings

        from streams.storage.window import get_history

        self.settings = settings
        config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
        self.layers: dict[str, Any] = {
            "pubsub": get_channel_layer(),
            # Same hosts and prefix as a daphne started with LIVECHARTS_CHANNEL_LAYER=core.
            "core": RedisChannelLayer(hosts=config["hosts"], prefix=config["prefix"]),
        }
        self.history = get_history()
        self.redis = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        self.prefix = settings.LIVECHARTS_REDIS_PREFIX
        # Baseline (b) per stream: the last id sent, so `prev` follows on from run to run.
        self.raw_last: dict[str, tuple[int, int]] = {}

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        from streams.broadcast import Broadcaster
        from streams.core.retention import Retention

        protocol, streams, rate = command["protocol"], command["streams"], command["rate"]
        layer = self.layers[command.get("layer", "pubsub")]
        tick = self.settings.LIVECHARTS_TICK_MS / 1000
        broadcaster = None
        if protocol == "livecharts":
            # A stream's later runs go on from its history, so viewers kept from the last
            # run see `prev` follow on.
            for stream in streams if command.get("fresh", True) else ():
                await self.history.drop_stream(stream)
            broadcaster = Broadcaster(history=self.history, tick_seconds=tick, layer=layer, persister=None)
        send = {
            "livecharts": self.send_livecharts,
            "point": self.send_points,
            "raw": self.send_raw,
            "peer": self.send_peer,
        }[protocol]
        state: dict[str, Any] = {"broadcaster": broadcaster, "layer": layer, "tick": tick}
        retention = Retention(points=command.get("window", 100_000))
        state["retention"] = retention
        total = round(rate * command["seconds"])
        sent = 0
        print("READY", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() == "cancel":  # a client process could not connect its viewers
            return {"cancelled": True}
        start = float(line)
        await asyncio.sleep(max(0.0, start - time.time()))
        cpu0 = time.process_time()
        began = time.monotonic()
        lag = 0.0
        while sent < total:
            due = min(total, int((time.monotonic() - began) * rate) + 1)
            await send(state, streams, range(sent, due), time.time())
            sent = due
            lag = max(lag, time.monotonic() - began - sent / rate)
            await asyncio.sleep(STEP_SECONDS)
        if protocol == "raw":
            await self.flush_raw(state, streams)
        if broadcaster is not None:
            await broadcaster.close()
        return {
            "published": sent * len(streams),
            "seconds": time.monotonic() - began,
            "cpu_seconds": time.process_time() - cpu0,
            "max_lag": lag,
        }

    async def send_livecharts(self, state: dict, streams: list[str], numbers: range, now: float) -> None:
        from streams.core.points import Point

        for stream in streams:
            points = [Point(t=now, values={"y": float(n)}) for n in numbers]
            state["broadcaster"].publish(stream, points, retention=state["retention"])

    async def send_points(self, state: dict, streams: list[str], numbers: range, now: float) -> None:
        for stream in streams:
            for n in numbers:
                point = {"id": n, "t": round(now * 1000, 3), "y": float(n)}
                await state["layer"].group_send(f"chart.{stream}", {"type": "chart.point", "point": point})

    async def send_raw(self, state: dict, streams: list[str], numbers: range, now: float) -> None:
        from streams.core.points import Point

        pending = state.setdefault("pending", {stream: [] for stream in streams})
        for stream in streams:
            pending[stream].extend(Point(t=now, values={"y": float(n)}) for n in numbers)
        tick = int(now / state["tick"])
        if tick != state.setdefault("last_tick", tick):
            state["last_tick"] = tick
            await self.flush_raw(state, streams)

    async def flush_raw(self, state: dict, streams: list[str]) -> None:
        """One tick of baseline (b): each stream's points encoded once, one group_send each."""
        from streams.core.frames import batch_text, points_frame
        from streams.core.points import Entry

        pending = state.get("pending", {})
        for stream in streams:
            points = pending.get(stream)
            if not points:
                continue
            last = self.raw_last.get(stream)
            ms, seq = last if last is not None else (int(time.time() * 1000), 0)
            entries = [Entry(id=f"{ms}-{seq + i + 1}", point=point) for i, point in enumerate(points)]
            prev = f"{ms}-{seq}" if last is not None else None
            text = points_frame([batch_text(slug=stream, prev=prev, entries=entries)])
            self.raw_last[stream] = (ms, seq + len(points))
            pending[stream] = []
            await state["layer"].group_send(f"raw.{stream}", {"type": "raw.frame", "text": text})

    async def send_peer(self, state: dict, streams: list[str], numbers: range, now: float) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                channel = peer_channel(self.prefix, stream)
                for n in numbers:
                    pipe.publish(channel, json.dumps({"id": n, "t": round(now * 1000, 3), "y": float(n)}))
            await pipe.execute()


async def serve() -> None:
    publisher = Publisher()
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        result = await publisher.run(json.loads(line))
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m bench.publisher", description=__doc__.split("\n")[0]).parse_args(
        argv
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecharts.settings")
    import django

    django.setup()
    asyncio.run(serve())


if __name__ == "__main__":
    main()
