"""The fan-out bench's feed: points at an exact rate into one stream, then stop.

    .venv/bin/python -m bench.publisher --stream S --rate R --seconds D [--protocol ...]

Run by bench/fanout.py with the daphne's environment (same Redis, same prefix). Sets up, prints
"READY", reads a start time (epoch seconds) from stdin, waits for it, then publishes R points/s
for D seconds, each point's `t` its publish time, so a viewer's receipt time minus `t` is
publish-to-receipt latency. Prints one JSON line at the end.

- `livecharts`: streams.broadcast.Broadcaster directly (what `ingest` does after parsing):
  points queued, one batch per tick, history append, one group_send per tick. No database.
- `point`: baseline (a), the recipe users write today: one `group_send` per point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

STEP_SECONDS = 0.005  # how often due points are published: a 1,000 points/s feed sends 5 at a time


async def publish(args: argparse.Namespace) -> dict:
    from channels.layers import get_channel_layer
    from django.conf import settings

    from streams.broadcast import Broadcaster
    from streams.feeds.base import Point
    from streams.history import Retention, get_history

    layer = get_channel_layer()
    history = get_history()
    await history.forget(args.stream)
    broadcaster = Broadcaster(
        history=history, tick_seconds=settings.LIVECHARTS_TICK_MS / 1000, layer=layer, persister=None
    )
    retention = Retention(points=args.window)
    total = round(args.rate * args.seconds)
    sent = 0
    print("READY", flush=True)
    start = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    await asyncio.sleep(max(0.0, start - time.time()))
    began = time.monotonic()
    lag = 0.0
    while sent < total:
        due = min(total, int((time.monotonic() - began) * args.rate) + 1)
        now = time.time()
        if args.protocol == "livecharts":
            points = [Point(t=now, values={"y": float(n)}) for n in range(sent, due)]
            broadcaster.publish(args.stream, points, retention=retention)
        else:
            for n in range(sent, due):
                point = {"id": n, "t": round(now * 1000, 3), "y": float(n)}
                await layer.group_send(f"chart.{args.stream}", {"type": "chart.point", "point": point})
        sent = due
        lag = max(lag, time.monotonic() - began - sent / args.rate)
        await asyncio.sleep(STEP_SECONDS)
    await broadcaster.close()
    last = await history.last_id(args.stream)
    return {
        "published": sent,
        "seconds": time.monotonic() - began,
        "last_id": last,
        "cpu_seconds": time.process_time(),
        "max_lag": lag,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.publisher", description=__doc__.split("\n")[0])
    parser.add_argument("--stream", required=True)
    parser.add_argument("--rate", type=float, required=True, help="points per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--window", type=int, default=100_000, help="points kept in history")
    parser.add_argument("--protocol", choices=["livecharts", "point"], default="livecharts")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecharts.settings")
    import django

    django.setup()
    result = asyncio.run(publish(parse_args(argv)))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
