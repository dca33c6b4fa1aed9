"""Export: a stream's stored points in a time range as CSV or JSON, streamed page by page.

A year of points must never sit in memory: the answer is written one page of stored batches
at a time (about PAGE_POINTS points), each page its own short query that
continues after the last id written (keyset paging). No database cursor stays open between
pages, so a client that leaves mid-export costs nothing more than the page being read, and
any thread may read the next page.

Both formats are wide: one column per series, one row per point, in the order the points were
stored (id order; times normally increase, late points come where they arrived). Wide needs
every series name before the first row, so a first pass over the range reads the series names
only (a regex over each batch's stored JSON, about 15 times cheaper than decoding it) and notes
the newest batch it saw; the second pass writes rows up to that batch, so a series that starts
while the export runs cannot appear after the header was written.

- CSV: `time,<series>...`, time in ISO 8601 UTC with milliseconds (`2024-05-01T12:00:00.250Z`),
  an empty cell for null. Opens as is in a spreadsheet; `pandas.read_csv(url, parse_dates=["time"])`.
- JSON: an array of records, one per point, `{"t": <ms since the epoch>, "<series>": value|null}`,
  every record with every series. The shape `pandas.read_json(url)` / `pandas.DataFrame(records)`
  and spreadsheet JSON importers take without options; one record per line.

A series named like the time column ("time" in CSV, "t" in JSON) gets a "_" appended.

CSV injection (OWASP): series names come from payloads, and a spreadsheet runs a cell that
starts with `=`, `+`, `-`, `@`, tab or carriage return as a formula. Such a text cell (header
or value) is written with a `'` in front; one that already starts with quotes and then one of
those gets one more, so a reader that drops one leading `'` before them gets every name back.
Numbers are written as numbers: -1.5 stays -1.5 (data, not a formula). JSON is written as is.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from asgiref.sync import sync_to_async
from django.db.models import Q

from streams.core.ids import IdKey
from streams.storage.store import batches_in, decode

Format = Literal["csv", "json"]

# Pages are sized in points (stored batches hold from one point to thousands): the page size in
# batches follows the largest batch seen so far, starting small.
PAGE_POINTS = 5_000
SURVEY_PAGE_POINTS = 20_000
FIRST_PAGE_BATCHES = 10
MAX_PAGE_BATCHES = 5_000
CONTENT_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "json": "application/json"}

_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
# Series names in a stored batch: store.encode_entries writes {"ids":[...],"t":[...],"y":{...}}
# with "y" last, and inside "y" only the series names are strings followed by `:[`.
_Y_START = '"y":{'
_SERIES_KEY = re.compile(r'"((?:[^"\\]|\\.)*)":\[')


def series_in(data: str) -> list[str]:
    """The series names of one stored batch, without decoding its values."""
    at = data.rfind(_Y_START)
    if at < 0:  # not the layout above: decode it (slower, always right)
        return list(json.loads(data).get("y", {}))
    return [json.loads(f'"{raw}"') if "\\" in raw else raw for raw in _SERIES_KEY.findall(data, at)]


def filename(slug: str, *, start: float | None, end: float | None, fmt: Format) -> str:
    def stamp(seconds: float | None, open_end: str) -> str:
        if seconds is None:
            return open_end
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y%m%dT%H%M%SZ")

    return f"{slug}_{stamp(start, 'start')}_{stamp(end, 'now')}.{fmt}"


# A cell a spreadsheet would run as a formula, after any quotes this module added before it.
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")


def neutralise(cell: Any) -> Any:
    """A CSV cell safe to open in a spreadsheet: text that would start a formula gets a `'`
    in front (OWASP CSV injection); numbers and everything else are left alone."""
    if type(cell) is str and _FORMULA_START.match(cell):
        return "'" + cell
    return cell


def _column_names(series: list[str], time_key: str) -> list[str]:
    names: list[str] = []
    for name in series:
        while name == time_key or name in names:
            name += "_"
        names.append(name)
    return names


class Export:
    """One export's state; `step()` returns the next piece of text ("" while surveying), None at
    the end. Sync: call it from a thread under ASGI (see `achunks`)."""

    def __init__(self, *, stream_id: int, start: float | None, end: float | None, fmt: Format) -> None:
        self.stream_id = stream_id
        self.start = start
        self.end = end
        self.fmt: Format = fmt
        self.pages_read = 0  # pages of either pass, for tests and curiosity
        self._series: dict[str, None] = {}  # names in order of first appearance
        self._after: IdKey | None = None
        self._upto: IdKey | None = None
        self._surveyed = False
        self._largest_batch = 0
        self._last_page_full = False
        self._rows_written = 0
        self._done = False

    # Reading ---------------------------------------------------------------------------

    def _page(self, *fields: str, points: int) -> list[tuple[Any, ...]]:
        """The next stored batches after the last one read, about `points` points in all."""
        if self._largest_batch == 0:
            limit = FIRST_PAGE_BATCHES
        else:
            limit = max(1, min(MAX_PAGE_BATCHES, points // self._largest_batch))

        batches = batches_in(self.stream_id, start=self.start, end=self.end)
        if self._after is not None:
            ms, seq = self._after
            # last_ms >= ms first, so the index on (stream, last_ms, last_seq) starts there.
            batches = batches.filter(last_ms__gte=ms).filter(Q(last_ms__gt=ms) | Q(last_seq__gt=seq))
        if self._upto is not None:
            ms, seq = self._upto
            batches = batches.filter(last_ms__lte=ms).filter(Q(last_ms__lt=ms) | Q(last_seq__lte=seq))
        rows = list(batches.in_id_order().values_list("last_ms", "last_seq", "count", *fields)[:limit])
        self.pages_read += 1
        if rows:
            self._after = (rows[-1][0], rows[-1][1])
            self._largest_batch = max(self._largest_batch, *(row[2] for row in rows))
        self._last_page_full = len(rows) == limit
        return rows

    def _survey_page(self) -> bool:
        """Read one page of series names; False when the survey is over."""
        rows = self._page("data", points=SURVEY_PAGE_POINTS)
        for *_, data in rows:
            for name in series_in(data):
                self._series.setdefault(name)
        if self._last_page_full:
            return True
        # Write rows up to the newest batch surveyed, from the start again.
        self._upto, self._after = self._after, None
        self._surveyed = True
        return False

    # Writing ---------------------------------------------------------------------------

    def step(self) -> str | None:
        if self._done:
            return None
        if not self._surveyed:
            if self._survey_page():
                return ""
            return self._header()
        if self._upto is None:  # nothing in the range
            self._done = True
            return self._footer()
        rows = self._page("data", points=PAGE_POINTS)
        if not rows:
            self._done = True
            return self._footer()
        return self._body(rows)

    def _header(self) -> str:
        if self.fmt == "json":
            return "["
        out = io.StringIO()
        names = [neutralise(name) for name in self._series]
        csv.writer(out).writerow(["time", *_column_names(names, "time")])
        return out.getvalue()

    def _footer(self) -> str:
        return ("\n]\n" if self._rows_written else "]\n") if self.fmt == "json" else ""

    def _columns(self, rows: list[tuple[Any, ...]]) -> tuple[list[float], list[list[Any]]]:
        """The page's points in [start, end]: times (seconds) and one column per known series."""
        low = float("-inf") if self.start is None else self.start
        high = float("inf") if self.end is None else self.end
        times: list[float] = []
        columns: list[list[Any]] = [[] for _ in self._series]
        for *_, data in rows:
            batch = decode(data)
            keep: list[int] | None = None
            if batch.t and (min(batch.t) < low or max(batch.t) > high):
                keep = [index for index, t in enumerate(batch.t) if low <= t <= high]
                times.extend(batch.t[i] for i in keep)
            else:
                times.extend(batch.t)
            size = len(batch.t) if keep is None else len(keep)
            for name, column in zip(self._series, columns, strict=True):
                values = batch.y.get(name)
                if values is None:
                    column.extend([None] * size)
                elif keep is None:
                    column.extend(values)
                else:
                    column.extend(values[i] for i in keep)
        return times, columns

    def _body(self, rows: list[tuple[Any, ...]]) -> str:
        times, columns = self._columns(rows)
        if not times:
            return ""
        ms = np.round(np.asarray(times, dtype=np.float64) * 1000, 3)
        out = io.StringIO()
        if self.fmt == "csv":
            stamps = np.datetime_as_string(np.round(ms).astype("datetime64[ms]"), unit="ms", timezone="UTC")
            # Stored values are numbers (or null); text would be someone else's write: never
            # let it reach a spreadsheet as a formula. One type check per column, not per cell.
            columns = [
                [neutralise(cell) for cell in column] if str in set(map(type, column)) else column
                for column in columns
            ]
            csv.writer(out).writerows(zip(stamps.tolist(), *columns, strict=True))
        else:
            whole = bool(np.all(ms == np.floor(ms)))
            keys = ["t", *_column_names(list(self._series), "t")]
            t_values = ms.astype(np.int64).tolist() if whole else ms.tolist()
            records = (
                _compact(dict(zip(keys, row, strict=True))) for row in zip(t_values, *columns, strict=True)
            )
            out.write("\n" if self._rows_written == 0 else ",\n")
            out.write(",\n".join(records))
        self._rows_written += len(times)
        return out.getvalue()

    # Driving ---------------------------------------------------------------------------

    def chunks(self) -> Iterator[str]:
        """For WSGI and tests: a plain generator."""
        while (chunk := self.step()) is not None:
            if chunk:
                yield chunk

    async def achunks(self) -> AsyncIterator[str]:
        """For ASGI: each step runs in the request's thread (thread_sensitive), so the event loop
        never waits on the database. Django's ASGI handler would otherwise read a sync iterator
        whole into a list before sending a byte (django/http/response.py, `__aiter__`). When the
        client leaves, Django cancels the await below and closes this generator: no more pages."""
        step = sync_to_async(self.step, thread_sensitive=True)
        while (chunk := await step()) is not None:
            if chunk:
                yield chunk
