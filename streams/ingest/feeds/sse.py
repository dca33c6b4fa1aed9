"""The sse feed: read a Server-Sent-Events (`text/event-stream`) URL and map each event to points.

Each event's data is one JSON payload (a bare number is JSON too) for the extract settings;
`events` keeps only some event names. The stream is resumed as EventSource does: the last
event id is kept on the feed object, so the worker's next `batches()` call sends it as
`Last-Event-ID` and the server can carry on where the dropped connection stopped, and the
server's `retry:` becomes the worker's floor for the reconnect delay (`retry_after`).

The connection is read by a task of its own (streams/ingest/feeds/sse_client.py) into a small
queue, so this generator can wake every FLUSH_SECONDS to flush aggregates while no event
comes, and so the httpx stream stays in one task whichever task the worker reads us from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from streams.core.points import Batch
from streams.ingest.feeds.base import (
    FeedSettingsError,
    headers_setting,
    number_setting,
    reject_unknown,
    safe_url,
    stall_setting,
    url_setting,
)
from streams.ingest.feeds.extract import BadPayload, ExtractingFeed, clean_extract
from streams.ingest.feeds.http_errors import redact
from streams.ingest.feeds.sse_client import SSEError, reconnect_delay, sse_events
from streams.ingest.feeds.sse_parser import Event, SSEParser

# One event's data beyond this is skipped as a bad payload; the parser stops buffering it.
MAX_EVENT_CHARS = 1024 * 1024
# Aggregates are flushed this often while the stream is quiet.
FLUSH_SECONDS = 0.25
# Events read ahead of the points we yield; a slow consumer holds the reader back.
QUEUE_SIZE = 256
MAX_EVENT_NAMES = 100
MAX_EVENT_NAME_CHARS = 200


class SSEDropped(ConnectionError):
    """The event stream could not be reached, ended, or went silent; the worker reconnects."""


@dataclass(frozen=True, slots=True)
class _Opened:
    """The server answered with an event stream."""


@dataclass(frozen=True, slots=True)
class _Ended:
    """The connection is over: `error` is None when the server closed the stream itself."""

    error: Exception | None


class SSEFeed(ExtractingFeed):
    kind = "sse"

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        reject_unknown(raw, {"url", "headers", "events", "timeout", "stall_after", "extract"})
        return {
            "url": url_setting(raw, schemes=("http", "https")),
            "headers": headers_setting(raw),
            "events": _events_setting(raw),
            # Servers send keep-alive comments well within this; silence this long is a drop.
            "timeout": number_setting(raw, "timeout", default=60.0, minimum=1, maximum=3600),
            "stall_after": stall_setting(raw),
            "extract": clean_extract(raw.get("extract")),
        }

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time) -> None:
        """`clock` (epoch seconds) is the wall clock: events are received and aggregates flushed
        by it. Tests pass their own, so which events count as late does not hang on how soon a
        busy machine gets round to reading them."""
        super().__init__(settings)
        self.clock = clock
        events = self.settings["events"]
        self.wanted: frozenset[str] | None = None if events is None else frozenset(events)
        # Resume state, kept across `batches()` calls (the worker reuses this object).
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None

    def describe(self) -> str:
        return safe_url(self.settings["url"])

    async def batches(self) -> AsyncIterator[Batch]:
        # A fresh parser per connection, seeded with the id to resume from.
        parser = SSEParser(last_event_id=self.last_event_id, max_data=MAX_EVENT_CHARS)
        queue: asyncio.Queue[Event | _Opened | _Ended] = asyncio.Queue(maxsize=QUEUE_SIZE)
        reader = asyncio.get_running_loop().create_task(
            self._read(parser, queue), name=f"sse reader {self.describe()}"
        )
        tick = FLUSH_SECONDS if self.extractor.aggregating else None
        try:
            while True:
                items = await _take(queue, wait=tick)
                batch: Batch = []
                opened = False
                ended: _Ended | None = None
                for item in items:
                    if isinstance(item, _Opened):
                        opened = True
                    elif isinstance(item, _Ended):
                        ended = item
                    else:
                        batch += self._points(item)
                if ended is not None:
                    # Every event the parser completed went through the queue before _Ended,
                    # so its state (an id or retry set without an event, too) is ours now.
                    self.last_event_id = parser.last_event_id
                    if parser.retry_ms is not None:
                        self.retry_ms = parser.retry_ms
                    if self.retry_ms is not None:
                        self.retry_after = reconnect_delay(self.retry_ms)
                batch += self.extractor.flush(self.clock())
                # Connected: an empty batch tells the worker the stream is live before any point.
                if batch or opened:
                    yield batch
                if ended is not None:
                    raise self._dropped(ended.error)
        finally:
            reader.cancel()
            # gather, not a suppressed CancelledError: a cancellation of our own task must
            # still get through (the worker cancels feeds when a stream changes).
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, parser: SSEParser, queue: asyncio.Queue[Event | _Opened | _Ended]) -> None:
        settings = self.settings
        ended = _Ended(None)
        try:
            events = sse_events(
                settings["url"],
                headers=settings["headers"],
                timeout=settings["timeout"],
                parser=parser,
                on_open=lambda: queue.put_nowait(_Opened()),
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    await queue.put(event)
        except Exception as error:
            ended = _Ended(error)
        # The one item after the last event; the queue always has room for it eventually.
        await queue.put(ended)

    def _points(self, event: Event) -> Batch:
        # Events we do not keep still move the id: resuming need not send them again.
        if event.id is not None:
            self.last_event_id = event.id
        if event.retry is not None:
            self.retry_ms = event.retry
        # The default event type is "message": `events: [message]` keeps the unnamed ones.
        if self.wanted is not None and event.type not in self.wanted:
            return []
        if event.oversize:
            self.skip(f"{event.type} event has over {MAX_EVENT_CHARS} characters of data")
            return []
        try:
            # Parsed and read in one (Extractor.points_from_json: what parse_json then
            # Extractor.points give, the usual settings without parse_json's look for long numbers).
            return self.extractor.points_from_json(event.data, received_at=self.clock())
        except BadPayload as error:  # a ValueError too: first
            self.skip(f"{event.type} event: {error}")
            return []
        except (ValueError, RecursionError) as error:
            # RecursionError: "[[[[…" nested deeper than Python's stack, well within the size cap.
            self.skip(f"{event.type} event data is not JSON ({type(error).__name__}: {error})")
            return []

    def _dropped(self, error: Exception | None) -> Exception:
        """The exception that ends this connection, with a message safe to log and show."""
        where = self.describe()
        if error is None:
            return SSEDropped(f"{where} closed the event stream")
        if isinstance(error, SSEError):
            return error  # its message is already safe: no query, secrets blanked out
        if isinstance(error, httpx.ConnectTimeout):
            return SSEDropped(f"could not connect to {where} within {self.settings['timeout']:g} s")
        if isinstance(error, httpx.TimeoutException):
            return SSEDropped(
                f"{where} sent nothing for {self.settings['timeout']:g} s (not even a keep-alive comment)"
            )
        if isinstance(error, httpx.HTTPError):
            # httpx messages are OS or protocol errors, but blank the secrets out in case.
            reason = redact(str(error), url=self.settings["url"], headers=self.settings["headers"])
            what = "cannot connect to" if isinstance(error, httpx.ConnectError) else "lost the connection to"
            return SSEDropped(f"{what} {where}: {type(error).__name__}: {reason}")
        return error  # not a connection problem: a bug, shown as itself


async def _take(
    queue: asyncio.Queue[Event | _Opened | _Ended], *, wait: float | None
) -> list[Event | _Opened | _Ended]:
    """Wait up to `wait` seconds (None: for ever) for one item, then take whatever else is ready, so
    a burst of events becomes one batch."""
    try:
        async with asyncio.timeout(wait):
            items = [await queue.get()]
    except TimeoutError:
        return []
    while len(items) < QUEUE_SIZE and not queue.empty():
        items.append(queue.get_nowait())
    return items


def _events_setting(raw: Mapping[str, Any]) -> list[str] | None:
    events = raw.get("events")
    if events is None:
        return None
    if not isinstance(events, list) or not events:
        raise FeedSettingsError("events", "must be a non-empty list of event names (leave it out for all)")
    if len(events) > MAX_EVENT_NAMES:
        raise FeedSettingsError("events", f"at most {MAX_EVENT_NAMES} event names")
    for index, name in enumerate(events):
        # A name with a line break can never arrive: the `event:` field ends at the line end.
        one_line = isinstance(name, str) and "\n" not in name and "\r" not in name
        if not one_line or not 1 <= len(name) <= MAX_EVENT_NAME_CHARS:
            raise FeedSettingsError(
                f"events[{index}]",
                f"must be an event name, 1-{MAX_EVENT_NAME_CHARS} characters on one line, not {name!r}",
            )
    return list(events)
