"""The SSE output through real daphne + ingest over the real Redis, read as curl would."""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
import redis

from streams.core.ids import parse_id
from streams.ingest.feeds.sse_parser import Event, SSEParser
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack, sign_in
from tests.services import require_redis
from tests.waits import wait_until

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
    # The feed has produced a little history first: the backfill, then 20 live points.
    history = stack.wait_for_points("line", 10)
    before, before_times = read_points(client, points=history + 20)
    # The client hung up: daphne gives the group and its channel back.
    wait_until(
        lambda: group_subscribers(stack) == [],
        what="daphne to give the group and channel back",
        seen=lambda: group_subscribers(stack),
    )

    stack.wait_for_points("line", 30)  # go by while nobody listens
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
