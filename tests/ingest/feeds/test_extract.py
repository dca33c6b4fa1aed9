"""extract: JSON payloads from every feed kind mapped to points through JMESPath settings."""

from __future__ import annotations

import json
import uuid
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from streams.core.points import Point
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.extract import BadPayload, Extractor, clean_extract
from streams.ingest.feeds.extract.records import MAX_RECORDS
from tests.ingest.feeds.shapes import YAHOO_EXTRACT, YAHOO_OPEN, yahoo_chart

NOW = 1_700_000_000.0
# 2024-01-01T00:00:00Z
NEW_YEAR = 1_704_067_200.0


def make_extractor(settings: dict[str, Any] | None, **options: Any) -> Extractor:
    return Extractor(clean_extract(settings), **options)


def extract(settings: dict[str, Any] | None, payload: Any, *, topic: str | None = None) -> list[Point]:
    return make_extractor(settings).points(payload, received_at=NOW, topic=topic)


def bad_reason(settings: dict[str, Any] | None, payload: Any, *, topic: str | None = None) -> str:
    with pytest.raises(BadPayload) as caught:
        extract(settings, payload, topic=topic)
    return str(caught.value)


def refused(raw: Any) -> FeedSettingsError:
    with pytest.raises(FeedSettingsError) as caught:
        clean_extract(raw)
    return caught.value


# Values


def test_bare_number_payload_is_one_point_at_arrival_time():
    assert extract(None, 21.5) == [Point(t=NOW, values={"value": 21.5})]
    assert extract({"series": "temperature"}, 3) == [Point(t=NOW, values={"temperature": 3.0})]


def test_value_path_reads_a_number_nested_in_an_object():
    payload = {"data": {"price": 101.25, "symbol": "BTC"}}
    assert extract({"value": "data.price"}, payload) == [Point(t=NOW, values={"value": 101.25})]


def test_records_path_picks_the_list_of_records():
    payload = {"data": {"candles": [{"c": 1}, {"c": 2}, {"c": 3}]}}
    points = extract({"records": "data.candles[*]", "value": "c"}, payload)
    assert [p.values["value"] for p in points] == [1.0, 2.0, 3.0]


def test_a_list_payload_is_a_list_of_records_by_default():
    assert [p.values for p in extract(None, [1, 2])] == [{"value": 1.0}, {"value": 2.0}]


def test_records_filter_keeps_only_matching_messages():
    settings = {"records": "[@][?type=='trade']", "value": "price"}
    assert extract(settings, {"type": "trade", "price": 5}) == [Point(t=NOW, values={"value": 5.0})]
    assert extract(settings, {"type": "subscribed"}) == []


def test_values_gives_several_series_from_one_record_and_null_is_a_gap():
    settings = {"values": {"inside": "temp.in", "outside": "temp.out"}}
    assert extract(settings, {"temp": {"in": 21, "out": None}}) == [
        Point(t=NOW, values={"inside": 21.0, "outside": None})
    ]


def test_series_path_names_the_series_from_each_record():
    payload = [{"site": "paris", "v": 1}, {"site": "oslo", "v": 2}, {"site": 42, "v": 3}]
    points = extract({"series_path": "site", "value": "v"}, payload)
    assert [p.values for p in points] == [{"paris": 1.0}, {"oslo": 2.0}, {"42": 3.0}]


def test_series_from_topic_names_the_series_from_an_mqtt_topic():
    settings = {"series_from_topic": 1}
    assert extract(settings, 21.5, topic="sensors/kitchen/temperature") == [
        Point(t=NOW, values={"kitchen": 21.5})
    ]
    assert "no topic" in bad_reason(settings, 21.5)
    assert "no segment 1" in bad_reason(settings, 21.5, topic="sensors")


def test_numeric_strings_are_numbers():
    assert extract({"value": "p"}, {"p": " 21.5 "})[0].values == {"value": 21.5}


def test_booleans_are_not_numbers():
    assert "boolean" in bad_reason({"value": "on"}, {"on": True})


