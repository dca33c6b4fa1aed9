"""Map one decoded JSON payload to points: the one place every feed kind does it.

Paths are JMESPath (https://jmespath.org, the `jmespath` library the AWS CLI uses for --query),
not a home-made language: it has one maintained spec with a compliance test suite and ports in
many languages (so what an operator learns or tests elsewhere holds here), functions such as
`to_number()`, projections and filters for picking lists (`data.candles[*]`, `[?type=='trade']`),
and each expression is compiled once, when the settings are cleaned, then only evaluated.

What JMESPath cannot do is parse a JSON string nested in the payload (StackExchange sends
`{"action": ..., "data": "<JSON text>"}`); the `decode` setting names such fields and decodes
them before any other path runs. Nor can it zip parallel arrays (Yahoo Finance's chart JSON:
`timestamp[]` beside `indicators.quote[0].close[]`): the `columns` setting names such arrays
and turns them into one record per index, `{name: item, ...}`, for the other paths to read.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

from streams.core.points import Point
from streams.ingest.feeds.base import Feed, FeedSettingsError, choice_setting, number_setting, reject_unknown
from streams.ingest.feeds.timeline import utc_text

PREFIX = "extract."
KEYS = {
    "records",
    "decode",
    "columns",
    "id",
    "time",
    "time_unit",
    "value",
    "series",
    "values",
    "series_path",
    "series_from_topic",
    "scale",
    "offset",
    "aggregate",
}
TIME_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
AGGREGATES = ("count", "sum", "mean", "min", "max")
MAX_RECORDS = 10_000
MAX_SERIES_NAME = 64
# `auto` reads an epoch number by its size: below 1e11 seconds (up to the year 5138), below
# 1e14 milliseconds, below 1e17 microseconds, else nanoseconds. Each bound is the year 5138
# in the smaller unit and March 1973 in the larger, so every time from 1973 to 5138 reads right
# in any of the four units; an earlier one needs `time_unit`.
UNIT_BOUNDS = ((1e11, 1), (1e14, 1_000), (1e17, 1_000_000))
DIVISORS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
# Records far in the future (a wrong time_unit) would keep intervals open forever: cap them.
MAX_OPEN_INTERVALS = 10_000
# How long an aggregation interval stays open after its end for records that come late, when
# they carry their own time (`time`): event streams deliver a second or so after an event's
# timestamp (Wikimedia's recentchange about 1 s). Records stamped on arrival are never late.
DEFAULT_GRACE_SECONDS = 5.0
MAX_GRACE_SECONDS = 3_600.0
_FUNCTIONS = Functions().FUNCTION_TABLE


class BadPayload(ValueError):
    """A payload that does not fit the extract settings; the feed counts and skips it."""


class Extractor:
    """Compiled `extract` settings of one feed: payloads in, points out (or buffered, when aggregating)."""

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate the `extract` settings object of a feed; every expression is compiled here.

        Returns a plain JSON-able dict with defaults filled; cleaning it again gives the same dict.
        """
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise FeedSettingsError("extract", "must be an object")
        reject_unknown(raw, KEYS, prefix=PREFIX)
        # null means "the default" for every key, so a normalized dict cleans to itself.
        raw = {key: value for key, value in raw.items() if value is not None}

        aggregate = _clean_aggregate(raw.get("aggregate"), timed="time" in raw)
        counting = aggregate is not None and aggregate["how"] == "count"

        values = raw.get("values")
        series_path = raw.get("series_path")
        series_from_topic = raw.get("series_from_topic")
        value = raw.get("value")
        series = raw.get("series")
        if values is not None:
            for other in ("value", "series", "series_path", "series_from_topic"):
                if other in raw:
                    raise FeedSettingsError(PREFIX + other, "cannot be used with values")
            if not isinstance(values, Mapping) or not values:
                raise FeedSettingsError(PREFIX + "values", "must be an object of series name: path")
            for name, path in values.items():
                _check_series_name(name, key=PREFIX + "values")
                _compile(path, key=f"{PREFIX}values.{name}")
            values = dict(values)
        else:
            if series_path is not None and series_from_topic is not None:
                raise FeedSettingsError(PREFIX + "series_from_topic", "cannot be used with series_path")
            if series is not None and (series_path is not None or series_from_topic is not None):
                raise FeedSettingsError(
                    PREFIX + "series", "cannot be used with series_path or series_from_topic"
                )
            if series_path is not None:
                _compile(series_path, key=PREFIX + "series_path")
            if series_from_topic is not None and (
                isinstance(series_from_topic, bool) or not isinstance(series_from_topic, int)
            ):
                raise FeedSettingsError(
                    PREFIX + "series_from_topic", f"must be an integer index, not {series_from_topic!r}"
                )
            if series_path is None and series_from_topic is None:
                series = "value" if series is None else series
                _check_series_name(series, key=PREFIX + "series")
            # Counting needs no number: each record counts one unless a value path is given.
            if value is None and not counting:
                value = "@"
            if value is not None:
                _compile(value, key=PREFIX + "value")

        for key in ("records", "time", "id"):
            if key in raw:
                _compile(raw[key], key=PREFIX + key)
        if "id" in raw and aggregate is not None:
            raise FeedSettingsError(
                PREFIX + "id", "cannot be used with aggregate (its points are counts of records, not records)"
            )
        columns = raw.get("columns")
        if columns is not None:
            if not isinstance(columns, Mapping) or not columns:
                raise FeedSettingsError(
                    PREFIX + "columns", "must be an object of column name: path to a list, like {t: time}"
                )
            for name, path in columns.items():
                if not isinstance(name, str) or not 1 <= len(name) <= MAX_SERIES_NAME:
                    raise FeedSettingsError(
                        PREFIX + "columns", f"names are text of 1-{MAX_SERIES_NAME} characters, not {name!r}"
                    )
                _compile(path, key=f"{PREFIX}columns.{name}")
            columns = dict(columns)
        decode = raw.get("decode", [])
        if not isinstance(decode, list):
            raise FeedSettingsError(PREFIX + "decode", "must be a list of paths")
        for index, path in enumerate(decode):
            _decode_steps(_compile(path, key=f"{PREFIX}decode[{index}]"), key=f"{PREFIX}decode[{index}]")

        return {
            "records": raw.get("records"),
            "decode": list(decode),
            "columns": columns,
            "id": raw.get("id"),
            "time": raw.get("time"),
            "time_unit": choice_setting(raw, "time_unit", choices=TIME_UNITS, default="auto", prefix=PREFIX),
            "value": value,
            "series": series,
            "values": values,
            "series_path": series_path,
            "series_from_topic": series_from_topic,
            "scale": number_setting(raw, "scale", default=1, prefix=PREFIX),
            "offset": number_setting(raw, "offset", default=0, prefix=PREFIX),
            "aggregate": aggregate,
        }

    @classmethod
    def series_names(cls, settings: Mapping[str, Any] | None) -> list[str]:
        """Series known before any data arrives; names read from records or topics are not."""
        cleaned = cls.clean_settings(settings)
        if cleaned["values"] is not None:
            return list(cleaned["values"])
        return [cleaned["series"]] if cleaned["series"] is not None else []

    def __init__(
        self, settings: Mapping[str, Any] | None, *, on_drop: Callable[[str], None] | None = None
    ) -> None:
        """`on_drop` is told why, once per record, when an aggregate drops one that came after
        its interval was closed (Feed.skip: counted in bad payloads, logged sampled)."""
        self.settings = self.clean_settings(settings)
        self.on_drop = on_drop
        s = self.settings
        # Cleaning compiled every path already; these come from the same cache (_parse).
        self._records = _maybe_compile(s["records"])
        self._decode = [_decode_steps(_parsed(path), key="") for path in s["decode"]]
        self._columns = {name: _path(path) for name, path in (s["columns"] or {}).items()}
        self._id = _maybe_compile(s["id"])
        self._time = _maybe_compile(s["time"])
        self._value = _maybe_compile(s["value"])
        self._values = {name: _path(path) for name, path in (s["values"] or {}).items()}
        self._series_path = _maybe_compile(s["series_path"])
        aggregate = s["aggregate"]
        # Scaling by 1 and adding 0 changes nothing: skip it per point.
        self._identity_scale = s["scale"] == 1 and s["offset"] == 0
        self._every: float = aggregate["every"] if aggregate else 0.0
        self._how: str = aggregate["how"] if aggregate else ""
        self._grace: float = aggregate["grace"] if aggregate else 0.0
        # Records an aggregate dropped as too late (also reported through on_drop).
        self.dropped_late = 0
        # interval index -> series -> [count, sum, min, max]
        self._open: dict[int, dict[str, list[float]]] = {}
        # Intervals below this index were flushed already.
        self._flushed_before: int | None = None
        # Series seen so far: a count or sum of nothing in an active interval is 0, not a gap.
        self._seen: dict[str, None] = {}

    @property
    def aggregating(self) -> bool:
        return self.settings["aggregate"] is not None

    def points(self, payload: Any, *, received_at: float, topic: str | None = None) -> list[Point]:
        """Points from one decoded payload (dict/list/number). Raises BadPayload with a short reason."""
        for steps in self._decode:
            payload = _decode_at(payload, steps)
        records = self._select_records(payload)
        # Read every record before keeping any, so a bad payload is skipped whole.
        rows = [self._read_record(record, received_at=received_at, topic=topic) for record in records]
        if not self.aggregating:
            if self._columns:
                # A row of parallel arrays with nothing in it (a minute without trades, all
                # null) is no point, rather than a bad payload that would lose the window.
                rows = [row for row in rows if not _all_none(row[1])]
            if self._identity_scale:
                return [Point(t, values, key) for t, values, key in rows]
            scale, offset = self.settings["scale"], self.settings["offset"]
            return [
                Point(t, {name: _scaled(v, scale=scale, offset=offset) for name, v in values.items()}, key)
                for t, values, key in rows
            ]
        self._buffer(rows)
        return []

    def flush(self, now: float) -> list[Point]:
        """Aggregation only: points for every interval that closed by `now` (empty list otherwise)."""
        if not self.aggregating:
            return []
        # An interval stays open `grace` seconds past its end for records that come late.
        before = self._interval(now - self._grace)
        if self._flushed_before is None or before > self._flushed_before:
            self._flushed_before = before
        closed = sorted(index for index in self._open if index < before)
        scale, offset = self.settings["scale"], self.settings["offset"]
        points = []
        for index in closed:
            cells = self._open.pop(index)
            values: dict[str, float | None] = {}
            for name in self._seen:
                cell = cells.get(name)
                if cell is not None:
                    values[name] = _aggregate(cell, how=self._how) * scale + offset
                elif self._how in ("count", "sum"):
                    values[name] = offset  # zero, scaled
            points.append(Point(t=(index + 1) * self._every, values=values))
        return points

    def _interval(self, t: float) -> int:
        # The same floor for records and for `now`, so float rounding cannot split them.
        return math.floor(t / self._every)

    def _buffer(self, rows: list[tuple[float, dict[str, float | None], str | None]]) -> None:
        counting = self._how == "count"
        for t, values, _ in rows:
            index = self._interval(t)
            # A record for an interval already flushed (later than the grace) is dropped: its
            # point is out, and a second point for the same time would draw as a spike. Said
            # and counted per record, as a bad payload: never silently.
            if self._flushed_before is not None and index < self._flushed_before:
                self._dropped_late(t, index=index)
                continue
            if index not in self._open and len(self._open) >= MAX_OPEN_INTERVALS:
                raise BadPayload(f"more than {MAX_OPEN_INTERVALS} intervals waiting to close; check time")
            cells = self._open.setdefault(index, {})
            for name, value in values.items():
                if value is None:
                    continue
                self._seen.setdefault(name, None)
                amount = 1.0 if counting else value
                cell = cells.get(name)
                if cell is None:
                    cells[name] = [1, amount, amount, amount]
                else:
                    cell[0] += 1
                    cell[1] += amount
                    cell[2] = min(cell[2], amount)
                    cell[3] = max(cell[3], amount)

    def _dropped_late(self, t: float, *, index: int) -> None:
        self.dropped_late += 1
        if self.on_drop is not None:
            end = (index + 1) * self._every
            self.on_drop(
                f"aggregate: a record at {utc_text(t)} came after its interval (to {utc_text(end)}) "
                f"was closed {self._grace:g} s past its end; not counted: raise extract.aggregate.grace "
                "if the source is often this late"
            )

    def _select_records(self, payload: Any) -> list[Any]:
        if self._records is None:
            records = payload if isinstance(payload, list) else [payload]
        else:
            found = _search(self._records, payload, what="records")
            if found is None:
                raise BadPayload(f"records: {self.settings['records']} found nothing in {_show(payload)}")
            records = found if isinstance(found, list) else [found]
        if self._columns:
            records = self._rows(records)
        if len(records) > MAX_RECORDS:
            raise BadPayload(f"{len(records)} records in one payload, at most {MAX_RECORDS}")
        return records

    def _rows(self, records: list[Any]) -> list[dict[str, Any]]:
        """The parallel arrays `columns` finds in each record, zipped: one row per index."""
        rows: list[dict[str, Any]] = []
        names = list(self._columns)
        for record in records:
            found = [_search(path, record, what=f"columns.{name}") for name, path in self._columns.items()]
            if all(column is None for column in found):
                continue  # a record without the arrays (an empty result): no rows
            for name, column in zip(names, found, strict=True):
                if not isinstance(column, list):
                    what = "found nothing" if column is None else f"found {_show(column)}, not a list,"
                    raise BadPayload(f"columns.{name}: {what} in {_show(record)}")
            lengths = {len(column) for column in found}
            if len(lengths) > 1:
                sizes = ", ".join(f"{name} {len(column)}" for name, column in zip(names, found, strict=True))
                raise BadPayload(f"columns: parallel arrays of different lengths ({sizes}); they must match")
            if len(rows) + len(found[0]) > MAX_RECORDS:
                raise BadPayload(f"over {MAX_RECORDS} rows of columns in one payload")
            rows += [dict(zip(names, items, strict=True)) for items in zip(*found, strict=True)]
        return rows

    def _read_record(
        self, record: Any, *, received_at: float, topic: str | None
    ) -> tuple[float, dict[str, float | None], str | None]:
        t = received_at
        if self._time is not None:
            raw_time = _search(self._time, record, what="time")
            if raw_time is not None:
                t = _parse_time(raw_time, unit=self.settings["time_unit"])

        counting = self._how == "count"
        values: dict[str, float | None] = {}
        if self._values:
            for name, expression in self._values.items():
                found = _search(expression, record, what=f"values.{name}")
                values[name] = _present(found) if counting else _number(found, what=f"values.{name}")
        else:
            name = self._series_name(record, topic=topic)
            if self._value is None:
                values[name] = 1.0
            else:
                found = _search(self._value, record, what="value")
                values[name] = _present(found) if counting else _number(found, what="value")

        key = None if self._id is None else _record_key(_search(self._id, record, what="id"))
        if _all_none(values):
            if counting or self._columns:
                # Counting with value paths: a record without them simply does not count. A
                # row of columns: a gap in the arrays (points() leaves it out).
                return t, values, key
            paths = [self.settings["value"], *(self.settings["values"] or {}).values()]
            if not isinstance(record, (dict, list)) and any(path not in (None, "@") for path in paths):
                raise BadPayload(f"record is {_show(record)}, not an object")
            raise BadPayload(f"no value in {_show(record)}")
        return t, values, key

    def _series_name(self, record: Any, *, topic: str | None) -> str:
        if self._series_path is not None:
            found = _search(self._series_path, record, what="series_path")
            if found is None or isinstance(found, (bool, dict, list)):
                raise BadPayload(f"series_path: no series name in {_show(record)}")
            return _data_series_name(found, what="series_path")
        index = self.settings["series_from_topic"]
        if index is not None:
            if topic is None:
                raise BadPayload("series_from_topic: this message has no topic")
            segments = topic.split("/")
            try:
                segment = segments[index]
            except IndexError:
                raise BadPayload(f"series_from_topic: topic {topic!r} has no segment {index}") from None
            return _data_series_name(segment, what="series_from_topic")
        return self.settings["series"]


