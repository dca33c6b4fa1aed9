"""Which records a payload holds: the `records` path, and `columns` zipped into records.

JMESPath cannot zip parallel arrays (Yahoo Finance's chart JSON: `timestamp[]` beside
`indicators.quote[0].close[]`): the `columns` setting names such arrays and turns them into one
record per index, `{name: item, ...}`, for the other paths to read.
"""

from __future__ import annotations

from typing import Any

from streams.ingest.feeds.extract.errors import BadPayload, show
from streams.ingest.feeds.extract.paths import Path, search

MAX_RECORDS = 10_000


def select_records(payload: Any, *, records: Path | None, columns: dict[str, Path] | None) -> list[Any]:
    """The records of one payload: a list payload is a list of records, anything else one."""
    if records is None:
        found = payload if isinstance(payload, list) else [payload]
    else:
        hit = search(records, payload, what="records")
        if hit is None:
            raise BadPayload(f"records: {records.text} found nothing in {show(payload)}")
        found = hit if isinstance(hit, list) else [hit]
    if columns:
        found = _zipped(found, columns=columns)
    if len(found) > MAX_RECORDS:
        raise BadPayload(f"{len(found)} records in one payload, at most {MAX_RECORDS}")
    return found


def _zipped(records: list[Any], *, columns: dict[str, Path]) -> list[dict[str, Any]]:
    """The parallel arrays `columns` finds in each record, zipped: one row per index."""
    rows: list[dict[str, Any]] = []
    names = list(columns)
    for record in records:
        found = [search(path, record, what=f"columns.{name}") for name, path in columns.items()]
        if all(column is None for column in found):
            continue  # a record without the arrays (an empty result): no rows
        for name, column in zip(names, found, strict=True):
            if not isinstance(column, list):
                what = "found nothing" if column is None else f"found {show(column)}, not a list,"
                raise BadPayload(f"columns.{name}: {what} in {show(record)}")
        lengths = {len(column) for column in found}
        if len(lengths) > 1:
            sizes = ", ".join(f"{name} {len(column)}" for name, column in zip(names, found, strict=True))
            raise BadPayload(f"columns: parallel arrays of different lengths ({sizes}); they must match")
        if len(rows) + len(found[0]) > MAX_RECORDS:
            raise BadPayload(f"over {MAX_RECORDS} rows of columns in one payload")
        rows += [dict(zip(names, items, strict=True)) for items in zip(*found, strict=True)]
    return rows
