"""Server-Sent Events output: GET /streams/<slug>/events, for curl and a browser's EventSource.

Each batch is one event (`id:` = the batch's last point id, `event: points`, `data:` the batch
JSON exactly as the socket gets it). A reconnect with `Last-Event-ID` (or `?after=` for curl)
resumes with no gap: from the live window, or from the database when the window has moved on.
The response joins the stream at the process's fan-out hub (streams/delivery/hub.py), as a
socket does, before reading the backfill, so no batch falls between; it drops what it already
sent, and refills from history when the live path lost a batch (a broken `prev` chain). Access
is re-checked for every open response once a second, for the whole process in one go
(`AccessWatcher`), and a viewer who lost it gets `event: error` and the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, StreamingHttpResponse

from streams.access.revocation import AccessWatcher, Viewing, get_watcher
from streams.core.frames import batch_text, encode
from streams.core.ids import IdKey, parse_id
from streams.core.points import Entry
from streams.core.retention import Retention
from streams.delivery.hub import Hub, get_hub
from streams.storage.backfill import pages_since
from streams.storage.window import get_history

if TYPE_CHECKING:
    from streams.models import Stream

log = logging.getLogger(__name__)

# The reconnection delay EventSource uses (ms); sent first, so browsers do not hammer a restart.
RETRY_MS = 3000
# A comment after this long without a write, so proxies and load balancers keep the connection.
KEEPALIVE_SECONDS = 15.0
# A backfill is cut into events of at most this many points, each with its own id to resume at.
EVENT_POINTS = 1000
# A join (Redis round trips) that has not finished by then is given up when the response ends.
JOIN_TIMEOUT = 10.0
# Live messages waiting for one response past this are dropped (and refilled from history).
MAX_BACKLOG = 1000
# Open event streams per signed-in user in one process; one more gets 429.
MAX_PER_USER = 20

CONTENT_TYPE = "text/event-stream; charset=utf-8"


# Wire format ---------------------------------------------------------------------------------


def sse_event(*, event: str, data: str, event_id: str | None = None) -> bytes:
    """One event. `data` must be one line: every text we send is compact JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def points_events(*, slug: str, prev: str | None, entries: Sequence[Entry]) -> Iterator[bytes]:
    """A backfill as `points` events of at most EVENT_POINTS points, each chained on the last."""
    for start in range(0, len(entries), EVENT_POINTS):
        chunk = entries[start : start + EVENT_POINTS]
        text = batch_text(slug=slug, prev=prev, entries=chunk)
        yield sse_event(event="points", data=text, event_id=chunk[-1].id)
        prev = chunk[-1].id


def resume_id(request: HttpRequest) -> str | None:
    """The id to resume after: the Last-Event-ID header (EventSource's reconnect), else
    `?after=` (curl); None for the whole live window. ValueError when it is not a point id."""
    value = (request.headers.get("Last-Event-ID") or request.GET.get("after") or "").strip()
    if not value:
        return None
    parse_id(value)
    return value


# The response --------------------------------------------------------------------------------


class _Sent:
    """The newest id sent; live batches at or before it are dropped."""

    def __init__(self, after: str | None) -> None:
        self.id = after
        self.key: IdKey | None = None if after is None else parse_id(after)

    def advance(self, point_id: str, key: IdKey | None = None) -> None:
        self.id = point_id
        self.key = parse_id(point_id) if key is None else key


def event_response(*, stream: Stream, viewing: Viewing, after: str | None) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        events(stream=stream, viewing=viewing, after=after), content_type=CONTENT_TYPE
    )
    response["Cache-Control"] = "no-cache"
    # nginx buffers proxied responses by default; this tells it not to for this one.
    response["X-Accel-Buffering"] = "no"
    return response


