"""The poll feed against a real local HTTP server started by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from streams.feeds import build_feed
from streams.feeds.base import FeedSettingsError
from streams.feeds.poll import PollError, PollFeed
from tests.json_api import API, serve_json_api


@pytest.fixture
def api() -> Iterator[tuple[API, str]]:
    with serve_json_api() as served:
        yield served


def candles(start_minute: int, count: int) -> list[list[float]]:
    """Binance-style klines: [open time ms, open, high, low, close, volume]."""
    return [
        [EPOCH_MS + (start_minute + i) * 60_000, 1.0, 2.0, 0.5, 100.0 + start_minute + i, 9.0]
        for i in range(count)
    ]


EPOCH_MS = 1_763_000_000_000
CANDLE_EXTRACT = {"time": "[0]", "values": {"close": "[4]"}}


async def test_overlapping_windows_produce_each_point_once(api):
    state, url = api
    feed = PollFeed({"url": url, "extract": CANDLE_EXTRACT})
    async with httpx.AsyncClient() as client:
        state.body = candles(0, 60)
        first = await feed.poll_once(client)
        state.body = candles(1, 60)  # the window moved by one candle
        second = await feed.poll_once(client)
        third = await feed.poll_once(client)  # nothing new
    assert len(first) == 60
    assert [point.values["close"] for point in second] == [160.0]
    assert second[0].t == EPOCH_MS / 1000 + 60 * 60
    assert third == []


async def test_etag_saves_the_body_when_nothing_changed(api):
    state, url = api
    state.body, state.etag = [{"t": 1, "v": 2}], '"v1"'
    feed = PollFeed({"url": url, "extract": {"time": "t", "value": "v"}})
    async with httpx.AsyncClient() as client:
        assert len(await feed.poll_once(client)) == 1
        assert await feed.poll_once(client) == []
    assert state.requests[1]["headers"]["If-None-Match"] == '"v1"'


async def test_post_with_a_body_and_api_key_headers(api):
    state, url = api
    state.body = {"price": 3.5}
    settings = {
        "url": url,
        "method": "POST",
        "body": {"symbol": "BTC"},
        "headers": {"X-Api-Key": "k-123"},
        "extract": {"value": "price", "series": "btc"},
    }
    feed = build_feed("poll", settings)
    async with httpx.AsyncClient(headers=feed.settings["headers"]) as client:
        points = await feed.poll_once(client)
    assert points[0].values == {"btc": 3.5}
    request = state.requests[0]
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == {"symbol": "BTC"}
    assert request["headers"]["X-Api-Key"] == "k-123"


async def test_an_http_error_raises_so_the_worker_backs_off(api):
    state, url = api
    state.status = 503
    feed = PollFeed({"url": url})
    async with httpx.AsyncClient() as client:
        with pytest.raises(PollError, match="HTTP 503"):
            await feed.poll_once(client)


async def test_a_bad_payload_is_counted_and_skipped(api):
    state, url = api
    feed = PollFeed({"url": url, "extract": {"value": "price"}})
    async with httpx.AsyncClient() as client:
        state.body = b"<html>not json</html>"
        assert await feed.poll_once(client) == []
        state.body = {"price": "n/a"}
        assert await feed.poll_once(client) == []
        state.body = {"price": 7}
        assert [point.values for point in await feed.poll_once(client)] == [{"value": 7.0}]
    assert feed.bad_payloads == 2


async def test_batches_polls_on_its_interval(api):
    state, url = api
    state.body = {"v": 1}
    feed = PollFeed({"url": url, "interval": 0.1, "extract": {"value": "v"}})
    batches = []
    async for batch in feed.batches():
        batches.append(batch)
        if len(batches) == 3:
            break
    assert len(batches) == 3  # arrival-time points are always newer, so each poll yields one
    assert len(state.requests) >= 3


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "http://x", "interval": 0.01}, "interval"),
        ({"url": "http://x", "body": {"a": 1}}, "body"),
        ({"url": "http://x", "headers": {"X": 1}}, "headers"),
        ({"url": "http://x", "extract": {"value": "a[?"}}, "extract.value"),
        ({"url": "http://x", "colour": "red"}, "colour"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings, key):
    with pytest.raises(FeedSettingsError) as refused:
        PollFeed.clean_settings(settings)
    assert refused.value.key == key
