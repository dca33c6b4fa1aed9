"""GET /metrics: Prometheus text for staff or the scraper's token; per-process and per-stream."""

from __future__ import annotations

import json
import re
import time

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from streams.broadcast import get_broadcaster
from streams.consumers import StreamConsumer
from streams.feeds.base import Point
from streams.history import Retention, get_history
from streams.models import Stream

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+-]+|NaN)$")


def parse(text: str) -> dict[str, float]:
    """Every sample line as {"name{labels}": value}; fails on any malformed line."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


async def test_anonymous_and_plain_users_are_refused(alice):
    client = AsyncClient()
    answer = await client.get("/metrics")
    assert answer.status_code == 403
    assert b"LIVECHARTS_METRICS_TOKEN" in answer.content
    await client.aforce_login(alice)
    assert (await client.get("/metrics")).status_code == 403


async def test_the_scrapers_token_is_let_in_and_a_wrong_one_is_not(settings):
    settings.LIVECHARTS_METRICS_TOKEN = "scrape-me-42"
    client = AsyncClient()
    assert (await client.get("/metrics", headers={"Authorization": "Bearer scrape-me-42"})).status_code == 200
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 403
    settings.LIVECHARTS_METRICS_TOKEN = ""
    assert (await client.get("/metrics", headers={"Authorization": "Bearer "})).status_code == 403


async def test_sockets_frames_points_and_feed_health_are_counted(layer, staff):
    await Stream.objects.acreate(slug="plant", title="Plant", visibility=Stream.Visibility.PUBLIC)
    await Stream.objects.acreate(slug="quiet", title="Quiet", visibility=Stream.Visibility.PUBLIC)
    now = time.time()
    await get_history().set_status(
        "plant",
        {
            "state": "live",
            "points": 120,
            "bad_payloads": 3,
            "reconnects": 2,
            "last_point_at": now - 5,
            "at": now,
        },
    )
    sockets = []
    for _ in range(2):
        socket = WebsocketCommunicator(StreamConsumer.as_asgi(), "/ws/")
        assert (await socket.connect())[0]
        await socket.send_to(text_data=json.dumps({"op": "subscribe", "stream": "plant", "after": None}))
        assert json.loads(await socket.receive_from(timeout=3))["op"] == "subscribed"
        sockets.append(socket)
    broadcaster = get_broadcaster()
    broadcaster.publish(
        "plant", [Point(t=n, values={"v": n}) for n in range(4)], retention=Retention(points=50)
    )
    await broadcaster.flush()
    for socket in sockets:
        assert json.loads(await socket.receive_from(timeout=3))["op"] == "points"

    client = AsyncClient()
    await client.aforce_login(staff)
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse(answer.content.decode())
    assert samples["livecharts_sockets"] == 2
    assert samples["livecharts_streams_watched"] == 1
    assert samples["livecharts_batches_received_total"] == 1
    assert samples["livecharts_frames_sent_total"] == 2
    assert samples["livecharts_frames_encoded_total"] == 1  # one frame shared by both sockets
    assert samples["livecharts_batches_sent_total"] == 2
    assert samples["livecharts_points_sent_total"] == 8
    assert 0 <= samples['livecharts_stream_lag_seconds{stream="plant"}'] < 60
    assert samples['livecharts_feed_state{stream="plant",state="live"}'] == 1
    assert samples['livecharts_feed_state{stream="plant",state="error"}'] == 0
    assert samples['livecharts_feed_points_total{stream="plant"}'] == 120
    assert samples['livecharts_feed_bad_payloads_total{stream="plant"}'] == 3
    assert samples['livecharts_feed_reconnects_total{stream="plant"}'] == 2
    assert 4 <= samples['livecharts_stream_last_point_age_seconds{stream="plant"}'] < 60
    assert not any('stream="quiet"' in name for name in samples)  # no health stored yet
    for socket in sockets:
        await socket.disconnect()
