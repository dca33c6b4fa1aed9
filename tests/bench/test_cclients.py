"""The compiled viewer clients (bench/cclients.c) count what the Python ones (bench/clients.py)
count, driven the same way against the same scripted server: batches, a repeat, a gap that
makes each viewer re-subscribe with `after`, and the refill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from bench import cclients
from streams.core.frames import batch_text, points_frame
from streams.core.points import Entry, Point

STREAM = "plant"
VIEWERS = 3
BATCHES = 10
POINTS = 5  # per batch
WINDOW_SECONDS = 3


def batch(index: int) -> str:
    now = time.time()
    entries = [
        Entry(id=f"1000-{index * POINTS + j}", point=Point(t=now, values={"a": float(j)}))
        for j in range(POINTS)
    ]
    prev = None if index == 0 else f"1000-{index * POINTS - 1}"
    return batch_text(slug=STREAM, prev=prev, entries=entries)


async def scripted_server(go: asyncio.Event):
    """Answers subscribes; once `go` is set: batch 0..9 one per frame, batch 3 twice, batch 5
    left out: batch 6 makes the viewer re-subscribe after batch 4's last id, answered with 5
    and 6 in one frame before 7 comes."""

    async def viewer(socket) -> None:
        refilled = asyncio.Event()

        async def answers() -> None:
            with contextlib.suppress(ConnectionClosed):  # the client process ends
                await answer_each()

        async def answer_each() -> None:
            async for text in socket:
                request = json.loads(text)
                await socket.send(json.dumps({"op": "subscribed", "stream": request["stream"]}))
                if request["after"] == f"1000-{5 * POINTS - 1}":
                    await socket.send(points_frame([batch(5), batch(6)]))
                    refilled.set()

        reader = asyncio.create_task(answers())
        await go.wait()
        for index in range(BATCHES):
            if index == 5:
                continue
            await socket.send(points_frame([batch(index)]))
            if index == 3:
                await socket.send(points_frame([batch(3)]))  # a repeat: read, not counted
            if index == 6:
                await refilled.wait()
        with contextlib.suppress(ConnectionClosed):
            await reader

    return await serve(viewer, "127.0.0.1", 0)


async def drive(argv: list[str]) -> dict:
    go = asyncio.Event()
    server = await scripted_server(go)
    port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        command = {"op": "run", "pool": "p", "url": f"ws://127.0.0.1:{port}/ws/", "origin": "http://x"}
        command |= {"streams": [STREAM], "viewers": VIEWERS, "protocol": "livecharts", "warmup": 0}
        # Points count by when they arrive: a window long enough that every batch and the refill
        # round trip land in it on a machine whose cores are busy (about 1.5 s at worst seen here).
        command |= {"seconds": WINDOW_SECONDS, "drain": 5, "expect": BATCHES * POINTS}
        proc.stdin.write(json.dumps(command).encode() + b"\n")
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"READY"
        proc.stdin.write(repr(time.time()).encode() + b"\n")
        await proc.stdin.drain()
        go.set()
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("RESULT "), line
        return json.loads(line[len("RESULT ") :])
    finally:
        proc.kill()
        await proc.wait()
        server.close()


def test_the_compiled_clients_count_as_the_python_ones() -> None:
    binary = cclients.build()
    if binary is None:
        pytest.skip("no C compiler on this machine")
    compiled = asyncio.run(drive([str(binary)]))
    python = asyncio.run(drive([sys.executable, "-m", "bench.clients"]))
    fields = ("viewers", "points", "lost", "complete", "resubscribes", "gaps")
    assert {k: compiled[k] for k in fields} == {k: python[k] for k in fields}
    assert compiled["complete"] == VIEWERS and compiled["lost"] == 0
    assert compiled["points"] == VIEWERS * BATCHES * POINTS, "every point once (the repeat not twice)"
    assert compiled["resubscribes"] == VIEWERS and compiled["gaps"] == VIEWERS
    # A sampled viewer keeps a latency per point it counted (one in viewers/40: here all).
    assert len(compiled["latencies"]) == len(python["latencies"]) == VIEWERS * BATCHES * POINTS
