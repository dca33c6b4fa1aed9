"""GET /metrics: Prometheus text for staff or the scraper's token; per-process and per-stream."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from streams.broadcast import get_broadcaster
from streams.core.frames import batch_text, points_frame
from streams.core.points import Entry, Point
from streams.core.retention import Retention
from streams.delivery import latency
from streams.delivery.consumers import StreamConsumer
from streams.delivery.hub import Frame
from streams.models import Stream
from streams.storage.window import get_history
from tests.waits import DEADLINE

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$")
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def canonical(name: str) -> str:
    """A sample's name with its labels sorted: their order carries no meaning in the format
    (prometheus-client writes them sorted by name)."""
    base, _, labels = name.partition("{")
    if not labels:
        return base
    return base + "{" + ",".join(sorted(f'{k}="{v}"' for k, v in LABEL.findall(labels))) + "}"


class Samples(dict[str, float]):
    """Samples by canonical name; looked up with the labels in any order."""

    def __getitem__(self, name: str) -> float:
        return super().__getitem__(canonical(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(canonical(name))


def parse(text: str) -> Samples:
    """Every sample line as {"name{labels}": value}; fails on any malformed line."""
    samples = Samples()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text: {line!r}"
        name = canonical(match.group(1) + (match.group(2) or ""))
        assert name not in samples, f"sample written twice: {line!r}"
        samples[name] = float(match.group(3))
    return samples


async def two_viewers_sent_one_batch() -> list[WebsocketCommunicator]:
    """Two sockets subscribed to "plant", and one batch of 4 points that both were sent."""
    sockets = []
    for _ in range(2):
        socket = WebsocketCommunicator(StreamConsumer.as_asgi(), "/ws/")
        assert (await socket.connect())[0]
        await socket.send_to(text_data=json.dumps({"op": "subscribe", "stream": "plant", "after": None}))
        assert json.loads(await socket.receive_from(timeout=DEADLINE))["op"] == "subscribed"
        sockets.append(socket)
    broadcaster = get_broadcaster()
    broadcaster.publish(
        "plant", [Point(t=n, values={"v": n}) for n in range(4)], retention=Retention(points=50)
    )
    await broadcaster.flush()
    for socket in sockets:
        assert json.loads(await socket.receive_from(timeout=DEADLINE))["op"] == "points"
    return sockets


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
    sockets = await two_viewers_sent_one_batch()

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
    assert samples["livecharts_layer_reconnects_total"] == 0
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


def bucket_counts(samples: Samples, name: str) -> dict[str, float]:
    prefix = f"{name}_bucket{{"
    return {key: value for key, value in samples.items() if key.startswith(prefix)}


async def scrape(staff) -> Samples:
    client = AsyncClient()
    await client.aforce_login(staff)
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return parse(answer.content.decode())


async def test_a_frame_written_to_sockets_is_observed_from_its_oldest_batchs_broadcast(staff):
    before = await scrape(staff)
    now_ms = time.time() * 1000
    old = batch_text(
        slug="plant",
        prev=None,
        entries=[Entry(id=f"{int(now_ms - 2000)}-0", point=Point(t=1, values={"v": 1}))],
    )
    new = batch_text(
        slug="plant-2",
        prev=f"{int(now_ms - 9000)}-4",
        entries=[Entry(id=f"{int(now_ms)}-3", point=Point(t=2, values={"v": 2}))],
    )
    frame = Frame(points_frame([new, old]))
    for _ in range(3):  # one frame, three sockets
        latency.frame_sent(frame, [new, old])
    after = await scrape(staff)

    name = "livecharts_broadcast_to_socket_seconds"
    assert after[f"{name}_count"] - before[f"{name}_count"] == 3
    # About 2 s old (the older batch; `prev` is not the batch's time): all three in the
    # (1, 2.5] bucket, however slow this machine is within reason.
    grew = {key: after[key] - before[key] for key in bucket_counts(after, name)}
    assert grew[f'{name}_bucket{{le="1.0"}}'] == 0
    assert grew[f'{name}_bucket{{le="2.5"}}'] == 3
    assert grew[f'{name}_bucket{{le="+Inf"}}'] == 3
    assert 6 <= after[f"{name}_sum"] - before[f"{name}_sum"] < 7.5


async def test_a_subscribe_is_timed_when_it_succeeds_and_not_when_refused(staff):
    @latency.timed_subscribe
    async def subscribe(outcome: str) -> str:
        await asyncio.sleep(0)
        if outcome == "refused":
            raise ValueError("forbidden")
        return outcome

    before = await scrape(staff)
    assert await subscribe("ok") == "ok"
    with pytest.raises(ValueError, match="forbidden"):
        await subscribe("refused")
    after = await scrape(staff)
    name = "livecharts_subscribe_seconds"
    assert after[f"{name}_count"] - before[f"{name}_count"] == 1
    assert after[f'{name}_bucket{{le="+Inf"}}'] == after[f"{name}_count"]
    counts = [after[key] for key in bucket_counts(after, name)]
    assert counts == sorted(counts)  # cumulative, as Prometheus reads them


def test_batch_times_are_read_from_encoded_batches_not_from_prev():
    entries = [Entry(id="1764770000050-0", point=Point(t=1, values={"a": 1}))]
    texts = [
        batch_text(slug="x-1_y", prev="1764769999000-7", entries=entries),
        batch_text(
            slug="z", prev=None, entries=[Entry(id="1764770000020-2", point=Point(t=1, values={"b": 2}))]
        ),
    ]
    assert latency.oldest_batch_ms(texts) == 1764770000020
    assert latency.oldest_batch_ms([]) is None


async def test_process_families_come_from_prometheus_client_and_no_family_is_written_twice(staff):
    client = AsyncClient()
    await client.aforce_login(staff)
    text = (await client.get("/metrics")).content.decode()
    samples = parse(text)  # fails on a repeated sample
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    assert samples["process_resident_memory_bytes"] > 0
    assert samples["process_cpu_seconds_total"] > 0
    assert "# TYPE livecharts_broadcast_to_socket_seconds histogram" in text
    assert "# TYPE livecharts_subscribe_seconds histogram" in text
    head = await client.head("/metrics")
    assert head.status_code == 200
    assert head["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


async def test_real_subscribes_and_frames_are_observed(memory_layer, staff):
    await Stream.objects.acreate(slug="plant", title="Plant", visibility=Stream.Visibility.PUBLIC)
    before = await scrape(staff)
    sockets = await two_viewers_sent_one_batch()
    after = await scrape(staff)
    for socket in sockets:
        await socket.disconnect()
    assert after["livecharts_subscribe_seconds_count"] - before["livecharts_subscribe_seconds_count"] == 2
    name = "livecharts_broadcast_to_socket_seconds"
    assert after[f"{name}_count"] - before[f"{name}_count"] == 2
    assert after[f'{name}_bucket{{le="10.0"}}'] - before[f'{name}_bucket{{le="10.0"}}'] == 2


async def test_the_scraper_reaches_each_process_over_plain_http_with_https_redirects_on(settings):
    # Production turns SECURE_SSL_REDIRECT on; Prometheus scrapes every daphne on its own port,
    # plain HTTP: a 301 to https:// there would fail every scrape.
    settings.SECURE_SSL_REDIRECT = True
    settings.LIVECHARTS_METRICS_TOKEN = "scrape-me-42"
    client = AsyncClient()
    answer = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me-42"})
    assert answer.status_code == 200
    assert (await client.get("/streams/")).status_code == 301  # the rest of the site still redirects


async def test_fallbacks_and_failed_ticks_are_counted_where_an_operator_sees_them(staff, monkeypatch):
    from streams.delivery import transport

    monkeypatch.setattr(transport.stats, "plain_fallbacks", 3)
    client = AsyncClient()
    await client.aforce_login(staff)
    samples = parse((await client.get("/metrics")).content.decode())
    assert samples["livecharts_direct_write_fallbacks_total"] == 3
    assert samples["livecharts_publish_fallback_batches_total"] == 0
    assert samples["livecharts_broadcast_tick_errors_total"] == 0
