"""daphne stopping (SIGTERM) closes every socket with 1001, so browsers reconnect at once."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.processes import Stack, seed_streams

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def test_sigterm_closes_subscribed_and_idle_sockets_with_1001(stack: Stack):
    seed_streams(
        stack, [{"slug": "public", "title": "Public", "feed_kind": "simulate", "visibility": "public"}]
    )
    stack.start_ingest()
    stack.start_daphne()

    async def scenario() -> list[int | None]:
        watching = await connect(stack.ws_url, origin=stack.base_url, open_timeout=10)
        idle = await connect(stack.ws_url, origin=stack.base_url, open_timeout=10)
        await watching.send(json.dumps({"op": "subscribe", "stream": "public", "after": None}))
        while json.loads(await asyncio.wait_for(watching.recv(), timeout=10))["op"] != "points":
            pass
        stack.procs["daphne"].send_signal(signal.SIGTERM)
        codes = []
        for client in (watching, idle):
            try:
                while True:
                    await asyncio.wait_for(client.recv(), timeout=10)
            except ConnectionClosed:
                codes.append(client.protocol.close_code)
        return codes

    assert asyncio.run(scenario()) == [1001, 1001]
    assert stack.procs["daphne"].wait(timeout=10) == 0
