"""The simulate feed: sine waves, random walks and noise, for demos and load tests."""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from streams.core.points import Batch, Point
from streams.ingest.feeds.base import Feed, FeedSettingsError, choice_setting, number_setting, reject_unknown

SHAPES = ("sine", "walk", "noise")
SERIES_NAME = re.compile(r"^[\w .:/-]{1,64}$")
# Shared by the top level (defaults for every series) and each series object.
WAVE_KEYS = {"shape", "amplitude", "period", "offset", "noise"}
# Below this spacing points are grouped: a batch per ~50 ms is plenty for any tick.
MIN_BATCH_INTERVAL = 0.05
# After a stall (laptop asleep) do not replay more than this many seconds of points.
MAX_CATCH_UP_SECONDS = 5.0


class SimulateFeed(Feed):
    kind = "simulate"

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`clock` (epoch seconds) and `sleep` are the wall clock and the event loop's; tests pass
        their own to drive time, so what they check does not hang on when the loop wakes."""
        super().__init__(settings)
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        reject_unknown(raw, WAVE_KEYS | {"rate", "series", "seed"})
        defaults = _clean_wave(raw, fallback=None, prefix="")
        rate = number_setting(raw, "rate", default=10, minimum=1, maximum=1000)
        seed = raw.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FeedSettingsError("seed", f"must be an integer, not {seed!r}")
        series_raw = raw.get("series", ["value"])
        if not isinstance(series_raw, list) or not series_raw:
            raise FeedSettingsError("series", "must be a non-empty list of names or objects")
        if len(series_raw) > 20:
            raise FeedSettingsError("series", "at most 20 series per simulated stream")
        series: list[dict[str, Any]] = []
        for index, item in enumerate(series_raw):
            prefix = f"series[{index}]."
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, Mapping):
                raise FeedSettingsError(f"series[{index}]", "must be a name or an object")
            reject_unknown(item, WAVE_KEYS | {"name"}, prefix=prefix)
            name = item.get("name")
            if not isinstance(name, str) or not SERIES_NAME.match(name):
                raise FeedSettingsError(prefix + "name", "must be 1-64 letters, digits, spaces or ._:/-")
            if any(existing["name"] == name for existing in series):
                raise FeedSettingsError(prefix + "name", f"{name!r} is used twice")
            series.append({"name": name, **_clean_wave(item, fallback=defaults, prefix=prefix)})
        return {**defaults, "rate": rate, "seed": seed, "series": series}

    @classmethod
    def series_names(cls, settings: Mapping[str, Any]) -> list[str]:
        return [series["name"] for series in cls.clean_settings(settings)["series"]]

    # The newest stored point's time, when the stream ran a moment ago (resume_after).
    _resume_at: float | None = None

    def resume_after(self, t: float) -> None:
        self._resume_at = t

    async def batches(self) -> AsyncIterator[Batch]:
        rate = self.settings["rate"]
        waves = [
            _Wave(spec, index, self.settings["seed"]) for index, spec in enumerate(self.settings["series"])
        ]
        interval = max(1.0 / rate, MIN_BATCH_INTERVAL)
        start = self.clock()
        resume_at, self._resume_at = self._resume_at, None
        if resume_at is not None and start - MAX_CATCH_UP_SECONDS <= resume_at <= start:
            # Another worker ran the stream a moment ago (a hand-over, a takeover): go on one
            # step after its last point, so the stream has no gap and no point twice.
            start = resume_at
        emitted = 0
        while True:
            now = self.clock()
            due = int((now - start) * rate) - emitted
            if due > rate * MAX_CATCH_UP_SECONDS:
                # We were not scheduled for a while: skip ahead rather than flood.
                skipped = due - int(rate * MAX_CATCH_UP_SECONDS)
                emitted += skipped
                due -= skipped
            if due > 0:
                batch: Batch = []
                for offset in range(due):
                    t = start + (emitted + offset + 1) / rate
                    batch.append(Point(t=t, values={w.name: w.sample(t, 1.0 / rate) for w in waves}))
                emitted += due
                yield batch
            next_at = start + (emitted + max(1, round(interval * rate))) / rate
            await self.sleep(max(0.0, next_at - self.clock()))


def _clean_wave(raw: Mapping[str, Any], *, fallback: Mapping[str, Any] | None, prefix: str) -> dict[str, Any]:
    base = fallback or {"shape": "sine", "amplitude": 1.0, "period": 10.0, "offset": 0.0, "noise": 0.0}
    return {
        "shape": choice_setting(raw, "shape", choices=SHAPES, default=base["shape"], prefix=prefix),
        "amplitude": number_setting(raw, "amplitude", default=base["amplitude"], minimum=0, prefix=prefix),
        "period": number_setting(raw, "period", default=base["period"], minimum=0.01, prefix=prefix),
        "offset": number_setting(raw, "offset", default=base["offset"], prefix=prefix),
        "noise": number_setting(raw, "noise", default=base["noise"], minimum=0, prefix=prefix),
    }


class _Wave:
    """One series' generator; series are phase-shifted so they do not draw on top of each other."""

    def __init__(self, spec: Mapping[str, Any], index: int, seed: int | None) -> None:
        self.name: str = spec["name"]
        self.shape: str = spec["shape"]
        self.amplitude: float = spec["amplitude"]
        self.period: float = spec["period"]
        self.offset: float = spec["offset"]
        self.noise: float = spec["noise"]
        self.phase = index * math.pi / 3
        self.random = random.Random(None if seed is None else seed + index)
        self.level = self.offset

    def sample(self, t: float, dt: float) -> float:
        jitter = self.random.gauss(0.0, self.noise) if self.noise else 0.0
        if self.shape == "sine":
            value = self.offset + self.amplitude * math.sin(2 * math.pi * t / self.period + self.phase)
        elif self.shape == "walk":
            # Brownian steps scaled so the spread after one period is about one amplitude.
            self.level += self.random.gauss(0.0, self.amplitude * math.sqrt(dt / self.period))
            value = self.level
        else:
            value = self.offset + self.random.gauss(0.0, self.amplitude)
        return round(value + jitter, 6)
