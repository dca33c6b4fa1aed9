"""The poll feed: GET (or POST) a JSON endpoint every interval and map it to points.

For APIs that answer with a window (the last 60 one-minute candles), a point is emitted only
when its time is newer than the newest already emitted, so overlapping windows never repeat
a point. `ETag`/`If-None-Match` saves the body when nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from streams.feeds.base import Batch, Feed, FeedSettingsError, choice_setting, number_setting, reject_unknown
from streams.feeds.extract import BadPayload, Extractor

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.1
MAX_BODY_BYTES = 10 * 1024 * 1024


class PollError(ConnectionError):
    """The endpoint answered, but not with data (an HTTP error status)."""


class PollFeed(Feed):
    kind = "poll"
    label = "Poll a JSON endpoint over HTTP"

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        reject_unknown(raw, {"url", "method", "body", "headers", "interval", "timeout", "extract"})
        url = raw.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise FeedSettingsError("url", f"must be an http:// or https:// URL, not {url!r}")
        method = choice_setting(raw, "method", choices=("GET", "POST"), default="GET")
        body = raw.get("body")
        if body is not None and method != "POST":
            raise FeedSettingsError("body", "only a POST sends a body: set method to POST")
        headers = raw.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise FeedSettingsError("headers", "must be an object of header names to text values")
        return {
            "url": url,
            "method": method,
            "body": body,
            "headers": dict(headers),
            "interval": number_setting(raw, "interval", default=5.0, minimum=MIN_INTERVAL, maximum=86_400),
            "timeout": number_setting(raw, "timeout", default=10.0, minimum=0.1, maximum=120),
            "extract": Extractor.clean_settings(raw.get("extract")),
        }

    @classmethod
    def series_names(cls, settings: Mapping[str, Any]) -> list[str]:
        return Extractor.series_names(cls.clean_settings(settings)["extract"])

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.extractor = Extractor(self.settings["extract"])
        self.etag: str | None = None
        self.newest_t: float | None = None
        self.bad_payloads = 0

    async def batches(self) -> AsyncIterator[Batch]:
        settings = self.settings
        async with httpx.AsyncClient(timeout=settings["timeout"], headers=settings["headers"]) as client:
            next_at = time.monotonic()
            while True:
                batch = await self.poll_once(client)
                batch += self.extractor.flush(time.time())
                if batch:
                    yield batch
                # Fixed rate, not fixed delay: a slow answer does not stretch the interval.
                next_at += settings["interval"]
                next_at = max(next_at, time.monotonic())
                await asyncio.sleep(next_at - time.monotonic())

    async def poll_once(self, client: httpx.AsyncClient) -> Batch:
        """One request; new points only. Raises on network and HTTP errors (the worker backs off)."""
        settings = self.settings
        headers = {"If-None-Match": self.etag} if self.etag else {}
        body = settings["body"]
        response = await client.request(
            settings["method"],
            settings["url"],
            headers=headers,
            json=body if not isinstance(body, str) else None,
            content=body if isinstance(body, str) else None,
        )
        if response.status_code == 304:
            return []
        if response.status_code >= 400:
            raise PollError(f"HTTP {response.status_code} from {settings['url']}")
        if len(response.content) > MAX_BODY_BYTES:
            return self.skip(f"body of {len(response.content)} bytes is over {MAX_BODY_BYTES}")
        try:
            payload = response.json()
            points = self.extractor.points(payload, received_at=time.time())
        except (ValueError, BadPayload) as error:
            return self.skip(str(error))
        self.etag = response.headers.get("ETag")
        fresh = [point for point in points if self.newest_t is None or point.t > self.newest_t]
        if fresh:
            self.newest_t = max(point.t for point in fresh)
        return fresh

    def skip(self, reason: str) -> Batch:
        self.bad_payloads += 1
        # Sampled: the first few, then one in a hundred, so a broken API does not flood the log.
        if self.bad_payloads <= 3 or self.bad_payloads % 100 == 0:
            log.warning(
                "poll %s: bad payload #%d skipped: %s", self.settings["url"], self.bad_payloads, reason[:300]
            )
        return []
