"""The simulate feed: its settings, and the points it really produces over time."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from itertools import pairwise
from typing import Any

import pytest

from streams.core.points import Point
from streams.ingest.feeds import build_feed, clean_feed_settings
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.simulate import SimulateFeed

ALL_SETTINGS = {"shape", "amplitude", "period", "offset", "noise", "rate", "seed", "series"}


def refused_key(raw: dict[str, Any]) -> str:
    with pytest.raises(FeedSettingsError) as caught:
        SimulateFeed.clean_settings(raw)
    return caught.value.key


async def collect(feed: SimulateFeed, *, seconds: float) -> list[Point]:
    """Every point the feed yields in about `seconds` of wall clock; never waits more than 5 s."""
    points: list[Point] = []
    batches = feed.batches()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(5):
            async for batch in batches:
                points.extend(batch)
                if loop.time() - started >= seconds:
                    break
    finally:
        await batches.aclose()
    return points


def test_empty_settings_are_valid_and_every_setting_gets_a_default():
    settings = SimulateFeed.clean_settings({})
    assert set(settings) == ALL_SETTINGS
    assert settings["rate"] == 10
    assert settings["seed"] is None
    assert settings["series"] == [
        {"name": "value", "shape": "sine", "amplitude": 1.0, "period": 10.0, "offset": 0.0, "noise": 0.0}
    ]


def test_registry_cleans_missing_settings_as_empty():
    assert clean_feed_settings("simulate", None) == SimulateFeed.clean_settings({})


@pytest.mark.parametrize("rate", [1, 10, 1000, 2.5])
def test_rate_from_1_to_1000_is_accepted(rate):
    assert SimulateFeed.clean_settings({"rate": rate})["rate"] == rate


@pytest.mark.parametrize("rate", [0, 0.5, 1001, -3, "fast", True, None, math.inf])
def test_rate_outside_1_to_1000_or_not_a_number_is_refused(rate):
    assert refused_key({"rate": rate}) == "rate"


def test_rate_message_says_the_limit_and_the_value():
    with pytest.raises(FeedSettingsError, match=r"^rate: must be at most 1000, not 5000$"):
        SimulateFeed.clean_settings({"rate": 5000})


@pytest.mark.parametrize("shape", ["sine", "walk", "noise"])
def test_each_shape_is_accepted(shape):
    assert SimulateFeed.clean_settings({"shape": shape})["series"][0]["shape"] == shape


def test_unknown_shape_is_refused_naming_shape():
    assert refused_key({"shape": "square"}) == "shape"


def test_series_may_be_names_or_objects_and_objects_override_the_top_level_defaults():
    settings = SimulateFeed.clean_settings(
        {"amplitude": 2, "series": ["a", {"name": "b", "shape": "walk", "offset": 5}]}
    )
    a, b = settings["series"]
    assert a == {"name": "a", "shape": "sine", "amplitude": 2, "period": 10.0, "offset": 0.0, "noise": 0.0}
    assert b == {"name": "b", "shape": "walk", "amplitude": 2, "period": 10.0, "offset": 5, "noise": 0.0}
    assert SimulateFeed.series_names(settings) == ["a", "b"]


def test_duplicate_series_names_are_refused():
    assert refused_key({"series": ["a", "b", "a"]}) == "series[2].name"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"colour": "red"}, "colour"),
        ({"series": [{"name": "a", "colour": "red"}]}, "series[0].colour"),
        ({"series": []}, "series"),
        ({"series": "a"}, "series"),
        ({"series": [f"s{i}" for i in range(21)]}, "series"),
        ({"series": [7]}, "series[0]"),
        ({"series": [{"name": "bad\nname"}]}, "series[0].name"),
        ({"seed": 1.5}, "seed"),
        ({"amplitude": -1}, "amplitude"),
        ({"period": 0}, "period"),
        ({"series": [{"name": "a", "noise": -0.1}]}, "series[0].noise"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(raw, key):
    assert refused_key(raw) == key


def test_unknown_key_message_lists_the_known_settings():
    with pytest.raises(FeedSettingsError, match=r"colour: unknown setting \(known: .*rate.*\)"):
        SimulateFeed.clean_settings({"colour": "red"})


async def test_feed_yields_points_at_its_rate_evenly_spaced_with_every_series():
    feed = build_feed(
        "simulate",
        {
            "rate": 200,
            "seed": 7,
            "series": [
                {"name": "sine", "shape": "sine", "amplitude": 2, "offset": 10, "period": 0.2, "noise": 0.01},
                {"name": "walk", "shape": "walk", "amplitude": 1, "period": 1},
                {"name": "noise", "shape": "noise", "amplitude": 1, "offset": 3},
            ],
        },
    )
    points = await collect(feed, seconds=0.5)

    # About 100 points; the range is generous because a busy machine schedules late.
    assert 50 <= len(points) <= 250
    times = [point.t for point in points]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert all(gap > 0 for gap in gaps)
    assert gaps == pytest.approx([1 / 200] * len(gaps), abs=1e-5)
    assert all(set(point.values) == {"sine", "walk", "noise"} for point in points)

    sine = [point.values["sine"] for point in points]
    assert all(10 - 2 - 0.1 <= value <= 10 + 2 + 0.1 for value in sine)
    assert max(sine) - min(sine) > 2  # 0.5 s covers 2.5 periods: it really swings
    walk = [point.values["walk"] for point in points]
    assert len(set(walk)) > len(walk) // 2
    noise = [point.values["noise"] for point in points]
    assert 0.5 < statistics.stdev(noise) < 2
    assert statistics.mean(noise) == pytest.approx(3, abs=0.6)


async def test_seeded_feeds_repeat_their_random_series():
    settings = {"rate": 100, "seed": 42, "series": [{"name": "w", "shape": "walk"}]}
    first = await collect(build_feed("simulate", settings), seconds=0.1)
    second = await collect(build_feed("simulate", settings), seconds=0.1)
    count = min(len(first), len(second))
    assert count >= 5
    assert [p.values["w"] for p in first[:count]] == [p.values["w"] for p in second[:count]]


async def test_slow_feed_yields_each_point_as_soon_as_it_is_due():
    # At 20 points/s the spacing (50 ms) is the batching interval: one point per batch.
    batches = build_feed("simulate", {"rate": 20}).batches()
    try:
        async with asyncio.timeout(5):
            sizes = [len(await anext(batches)) for _ in range(5)]
    finally:
        await batches.aclose()
    # A late wake-up on a busy machine may catch up two points at once; normally it is one.
    assert sizes.count(1) >= 3


async def test_a_resumed_feed_goes_on_one_step_after_the_last_stored_point():
    # Another worker ran the stream until a moment ago (a hand-over): no gap, no point twice.
    feed = SimulateFeed({"rate": 20})
    last = time.time() - 1.0
    feed.resume_after(last)
    points = await collect(feed, seconds=0.2)
    assert points[0].t == pytest.approx(last + 0.05, abs=1e-6)
    assert all(round((b.t - a.t) * 1000) == 50 for a, b in pairwise(points))
    assert points[-1].t > last + 1.0  # the second in between is caught up


async def test_a_feed_resumed_after_a_long_pause_starts_afresh_without_replaying_it():
    feed = SimulateFeed({"rate": 20})
    feed.resume_after(time.time() - 3600)
    started = time.time()
    points = await collect(feed, seconds=0.2)
    assert points[0].t >= started
