"""The simulate feed: its settings, and the points it really produces over time."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from contextlib import aclosing
from itertools import pairwise
from typing import Any

import pytest

from streams.core.points import Batch, Point
from streams.ingest.feeds import build_feed, clean_feed_settings
from streams.ingest.feeds.base import Feed, FeedSettingsError
from streams.ingest.feeds.simulate import MAX_CATCH_UP_SECONDS, SimulateFeed

# How long after its deadline an on-time wake-up comes (FeedTime).
ON_TIME = 1e-6
ALL_SETTINGS = {"shape", "amplitude", "period", "offset", "noise", "rate", "seed", "series"}


def refused_key(raw: dict[str, Any]) -> str:
    with pytest.raises(FeedSettingsError) as caught:
        SimulateFeed.clean_settings(raw)
    return caught.value.key


class FeedTime:
    """The feed's clock and sleep, driven by the test: a sleep moves time on by what the feed
    asked for and returns at once, so points fall due exactly when the feed expects them, not
    when a busy machine's event loop gets round to waking it. `late` holds how late each coming
    wake-up is (seconds, in order; then on time).

    On time is a microsecond after the deadline, as on a real clock: never on it exactly, where
    the float sums put the point due at the deadline a hair in the future and the feed would
    sleep 0 s for ever, its clock never moving."""

    def __init__(self, at: float = 1_700_000_000.0) -> None:
        self.at = at
        self.late: list[float] = []

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.at += seconds + ON_TIME + (self.late.pop(0) if self.late else 0.0)
        await asyncio.sleep(0)  # still a suspension point, as the real sleep is


def simulate(settings: dict[str, Any], clock: FeedTime) -> SimulateFeed:
    return SimulateFeed(settings, clock=clock.now, sleep=clock.sleep)


async def collect(feed: SimulateFeed, *, seconds: float) -> list[Point]:
    """Every point the feed yields in `seconds` of its own clock."""
    points: list[Point] = []
    started = feed.clock()
    async with asyncio.timeout(30), aclosing(feed.batches()) as batches:  # bounds a hang only
        async for batch in batches:
            points.extend(batch)
            if feed.clock() - started >= seconds:
                break
    return points


async def first_batches(feed: Feed, count: int) -> list[Batch]:
    async with asyncio.timeout(30), aclosing(feed.batches()) as batches:  # bounds a hang only
        return [await anext(batches) for _ in range(count)]


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
    settings = {
        "rate": 200,
        "seed": 7,
        "series": [
            {"name": "sine", "shape": "sine", "amplitude": 2, "offset": 10, "period": 0.2, "noise": 0.01},
            {"name": "walk", "shape": "walk", "amplitude": 1, "period": 1},
            {"name": "noise", "shape": "noise", "amplitude": 1, "offset": 3},
        ],
    }
    clock = FeedTime()
    points = await collect(simulate(settings, clock), seconds=0.5)

    # 100 points in half a second, give or take the batch (10 points) the last sleep ends in.
    assert 90 <= len(points) <= 110
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


async def test_by_default_the_feed_runs_on_the_wall_clock_and_the_event_loop():
    before = time.time()
    [batch] = await first_batches(build_feed("simulate", {"rate": 20}), 1)
    # However late the loop woke it, a point is yielded once due, and not before.
    assert before < batch[0].t <= time.time()


async def test_seeded_feeds_repeat_their_random_series():
    settings = {"rate": 100, "seed": 42, "series": [{"name": "w", "shape": "walk"}]}
    first = await collect(simulate(settings, FeedTime()), seconds=0.1)
    second = await collect(simulate(settings, FeedTime()), seconds=0.1)
    assert len(first) >= 5
    assert [p.values["w"] for p in first] == [p.values["w"] for p in second]


async def test_slow_feed_yields_each_point_as_soon_as_it_is_due():
    # At 20 points/s the spacing (50 ms) is the batching interval: one point per batch.
    clock = FeedTime()
    started = clock.now()
    batches = await first_batches(simulate({"rate": 20}, clock), 5)
    assert [len(batch) for batch in batches] == [1] * 5
    assert [batch[0].t - started for batch in batches] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25])


async def test_a_late_wake_up_catches_up_the_points_that_fell_due_meanwhile_in_one_batch():
    clock = FeedTime()
    clock.late = [0.0, 0.05, 0.05, 0.05]  # three wake-ups 50 ms late: the loop was busy
    started = clock.now()
    batches = await first_batches(simulate({"rate": 20}, clock), 4)
    assert [len(batch) for batch in batches] == [1, 2, 2, 2]
    times = [point.t - started for batch in batches for point in batch]
    assert times == pytest.approx([0.05 * n for n in range(1, 8)])  # no gap, no point twice


async def test_a_feed_not_scheduled_for_a_long_while_skips_ahead_rather_than_flood():
    # A laptop asleep for a minute: at most MAX_CATCH_UP_SECONDS of points come at once.
    clock = FeedTime()
    clock.late = [0.0, 60.0]
    started = clock.now()
    first, second, third = await first_batches(simulate({"rate": 20}, clock), 3)
    assert len(first) == 1
    assert len(second) == 20 * MAX_CATCH_UP_SECONDS
    assert second[-1].t - started == pytest.approx(60.1)
    assert [point.t - started for point in third] == pytest.approx([60.15])


async def test_a_resumed_feed_goes_on_one_step_after_the_last_stored_point():
    # Another worker ran the stream until a moment ago (a hand-over): no gap, no point twice.
    clock = FeedTime()
    feed = simulate({"rate": 20}, clock)
    last = clock.now() - 1.0
    feed.resume_after(last)
    points = await collect(feed, seconds=0.2)
    assert points[0].t == pytest.approx(last + 0.05, abs=1e-6)
    assert all(round((b.t - a.t) * 1000) == 50 for a, b in pairwise(points))
    assert points[-1].t > last + 1.0  # the second in between is caught up


async def test_a_feed_resumed_after_a_long_pause_starts_afresh_without_replaying_it():
    clock = FeedTime()
    feed = simulate({"rate": 20}, clock)
    feed.resume_after(clock.now() - 3600)
    started = clock.now()
    points = await collect(feed, seconds=0.2)
    assert points[0].t == pytest.approx(started + 0.05)
