"""Restarts lose nothing acknowledged: pushed points (202) survive a restart of every process,
in production (daphne + ingest over Redis) and in the embedded `serve`, and viewers get them back."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from tests.e2e.test_live_path import next_frame, open_socket
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack, make_stack, seed_streams, sign_in
from tests.waits import wait_until

# A bound for a hung test only: 300 pushes and a restart take minutes on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

PUSHED = {
    "slug": "pushed",
    "title": "Pushed",
    "feed_kind": "push",
    "visibility": "restricted",
    "viewers": ["alice"],
}
T0 = 1_763_800_000


def push(stack: Stack, token: str, first: int, count: int, *, answered: list[int] | None = None) -> None:
    """`count` requests of one point each, t = T0 + n and value n; each must be acknowledged
    (and is appended to `answered` when it is)."""
    for n in range(first, first + count):
        response = httpx.post(
            f"{stack.base_url}/api/streams/pushed/points",
            json={"t": T0 + n, "value": n},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        if answered is not None:
            answered.append(n)


def window_values(stack: Stack, count: int) -> list[float]:
    """What a viewer's backfill holds, signed in as alice over a real socket: its points until
    there are `count`, over as many frames as the server sends the backfill in (frames are
    bounded in size, docs/protocol.md); a backfill short of `count` times out in next_frame."""
    session = sign_in(stack, "alice", PASSWORD).cookies["sessionid"]

    async def backfill() -> list[float]:
        socket = await open_socket(stack, session)
        await socket.send(json.dumps({"op": "subscribe", "stream": "pushed", "after": None}))
        await next_frame(socket, "subscribed")
        values: list[float] = []
        try:
            while len(values) < count:
                frame = await next_frame(socket, "points")
                for batch in frame["data"]:
                    values.extend(batch["y"]["value"])
        finally:
            await socket.close()
        return values

    return asyncio.run(backfill())


def wait_stored(stack: Stack, expected: list[float]) -> None:
    seen: list[list[float]] = [[]]

    def stored() -> bool:
        seen[0] = stored_values(stack)
        return seen[0] == expected

    wait_until(stored, what=f"values 0 to {len(expected) - 1} stored", within=60, seen=lambda: seen[0])


def stored_values(stack: Stack) -> list[float]:
    code = (
        "from streams.storage.store import read_after;"
        "print([e.point.values['value'] for e in read_after('pushed', after=None, limit=10**6)])"
    )
    result = stack.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_restarts_of_ingest_and_daphne_keep_every_pushed_point(stack: Stack):
    token = seed_streams(stack, [PUSHED])["pushed"]
    stack.start_ingest()
    stack.start_daphne()
    push(stack, token, 0, 10)
    # Acknowledged points may still sit in the inbox: stop the worker at once, start it again.
    stack.stop("ingest")
    push(stack, token, 10, 5)  # while no worker runs: queued in Redis, acknowledged all the same
    stack.start_ingest()
    stack.stop("daphne")
    stack.start_daphne()
    push(stack, token, 15, 5)
    expected = [float(n) for n in range(20)]
    wait_stored(stack, expected)
    assert window_values(stack, len(expected)) == expected


def test_sigterm_of_ingest_while_points_are_pushed_stores_each_of_them_exactly_once(stack: Stack):
    token = seed_streams(stack, [PUSHED])["pushed"]
    stack.env["LIVECHARTS_PUSH_RATE"] = "10000"  # as fast as one client pushes
    stack.start_daphne()
    stack.start_ingest()
    answered: list[int] = []
    pusher = threading.Thread(target=push, args=(stack, token, 0, 300), kwargs={"answered": answered})
    pusher.start()
    try:
        wait_until(lambda: len(answered) >= 100, what="100 pushes answered", within=60)
        # Mid-stream: requests stored, handed to broadcast, and still queued, all at once.
        stack.stop("ingest")
        stack.start_ingest()
    finally:
        pusher.join(timeout=300)  # a bound for a hung test only: slow pushes are no failure
    assert not pusher.is_alive(), f"{len(answered)} of 300 pushes answered in 300 s"
    assert len(answered) == 300
    expected = [float(n) for n in range(300)]
    wait_stored(stack, expected)
    assert window_values(stack, len(expected)) == expected


def test_a_restart_of_serve_keeps_every_pushed_point_and_refills_the_window(tmp_path):
    stack = make_stack(workdir=tmp_path, redis_url=None, prefix="unused")
    stack.seed(PASSWORD)
    token = seed_streams(stack, [PUSHED])["pushed"]
    try:
        stack.start_serve()
        push(stack, token, 0, 10)
        stack.stop("serve")  # SIGTERM right after the last 202: the in-process inbox is drained
        assert stored_values(stack) == [float(n) for n in range(10)]
        stack.start_serve()
        push(stack, token, 10, 2)
        wait_until(lambda: len(stored_values(stack)) == 12, what="12 values stored", within=60)
        assert window_values(stack, 12) == [float(n) for n in range(12)]
    finally:
        stack.stop_all()
