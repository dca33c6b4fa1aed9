"""Viewer clients for the fan-out bench: many sockets in one process, as browsers do.

    .venv/bin/python -m bench.clients      (then one JSON command per line on stdin)

Run by bench/fanout.py, two of these processes sharing the viewers, kept for the whole bench.
Viewers live in pools that outlast a run, so the runs of one configuration reuse their
sockets (connecting thousands of viewers costs more than a run):

- `{"op": "run", "pool": KEY, "url", "origin", "streams", "viewers", "protocol", "warmup",
  "seconds", "drain", "expect"}`: connects the pool's viewers and subscribes each to every
  stream unless pool KEY is already open (and alive), prints "READY", reads the publisher's
  start (epoch seconds) from stdin, counts what arrives until each viewer has the `expect`
  points of this run (or the drain time is over) and prints one "RESULT" JSON line.
- `{"op": "close", "pools": [KEY, ...]}`: drops those pools' sockets; prints "CLOSED".

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
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

CONNECT_CONCURRENCY = 50
LATENCY_VIEWERS = 40  # viewers per process whose every point's latency is kept
PROTOCOLS = ("livecharts", "batches", "point", "sse")


@dataclass
class Measure:
    """One run as the viewers see it: what to expect and when the window is."""

    expect: int
    window: tuple[float, float] = (float("inf"), float("inf"))  # set once the start is known
    remaining: int = 0  # viewers still short of `expect`
    all_done: asyncio.Event = field(default_factory=asyncio.Event)

    def in_window(self, now: float) -> bool:
        return self.window[0] <= now < self.window[1]


@dataclass
class Counts:
    """A viewer of any protocol (here and in bench/peer_clients.py) and this run's counts."""

    index: int
    sample: bool
    received: int = 0  # unique points
    in_window: int = 0  # points received inside the window
    frames_in_window: int = 0  # messages received inside the window, whatever the protocol
    latencies: list[float] = field(default_factory=list)
    close: Any = None  # drops the connection

    def reset(self) -> None:
        self.received = self.in_window = self.frames_in_window = 0
        self.latencies = []


@dataclass
class Viewer(Counts):
    # Per stream: the last batch id held, parsed and as sent (kept from run to run).
    last_id: dict[str, tuple[int, int]] = field(default_factory=dict)
    last_text: dict[str, str] = field(default_factory=dict)
    resubscribes: int = 0
    gaps: int = 0
    writer: Any = None  # an SSE viewer's StreamWriter: dropping it would close the socket

    def reset(self) -> None:
        super().reset()
        self.resubscribes = self.gaps = 0


POINTS_FRAME = '{"op":"points","data":['
_BATCH = '{"stream":"'


def scan_batches(frame: str) -> Iterator[tuple[str, str | None, str, int]]:
    """(stream, prev, id, points) of each batch of a points frame as streams/core/frames.py writes
    it (`{"stream":"s","prev":"id"|null,"id":"id","t":[...],...}`), without decoding values."""
    at = frame.find(_BATCH)
    while at >= 0:
        start = at + len(_BATCH)
        end = frame.index('"', start)
        stream = frame[start:end]
        start = end + len('","prev":')
        if frame.startswith("null", start):
            prev, end = None, start + 4
        else:
            end = frame.index('"', start + 1)
            prev = frame[start + 1 : end]
            end += 1
        start = end + len(',"id":"')
        end = frame.index('"', start)
        batch_id = frame[start:end]
        start = end + len('","t":[')
        end = frame.index("]", start)
        points = 0 if end == start else frame.count(",", start, end) + 1
        yield stream, prev, batch_id, points
        at = frame.find(_BATCH, end)


def parse_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


