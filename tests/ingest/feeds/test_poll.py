"""The poll feed against a real local HTTP server started by the test."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st

from streams.core.points import Point
from streams.ingest.feeds import build_feed, poll
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.poll import PollError, PollFeed, retry_after_seconds
from streams.ingest.feeds.timeline import Timeline
from tests.ingest.feeds.shapes import YAHOO_EXTRACT, YAHOO_OPEN, yahoo_chart
from tests.json_api import API, Chunks, serve_json_api
from tests.processes import HeldPort, refused_port
from tests.waits import eventually


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


# Fault cases. Each test bounds its waits: a feed that hangs fails the test instead.


def with_secrets(url: str) -> str:
    """`url` with credentials and an API key in the query, which no message may show."""
    parts = urlsplit(url)
    return f"http://user:hunter2-pass@{parts.netloc}{parts.path}?api_key=sekrit-query-456"


async def test_a_server_that_is_down_raises_naming_the_url_without_secrets():
    with refused_port() as port:
        feed = PollFeed({"url": with_secrets(f"http://127.0.0.1:{port}/candles"), "interval": 0.1})
        async with asyncio.timeout(5), aclosing(feed.batches()) as batches:
            with pytest.raises(PollError) as refused:
                await anext(batches)
    message = str(refused.value)
    assert f"cannot connect to http://127.0.0.1:{port}/candles: connection refused" in message
    assert "check that the server is up" in message
    assert "sekrit" not in message and "hunter2" not in message and "?" not in message


async def test_a_server_that_dies_and_comes_back_carries_on_without_repeating_points():
    # The port stays ours while the server is down: another process could take a freed one.
    with HeldPort() as port:
        with serve_json_api(held=port) as (state, url):
            state.body = candles(0, 60)
            feed = PollFeed({"url": url, "interval": 0.1, "extract": CANDLE_EXTRACT})
            batches = feed.batches()
            async with asyncio.timeout(5):
                first = await anext(batches)
        # The server is gone: the next poll fails and ends this run of batches(), as the worker
        # expects.
        async with asyncio.timeout(5):
            with pytest.raises(PollError, match="connection refused"):
                await anext(batches)
        # Back on the same port two candles later; the worker calls batches() on the same feed.
        state.body = candles(2, 60)
        with serve_json_api(held=port, state=state):
            async with asyncio.timeout(5), aclosing(feed.batches()) as batches:
                second = await anext(batches)
    assert len(first) == 60
    assert [point.values["close"] for point in second] == [160.0, 161.0]


async def test_a_server_dying_mid_answer_raises_and_emits_nothing_from_the_half_answer(api):
    state, url = api
    feed = PollFeed({"url": url, "extract": CANDLE_EXTRACT})
    whole = json.dumps(candles(0, 3)).encode()
    state.body = Chunks([whole[:40]], length=len(whole))
    async with httpx.AsyncClient() as client:
        with pytest.raises(PollError, match=r"lost the connection to http://127\.0\.0\.1:\d+/candles"):
            await feed.poll_once(client)
        state.body = candles(0, 3)
        assert len(await feed.poll_once(client)) == 3
    assert feed.bad_payloads == 0


GARBAGE = {
    "not JSON": (b"Service temporarily unavailable", {"Content-Type": "text/plain"}),
    "an HTML error page with 200": (
        b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
        {"Content-Type": "text/html; charset=utf-8"},
    ),
    "an empty body": (b"", {}),
    "JSON of the wrong shape": (b'{"error": "maintenance"}', {}),
    "records of the wrong shape": (b'[["a", "b"]]', {}),
    "a NaN value": (b"[[1763000000000, 1, 2, 0.5, NaN, 9]]", {}),
    "an infinite value": (b"[[1763000000000, 1, 2, 0.5, -Infinity, 9]]", {}),
    "a NaN time": (b"[[NaN, 1, 2, 0.5, 100, 9]]", {}),
    "an infinite time": (b"[[Infinity, 1, 2, 0.5, 100, 9]]", {}),
    "a 400-digit integer value": (b"[[1763000000000, 1, 2, 0.5, " + b"9" * 400 + b", 9]]", {}),
    "a 400-digit integer time": (b"[[" + b"9" * 400 + b", 1, 2, 0.5, 100, 9]]", {}),
    "a 5,000-digit integer": (b"[[1763000000000, 1, 2, 0.5, " + b"9" * 5000 + b", 9]]", {}),
    "a 5,000-digit time": (b"[[" + b"1" * 5000 + b", 1, 2, 0.5, 100, 9]]", {}),
    "a 5,000-digit decimal": (b"[[1763000000000, 1, 2, 0.5, " + b"9" * 5000 + b".5, 9]]", {}),
    "JSON nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, {}),
    "not UTF-8": (b'[[1763000000000, 1, 2, 0.5, "\xff", 9]]', {}),
}


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_garbage_is_counted_and_skipped_and_polling_goes_on(api, case):
    state, url = api
    state.body, state.headers = GARBAGE[case]
    feed = PollFeed({"url": url, "extract": CANDLE_EXTRACT})
    async with httpx.AsyncClient() as client:
        assert await feed.poll_once(client) == []
        assert feed.bad_payloads == 1
        state.body, state.headers = candles(0, 2), {}
        assert [point.values["close"] for point in await feed.poll_once(client)] == [100.0, 101.0]
    assert feed.bad_payloads == 1


async def test_a_non_finite_value_is_a_gap_never_a_number_the_browser_cannot_parse(api):
    state, url = api
    # Python's json reads NaN and Infinity; a browser's JSON.parse refuses them.
    state.body = b'[{"t": 1763000000, "a": NaN, "b": 1.5}, {"t": 1763000001, "a": Infinity, "b": 2}]'
    feed = PollFeed({"url": url, "extract": {"time": "t", "values": {"a": "a", "b": "b"}}})
    async with httpx.AsyncClient() as client:
        points = await feed.poll_once(client)
    assert [point.values for point in points] == [{"a": None, "b": 1.5}, {"a": None, "b": 2.0}]
    json.dumps([dict(point.values) for point in points], allow_nan=False)  # strict JSON
    assert all(math.isfinite(point.t) for point in points)


async def test_a_point_dated_far_ahead_is_dropped_so_it_cannot_hold_back_later_points(api):
    state, url = api
    now = time.time()
    # An hour ahead (a local time sent as UTC), past LIVECHARTS_MAX_FUTURE_SECONDS (300 s).
    state.body = [{"t": now + 3600, "v": 1}, {"t": now, "v": 2}]
    feed = PollFeed({"url": url, "extract": {"time": "t", "value": "v"}})
    async with httpx.AsyncClient() as client:
        assert [point.values for point in await feed.poll_once(client)] == [{"value": 2.0}]
        state.body = [{"t": now + 1, "v": 3}]
        assert [point.values for point in await feed.poll_once(client)] == [{"value": 3.0}]
    assert feed.bad_payloads == 1


def huge_json_array(size: int) -> Iterator[bytes]:
    """About `size` bytes of a JSON array of ones, made as it is sent, 64 KiB at a time."""
    piece = b"1," * 32_768
    yield b"["
    for _ in range(size // len(piece)):
        yield piece
    yield b"1]"


@pytest.mark.parametrize("declared", [True, False], ids=["with Content-Length", "without length"])
async def test_an_oversize_answer_is_a_bad_payload_and_is_not_read_whole(api, monkeypatch, declared):
    state, url = api
    monkeypatch.setattr(poll, "MAX_BODY_BYTES", 100_000)
    size = 64 * 1024 * 1024
    state.body = Chunks(huge_json_array(size), length=size + 3 if declared else None)
    feed = PollFeed({"url": url, "timeout": 10, "extract": {"value": "v"}})
    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        assert await feed.poll_once(client) == []
        assert feed.bad_payloads == 1
        # The server could only push what the socket buffers took before we hung up.
        assert await asyncio.to_thread(state.answered.wait, 10)
        assert state.sent < size / 8
        assert time.monotonic() - started < 5
        state.answered.clear()
        state.body = {"v": 4}
        assert [point.values for point in await feed.poll_once(client)] == [{"value": 4.0}]
    assert feed.bad_payloads == 1


async def test_a_server_slower_than_the_timeout_raises_naming_the_timeout(api):
    state, url = api
    # Far slower than the setting and than its default (10 s), so the bound below tells the
    # setting's 0.3 s from either with seconds to spare on a busy machine (it was 2 s against a
    # 3 s server: 1.7 s of slack).
    state.delay = 30
    feed = PollFeed({"url": url, "timeout": 0.3, "interval": 0.1})
    started = time.monotonic()
    async with asyncio.timeout(20), aclosing(feed.batches()) as batches:
        with pytest.raises(PollError) as slow:
            await anext(batches)
    assert time.monotonic() - started < 8
    assert str(slow.value).startswith(f"no answer from {url} within 0.3 s (the timeout setting)")
    assert "raise timeout" in str(slow.value)


async def test_a_server_trickling_its_answer_is_cut_off_at_the_timeout(api):
    state, url = api
    # Each byte comes well within the timeout, so only a bound on the whole request stops it.
    # The answer would take 30 s whole, longer than the default timeout (10 s) too: the bound
    # below tells the setting's 0.5 s from either with seconds to spare on a busy machine.
    state.body = Chunks([b"[" + b"1," * 20, *[b"1,"] * 300, b"1]"], pause=0.1)
    feed = PollFeed({"url": url, "timeout": 0.5})
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(PollError, match=r"within 0\.5 s"):
            await feed.poll_once(client)
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("status", [401, 403])
async def test_wrong_credentials_raise_naming_the_status_without_echoing_secrets(api, status):
    state, url = api
    state.status = status
    # Servers do quote a refused key back.
    state.body = {"code": -2015, "msg": "Invalid API-key sekrit-header-123 for this endpoint"}
    feed = PollFeed({"url": with_secrets(url), "headers": {"X-Api-Key": "sekrit-header-123"}})
    async with asyncio.timeout(5), aclosing(feed.batches()) as batches:
        with pytest.raises(PollError) as refused:
            await anext(batches)
    message = str(refused.value)
    assert message.startswith(f"{url} answered HTTP {status} ")
    assert "check the API key or token" in message
    assert "Invalid API-key [redacted]" in message
    assert "sekrit" not in message and "hunter2" not in message
    assert refused.value.status == status


async def test_too_many_requests_sets_the_retry_floor_from_retry_after(api):
    state, url = api
    state.status, state.headers, state.body = 429, {"Retry-After": "7"}, {"msg": "slow down"}
    feed = PollFeed({"url": url})
    async with httpx.AsyncClient() as client:
        with pytest.raises(PollError, match="HTTP 429 Too Many Requests: the API's rate limit was hit"):
            await feed.poll_once(client)
    assert feed.retry_after == 7


def test_retry_after_reads_seconds_and_dates_and_ignores_nonsense():
    now = time.time()
    in_30_s = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds("120", now=now) == 120
    assert 28 <= retry_after_seconds(in_30_s, now=now) <= 31
    assert retry_after_seconds("999999", now=now) == poll.MAX_RETRY_AFTER
    for nonsense in (None, "", "soon", "-5", "0", "nan", "Mon, 01 Jan 2001 00:00:00 GMT"):
        assert retry_after_seconds(nonsense, now=now) is None


@pytest.mark.parametrize(
    ("status", "headers", "says"),
    [
        (404, {}, "answered HTTP 404 Not Found: check the url and method"),
        (400, {}, "answered HTTP 400 Bad Request: check the url, method, body and headers"),
        (500, {}, "answered HTTP 500 Internal Server Error: the server has a problem"),
        (301, {"Location": "/v2/candles?key=sekrit"}, "moved to http://127.0.0.1:"),
    ],
)
async def test_other_statuses_raise_saying_what_to_check(api, status, headers, says):
    state, url = api
    state.status, state.headers = status, headers
    feed = PollFeed({"url": url})
    async with httpx.AsyncClient() as client:
        with pytest.raises(PollError) as refused:
            await feed.poll_once(client)
    assert says in str(refused.value)
    assert "sekrit" not in str(refused.value)


async def test_the_first_answer_yields_an_empty_batch_and_unchanged_answers_yield_nothing(api):
    state, url = api
    state.body, state.etag = [], '"empty"'
    feed = PollFeed({"url": url, "interval": 0.1, "extract": {"time": "t", "value": "v"}})
    async with aclosing(feed.batches()) as batches:
        async with asyncio.timeout(5):
            assert await anext(batches) == []  # up: the worker shows the stream live
        # As the worker does: wait for the next batch without cancelling the generator.
        pending = asyncio.ensure_future(anext(batches))
        # Three more answers asked for: a batch from one of them would have stopped the polling
        # (the generator waits at its yield), so none came.
        await eventually(lambda: len(state.requests) >= 4, what="three more polls")
        assert not pending.done()  # several 304s, no batch
        assert [request["headers"].get("If-None-Match") for request in state.requests[1:4]] == ['"empty"'] * 3
        state.body, state.etag = [{"t": 1763000000, "v": 5}], '"one"'
        async with asyncio.timeout(5):
            assert [point.values for point in await pending] == [{"value": 5.0}]


# Payload shapes: parallel arrays, record ids


async def test_yahoo_chart_windows_draw_every_point_once_a_whole_window_first_then_only_new_ones(api):
    state, url = api
    feed = build_feed("poll", {"url": url, "extract": YAHOO_EXTRACT})
    timeline = Timeline(max_ahead=300)

    def drawn(batch: list[Point]) -> list[Point]:  # what the worker hands to broadcast
        return timeline.admit(batch, now=time.time(), skip=feed.skip)

    async with httpx.AsyncClient() as client:
        # 30 one-minute candles, minute 7 without trades (null in every array).
        state.body = yahoo_chart(0, 30, gaps=(7,))
        first = drawn(await feed.poll_once(client))
        # Ten minutes later the window moved by ten; the minute that was still open (29) has a
        # new close, and is not drawn again.
        state.body = yahoo_chart(10, 30)
        quote = state.body["chart"]["result"][0]["indicators"]["quote"][0]
        quote["close"][29 - 10] = 500.0
        second = drawn(await feed.poll_once(client))
        third = drawn(await feed.poll_once(client))  # the same window again
    minute = [(point.t - YAHOO_OPEN) / 60 for point in first + second]
    assert minute == [m for m in range(40) if m != 7]
    assert len(first) == 29 and len(second) == 10 and third == []
    assert first[-1].values["close"] == round(190.1 + 29 * 0.25, 2)
    assert second[0].values == {"open": 197.5, "high": 198.0, "low": 197.0, "close": 197.6}
    assert feed.bad_payloads == 0


async def test_yahoo_chart_arrays_of_different_lengths_are_a_bad_payload_and_polling_goes_on(api):
    state, url = api
    feed = build_feed("poll", {"url": url, "extract": YAHOO_EXTRACT})
    async with httpx.AsyncClient() as client:
        state.body = yahoo_chart(0, 5)
        state.body["chart"]["result"][0]["timestamp"].append(YAHOO_OPEN + 300)
        assert await feed.poll_once(client) == []
        assert feed.bad_payloads == 1
        state.body = yahoo_chart(0, 5)
        assert len(await feed.poll_once(client)) == 5


def trade(trade_id: int, *, ms: int, price: str, quantity: str) -> dict[str, object]:
    """A trade as exchanges list them (Binance's /api/v3/trades: id, price, qty, time)."""
    return {"id": trade_id, "price": price, "qty": quantity, "time": ms, "isBuyerMaker": False}


async def test_trades_alike_but_for_their_id_are_all_drawn_once_each(api):
    state, url = api
    settings = {"url": url, "extract": {"time": "time", "value": "price", "series": "price", "id": "id"}}
    feed = build_feed("poll", settings)
    timeline = Timeline(max_ahead=300)
    ms = EPOCH_MS + 123
    async with httpx.AsyncClient() as client:
        # Two trades in one millisecond at one price: different ids and quantities.
        state.body = [
            trade(1, ms=ms, price="37000.10", quantity="0.01"),
            trade(2, ms=ms, price="37000.10", quantity="0.5"),
        ]
        first = timeline.admit(await feed.poll_once(client), now=time.time(), skip=feed.skip)
        # The next answer lists them again, with a third trade in that millisecond and a later one.
        state.body += [
            trade(3, ms=ms, price="37000.10", quantity="2"),
            trade(4, ms=ms + 1, price="37000.20", quantity="1"),
        ]
        second = timeline.admit(await feed.poll_once(client), now=time.time(), skip=feed.skip)
        third = timeline.admit(await feed.poll_once(client), now=time.time(), skip=feed.skip)
    assert [point.key for point in first] == ["1", "2"]
    assert [point.key for point in second] == ["3", "4"]
    assert third == [] and feed.bad_payloads == 0


async def test_after_a_restart_records_at_the_stored_newest_time_are_not_drawn_again(api):
    # History keeps no ids, so at the newest stored time nothing is known to be new.
    state, url = api
    feed = build_feed("poll", {"url": url, "extract": {"time": "time", "value": "price", "id": "id"}})
    feed.resume_after((EPOCH_MS + 5) / 1000)
    state.body = [
        trade(1, ms=EPOCH_MS + 5, price="1", quantity="1"),
        trade(2, ms=EPOCH_MS + 6, price="1", quantity="1"),
    ]
    async with httpx.AsyncClient() as client:
        assert [point.key for point in await feed.poll_once(client)] == ["2"]


@st.composite
def trade_windows(draw: st.DrawFn) -> tuple[list[dict[str, object]], list[tuple[int, int]]]:
    """Trades oldest first (many share a millisecond and a price), and the overlapping windows
    of them an API answers with, each starting at or before the end of the one before."""
    steps = draw(st.lists(st.integers(0, 2), min_size=1, max_size=30))
    prices = draw(st.lists(st.sampled_from(["1.00", "1.01"]), min_size=len(steps), max_size=len(steps)))
    ms, trades = EPOCH_MS, []
    for index, (step, price) in enumerate(zip(steps, prices, strict=True)):
        ms += step
        trades.append(trade(index, ms=ms, price=price, quantity="1"))
    windows, end = [], 0
    while end < len(trades):
        start = draw(st.integers(0, end))
        end = draw(st.integers(end + 1, len(trades)))
        windows.append((start, end))
    return trades, windows


@hypothesis.given(trade_windows())
@hypothesis.settings(max_examples=100, deadline=None)
def test_overlapping_windows_of_trades_with_ids_draw_every_trade_once_in_order(case):
    trades, windows = case
    feed = PollFeed(
        {"url": "http://example.com/trades", "extract": {"time": "time", "value": "price", "id": "id"}}
    )
    timeline = Timeline(max_ahead=300)
    drawn: list[str | None] = []
    for start, end in windows:
        # What poll_once does with an answer, minus the HTTP (tested above with a real server).
        points = feed._fresh(
            feed.extractor.points(trades[start:end], received_at=time.time()), now=time.time()
        )
        drawn += [point.key for point in timeline.admit(points, now=time.time(), skip=feed.skip)]
    assert drawn == [str(index) for index in range(len(trades))]
    assert feed.bad_payloads == 0
