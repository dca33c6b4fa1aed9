"""The shapes every layer shares: a point, a point with its id (an entry), and a batch of entries."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

# Point and Entry are made once per point on the ingest path (100,000 a second) and are never
# changed once made: every layer treats them as values. They are not `frozen` only because a
# frozen dataclass's __init__ sets each field through object.__setattr__, about 4 times the
# cost of a plain one (530 against 140 ns a Point, measured here): assign to no field.


@dataclass(slots=True)
class Point:
    """One sample: a time (seconds since the epoch) and a value per named series.

    `key` is the source's id of the record (extract.id, a trade id): the time rules tell a
    repeat from a distinct record at the same time and value by it. It is not stored."""

    t: float
    values: Mapping[str, float | None]
    key: str | None = None


# What a feed yields at a time: the points it read together.
Batch = list[Point]


@dataclass(slots=True)
class Entry:
    """A point with its id, as history stores it."""

    id: str
    point: Point


class Entries(Sequence[Entry]):
    """A batch's entries as two parallel lists, ids and points: what broadcast hands history,
    viewers and the Persister each tick, without an Entry object per point (one is made only
    when one is asked for). `t` and `y`, each point's time and each series' values, are filled
    once by frames.times_and_columns and shared by every text made of the batch; `ms`, the
    times as the wire has them, by frames.fill_ms_times for a whole tick at once."""

    __slots__ = ("ids", "ms", "points", "t", "y")

    def __init__(self, ids: list[str], points: list[Point]) -> None:
        if len(ids) != len(points):
            raise ValueError(f"{len(ids)} ids for {len(points)} points")
        self.ids = ids
        self.points = points
        self.t: list[float] | None = None
        self.y: dict[str, list[float | None]] | None = None
        # A float64 array (a view of the tick's), read only by frames.batch_text.
        self.ms: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> Entries: ...

    def __getitem__(self, index: int | slice) -> Entry | Entries:
        if isinstance(index, slice):
            return Entries(self.ids[index], self.points[index])
        return Entry(self.ids[index], self.points[index])

    def __iter__(self) -> Iterator[Entry]:
        return map(Entry, self.ids, self.points)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Entries):
            return self.ids == other.ids and self.points == other.points
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Entries({list(self)!r})"

    @classmethod
    def joined(cls, parts: Sequence[Entries]) -> Entries:
        """The parts end to end, their times and columns too when every part has them for the
        same series (the columns of the whole are then theirs joined: frames.columns)."""
        chain = itertools.chain.from_iterable
        whole = cls(list(chain([part.ids for part in parts])), list(chain([part.points for part in parts])))
        first = parts[0].y
        names = None if first is None else list(first)
        if names is not None and all(part.y is not None and list(part.y) == names for part in parts):
            whole.t = list(chain([part.t for part in parts]))  # type: ignore[misc]
            whole.y = {name: list(chain([part.y[name] for part in parts])) for name in names}  # type: ignore[index]
        return whole


def ids_and_points(entries: Sequence[Entry]) -> tuple[list[str], list[Point]]:
    """The ids and the points of entries, as lists (those of an Entries as they are)."""
    if type(entries) is Entries:
        return entries.ids, entries.points
    return [entry.id for entry in entries], [entry.point for entry in entries]


def last_id(entries: Sequence[Entry]) -> str:
    """The id of the last of non-empty entries."""
    return entries.ids[-1] if type(entries) is Entries else entries[-1].id
