"""The push feed: the feed kind that reads a stream's inbox of points POSTed to
/api/streams/<slug>/points, and the push point format.

The API (streams/web/views.py push_points over streams/ingest/push_api.py) checks the token and
the body and queues the points in the stream's inbox (streams/ingest/inbox.py); this feed, run by
the worker that holds the stream, drains the inbox into broadcast like any other feed.

The point format, one JSON value per point:
- a bare number: a value of the default series at arrival time;
- `{"t": <time>, "value": <number|null>}`: one value of the default series;
- `{"t": <time>, "values": {"<series>": <number|null>, ...}}`: several series at once.
`t` is optional (arrival time) and may be an epoch number in s, ms, µs or ns (told apart by
size) or ISO 8601; more than LIVECHARTS_MAX_FUTURE_SECONDS ahead, the request is refused. An
`extract` setting maps any other JSON shape (a webhook's body, say) with the usual JMESPath
settings.

A request leaves the inbox only once broadcast has stored its points in history: the feed
yields what it took from the inbox, the worker hands it to broadcast with the callback
`handed_over` returns, and broadcast calls it after the tick's history append; the inbox then
deletes every request that tick stored in one XDEL per stream. The feed never waits for the
tick, so pushes keep their throughput. Delivery is at-least-once: a worker killed after the
append and before the XDEL leaves the request for the next owner of the stream, which publishes
it again (a duplicate, never a loss). A stop (SIGTERM) flushes broadcast and then
acknowledges, and its drain takes only what no feed handed over: each point once.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings

from streams.core.points import Batch, Point
from streams.core.tasks import honour_cancellation
from streams.core.times import BadTime, parse_time
from streams.ingest.feeds.base import Feed, FeedSettingsError, reject_unknown, stall_setting
from streams.ingest.feeds.extract import MAX_SERIES_NAME, BadPayload, Extractor, clean_extract
from streams.ingest.feeds.timeline import ahead_reason

if TYPE_CHECKING:
    from streams.ingest.inbox import Inbox, Taken

POINT_KEYS = ("t", "value", "values")
MAX_SERIES_PER_POINT = 100
# The worker waits this long for pushed points before checking health and shutdown again.
TAKE_WAIT_SECONDS = 1.0


class PushFeed(Feed):
    kind = "push"

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        reject_unknown(raw, {"series", "stall_after", "extract"})
        series = raw.get("series", "value")
        if not isinstance(series, str) or not 1 <= len(series) <= MAX_SERIES_NAME:
            raise FeedSettingsError(
                "series", f"must be text of 1-{MAX_SERIES_NAME} characters, not {series!r}"
            )
        extract = raw.get("extract")
        if extract is not None:
            extract = clean_extract(extract)
            if extract.id is not None:
                # Pushed points wait in the inbox as times and values only.
                raise FeedSettingsError(
                    "extract.id", "is not kept for pushed points: a repeated push is told by time and value"
                )
            if extract.aggregate is not None:
                # The API answers each request with what it read; an aggregate holds points back
                # for its interval, so every request would be refused as holding no points.
                raise FeedSettingsError(
                    "extract.aggregate",
                    "is not available for pushed points: push the counts or sums you want drawn",
                )
        return {
            "series": series,
            "stall_after": stall_setting(raw),
            # None: the native point format above.
            "extract": extract,
        }

    @classmethod
    def series_names(cls, settings: Mapping[str, Any]) -> list[str]:
        cleaned = cls.clean_settings(settings)
        if cleaned["extract"] is not None:
            return cleaned["extract"].series_names
        return [cleaned["series"]]

    @classmethod
    def settings_json(cls, cleaned: Mapping[str, Any]) -> dict[str, Any]:
        extract = cleaned["extract"]
        return {**cleaned, "extract": None if extract is None else extract.as_json()}

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        extract = self.settings["extract"]
        self.extractor = None if extract is None else Extractor(extract)
        # What `batches` took from the inbox and yielded last, until the worker hands it over.
        self._yielded: Taken | None = None
        # Read once per feed (the API makes one per request), not per point.
        self.max_ahead: float = django_settings.LIVECHARTS_MAX_FUTURE_SECONDS

    def describe(self) -> str:
        return f"/api/streams/{self.slug}/points"

    def points(self, record: Any, *, received_at: float) -> list[Point]:
        """The points of one pushed record (a list item or an NDJSON line). Raises BadPayload,
        also for a time further ahead of `received_at` than LIVECHARTS_MAX_FUTURE_SECONDS."""
        if self.extractor is not None:
            points = self.extractor.points(record, received_at=received_at)
        else:
            points = [native_point(record, series=self.settings["series"], received_at=received_at)]
        latest = received_at + self.max_ahead
        for point in points:
            if point.t > latest:
                # Refused here, so the pusher hears of it (the worker would only count it).
                raise BadPayload("t: " + ahead_reason(point.t, now=received_at, max_ahead=self.max_ahead))
        return points

    def handed_over(self, batch: Batch) -> Callable[[], None] | None:
        taken = self._yielded
        if taken is None or taken.points is not batch:
            return None
        from streams.ingest.inbox import get_inbox

        self._yielded = None
        return hand_over(get_inbox(), self.slug, taken)

    async def batches(self) -> AsyncIterator[Batch]:
        from streams.ingest.inbox import get_inbox

        inbox = get_inbox()
        yield []  # nothing to connect to: the inbox is ready
        try:
            while True:
                taken = await inbox.take(self.slug, wait=TAKE_WAIT_SECONDS)
                # A stop or an edit cancels this task mid-take; a Redis call can eat that
                # cancellation, and this loop would then never end (nor let its stream restart).
                honour_cancellation()
                if taken is None:
                    continue
                if not taken.points:  # nothing to store: it may go at once
                    hand_over(inbox, self.slug, taken)()
                    continue
                # Not acknowledged here: broadcast calls back once the points are in history.
                # One not handed over (the worker was cancelled first) is taken again.
                self._yielded = taken
                yield taken.points
        finally:
            self._yielded = None


def hand_over(inbox: Inbox, slug: str, taken: Taken) -> Callable[[], None]:
    """Mark points taken from the inbox as given to broadcast; returns the callback to pass to
    `publish(on_stored=...)`."""
    inbox.handed(slug, taken)
    return partial(inbox.stored, slug, taken)


def native_point(record: Any, *, series: str, received_at: float) -> Point:
    """One point in the push format (see the module docstring). Raises BadPayload naming the field."""
    if _is_number(record):
        return Point(t=received_at, values={series: _value(record, field="value")})
    if not isinstance(record, Mapping):
        raise BadPayload(
            f"a point is a number or an object with {', '.join(POINT_KEYS)}, not {_kind(record)}"
        )
    unknown = sorted(str(key) for key in record if key not in POINT_KEYS)
    if unknown:
        raise BadPayload(f"{unknown[0]}: unknown field (known: {', '.join(POINT_KEYS)})")
    t = received_at if record.get("t") is None else _time(record["t"])
    if ("value" in record) == ("values" in record):
        raise BadPayload("value: give either `value` or `values` (an object of series: number)")
    if "value" in record:
        return Point(t=t, values={series: _value(record["value"], field="value")})
    values = record["values"]
    if not isinstance(values, Mapping) or not values:
        raise BadPayload(f"values: must be a non-empty object of series: number, not {_kind(values)}")
    if len(values) > MAX_SERIES_PER_POINT:
        raise BadPayload(f"values: at most {MAX_SERIES_PER_POINT} series per point, not {len(values)}")
    cleaned: dict[str, float | None] = {}
    for name, value in values.items():
        if not 1 <= len(name) <= MAX_SERIES_NAME:
            raise BadPayload(f"values: series names are 1-{MAX_SERIES_NAME} characters, not {name[:80]!r}")
        cleaned[name] = _value(value, field=f"values.{name}")
    return Point(t=t, values=cleaned)


def _time(raw: Any) -> float:
    try:
        return parse_time(raw)
    except BadTime as error:
        raise BadPayload(f"t: {error}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value(raw: Any, *, field: str) -> float | None:
    if raw is None:
        return None
    if not _is_number(raw):
        raise BadPayload(f"{field}: must be a number or null, not {_kind(raw)}")
    try:
        value = float(raw)
    except OverflowError:
        raise BadPayload(f"{field}: the number is too large") from None
    if not math.isfinite(value):
        raise BadPayload(f"{field}: must be a finite number")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"text {value[:40]!r}"
    names = {bool: "a boolean", list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
