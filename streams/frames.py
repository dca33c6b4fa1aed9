"""The wire format of points: one JSON text per stream batch, joined into frames unchanged.

A batch is encoded once (in broadcast, or once per backfill) and never re-encoded per socket.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from streams.feeds.base import Point

_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class Entry:
    """A point with its id, as history stores it."""

    id: str
    point: Point


def encode_batch(*, slug: str, prev: str | None, entries: Sequence[Entry]) -> str:
    """Columnar JSON for one stream's batch: `t` in ms since the epoch, `y` per series."""
    series: dict[str, list[float | None]] = {}
    times: list[float] = []
    for index, entry in enumerate(entries):
        times.append(round(entry.point.t * 1000, 3))
        for name, value in entry.point.values.items():
            column = series.get(name)
            if column is None:
                column = series[name] = [None] * index
            column.append(value)
        for column in series.values():
            if len(column) < index + 1:
                column.append(None)
    return _compact({"stream": slug, "prev": prev, "id": entries[-1].id, "t": times, "y": series})


def points_frame(batch_texts: Sequence[str]) -> str:
    return '{"op":"points","data":[' + ",".join(batch_texts) + "]}"


def encode(message: dict) -> str:
    return _compact(message)
