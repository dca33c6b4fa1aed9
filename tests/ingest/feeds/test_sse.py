"""The sse feed against a real local HTTP server started by the test (http.server, chunked)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streams.core.points import Point
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.sse import MAX_EVENT_CHARS, SSEDropped, SSEFeed
from streams.ingest.feeds.sse_client import SSEError
from tests.processes import HeldPort, refused_port
from tests.sources import SSESource, http_server_on
from tests.waits import eventually

# A part of a reply: bytes are sent as one chunk, a float pauses that many seconds.
Part = bytes | float


@dataclass
class Reply:
    """One connection's answer. `parts` may be a function of the Last-Event-ID the client sent.

    `end`: "hold" keeps the connection open and silent until the test ends, "close" ends the
    body properly, "die" closes the socket without ending the chunked body (a server crash).
    """

    parts: list[Part] | Callable[[str | None], list[Part]] = field(default_factory=list)
    status: int = 200
    content_type: str = "text/event-stream"
    end: str = "hold"


class EventServer:
    """A text/event-stream endpoint on 127.0.0.1; each connection plays the next Reply.

    Its port is held for the whole test: while the server is stopped connections are refused,
    and no other process can take the port before start() listens on it again."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, str]] = []
        self.closing = threading.Event()
        self.held = HeldPort()
        self.port = self.held.port
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> None:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                state.requests.append(dict(self.headers))
                reply = state.replies.pop(0)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                parts = (
                    reply.parts(self.headers.get("Last-Event-ID")) if callable(reply.parts) else reply.parts
                )
                try:
                    for part in parts:
                        if isinstance(part, float):
                            if state.closing.wait(part):
                                return
                        else:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    if reply.end == "close":
                        self.wfile.write(b"0\r\n\r\n")
                    elif reply.end == "hold":
                        state.closing.wait(30)
                except OSError:
                    pass  # the client went away

            def log_message(self, *args: object) -> None:
                pass

        self.server = http_server_on(self.held, Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        """Stop listening (connections are refused until start() listens on the port again)."""
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.held.refuse()
        self.server = None


@pytest.fixture
def server() -> Iterator[EventServer]:
    events = EventServer()
    events.start()
    try:
        yield events
    finally:
        events.closing.set()
        if events.server is not None:
            events.stop()
        events.held.close()


def event(value: object, *, id: str | None = None, name: str | None = None) -> bytes:
    lines = [f"id: {id}"] if id is not None else []
    lines += [f"event: {name}"] if name is not None else []
    lines.append(f"data: {json.dumps(value)}")
    return ("\n".join(lines) + "\n\n").encode()


async def read_points(feed: SSEFeed, count: int, *, seconds: float = 5) -> list[Point]:
    """Points from one `batches()` call until `count` arrived (the connection stays open)."""
    points: list[Point] = []
    async with asyncio.timeout(seconds), contextlib.aclosing(feed.batches()) as batches:
        async for batch in batches:
            points += batch
            if len(points) >= count:
                return points
    pytest.fail(f"the feed ended after {len(points)} of {count} points")


async def read_until_dropped(feed: SSEFeed, *, seconds: float = 5) -> tuple[list[Point], Exception]:
    """Points from one `batches()` call, and what it raised when the connection ended."""
    points: list[Point] = []
    async with asyncio.timeout(seconds), contextlib.aclosing(feed.batches()) as batches:
        try:
            async for batch in batches:
                points += batch
        except Exception as error:
            return points, error
    pytest.fail("batches() returned instead of raising")


def values(points: list[Point], series: str = "value") -> list[float | None]:
    return [point.values[series] for point in points]


async def test_values_stream_with_multiline_data_and_named_events(server):
    server.replies.append(
        Reply(
            [
                b": keep-alive\n\n",
                b'data: {"t": 1763000000,\ndata:  "price": 10.5}\n\n',
                b'event: trade\ndata: {"t": 1763000001, "price": 11}\n\n',
            ]
        )
    )
    settings = {
        "url": server.url,
        "headers": {"X-Api-Key": "k-123"},
        "extract": {"time": "t", "value": "price"},
    }
    points = await read_points(SSEFeed(settings), 2)
    assert points == [
        Point(t=1763000000, values={"value": 10.5}),
        Point(t=1763000001, values={"value": 11.0}),
    ]
    assert server.requests[0]["X-Api-Key"] == "k-123"
    assert server.requests[0]["Accept"] == "text/event-stream"


async def test_a_bare_number_is_a_json_payload(server):
    server.replies.append(Reply([b"data: 42\n\n", b"data: -1.5e3\n\n"]))
    assert values(await read_points(SSEFeed({"url": server.url}), 2)) == [42.0, -1500.0]


async def test_an_empty_batch_says_connected_before_any_event(server):
    server.replies.append(Reply([]))
    async with asyncio.timeout(5), contextlib.aclosing(SSEFeed({"url": server.url}).batches()) as batches:
        assert await anext(batches) == []


STREAM = [
    event(1, name="trade"),
    event(99),
    event(5, name="quote"),
    event(2, name="trade"),
    event(98),
]


@pytest.mark.parametrize(
    ("events", "expected"),
    [(["trade"], [1.0, 2.0]), (["message"], [99.0, 98.0]), (None, [1.0, 99.0, 5.0, 2.0, 98.0])],
    ids=["named", "unnamed-are-message", "default-keeps-all"],
)
async def test_the_events_setting_keeps_only_those_event_names(server, events, expected):
    server.replies.append(Reply(STREAM))
    feed = SSEFeed({"url": server.url, "events": events})
    assert values(await read_points(feed, len(expected))) == expected
    assert feed.bad_payloads == 0


async def test_the_server_dies_mid_stream_and_comes_back_without_loss_or_duplicates(server):
    history = [event({"v": n}, id=str(n)) for n in range(1, 7)]

    def resume(last_event_id: str | None) -> list[Part]:
        return history[int(last_event_id or 0) :]

    # Three events, then half of the fourth, then the process is gone.
    server.replies.append(Reply([*history[:3], b'id: 4\ndata: {"v"'], end="die"))
    feed = SSEFeed({"url": server.url, "extract": {"value": "v"}})

    before, dropped = await read_until_dropped(feed)
    assert isinstance(dropped, ConnectionError)
    assert values(before) == [1.0, 2.0, 3.0]

    server.stop()
    _, refused = await read_until_dropped(feed)
    assert isinstance(refused, SSEDropped)
    assert "cannot connect" in str(refused)

    server.replies.append(Reply(resume))
    server.start()  # the same port, held meanwhile
    after = await read_points(feed, 3)

    assert server.requests[1]["Last-Event-ID"] == "3"
    assert values(before + after) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert feed.last_event_id == "6"


async def test_the_servers_retry_becomes_the_reconnect_floor(server):
    # A lone `retry:` after the last event dispatches nothing; the feed still honours it.
    server.replies.append(Reply([event(1), b"retry: 1500\n\n"], end="close"))
    feed = SSEFeed({"url": server.url})
    assert feed.retry_after is None
    points, error = await read_until_dropped(feed)
    assert values(points) == [1.0]
    assert isinstance(error, SSEDropped)
    assert "closed the event stream" in str(error)
    assert feed.retry_after == 1.5

    # The worker clears the floor once used; the server's wish holds for later failures too.
    feed.retry_after = None
    server.stop()
    await read_until_dropped(feed)
    assert feed.retry_after == 1.5


async def test_a_server_down_at_start_raises():
    with refused_port() as port:
        feed = SSEFeed({"url": f"http://127.0.0.1:{port}/events"})
        points, error = await read_until_dropped(feed)
    assert points == []
    assert isinstance(error, SSEDropped)
    assert f"cannot connect to http://127.0.0.1:{port}/events" in str(error)
    assert feed.retry_after is None


SECRETS = {"key": "k-5ecret-42", "token": "t0ken-5ecret", "query": "q-5ecret-7"}


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        (
            Reply(
                [f"invalid API key {SECRETS['key']}".encode()],
                status=401,
                content_type="text/plain",
                end="close",
            ),
            ["401 Unauthorized", "'text/plain'", "invalid API key [redacted]"],
        ),
        (
            Reply([b'{"value": 1}'], content_type="application/json", end="close"),
            ["200 OK", "'application/json'"],
        ),
    ],
    ids=["401-with-body", "wrong-content-type"],
)
async def test_a_wrong_answer_names_status_and_content_type_but_no_secret(server, caplog, reply, named):
    server.replies.append(reply)
    headers = {"X-Api-Key": SECRETS["key"], "Authorization": f"Bearer {SECRETS['token']}"}
    feed = SSEFeed({"url": f"{server.url}?api_key={SECRETS['query']}", "headers": headers})
    with caplog.at_level(logging.DEBUG, logger="streams"):
        points, error = await read_until_dropped(feed)
    assert points == []
    assert isinstance(error, SSEError)
    message = str(error)
    for part in named:
        assert part in message
    # Ours only: httpx logs each request URL, query included, at INFO; LOGGING must quiet it.
    logged = " ".join(record.getMessage() for record in caplog.records if record.name.startswith("streams"))
    for secret in SECRETS.values():
        assert secret not in message
        assert secret not in logged


