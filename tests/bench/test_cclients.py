"""The compiled viewer clients (bench/cclients.c) count what the Python ones (bench/clients.py)
count, driven the same way against the same scripted server: batches, a repeat, a gap that
makes each viewer re-subscribe with `after`, and the refill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from bench import cclients, storm
from streams.core.frames import batch_text, points_frame
from streams.core.points import Entry, Point
from tests.services import lacking

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
        lacking("no C compiler on this machine (Debian: apt-get install -y gcc)")
    compiled = asyncio.run(drive([str(binary)]))
    python = asyncio.run(drive([sys.executable, "-m", "bench.clients"]))
    fields = ("viewers", "points", "lost", "complete", "resubscribes", "gaps")
    assert {k: compiled[k] for k in fields} == {k: python[k] for k in fields}
    assert compiled["complete"] == VIEWERS and compiled["lost"] == 0
    assert compiled["points"] == VIEWERS * BATCHES * POINTS, "every point once (the repeat not twice)"
    assert compiled["resubscribes"] == VIEWERS and compiled["gaps"] == VIEWERS
    # A sampled viewer keeps a latency per point it counted (one in viewers/40: here all).
    assert len(compiled["latencies"]) == len(python["latencies"]) == VIEWERS * BATCHES * POINTS


# Storm mode (bench/storm.py's viewers) ------------------------------------------------------

STORM_SINCE = 1_000_000 + 6.5  # epoch s: batch 7 (t = 1,000,007 s) is the first after it


def storm_batch(index: int, *, extra: list[Entry] = ()) -> str:
    """Batch `index`: POINTS points at t = 1,000,000 + index s (y = 0..4), ids 1000-<n>,
    after `extra` (points of another batch, sent again under this batch's id)."""
    return batch_text(
        slug=STREAM,
        prev=None if index == 0 else f"1000-{index * POINTS - 1}",
        entries=[*extra, *storm_entries(index)],
    )


def storm_entries(index: int) -> list[Entry]:
    return [
        Entry(id=f"1000-{index * POINTS + j}", point=Point(t=1_000_000.0 + index, values={"a": float(j)}))
        for j in range(POINTS)
    ]


async def storm_servers(asked: list[tuple[str, str | None]]) -> tuple[Any, Any]:
    """The first server sends `subscribed` and batches 0-3, stops listening and drops the
    connection (a killed daphne). The second answers the resume after batch 3 with batch 4,
    batch 4 again (a repeat), then batch 6 (5 lost on the way); and the re-subscribe after 4
    with 5 (carrying a copy of one of 4's points), 6 and 7."""
    servers: list[Any] = []

    async def first(socket) -> None:
        request = json.loads(await socket.recv())
        asked.append(("first", request["after"]))
        await socket.send(json.dumps({"op": "subscribed", "stream": STREAM}))
        await socket.send(points_frame([storm_batch(index) for index in range(4)]))
        servers[0].server.close()  # nothing listens there any more: the viewer fails over
        socket.transport.abort()

    async def second(socket) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in socket:
                after = json.loads(text)["after"]
                asked.append(("second", after))
                await socket.send(json.dumps({"op": "subscribed", "stream": STREAM}))
                if after == f"1000-{4 * POINTS - 1}":
                    for index in (4, 4, 6):
                        await socket.send(points_frame([storm_batch(index)]))
                elif after == f"1000-{5 * POINTS - 1}":
                    copy = storm_entries(4)[:1]
                    await socket.send(
                        points_frame([storm_batch(5, extra=copy), storm_batch(6), storm_batch(7)])
                    )

    servers.append(await serve(first, "127.0.0.1", 0))
    servers.append(await serve(second, "127.0.0.1", 0))
    return servers[0], servers[1]


def storm_window() -> dict[str, list[list[float]]]:
    """Batches 0-9 as the stream's window holds them, and one point none of them sent."""
    points = [[round(e.point.t * 1000, 3), e.point.values["a"]] for i in range(10) for e in storm_entries(i)]
    points.append([1_000_002_500.0, 9.0])
    points.sort()
    return {STREAM: points}


async def storm_run(clients: str, tmp_path) -> tuple[dict, list[tuple[str, str | None]]]:
    asked: list[tuple[str, str | None]] = []
    first, second = await storm_servers(asked)
    ports = [server.sockets[0].getsockname()[1] for server in (first, second)]
    if clients == "compiled":
        binary = cclients.build()
        if binary is None:
            lacking("no C compiler on this machine (Debian: apt-get install -y gcc)")
        viewers = storm.CompiledViewers(binary=binary, env=dict(os.environ), workdir=tmp_path, reload=False)
    else:
        viewers = storm.PythonViewers(reload=False)
    try:
        await viewers.start(
            urls=[f"ws://127.0.0.1:{port}/ws/" for port in ports],
            origins=["http://x", "http://x"],
            slugs=[STREAM],
            viewers=1,
        )
        assert await viewers.back(since=STORM_SINCE, within=30) == 1
        return await viewers.stop(windows=storm_window(), since=[STORM_SINCE]), asked
    finally:
        await viewers.close()
        second.close()


@pytest.mark.parametrize("clients", ["compiled", "python"])
def test_storm_viewers_fail_over_resume_and_count_what_they_charted_against_the_window(clients, tmp_path):
    result, asked = asyncio.run(storm_run(clients, tmp_path))
    # Resumed from the last id held, on the second server; the missing batch asked for again.
    assert asked == [
        ("first", None),
        ("second", f"1000-{4 * POINTS - 1}"),
        ("second", f"1000-{5 * POINTS - 1}"),
    ]
    assert [index for index, _ in result["subscribed"]] == [0, 1, 1]
    assert dict(result["closes"]) == {"close none": 1, "ConnectionRefusedError": 1}
    # The repeat of batch 4 dropped by its id; the copy inside batch 5 charted twice; the point
    # no batch sent missing; batches 8 and 9, after the last point charted, not counted.
    assert (result["lost"], result["repeated"]) == (1, 1)
    (backs,) = result["backs"]
    assert len(backs) == 1 and backs[0] is not None and backs[0] > 0
