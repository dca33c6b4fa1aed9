"""Peer (c) for the fan-out bench: a plain Server-Sent-Events endpoint, one event per point.

    .venv/bin/python -m bench.peer_sse --port P --redis-url URL --prefix PREFIX

What a user writes for "push points to browsers" without a framework: an asyncio TCP server
answering `GET /events/<stream>` with `text/event-stream`, a queue per viewer, and a task
relaying every point published on Redis (bench/publisher.py --protocol peer) into every
viewer's queue; each viewer's task writes one `data:` event per point and waits for the socket
to drain. The body runs until the client leaves (`Connection: close`, no chunking). GET
/healthz answers 200 so the bench knows it is up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import defaultdict

from bench.peer_relay import parse_args, relay

HEADERS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"X-Accel-Buffering: no\r\nConnection: close\r\n\r\n"
)
viewers: defaultdict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        if path == "/healthz":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            return
        if not path.startswith("/events/"):
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        stream = path.removeprefix("/events/")
        viewers[stream].add(queue)
        try:
            writer.write(HEADERS)
            while True:
                writer.write(b"data: " + await queue.get() + b"\n\n")
                await writer.drain()
        finally:
            viewers[stream].discard(queue)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the viewer left
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def deliver(stream: str, point: bytes) -> None:
    """A point published for a stream goes into each of its viewers' queues."""
    for queue in viewers[stream]:
        queue.put_nowait(point)


async def main_async(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", args.port, backlog=4096)
    async with server:
        await relay(args.redis_url, args.prefix, deliver)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(main_async(parse_args("python -m bench.peer_sse", __doc__, argv)))


if __name__ == "__main__":
    main()
