"""Real peer for the peers bench: a Bokeh server app streaming a `ColumnDataSource`.

    PEER_REDIS_URL=... PEER_PREFIX=... PEER_PERIOD_MS=100 \
        bokeh serve bench/peer_bokeh_app.py --port PORT --allow-websocket-origin 127.0.0.1:PORT

The pattern of Bokeh's streaming examples and user guide ("Updating from threads", periodic
callbacks): each session (each browser tab) gets its own Document with a line plot over a
`ColumnDataSource`, and `doc.add_periodic_callback` calls `source.stream(new, rollover)` every
PEER_PERIOD_MS with the points that arrived since the session's last one; Bokeh sends each
session a PATCH-DOC message over its websocket. The points come from one reader thread per
server process (started once, shared by all sessions: the docs' way to share a data source
between sessions), which follows the Redis stream of every chart a session shows
(bench/peer_feed.py XADDs one entry per 5 ms of points) and keeps its recent points in memory. The
chart a session shows is the `stream` argument of its request (a browser's
`/peer_bokeh_app?stream=S`, or the `arguments` of a bokeh.client token).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from bench.peer_feed import WINDOW, points_of, stream_key

KEEP = 50_000  # points kept per chart in memory; a session further behind skips to the newest


class Feed:
    """Every chart's recent points, read from Redis by one thread for all sessions."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client, self.prefix = redis.Redis.from_url(url), prefix
        self.lock = threading.Lock()
        # Per chart: (number of points dropped from the front, [(t, y), ...]).
        self.points: dict[str, tuple[int, list[tuple[float, float]]]] = {}
        self.last_ids: dict[str, bytes] = {}
        self.thread: threading.Thread | None = None

    def follow(self, stream: str) -> int:
        """Start following a chart (if not yet); the position a new session starts from."""
        with self.lock:
            if stream not in self.points:
                self.points[stream] = (0, [])
                self.last_ids[stream] = b"0-0"
            if self.thread is None:
                self.thread = threading.Thread(target=self.read, name="peer-feed", daemon=True)
                self.thread.start()
            dropped, points = self.points[stream]
            return dropped + len(points)

    def since(self, stream: str, position: int) -> tuple[int, list[tuple[float, float]]]:
        """(new position, points after `position`)."""
        with self.lock:
            dropped, points = self.points[stream]
            start = max(0, position - dropped)
            return dropped + len(points), points[start:]

    def read(self) -> None:
        while True:
            with self.lock:
                wanted = {stream_key(self.prefix, s): last for s, last in self.last_ids.items()}
            answer = self.client.xread(wanted, block=100, count=2_000)
            start = len(stream_key(self.prefix, ""))
            with self.lock:
                for key, entries in answer or ():
                    stream = key.decode()[start:]
                    dropped, points = self.points[stream]
                    times, values = points_of(entries)
                    points.extend(zip(times, values, strict=True))
                    self.last_ids[stream] = entries[-1][0]
                    if len(points) > KEEP:
                        cut = len(points) - KEEP // 2
                        self.points[stream] = (dropped + cut, points[cut:])


feed = Feed(
    os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"), os.environ.get("PEER_PREFIX", "bench")
)


def build(doc: Any) -> None:
    """One session's document: a line plot fed by a periodic callback."""
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    argument = doc.session_context.request.arguments.get("stream", [b""])[0]
    stream = argument.decode() if isinstance(argument, bytes) else str(argument)
    source = ColumnDataSource(data={"t": [], "y": []})
    plot = figure(x_axis_type="datetime", height=300, sizing_mode="stretch_width", title=stream)
    plot.line(x="t", y="y", source=source)
    position = feed.follow(stream)

    def update() -> None:
        nonlocal position
        position, points = feed.since(stream, position)
        if points:
            source.stream({"t": [t for t, _ in points], "y": [y for _, y in points]}, rollover=WINDOW)

    doc.add_root(plot)
    doc.add_periodic_callback(update, int(os.environ.get("PEER_PERIOD_MS", "100")))