def test_scale_then_offset_apply_to_every_value():
    settings = {"values": {"a": "a", "b": "b"}, "scale": 0.1, "offset": -273.15}
    [point] = extract(settings, {"a": 3000, "b": None})
    assert point.values["a"] == pytest.approx(26.85)
    assert point.values["b"] is None


# Time


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [
        (NEW_YEAR, "auto", NEW_YEAR),
        (NEW_YEAR * 1000, "auto", NEW_YEAR),
        (str(int(NEW_YEAR * 1000)), "auto", NEW_YEAR),
        ("2024-01-01T00:00:00Z", "auto", NEW_YEAR),
        ("2024-01-01T02:00:00+02:00", "auto", NEW_YEAR),
        ("2024-01-01T00:00:00.250", "auto", NEW_YEAR + 0.25),
        (1500, "s", 1500.0),
        (1500, "ms", 1.5),
        ("2024-01-01T00:00:00Z", "iso", NEW_YEAR),
    ],
)
def test_time_is_read_in_seconds_milliseconds_or_iso_8601(raw: Any, unit: str, expected: float):
    [point] = extract({"time": "ts", "value": "v", "time_unit": unit}, {"ts": raw, "v": 1})
    assert point.t == pytest.approx(expected)


# 2026-11-28T10:00:00.123456789Z, the nanoseconds as an exact integer.
NS = 1_795_860_000_123_456_789


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
    [point] = extract({"time": "ts", "value": "v"}, {"ts": raw, "v": 1})
    assert point.t == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("unit", "raw"),
    [
        ("s", 1_795_860_000),
        ("ms", 1_795_860_000_000),
        ("us", 1_795_860_000 * 10**6),
        ("ns", 1_795_860_000 * 10**9),
    ],
)
def test_a_time_unit_setting_reads_every_number_in_that_unit(unit: str, raw: int):
    settings = {"time": "ts", "value": "v", "time_unit": unit}
    assert extract(settings, {"ts": raw, "v": 1})[0].t == 1_795_860_000.0
    [point] = extract(settings, {"ts": 1_000, "v": 1})
    assert point.t == 1_000 / {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]
    assert f"not a number of {unit}" in bad_reason(settings, {"ts": "2024-01-01T00:00:00Z", "v": 1})


def test_a_5000_digit_time_is_a_bad_payload_not_a_crash():
    settings = {"time": "t", "value": "v"}
    assert bad_reason(settings, {"t": 10**4999, "v": 1}) == "time: the number is too large"
    with pytest.raises(BadPayload, match=r"time: .* is not a finite number"):
        make_extractor(settings).points({"t": "9" * 5000, "v": 1}, received_at=0)  # text: infinity
    with pytest.raises(BadPayload, match="time: the number is too large"):
        make_extractor(settings).points({"t": -(10**4999), "v": 1}, received_at=0)


def test_missing_or_null_time_is_the_arrival_time():
    settings = {"time": "ts", "value": "v"}
    assert extract(settings, {"v": 1})[0].t == NOW
    assert extract(settings, {"v": 1, "ts": None})[0].t == NOW


def test_a_time_that_does_not_fit_its_unit_is_a_bad_payload():
    assert "not an ISO 8601 time" in bad_reason({"time": "ts", "value": "v"}, {"ts": "yesterday", "v": 1})
    assert "is a number" in bad_reason({"time": "ts", "value": "v", "time_unit": "iso"}, {"ts": 5, "v": 1})


# Bad payloads


def test_a_record_without_any_value_is_a_bad_payload():
    assert "no value" in bad_reason({"value": "price"}, {"volume": 3})
    assert "no value" in bad_reason({"values": {"a": "a", "b": "b"}}, {"a": None})


def test_a_non_object_where_a_path_is_needed_is_a_bad_payload():
    assert "not an object" in bad_reason({"value": "data.price"}, 21.5)


def test_text_that_is_not_a_number_is_a_bad_payload():
    assert "not a number" in bad_reason({"value": "p"}, {"p": "high"})


def test_too_many_records_is_a_bad_payload():
    assert len(extract(None, [1] * MAX_RECORDS)) == MAX_RECORDS
    assert "at most" in bad_reason(None, [1] * (MAX_RECORDS + 1))


