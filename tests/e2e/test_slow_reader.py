"""A viewer that stops reading cannot grow daphne's memory: it gets nothing beyond its send
budget, is closed with 4008 when it stays behind, and a reading viewer beside it misses nothing.
Real daphne + ingest over the real Redis; the slow client is a real socket with a tiny receive
buffer that is never read."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.processes import Stack, seed_streams

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BUSY = {
    "slug": "busy",
    "title": "Busy",
    "feed_kind": "simulate",
    # 1,000 points/s of 20 series: about 300 KB/s of frames per viewer.
    "feed_settings": {"rate": 1000, "series": [f"s{n}" for n in range(20)]},
    "visibility": "public",
}
BUDGET = 64 * 1024
SLOW_SECONDS = 2


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tiny_buffer_socket(port: int) -> socket.socket:
    """Connected, with a receive buffer so small the server's writes back up at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def test_a_client_that_stops_reading_is_closed_and_costs_daphne_bounded_memory(stack: Stack):
    stack.env.update(
        LIVECHARTS_SEND_BUDGET_BYTES=str(BUDGET), LIVECHARTS_SLOW_READER_SECONDS=str(SLOW_SECONDS)
    )
    seed_streams(stack, [BUSY])
    stack.start_ingest()
    stack.start_daphne()
    daphne_pid = stack.procs["daphne"].pid

    async def scenario() -> dict:
        reader = await connect(stack.ws_url, origin=stack.base_url, open_timeout=10)
        # max_queue=1: once one frame waits unread, the client stops reading its socket.
        slow = await connect(
            stack.ws_url,
            origin=stack.base_url,
            open_timeout=10,
            sock=tiny_buffer_socket(stack.port),
            max_queue=1,
        )
        for client in (reader, slow):
            await client.send(json.dumps({"op": "subscribe", "stream": "busy", "after": None}))
        last, received, chained = None, 0, True
        rss_before = rss_mb(daphne_pid)
        started = time.monotonic()
        peak_rss = rss_before
        # The reader reads for a while, the slow client not at all.
        while time.monotonic() - started < SLOW_SECONDS + 6:
            frame = json.loads(await asyncio.wait_for(reader.recv(), timeout=10))
            peak_rss = max(peak_rss, rss_mb(daphne_pid))
            if frame["op"] != "points":
                continue
            for batch in frame["data"]:
                if last is not None and batch["prev"] != last:
                    chained = False
                last = batch["id"]
                received += len(batch["t"])
        # Now the slow client reads what it was sent: the end is a close, 4008 or a dropped TCP.
        frames_read = 0
        try:
            while frames_read < 20000:
                await asyncio.wait_for(slow.recv(), timeout=10)
                frames_read += 1
        except ConnectionClosed:
            pass
        await reader.close()
        return {
            "received": received,
            "chained": chained,
            "close_code": slow.protocol.close_code,
            "rss_growth": peak_rss - rss_before,
            "frames_read": frames_read,
        }

    result = asyncio.run(scenario())
    # The reading viewer got everything, in one unbroken chain.
    assert result["chained"]
    assert result["received"] > 1000 * SLOW_SECONDS
    # The slow one was let go: closed with 4008, or dropped when it did not answer the close.
    assert result["close_code"] in (4008, 1006), result
    # Bounded: the budget plus what was in flight, not everything published meanwhile (~2 MB).
    assert result["rss_growth"] < 20, result
    log = stack.log("daphne")
    assert "Traceback" not in log, log
