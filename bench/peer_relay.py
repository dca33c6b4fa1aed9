"""What the plain peers (c) of the fan-out bench share: the relay of every point the publisher
puts on Redis (bench/publisher.py --protocol peer) to a stream's viewers, and their command line.
bench/peer_sse.py and bench/peer_websockets.py differ only in how they serve their viewers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import redis.asyncio

from bench.publisher import peer_channel


async def relay(url: str, prefix: str, deliver: Callable[[str, bytes], None]) -> None:
    """`deliver(stream, point)` for every point published for a stream, as it comes."""
    client = redis.asyncio.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.psubscribe(peer_channel(prefix, "*"))
    start = len(peer_channel(prefix, ""))
    async for message in pubsub.listen():
        if message["type"] == "pmessage":
            deliver(message["channel"][start:].decode(), message["data"])


def parse_args(prog: str, doc: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    return parser.parse_args(argv)