def test_one_bad_record_skips_the_whole_payload():
    extractor = make_extractor({"aggregate": {"how": "sum"}, "value": "v"})
    with pytest.raises(BadPayload):
        extractor.points([{"v": 1}, {"v": "x"}], received_at=5)
    assert extractor.flush(100) == []


# Settings


def test_a_bad_expression_is_refused_with_the_parsers_message():
    error = refused({"value": "data.[price"})
    assert error.key == "extract.value"
    assert "data.[price" in error.message
    assert refused({"values": {"close": "[4"}}).key == "extract.values.close"


def test_an_unknown_function_is_refused_before_any_data_arrives():
    error = refused({"value": "to_nuber(price)"})
    assert (error.key, error.message) == ("extract.value", "Unknown function: to_nuber()")
    assert "takes 1" in refused({"value": "to_number(a, b)"}).message


def test_an_unknown_setting_is_refused_by_name():
    assert refused({"colour": "red"}).key == "extract.colour"
    assert refused({"aggregate": {"every": 5, "per": "site"}}).key == "extract.aggregate.per"


def test_conflicting_ways_to_name_series_are_refused():
    assert refused({"values": {"a": "a"}, "value": "b"}).key == "extract.value"
    assert refused({"series_path": "site", "series_from_topic": 1}).key == "extract.series_from_topic"
    assert refused({"series_path": "site", "series": "x"}).key == "extract.series"
    assert refused({"series": "x" * 65}).key == "extract.series"
    assert refused({"aggregate": {"every": 0.01}}).key == "extract.aggregate.every"


def test_cleaned_settings_have_defaults_and_clean_to_themselves():
    saved = clean_extract(None).as_json()
    assert saved["value"] == "@"
    assert saved["series"] == "value"
    assert (saved["scale"], saved["offset"], saved["decode"]) == (1, 0, [])
    for raw in (
        {},
        {"values": {"a": "x"}, "aggregate": {"how": "max"}},
        {"series_path": "site", "aggregate": {}},
    ):
        cleaned = clean_extract(raw)
        saved = cleaned.as_json()
        assert json.loads(json.dumps(saved)) == saved
        assert clean_extract(saved) == cleaned
        assert clean_extract(saved).as_json() == saved


# Aggregation

EVENTS = [
    {"t": 1, "site": "a", "n": 1},
    {"t": 2, "site": "a", "n": 3},
    {"t": 5, "site": "b", "n": 10},
    {"t": 12, "site": "a", "n": 5},
    {"t": 15, "site": "b", "n": 2},
    {"t": 18, "site": "b", "n": 4},
]


@pytest.mark.parametrize(
    ("how", "first", "second"),
    [
        ("count", {"a": 2, "b": 1}, {"a": 1, "b": 2}),
        ("sum", {"a": 4, "b": 10}, {"a": 5, "b": 6}),
        ("mean", {"a": 2, "b": 10}, {"a": 5, "b": 3}),
        ("min", {"a": 1, "b": 10}, {"a": 5, "b": 2}),
        ("max", {"a": 3, "b": 10}, {"a": 5, "b": 4}),
    ],
)
def test_aggregation_emits_one_point_per_closed_interval_and_series(how: str, first: dict, second: dict):
    settings = {"time": "t", "series_path": "site", "value": "n", "aggregate": {"every": 10, "how": how}}
    extractor = make_extractor(settings)
    assert extractor.aggregating
    assert extractor.points(EVENTS, received_at=NOW) == []
    assert extractor.flush(9.9) == []
    assert extractor.flush(19.9) == [Point(t=10.0, values=first)]
    # Records carry their own time: each interval waits the default grace of 5 s past its end.
    assert extractor.flush(24.9) == []
    assert extractor.flush(25) == [Point(t=20.0, values=second)]
    assert extractor.flush(100) == []


def test_counting_needs_no_value_and_quiet_intervals_emit_nothing():
    extractor = make_extractor({"time": "t", "aggregate": {"every": 10, "grace": 0}})
    extractor.points([{"t": 1}, {"t": 3}, {"t": 35}], received_at=NOW)
    assert extractor.flush(40) == [Point(t=10.0, values={"value": 2}), Point(t=40.0, values={"value": 1})]


