"""Redis restarts (it keeps nothing on disk here): the worker keeps its points and retries,
viewers that lost batches refill from the database, and the chart has no gap.

A private redis-server on a free port (the shared one is never restarted), daphne + ingest,
and a viewer that behaves like live.js: a batch whose `prev` is not the last id it holds, or a
dropped socket, makes it subscribe again with `after`.

The restarted redis-server must bind the same port: the test holds it while Redis is down, and
when another process took it all the same (as Redis went down, or as it starts again: the two
moments the port is free) the kill or the restart raises PortTaken, and the test runs again
from the start on fresh ports (tests.processes.again_if_port_taken)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.processes import (
    STACK_PASSWORD,
    Stack,
    again_if_port_taken,
    hold_port,
    make_stack,
    on_free_port,
    seed_streams,
    start_redis,
)
from tests.services import missing, require_redis
from tests.waits import eventually

# Room for a second run, when another process took Redis's port while it was down.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RATE = 20
STEADY = {
    "slug": "steady",
    "title": "Steady",
    "feed_kind": "simulate",
    "feed_settings": {"rate": RATE},
    "visibility": "public",
    "window_points": 5000,
}


class Viewer:
    """A live.js-like viewer: chains batches by `prev`, re-subscribes or reconnects to refill."""

    def __init__(self, url: str, origin: str) -> None:
        self.url, self.origin = url, origin
        self.last: str | None = None
        self.times: list[float] = []
        self.refills = 0
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            try:
                async with connect(self.url, origin=self.origin, open_timeout=30) as socket:
                    await self.subscribe(socket)
                    while True:
                        receiving = asyncio.ensure_future(socket.recv())
                        await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                        if stop.is_set():
                            receiving.cancel()
                            return
                        frame = json.loads(receiving.result())
                        if frame["op"] == "points":
                            await self.take(socket, frame)
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError):
                self.reconnects += 1
                # live.js's backoff before a reconnect (cut short by the stop), not a wait for
                # anything in particular.
                await asyncio.wait({stopping}, timeout=0.5)

    async def subscribe(self, socket) -> None:
        await socket.send(json.dumps({"op": "subscribe", "stream": "steady", "after": self.last}))

    async def take(self, socket, frame: dict) -> None:
        for batch in frame["data"]:
            if batch["prev"] != self.last and self.last is not None:
                self.refills += 1
                await self.subscribe(socket)
                return  # the rest of this frame comes again after `after`
            self.times.extend(batch["t"])
            self.last = batch["id"]


class OwnRedis:
    """A private redis-server on a free port (nothing on disk) that a test kills and starts again."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            missing("redis-server", "the redis-server program (apt-get install -y redis-server)")
        self.port, self.proc = on_free_port(start_redis)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.held: socket.socket | None = None

    def kill(self) -> None:
        """Gone, with everything it held. Its port is held (connections refused) until start();
        raises PortTaken when another process took it first."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.held = hold_port(self.port)

    def start(self) -> None:
        """Back on the same port (the clients hold its URL). Raises PortTaken when another
        process took the port between the hold's end and the server's bind."""
        if self.held is not None:
            self.held.close()
            self.held = None
        self.proc = start_redis(self.port)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        if self.held is not None:
            self.held.close()


@contextlib.contextmanager
def steady_stack(workdir: Path, prefix: str) -> Iterator[tuple[Stack, OwnRedis, Viewer]]:
    """daphne and ingest on a Redis of their own, the steady stream fed, and a viewer of it
    (not yet watching); all stopped afterwards."""
    require_redis()
    server = OwnRedis()
    stack = make_stack(workdir=workdir, redis_url=server.url, prefix=prefix)
    try:
        stack.seed(STACK_PASSWORD)
        seed_streams(stack, [STEADY])
        stack.start_ingest()
        stack.start_daphne()
        yield stack, server, Viewer(stack.ws_url, stack.base_url)
    finally:
        stack.stop_all()
        server.close()


def test_a_redis_restart_loses_no_point_and_viewers_refill_with_no_gap(tmp_path, redis_prefix):
    again_if_port_taken(lambda run: restart_scenario(tmp_path / f"run-{run}", redis_prefix))


def restart_scenario(workdir: Path, redis_prefix: str) -> None:
    workdir.mkdir()
    with steady_stack(workdir, redis_prefix) as (stack, server, viewer):

        async def scenario() -> None:
            stop = asyncio.Event()
            watching = asyncio.create_task(viewer.run(stop))
            await eventually(lambda: len(viewer.times) >= RATE * 2, what="the viewer's first 40 points")
            logged = stack.log_size("ingest")
            server.kill()
            # Down long enough that the worker has tried and failed to store several ticks.
            await eventually(
                lambda: stack.log_since("ingest", logged).count("could not store a batch") >= 3,
                what="the worker to fail to store 3 times",
                seen=lambda: stack.log_since("ingest", logged)[-800:],
            )
            held = len(viewer.times)
            server.start()
            restarted_at = time.time() * 1000  # the feed stamps its points with this clock
            # What was made while Redis was away, then 3 s of points on top.
            await eventually(
                lambda: len(viewer.times) >= held + RATE * 3 and viewer.times[-1] > restarted_at + 3000,
                what="the viewer to go on 3 s past the restart",
                within=90,
                seen=lambda: (len(viewer.times), viewer.refills, viewer.reconnects),
            )
            stop.set()
            await watching

        asyncio.run(scenario())
        steps = [round(b - a) for a, b in itertools.pairwise(viewer.times)]
        holes = [step for step in steps if step != 1000 // RATE]
        assert holes == [], f"every point once, 50 ms apart (refills {viewer.refills}): {holes[:10]}"
        assert stack.procs["ingest"].poll() is None, stack.log("ingest")
        assert stack.procs["daphne"].poll() is None, stack.log("daphne")