async def test_garbage_payloads_are_counted_and_skipped(server):
    garbage = [b"not json", b"{broken", b"[" * 100_000, b'{"price": "n/a"}', b'{"price": true}', b""]
    parts = [b"data: " + payload + b"\n\n" for payload in garbage]
    server.replies.append(Reply([*parts, event({"price": 7})]))
    feed = SSEFeed({"url": server.url, "extract": {"value": "price"}})
    assert values(await read_points(feed, 1)) == [7.0]
    assert feed.bad_payloads == len(garbage)


async def test_a_server_silent_beyond_the_timeout_counts_as_dropped(server):
    server.replies.append(Reply([event(1)]))
    feed = SSEFeed({"url": server.url, "timeout": 1})
    started = time.monotonic()
    points, error = await read_until_dropped(feed)
    assert values(points) == [1.0]
    assert isinstance(error, SSEDropped)
    assert "sent nothing for 1 s" in str(error)
    assert time.monotonic() - started >= 1


async def test_keep_alive_comments_hold_a_quiet_stream_open(server):
    # 2.4 s between the two events, longer than the timeout, with a comment every 0.4 s: a busy
    # machine has 1.6 s to deliver each comment before the timeout (a timeout of 1 s left it
    # 0.6, a pause of the test process that a loaded 2-core machine can make).
    quiet = [0.4, b": keep-alive\n\n"] * 5 + [0.4]
    server.replies.append(Reply([event(1), *quiet, event(2)]))
    feed = SSEFeed({"url": server.url, "timeout": 2})
    assert values(await read_points(feed, 2, seconds=15)) == [1.0, 2.0]