class ViewerPool:
    """What every pool of viewers does whatever its protocol (this module's and
    bench/peer_clients.py's): connect them all, time one run's window, drop them. A subclass
    makes `viewers` (each with `index`, `close` and `reset()`) and reads one in `viewer`."""

    def __init__(self, command: dict[str, Any], make_viewer: Callable[..., Any]) -> None:
        step = max(1, command["viewers"] // LATENCY_VIEWERS)
        self.viewers = [make_viewer(index=i, sample=i % step == 0) for i in range(command["viewers"])]
        self.tasks: list[asyncio.Task[None]] = []
        self.measure = Measure(expect=0)
        self.measure.all_done.set()  # no run yet: late frames are only read

    async def viewer(self, viewer: Any, ready: asyncio.Semaphore, connected: list[int]) -> None:
        """One viewer's task for the pool's life: connect (holding `ready`), join `connected`, read."""
        raise NotImplementedError

    async def run(self, command: dict[str, Any], stdin: asyncio.StreamReader) -> dict[str, Any] | None:
        """One run (see `window`): its RESULT, or None when it was cancelled."""
        cpu = await self.window(command, stdin)
        if cpu is None:
            return None
        expect = self.measure.expect
        return {
            "viewers": len(self.viewers),
            "points": sum(v.in_window for v in self.viewers),
            "frames": sum(v.frames_in_window for v in self.viewers),
            "lost": sum(max(0, expect - v.received) for v in self.viewers),
            "complete": sum(v.received >= expect for v in self.viewers),
            **self.protocol_counts(),
            "cpu_seconds": cpu,
            "latencies": [ms for v in self.viewers for ms in v.latencies],
        }

    def protocol_counts(self) -> dict[str, int]:
        """The counts of this protocol's viewers beyond `Counts`, summed over them."""
        raise NotImplementedError

    def alive(self) -> bool:
        return bool(self.tasks) and not any(task.done() for task in self.tasks)

    async def connect(self, seconds: float) -> None:
        ready = asyncio.Semaphore(CONNECT_CONCURRENCY)
        connected: list[int] = []
        self.tasks = [asyncio.create_task(self.viewer(v, ready, connected)) for v in self.viewers]
        deadline = time.monotonic() + seconds
        while len(connected) < len(self.viewers):
            failed = [task for task in self.tasks if task.done() and task.exception() is not None]
            if failed:
                raise RuntimeError(f"a viewer could not connect: {failed[0].exception()!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(connected)} of {len(self.viewers)} viewers connected")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # Dropped, not closed: a close handshake queued behind a backlog would take seconds.
        for viewer in self.viewers:
            if viewer.close is not None:
                viewer.close()

    async def window(self, command: dict[str, Any], stdin: asyncio.StreamReader) -> float | None:
        """One run's clock: READY, the publisher's start from stdin, then the window and the drain
        (over early once every viewer has `expect` points). The clients' own CPU seconds scaled to
        the window, or None when the run was cancelled."""
        for viewer in self.viewers:
            viewer.reset()
        measure = self.measure = Measure(expect=command["expect"], remaining=len(self.viewers))
        print("READY", flush=True)
        line = await stdin.readline()
        if line.strip() == b"cancel":  # another client process could not connect its viewers
            return None
        start = float(line)
        measure.window = (start + command["warmup"], start + command["warmup"] + command["seconds"])
        # Own CPU share from the start to the window's end, scaled to the window: if this nears
        # one core, the clients are the bottleneck. (Over the window alone it read low exactly
        # then: a loop that is behind wakes late, and the window's end has passed already.)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(max(0.0, measure.window[1] - time.time()))
        share = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 0.1)
        # Bounded: stop at the drain deadline whatever is still missing.
        end = measure.window[1] + command["drain"]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(measure.all_done.wait(), timeout=max(0.1, end - time.time()))
        return share * command["seconds"]


