"""Viewer clients for the real peers (Dash, Bokeh, django-eventstream), each speaking its protocol.

    .venv/bin/python -m bench.peer_clients      (then one JSON command per line on stdin)

The same line protocol as bench/clients.py (which holds the LiveCharts viewers in the same
bench): `{"op": "run", "pool": KEY, "url", "streams", "viewers", "protocol", "warmup",
"seconds", "drain", "expect"}` connects the pool's viewers unless it is open, prints "READY",
reads the feed's start (epoch seconds), counts what arrives until each viewer has the
`expect` points of the run or the drain is over, and prints one "RESULT" JSON line;
`{"op": "close", "pools": [...]}` drops pools and prints "CLOSED". Protocols, each as the
peer's own browser client speaks it:

- `dash`: what dash-renderer does for a page with a `dcc.Interval`: GET `/_dash-layout` and
  `/_dash-dependencies` once, then every `interval_ms` POST `/_dash-update-component` with
  the interval's `n_intervals` as input and the `dcc.Store` (`{"stream", "id"}`) as state;
  a 200 answer carries the graph's `extendData` and the store's new data, a 204 nothing new.
  One request at a time per viewer (the next tick waits for the answer), each on a new
  connection: gunicorn's sync workers close every connection after one response.
- `bokeh`: BokehJS's websocket protocol: `ws://HOST/APP/ws` with the subprotocols `bokeh`
  and a session token (as bokeh.client makes one, the stream as a request argument), the
  server's ACK, a PULL-DOC-REQ for the document, then PATCH-DOC messages (header, metadata,
  content frames, then any buffers), whose `ColumnsStreamed` events carry the points.
- `eventstream`: EventSource: `GET /events/<stream>/`, a chunked `text/event-stream` body,
  `event: message` events whose data is `{"n", "t", "y"}`; ready once `stream-open` came.

Latency is receipt time minus each point's `t` (its publish time), for every point received in
the window by a sample of viewers, as in bench/clients.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from bench.clients import Counts, ViewerPool, serve

PROTOCOLS = ("dash", "bokeh", "eventstream")
DASH_OUTPUTS = [{"id": "graph", "property": "extendData"}, {"id": "last", "property": "data"}]


# What each protocol's messages carry: pure functions, tested in tests/bench/test_peer_clients.py.


def dash_request(*, n_intervals: int, last: dict[str, str]) -> bytes:
    """The JSON body dash-renderer posts when the interval fires (Dash 2 to 4)."""
    return json.dumps(
        {
            "output": "..graph.extendData...last.data..",
            "outputs": DASH_OUTPUTS,
            "inputs": [{"id": "tick", "property": "n_intervals", "value": n_intervals}],
            "changedPropIds": ["tick.n_intervals"],
            "state": [{"id": "last", "property": "data", "value": last}],
        }
    ).encode()


def dash_answer(body: bytes) -> tuple[list[float], dict[str, str]]:
    """(the points' times, the store's new data) from a 200 answer to the interval's callback."""
    response = json.loads(body)["response"]
    extend, _traces, _max_points = response["graph"]["extendData"]
    return extend["x"][0], response["last"]["data"]


def bokeh_points(content: str | bytes) -> list[float]:
    """The times of the points streamed in a PATCH-DOC message's content (its `t` column)."""
    times: list[float] = []
    for event in json.loads(content).get("events", []):
        if event.get("kind") != "ColumnsStreamed":
            continue
        data = event["data"]
        columns = dict(data["entries"]) if data.get("type") == "map" else data
        times.extend(columns["t"])
    return times


class SseReader:
    """Server-Sent Events out of a chunked HTTP body, fed as bytes arrive."""

    def __init__(self) -> None:
        self.raw = b""  # bytes not yet de-chunked
        self.text = b""  # de-chunked bytes not yet a whole event
        self.ended = False

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """(event type, data) of every whole event so far."""
        self.raw += data
        while not self.ended:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self.raw[:line_end].split(b";")[0], 16)
            if len(self.raw) < line_end + 2 + size + 2:
                break  # the rest of the chunk is still on its way
            self.text += self.raw[line_end + 2 : line_end + 2 + size]
            self.raw = self.raw[line_end + 2 + size + 2 :]
            self.ended = size == 0
        events = []
        *whole, self.text = self.text.split(b"\n\n")
        for block in whole:
            kind, data = "message", []
            for line in block.split(b"\n"):
                if line.startswith(b"event:"):
                    kind = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" "))
            if data or kind != "message":
                events.append((kind, b"\n".join(data)))
        return events


