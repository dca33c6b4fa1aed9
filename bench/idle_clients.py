"""Idle viewers for the memory bench: many subscribed sockets in one process, doing nothing.

Run by bench/memory.py (bench.fanout.Worker). Reads commands on stdin, one a line:
`{"url": ..., "origin": ..., "stream": ...}` first, then `OPEN <n>` to hold n more sockets
(each connects, retried when the server drops the handshake, subscribes to the stream and
waits for `subscribed`; answered `HAVE <total> <handshakes retried so far>`), and `STOP`.
The sockets send nothing after subscribing and keepalive pings are off, so the server holds
idle, subscribed connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake

CONNECT_CONCURRENCY = 50
ATTEMPTS = 5


async def open_viewer(config: dict, gate: asyncio.Semaphore, retries: list[int]) -> ClientConnection:
    async with gate:
        for attempt in range(ATTEMPTS):
            try:
                socket = await connect(
                    config["url"], origin=config["origin"], ping_interval=None, open_timeout=60
                )
                break
            except (OSError, InvalidHandshake):
                # daphne drops a handshake its app has not accepted within 5 s (a busy server
                # with many handshakes queued): try again, as a browser would.
                if attempt == ATTEMPTS - 1:
                    raise
                retries[0] += 1
                await asyncio.sleep(0.5)
        await socket.send(json.dumps({"op": "subscribe", "stream": config["stream"], "after": None}))
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 60))
            if message.get("op") == "subscribed":
                return socket
            if message.get("op") == "error":
                raise RuntimeError(f"subscribe refused: {message}")


async def drain(socket: ClientConnection) -> None:
    """Read (and drop) whatever the server sends, so its writes never back up."""
    with contextlib.suppress(Exception):
        async for _ in socket:
            pass


async def main() -> None:
    loop = asyncio.get_running_loop()
    readline = lambda: loop.run_in_executor(None, sys.stdin.readline)  # noqa: E731
    config = json.loads(await readline())
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    sockets: list[ClientConnection] = []
    retries = [0]
    readers: list[asyncio.Task[None]] = []
    try:
        while True:
            command = (await readline()).strip()
            if command.startswith("OPEN "):
                opened = await asyncio.gather(
                    *(open_viewer(config, gate, retries) for _ in range(int(command.split()[1])))
                )
                sockets += opened
                readers += [loop.create_task(drain(socket)) for socket in opened]
                print(f"HAVE {len(sockets)} {retries[0]}", flush=True)
            else:
                break
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
