"""A viewer that stops reading cannot grow daphne's memory: it gets nothing beyond its send
budget, is closed with 4008 when it stays behind, and a reading viewer beside it misses nothing.
Real daphne + ingest over the real Redis; the slow client is a real socket with a tiny receive
buffer that is never read."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.history_fill import fill_window
from tests.processes import Stack, seed_streams
from tests.waits import wait_until

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
METRICS_TOKEN = "slow-reader-test-token"
LARGE_WINDOW = 20_000


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


async def slow_closes(stack: Stack) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(
            f"{stack.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
    match = re.search(r"^livecharts_slow_sockets_closed_total (\S+)$", answer.text, re.MULTILINE)
    assert match, answer.text[:500]
    return int(float(match.group(1)))


def window_length(stack: Stack, slug: str) -> int:
    client = redis.from_url(stack.env["REDIS_URL"])
    try:
        return client.xlen(f"{stack.env['LIVECHARTS_REDIS_PREFIX']}:window:{slug}")
    finally:
        client.close()


@pytest.mark.parametrize("history", ["empty", "window", "large"])
def test_a_client_that_stops_reading_is_closed_and_costs_daphne_bounded_memory(stack: Stack, history: str):
    """With an empty history, with a full window of the default 1,000 points, and with a
    20,000-point window (a backfill of about 5 MB): closed (4008) after the slow-reader time
    all the same, the reading viewer beside it served."""
    stack.env.update(
        LIVECHARTS_SEND_BUDGET_BYTES=str(BUDGET),
        LIVECHARTS_SLOW_READER_SECONDS=str(SLOW_SECONDS),
        LIVECHARTS_METRICS_TOKEN=METRICS_TOKEN,
    )
    if history == "large":
        seed_streams(stack, [{**BUSY, "window_points": LARGE_WINDOW}])
        fill_window(
            redis_url=stack.env["REDIS_URL"],
            prefix=stack.env["LIVECHARTS_REDIS_PREFIX"],
            slug="busy",
            points=LARGE_WINDOW,
            series=20,
        )
    else:
        seed_streams(stack, [BUSY])
    stack.start_ingest()
    stack.start_daphne()
    daphne_pid = stack.procs["daphne"].pid
    if history == "window":
        wait_until(lambda: window_length(stack, "busy") >= 1000, what="the window to fill")

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
        rss_before = rss_mb(daphne_pid)
        for client in (reader, slow):
            await client.send(json.dumps({"op": "subscribe", "stream": "busy", "after": None}))
        last, received, chained = None, 0, True
        started = time.monotonic()
        peak_rss = rss_before
        closed_after = None
        # The reader reads for a while, the slow client not at all.
        while time.monotonic() - started < SLOW_SECONDS + 8:
            frame = json.loads(await asyncio.wait_for(reader.recv(), timeout=10))
            peak_rss = max(peak_rss, rss_mb(daphne_pid))
            if closed_after is None and await slow_closes(stack):
                closed_after = time.monotonic() - started
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
            "closed_after": closed_after,
        }

    result = asyncio.run(scenario())
    print(
        f"history {history}: slow reader closed after {result['closed_after']} s,"
        f" RSS +{result['rss_growth']:.1f} MB"
    )
    # Closed for not reading, about SLOW_SECONDS after it fell behind (it never read at all).
    assert result["closed_after"] is not None, result
    # The reading viewer got everything, in one unbroken chain.
    assert result["chained"]
    assert result["received"] > 1000 * SLOW_SECONDS
    # The slow one was let go: closed with 4008, or dropped when it did not answer the close.
    assert result["close_code"] in (4008, 1006), result
    # Bounded: the budget plus what was in flight, not everything published meanwhile (~2 MB).
    assert result["rss_growth"] < 20, result
    log = stack.log("daphne")
    assert "Traceback" not in log, log
