"""The time rules points pass between a feed and broadcast: not far ahead, and per series in order."""

from __future__ import annotations

from streams.core.points import Point
from streams.ingest.feeds.timeline import LATE_SLACK_SECONDS, Timeline

NOW = 1_795_860_000.0


class Skips(list):
    """What the rules counted as bad payloads (Feed.skip), one reason per point."""

    def __call__(self, reason: str) -> None:
        self.append(reason)


def admit(timeline: Timeline, points: list[Point]) -> tuple[list[Point], Skips]:
    skips = Skips()
    return timeline.admit(points, now=NOW, skip=skips), skips


def test_points_in_order_pass_as_they_are():
    timeline = Timeline(max_ahead=300)
    batch = [Point(NOW - 2, {"a": 1.0}), Point(NOW - 1, {"a": 2.0}), Point(NOW + 299, {"a": 3.0})]
    kept, skips = admit(timeline, batch)
    assert kept is batch and skips == []  # the common case copies nothing


def test_a_point_far_ahead_of_our_clock_is_dropped_and_counted_saying_why():
    timeline = Timeline(max_ahead=300)
    kept, skips = admit(timeline, [Point(NOW + 3600, {"a": 1.0}), Point(NOW, {"a": 2.0})])
    assert kept == [Point(NOW, {"a": 2.0})]  # and it did not hold back the point after it
    [reason] = skips
    assert "3600 s ahead of this server's clock" in reason
    assert "LIVECHARTS_MAX_FUTURE_SECONDS=300" in reason and "2026-11-28T11:00:00Z" in reason


def test_a_late_value_is_dropped_and_counted_unless_it_is_only_a_little_late():
    timeline = Timeline(max_ahead=300)
    admit(timeline, [Point(NOW, {"a": 1.0})])
    a_little_late = Point(NOW - LATE_SLACK_SECONDS / 2, {"a": 0.5})
    kept, skips = admit(timeline, [Point(NOW - 10, {"a": 0.0}), a_little_late, Point(NOW + 1, {"a": 2.0})])
    # Kept as it came: too little to see (requests racing through two daphne processes).
    assert kept == [a_little_late, Point(NOW + 1, {"a": 2.0})]
    [reason] = skips
    assert "series 'a'" in reason and "10 s before its newest point" in reason


def test_a_repeat_of_the_newest_value_is_dropped_without_counting_and_another_value_is_kept():
    timeline = Timeline(max_ahead=300)
    admit(timeline, [Point(NOW, {"a": 1.0})])
    kept, skips = admit(timeline, [Point(NOW, {"a": 1.0})])  # a redelivery
    assert kept == [] and skips == []
    kept, skips = admit(timeline, [Point(NOW, {"a": 5.0})])  # a second reading at that time
    assert kept == [Point(NOW, {"a": 5.0})] and skips == []


def test_several_readings_at_one_arrival_time_are_all_kept_in_arrival_order():
    timeline = Timeline(max_ahead=300)
    # POST [1, 2, 3]: three numbers of the default series, all at the request's arrival time.
    batch = [Point(NOW, {"value": 1.0}), Point(NOW, {"value": 2.0}), Point(NOW, {"value": 3.0})]
    kept, skips = admit(timeline, batch)
    assert kept == batch and skips == []


def test_a_batch_listed_newest_first_is_put_in_time_order_not_dropped():
    timeline = Timeline(max_ahead=300)
    admit(timeline, [Point(NOW - 100, {"a": 0.0})])
    batch = [Point(NOW - t, {"a": float(t)}) for t in (1, 2, 3)]
    kept, skips = admit(timeline, batch)
    assert kept == batch[::-1] and skips == []