def _clean_aggregate(raw: Any, *, timed: bool) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise FeedSettingsError(PREFIX + "aggregate", "must be an object like {every: 10, how: count}")
    prefix = PREFIX + "aggregate."
    reject_unknown(raw, {"every", "how", "grace"}, prefix=prefix)
    raw = {key: value for key, value in raw.items() if value is not None}
    return {
        "every": number_setting(raw, "every", default=10, minimum=0.1, maximum=86_400, prefix=prefix),
        "how": choice_setting(raw, "how", choices=AGGREGATES, default="count", prefix=prefix),
        "grace": number_setting(
            raw,
            "grace",
            default=DEFAULT_GRACE_SECONDS if timed else 0.0,
            minimum=0,
            maximum=MAX_GRACE_SECONDS,
            prefix=prefix,
        ),
    }


def _compile(path: Any, *, key: str) -> ParsedResult:
    if not isinstance(path, str) or not path.strip():
        raise FeedSettingsError(key, f"must be a JMESPath expression (text), not {path!r}")
    expression = _parse(path)
    if isinstance(expression, str):
        raise FeedSettingsError(key, expression)
    return expression


# Settings are cleaned more than once (the feed's clean_settings, then the Extractor's, and
# for the page's series names): each expression is compiled once per process all the same.
@functools.lru_cache(maxsize=4096)
def _parse(path: str) -> ParsedResult | str:
    """The compiled expression, or why it is refused."""
    try:
        expression = jmespath.compile(path)
    except jmespath_errors.JMESPathError as error:
        return str(error)
    # jmespath only finds unknown functions and wrong argument counts when it runs: find them now.
    problem = _function_problem(expression.parsed)
    return expression if problem is None else problem