def test_a_series_seen_before_counts_zero_in_an_interval_without_it():
    settings = {"time": "t", "series_path": "site", "aggregate": {"every": 10}}
    extractor = make_extractor(settings)
    extractor.points([{"t": 1, "site": "a"}, {"t": 2, "site": "b"}, {"t": 12, "site": "a"}], received_at=NOW)
    assert [p.values for p in extractor.flush(25)] == [{"a": 1, "b": 1}, {"a": 1, "b": 0}]


def test_late_records_count_in_their_interval_within_the_grace_and_are_dropped_and_told_beyond():
    told: list[str] = []
    extractor = make_extractor({"time": "t", "aggregate": {"every": 10, "grace": 3}}, on_drop=told.append)
    extractor.points([{"t": 1}], received_at=NOW)
    assert extractor.flush(12.9) == []  # [0, 10) is still open 2.9 s past its end
    extractor.points([{"t": 9}, {"t": 9.5}], received_at=NOW)  # late, within the grace
    assert extractor.flush(13) == [Point(t=10.0, values={"value": 3})]
    extractor.points([{"t": 9.9}, {"t": 11}, {"t": 2}], received_at=NOW)  # two beyond the grace
    assert extractor.flush(23) == [Point(t=20.0, values={"value": 1})]
    assert extractor.dropped_late == 2 and len(told) == 2
    assert told[0] == (
        "aggregate: a record at 1970-01-01T00:00:09.900000Z came after its interval (to "
        "1970-01-01T00:00:10Z) was closed 3 s past its end; not counted: raise "
        "extract.aggregate.grace if the source is often this late"
    )


def test_flush_without_aggregation_is_empty():
    extractor = make_extractor(None)
    assert not extractor.aggregating
    assert extractor.flush(NOW) == []


# Real shapes


def stackexchange_message(site: str, question: int) -> dict[str, Any]:
    inner = {"siteBaseHostAddress": site, "id": question, "titleEncodedFancy": "How do I &quot;x&quot;?"}
    return {"action": "155-questions-active", "data": json.dumps(inner)}


def test_stackexchange_new_questions_per_site_decodes_the_json_string_and_counts():
    settings = {
        "decode": ["data"],
        "records": "[@][?action=='155-questions-active'].data",
        "series_path": "siteBaseHostAddress",
        "aggregate": {"every": 10, "how": "count"},
    }
    extractor = make_extractor(settings)
    message = stackexchange_message("stackoverflow.com", 1)
    for received_at, site in [(101, "stackoverflow.com"), (102, "superuser.com"), (105, "stackoverflow.com")]:
        assert extractor.points(stackexchange_message(site, 1), received_at=received_at) == []
    # Decoding copies: the feed's message is left as it came.
    extractor.points(message, received_at=103)
    assert isinstance(message["data"], str)
    # A heartbeat's data is not JSON: skipped as a bad payload, and it counts nothing.
    with pytest.raises(BadPayload, match="not JSON"):
        extractor.points({"action": "hb", "data": "pong"}, received_at=106)
    assert extractor.flush(110) == [Point(t=110.0, values={"stackoverflow.com": 3, "superuser.com": 1})]


def test_decode_paths_must_be_plain_paths():
    assert clean_extract({"decode": ["items[*].body", "[0]", "@"]}).as_json()["decode"] == [
        "items[*].body",
        "[0]",
        "@",
    ]
    assert refused({"decode": ["data | [0]"]}).key == "extract.decode[0]"
    payload = {"items": [{"body": '{"v": 1}'}, {"body": '{"v": 2}'}]}
    points = extract({"decode": ["items[*].body"], "records": "items[*].body", "value": "v"}, payload)
    assert [p.values["value"] for p in points] == [1.0, 2.0]


