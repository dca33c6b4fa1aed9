"""Viewer clients for the fan-out bench: many sockets in one process, as browsers do.

    .venv/bin/python -m bench.clients      (then one JSON command per line on stdin)

Run by bench/fanout.py, two of these processes sharing the viewers, kept for the whole bench.
Each command line is `{"url", "origin", "streams", "viewers", "protocol", "warmup", "seconds",
"drain", "expect"}`: the process connects every viewer, subscribes it to every stream, prints
"READY", reads the publisher's start (epoch seconds) from stdin, counts what arrives until each
viewer has the `expect` points the publisher sends (or the drain time is over), prints one
"RESULT" JSON line and drops the sockets.

Protocols (how a viewer reads what the server sends):
- `livecharts` behaves like live.js: batches whose `id` is not newer than the stream's last
  are dropped, and a batch whose `prev` is not the last id makes the viewer re-subscribe with
  `after` = its last id (the server answers from history), so "lost" counts points missing
  after gap-fill.
- `batches` reads the same frames with nothing to refill from: baseline (b).
- `point` is one JSON object per websocket message: baseline (a) and the `websockets` peer.
- `sse` is one `data:` event per point from `GET <url>/events/<stream>`: the SSE peer.

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
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

CONNECT_CONCURRENCY = 50
LATENCY_VIEWERS = 40  # viewers per process whose every point's latency is kept
PROTOCOLS = ("livecharts", "batches", "point", "sse")


@dataclass
class Viewer:
    index: int
    sample: bool
    # Per stream: the last batch id held, parsed and as sent.
    last_id: dict[str, tuple[int, int]] = field(default_factory=dict)
    last_text: dict[str, str] = field(default_factory=dict)
    received: int = 0  # unique points, whole run
    in_window: int = 0  # points received inside the window
    frames_in_window: int = 0
    resubscribes: int = 0
    gaps: int = 0
    latencies: list[float] = field(default_factory=list)
    close: Any = None  # drops the connection at the end of the run
    writer: Any = None  # an SSE viewer's StreamWriter: dropping it would close the socket


def parse_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


class Run:
    def __init__(self, command: dict[str, Any]) -> None:
        self.command = command
        self.expect: int = command["expect"]
        self.window = (0.0, 0.0)  # set once the start time is known
        step = max(1, command["viewers"] // LATENCY_VIEWERS)
        self.viewers = [Viewer(index=i, sample=i % step == 0) for i in range(command["viewers"])]

    def in_window(self, now: float) -> bool:
        return self.window[0] <= now < self.window[1]

    async def viewer(self, viewer: Viewer, ready: asyncio.Semaphore, connected: list[int]) -> None:
        if self.command["protocol"] == "sse":
            async with ready:
                reader = await self.open_sse(viewer)
            connected.append(viewer.index)
            await self.receive_sse(viewer, reader)
            return
        async with ready:
            socket = await connect(
                self.command["url"], origin=self.command["origin"], max_size=2**24, ping_interval=None
            )
            viewer.close = socket.transport.abort
            streams = set(self.command["streams"])
            for stream in streams:
                await socket.send(json.dumps({"op": "subscribe", "stream": stream, "after": None}))
            # Wait for the answers, so READY means every viewer is in every group.
            while streams:
                answer = json.loads(await socket.recv())
                if answer.get("op") == "subscribed":
                    streams.discard(answer.get("stream"))
        connected.append(viewer.index)
        if self.command["protocol"] == "point":
            await self.receive_points(viewer, socket)
        else:
            await self.receive_batches(viewer, socket, refill=self.command["protocol"] == "livecharts")

    async def receive_batches(self, viewer: Viewer, socket: ClientConnection, *, refill: bool) -> None:
        expect = self.expect
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
                stream = batch["stream"]
                key = parse_id(batch["id"])
                last = viewer.last_id.get(stream)
                if last is not None and key <= last:
                    continue  # already have it (a backfill and live overlap)
                if batch["prev"] != viewer.last_text.get(stream):
                    viewer.gaps += 1
                    if refill:
                        # A batch was lost on the live path: ask history for everything after ours.
                        viewer.resubscribes += 1
                        after = viewer.last_text.get(stream)
                        await socket.send(json.dumps({"op": "subscribe", "stream": stream, "after": after}))
                        continue
                times = batch["t"]
                viewer.last_id[stream], viewer.last_text[stream] = key, batch["id"]
                viewer.received += len(times)
                if counted:
                    viewer.in_window += len(times)
                    if viewer.sample:
                        ms = now * 1000
                        viewer.latencies.extend(ms - t for t in times)
            if viewer.received >= expect:
                return

    def count_point(self, viewer: Viewer, text: str | bytes, now: float) -> None:
        viewer.received += 1
        if self.in_window(now):
            viewer.in_window += 1
            viewer.frames_in_window += 1
            if viewer.sample:
                viewer.latencies.append(now * 1000 - json.loads(text)["t"])

    async def receive_points(self, viewer: Viewer, socket: ClientConnection) -> None:
        async for text in socket:
            self.count_point(viewer, text, time.time())
            if viewer.received >= self.expect:
                return

    async def open_sse(self, viewer: Viewer) -> asyncio.StreamReader:
        url = urlsplit(self.command["url"])
        reader, viewer.writer = await asyncio.open_connection(url.hostname, url.port)
        viewer.close = viewer.writer.transport.abort
        stream = self.command["streams"][0]
        request = f"GET /events/{stream} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n\r\n"
        viewer.writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"SSE answered {head[:40]!r}")
        return reader

    async def receive_sse(self, viewer: Viewer, reader: asyncio.StreamReader) -> None:
        rest = b""
        while chunk := await reader.read(2**16):
            now = time.time()
            *events, rest = (rest + chunk).split(b"\n\n")
            for event in events:
                self.count_point(viewer, event.removeprefix(b"data: "), now)
            if viewer.received >= self.expect:
                return

    async def main(self, stdin: asyncio.StreamReader) -> dict:
        command = self.command
        ready = asyncio.Semaphore(CONNECT_CONCURRENCY)
        connected: list[int] = []
        tasks = [asyncio.create_task(self.viewer(v, ready, connected)) for v in self.viewers]
        try:
            deadline = time.monotonic() + command.get("connect_timeout", 60)
            while len(connected) < len(self.viewers):
                failed = [task for task in tasks if task.done() and task.exception() is not None]
                if failed:
                    raise RuntimeError(f"a viewer could not connect: {failed[0].exception()!r}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(connected)} of {len(self.viewers)} viewers connected")
                await asyncio.sleep(0.02)
            print("READY", flush=True)
            start = float(await stdin.readline())
            self.window = (start + command["warmup"], start + command["warmup"] + command["seconds"])
            # Own CPU over the window: if this nears one core, the clients are the bottleneck.
            await asyncio.sleep(max(0.0, self.window[0] - time.time()))
            cpu0 = time.process_time()
            await asyncio.sleep(max(0.0, self.window[1] - time.time()))
            cpu = time.process_time() - cpu0
            # Bounded: stop at the drain deadline whatever is still missing.
            end = self.window[1] + command["drain"]
            await asyncio.wait(tasks, timeout=max(0.1, end - time.time()))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Dropped, not closed: a close handshake queued behind a backlog would take seconds.
            for viewer in self.viewers:
                if viewer.close is not None:
                    viewer.close()
        latencies = [ms for v in self.viewers for ms in v.latencies]
        return {
            "viewers": len(self.viewers),
            "points": sum(v.in_window for v in self.viewers),
            "frames": sum(v.frames_in_window for v in self.viewers),
            "lost": sum(max(0, self.expect - v.received) for v in self.viewers),
            "complete": sum(v.received >= self.expect for v in self.viewers),
            "resubscribes": sum(v.resubscribes for v in self.viewers),
            "gaps": sum(v.gaps for v in self.viewers),
            "cpu_seconds": cpu,
            "latencies": latencies,
        }


async def serve() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        command = json.loads(line)
        if command["protocol"] not in PROTOCOLS:
            raise ValueError(f"unknown protocol {command['protocol']!r}")
        result = await Run(command).main(stdin)
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__.split("\n")[0]).parse_args(
        argv
    )
    asyncio.run(serve())


if __name__ == "__main__":
    main()
