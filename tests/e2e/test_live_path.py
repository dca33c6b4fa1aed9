"""Real processes: daphne + `manage.py ingest` over the real Redis, a real websocket client."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RATE = 20  # points/s of the seeded simulate stream


async def open_socket(stack: Stack, session: str | None, *, origin: str | None = None) -> ClientConnection:
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return await connect(
        stack.ws_url, origin=origin or stack.base_url, additional_headers=headers, open_timeout=10
    )


async def next_frame(socket: ClientConnection, op: str) -> dict:
    while True:
        # Bounds a hung test only (a loaded machine can be slow to answer).
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
        if frame["op"] == op:
            return frame
        assert frame["op"] in ("subscribed", "status", "points"), frame


async def collect(socket: ClientConnection, *, points: int, state: dict) -> None:
    """Read points frames until `points` more arrived; checks prev chains onto the last id."""
    target = len(state["t"]) + points
    while len(state["t"]) < target:
        frame = await next_frame(socket, "points")
        for batch in frame["data"]:
            assert batch["prev"] == state["last"], "a batch was lost or repeated"
            state["last"] = batch["id"]
            state["t"].extend(batch["t"])
            state["ids"].append(batch["id"])


def test_permitted_user_gets_live_points_and_resumes_after_daphne_restarts(stack: Stack):
    stack.start_ingest()
    stack.start_daphne()
    session = sign_in(stack, "alice", PASSWORD).cookies["sessionid"]

    async def scenario() -> dict:
        state: dict = {"t": [], "ids": [], "last": None}
        socket = await open_socket(stack, session)
        await socket.send(json.dumps({"op": "subscribe", "stream": "line", "after": None}))
        subscribed = await next_frame(socket, "subscribed")
        assert subscribed["stream"] == "line"
        first = await next_frame(socket, "points")
        state["last"] = first["data"][0]["id"]
        state["t"].extend(first["data"][0]["t"])
        assert set(first["data"][0]["y"]) == {"a", "b"}
        await collect(socket, points=10, state=state)

        # Kill daphne hard while the feed keeps running in ingest, then bring it back.
        stack.stop("daphne", sig=9)
        stack.wait_for_points("line", 30)  # arrive in Redis meanwhile
        stack.start_daphne()
        socket = await open_socket(stack, session)
        await socket.send(json.dumps({"op": "subscribe", "stream": "line", "after": state["last"]}))
        await next_frame(socket, "subscribed")
        await collect(socket, points=40, state=state)
        await socket.close()
        return state

    state = asyncio.run(scenario())
    steps = [round(b - a) for a, b in itertools.pairwise(state["t"])]
    # Times are sent rounded to a microsecond, so compare whole milliseconds.
    assert steps == [1000 // RATE] * len(steps), "every point exactly once: no gap, no duplicate"
    assert len(state["ids"]) == len(set(state["ids"]))


def test_other_user_is_forbidden_and_a_foreign_origin_is_refused(stack: Stack):
    stack.start_daphne()
    session = sign_in(stack, "bob", PASSWORD).cookies["sessionid"]

    async def scenario() -> None:
        socket = await open_socket(stack, session)
        await socket.send(json.dumps({"op": "subscribe", "stream": "line"}))
        error = json.loads(await asyncio.wait_for(socket.recv(), timeout=10))
        assert error["op"] == "error"
        assert error["code"] == "forbidden"
        await socket.close()
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(stack, session, origin="http://evil.example.com")
        assert refused.value.response.status_code == 403

    asyncio.run(scenario())


def test_ingest_refuses_the_in_memory_layer(tmp_path):
    from tests.processes import make_stack

    stack = make_stack(workdir=tmp_path, redis_url=None, prefix="unused")
    result = stack.manage("ingest")
    assert result.returncode != 0
    assert "set REDIS_URL" in result.stderr
