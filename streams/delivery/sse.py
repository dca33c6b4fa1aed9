"""Server-Sent Events output: GET /streams/<slug>/events, for curl and a browser's EventSource.

Each batch is one event (`id:` = the batch's last point id, `event: points`, `data:` the batch
JSON exactly as the socket gets it). A reconnect with `Last-Event-ID` (or `?after=` for curl)
resumes with no gap: from the live window, or from the database when the window has moved on.
The response joins the stream's group before reading the backfill, so no batch falls between,
drops what it already sent, and refills from history when the live path lost a batch (a broken
`prev` chain). Access is re-checked for every open response once a second, for the whole process
in one go (`AccessWatcher`), and a viewer who lost it gets `event: error` and the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer
from django.http import HttpRequest, StreamingHttpResponse

from streams.access.revocation import (
    AccessWatcher,
    Viewing,
    get_watcher,
)
from streams.core.frames import batch_text, encode
from streams.core.groups import group_name
from streams.core.ids import IdKey, parse_id
from streams.core.points import Entry
from streams.core.retention import Retention
from streams.core.tasks import cancel_and_wait
from streams.storage.backfill import MAX_RESUME_POINTS, Segment, read_since, stored_after  # noqa: F401
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
    why the group is joined here and not in the view: a response never iterated runs nothing."""
    slug, group = stream.slug, group_name(stream.slug)
    retention = Retention.of(stream)
    layer = get_channel_layer()
    hold = _Hold(layer=layer, group=group, watcher=get_watcher(), viewing=viewing)
    watch = hold.watch
    # Django does not close this generator when the client leaves while a send is pending (its
    # wrappers around it are closed, not it), so the request's task ending releases it too.
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(hold.release_soon)
    sent = _Sent(after)

    async def resume() -> AsyncIterator[bytes]:
        segments = await read_since(slug, after=sent.id, retention=retention, stored=stream.store_points)
        for segment in segments:
            if segment.gap:
                yield sse_event(event="gap", data=encode({"stream": slug, "after": sent.id}))
            if segment.entries:
                prev = None if segment.gap else sent.id
                for event in points_events(slug=slug, prev=prev, entries=segment.entries):
                    yield event
                sent.advance(segment.entries[-1].id)

    try:
        # Join before reading history so no batch falls between backfill and live. Shielded:
        # a client leaving mid-join must not leave a half-made membership behind; the
        # `finally` lets the join finish and undoes it.
        hold.joining = asyncio.ensure_future(_join(layer, group))
        yield f"retry: {RETRY_MS}\n\n".encode()
        membership = await asyncio.shield(hold.joining)
        status = await get_history().get_status(slug)
        if status is not None:
            yield sse_event(event="status", data=encode({"stream": slug, **status}))
        async for event in resume():
            yield event
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        hold.getting = getting = asyncio.ensure_future(membership.inbox.get())
        while True:
            if membership.dropped:
                # The inbox overflowed while this response fell behind: catch up from history.
                membership.dropped = False
                async for event in resume():
                    yield event
                last_write = loop.time()
            timeout = max(0.0, last_write + KEEPALIVE_SECONDS - loop.time())
            await asyncio.wait(
                {getting, watch.revoked, membership.pump},
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if watch.revoked.done():
                refusal = watch.revoked.result()
                yield sse_event(
                    event="error", data=encode({"code": refusal.code, "message": refusal.message})
                )
                return
            if membership.pump.done():
                membership.pump.result()  # the layer failed (Redis gone): end with its error
            if not getting.done():
                yield b": keep-alive\n\n"
                last_write = loop.time()
                continue
            message = getting.result()
            hold.getting = getting = asyncio.ensure_future(membership.inbox.get())
            if message.get("stream") != slug:
                continue
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


# Releases started from task callbacks, kept referenced until they finish.
_releasing: set[asyncio.Task[None]] = set()


class _Hold:
    """What one response holds: its access watch, its group membership and channel. Released
    once, by the response's `finally` or when the request's task ends, whichever comes first."""

    def __init__(self, *, layer: Any, group: str, watcher: AccessWatcher, viewing: Viewing) -> None:
        self.layer = layer
        self.group = group
        self.watcher = watcher
        self.watch = watcher.watch(viewing)
        self.joining: asyncio.Future[_Membership] | None = None
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
            await _leave(self.layer, self.group, self.joining)


@dataclass(eq=False)
class _Membership:
    channel: str
    inbox: asyncio.Queue[dict[str, Any]]
    pump: asyncio.Future[None] = field(init=False)
    # Set when a message was dropped on a full inbox.
    dropped: bool = False


async def _join(layer: Any, group: str) -> _Membership:
    """A new channel in the stream's group, its messages pumped into an inbox."""
    membership = _Membership(channel=await layer.new_channel(), inbox=asyncio.Queue())
    started = asyncio.Event()
    membership.pump = asyncio.ensure_future(_pump(layer, membership, started))
    await started.wait()  # the pump is inside layer.receive now, so cancelling it cleans up
    await layer.group_add(group, membership.channel)
    return membership


async def _pump(layer: Any, membership: _Membership, started: asyncio.Event) -> None:
    """Moves the channel's messages to `inbox`, forever.

    Between messages it never awaits anything but `layer.receive`: the pub/sub layer drops a
    channel (unsubscribes it in Redis) only when a receive is cancelled (channels_redis has no
    delete_channel), so cancelling this task must always land inside one. A receive task of our
    own could be cancelled before it started or after its message arrived, and leak the channel.
    """
    started.set()
    while True:
        message = await layer.receive(membership.channel)
        if membership.inbox.qsize() >= MAX_BACKLOG:
            # Dropped, not queued without end: the response refills from history instead.
            membership.dropped = True
            continue
        membership.inbox.put_nowait(message)


async def _leave(layer: Any, group: str, joining: asyncio.Future[_Membership]) -> None:
    """Undo `_join` once it is done: leave the group, then drop the channel."""
    await asyncio.wait({joining}, timeout=JOIN_TIMEOUT)
    if not joining.done() or joining.cancelled() or joining.exception() is not None:
        joining.cancel()
        log.warning("event stream: could not join group %s; nothing to leave", group)
        return
    membership = joining.result()
    with _logged("leave group %s", group):
        await layer.group_discard(group, membership.channel)
    # Not suppress(CancelledError): that would swallow a cancellation of this leave itself.
    await cancel_and_wait(membership.pump)


@contextlib.contextmanager
def _logged(what: str, *args: Any) -> Iterator[None]:
    """Clean-up goes on past a failed step (a Redis blip), logged, so the rest is released."""
    try:
        yield
    except Exception:
        log.exception("event stream: could not " + what, *args)
