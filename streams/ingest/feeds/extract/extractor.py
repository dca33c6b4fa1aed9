"""The Extractor: one payload in, its points out (or buffered, when aggregating); and the base
of the feed kinds that hold one."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from streams.core.json_parse import parse_json
from streams.core.points import Point
from streams.core.times import DIVISORS, UNIT_BOUNDS, BadTime, parse_time
from streams.ingest.feeds.base import Feed
from streams.ingest.feeds.extract.aggregate import Aggregator, Row
from streams.ingest.feeds.extract.errors import BadPayload, show
from streams.ingest.feeds.extract.paths import Path, plain_fields, search
from streams.ingest.feeds.extract.records import select_records
from streams.ingest.feeds.extract.settings import MAX_SERIES_NAME, TIME_UNITS, ExtractSettings


class Extractor:
    """Cleaned `extract` settings at work: payloads in, points out (or buffered, when aggregating)."""

    def __init__(self, settings: ExtractSettings, *, on_drop: Callable[[str], None] | None = None) -> None:
        """`on_drop` is told why, once per record, when an aggregate drops one that came after
        its interval was closed (Feed.skip: counted in bad payloads, logged sampled)."""
        self.settings = settings
        self._time_numbers, self._time_iso = TIME_UNITS[settings.time_unit]
        self._counting = settings.aggregate is not None and settings.aggregate.how == "count"
        # Scaling by 1 and adding 0 changes nothing: skip it per point.
        self._identity_scale = settings.scale == 1 and settings.offset == 0
        self._aggregator = (
            None
            if settings.aggregate is None
            else Aggregator(settings.aggregate, scale=settings.scale, offset=settings.offset, on_drop=on_drop)
        )
        self._fast = (
            _fast_reader(settings, numbers=self._time_numbers, general=self._general_points)
            if self._identity_scale
            else None
        )
        # The plain reader once more, for points_from_json: it answers None where the one above
        # hands over, and for a number it reads that orjson may have read from a long integer.
        self._from_json = (
            None
            if self._fast is None
            else _fast_reader(settings, numbers=self._time_numbers, general=_no_points, limit=_LONG)
        )
        if self._fast is not None:
            # The usual settings: `points` is the plain reader itself (a call less a message,
            # at 100,000 messages/s), which hands what it does not plainly read to the rest.
            self.points = self._fast  # type: ignore[method-assign]

    @property
    def aggregating(self) -> bool:
        return self._aggregator is not None

    @property
    def dropped_late(self) -> int:
        """Records the aggregate dropped as too late (also reported through on_drop)."""
        return 0 if self._aggregator is None else self._aggregator.dropped_late

    def points(self, payload: Any, *, received_at: float, topic: str | None = None) -> list[Point]:
        """Points from one decoded payload (dict/list/number). Raises BadPayload with a short reason."""
        return self._general_points(payload, received_at=received_at, topic=topic)

    def points_from_json(
        self, text: str | bytes, *, received_at: float, topic: str | None = None
    ) -> list[Point]:
        """`points(parse_json(text))`, the same points and errors (ValueError or RecursionError
        when the text is no JSON, BadPayload when its payload does not fit), for feeds that
        parse a message only to extract it.

        parse_json looks through every message for numbers of 20 digits (orjson reads an integer
        past 64 bits as a float where `json.loads` keeps an int), about a third of its cost. With
        the plain reader that look is needed only when a number it reads could be one: a float
        of 2**63 or more either way. So orjson's parse is read as it is, and anything else (no
        plain reader, a message orjson refuses, such a number, a payload the plain reader would
        hand over) goes the way of parse_json and `points`."""
        read = self._from_json
        if read is not None:
            try:
                payload = orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
            else:
                points = read(payload, received_at=received_at, topic=topic)
                if points is not None:
                    return points
        return self.points(parse_json(text), received_at=received_at, topic=topic)

    def _general_points(self, payload: Any, *, received_at: float, topic: str | None = None) -> list[Point]:
        s = self.settings
        for decode in s.decode:
            payload = decode.apply(payload)
        records = select_records(payload, records=s.records, columns=s.columns)
        # Read every record before keeping any, so a bad payload is skipped whole.
        rows = [self._read_record(record, received_at=received_at, topic=topic) for record in records]
        if self._aggregator is not None:
            self._aggregator.add(rows)
            return []
        if s.columns:
            # A row of parallel arrays with nothing in it (a minute without trades, all
            # null) is no point, rather than a bad payload that would lose the window.
            rows = [row for row in rows if not _all_none(row[1])]
        if self._identity_scale:
            return [Point(t, values, key) for t, values, key in rows]
        scale, offset = s.scale, s.offset
        return [
            Point(t, {name: _scaled(v, scale=scale, offset=offset) for name, v in values.items()}, key)
            for t, values, key in rows
        ]

    def flush(self, now: float) -> list[Point]:
        """Aggregation only: points for every interval that closed by `now` (empty list otherwise)."""
        return [] if self._aggregator is None else self._aggregator.flush(now)

    def _read_record(self, record: Any, *, received_at: float, topic: str | None) -> Row:
        s = self.settings
        t = received_at
        if s.time is not None:
            raw_time = search(s.time, record, what="time")
            if raw_time is not None:
                try:
                    t = parse_time(raw_time, numbers=self._time_numbers, iso=self._time_iso)
                except BadTime as error:
                    raise BadPayload(f"time: {error}") from None

        counting = self._counting
        values: dict[str, float | None] = {}
        if s.values:
            for name, path in s.values.items():
                found = search(path, record, what=f"values.{name}")
                values[name] = _present(found) if counting else _number(found, what=f"values.{name}")
        else:
            name = self._series_name(record, topic=topic)
            if s.value is None:
                values[name] = 1.0
            else:
                found = search(s.value, record, what="value")
                values[name] = _present(found) if counting else _number(found, what="value")

        key = None if s.id is None else _record_key(search(s.id, record, what="id"))
        if _all_none(values):
            if counting or s.columns:
                # Counting with value paths: a record without them simply does not count. A
                # row of columns: a gap in the arrays (points() leaves it out).
                return t, values, key
            paths = [s.value, *(s.values or {}).values()]
            if not isinstance(record, (dict, list)) and any(
                path is not None and path.text != "@" for path in paths
            ):
                raise BadPayload(f"record is {show(record)}, not an object")
            raise BadPayload(f"no value in {show(record)}")
        return t, values, key

    def _series_name(self, record: Any, *, topic: str | None) -> str:
        s = self.settings
        if s.series_path is not None:
            found = search(s.series_path, record, what="series_path")
            if found is None or isinstance(found, (bool, dict, list)):
                raise BadPayload(f"series_path: no series name in {show(record)}")
            return _data_series_name(found, what="series_path")
        index = s.series_from_topic
        if index is not None:
            if topic is None:
                raise BadPayload("series_from_topic: this message has no topic")
            segments = topic.split("/")
            try:
                segment = segments[index]
            except IndexError:
                raise BadPayload(f"series_from_topic: topic {topic!r} has no segment {index}") from None
            return _data_series_name(segment, what="series_from_topic")
        assert s.series is not None  # cleaning names the one series when nothing else does
        return s.series


# An Extractor's `points`: a payload and the time it arrived in, its points out.
Reader = Callable[..., "list[Point]"]


# Floats of this size or more may be integers orjson read past 64 bits (points_from_json).
_LONG = 2.0**63


def _no_points(payload: Any, *, received_at: float, topic: str | None = None) -> None:
    """points_from_json's plain reader's `general`: None, for the way of parse_json and points."""
    return None


def _fast_reader(
    s: ExtractSettings, *, numbers: str | None, general: Reader, limit: float = math.inf
) -> Reader | None:
    """For the usual settings (one object per message, plain paths to a numeric time and to
    numbers, named series, no id, no scaling), a reader that does what points() does in a few
    dict look-ups: the general path costs about 3 us a message, most of it calls, which at
    100,000 messages/s is a third of a worker's core. What it does not plainly read (text,
    booleans, huge integers, a record without values...) it hands to `general`, the general
    path, which gives the same points or the same error; a float it reads of `limit` or more
    either way too (points_from_json's: a long integer orjson read as a float)."""
    plain = (
        not s.decode
        and s.records is None
        and not s.columns
        and s.aggregate is None
        and s.id is None
        and s.series_path is None
        and s.series_from_topic is None
        and numbers is not None
    )
    if not plain:
        return None
    if s.values:
        paths: dict[str, Path] = dict(s.values)
    elif s.value is not None and s.series is not None:
        paths = {s.series: s.value}
    else:
        return None
    if any(plain_fields(path.tree) is None for path in [*paths.values(), *([s.time] if s.time else [])]):
        return None  # a path the interpreter runs may raise (abs() of a string): general path
    # Each path as a look-up of the payload (a dict, checked first): a path of one field, the
    # usual one, is that field's dict.get in C; a deeper one is its search. A Python call per
    # path per message cost about a fifth of this reader.
    lookups = [(name, _lookup(path)) for name, path in paths.items()]
    find_time = None if s.time is None else _lookup(s.time)
    divisor = DIVISORS.get(numbers)  # None: told by size (auto)
    (s_bound, _), (ms_bound, ms), (us_bound, us) = UNIT_BOUNDS  # s, ms, us below each; ns above
    isfinite = math.isfinite
    get = dict.get

    def read(payload: Any, *, received_at: float, topic: str | None = None) -> list[Point]:
        if type(payload) is not dict:
            return general(payload, received_at=received_at, topic=topic)
        t = received_at
        if find_time is not None:
            raw = get(payload, find_time) if type(find_time) is str else find_time(payload)
            if raw is not None:
                if type(raw) is float:
                    if not -limit < raw < limit:  # not finite, or maybe a long integer
                        return general(payload, received_at=received_at, topic=topic)
                elif type(raw) is not int:
                    return general(payload, received_at=received_at, topic=topic)
                # As streams/core/times.py's _epoch_seconds reads a number.
                by = divisor
                if by is None:  # UNIT_BOUNDS written out: a loop over it cost 100 ns a message
                    size = abs(raw)
                    by = 1 if size < s_bound else ms if size < ms_bound else us if size < us_bound else 10**9
                try:
                    t = raw / by if by != 1 else float(raw)
                except OverflowError:
                    return general(payload, received_at=received_at, topic=topic)
                if not isfinite(t):
                    return general(payload, received_at=received_at, topic=topic)
        values: dict[str, float | None] = {}
        some = False
        for name, find in lookups:
            found = get(payload, find) if type(find) is str else find(payload)
            kind = type(found)
            if kind is float:
                if -limit < found < limit:
                    values[name] = found
                    some = True
                elif isfinite(found):  # only below an infinite limit: maybe a long integer
                    return general(payload, received_at=received_at, topic=topic)
                else:  # NaN and infinities are gaps, as _number reads them
                    values[name] = None
            elif kind is int:
                try:
                    number = float(found)
                except OverflowError:
                    return general(payload, received_at=received_at, topic=topic)
                values[name] = number if isfinite(number) else None
                some = True
            elif found is None:
                values[name] = None
            else:
                return general(payload, received_at=received_at, topic=topic)
        if not some:
            return general(payload, received_at=received_at, topic=topic)  # says why (or counts it)
        return [Point(t, values, None)]

    return read


def _lookup(path: Path) -> str | Callable[[Any], Any]:
    """A plain path's look-up in a dict payload: its one field's name, or its search."""
    fields = plain_fields(path.tree)
    return fields[0] if fields is not None and len(fields) == 1 else path.search


def _all_none(values: Mapping[str, float | None]) -> bool:
    # A loop rather than all(<generator>): this runs once per record.
    for value in values.values():  # noqa: SIM110
        if value is not None:
            return False
    return True


def _number(found: Any, *, what: str) -> float | None:
    if found is None:
        return None
    if isinstance(found, bool):
        raise BadPayload(f"{what}: {found!r} is a boolean, not a number")
    if isinstance(found, (int, float)):
        try:
            number = float(found)
        except OverflowError:  # a JSON integer of 309+ digits
            raise BadPayload(f"{what}: the number is too large") from None
    elif isinstance(found, str):
        try:
            number = float(found.strip())
        except ValueError:
            raise BadPayload(f"{what}: {show(found)} is not a number") from None
    else:
        raise BadPayload(f"{what}: {show(found)} is not a number")
    # NaN and infinities cannot be drawn nor sent as strict JSON: a gap, like null.
    return number if math.isfinite(number) else None


def _scaled(value: float | None, *, scale: float, offset: float) -> float | None:
    return None if value is None else value * scale + offset


def _record_key(found: Any) -> str | None:
    """A record's id as text (`extract.id`): 42, 42.0 and "42" are one id; none is None."""
    if found is None or isinstance(found, str):
        return found
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    if isinstance(found, float) and math.isfinite(found):
        return str(int(found)) if found.is_integer() else repr(found)
    raise BadPayload(f"id: {show(found)} is not an id (text or a number)")


def _present(found: Any) -> float | None:
    return None if found is None else 1.0


def _data_series_name(found: Any, *, what: str) -> str:
    name = found if isinstance(found, str) else str(found)
    if not 1 <= len(name) <= MAX_SERIES_NAME:
        raise BadPayload(f"{what}: series name {show(name)} is not 1-{MAX_SERIES_NAME} characters")
    return name


class ExtractingFeed(Feed):
    """A feed kind whose cleaned settings hold an ExtractSettings under `extract`: its series
    come from it, and its one Extractor lives as long as the feed, so an aggregation interval
    open when a connection drops is completed after the reconnect."""

    @classmethod
    def series_names(cls, settings: Mapping[str, Any]) -> list[str]:
        return cls.clean_settings(settings)["extract"].series_names

    @classmethod
    def settings_json(cls, cleaned: Mapping[str, Any]) -> dict[str, Any]:
        return {**cleaned, "extract": cleaned["extract"].as_json()}

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        # Records an aggregate drops as too late are counted with the bad payloads.
        self.extractor = Extractor(self.settings["extract"], on_drop=self.skip)