def _parsed(path: str) -> ParsedResult:
    """An expression cleaning accepted already."""
    expression = _parse(path)
    assert not isinstance(expression, str), expression
    return expression


@functools.lru_cache(maxsize=4096)
def _path(path: str) -> _Path:
    return _Path(_parsed(path))


def _maybe_compile(path: str | None) -> _Path | None:
    return None if path is None else _path(path)


# Shared by every search: jmespath's ParsedResult.search builds a new interpreter (and its
# function table) per call, a third of the cost of a simple path. The interpreter keeps no
# state between searches.
_INTERPRETER = TreeInterpreter()


class _Path:
    """A compiled expression, searched the way jmespath does. A plain field path (`price`,
    `data.last`, `@`) is followed with dict lookups, as jmespath's field and subexpression
    nodes do, without walking the tree; anything else goes through the interpreter."""

    __slots__ = ("search",)

    def __init__(self, expression: ParsedResult) -> None:
        parsed = expression.parsed
        fields = _plain_fields(parsed)
        self.search: Callable[[Any], Any]
        if fields is None:
            self.search = functools.partial(_INTERPRETER.visit, parsed)
        elif not fields:
            self.search = _itself
        elif len(fields) == 1:
            self.search = functools.partial(_field, fields[0])
        else:
            self.search = functools.partial(_fields, fields)


