"""core.times: one reader for feed times (numbers told by size, ISO 8601) and range bounds."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core.times import BadTime, parse_time, utc_text

# 2026-11-28T10:00:00.123456789Z, the nanoseconds as an exact integer.
NS = 1_795_860_000_123_456_789
# 2024-01-01T00:00:00Z
NEW_YEAR = 1_704_067_200.0


def refusal(raw: Any, **options: Any) -> str:
    with pytest.raises(BadTime) as caught:
        parse_time(raw, **options)
    return str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1_795_860_000, 1_795_860_000.0),  # seconds
        (1_795_860_000.5, 1_795_860_000.5),
        (1_795_860_000_123, 1_795_860_000.123),  # milliseconds
        (1_795_860_000_123_456, 1_795_860_000.123456),  # microseconds
        (NS, 1_795_860_000.123456789),  # nanoseconds
        (str(NS), 1_795_860_000.123456789),  # as text, too
        (-1_000_000, -1_000_000.0),  # before 1970, in seconds
        (99_999_999_999, 99_999_999_999.0),  # the largest seconds: the year 5138
        (100_000_000_000, 100_000_000.0),  # the smallest milliseconds: March 1973
        (100_000_000_000_000, 100_000_000.0),  # the smallest microseconds
        (100_000_000_000_000_000, 100_000_000.0),  # the smallest nanoseconds
    ],
)
def test_an_epoch_number_in_s_ms_us_or_ns_is_told_apart_by_its_size(raw: Any, expected: float):
    assert parse_time(raw) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("unit", "raw"),
    [
        ("s", 1_795_860_000),
        ("ms", 1_795_860_000_000),
        ("us", 1_795_860_000 * 10**6),
        ("ns", 1_795_860_000 * 10**9),
    ],
)
def test_a_fixed_unit_reads_every_number_in_that_unit(unit: str, raw: int):
    assert parse_time(raw, numbers=unit) == 1_795_860_000.0
    assert parse_time(1_000, numbers=unit) == 1_000 / {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-01T00:00:00Z", NEW_YEAR),
        ("2024-01-01T00:00:00z", NEW_YEAR),
        ("2024-01-01T02:00:00+02:00", NEW_YEAR),
        (" 2024-01-01T00:00:00.250 ", NEW_YEAR + 0.25),  # no offset: UTC
    ],
)
def test_iso_8601_text_reads_with_its_offset_and_without_one_as_utc(raw: str, expected: float):
    assert parse_time(raw) == expected
    assert parse_time(raw, numbers=None) == expected


def test_a_5000_digit_time_is_refused_not_a_crash():
    assert refusal(10**4999) == "the number is too large"
    assert refusal("9" * 5000).endswith("is not a finite number")  # text: read as a float, infinity


def test_a_fixed_unit_or_iso_refuses_the_other_kind():
    assert refusal("2024-01-01T00:00:00Z", numbers="ms", iso=False).endswith("is not a number of ms")
    assert refusal(5, numbers=None) == "5 is a number, not an ISO 8601 time"
    assert refusal("yesterday").endswith("is not an ISO 8601 time")
    assert refusal(True) == "True is a boolean, not a time"
    assert refusal([1]).endswith("is not a time")


# What the range API asks for: epoch milliseconds as plain decimals, or ISO 8601 from a query.
RANGE = {"numbers": "ms", "plain_numbers": True, "space_for_plus": True, "limit": 1e11}


def test_range_bounds_read_plain_decimals_as_milliseconds_and_anything_else_as_iso():
    assert parse_time("1704067200000", **RANGE) == NEW_YEAR
    assert parse_time("-1500.5", **RANGE) == -1.5005
    # float() would read these as numbers; as a bound they are no time at all.
    for text in ("1e12", "inf", "+5"):
        assert refusal(text, **RANGE).endswith("is neither epoch ms nor an ISO 8601 time")
    assert parse_time("1e12") == 1e9  # a feed's time: any number float() reads


def test_a_space_stands_for_an_unencoded_plus_only_when_asked():
    assert parse_time("2024-01-01T02:00:00 02:00", **RANGE) == NEW_YEAR
    assert refusal("2024-01-01T02:00:00 02:00").endswith("is not an ISO 8601 time")


def test_a_limit_refuses_times_further_from_1970():
    assert refusal("99999999999999999999", **RANGE).endswith("is out of range")
    assert parse_time(99_999_999_999_999_999_999) == pytest.approx(1e11)  # ns by size: no limit


def test_utc_text_writes_iso_8601_utc_and_the_number_when_out_of_range():
    assert utc_text(NEW_YEAR + 0.5) == "2024-01-01T00:00:00.500000Z"
    assert utc_text(1e20) == "1e+20"
