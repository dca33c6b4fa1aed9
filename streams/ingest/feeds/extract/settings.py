"""Cleaning the `extract` settings of a feed: checked, defaults filled in, every path compiled.

`clean_extract` gives an ExtractSettings holding the compiled paths, which the feed's Extractor
uses as they are. Its `as_json()` is what a stream saves (Stream.clean), and cleans to an
equal ExtractSettings: what the database holds is the settings JSON, never compiled objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.ingest.feeds.base import FeedSettingsError, choice_setting, number_setting, reject_unknown
from streams.ingest.feeds.extract.decode import Decode, decode_path
from streams.ingest.feeds.extract.paths import Path, compile_path

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
# time_unit -> how a record's time is read (streams.core.times.parse_time): the unit of numbers
# (None: numbers refused), and whether ISO 8601 text is accepted.
TIME_UNITS: dict[str, tuple[str | None, bool]] = {
    "auto": ("auto", True),
    "s": ("s", False),
    "ms": ("ms", False),
    "us": ("us", False),
    "ns": ("ns", False),
    "iso": (None, True),
}
AGGREGATES = ("count", "sum", "mean", "min", "max")
MAX_SERIES_NAME = 64
# How long an aggregation interval stays open after its end for records that come late, when
# they carry their own time (`time`): event streams deliver a second or so after an event's
# timestamp (Wikimedia's recentchange about 1 s). Records stamped on arrival are never late.
DEFAULT_GRACE_SECONDS = 5.0
MAX_GRACE_SECONDS = 3_600.0


@dataclass(frozen=True, slots=True)
class Aggregate:
    """`extract.aggregate`: one point per series every `every` seconds, `how` of its records."""

    every: float
    how: str
    grace: float


@dataclass(frozen=True)
class ExtractSettings:
    """Cleaned `extract` settings: the keys of docs/feeds/extract.md, paths compiled."""

    records: Path | None
    decode: tuple[Decode, ...]
    columns: dict[str, Path] | None
    id: Path | None
    time: Path | None
    time_unit: str
    value: Path | None
    series: str | None
    values: dict[str, Path] | None
    series_path: Path | None
    series_from_topic: int | None
    scale: float
    offset: float
    aggregate: Aggregate | None

    @property
    def series_names(self) -> list[str]:
        """Series known before any data arrives; names read from records or topics are not."""
        if self.values is not None:
            return list(self.values)
        return [self.series] if self.series is not None else []

    def as_json(self) -> dict[str, Any]:
        """The settings as saved: every key, paths as their text."""
        return {
            "records": _text(self.records),
            "decode": [decode.text for decode in self.decode],
            "columns": _texts(self.columns),
            "id": _text(self.id),
            "time": _text(self.time),
            "time_unit": self.time_unit,
            "value": _text(self.value),
            "series": self.series,
            "values": _texts(self.values),
            "series_path": _text(self.series_path),
            "series_from_topic": self.series_from_topic,
            "scale": self.scale,
            "offset": self.offset,
            "aggregate": None if self.aggregate is None else dataclasses.asdict(self.aggregate),
        }


def clean_extract(raw: Mapping[str, Any] | None) -> ExtractSettings:
    """Validate the `extract` settings object of a feed, compiling each path; FeedSettingsError
    names the key that is wrong."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise FeedSettingsError("extract", "must be an object")
    reject_unknown(raw, KEYS, prefix=PREFIX)
    # null means "the default" for every key, so a saved (as_json) object cleans to itself.
    raw = {key: value for key, value in raw.items() if value is not None}

    aggregate = _clean_aggregate(raw.get("aggregate"), timed="time" in raw)
    counting = aggregate is not None and aggregate.how == "count"

    values: dict[str, Path] | None = None
    value: Path | None = None
    series_path: Path | None = None
    series = raw.get("series")
    series_from_topic = raw.get("series_from_topic")
    if "values" in raw:
        for other in ("value", "series", "series_path", "series_from_topic"):
            if other in raw:
                raise FeedSettingsError(PREFIX + other, "cannot be used with values")
        if not isinstance(raw["values"], Mapping) or not raw["values"]:
            raise FeedSettingsError(PREFIX + "values", "must be an object of series name: path")
        values = {}
        for name, text in raw["values"].items():
            _check_series_name(name, key=PREFIX + "values")
            values[name] = compile_path(text, key=f"{PREFIX}values.{name}")
    else:
        if "series_path" in raw and series_from_topic is not None:
            raise FeedSettingsError(PREFIX + "series_from_topic", "cannot be used with series_path")
        if series is not None and ("series_path" in raw or series_from_topic is not None):
            raise FeedSettingsError(PREFIX + "series", "cannot be used with series_path or series_from_topic")
        if "series_path" in raw:
            series_path = compile_path(raw["series_path"], key=PREFIX + "series_path")
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
        value_text = raw.get("value", None if counting else "@")
        if value_text is not None:
            value = compile_path(value_text, key=PREFIX + "value")

    found = {key: compile_path(raw[key], key=PREFIX + key) for key in ("records", "time", "id") if key in raw}
    if "id" in raw and aggregate is not None:
        raise FeedSettingsError(
            PREFIX + "id", "cannot be used with aggregate (its points are counts of records, not records)"
        )
    columns = _clean_columns(raw.get("columns"))
    decode = _clean_decode(raw.get("decode", []))
    return ExtractSettings(
        records=found.get("records"),
        decode=decode,
        columns=columns,
        id=found.get("id"),
        time=found.get("time"),
        time_unit=choice_setting(raw, "time_unit", choices=tuple(TIME_UNITS), default="auto", prefix=PREFIX),
        value=value,
        series=series,
        values=values,
        series_path=series_path,
        series_from_topic=series_from_topic,
        scale=number_setting(raw, "scale", default=1, prefix=PREFIX),
        offset=number_setting(raw, "offset", default=0, prefix=PREFIX),
        aggregate=aggregate,
    )


