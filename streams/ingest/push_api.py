"""The push API below its view: the bearer token, the rate limit, and parsing a request body.

streams/web/views.py push_points is the thin HTTP view; the points it reads go to the stream's
inbox (streams/ingest/inbox.py), which the push feed drains (streams/ingest/feeds/push.py).
A request is all-or-nothing: every point is read before any is queued, and the first bad one is
named (`points[3].t: ...` or `line 4: ...`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from streams.core.points import Point
from streams.ingest.feeds.extract import BadPayload
from streams.ingest.feeds.push import PushFeed
from streams.models import PushToken

JSON_TYPES = ("application/json", "text/json")
NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/jsonlines",
    "application/x-jsonlines",
)
# A token's last_used is written at most this often: a busy pusher must not write a row a request.
LAST_USED_EVERY_SECONDS = 60


class PushRefused(Exception):
    """A request the API answers with an error: `status`, a short `code` and a message."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def bearer_token(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PushRefused(401, "unauthorized", "send the token as `Authorization: Bearer <token>`")
    return token.strip()


def active_push_token(authorization: str) -> PushToken:
    """The active token the header carries (sync: call through sync_to_async)."""
    token = bearer_token(authorization)
    found = PushToken.objects.active().filter(digest=PushToken.hash(token)).first()
    if found is None:
        raise PushRefused(401, "unauthorized", "the token is not valid (wrong, or revoked)")
    now = timezone.now()
    if found.last_used is None or (now - found.last_used).total_seconds() >= LAST_USED_EVERY_SECONDS:
        PushToken.objects.filter(pk=found.pk).update(last_used=now)
    return found


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per push token, in this process: `rate` requests a second, bursts of `burst`."""

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def check(self, key: str, *, now: float | None = None) -> None:
        """Take one request from `key`'s bucket, or raise a 429 PushRefused saying when to retry."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._buckets.clear()  # bounded: idle buckets are full anyway
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, at=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1:
            retry_after = (1 - bucket.tokens) / self.rate
            raise PushRefused(
                429,
                "rate_limited",
                f"over the limit of {self.rate:g} requests a second for this token; "
                f"retry in {retry_after:.1f} s",
                retry_after=retry_after,
            )
        bucket.tokens -= 1


def read_points(body: bytes, *, content_type: str, feed: PushFeed, received_at: float) -> list[Point]:
    """Every point of a request body, or PushRefused (400/413/415) naming the first bad one."""
    mime = content_type.partition(";")[0].strip().lower()
    if mime and mime not in JSON_TYPES + NDJSON_TYPES:
        raise PushRefused(
            415,
            "unsupported_media_type",
            f"send application/json or application/x-ndjson, not {mime!r}",
        )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PushRefused(400, "bad_request", f"the body is not UTF-8 (byte {error.start})") from None
    if not text.strip():
        raise PushRefused(400, "bad_request", "the body is empty: send a point, a list or NDJSON")
    if mime in NDJSON_TYPES:
        records = _ndjson_records(text)
    else:
        try:
            records = _json_records(_loads(text), where="")
        except _NotOneDocument:
            # Several JSON documents, one a line, sent as application/json: NDJSON after all.
            records = _ndjson_records(text)
    limit = settings.LIVECHARTS_PUSH_MAX_POINTS
    if len(records) > limit:
        raise PushRefused(413, "too_large", f"at most {limit} points a request, not {len(records)}")
    points: list[Point] = []
    for where, record in records:
        try:
            points.extend(feed.points(record, received_at=received_at))
        except BadPayload as error:
            raise PushRefused(400, "bad_request", f"{where}: {error}" if where else str(error)) from None
    if not points:
        raise PushRefused(400, "bad_request", "no points in the body")
    return points


class _NotOneDocument(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity; browsers' JSON.parse does not, so neither do we.
    raise ValueError(f"{name} is not JSON (use null for a missing value)")


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and "\n" in text.strip():
            raise _NotOneDocument from None
        raise PushRefused(
            400, "bad_request", f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:  # NaN/Infinity, and numbers too long for int() (5,000 digits)
        raise PushRefused(400, "bad_request", f"not JSON we accept: {error}") from None
    except RecursionError:
        raise PushRefused(400, "bad_request", "not JSON we accept: nested too deeply") from None


def _json_records(document: Any, *, where: str) -> list[tuple[str, Any]]:
    if isinstance(document, dict) and "points" in document:
        extra = sorted(str(key) for key in document if key != "points")
        if extra:
            raise PushRefused(400, "bad_request", f"{extra[0]}: unknown field beside `points`")
        document = document["points"]
        if not isinstance(document, list):
            raise PushRefused(400, "bad_request", "points: must be a list")
        return [(f"points[{index}]", record) for index, record in enumerate(document)]
    if isinstance(document, list):
        return [(f"points[{index}]", record) for index, record in enumerate(document)]
    return [(where, document)]


def _ndjson_records(text: str) -> list[tuple[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except PushRefused as refused:
            raise PushRefused(400, "bad_request", f"line {number}: {refused.message}") from None
        except _NotOneDocument:  # cannot happen for one line; kept for the type checker
            raise PushRefused(400, "bad_request", f"line {number}: not one JSON value") from None
        records.append((f"line {number}", record))
    return records


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it is not refused again."""
    return str(max(1, math.ceil(seconds)))
