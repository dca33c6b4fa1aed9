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

import httpx

from streams.feeds.base import (
    Batch,
    Feed,
    FeedSettingsError,
    choice_setting,
    headers_setting,
    number_setting,
    reject_unknown,
    safe_url,
    url_setting,
)
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

    def describe(self) -> str:
        return safe_url(self.settings["url"])

    def stall_seconds(self) -> float:
        return self.settings["stall_after"] or max(3 * self.settings["interval"], 5.0)

    async def batches(self) -> AsyncIterator[Batch]:
        settings = self.settings
        async with httpx.AsyncClient(timeout=settings["timeout"], headers=settings["headers"]) as client:
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
            raise PollError(f"HTTP {response.status_code} from {self.describe()}")
        if len(response.content) > MAX_BODY_BYTES:
            self.skip(f"body of {len(response.content)} bytes is over {MAX_BODY_BYTES}")
            return []
        try:
            payload = response.json()
            points = self.extractor.points(payload, received_at=time.time())
        except (ValueError, BadPayload) as error:
            self.skip(str(error))
            return []
        self.etag = response.headers.get("ETag")
        fresh = [point for point in points if self.newest_t is None or point.t > self.newest_t]
        if fresh:
            self.newest_t = max(point.t for point in fresh)
        return fresh
