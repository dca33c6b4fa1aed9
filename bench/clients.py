"""Viewer websocket clients for the fan-out bench: many sockets in one process, as browsers do.

    .venv/bin/python -m bench.clients --url ws://127.0.0.1:PORT/ws/ --stream S --viewers N \
        --warmup W --seconds D --expect M [--protocol livecharts|point]

Run by bench/fanout.py (two of these processes share the viewers). Connects every viewer,
subscribes, prints "READY", reads the publisher's start (epoch seconds) from stdin, then counts
what arrives until each viewer has the `M` points the publisher sends (or the drain time is
over) and prints one JSON line of results.

The `livecharts` protocol behaves like live.js: batches whose `id` is not newer than the last
are dropped, and a batch whose `prev` is not the last id makes the viewer re-subscribe with
`after` = its last id (the server answers from history), so "lost" counts points missing after
gap-fill. The `point` protocol is baseline (a): one JSON object per point, nothing to refill.

Latency is the receipt time minus the point's `t` (its publish time; one machine, one clock),
for every point received in the window by a sample of viewers (spread over the connection
order), so the clients' own bookkeeping stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect

CONNECT_CONCURRENCY = 50
LATENCY_VIEWERS = 40  # viewers per process whose every point's latency is kept


@dataclass
class Viewer:
    index: int
    sample: bool
    last_id: tuple[int, int] | None = None
    last_text: str | None = None
    received: int = 0  # unique points, whole run
    in_window: int = 0  # points received inside the window
    frames_in_window: int = 0
    resubscribes: int = 0
    gaps: int = 0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def parse_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.window = (0.0, 0.0)  # set once the start time is known
        step = max(1, args.viewers // LATENCY_VIEWERS)
        self.viewers = [Viewer(index=i, sample=i % step == 0) for i in range(args.viewers)]

    def in_window(self, now: float) -> bool:
        return self.window[0] <= now < self.window[1]

    async def viewer(self, viewer: Viewer, ready: asyncio.Semaphore, connected: list[int]) -> None:
        args = self.args
        async with ready:
            socket = await connect(args.url, origin=args.origin, max_size=2**24, ping_interval=None)
            await socket.send(json.dumps({"op": "subscribe", "stream": args.stream, "after": None}))
            # Wait for the answer, so READY means every viewer is in the group.
            while json.loads(await socket.recv()).get("op") != "subscribed":
                pass
        connected.append(viewer.index)
        try:
            if args.protocol == "livecharts":
                await self.receive_batches(viewer, socket)
            else:
                await self.receive_points(viewer, socket)
        finally:
            await socket.close()

    async def receive_batches(self, viewer: Viewer, socket: ClientConnection) -> None:
        expect = self.args.expect
        stream = self.args.stream
        async for text in socket:
            now = time.time()
            frame = json.loads(text)
            op = frame.get("op")
            if op == "gap":
                viewer.gaps += 1
                continue
            if op != "points":
                continue
            counted = self.in_window(now)
            if counted:
                viewer.frames_in_window += 1
            for batch in frame["data"]:
                key = parse_id(batch["id"])
                if viewer.last_id is not None and key <= viewer.last_id:
                    continue  # already have it (a backfill and live overlap)
                if batch["prev"] != viewer.last_text:
                    # A batch was lost on the live path: ask history for everything after ours.
                    viewer.resubscribes += 1
                    request = {"op": "subscribe", "stream": stream, "after": viewer.last_text}
                    await socket.send(json.dumps(request))
                    continue
                times = batch["t"]
                viewer.last_id, viewer.last_text = key, batch["id"]
                viewer.received += len(times)
                if counted:
                    viewer.in_window += len(times)
                    if viewer.sample:
                        ms = now * 1000
                        viewer.latencies.extend(ms - t for t in times)
            if viewer.received >= expect:
                viewer.done.set()
                return

    async def receive_points(self, viewer: Viewer, socket: ClientConnection) -> None:
        expect = self.args.expect
        async for text in socket:
            now = time.time()
            point = json.loads(text)
            viewer.received += 1
            if self.in_window(now):
                viewer.in_window += 1
                viewer.frames_in_window += 1
                if viewer.sample:
                    viewer.latencies.append(now * 1000 - point["t"])
            if viewer.received >= expect:
                viewer.done.set()
                return

    async def main(self) -> dict:
        args = self.args
        ready = asyncio.Semaphore(CONNECT_CONCURRENCY)
        connected: list[int] = []
        tasks = [asyncio.create_task(self.viewer(v, ready, connected)) for v in self.viewers]
        deadline = time.monotonic() + args.connect_timeout
        while len(connected) < len(self.viewers):
            failed = [task for task in tasks if task.done() and task.exception() is not None]
            if failed:
                raise RuntimeError(f"a viewer could not connect: {failed[0].exception()!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(connected)} of {len(self.viewers)} viewers connected")
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        start = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
        self.window = (start + args.warmup, start + args.warmup + args.seconds)
        # Own CPU over the window: if this nears one core, the clients are the bottleneck.
        await asyncio.sleep(max(0.0, self.window[0] - time.time()))
        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, self.window[1] - time.time()))
        cpu = time.process_time() - cpu0
        # Bounded: stop at the drain deadline whatever is still missing.
        end = self.window[1] + args.drain
        await asyncio.wait(tasks, timeout=max(0.1, end - time.time()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        latencies = [ms for v in self.viewers for ms in v.latencies]
        return {
            "viewers": len(self.viewers),
            "points": sum(v.in_window for v in self.viewers),
            "frames": sum(v.frames_in_window for v in self.viewers),
            "lost": sum(max(0, args.expect - v.received) for v in self.viewers),
            "complete": sum(v.received >= args.expect for v in self.viewers),
            "resubscribes": sum(v.resubscribes for v in self.viewers),
            "gaps": sum(v.gaps for v in self.viewers),
            "cpu_seconds": cpu,
            "latencies": latencies,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument(
        "--drain", type=float, default=5.0, help="seconds after the window to wait for the rest"
    )
    parser.add_argument("--expect", type=int, required=True, help="points the publisher sends in all")
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--protocol", choices=["livecharts", "point"], default="livecharts")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    result = asyncio.run(Run(parse_args(argv)).main())
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