class Pool(ViewerPool):
    """The viewers of one configuration on one server, each with a task reading its socket."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.url, self.origin = command["url"], command["origin"]
        self.streams: list[str] = command["streams"]
        self.protocol: str = command["protocol"]
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}")
        super().__init__(command, Viewer)

    def protocol_counts(self) -> dict[str, int]:
        return {
            "resubscribes": sum(v.resubscribes for v in self.viewers),
            "gaps": sum(v.gaps for v in self.viewers),
        }

    def counted(self, viewer: Viewer, points: int) -> None:
        """`points` more for this viewer; the run ends early once every viewer has them all."""
        before = viewer.received
        viewer.received += points
        expect = self.measure.expect
        if before < expect <= viewer.received:
            self.measure.remaining -= 1
            if self.measure.remaining == 0:
                self.measure.all_done.set()

    # One task per viewer, for the pool's life -------------------------------------------

    async def viewer(self, viewer: Viewer, ready: asyncio.Semaphore, connected: list[int]) -> None:
        if self.protocol == "sse":
            async with ready:
                reader = await self.open_sse(viewer)
            connected.append(viewer.index)
            await self.receive_sse(viewer, reader)
            return
        async with ready:
            socket = await connect(self.url, origin=self.origin, max_size=2**24, ping_interval=None)
            viewer.close = socket.transport.abort
            streams = set(self.streams)
            for stream in streams:
                await socket.send(json.dumps({"op": "subscribe", "stream": stream, "after": None}))
            # Wait for the answers, so READY means every viewer is in every group.
            while streams:
                answer = json.loads(await socket.recv())
                if answer.get("op") == "subscribed":
                    streams.discard(answer.get("stream"))
        connected.append(viewer.index)
        if self.protocol == "point":
            async for text in socket:
                self.count_point(viewer, text, time.time())
            return
        refill = self.protocol == "livecharts"
        async for text in socket:
            for stream, after in self.receive_frame(viewer, text, time.time(), refill=refill):
                await socket.send(json.dumps({"op": "subscribe", "stream": stream, "after": after}))

    def receive_frame(self, viewer: Viewer, text: str | bytes, now: float, *, refill: bool) -> list[tuple]:
        """Count a `points` frame; returns the (stream, after) re-subscriptions it calls for."""
        if isinstance(text, bytes):
            text = text.decode()
        if viewer.sample or not text.startswith(POINTS_FRAME):
            frame = json.loads(text)
            op = frame.get("op")
            if op == "gap":
                viewer.gaps += 1
                return []
            if op != "points":
                return []
            batches = ((b["stream"], b["prev"], b["id"], b["t"]) for b in frame["data"])
        else:
            # Viewers whose latencies are not kept only need ids and counts: read them off the
            # text at C speed instead of decoding every value (the clients' own CPU would
            # otherwise be what limits the larger runs on this 2-core machine).
            batches = scan_batches(text)
        measure = self.measure
        counted = measure.in_window(now)
        if counted:
            viewer.frames_in_window += 1
        resubscribe = []
        for stream, prev, batch_id, times in batches:
            key = parse_id(batch_id)
            last = viewer.last_id.get(stream)
            if last is not None and key <= last:
                continue  # already have it (a backfill and live overlap)
            if prev != viewer.last_text.get(stream):
                viewer.gaps += 1
                if refill:
                    # A batch was lost on the live path: ask history for everything after ours.
                    viewer.resubscribes += 1
                    resubscribe.append((stream, viewer.last_text.get(stream)))
                    continue
            points = times if isinstance(times, int) else len(times)
            viewer.last_id[stream], viewer.last_text[stream] = key, batch_id
            self.counted(viewer, points)
            if counted:
                viewer.in_window += points
                if viewer.sample:
                    ms = now * 1000
                    viewer.latencies.extend(ms - t for t in times)
        return resubscribe

    def count_point(self, viewer: Viewer, text: str | bytes, now: float) -> None:
        self.counted(viewer, 1)
        if self.measure.in_window(now):
            viewer.in_window += 1
            viewer.frames_in_window += 1
            if viewer.sample:
                viewer.latencies.append(now * 1000 - json.loads(text)["t"])

    async def open_sse(self, viewer: Viewer) -> asyncio.StreamReader:
        url = urlsplit(self.url)
        reader, viewer.writer = await asyncio.open_connection(url.hostname, url.port)
        viewer.close = viewer.writer.transport.abort
        request = f"GET /events/{self.streams[0]} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        request += "Accept: text/event-stream\r\n\r\n"
        viewer.writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"SSE answered {head[:40]!r}")
        return reader

    async def receive_sse(self, viewer: Viewer, reader: asyncio.StreamReader) -> None:
        rest = b""
        while chunk := await reader.read(2**16):
            now = time.time()
            data = rest + chunk
            end = data.rfind(b"\n\n")
            if end < 0:
                rest = data
                continue
            events, rest = data[:end], data[end + 2 :]
            if viewer.sample and self.measure.in_window(now):
                for event in events.split(b"\n\n"):
                    self.count_point(viewer, event.removeprefix(b"data: "), now)
                continue
            # Only counted: one C-speed count per read, so the clients' parsing is not what
            # limits the SSE peer (it was, splitting every event in Python).
            points = events.count(b"\n\n") + 1
            self.counted(viewer, points)
            if self.measure.in_window(now):
                viewer.in_window += points
                viewer.frames_in_window += points


async def serve(
    make_pool: Callable[[dict[str, Any]], ViewerPool], refused: tuple[type[Exception], ...]
) -> None:
    """The line protocol (see the docstring) on stdin, with pools made by `make_pool`; `refused`
    are the errors that mean the server refused or failed a viewer."""
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    pools: dict[str, ViewerPool] = {}
    while line := await stdin.readline():
        command = json.loads(line)
        if command["op"] == "close":
            for key in command["pools"]:
                pool = pools.pop(key, None)
                if pool is not None:
                    await pool.close()
            print("CLOSED", flush=True)
            continue
        pool = pools.pop(command["pool"], None)
        if pool is None or not pool.alive():
            if pool is not None:
                await pool.close()
            pool = make_pool(command)
            try:
                await pool.connect(command.get("connect_timeout", 120))
            except refused as error:
                # Say why and wait for the next command.
                await pool.close()
                print("FAILED " + json.dumps(f"{error!r}"[:300]), flush=True)
                continue
        pools[command["pool"]] = pool
        result = await pool.run(command, stdin)
        print("CANCELLED" if result is None else "RESULT " + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__.split("\n")[0]).parse_args(
        argv
    )
    asyncio.run(serve(Pool, (OSError, RuntimeError, TimeoutError, WebSocketException)))


if __name__ == "__main__":
    main()