def _itself(data: Any) -> Any:
    return data


def _field(name: str, data: Any) -> Any:
    # jmespath: a field of anything but an object is null.
    return data.get(name) if isinstance(data, dict) else None


def _fields(names: list[str], data: Any) -> Any:
    for name in names:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def _plain_fields(node: Mapping[str, Any]) -> list[str] | None:
    """The field names of a path made of fields only (`a.b.c`; `@` is none), else None."""
    kind = node["type"]
    if kind in ("current", "identity"):
        return []
    if kind == "field":
        return [node["value"]]
    if kind == "subexpression":
        names: list[str] = []
        for child in node["children"]:
            more = _plain_fields(child)
            if more is None:
                return None
            names += more
        return names
    return None


def _all_none(values: Mapping[str, float | None]) -> bool:
    # A loop rather than all(<generator>): this runs once per record.
    for value in values.values():  # noqa: SIM110
        if value is not None:
            return False
    return True


def _function_problem(node: Mapping[str, Any]) -> str | None:
    """What is wrong with the function calls in an expression, if anything."""
    if node.get("type") == "function_expression":
        name = node["value"]
        spec = _FUNCTIONS.get(name)
        if spec is None:
            return f"Unknown function: {name}()"
        signature = spec["signature"]
        given = len(node["children"])
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if given < len(signature) or (given > len(signature) and not variadic):
            return f"{name}() takes {len(signature)}{' or more' if variadic else ''} arguments, not {given}"
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            problem = _function_problem(child)
            if problem is not None:
                return problem
    return None