def test_ohlc_candle_lists_chart_their_close_at_the_candle_time():
    # Binance-style klines: [open time ms, open, high, low, close, volume], prices as text.
    candles = [
        [1_700_000_000_000, "37000.1", "37100.0", "36900.5", "37050.2", "12.5"],
        [1_700_000_060_000, "37050.2", "37080.0", "37010.0", "37020.0", "8.1"],
    ]
    points = extract({"values": {"close": "[4]"}, "time": "[0]"}, candles)
    assert points == [
        Point(t=1_700_000_000.0, values={"close": 37050.2}),
        Point(t=1_700_000_060.0, values={"close": 37020.0}),
    ]


def test_integers_too_large_for_a_float_are_bad_payloads_not_crashes():
    extractor = make_extractor({"time": "t", "value": "v"})
    with pytest.raises(BadPayload, match="value: the number is too large"):
        extractor.points({"t": 1, "v": 10**400}, received_at=0)
    with pytest.raises(BadPayload, match="time: the number is too large"):
        extractor.points({"t": 10**400, "v": 1}, received_at=0)


@pytest.mark.parametrize(
    "path", ["price", "data.last", "a.b.c", '"odd-name"', "@", "items[0].v", "[?x > `1`]"]
)
@pytest.mark.parametrize(
    "data",
    [
        {"price": 1.5, "data": {"last": 2}, "a": {"b": {"c": None}}, "odd-name": 3},
        {"data": [1, 2], "a": {"b": "text"}, "items": [{"v": 4}]},
        [{"x": 2}, {"x": 0}],
        "text",
        7,
        None,
    ],
)
def test_paths_find_what_jmespath_finds(path, data):
    import jmespath

    from streams.ingest.feeds.extract.paths import Path

    assert Path(jmespath.compile(path)).search(data) == jmespath.search(path, data)


# Parallel arrays (columns)


def test_yahoo_chart_parallel_arrays_give_one_point_per_index_in_order():
    points = extract(YAHOO_EXTRACT, yahoo_chart(0, 5))
    assert [point.t for point in points] == [YAHOO_OPEN + 60 * minute for minute in range(5)]
    assert points[0].values == {"open": 190.0, "high": 190.5, "low": 189.5, "close": 190.1}
    assert points[4].values == {"open": 191.0, "high": 191.5, "low": 190.5, "close": 191.1}


def test_a_minute_null_in_every_array_is_no_point_rather_than_a_bad_window():
    points = extract(YAHOO_EXTRACT, yahoo_chart(0, 5, gaps=(2,)))
    assert [point.t for point in points] == [YAHOO_OPEN + 60 * minute for minute in (0, 1, 3, 4)]


def test_columns_are_read_in_each_record_and_an_empty_result_gives_no_rows():
    settings = {"records": "results", "columns": {"t": "ts", "v": "vs"}, "time": "t", "value": "v"}
    payload = {"results": [{"ts": [1, 2], "vs": [10, 20]}, {}, {"ts": [3], "vs": [30]}]}
    points = extract(settings, payload)
    assert [(point.t, point.values["value"]) for point in points] == [(1, 10), (2, 20), (3, 30)]


def test_parallel_arrays_of_different_lengths_are_a_bad_payload_saying_so():
    payload = yahoo_chart(0, 5)
    payload["chart"]["result"][0]["indicators"]["quote"][0]["close"].pop()
    assert bad_reason(YAHOO_EXTRACT, payload) == (
        "columns: parallel arrays of different lengths (t 5, open 5, high 5, low 5, close 4); they must match"
    )


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        ({"close": [1, 2]}, "columns.open: found nothing in"),
        ({"close": [1, 2], "open": 7}, "columns.open: found 7, not a list, in"),
    ],
)
def test_a_column_that_is_missing_or_not_a_list_is_a_bad_payload_naming_it(quote, reason):
    settings = {"columns": {"t": "t", "open": "q.open", "close": "q.close"}, "time": "t", "value": "close"}
    assert bad_reason(settings, {"t": [1, 2], "q": quote}).startswith(reason)


def test_more_rows_than_the_record_limit_is_a_bad_payload():
    settings = {"columns": {"v": "v"}, "value": "v"}
    assert (
        bad_reason(settings, {"v": [1] * (MAX_RECORDS + 1)})
        == f"over {MAX_RECORDS} rows of columns in one payload"
    )