def _clean_aggregate(raw: Any, *, timed: bool) -> Aggregate | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise FeedSettingsError(PREFIX + "aggregate", "must be an object like {every: 10, how: count}")
    prefix = PREFIX + "aggregate."
    reject_unknown(raw, {"every", "how", "grace"}, prefix=prefix)
    raw = {key: value for key, value in raw.items() if value is not None}
    return Aggregate(
        every=number_setting(raw, "every", default=10, minimum=0.1, maximum=86_400, prefix=prefix),
        how=choice_setting(raw, "how", choices=AGGREGATES, default="count", prefix=prefix),
        grace=number_setting(
            raw,
            "grace",
            default=DEFAULT_GRACE_SECONDS if timed else 0.0,
            minimum=0,
            maximum=MAX_GRACE_SECONDS,
            prefix=prefix,
        ),
    )


def _clean_columns(raw: Any) -> dict[str, Path] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw:
        raise FeedSettingsError(
            PREFIX + "columns", "must be an object of column name: path to a list, like {t: time}"
        )
    columns = {}
    for name, text in raw.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_SERIES_NAME:
            raise FeedSettingsError(
                PREFIX + "columns", f"names are text of 1-{MAX_SERIES_NAME} characters, not {name!r}"
            )
        columns[name] = compile_path(text, key=f"{PREFIX}columns.{name}")
    return columns


def _clean_decode(raw: Any) -> tuple[Decode, ...]:
    if not isinstance(raw, list):
        raise FeedSettingsError(PREFIX + "decode", "must be a list of paths")
    keys = [f"{PREFIX}decode[{index}]" for index in range(len(raw))]
    return tuple(
        decode_path(compile_path(text, key=key), key=key) for text, key in zip(raw, keys, strict=True)
    )


def _check_series_name(name: Any, *, key: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_SERIES_NAME:
        raise FeedSettingsError(key, f"series names are text of 1-{MAX_SERIES_NAME} characters, not {name!r}")


def _text(path: Path | None) -> str | None:
    return None if path is None else path.text


def _texts(paths: dict[str, Path] | None) -> dict[str, str] | None:
    return None if paths is None else {name: path.text for name, path in paths.items()}