def test_series_are_ordered_on_their_own_and_may_share_a_time():
    timeline = Timeline(max_ahead=300)
    # Two MQTT topics of one stream, each with its own clock: b lags a, and both send NOW.
    batch = [
        Point(NOW, {"a": 1.0}),
        Point(NOW - 5, {"b": 1.0}),
        Point(NOW, {"b": 2.0}),
        Point(NOW + 1, {"a": 2.0}),
    ]
    kept, skips = admit(timeline, batch)
    assert sorted(kept, key=lambda point: point.t) == kept  # in time order, stable
    assert sorted(kept, key=repr) == sorted(batch, key=repr) and skips == []


def test_a_point_keeps_the_series_that_pass():
    timeline = Timeline(max_ahead=300)
    admit(timeline, [Point(NOW, {"a": 1.0}), Point(NOW - 10, {"b": 1.0})])
    kept, skips = admit(timeline, [Point(NOW - 5, {"a": 9.0, "b": 2.0})])
    assert kept == [Point(NOW - 5, {"b": 2.0})]
    assert len(skips) == 1


def test_after_a_resume_a_redelivered_point_is_not_drawn_twice():
    timeline = Timeline(max_ahead=300)
    # The newest point in history; `b` is a gap only because its batch was columnar.
    timeline.resume(Point(NOW, {"a": 1.0, "b": None}), now=NOW)
    redelivered = [Point(NOW, {"a": 1.0}), Point(NOW, {"b": 3.0}), Point(NOW + 1, {"a": 2.0})]
    kept, skips = admit(timeline, redelivered)
    assert kept == redelivered[1:] and skips == []


def test_a_stored_point_far_ahead_is_not_gone_on_from():
    timeline = Timeline(max_ahead=300)
    # The newest point in history is in the year 50,000 (stored before this rule existed).
    timeline.resume(Point(NOW * 1000, {"a": 1.0}), now=NOW)
    kept, skips = admit(timeline, [Point(NOW, {"a": 2.0})])
    assert kept == [Point(NOW, {"a": 2.0})] and skips == []


def test_records_with_ids_at_one_time_and_value_are_distinct_and_a_redelivered_id_is_a_repeat():
    timeline = Timeline(max_ahead=300)
    # Two trades in one millisecond at one price (ids 7001 and 7002), then a third.
    first, second = Point(NOW, {"p": 37000.1}, key="7001"), Point(NOW, {"p": 37000.1}, key="7002")
    kept, skips = admit(timeline, [first, second])
    assert kept == [first, second] and skips == []
    third = Point(NOW, {"p": 37000.1}, key="7003")
    # 7001 and 7002 again (a replayed message), beside the new 7003: only 7003 is new.
    kept, skips = admit(timeline, [first, third, second])
    assert kept == [third] and skips == []
    kept, skips = admit(timeline, [Point(NOW + 1, {"p": 37000.1}, key="7001")])  # ids are per time
    assert len(kept) == 1


def test_without_ids_two_records_at_one_time_and_value_are_one_point():
    timeline = Timeline(max_ahead=300)
    kept, _ = admit(timeline, [Point(NOW, {"p": 37000.1}), Point(NOW, {"p": 37000.1})])
    assert kept == [Point(NOW, {"p": 37000.1})]


def test_a_keyed_point_at_the_time_of_a_stored_point_goes_by_value():
    # History keeps no ids: after a restart, a replayed record at the newest stored time is a
    # repeat by value, as before ids.
    timeline = Timeline(max_ahead=300)
    timeline.resume(Point(NOW, {"p": 1.0}), now=NOW)
    kept, _ = admit(timeline, [Point(NOW, {"p": 1.0}, key="9"), Point(NOW, {"p": 2.0}, key="10")])
    assert kept == [Point(NOW, {"p": 2.0}, key="10")]


def test_a_record_without_an_id_between_keyed_ones_does_not_let_a_repeated_id_through():
    timeline = Timeline(max_ahead=300)
    keyed, unkeyed = Point(NOW, {"p": 1.0}, key="1"), Point(NOW, {"p": 2.0})
    kept, _ = admit(timeline, [keyed, unkeyed])
    assert kept == [keyed, unkeyed]
    kept, _ = admit(timeline, [keyed])
    assert kept == []