@pytest.mark.parametrize(
    ("columns", "key"),
    [
        ([], "extract.columns"),
        ({}, "extract.columns"),
        ({"": "a"}, "extract.columns"),
        ({"t": "a["}, "extract.columns.t"),
        ({"t": 5}, "extract.columns.t"),
    ],
)
def test_bad_columns_are_refused_naming_the_key(columns, key):
    assert refused({"columns": columns}).key == key


ITEM = st.none() | st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def parallel_arrays(draw: st.DrawFn) -> list[list[Any]]:
    """Three arrays of one length, as a source sends them (nulls included)."""
    length = draw(st.integers(0, 40))
    return [draw(st.lists(ITEM, min_size=length, max_size=length)) for _ in range(3)]


@hypothesis.given(parallel_arrays())
@hypothesis.settings(max_examples=60, deadline=None)
def test_parallel_arrays_of_one_length_give_that_many_records_in_order(columns):
    names = ("a", "b", "c")
    extractor = make_extractor({"columns": {n: n for n in names}, "values": {n: n for n in names}})
    points = extractor.points(dict(zip(names, columns, strict=True)), received_at=NOW)
    rows = [dict(zip(names, items, strict=True)) for items in zip(*columns, strict=True)]
    # A row null in every array is a gap in the source, not a point.
    assert [point.values for point in points] == [
        {name: None if v is None else float(v) for name, v in row.items()}
        for row in rows
        if any(v is not None for v in row.values())
    ]
    if all(v is not None for v in columns[0]):
        assert len(points) == len(columns[0])


@hypothesis.given(
    st.lists(st.lists(ITEM, max_size=20), min_size=2, max_size=4).filter(
        lambda cs: len({len(c) for c in cs}) > 1
    )
)
@hypothesis.settings(max_examples=60, deadline=None)
def test_parallel_arrays_of_different_lengths_are_a_bad_payload_never_a_crash(columns):
    names = [f"c{index}" for index in range(len(columns))]
    extractor = make_extractor({"columns": dict(zip(names, names, strict=True)), "value": names[0]})
    with pytest.raises(BadPayload, match=r"^columns: parallel arrays of different lengths \("):
        extractor.points(dict(zip(names, columns, strict=True)), received_at=NOW)


# Record ids


def test_id_names_the_field_that_identifies_a_record():
    settings = {"time": "T", "value": "p", "id": "t"}
    trades = [
        {"t": 7001, "T": 1_700_000_000_123, "p": "37000.1", "q": "0.01"},
        {"t": "7002", "T": 1_700_000_000_123, "p": "37000.1", "q": "0.5"},
    ]
    points = extract(settings, trades)
    assert [point.key for point in points] == ["7001", "7002"]
    assert extract({"value": "p"}, trades)[0].key is None  # no id unless asked


def test_an_id_reads_42_and_42_0_and_text_42_alike_and_missing_as_none():
    settings = {"value": "v", "id": "i"}
    keys = [
        point.key
        for point in extract(
            settings, [{"i": 42, "v": 1}, {"i": 42.0, "v": 1}, {"i": "42", "v": 1}, {"v": 1}]
        )
    ]
    assert keys == ["42", "42", "42", None]


@pytest.mark.parametrize("found", [True, {"a": 1}, [1]])
def test_an_id_that_is_not_text_nor_a_number_is_a_bad_payload(found):
    assert bad_reason({"value": "v", "id": "i"}, {"i": found, "v": 1}).startswith("id: ")


def test_an_id_cannot_go_with_an_aggregate():
    error = refused({"id": "trade", "aggregate": {"every": 1}})
    assert error.key == "extract.id" and "cannot be used with aggregate" in error.message


def test_cleaned_settings_with_the_new_keys_clean_to_themselves():
    for raw in (YAHOO_EXTRACT, {"id": "t", "value": "p"}, {"time": "t", "aggregate": {"grace": 1.5}}):
        cleaned = clean_extract(raw)
        assert clean_extract(cleaned.as_json()) == cleaned
    assert clean_extract({"time": "t", "aggregate": {}}).as_json()["aggregate"]["grace"] == 5
    assert clean_extract({"aggregate": {}}).as_json()["aggregate"]["grace"] == 0  # arrival times


