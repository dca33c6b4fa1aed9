"""Read one Server-Sent-Events connection with httpx, as EventSource would.

One GET, one stream of events, then return when the server closes. Reconnecting is the
caller's job: pass the last `Event.id` seen as `last_event_id` and wait
`reconnect_delay(event.retry)` first (WHATWG HTML 9.2.3 "Processing model").
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping

import httpx

from streams.ingest.feeds.base import safe_url
from streams.ingest.feeds.guarded import guarded_transport
from streams.ingest.feeds.http_errors import error_body
from streams.ingest.feeds.sse_parser import Event, SSEParser

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
# The spec leaves the default reconnection time to the user agent; browsers use 3 to 5 s.
DEFAULT_RECONNECT_SECONDS = 3.0
# A server asking for `retry: 999999999` should not silence a stream for days.
MAX_RECONNECT_SECONDS = 300.0


class SSEError(Exception):
    """The server answered, but not with an event stream (wrong status or content type)."""

    def __init__(self, message: str, *, status: int, content_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.content_type = content_type


async def sse_events(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    last_event_id: str | None = None,
    # Per connect and per read (httpx), which asyncio.timeout cannot express for a stream.
    timeout: float = 30.0,  # noqa: ASYNC109
    client: httpx.AsyncClient | None = None,
    parser: SSEParser | None = None,
    on_open: Callable[[], None] | None = None,
) -> AsyncIterator[Event]:
    """Yield the events of one connection to `url`; return when the server closes.

    `timeout` bounds the connect and every read, so a server silent that long raises
    httpx.ReadTimeout (servers keep streams alive with comments). Raises SSEError when the
    answer is not a 200 event stream, httpx errors when the connection fails.

    A caller that needs what the stream set without dispatching an event (a lone `retry:`, an
    `id:` in an event with no data) or a size bound passes its own fresh `parser`; its
    `last_event_id` is the one resumed from. `on_open` is called once the server has answered
    with an event stream, before any event.
    """
    if parser is None:
        parser = SSEParser(last_event_id=last_event_id)
    elif last_event_id is not None:
        raise ValueError("pass last_event_id or a parser seeded with it, not both")
    request_headers = httpx.Headers(headers)
    request_headers["Accept"] = EVENT_STREAM
    request_headers["Cache-Control"] = "no-cache"
    # The spec sends the header only for a non-empty id. Set item by item on purpose: httpx
    # encodes that as UTF-8 (as browsers do, ids like "…" are legal) but a dict as ASCII.
    if parser.last_event_id:
        request_headers["Last-Event-ID"] = parser.last_event_id
    owned = client is None
    http = client if client is not None else httpx.AsyncClient(transport=guarded_transport())
    try:
        # EventSource follows redirects; httpx does not unless asked.
        async with http.stream(
            "GET",
            url,
            headers=request_headers,
            timeout=timeout,
            follow_redirects=True,
        ) as response:
            await _check_response(url, response, headers=headers or {})
            if on_open is not None:
                on_open()
            try:
                async for chunk in response.aiter_bytes():
                    for event in parser.feed(chunk):
                        yield event
            except httpx.RemoteProtocolError as error:
                # A chunked body cut short is the server closing on us, which is what the
                # caller reconnects after anyway; a plain close ends the loop above.
                logger.info("event stream %s ended abruptly: %s", safe_url(url), error)
            parser.close()
    finally:
        if owned:
            await http.aclose()


async def _check_response(url: str, response: httpx.Response, *, headers: Mapping[str, str]) -> None:
    content_type = response.headers.get("content-type", "")
    mime = content_type.partition(";")[0].strip().lower()
    if response.status_code == 200 and mime == EVENT_STREAM:
        return
    # The body helps ("invalid API key") but may echo the key it refuses: blank the caller's
    # secrets out. The URL loses its query and credentials the same way.
    body = await error_body(response, url=url, headers=headers)
    what = f"{response.status_code} {response.reason_phrase}".strip()
    raise SSEError(
        f"{safe_url(url)} answered {what} with content type {content_type or '(none)'!r}, "
        f"expected 200 {EVENT_STREAM}; body starts {body!r}",
        status=response.status_code,
        content_type=content_type,
    )


def reconnect_delay(
    retry_ms: int | None,
    *,
    default: float = DEFAULT_RECONNECT_SECONDS,
    maximum: float = MAX_RECONNECT_SECONDS,
) -> float:
    """Seconds to wait before reconnecting: the server's `retry:` if it sent one, capped."""
    if retry_ms is None:
        return default
    return min(retry_ms / 1000, maximum)
