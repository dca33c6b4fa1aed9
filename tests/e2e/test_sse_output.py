"""The SSE output through real daphne + ingest over the real Redis, read as curl would."""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest
import redis

from streams.feeds.sse_parser import Event, SSEParser
from streams.ids import parse_id
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack, sign_in
from tests.services import require_redis

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RATE = 20  # points/s of the seeded simulate stream


def read_points(
    client: httpx.Client, *, points: int, last_event_id: str | None = None
) -> tuple[list[Event], list[float]]:
    """Open the event stream, read `points` events until `points` points came, then hang up."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    parser = SSEParser(last_event_id=last_event_id)
    events: list[Event] = []
    times: list[float] = []
    with client.stream("GET", "/streams/line/events", headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        for chunk in response.iter_bytes():
            for event in parser.feed(chunk):
                assert event.type in ("points", "status"), event
                if event.type == "points":
                    events.append(event)
                    times += json.loads(event.data)["t"]
            if len(times) >= points:
                break
    assert parser.retry_ms == 3000
    return events, times


def group_subscribers(stack: Stack) -> list[bytes]:
    """The layer channels daphne is subscribed to in Redis (its viewers' groups and channels)."""
    client = redis.from_url(require_redis())
    try:
        return client.pubsub_channels(f"{stack.env['LIVECHARTS_REDIS_PREFIX']}:asgi*")
    finally:
        client.close()


def test_a_reconnect_with_last_event_id_continues_with_no_gap_and_no_duplicate(stack: Stack):
    stack.start_ingest()
    stack.start_daphne()
    client = sign_in(stack, "alice", PASSWORD)
    # The feed has produced a little history first.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, first_times = read_points(client, points=1)
        if len(first_times) >= 10:
            break
        time.sleep(0.2)

    before, before_times = read_points(client, points=len(first_times) + 20)
    # The client hung up: daphne gives the group and its channel back.
    deadline = time.monotonic() + 5
    while group_subscribers(stack) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_subscribers(stack) == []

    time.sleep(1.5)  # ~30 points go by while nobody listens
    after, after_times = read_points(client, points=40, last_event_id=before[-1].id)

    assert json.loads(after[0].data)["prev"] == before[-1].id
    times = before_times + after_times
    steps = [round(b - a) for a, b in itertools.pairwise(times)]
    # Times travel rounded to a microsecond, so compare whole milliseconds.
    assert steps == [1000 // RATE] * len(steps), "every point exactly once: no gap, no duplicate"
    ids = [parse_id(event.id) for event in before + after]
    assert ids == sorted(set(ids))


def test_refusals_through_daphne(stack: Stack):
    stack.start_daphne()
    anonymous = httpx.get(f"{stack.base_url}/streams/line/events", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    bob = sign_in(stack, "bob", PASSWORD)
    assert bob.get("/streams/line/events").status_code == 403
    assert bob.get("/streams/nothing-here/events").status_code == 404