def _decode_steps(expression: ParsedResult, *, key: str) -> list[tuple[str, Any]]:
    """A decode path as steps we can write back through: fields, [n] and [*] only."""
    steps: list[tuple[str, Any]] = []

    def walk(node: Mapping[str, Any]) -> None:
        kind = node["type"]
        if kind in ("current", "identity"):
            return
        if kind == "field":
            steps.append(("field", node["value"]))
        elif kind == "index":
            steps.append(("index", node["value"]))
        elif kind in ("subexpression", "index_expression"):
            for child in node["children"]:
                walk(child)
        elif kind == "projection":
            left, right = node["children"]
            walk(left)
            steps.append(("each", None))
            walk(right)
        else:
            raise FeedSettingsError(key, "must be a plain path like data or data.items[*].body")

    walk(expression.parsed)
    return steps


def _decode_at(data: Any, steps: list[tuple[str, Any]]) -> Any:
    """`data` with the JSON string at `steps` decoded; copies what it changes, never the caller's."""
    if not steps:
        if not isinstance(data, str):
            return data
        try:
            return json.loads(data)
        except ValueError:
            raise BadPayload(f"decode: {_show(data)} is not JSON") from None
    (kind, arg), rest = steps[0], steps[1:]
    if kind == "field":
        if not isinstance(data, dict) or arg not in data:
            return data
        return {**data, arg: _decode_at(data[arg], rest)}
    if not isinstance(data, list):
        return data
    if kind == "index":
        if not -len(data) <= arg < len(data):
            return data
        copy = list(data)
        copy[arg] = _decode_at(data[arg], rest)
        return copy
    return [_decode_at(item, rest) for item in data]


