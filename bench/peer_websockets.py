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

import redis.asyncio
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from bench.publisher import peer_channel

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


async def relay(url: str, prefix: str) -> None:
    """Every point published for a stream goes to its viewers as it comes, one message each."""
    client = redis.asyncio.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.psubscribe(peer_channel(prefix, "*"))
    start = len(peer_channel(prefix, ""))
    async for message in pubsub.listen():
        if message["type"] == "pmessage":
            broadcast(viewers[message["channel"][start:].decode()], message["data"].decode())


async def main_async(args: argparse.Namespace) -> None:
    async with serve(handler, "127.0.0.1", args.port, process_request=health, ping_interval=None):
        await relay(args.redis_url, args.prefix)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peer_websockets", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
