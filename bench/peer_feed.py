"""The peers bench's feed for the real peers: points at an exact rate, run after run.

    PEER_REDIS_URL=... PEER_PREFIX=... DJANGO_SETTINGS_MODULE=bench.peer_eventstream \
        .venv/bin/python -m bench.peer_feed      (then one JSON command per line on stdin)

The same line protocol as bench/publisher.py (which feeds LiveCharts in the same bench):
each command is `{"protocol": ..., "streams": [...], "rate": R, "seconds": D}`; the feed
prints "READY", reads a start time (epoch seconds) from stdin, publishes R points/s into
every stream for D seconds, each point's `t` its publish time in ms (so receipt minus `t` is
publish-to-receipt latency), and prints one "RESULT" line.

- `redis-stream` (Dash, Bokeh): every 5 ms step, one XADD of the step's points
  (`{"t": [...], "y": [...]}`, `entry_of`) to the chart's Redis stream (`stream_key`), which
  the Dash callbacks and the Bokeh server read.
- `eventstream` (django-eventstream): the points of each 50 ms tick as one
  `send_event(stream, "message", {"n": count, "t": [...], "y": [...]})`, the library's own
  call, which publishes on Redis for every daphne (EVENTSTREAM_REDIS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import redis.asyncio

STEP_SECONDS = 0.005  # as bench/publisher.py: a 1,000 points/s feed sends 5 at a time
TICK_SECONDS = 0.05  # one send_event per tick, as LiveCharts' 50 ms broadcast tick
MAXLEN = 100_000  # points a chart's Redis stream keeps (approximately: MAXLEN ~)
WINDOW = 10_000  # points a peer's chart keeps (extendData maxPoints, stream rollover), as LiveCharts'


def stream_key(prefix: str, stream: str) -> str:
    """The Redis stream holding a chart's points, read by the Dash and Bokeh peers."""
    return f"{prefix}:peerstream:{stream}"


def entry_of(points: list[tuple[float, float]]) -> dict[str, str]:
    """A Redis stream entry holding a batch of points (one XADD per 5 ms step, not per point:
    a Dash callback or the Bokeh reader decodes 200 entries a second, not 1,000)."""
    return {"t": json.dumps([t for t, _ in points]), "y": json.dumps([y for _, y in points])}


def points_of(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> tuple[list[float], list[float]]:
    """(times, values) of the points in Redis stream entries written by `entry_of`."""
    times: list[float] = []
    values: list[float] = []
    for _, fields in entries:
        times += json.loads(fields[b"t"])
        values += json.loads(fields[b"y"])
    return times, values


class Feed:
    def __init__(self) -> None:
        self.redis = redis.asyncio.Redis.from_url(
            os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
        )
        self.prefix = os.environ.get("PEER_PREFIX", "bench")

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        protocol, streams, rate = command["protocol"], command["streams"], command["rate"]
        if protocol not in ("redis-stream", "eventstream"):
            raise ValueError(f"unknown protocol {protocol!r}")
        total = round(rate * command["seconds"])
        print("READY", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() == "cancel":  # a client process could not connect its viewers
            return {"cancelled": True}
        await asyncio.sleep(max(0.0, float(line) - time.time()))
        cpu0, began = time.process_time(), time.monotonic()
        sent, lag, pending, last_tick = 0, 0.0, [], began
        while sent < total:
            due = min(total, int((time.monotonic() - began) * rate) + 1)
            now = round(time.time() * 1000, 3)
            points = [(now, float(n)) for n in range(sent, due)]
            if protocol == "redis-stream":
                await self.append(streams, points)
            else:
                pending += points
                if time.monotonic() - last_tick >= TICK_SECONDS or due == total:
                    self.send_events(streams, pending)
                    pending, last_tick = [], time.monotonic()
            sent = due
            lag = max(lag, time.monotonic() - began - sent / rate)
            await asyncio.sleep(STEP_SECONDS)
        return {
            "published": sent * len(streams),
            "seconds": time.monotonic() - began,
            "cpu_seconds": time.process_time() - cpu0,
            "max_lag": lag,
        }

    async def append(self, streams: list[str], points: list[tuple[float, float]]) -> None:
        if not points:
            return
        entry = entry_of(points)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xadd(stream_key(self.prefix, stream), entry, maxlen=MAXLEN, approximate=True)
            await pipe.execute()

    def send_events(self, streams: list[str], points: list[tuple[float, float]]) -> None:
        from django_eventstream import send_event

        if not points:
            return
        data = {"n": len(points), "t": [t for t, _ in points], "y": [y for _, y in points]}
        for stream in streams:
            send_event(stream, "message", data)


async def serve() -> None:
    feed = Feed()
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        result = await feed.run(json.loads(line))
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m bench.peer_feed", description=__doc__.split("\n")[0]).parse_args(
        argv
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer_eventstream")
    import django

    django.setup()  # send_event reads EVENTSTREAM_REDIS from the eventstream peer's settings
    asyncio.run(serve())


if __name__ == "__main__":
    main()