def _search(expression: _Path, data: Any, *, what: str) -> Any:
    try:
        return expression.search(data)
    except jmespath_errors.JMESPathError as error:
        # Type errors (abs() of a string) depend on the data, so they are the payload's fault.
        raise BadPayload(f"{what}: {error}") from None


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
            raise BadPayload(f"{what}: {_show(found)} is not a number") from None
    else:
        raise BadPayload(f"{what}: {_show(found)} is not a number")
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
    raise BadPayload(f"id: {_show(found)} is not an id (text or a number)")


def _present(found: Any) -> float | None:
    return None if found is None else 1.0


def parse_time(raw: Any, *, unit: str = "auto") -> float:
    """Seconds since the epoch from a number of s, ms, µs or ns (auto: by size, see
    UNIT_BOUNDS), or from ISO 8601 text.

    Raises BadPayload saying what was wrong; shared with the push API's own point format.
    """
    return _parse_time(raw, unit=unit)


def _parse_time(raw: Any, *, unit: str) -> float:
    if isinstance(raw, bool):
        raise BadPayload(f"time: {raw!r} is a boolean, not a time")
    if isinstance(raw, str) and unit != "iso":
        try:
            raw = float(raw.strip())
        except ValueError:
            if unit != "auto":
                raise BadPayload(f"time: {_show(raw)} is not a number of {unit}") from None
    if isinstance(raw, (int, float)):
        if unit == "iso":
            raise BadPayload(f"time: {raw!r} is a number, not an ISO 8601 time")
        t = epoch_seconds(raw, unit=unit)
        if not math.isfinite(t):
            raise BadPayload(f"time: {_show(raw)} is not a finite number")
        return t
    if isinstance(raw, str):
        text = raw.strip()
        # fromisoformat takes Z from 3.11 on; the replace keeps a lower-case z working too.
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise BadPayload(f"time: {_show(raw)} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise BadPayload(f"time: {_show(raw)} is not a time")


def epoch_seconds(number: float, *, unit: str = "auto") -> float:
    """Seconds from an epoch number in `unit` (auto: by size). Raises BadPayload when too large."""
    divisor = DIVISORS.get(unit)
    if divisor is None:  # auto
        size = abs(number)
        divisor = 1_000_000_000
        for bound, by in UNIT_BOUNDS:
            if size < bound:
                divisor = by
                break
    try:
        # An int over an int is rounded once, so nanoseconds keep what a float can hold.
        return number / divisor if divisor != 1 else float(number)
    except OverflowError:  # an integer of 309+ digits
        raise BadPayload("time: the number is too large") from None


def _aggregate(cell: list[float], *, how: str) -> float:
    count, total, low, high = cell
    if how == "count":
        return float(count)
    if how == "sum":
        return total
    if how == "mean":
        return total / count
    return low if how == "min" else high


def _check_series_name(name: Any, *, key: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_SERIES_NAME:
        raise FeedSettingsError(key, f"series names are text of 1-{MAX_SERIES_NAME} characters, not {name!r}")


def _data_series_name(found: Any, *, what: str) -> str:
    name = found if isinstance(found, str) else str(found)
    if not 1 <= len(name) <= MAX_SERIES_NAME:
        raise BadPayload(f"{what}: series name {_show(name)} is not 1-{MAX_SERIES_NAME} characters")
    return name


def _show(data: Any) -> str:
    """Some data, short and on one line, for a reason the feed logs."""
    text = json.dumps(data, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


class ExtractingFeed(Feed):
    """A feed kind whose settings hold an `extract` mapping: its series come from it, and its
    one Extractor lives as long as the feed, so an aggregation interval open when a connection
    drops is completed after the reconnect."""

    @classmethod
    def series_names(cls, settings: Mapping[str, Any]) -> list[str]:
        return Extractor.series_names(cls.clean_settings(settings)["extract"])

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        # Records an aggregate drops as too late are counted with the bad payloads.
        self.extractor = Extractor(self.settings["extract"], on_drop=self.skip)
