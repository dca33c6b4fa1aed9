"""The two latency histograms the hot path observes: broadcast to a socket's write, and a
subscribe's access check + backfill. /metrics (streams/web/metrics.py) exposes them."""

from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from typing import ParamSpec, TypeVar

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

P = ParamSpec("P")
R = TypeVar("R")


class LoopHistogram:
    """Bucket counts for one process's event loop: a bisect and an increment per observation
    (no lock: observed and read on the loop's thread), about a fifth of prometheus-client's
    Histogram.observe, which the fan-out would pay once per frame written."""

    def __init__(self, name: str, help_text: str, *, buckets: Sequence[float]) -> None:
        self.name, self.help_text = name, help_text
        self.bounds = sorted(map(float, buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        """`count` observations of `value` (a frame written to `count` sockets at once)."""
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
        self.counts[bisect_left(self.bounds, value)] += count
        self.sum += value * count

    @property
    def count(self) -> int:
        return sum(self.counts)

    def family(self) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip([*map(floatToGoString, self.bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(self.name, self.help_text, buckets=buckets, sum_value=self.sum)


BROADCAST_TO_SOCKET = LoopHistogram(
    "livecharts_broadcast_to_socket_seconds",
    "From broadcast (the oldest batch in the frame) to the frame written to a viewer's socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
)
SUBSCRIBE = LoopHistogram(
    "livecharts_subscribe_seconds",
    "From a subscribe message to its backfill handed to the socket (access, history, frames).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# The frame last observed and the broadcast time (ms) of its oldest batch: a frame shared by
# many sockets is parsed once. Held strongly, so `is` cannot match a new frame at a reused id.
_last_frame: tuple[object, int] | None = None
_ID_KEY = '"id":"'


def frame_sent(frame: object, texts: Sequence[str], count: int = 1) -> None:
    """Hook for the fan-out: a points frame holding these batch texts was written to a socket
    (to `count` sockets, a live lane's, just now).

    Observes broadcast-to-socket latency from the batch ids' times (the same clock as
    livecharts_stream_lag_seconds: ids are broadcast's ms since the epoch)."""
    global _last_frame
    if _last_frame is not None and _last_frame[0] is frame:
        oldest = _last_frame[1]
    else:
        oldest = oldest_batch_ms(texts)
        if oldest is None:
            return
        _last_frame = (frame, oldest)
    BROADCAST_TO_SOCKET.observe(max(0.0, time.time() - oldest / 1000), count)


def oldest_batch_ms(texts: Sequence[str]) -> int | None:
    """The smallest id time among batch texts as frames.batch_text writes them
    ({"stream": slug, "prev": id|null, "id": "<ms>-<seq>", ...}: slugs hold no quotes, so the
    first "id":" is the batch's own)."""
    oldest: int | None = None
    for text in texts:
        start = text.find(_ID_KEY)
        if start < 0:
            continue
        start += len(_ID_KEY)
        try:
            ms = int(text[start : text.index("-", start)])
        except ValueError:
            continue
        if oldest is None or ms < oldest:
            oldest = ms
    return oldest


def timed_subscribe(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorator for the consumer's subscribe handler: observes each subscribe that succeeds
    (one refused with an error frame is not a subscribe an operator waits on)."""

    @functools.wraps(handler)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        result = await handler(*args, **kwargs)
        SUBSCRIBE.observe(time.perf_counter() - started)
        return result

    return timed
