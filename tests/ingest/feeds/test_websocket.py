"""The websocket feed against real `websockets` servers started by the test on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from streams.core.points import Batch
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.websocket import WebsocketError, WebsocketFeed
from tests.processes import HeldPort, refused_port
from tests.waits import DEADLINE

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def serving(
    handler: Handler, *, held: HeldPort | None = None, **options: Any
) -> AsyncIterator[tuple[Server, str]]:
    """A real websockets server on 127.0.0.1, on an ephemeral port or on a `held` one (that
    stays bound, refusing connections, once the server is gone, for a server to come back)."""
    where: dict[str, Any] = {"host": "127.0.0.1", "port": 0} if held is None else {"sock": held.listening()}
    try:
        async with serve(handler, **where, **options) as server:
            bound = server.sockets[0].getsockname()[1]
            yield server, f"ws://127.0.0.1:{bound}/feed"
    finally:
        if held is not None:
            held.refuse()


async def first_batches(feed: WebsocketFeed, count: int, *, within: float = DEADLINE) -> list[Batch]:
    """The first `count` batches with points from one `batches()` call; the connection is
    closed after. The empty batch that says "connected" is left out."""
    batches: list[Batch] = []
    async with asyncio.timeout(within):
        async for batch in feed.batches():
            if not batch:
                continue
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


async def drain(stream: AsyncIterator[Batch]) -> None:
    """Read batches until the feed raises (points already received come first)."""
    async for _ in stream:
        pass


def values(batches: list[Batch]) -> list[dict[str, float | None]]:
    return [dict(point.values) for batch in batches for point in batch]


def client_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the feed side logged (the test servers log what they receive, secrets included)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))


async def test_pushed_values_stream_as_points():
    async def handler(connection: ServerConnection) -> None:
        for price in (1.5, 2.5, 3.5):
            await connection.send(json.dumps({"price": price}))
        await connection.wait_closed()

    async with serving(handler) as (_, url):
        feed = WebsocketFeed({"url": url, "extract": {"value": "price", "series": "btc"}})
        batches = await first_batches(feed, 3)
    assert values(batches) == [{"btc": 1.5}, {"btc": 2.5}, {"btc": 3.5}]
    assert feed.bad_payloads == 0


async def test_headers_reach_the_server_but_never_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str | None] = []

    async def handler(connection: ServerConnection) -> None:
        seen.append(connection.request.headers.get("X-Api-Key"))
        await connection.send('{"v": 1}')
        await connection.wait_closed()

    async with serving(handler) as (_, url):
        feed = WebsocketFeed(
            {
                "url": url,
                "headers": {"X-Api-Key": "k-secret-123"},
                "send": ['{"auth": "t-secret-456"}'],
                "extract": {"value": "v"},
            }
        )
        await first_batches(feed, 1)
    assert seen == ["k-secret-123"]
    # websockets logs handshake headers and frames at DEBUG; the feed keeps them out.
    assert "secret" not in client_log(caplog)


class StackExchangeLike:
    """Like wss://qa.sockets.stackexchange.com/: silent until `155-questions-active` arrives, then
    pushes {"action", "data": "<JSON text>"} and heartbeats the client must echo."""

    def __init__(self, sites: list[str]) -> None:
        self.sites = sites
        self.received: list[str] = []
        self.heartbeat_echoed = asyncio.Event()

    async def handler(self, connection: ServerConnection) -> None:
        async for message in connection:
            self.received.append(str(message))
            if message == "155-questions-active":
                break
        await connection.send(json.dumps({"action": "hb", "data": "hb"}))
        for number, site in enumerate(self.sites):
            question = {"siteBaseHostAddress": site, "id": number, "titleEncodedFancy": "How do I ...?"}
            await connection.send(
                json.dumps({"action": "155-questions-active", "data": json.dumps(question)})
            )
        async for message in connection:
            self.received.append(str(message))
            if message == "hb":
                self.heartbeat_echoed.set()


STACKEXCHANGE = {
    "send": ["155-questions-active"],
    "reply": {"hb": "hb"},
    "extract": {
        # `data` is JSON inside JSON: decode it, then read the site from it.
        "decode": ["data"],
        "records": "data",
        "series_path": "siteBaseHostAddress",
        "aggregate": {"every": 0.5, "how": "count"},
    },
}


async def test_a_subscription_then_questions_counted_per_site():
    server = StackExchangeLike(["stackoverflow.com"] * 3 + ["superuser.com"] * 2)
    async with serving(server.handler) as (_, url):
        feed = WebsocketFeed({"url": url, **STACKEXCHANGE})
        totals: dict[str, float] = {}
        async with asyncio.timeout(5):
            async for batch in feed.batches():
                for point in batch:
                    assert point.t % 0.5 == 0  # one point per closed interval, at its end
                    for site, count in point.values.items():
                        totals[site] = totals.get(site, 0) + (count or 0)
                # The five may straddle an interval boundary: add up until all are counted.
                if sum(totals.values()) == 5:
                    break
            await server.heartbeat_echoed.wait()
    assert totals == {"stackoverflow.com": 3, "superuser.com": 2}
    assert server.received[0] == "155-questions-active"
    assert feed.bad_payloads == 0  # the heartbeat was answered, not counted as a bad payload


async def test_a_connected_feed_says_so_with_an_empty_batch_before_any_data():
    received: list[str] = []
    subscribed = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        received.append(str(await connection.recv()))
        subscribed.set()
        await connection.wait_closed()  # a quiet source: nothing for now

    async with serving(handler) as (_, url):
        feed = WebsocketFeed({"url": url, "send": [{"op": "subscribe", "args": ["trades"]}]})
        stream = feed.batches()
        async with asyncio.timeout(5):
            assert await anext(stream) == []
            await subscribed.wait()
            await stream.aclose()
    assert [json.loads(message) for message in received] == [{"op": "subscribe", "args": ["trades"]}]


async def test_control_messages_the_records_filter_leaves_out_are_not_bad_payloads():
    async def handler(connection: ServerConnection) -> None:
        request = json.loads(await connection.recv())
        await connection.send(json.dumps({"result": None, "id": request["id"]}))  # the ack
        for price in ("101.5", "102.0"):
            await connection.send(json.dumps({"e": "trade", "p": price, "T": 1_763_000_000_123}))
        await connection.wait_closed()

    async with serving(handler) as (_, url):
        feed = WebsocketFeed(
            {
                "url": url,
                "send": [{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}],
                # `[@]` makes the message a list of one, so the filter can leave it out.
                "extract": {"records": "[@][?e=='trade']", "value": "p", "series": "BTC", "time": "T"},
            }
        )
        batches = await first_batches(feed, 2)
    assert values(batches) == [{"BTC": 101.5}, {"BTC": 102.0}]
    assert batches[0][0].t == 1_763_000_000.123
    assert feed.bad_payloads == 0


async def test_a_server_that_is_down_raises_so_the_worker_backs_off():
    with refused_port() as port:
        feed = WebsocketFeed({"url": f"ws://127.0.0.1:{port}/feed"})
        with pytest.raises(WebsocketError, match="cannot connect"):
            await first_batches(feed, 1)


async def test_the_same_feed_resumes_after_the_server_dies_and_comes_back():
    subscriptions: list[str] = []
    counter = iter(range(1, 100))

    async def handler(connection: ServerConnection) -> None:
        subscriptions.append(str(await connection.recv()))
        while True:
            await connection.send(json.dumps({"n": next(counter)}))
            await asyncio.sleep(0.02)  # pacing the source, not waiting for anything

    feed: WebsocketFeed
    # The port stays ours while the server is down: another process could take a freed one.
    with HeldPort() as port:
        async with serving(handler, held=port) as (server, url):
            feed = WebsocketFeed({"url": url, "send": [{"subscribe": "n"}], "extract": {"value": "n"}})
            stream = feed.batches()
            async with asyncio.timeout(5):
                assert await anext(stream) == []  # connected
                first = await anext(stream)
                server.close()  # sends 1001 "going away" to the open connection
                with pytest.raises(WebsocketError, match="closed the connection"):
                    await drain(stream)

        async with serving(handler, held=port):
            again = await first_batches(feed, 1)
    assert values([first]) == [{"value": 1.0}]
    assert values(again)[0]["value"] > 1
    assert subscriptions == ['{"subscribe": "n"}'] * 2  # subscribed again on the new connection


async def test_garbage_messages_are_counted_and_skipped():
    async def handler(connection: ServerConnection) -> None:
        await connection.send("<html>not json</html>")
        await connection.send(b"\xff\xfe\x00 not text")
        await connection.send(b'{"v": 2}')  # binary, but UTF-8 JSON: used
        await connection.send("[" * 200_000 + "]" * 200_000)  # deeper than Python's json can go
        await connection.send('{"v": "n/a"}')
        await connection.send('{"v": 3}')
        await connection.wait_closed()

    async with serving(handler) as (_, url):
        feed = WebsocketFeed({"url": url, "extract": {"value": "v"}})
        batches = await first_batches(feed, 2)
    assert values(batches) == [{"value": 2.0}, {"value": 3.0}]
    assert feed.bad_payloads == 4


async def test_an_oversize_message_counts_as_bad_and_the_feed_reconnects():
    connections = 0

    async def handler(connection: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await connection.send(json.dumps({"v": 1, "padding": "x" * 5000}))
        await connection.send('{"v": 2}')
        await connection.wait_closed()

    async with serving(handler) as (_, url):
        feed = WebsocketFeed({"url": url, "max_size": 1024, "extract": {"value": "v"}})
        with pytest.raises(WebsocketError, match="over max_size"):
            await first_batches(feed, 1)
        assert feed.bad_payloads == 1
        batches = await first_batches(feed, 1)  # what the worker does: batches() again
    assert values(batches) == [{"value": 2.0}]


async def test_a_server_that_never_answers_the_handshake_times_out():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept the TCP connection, never answer the HTTP upgrade

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with tcp:
        port = tcp.sockets[0].getsockname()[1]
        feed = WebsocketFeed({"url": f"ws://127.0.0.1:{port}/feed", "open_timeout": 0.3})
        # The bound tells the setting's 0.3 s from the default's 10 s, with seconds to spare.
        with pytest.raises(WebsocketError, match=r"open_timeout 0\.3 s"):
            await first_batches(feed, 1, within=8)


async def test_a_quiet_connection_is_waited_for_while_aggregates_flush():
    first_out = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        await connection.send('{"v": 1}')
        # Silent (neither an error nor an end) until the first interval has come out.
        await first_out.wait()
        await connection.send('{"v": 5}')
        await connection.wait_closed()

    async with serving(handler) as (_, url):
        feed = WebsocketFeed(
            {"url": url, "extract": {"value": "v", "aggregate": {"every": 0.3, "how": "sum"}}}
        )
        batches: list[Batch] = []
        async with asyncio.timeout(DEADLINE):
            async for batch in feed.batches():
                if batch:
                    batches.append(batch)
                    first_out.set()
                    if len(batches) == 2:
                        break
    # The first interval is flushed on time, while the server is still silent.
    assert values(batches) == [{"value": 1.0}, {"value": 5.0}]
    assert batches[1][0].t - batches[0][0].t >= 0.3 * 0.999  # a later interval


async def test_a_peer_that_stops_answering_pings_is_detected():
    checked = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        await connection.send('{"v": 1}')
        # Stop reading: pings are never seen, so never answered (a dead peer, as seen from us).
        connection.transport.pause_reading()
        await checked.wait()
        connection.transport.resume_reading()

    async with serving(handler) as (_, url):
        feed = WebsocketFeed(
            {"url": url, "ping_interval": 0.2, "ping_timeout": 0.3, "extract": {"value": "v"}}
        )
        stream = feed.batches()
        # 2.5 s when all goes well (the ping timeout, then our 2 s side of the closing handshake
        # with a peer that reads nothing): the bound only tells the setting's 0.3 s from the
        # default's 20 s, so it leaves a busy machine seconds to spare (5 s left it 2.5).
        async with asyncio.timeout(15):
            assert await anext(stream) == []  # connected
            assert values([await anext(stream)]) == [{"value": 1.0}]
            with pytest.raises(WebsocketError, match=r"did not answer a ping within ping_timeout 0\.3 s"):
                await anext(stream)
        checked.set()


@pytest.mark.parametrize("status", [HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN])
async def test_a_rejected_handshake_names_the_status_not_the_key(status, caplog):
    caplog.set_level(logging.DEBUG)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(status, "invalid API key\n")

    async with serving(lambda connection: connection.wait_closed(), process_request=process_request) as (
        _,
        url,
    ):
        feed = WebsocketFeed(
            {"url": url + "?token=q-secret-789", "headers": {"Authorization": "Bearer h-secret"}}
        )
        with pytest.raises(WebsocketError) as refused:
            await first_batches(feed, 1)
    message = str(refused.value)
    assert f"HTTP {status.value}" in message
    assert "check the headers" in message
    assert "secret" not in message
    assert "secret" not in client_log(caplog)


async def test_a_retry_after_on_a_refused_handshake_sets_the_reconnect_floor():
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
        response.headers["Retry-After"] = "30"
        return response

    async with serving(lambda connection: connection.wait_closed(), process_request=process_request) as (
        _,
        url,
    ):
        feed = WebsocketFeed({"url": url})
        with pytest.raises(WebsocketError, match="HTTP 429"):
            await first_batches(feed, 1)
    assert feed.retry_after == 30


def test_settings_are_filled_with_defaults_and_clean_to_themselves():
    cleaned = WebsocketFeed.clean_settings(
        {"url": "wss://qa.sockets.stackexchange.com/", "send": ["155-questions-active", {"op": "sub"}]}
    )
    assert cleaned["ping_interval"] == 20
    assert cleaned["ping_timeout"] == 20
    assert cleaned["open_timeout"] == 10
    assert cleaned["max_size"] == 2**20
    assert cleaned["stall_after"] == 60
    assert cleaned["reply"] == {}
    assert WebsocketFeed.clean_settings(WebsocketFeed.settings_json(cleaned)) == cleaned


def test_series_are_known_up_front_from_the_extract():
    settings = {"url": "ws://x/", "extract": {"values": {"bid": "b", "ask": "a"}}}
    assert WebsocketFeed.series_names(settings) == ["bid", "ask"]


def test_describe_hides_credentials_and_query():
    feed = WebsocketFeed({"url": "wss://user:pw@example.com:8443/stream?apikey=abc"})
    assert feed.describe() == "wss://example.com:8443/stream"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({}, "url"),
        ({"url": "https://example.com/socket"}, "url"),
        ({"url": "ws://x", "send": "155-questions-active"}, "send"),
        ({"url": "ws://x", "send": ["ok", 5]}, "send[1]"),
        ({"url": "ws://x", "send": [{"price": float("nan")}]}, "send[0]"),
        ({"url": "ws://x", "reply": {"hb": 1}}, "reply"),
        ({"url": "ws://x", "headers": {"X-Api-Key": 123}}, "headers"),
        ({"url": "ws://x", "headers": ["X-Api-Key: k"]}, "headers"),
        ({"url": "ws://x", "max_size": 1500.5}, "max_size"),
        ({"url": "ws://x", "max_size": 10}, "max_size"),
        ({"url": "ws://x", "ping_timeout": 0}, "ping_timeout"),
        ({"url": "ws://x", "open_timeout": "10"}, "open_timeout"),
        ({"url": "ws://x", "extract": {"value": "a[?"}}, "extract.value"),
        ({"url": "ws://x", "extract": {"decode": ["length(data)"]}}, "extract.decode[0]"),
        ({"url": "ws://x", "topic": "trades"}, "topic"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings, key):
    with pytest.raises(FeedSettingsError) as refused:
        WebsocketFeed.clean_settings(settings)
    assert refused.value.key == key


def test_a_refused_send_message_does_not_echo_its_content():
    with pytest.raises(FeedSettingsError) as refused:
        WebsocketFeed.clean_settings({"url": "ws://x", "send": [{"token": "t-secret", "at": {1, 2}}]})
    assert "secret" not in str(refused.value)
