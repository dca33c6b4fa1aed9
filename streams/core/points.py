"""The shapes every layer shares: a point, and a point with its id (an entry)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Point:
    """One sample: a time (seconds since the epoch) and a value per named series.

    `key` is the source's id of the record (extract.id, a trade id): the time rules tell a
    repeat from a distinct record at the same time and value by it. It is not stored."""

    t: float
    values: Mapping[str, float | None]
    key: str | None = None


# What a feed yields at a time: the points it read together.
Batch = list[Point]


@dataclass(frozen=True, slots=True)
class Entry:
    """A point with its id, as history stores it."""

    id: str
    point: Point