async def events(*, stream: Stream, viewing: Viewing, after: str | None) -> AsyncIterator[bytes]:
    """The event stream of one response, until the client leaves (Django's ASGI handler then
    cancels this) or loses access. Everything it holds is given back in the `finally`, which is
    why the hub is joined here and not in the view: a response never iterated runs nothing."""
    slug = stream.slug
    retention = Retention.of(stream)
    hub = get_hub()
    hold = _Hold(hub=hub, slug=slug, watcher=get_watcher(), viewing=viewing)
    watch, listener = hold.watch, hold.listener
    # Django does not close this generator when the client leaves while a send is pending (its
    # wrappers around it are closed, not it), so the request's task ending releases it too.
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(hold.release_soon)
    sent = _Sent(after)

    async def resume() -> AsyncIterator[bytes]:
        # The socket's backfill path (streams/storage/backfill.py): the window a page at a
        # time, else the database, else a gap.
        pages = pages_since(slug, after=sent.id, retention=retention, stored=stream.store_points)
        async with contextlib.aclosing(pages):
            async for segment in pages:
                if segment.gap:
                    yield sse_event(event="gap", data=encode({"stream": slug, "after": sent.id}))
                if segment.entries:
                    prev = None if segment.gap else sent.id
                    for event in points_events(slug=slug, prev=prev, entries=segment.entries):
                        yield event
                    sent.advance(segment.entries[-1].id)

    try:
        # Join before reading history so no batch falls between backfill and live, as the
        # socket does. Shielded: a client leaving mid-join must not leave a half-made
        # membership behind; the `finally` lets the join finish and undoes it.
        hold.joining = asyncio.ensure_future(hub.join(slug, listener))
        yield f"retry: {RETRY_MS}\n\n".encode()
        await asyncio.shield(hold.joining)
        status = await get_history().get_status(slug)
        if status is not None:
            yield sse_event(event="status", data=encode({"stream": slug, **status}))
        async for event in resume():
            yield event
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        hold.getting = getting = asyncio.ensure_future(listener.inbox.get())
        while True:
            if listener.dropped:
                # The inbox overflowed while this response fell behind: catch up from history.
                listener.dropped = False
                async for event in resume():
                    yield event
                last_write = loop.time()
            timeout = max(0.0, last_write + KEEPALIVE_SECONDS - loop.time())
            await asyncio.wait({getting, watch.revoked}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if watch.revoked.done():
                refusal = watch.revoked.result()
                yield sse_event(
                    event="error", data=encode({"code": refusal.code, "message": refusal.message})
                )
                return
            if not getting.done():
                yield b": keep-alive\n\n"
                last_write = loop.time()
                continue
            message = getting.result()
            hold.getting = getting = asyncio.ensure_future(listener.inbox.get())
            if message["type"] == "stream.status":
                yield sse_event(event="status", data=encode({"stream": slug, **message["status"]}))
            elif message["type"] == "stream.points":
                key = tuple(message["key"])  # a list after msgpack
                if sent.key is not None and key <= sent.key:
                    continue  # already sent in the backfill (or a refill)
                if sent.id is not None and message["prev"] != sent.id:
                    # The live path is at-most-once: a batch before this one was lost. Fill the
                    # hole from history (which has this batch too) rather than skip it.
                    async for event in resume():
                        yield event
                    if sent.key is not None and key <= sent.key:
                        last_write = loop.time()
                        continue
                yield sse_event(event="points", data=message["text"], event_id=message["id"])
                sent.advance(message["id"], key)
            last_write = loop.time()
    finally:
        if task is not None:
            task.remove_done_callback(hold.release_soon)
        await hold.release()


class _Listener:
    """One response at the process's fan-out hub (streams/delivery/hub.py): the stream's live
    batches and status changes, queued for the response to write as events."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # Set when a message was dropped on a full inbox.
        self.dropped = False

    def offer(self, message: dict[str, Any]) -> bool:
        self._put(message)
        return False  # written by the response itself, never in the hub's frames

    async def send_status(self, message: dict[str, Any]) -> None:
        self._put(message)

    def _put(self, message: dict[str, Any]) -> None:
        if self.inbox.qsize() >= MAX_BACKLOG:
            # Dropped, not queued without end: the response refills from history instead.
            self.dropped = True
            return
        self.inbox.put_nowait(message)


# Releases started from task callbacks, kept referenced until they finish.
_releasing: set[asyncio.Task[None]] = set()


class _Hold:
    """What one response holds: its access watch and its place at the hub. Released once, by
    the response's `finally` or when the request's task ends, whichever comes first."""

    def __init__(self, *, hub: Hub, slug: str, watcher: AccessWatcher, viewing: Viewing) -> None:
        self.hub = hub
        self.slug = slug
        self.watcher = watcher
        self.watch = watcher.watch(viewing)
        self.listener = _Listener()
        self.joining: asyncio.Future[None] | None = None
        self.getting: asyncio.Future[dict[str, Any]] | None = None
        self._released = False

    def release_soon(self, _task: object = None) -> None:
        if not self._released:
            releasing = asyncio.get_running_loop().create_task(self.release())
            _releasing.add(releasing)
            releasing.add_done_callback(_releasing.discard)

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.watcher.release(self.watch)
        if self.getting is not None:
            self.getting.cancel()  # a queue get: cancelling it loses nothing we still need
        if self.joining is not None:
            await _leave(self.hub, self.slug, self.listener, self.joining)


async def _leave(hub: Hub, slug: str, listener: _Listener, joining: asyncio.Future[None]) -> None:
    """Leave the hub once the join is done (or given up): a join left running would add the
    listener after the leave."""
    await asyncio.wait({joining}, timeout=JOIN_TIMEOUT)
    if not joining.done():
        joining.cancel()
        log.warning("event stream: the join of stream %s did not finish; given up", slug)
    try:
        await hub.leave(slug, listener)
    except Exception:
        log.exception("event stream: could not leave stream %s", slug)