def test_a_negative_grace_is_refused_naming_the_key():
    assert refused({"aggregate": {"grace": -1}}).key == "extract.aggregate.grace"


def test_each_expression_is_compiled_once_however_often_settings_are_cleaned(monkeypatch):
    import jmespath

    from streams.ingest.feeds.poll import PollFeed

    compiled: list[str] = []
    real = jmespath.compile
    monkeypatch.setattr(jmespath, "compile", lambda path: compiled.append(path) or real(path))
    # Text no other test uses, so no earlier compile is cached.
    unique = f"v_{uuid.uuid4().hex}"
    settings = {"url": "http://example.com/x", "extract": {"value": unique, "time": f"{unique}_t"}}
    PollFeed.series_names(settings)
    feed = PollFeed(settings)
    assert sorted(compiled) == sorted([unique, f"{unique}_t"])
    # The feed's Extractor searches with the paths its settings were cleaned to: no second cleaning.
    assert feed.extractor.settings is feed.settings["extract"]
    assert feed.extractor.settings.value.search({unique: 3}) == 3


def test_what_a_stream_saves_is_the_settings_json_with_defaults_filled_in():
    from streams.ingest.feeds import clean_feed_settings

    typed = {"records": "data", "values": {"bid": "b"}, "time": "T", "aggregate": {"how": "max"}}
    saved = clean_feed_settings("poll", {"url": "http://example.com/x", "extract": typed})
    assert saved["extract"] == {
        "records": "data",
        "decode": [],
        "columns": None,
        "id": None,
        "time": "T",
        "time_unit": "auto",
        "value": None,
        "series": None,
        "values": {"bid": "b"},
        "series_path": None,
        "series_from_topic": None,
        "scale": 1,
        "offset": 0,
        "aggregate": {"every": 10, "how": "max", "grace": 5.0},
    }
    assert json.loads(json.dumps(saved)) == saved


PLAIN_SETTINGS = [
    {"time": "ts", "value": "price"},
    {"time": "ts", "time_unit": "ms", "value": "data.price", "series": "last"},
    {"time": "ts", "time_unit": "s", "values": {"bid": "bid", "ask": "ask"}},
    {"values": {"bid": "bid", "ask": "quote.ask"}},
]
PLAIN_PAYLOADS = [
    {"ts": 1_700_000_000_123.5, "price": 101.25, "bid": 1, "ask": 2.5, "data": {"price": 7}},
    {"ts": 1_700_000_000, "price": -0.0, "bid": None, "ask": 1e308, "quote": {"ask": 3}},
    {"ts": 1_700_000_000_000_000, "price": float("nan"), "bid": float("inf"), "ask": 2.0},
    {"ts": 1_700_000_000_000_000_123, "price": 10**400, "bid": 2, "ask": None},
    {"ts": 10**400, "price": 1.5, "bid": 2},
    {"ts": float("inf"), "price": 1.5},
    {"ts": "1700000000", "price": "1.5", "bid": "2", "ask": True},
    {"ts": True, "price": 1.5},
    {"ts": "2024-01-01T00:00:00Z", "price": [1], "bid": {"a": 1}},
    {"price": None, "bid": None, "ask": None},
    {"ts": None, "price": 2.0, "data": {"price": None}, "ask": 5},
    {},
    [{"ts": 1_700_000_000, "price": 1.0}],
    42.5,
    "text",
]


def _read(extractor: Extractor, payload: Any) -> list[Point] | str:
    try:
        return extractor.points(payload, received_at=NOW)
    except BadPayload as error:
        return f"BadPayload: {error}"


@pytest.mark.parametrize("settings", PLAIN_SETTINGS)
def test_the_plain_reader_gives_what_the_general_path_gives(settings):
    fast = make_extractor(settings)
    assert fast._fast is not None  # these settings take the plain reader
    general = make_extractor(settings)
    del general.points  # the plain reader stands in for the method: back to the general path
    for payload in PLAIN_PAYLOADS:
        got, expected = _read(fast, payload), _read(general, payload)
        assert repr(got) == repr(expected), payload
        if isinstance(got, list):
            assert [type(value) for point in got for value in point.values.values()] == [
                type(value) for point in expected for value in point.values.values()
            ]


