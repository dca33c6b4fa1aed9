"""'Test this feed': first points or the error, and nothing published to the stream."""

from __future__ import annotations

import pytest

from streams.config.feed_trial import MAX_POINTS, probe, probe_seconds
from streams.ingest.feeds.poll import PollFeed
from tests.json_api import serve_json_api


async def test_a_working_feed_shows_its_first_points():
    result = await probe("simulate", {"rate": 200, "series": ["a", "b"]}, seconds=5)
    assert result.error is None and result.connected
    assert len(result.points) == MAX_POINTS
    assert result.series == ["a", "b"] and len(result.rows()[0][1]) == 2


async def test_a_failing_feed_shows_the_error():
    with serve_json_api() as (state, url):
        state.status = 401
        result = await probe("poll", {"url": url, "interval": 0.1}, seconds=5)
    assert result.points == [] and "HTTP 401" in (result.error or "")


async def test_payloads_that_do_not_fit_are_counted():
    with serve_json_api() as (state, url):
        state.body = {"price": "n/a"}
        result = await probe("poll", {"url": url, "interval": 0.1, "extract": {"value": "price"}}, seconds=1)
    assert result.points == [] and result.error is None and result.bad_payloads >= 1 and result.timed_out


async def test_bad_settings_are_reported_not_raised():
    result = await probe("poll", {"url": "ftp://nope"}, seconds=1)
    assert result.error is not None and result.error.startswith("bad feed settings: url")


@pytest.mark.parametrize(("every", "seconds"), [(None, 10), (10, 17), (600, 30)])
def test_an_aggregating_feed_is_given_time_for_one_interval(every, seconds):
    extract = {"aggregate": {"every": every, "how": "count"}} if every else {}
    settings = PollFeed.clean_settings({"url": "http://example.com/x", "extract": extract})
    assert probe_seconds(settings) == seconds


def test_an_aggregate_of_timed_records_is_given_its_grace_too():
    extract = {"time": "t", "aggregate": {}}
    settings = PollFeed.clean_settings({"url": "http://example.com/x", "extract": extract})
    assert probe_seconds(settings) == 10 * 1.5 + 5 + 2