async def http_request(
    host: str, port: int, *, method: str = "GET", path: str, body: bytes = b""
) -> tuple[int, bytes]:
    """One request on a connection of its own; (status, body) once the server closes it."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
        answer = await reader.read()
    finally:
        writer.transport.abort()
    header, _, content = answer.partition(b"\r\n\r\n")
    if not header.startswith(b"HTTP/1."):
        raise ConnectionError(f"no HTTP answer to {method} {path}: {answer[:60]!r}")
    return int(header.split(b" ", 2)[1]), content


@dataclass
class Viewer(Counts):
    errors: int = 0  # requests that failed (refused, reset): the peer did not keep up

    def reset(self) -> None:
        super().reset()
        self.errors = 0


class Pool(ViewerPool):
    """The viewers of one peer at one viewer count, each with a task for the pool's life."""

    def __init__(self, command: dict[str, Any]) -> None:
        self.url, self.protocol = urlsplit(command["url"]), command["protocol"]
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}")
        self.stream: str = command["streams"][0]
        self.interval = command.get("interval_ms", 1000) / 1000
        # A Bokeh server builds each session's document before it answers the handshake: a
        # browser waits for it, so the viewers do too (websockets' default gives up after 10 s).
        self.open_timeout = command.get("connect_timeout", 120)
        super().__init__(command, Viewer)

    def protocol_counts(self) -> dict[str, int]:
        return {"errors": sum(v.errors for v in self.viewers), "resubscribes": 0, "gaps": 0}

    def counted(self, viewer: Viewer, times: list[float], now: float) -> None:
        """Points received by a viewer; the run ends early once every viewer has them all."""
        before = viewer.received
        viewer.received += len(times)
        measure = self.measure
        if before < measure.expect <= viewer.received:
            measure.remaining -= 1
            if measure.remaining == 0:
                measure.all_done.set()
        if measure.in_window(now):
            viewer.in_window += len(times)
            viewer.frames_in_window += 1
            if viewer.sample:
                ms = now * 1000
                viewer.latencies.extend(ms - t for t in times)

    # One task per viewer -----------------------------------------------------------------

    async def viewer(self, viewer: Viewer, ready: asyncio.Semaphore, connected: list[int]) -> None:
        await {"dash": self.dash, "bokeh": self.bokeh, "eventstream": self.eventstream}[self.protocol](
            viewer, ready, connected
        )

    async def dash(self, viewer: Viewer, ready: asyncio.Semaphore, connected: list[int]) -> None:
        host, port = self.url.hostname or "127.0.0.1", self.url.port or 80
        async with ready:
            for path in ("/_dash-layout", "/_dash-dependencies"):
                status, _ = await http_request(host, port, path=path)
                if status != 200:
                    raise ConnectionError(f"GET {path} answered {status}")
        connected.append(viewer.index)
        last, n_intervals = {"stream": self.stream, "id": "0-0"}, 0
        next_tick = time.monotonic() + self.interval
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick + self.interval, time.monotonic())
            n_intervals += 1
            body = dash_request(n_intervals=n_intervals, last=last)
            try:
                status, answer = await http_request(
                    host, port, method="POST", path="/_dash-update-component", body=body
                )
            except OSError:
                viewer.errors += 1  # refused or reset: the page would try again at the next tick
                continue
            if status == 200:
                times, last = dash_answer(answer)
                self.counted(viewer, times, time.time())
            elif status != 204:
                viewer.errors += 1

    async def bokeh(self, viewer: Viewer, ready: asyncio.Semaphore, connected: list[int]) -> None:
        from bokeh.util.token import generate_jwt_token, generate_session_id

        token = generate_jwt_token(
            generate_session_id(), extra_payload={"arguments": {"stream": [self.stream]}}
        )
        origin = f"http://{self.url.netloc}"
        async with ready:
            socket = await connect(
                self.url.geturl(),
                subprotocols=["bokeh", token],  # type: ignore[list-item]
                origin=origin,  # type: ignore[arg-type]
                max_size=2**26,
                ping_interval=None,
                open_timeout=self.open_timeout,
            )
            viewer.close = socket.transport.abort
            header = json.loads(await socket.recv())
            await socket.recv(), await socket.recv()
            if header.get("msgtype") != "ACK":
                raise ConnectionError(f"Bokeh answered {header!r}, not ACK")
            for frame in ({"msgid": f"v{viewer.index}", "msgtype": "PULL-DOC-REQ"}, {}, {}):
                await socket.send(json.dumps(frame))
            while True:  # the document, maybe after a patch or two
                header = json.loads(await socket.recv())
                await socket.recv(), await socket.recv()
                for _ in range(2 * header.get("num_buffers", 0)):
                    await socket.recv()
                if header.get("msgtype") == "PULL-DOC-REPLY":
                    break
        connected.append(viewer.index)
        while True:
            header = json.loads(await socket.recv())
            await socket.recv()  # metadata
            content = await socket.recv()
            for _ in range(2 * header.get("num_buffers", 0)):
                await socket.recv()  # each buffer: its header, then its bytes (none with lists)
            if header.get("msgtype") == "PATCH-DOC":
                self.counted(viewer, bokeh_points(content), time.time())

    async def eventstream(self, viewer: Viewer, ready: asyncio.Semaphore, connected: list[int]) -> None:
        host, port = self.url.hostname or "127.0.0.1", self.url.port or 80
        sse = SseReader()
        async with ready:
            reader, writer = await asyncio.open_connection(host, port)
            viewer.close = writer.transport.abort
            writer.write(
                f"GET /events/{self.stream}/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
                raise ConnectionError(f"eventstream answered {head[:80]!r}")
            opened = False
            while not opened:
                chunk = await reader.read(2**16)
                if not chunk:
                    raise ConnectionError("eventstream closed before stream-open")
                opened = any(kind == "stream-open" for kind, _ in sse.feed(chunk))
        connected.append(viewer.index)
        while chunk := await reader.read(2**16):
            now = time.time()
            for kind, data in sse.feed(chunk):
                if kind == "message":
                    self.counted(viewer, json.loads(data)["t"], now)
                elif kind == "stream-error":
                    viewer.errors += 1
        raise ConnectionError("eventstream closed the stream")


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="python -m bench.peer_clients", description=__doc__.split("\n")[0]
    ).parse_args(argv)
    asyncio.run(serve(Pool, (OSError, RuntimeError, TimeoutError, WebSocketException, ValueError)))


if __name__ == "__main__":
    main()
