""" "Test this feed": connect once with a stream's settings and report the first points, or the error.

Nothing is published: the points go to the admin page only, so the live stream is untouched
(a stream of the same slug keeps running in the worker meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.core.points import Point
from streams.ingest.feeds import build_feed

MAX_POINTS = 20
DEFAULT_SECONDS = 10.0
MAX_SECONDS = 30.0


@dataclass
class ProbeResult:
    points: list[Point] = field(default_factory=list)
    error: str | None = None
    connected: bool = False
    bad_payloads: int = 0
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def series(self) -> list[str]:
        names: dict[str, None] = {}
        for point in self.points:
            names.update(dict.fromkeys(point.values))
        return list(names)

    def rows(self) -> list[tuple[str, list[float | None]]]:
        """(UTC time to the millisecond, a value per series) for each point."""
        series = self.series
        return [
            (
                datetime.fromtimestamp(point.t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                [point.values.get(name) for name in series],
            )
            for point in self.points
        ]


def probe_seconds(settings: Mapping[str, Any]) -> float:
    """Long enough for one aggregation interval to close (and its grace to pass), within reason;
    `settings` are the feed's cleaned settings (Feed.settings)."""
    extract = settings.get("extract")
    aggregate = None if extract is None else extract.aggregate
    every = 0 if aggregate is None else aggregate.every
    grace = 0 if aggregate is None else aggregate.grace
    return min(MAX_SECONDS, max(DEFAULT_SECONDS, every * 1.5 + grace + 2))


async def probe(kind: str, settings: Mapping[str, Any], *, seconds: float | None = None) -> ProbeResult:
    """Run the feed until MAX_POINTS points, its first error, or `seconds` pass."""
    result = ProbeResult()
    started = time.monotonic()
    try:
        feed = build_feed(kind, settings)
    except Exception as error:
        result.error = f"bad feed settings: {error}"
        return result
    feed.slug = "(test)"
    budget = probe_seconds(feed.settings) if seconds is None else seconds
    batches = feed.batches()
    try:
        async with asyncio.timeout(budget):
            async for batch in batches:
                result.connected = True
                result.points.extend(batch[: MAX_POINTS - len(result.points)])
                if len(result.points) >= MAX_POINTS:
                    break
    except TimeoutError:
        result.timed_out = True
    except Exception as error:
        result.error = str(error) or type(error).__name__
    finally:
        with contextlib.suppress(Exception):
            await batches.aclose()
        result.bad_payloads = feed.bad_payloads
        result.seconds = time.monotonic() - started
    return result
