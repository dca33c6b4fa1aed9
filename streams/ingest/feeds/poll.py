"""The poll feed: GET (or POST) a JSON endpoint every interval and map it to points.

For APIs that answer with a window (the last 60 one-minute candles), a point is emitted only
when its time is newer than the newest already emitted, so overlapping windows never repeat
a point; with `extract.id`, also one at that newest time whose record id is new there (two
trades in one millisecond listed in two answers). The newest time lives on the feed object,
which the worker keeps across reconnects, so a server that goes away and comes back does not
repeat points either. `ETag`/`If-None-Match` saves the body when nothing changed.

Every failure to read the endpoint (down, too slow, an HTTP error status) raises PollError with
a message safe to show (no header values, no query, no URL credentials) that says what to
check; the worker then backs off. An answer that is not usable data (not JSON, the wrong shape,
too big) is counted as a bad payload and skipped, and polling goes on.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC
from typing import Any

import httpx
from django.conf import settings

from streams.core.points import Batch, Point
from streams.ingest.feeds.base import (
    FeedSettingsError,
    choice_setting,
    headers_setting,
    number_setting,
    parse_json,
    reject_unknown,
    safe_url,
    url_setting,
)
from streams.ingest.feeds.extract import BadPayload, ExtractingFeed, clean_extract
from streams.ingest.feeds.guarded import guarded_transport
from streams.ingest.feeds.http_errors import error_body, redact

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.1
# Read at most this much of an answer (after gzip/deflate decoding); a longer one is a bad
# payload and the rest is never read.
MAX_BODY_BYTES = 10 * 1024 * 1024
# A server asking for `Retry-After: 999999` should not silence a stream for days.
MAX_RETRY_AFTER = 3600.0


class PollError(ConnectionError):
    """The endpoint could not be read: down, too slow, or an HTTP error status.

    The message is safe to show and says what to check; `status` is the HTTP status, if any.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PollFeed(ExtractingFeed):
    kind = "poll"

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        reject_unknown(
            raw, {"url", "method", "body", "headers", "interval", "timeout", "stall_after", "extract"}
        )
        url = url_setting(raw, schemes=("http", "https"))
        method = choice_setting(raw, "method", choices=("GET", "POST"), default="GET")
        body = raw.get("body")
        if body is not None and method != "POST":
            raise FeedSettingsError("body", "only a POST sends a body: set method to POST")
        headers = headers_setting(raw)
        stall_after = raw.get("stall_after")
        return {
            "url": url,
            "method": method,
            "body": body,
            "headers": headers,
            "interval": number_setting(raw, "interval", default=5.0, minimum=MIN_INTERVAL, maximum=86_400),
            "timeout": number_setting(raw, "timeout", default=10.0, minimum=0.1, maximum=120),
            # None: three intervals (see stall_seconds).
            "stall_after": None
            if stall_after is None
            else number_setting(raw, "stall_after", default=60, minimum=1, maximum=86_400),
            "extract": clean_extract(raw.get("extract")),
        }

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.etag: str | None = None
        self.newest_t: float | None = None
        # The record ids (extract.id) emitted at newest_t: another record at that very time is
        # new (two trades in one millisecond). None: not known, so nothing more at that time.
        self.newest_keys: set[str] | None = None

    def resume_after(self, t: float) -> None:
        # After a restart the first answer repeats a window that is already stored.
        if self.newest_t is None or t > self.newest_t:
            self.newest_t = t
            self.newest_keys = None

    def describe(self) -> str:
        return safe_url(self.settings["url"])

    def stall_seconds(self) -> float:
        return self.settings["stall_after"] or max(3 * self.settings["interval"], 5.0)

    async def batches(self) -> AsyncIterator[Batch]:
        settings = self.settings
        async with httpx.AsyncClient(
            timeout=settings["timeout"], headers=settings["headers"], transport=guarded_transport()
        ) as client:
            next_at = time.monotonic()
            answered = False
            while True:
                batch = await self.poll_once(client)
                batch += self.extractor.flush(time.time())
                # The first answer is yielded even when empty: it tells the worker we are up.
                if batch or not answered:
                    answered = True
                    yield batch
                # Fixed rate, not fixed delay: a slow answer does not stretch the interval.
                next_at += settings["interval"]
                next_at = max(next_at, time.monotonic())
                await asyncio.sleep(next_at - time.monotonic())

    async def poll_once(self, client: httpx.AsyncClient) -> Batch:
        """One request; new points only. Raises PollError on network and HTTP errors (the
        worker backs off); counts and skips an answer that is not usable data."""
        where, timeout = self.describe(), self.settings["timeout"]
        try:
            # httpx's timeout bounds each read, so a server trickling a byte at a time would
            # never trip it: bound the whole request too.
            async with asyncio.timeout(timeout):
                answer = await self._fetch(client)
        except (TimeoutError, httpx.TimeoutException):
            raise PollError(
                f"no answer from {where} within {timeout:g} s (the timeout setting): the server is "
                "slow or unreachable; raise timeout if this API is just slow"
            ) from None
        except httpx.ConnectError as error:
            raise PollError(
                f"cannot connect to {where}: {self._reason(error)}; check that the server is up and "
                "that the url (http or https, host, port) is right"
            ) from None
        except httpx.HTTPError as error:
            # The server closed the connection mid-answer (it died or restarted), or similar.
            raise PollError(
                f"lost the connection to {where} before a whole answer: {type(error).__name__}: "
                f"{self._reason(error)}"
            ) from None
        if answer is None:
            return []
        raw, content_type, received_at = answer
        try:
            payload = parse_json(raw)
            points = self.extractor.points(payload, received_at=received_at)
        except BadPayload as error:
            self.skip(str(error))
            return []
        except json.JSONDecodeError as error:
            self.skip(f"not JSON ({content_type or 'no content type'}): {error}")
            return []
        except RecursionError:
            self.skip("JSON nested too deeply to read")
            return []
        except ValueError as error:
            # Not UTF-8, or an integer of over 4300 digits (Python's limit against slow
            # parsing); the second half of that message tells Python programmers how to lift it.
            self.skip(f"unreadable JSON: {str(error).partition(';')[0]}")
            return []
        return self._fresh(points, now=received_at)

    async def _fetch(self, client: httpx.AsyncClient) -> tuple[bytes, str, float] | None:
        """The body of a 2xx answer with its content type and arrival time; None for a 304 or
        an answer skipped as too big; PollError for other statuses."""
        settings = self.settings
        headers = {"If-None-Match": self.etag} if self.etag else {}
        body = settings["body"]
        async with client.stream(
            settings["method"],
            settings["url"],
            headers=headers,
            json=body if not isinstance(body, str) else None,
            content=body if isinstance(body, str) else None,
        ) as response:
            if response.status_code == 304:
                return None
            if not 200 <= response.status_code < 300:
                raise await self._refused(response)
            raw = await self._read_body(response)
            if raw is None:
                return None
            # Only an answer read whole may be skipped next time.
            self.etag = response.headers.get("ETag")
            return raw, response.headers.get("Content-Type", ""), time.time()

    async def _read_body(self, response: httpx.Response) -> bytes | None:
        """The whole body, or None (a bad payload) once it passes MAX_BODY_BYTES: leaving the
        stream unread closes the connection, so the rest is never downloaded."""
        limit = MAX_BODY_BYTES
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            self.skip(f"answer of {int(declared)} bytes is over the {limit}-byte limit; not read")
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    self.skip(f"answer is over the {limit}-byte limit; stopped reading it")
                    return None
                chunks.append(chunk)
        except httpx.DecodingError as error:
            self.skip(f"answer could not be decoded ({response.headers.get('Content-Encoding')}): {error}")
            return None
        return b"".join(chunks)

    def _fresh(self, points: Batch, *, now: float) -> Batch:
        """The points newer than the newest already emitted (windows overlap)."""
        # Points dated further ahead than LIVECHARTS_MAX_FUTURE_SECONDS are a wrong `time` or
        # `time_unit` or garbage, dropped by the worker anyway (streams/ingest/feeds/timeline.py); drop
        # them here, as the worker would, so one cannot hold back every later point here either,
        # since only points newer than the newest one emitted are emitted.
        ahead_seconds = settings.LIVECHARTS_MAX_FUTURE_SECONDS
        latest = now + ahead_seconds
        ahead = sum(1 for point in points if point.t > latest)
        if ahead:
            self.skip(
                f"{ahead} point(s) dated over {ahead_seconds} s ahead of this server's clock, dropped "
                "(LIVECHARTS_MAX_FUTURE_SECONDS): check extract.time and extract.time_unit"
            )
        newest_t, keys = self.newest_t, self.newest_keys

        def new(point: Point) -> bool:
            if newest_t is None or point.t > newest_t:
                return True
            # At the newest time already emitted: only a record with an id not seen there.
            key = point.key
            return point.t == newest_t and keys is not None and key is not None and key not in keys

        fresh = [point for point in points if point.t <= latest and new(point)]
        if fresh:
            top = max(point.t for point in fresh)
            at_top = {point.key for point in fresh if point.t == top and point.key is not None}
            if newest_t is not None and top == newest_t and keys is not None:
                keys |= at_top
            else:
                self.newest_keys = at_top
            self.newest_t = top
        return fresh

    async def _refused(self, response: httpx.Response) -> PollError:
        """The error for an answer that is not 2xx or 304, saying what to check."""
        status = response.status_code
        what = f"HTTP {status} {response.reason_phrase}".strip()
        where = self.describe()
        if 300 <= status < 400:
            location = response.headers.get("Location")
            if location:
                target = safe_url(str(response.url.join(location)))
                return PollError(
                    f"{where} answered {what}, moved to {target}: set url to the new address", status=status
                )
            return PollError(f"{where} answered {what} without a Location: check the url", status=status)
        retry = retry_after_seconds(response.headers.get("Retry-After"), now=time.time())
        if retry is not None:
            self.retry_after = retry
        if status in (401, 403):
            hint = (
                "check the API key or token (in headers, or in the url's query) and that it may "
                "read this endpoint"
            )
        elif status == 429:
            hint = "the API's rate limit was hit: raise interval"
            if retry is not None:
                hint += f" (it asked to wait {retry:g} s before trying again)"
        elif status in (404, 405, 410):
            hint = "check the url and method"
        elif status < 500:
            hint = "check the url, method, body and headers"
        else:
            hint = "the server has a problem; retrying with backoff"
        message = f"{where} answered {what}: {hint}"
        body = await error_body(response, url=self.settings["url"], headers=self.settings["headers"])
        if body:
            message += f"; body starts {body!r}"
        return PollError(message, status=status)

    def _reason(self, error: httpx.HTTPError) -> str:
        """What the OS or httpx said, plainly, with nothing we sent that is secret."""
        # httpx says "All connection attempts failed"; the OS error at the bottom says why.
        cause: BaseException | None = error
        os_error: OSError | None = None
        for _ in range(10):  # a chain is a few links; a cycle must not hang us
            if cause is None:
                break
            if isinstance(cause, OSError) and cause.errno is not None:
                os_error = cause
            cause = cause.__cause__ or cause.__context__
        if isinstance(os_error, ConnectionRefusedError):
            reason = "connection refused (nothing listens on that port)"
        elif isinstance(os_error, socket.gaierror):
            reason = f"host name not found ({os_error.strerror})"
        elif os_error is not None and os_error.strerror:
            reason = os_error.strerror
        else:
            reason = str(error) or type(error).__name__
        return redact(reason, url=self.settings["url"], headers=self.settings["headers"])


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), capped; None
    when absent, past or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)
