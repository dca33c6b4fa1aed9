"""The SSE client against a real local HTTP server speaking raw HTTP/1.1 from asyncio."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from streams.ingest.feeds.sse_client import SSEError, reconnect_delay, sse_events
from streams.ingest.feeds.sse_parser import Event, SSEParser


@dataclass
class Reply:
    """One scripted answer: parts are sent (and flushed) one by one."""

    parts: list[bytes]
    status: str = "200 OK"
    content_type: str = "text/event-stream"
    chunked: bool = False
    # False: drop the connection without the chunked body's last chunk.
    finish: bool = True
    # Set: wait for it after the first part, so the test can prove events are not buffered.
    hold: asyncio.Event | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    target: str
    headers: dict[str, str]


class ScriptedServer:
    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.requests: list[Request] = []
        self.handlers: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("utf-8")
            request_line, *lines = head.rstrip("\r\n").split("\r\n")
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.requests.append(Request(target=request_line.split(" ")[1], headers=headers))
            reply = self.replies.pop(0)
            response = [f"HTTP/1.1 {reply.status}", f"Content-Type: {reply.content_type}"]
            response += [f"{name}: {value}" for name, value in reply.headers.items()]
            response.append("Transfer-Encoding: chunked" if reply.chunked else "Connection: close")
            writer.write(("\r\n".join(response) + "\r\n\r\n").encode())
            for index, part in enumerate(reply.parts):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part) if reply.chunked else part)
                await writer.drain()
                if index == 0 and reply.hold is not None:
                    await reply.hold.wait()
            if reply.chunked and reply.finish:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.handlers.discard(task)


@contextlib.asynccontextmanager
async def scripted_server(*replies: Reply) -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer(list(replies))
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scripted.url = f"http://127.0.0.1:{port}/events"
    try:
        yield scripted
    finally:
        server.close()
        # Python 3.11's wait_closed() does not wait for handlers: cancel any still running.
        for task in list(scripted.handlers):
            task.cancel()
        await asyncio.gather(*scripted.handlers, return_exceptions=True)
        await server.wait_closed()


async def collect(url: str, **kwargs: Any) -> list[Event]:
    async with asyncio.timeout(5), contextlib.aclosing(sse_events(url, **kwargs)) as events:
        return [event async for event in events]


STREAM = [
    b": keep-alive\n\nretry: 1000\n\n",
    b"id: 1\ndata: first\n\n",
    b"event: update\ndata: line one\ndata: line two\n\n",
    b"id: 2\ndata: thi",
    b"rd\n\n",
]


@pytest.mark.parametrize("chunked", [False, True], ids=["close-framed", "chunked"])
async def test_events_arrive_in_order_with_names_and_multiline_data(chunked: bool):
    async with scripted_server(Reply(STREAM, chunked=chunked)) as server:
        events = await collect(server.url)
    assert events == [
        Event(data="first", id="1", retry=1000),
        Event(type="update", data="line one\nline two", id="1", retry=1000),
        Event(data="third", id="2", retry=1000),
    ]


async def test_request_asks_for_an_uncached_event_stream_with_the_callers_headers():
    async with scripted_server(Reply([b"data: x\n\n"])) as server:
        await collect(server.url, headers={"Authorization": "Bearer t0ken"})
    headers = server.requests[0].headers
    assert headers["accept"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["authorization"] == "Bearer t0ken"
    assert "last-event-id" not in headers


async def test_second_connection_resumes_with_the_last_event_id():
    # A non-ASCII id on purpose: browsers send it as UTF-8, and so must we.
    first = Reply([b"id: \xe2\x80\xa6\ndata: hello\n\n"])
    second = Reply([b"data: again\n\n"])
    async with scripted_server(first, second) as server:
        before = await collect(server.url)
        after = await collect(server.url, last_event_id=before[-1].id)
    assert server.requests[1].headers["last-event-id"] == "…"
    # The resumed stream sends no id; its events still carry the one resumed from.
    assert after == [Event(data="again", id="…")]


async def test_events_are_yielded_while_the_stream_stays_open():
    hold = asyncio.Event()
    reply = Reply([b"data: now\n\n", b"data: later\n\n"], chunked=True, hold=hold)
    async with scripted_server(reply) as server:
        seen: list[str] = []
        async with asyncio.timeout(5), contextlib.aclosing(sse_events(server.url)) as events:
            async for event in events:
                seen.append(event.data)
                # The server sends "later" only once "now" got here: buffering would hang.
                hold.set()
    assert seen == ["now", "later"]


async def test_server_error_raises_sse_error_naming_the_status():
    reply = Reply([b"database down"], status="500 Internal Server Error", content_type="text/plain")
    async with scripted_server(reply) as server:
        with pytest.raises(SSEError, match="500 Internal Server Error") as caught:
            await collect(server.url)
    assert caught.value.status == 500
    assert "database down" in str(caught.value)


async def test_wrong_content_type_raises_sse_error_naming_it():
    reply = Reply([b'{"value": 1}'], content_type="application/json")
    async with scripted_server(reply) as server:
        with pytest.raises(SSEError, match="application/json") as caught:
            await collect(server.url)
    assert caught.value.status == 200


async def test_content_type_parameters_are_accepted():
    reply = Reply([b"data: x\n\n"], content_type="Text/Event-Stream; charset=utf-8")
    async with scripted_server(reply) as server:
        assert await collect(server.url) == [Event(data="x")]


async def test_redirect_is_followed_like_eventsource_does():
    moved = Reply([], status="307 Temporary Redirect", headers={"Location": "/moved"})
    async with scripted_server(moved, Reply([b"data: here\n\n"])) as server:
        events = await collect(server.url)
    assert [request.target for request in server.requests] == ["/events", "/moved"]
    assert events == [Event(data="here")]


@pytest.mark.parametrize("chunked", [False, True], ids=["close-framed", "chunked"])
async def test_connection_dropped_mid_event_ends_without_the_partial_event(chunked: bool):
    reply = Reply([b"id: 1\ndata: whole\n\n", b"id: 2\ndata: half"], chunked=chunked, finish=False)
    async with scripted_server(reply) as server:
        events = await collect(server.url)
    assert events == [Event(data="whole", id="1")]


async def test_a_given_client_is_used_and_left_open():
    async with scripted_server(Reply([b"data: x\n\n"])) as server, httpx.AsyncClient() as client:
        assert await collect(server.url, client=client) == [Event(data="x")]
        assert not client.is_closed


async def test_refused_connection_raises_httpx_error():
    async with scripted_server() as server:
        url = server.url
    with pytest.raises(httpx.ConnectError):
        await collect(url)


def test_reconnect_delay_follows_retry_within_bounds():
    assert reconnect_delay(None) == 3.0
    assert reconnect_delay(1500) == 1.5
    assert reconnect_delay(0) == 0.0
    assert reconnect_delay(10**12) == 300.0


async def test_wrong_answer_error_keeps_the_callers_secrets_out():
    # The server echoes the key it refuses, as some APIs do.
    body = b"invalid key s3cret-key (token s3cret-token)"
    reply = Reply([body], status="401 Unauthorized", content_type="text/plain")
    async with scripted_server(reply) as server:
        url = f"{server.url}?token=s3cret-token"
        with pytest.raises(SSEError) as caught:
            await collect(url, headers={"Authorization": "Bearer s3cret-key"})
    message = str(caught.value)
    assert "401 Unauthorized" in message
    assert "text/plain" in message
    assert "invalid key [redacted]" in message
    assert "s3cret" not in message


async def test_a_given_parser_keeps_what_the_stream_set_without_an_event():
    # A lone `retry:` and an `id:` without data dispatch nothing, yet a reconnect needs both.
    reply = Reply([b"retry: 2500\n\nid: 41\ndata: x\n\nid: 42\n\n"])
    async with scripted_server(reply) as server:
        parser = SSEParser(last_event_id="40")
        events = await collect(server.url, parser=parser)
    assert server.requests[0].headers["last-event-id"] == "40"
    assert events == [Event(data="x", id="41", retry=2500)]
    assert (parser.retry_ms, parser.last_event_id) == (2500, "42")


async def test_on_open_is_called_once_the_stream_is_accepted_before_any_event():
    seen: list[str] = []
    async with scripted_server(Reply([b"data: x\n\n"])) as server:
        async with asyncio.timeout(5):
            async for event in sse_events(server.url, on_open=lambda: seen.append("open")):
                seen.append(event.data)
    assert seen == ["open", "x"]


async def test_on_open_is_not_called_for_a_wrong_answer():
    opened: list[bool] = []
    reply = Reply([b"nope"], status="404 Not Found", content_type="text/plain")
    async with scripted_server(reply) as server:
        with pytest.raises(SSEError):
            await collect(server.url, on_open=lambda: opened.append(True))
    assert opened == []


async def test_last_event_id_and_a_parser_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        await collect("http://127.0.0.1:9/", last_event_id="1", parser=SSEParser())