async def test_an_oversize_event_is_skipped_and_the_stream_goes_on(server):
    # Valid JSON (1 and much white space), so only its size can keep it out.
    piece = b" " * 65536
    huge = [b"data: 1"] + [piece] * (MAX_EVENT_CHARS // len(piece) + 8) + [b"\n\n"]
    server.replies.append(Reply([*huge, event(7)]))
    feed = SSEFeed({"url": server.url})
    assert values(await read_points(feed, 1)) == [7.0]
    assert feed.bad_payloads == 1


async def test_aggregates_are_flushed_while_no_event_arrives(server):
    # New questions counted per site and interval; then the stream goes quiet.
    questions = [
        event({"site": "stackoverflow"}, name="new-question"),
        event({"site": "superuser"}, name="new-question"),
        event({}, name="heartbeat"),
        event({"site": "stackoverflow"}, name="new-question"),
    ]
    server.replies.append(Reply(questions))
    settings = {
        "url": server.url,
        "events": ["new-question"],
        "extract": {"series_path": "site", "aggregate": {"every": 0.5, "how": "count"}},
    }
    feed = SSEFeed(settings)
    totals: dict[str, float] = {}
    async with asyncio.timeout(5), contextlib.aclosing(feed.batches()) as batches:
        async for batch in batches:
            for point in batch:
                for site, count in point.values.items():
                    totals[site] = totals.get(site, 0) + (count or 0)
            if totals == {"stackoverflow": 2, "superuser": 1}:
                break
    assert totals == {"stackoverflow": 2, "superuser": 1}
    assert feed.bad_payloads == 0


def test_describe_leaves_credentials_and_query_out():
    feed = SSEFeed({"url": "https://user:pw@example.com:8443/stream?key=abc"})
    assert feed.describe() == "https://example.com:8443/stream"


def test_cleaned_settings_clean_to_themselves():
    cleaned = SSEFeed.clean_settings({"url": "http://x/e", "events": ["a"], "extract": {"value": "v"}})
    assert SSEFeed.clean_settings(SSEFeed.settings_json(cleaned)) == cleaned
    assert cleaned["timeout"] == 60.0
    assert SSEFeed.clean_settings({"url": "http://x/e"})["events"] is None


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({}, "url"),
        ({"url": "ws://example.com/x"}, "url"),
        ({"url": "http://x", "headers": {"X-Api-Key": 1}}, "headers"),
        ({"url": "http://x", "events": "trade"}, "events"),
        ({"url": "http://x", "events": []}, "events"),
        ({"url": "http://x", "events": ["trade", ""]}, "events[1]"),
        ({"url": "http://x", "events": ["a\nb"]}, "events[0]"),
        ({"url": "http://x", "events": [7]}, "events[0]"),
        ({"url": "http://x", "timeout": 0}, "timeout"),
        ({"url": "http://x", "timeout": "60"}, "timeout"),
        ({"url": "http://x", "stall_after": 0}, "stall_after"),
        ({"url": "http://x", "extract": {"value": "a[?"}}, "extract.value"),
        ({"url": "http://x", "retry": 5}, "retry"),
        ("http://x", "settings"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings, key):
    with pytest.raises(FeedSettingsError) as refused:
        SSEFeed.clean_settings(settings)
    assert refused.value.key == key


def readers() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("sse reader")]


