"""The push feed: its point format, its settings, and draining the inbox on both backends."""

from __future__ import annotations

import asyncio

import pytest

from streams.core.points import Point
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.extract import BadPayload
from streams.ingest.feeds.push import PushFeed, native_point
from streams.ingest.inbox import RedisInbox, get_inbox

NOW = 1_763_000_000.0


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (3.5, Point(NOW, {"value": 3.5})),
        ({"value": 2}, Point(NOW, {"value": 2.0})),
        ({"t": 1_700_000_000, "value": None}, Point(1_700_000_000.0, {"value": None})),
        ({"t": 1_700_000_000_500, "value": 1}, Point(1_700_000_000.5, {"value": 1.0})),
        ({"t": 1_700_000_000_500_000, "value": 1}, Point(1_700_000_000.5, {"value": 1.0})),
        ({"t": 1_700_000_000_500_000_000, "value": 1}, Point(1_700_000_000.5, {"value": 1.0})),
        ({"t": "2023-11-14T22:13:20Z", "value": 1}, Point(1_700_000_000.0, {"value": 1.0})),
        ({"t": None, "values": {"cpu": 0.5, "mem": 12}}, Point(NOW, {"cpu": 0.5, "mem": 12.0})),
    ],
)
def test_the_native_point_format_reads_numbers_values_and_times(record, expected):
    assert native_point(record, series="value", received_at=NOW) == expected


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("3", "a point is a number or an object"),
        (True, "a point is a number or an object"),
        ({"v": 1}, "v: unknown field"),
        ({"t": 1}, "value: give either `value` or `values`"),
        ({"value": 1, "values": {"a": 1}}, "value: give either `value` or `values`"),
        ({"value": "1"}, "value: must be a number or null, not text '1'"),
        ({"value": True}, "value: must be a number or null, not a boolean"),
        ({"value": 10**400}, "value: the number is too large"),
        ({"value": float("nan")}, "value: must be a finite number"),
        ({"t": "yesterday", "value": 1}, "t: "),
        ({"values": {}}, "values: must be a non-empty object"),
        ({"values": {"cpu": [1]}}, "values.cpu: must be a number or null, not a list"),
        ({"values": {"x" * 65: 1}}, "values: series names are 1-64 characters"),
    ],
)
def test_a_bad_point_is_refused_naming_the_field(record, message):
    with pytest.raises(BadPayload) as refused:
        native_point(record, series="value", received_at=NOW)
    assert str(refused.value).startswith(message)


def test_settings_default_the_series_and_accept_an_extract_mapping():
    assert PushFeed.clean_settings({}) == {"series": "value", "stall_after": 60.0, "extract": None}
    assert PushFeed.series_names({"series": "load"}) == ["load"]
    feed = PushFeed({"extract": {"time": "ts", "values": {"temp": "reading.celsius"}}})
    assert feed.points({"ts": 1_700_000_000, "reading": {"celsius": 21.5}}, received_at=NOW) == [
        Point(1_700_000_000.0, {"temp": 21.5})
    ]
    assert PushFeed.series_names({"extract": {"values": {"temp": "a"}}}) == ["temp"]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"series": ""}, "series"),
        ({"url": "http://x"}, "url"),
        ({"extract": {"value": "a[?"}}, "extract.value"),
        # Pushed points wait in the inbox without it: a silent no-op otherwise.
        ({"extract": {"value": "v", "id": "event_id"}}, "extract.id"),
        # An aggregate holds points for its interval: every request would answer "no points".
        ({"extract": {"aggregate": {"every": 10, "how": "count"}}}, "extract.aggregate"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings, key):
    with pytest.raises(FeedSettingsError) as refused:
        PushFeed.clean_settings(settings)
    assert refused.value.key == key


async def test_the_feed_drains_its_stream_inbox_in_order_without_waiting_for_the_store(layer):
    inbox = get_inbox()
    feed = PushFeed({})
    feed.slug = "pushed"
    batches = feed.batches()
    async with asyncio.timeout(10):
        assert await anext(batches) == []  # ready at once: nothing to connect to
        await inbox.put("pushed", [Point(1.0, {"value": 1.0}), Point(2.0, {"value": 2.0})])
        await inbox.put("pushed", [Point(3.0, {"value": 3.0})])
        await inbox.put("other", [Point(9.0, {"value": 9.0})])
        taken = await anext(batches)
        assert [point.t for point in taken] == [1.0, 2.0, 3.0]
        stored = feed.handed_over(taken)  # what the worker does as it publishes them
        assert stored is not None
        # Handed over, not yet stored: the next batch does not wait for the store, and does not
        # hold those points again.
        await inbox.put("pushed", [Point(4.0, {"value": 4.0})])
        assert [point.t for point in await anext(batches)] == [4.0]
    await batches.aclose()
    other = await inbox.take("other", wait=0.01)
    assert other is not None and [point.t for point in other.points] == [9.0]


async def test_a_batch_the_worker_never_handed_over_is_taken_again(layer):
    inbox = get_inbox()
    await inbox.put("pushed", [Point(1.0, {"value": 1.0})])
    feed = PushFeed({})
    feed.slug = "pushed"
    batches = feed.batches()
    async with asyncio.timeout(10):
        await anext(batches)
        assert len(await anext(batches)) == 1
    await batches.aclose()  # the worker was cancelled before publishing: nothing handed over
    again = await inbox.take("pushed", wait=0.01)
    assert again is not None and [point.t for point in again.points] == [1.0]
    assert feed.handed_over(again.points) is None  # not what the feed yielded last: not its to hand


async def test_a_request_leaves_the_redis_inbox_only_once_broadcast_stored_it(redis_layer, settings):
    inbox = get_inbox()
    next_owner = RedisInbox(settings.REDIS_URL, prefix=settings.LIVECHARTS_REDIS_PREFIX)
    await inbox.put("pushed", [Point(1.0, {"value": 1.0})])
    await inbox.put("pushed", [Point(2.0, {"value": 2.0})])
    feed = PushFeed({})
    feed.slug = "pushed"
    batches = feed.batches()
    async with asyncio.timeout(10):
        await anext(batches)
        taken = await anext(batches)
        stored = feed.handed_over(taken)
        assert stored is not None
        await batches.aclose()
        # Killed now (kill -9), the next owner of the stream would still find both requests.
        left = await next_owner.take("pushed", wait=0.01)
        assert left is not None and [point.t for point in left.points] == [1.0, 2.0]
        stored()  # broadcast's callback after the history append
        await inbox.settle()
        assert await next_owner.take("pushed", wait=0.01) is None
