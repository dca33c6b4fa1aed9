"""Peer (c) for the fan-out bench: a plain `websockets` server, one message per point.

    .venv/bin/python -m bench.peer_websockets --port P --redis-url URL --prefix PREFIX

What users write instead of Channels: the `websockets` package's asyncio server, a set of
sockets per stream, and a task relaying every point published on Redis
(bench/publisher.py --protocol peer) to all of them with `websockets.asyncio.server.broadcast`
(the message is framed once, no backpressure). A viewer sends `{"op": "subscribe", "stream":
S}` first and is told `{"op": "subscribed"}`, so bench/clients.py counts it like the others.
GET /healthz answers 200 so the bench knows it is up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from bench.peer_relay import parse_args, relay

viewers: defaultdict[str, set[ServerConnection]] = defaultdict(set)


async def handler(socket: ServerConnection) -> None:
    request = json.loads(await socket.recv())
    stream = request["stream"]
    viewers[stream].add(socket)
    try:
        await socket.send(json.dumps({"op": "subscribed", "stream": stream}))
        await socket.wait_closed()
    finally:
        viewers[stream].discard(socket)


def health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


def deliver(stream: str, point: bytes) -> None:
    """A point published for a stream goes to its viewers as it comes, one message each."""
    broadcast(viewers[stream], point.decode())


async def main_async(args: argparse.Namespace) -> None:
    async with serve(handler, "127.0.0.1", args.port, process_request=health, ping_interval=None):
        await relay(args.redis_url, args.prefix, deliver)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(main_async(parse_args("python -m bench.peer_websockets", __doc__, argv)))


if __name__ == "__main__":
    main()