async def test_stopping_the_feed_stops_its_connection(server):
    server.replies += [Reply([event(1)]), Reply([0.2, event(2)])]
    feed = SSEFeed({"url": server.url})
    # Closed after a batch, as a consumer that has had enough does.
    assert values(await read_points(feed, 1)) == [1.0]
    assert readers() == []
    # Cancelled while waiting for an event, as the worker does when a stream is edited.
    batches = feed.batches()
    assert await anext(batches) == []  # connected
    waiting = asyncio.ensure_future(anext(batches))
    assert values(await waiting) == [2.0]
    waiting = asyncio.ensure_future(anext(batches))
    # One turn of the loop: the task runs until the feed waits in its queue for an event (had
    # one been there, `waiting` would be done and the cancellation below would not raise).
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await batches.aclose()
    assert readers() == []


# Aggregation by event time: late events


@pytest.fixture
def source() -> Iterator[SSESource]:
    events = SSESource()
    try:
        yield events
    finally:
        events.close()


class FeedClock:
    """The feed's clock, moved on by the test alone: which events count as late then hangs on the
    time the test says they were read at, not on when a busy machine got round to reading them."""

    def __init__(self, at: float = 1_700_000_000.5) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


class Running:
    """A feed's batches read by a task of their own, so a test can wait on what it counted."""

    def __init__(self, feed: SSEFeed) -> None:
        self.feed = feed
        self.points: list[Point] = []
        self.connected = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for batch in self.feed.batches():
            self.connected.set()
            self.points += batch

    def total(self, series: str) -> float:
        return sum(point.values.get(series) or 0 for point in self.points)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for `condition` (checked as the feed works); fail at once if the feed stops."""

        def met() -> bool:
            if self.task.done():
                self.task.result()  # the feed's error, if it failed
                raise AssertionError("the feed stopped")
            return condition()

        await eventually(met, what="the feed's points", seen=lambda: len(self.points))

    async def read(self, event_id: str) -> None:
        """Wait until the feed has read the event with this id, and so every one sent before it
        (an event is read, and the aggregates flushed after it, before the feed waits again)."""
        await self.until(lambda: self.feed.last_event_id == event_id)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def recentchange(timestamp: int, *, wiki: str = "enwiki") -> dict[str, object]:
    """A Wikimedia EventStreams recentchange event (its `timestamp` is in whole seconds)."""
    return {
        "$schema": "/mediawiki/recentchange/1.0.0",
        "meta": {"stream": "mediawiki.recentchange", "domain": "en.wikipedia.org"},
        "type": "edit",
        "namespace": 0,
        "title": "Example",
        "timestamp": timestamp,
        "user": "Someone",
        "bot": False,
        "wiki": wiki,
    }


async def test_late_events_count_in_their_interval_within_the_grace_and_beyond_it_are_counted_and_logged(
    source, caplog
):
    caplog.set_level(logging.WARNING, logger="streams.ingest.feeds")
    extract = {"time": "timestamp", "series": "edits", "aggregate": {"every": 1, "how": "count", "grace": 6}}
    clock = FeedClock()
    running = Running(SSEFeed({"url": source.url, "extract": extract}, clock=clock.now))
    try:
        async with asyncio.timeout(10):
            await running.connected.wait()
        # Events of the second that ended 1.5 s ago: late, well within the 6 s grace.
        second = int(clock.at) - 2
        for n in range(1, 41):
            source.send(recentchange(second), id=str(n))
        await running.read("40")
        # One more in the last moment of the grace: counted too, and the interval still open.
        clock.at = second + 1 + 6 - 0.01
        source.send(recentchange(second), id="41")
        await running.read("41")
        assert running.points == []
        # The grace is over: the feed's next flush puts the second's point out.
        clock.at = second + 1 + 6
        await running.until(lambda: running.points)
        [point] = running.points
        assert point.t == second + 1 and point.values == {"edits": 41}
        # That second's point is out: more events of it are beyond the grace, each counted as a
        # bad payload (the stream's health shows it) and logged sampled, never silently lost.
        for _ in range(250):
            source.send(recentchange(second))
        await running.until(lambda: running.feed.bad_payloads == 250)
    finally:
        await running.stop()
    assert running.points == [point] and running.feed.extractor.dropped_late == 250
    told = [record for record in caplog.records if "came after its interval" in record.getMessage()]
    # The first three, then one in a hundred (#100 and #200).
    assert [re.findall(r"bad payload #(\d+) skipped", record.getMessage()) for record in told] == [
        [str(n)] for n in (1, 2, 3, 100, 200)
    ]


async def test_a_wikimedia_style_stream_a_second_behind_is_counted_whole_with_the_default_grace(source):
    # Events are read a second or two after their timestamp, as stream.wikimedia.org's are;
    # counted per 2 s interval. Read over 6 s, they straddle interval ends with late events, and
    # the first intervals close (5 s after their end) while the stream goes on.
    extract = {"time": "timestamp", "series_path": "wiki", "aggregate": {"every": 2, "how": "count"}}
    clock = FeedClock()
    running = Running(SSEFeed({"url": source.url, "extract": extract}, clock=clock.now))
    sent = 0
    try:
        async with asyncio.timeout(10):
            await running.connected.wait()
        end = clock.at + 6
        while clock.at < end:
            # Three events every 0.1 s of the feed's time, read before its clock moves on.
            for _ in range(3):
                source.send(
                    recentchange(int(clock.at - 1), wiki="enwiki" if sent % 3 else "dewiki"), id=str(sent)
                )
                sent += 1
            await running.read(str(sent - 1))
            clock.at += 0.1
        assert running.points, "no interval closed while the stream went on"
        # Every interval is over, grace and all.
        clock.at = end + 2 + 5
        await running.until(lambda: running.total("enwiki") + running.total("dewiki") >= sent)
    finally:
        await running.stop()
    assert running.total("enwiki") + running.total("dewiki") == sent
    assert running.total("dewiki") == len(range(0, sent, 3))
    assert running.feed.bad_payloads == 0