@pytest.mark.parametrize(
    "settings",
    [
        {"time": "ts", "value": "price", "id": "id"},
        {"records": "data[*]", "time": "ts", "value": "price"},
        {"time": "ts", "time_unit": "iso", "value": "price"},
        {"time": "ts", "value": "price", "scale": 2},
        {"time": "ts", "value": "price", "aggregate": {"every": 1, "how": "mean"}},
        {"time": "ts", "series_path": "symbol", "value": "price"},
        {"time": "ts", "value": "abs(price)"},
        {"time": "abs(ts)", "value": "price"},
    ],
)
def test_settings_beyond_the_plain_case_keep_the_general_path(settings):
    assert make_extractor(settings)._fast is None


def _read_text(extractor: Extractor, text: str | bytes, *, together: bool) -> str:
    """What a feed gets from a message: points, or the error's type and text."""
    from streams.core.json_parse import parse_json

    try:
        if together:
            got: Any = extractor.points_from_json(text, received_at=NOW)
        else:
            got = extractor.points(parse_json(text), received_at=NOW)
    except (ValueError, RecursionError) as error:
        return f"{type(error).__name__}: {error}"
    return repr(got) + repr([type(value) for point in got for value in point.values.values()])


LONG_NUMBER_TEXTS = [
    '{"ts": 1700000000000, "price": 123456789012345678901234567890}',
    '{"ts": 1700000000000, "price": -9223372036854775809}',
    '{"ts": 1700000000000, "price": 18446744073709551616, "bid": 1, "ask": 2}',
    '{"ts": 1700000000000000000000, "price": 1.5}',
    # Nanoseconds past 64 bits: an int over 10**9 is rounded once, orjson's float twice (.1776).
    '{"ts": 934344825382177548046, "price": 1.5}',
    '{"ts": 1700000000000, "price": 9.3e18, "bid": -1e19, "ask": 1e300}',
    '{"ts": 1700000000000, "price": 1.5, "id": 123456789012345678901234567890}',
    '{"ts": 1700000000000, "price": NaN}',
    '{"ts": 1700000000000, "price": 1e400}',
    '{"ts": 1700000000000, "price": 1.5',
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "",
]


@pytest.mark.parametrize(
    "settings", [*PLAIN_SETTINGS, {"time": "ts", "value": "price", "id": "id"}, {"value": "abs(price)"}]
)
def test_points_from_json_are_those_of_parse_json_then_points(settings):
    extractor = make_extractor(settings)
    texts = [json.dumps(payload) for payload in PLAIN_PAYLOADS] + LONG_NUMBER_TEXTS
    for text in texts + [text.encode() for text in texts]:
        together = _read_text(extractor, text, together=True)
        assert together == _read_text(extractor, text, together=False), text


NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2.0**63, -(2.0**63)]),
)
FIELD_VALUES = st.one_of(NUMBERS, st.none(), st.booleans(), st.text(max_size=5), st.just([1]))


@hypothesis.given(
    settings=st.sampled_from(PLAIN_SETTINGS),
    payload=st.fixed_dictionaries(
        {},
        optional={
            "ts": st.one_of(NUMBERS, st.none(), st.just("2024-01-01T00:00:00Z")),
            "price": FIELD_VALUES,
            "bid": FIELD_VALUES,
            "ask": FIELD_VALUES,
            "data": st.fixed_dictionaries({}, optional={"price": FIELD_VALUES}),
            "quote": st.fixed_dictionaries({}, optional={"ask": FIELD_VALUES}),
            "id": NUMBERS,
        },
    ),
)
@hypothesis.settings(max_examples=300, deadline=None)
def test_points_from_json_match_parse_json_then_points_on_any_message(settings, payload):
    # json.dumps writes integers past 64 bits as they are: the case orjson reads as floats.
    text = json.dumps(payload)
    extractor = make_extractor(settings)
    assert _read_text(extractor, text, together=True) == _read_text(extractor, text, together=False)
