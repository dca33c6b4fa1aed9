"""Stored points on PostgreSQL: one partition of the StoredBatch table per UTC day of batch ids.

The table is partitioned by RANGE (last_ms), the millisecond part of each row's last point id
(migration 0008). Ids follow the wall clock, so every write lands in today's partition and a
day's partition stops growing when the day ends; pruning then drops a whole partition (a catalog
change) instead of deleting its millions of rows one by one. One day: the default keep limit
is 30 days, so about 31 partitions are live and at most a day of rows outlives its limit; a
stream that keeps forever costs 365 partitions a year, still few for the planner, and resumes
("after <id>") read only the partitions at or after that id.

Partitions are made AHEAD_DAYS ahead by each ingest worker's prune pass, and on demand when an
insert finds none for its row (`save_batches` retries once after `make_partitions_for`), so a
write never fails for want of one. SQLite (the embedded mode) keeps one plain table: every
function here does nothing there.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, connection, transaction

from streams.core.ids import IdKey

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
AHEAD_DAYS = 7
# A day is dropped only once it ended this long ago: a late flush (a worker's retry, a clock a
# little behind) still finds its partition.
DROP_AFTER_MS = 3_600_000
# Dropping a partition locks the whole table for a moment (attaching one, only against schema
# changes); rather than queue ingest's writes behind a long export for longer than this, a
# drop or a make waits for the next prune pass (or the next insert's retry).
LOCK_TIMEOUT = "1s"
# Serialises partition creation and dropping across workers (pg_advisory_xact_lock's key).
ADVISORY_KEY = 0x5354_4F52_4544  # "STORED"

_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


def partitioned() -> bool:
    """Whether the stored points live in a partitioned table (PostgreSQL after migration 0008)."""
    return connection.vendor == "postgresql"


def _table() -> str:
    from streams.models import StoredBatch

    return StoredBatch._meta.db_table


def partition_name(day: int) -> str:
    """The partition holding the ids of UTC day `day` (days since the epoch)."""
    return f"{_table()}_p{time.strftime('%Y%m%d', time.gmtime(day * DAY_MS // 1000))}"


def partitions() -> list[tuple[str, int, int]]:
    """Every partition of the table as (name, from_ms, to_ms), oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [_table()],
        )
        found = []
        for name, bound in cursor.fetchall():
            match = _BOUNDS.search(bound)
            if match:  # a DEFAULT partition has no bounds (none is made here)
                found.append((name, int(match[1]), int(match[2])))
    return sorted(found, key=lambda part: part[1])


def make_partitions(days: Iterable[int]) -> int:
    """Make the partitions of these UTC days that do not exist yet; returns how many were made."""
    quote, table = connection.ops.quote_name, connection.ops.quote_name(_table())
    made = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # Two workers making the same day: the second waits here, then finds it made.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_KEY])
        existing = {name for name, _, _ in partitions()}
        for day in sorted(set(days)):
            name = partition_name(day)
            if name in existing:
                continue
            # Made apart, then attached: CREATE TABLE ... PARTITION OF would lock the whole table
            # (reads and writes wait), ATTACH only against other schema changes.
            cursor.execute(
                f"CREATE TABLE {quote(name)} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            cursor.execute(
                f"ALTER TABLE {table} ATTACH PARTITION {quote(name)} "
                f"FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})"
            )
            made += 1
    if made:
        log.info("made %d partitions of %s", made, table)
    return made


def make_partitions_for(ms_values: Iterable[int]) -> int:
    """Make the partitions that rows with these last_ms values go to."""
    return make_partitions(ms // DAY_MS for ms in ms_values)


# check_violation: what PostgreSQL raises for a row no partition takes (whatever the language
# of its messages). Stored rows break no other check (count >= 1), and a retry that still fails
# raises anyway.
CHECK_VIOLATION = "23514"


def is_missing_partition(error: BaseException) -> bool:
    """Whether an insert may have failed because no partition takes its row."""
    return partitioned() and getattr(error.__cause__, "sqlstate", None) == CHECK_VIOLATION


def make_ahead(*, now: float | None = None) -> int:
    """Make today's partition and the next AHEAD_DAYS days'."""
    if not partitioned():
        return 0
    today = int((time.time() if now is None else now) * 1000) // DAY_MS
    return make_partitions(range(today, today + AHEAD_DAYS + 1))


def drop_expired(*, now: float | None = None) -> list[str]:
    """Drop partitions, oldest first, that hold no row any stream still keeps; stops at the
    first one kept. Returns the names dropped."""
    if not partitioned():
        return []
    now = time.time() if now is None else now
    dropped = []
    for name, _, to_ms in partitions():
        if to_ms > now * 1000 - DROP_AFTER_MS or not _drop_unless_kept(name, now=now):
            break
        dropped.append(name)
    if dropped:
        log.info("dropped %d partitions of stored points: %s", len(dropped), ", ".join(dropped))
    return dropped


def _drop_unless_kept(name: str, *, now: float) -> bool:
    quote = connection.ops.quote_name
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_KEY])
            if not cursor.fetchone()[0]:
                return False  # another worker is making or dropping partitions: its turn
            # SHARE: reads go on, writes to this partition wait until it is decided.
            cursor.execute(f"LOCK TABLE {quote(name)} IN SHARE MODE")
            if _keeps_rows(cursor, name, now=now):
                return False
            cursor.execute(f"DROP TABLE {quote(name)}")
            return True
    except DatabaseError:
        log.warning("could not drop partition %s now; trying again at the next prune", name, exc_info=True)
        return False


def _keeps_rows(cursor: Any, name: str, *, now: float) -> bool:
    """Whether any stream keeps a row of this partition: a row is kept unless its stream's
    keep_seconds or keep_points prunes it (store.prune_stream's rule); a stream that stores no
    points is never pruned, so it keeps all its rows."""
    from streams.models import Stream
    from streams.storage.store import count_cut

    quote = connection.ops.quote_name
    part, streams = quote(name), quote(Stream._meta.db_table)
    # Streams with a row in the partition that its age limit keeps (each answered from the
    # partition's (stream, t_max) index).
    cursor.execute(
        f"SELECT s.id, s.store_points, s.keep_seconds, s.keep_points FROM {streams} s WHERE EXISTS ("
        f"SELECT 1 FROM {part} b WHERE b.stream_id = s.id AND (NOT s.store_points "
        "OR s.keep_seconds IS NULL OR b.t_max >= %s - s.keep_seconds))",
        [now],
    )
    for stream_id, store_points, keep_seconds, keep_points in cursor.fetchall():
        if not store_points or keep_points is None:
            return True
        cut = count_cut(stream_id, keep_points=keep_points)
        if cut is None:
            return True  # all its points fit its count limit
        oldest = None if keep_seconds is None else now - keep_seconds
        if _has_row(cursor, part, stream_id=stream_id, from_id=cut.keep_from, t_max_from=oldest):
            return True
    return False


def _has_row(cursor: Any, part: str, *, stream_id: int, from_id: IdKey, t_max_from: float | None) -> bool:
    """Whether the partition holds a row of the stream at or after id `from_id` (and, when
    given, with a point at or after `t_max_from`)."""
    ms, seq = from_id
    by_age, age = ("", []) if t_max_from is None else (" AND t_max >= %s", [t_max_from])
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {part} WHERE stream_id = %s "
        f"AND (last_ms > %s OR (last_ms = %s AND last_seq >= %s)){by_age})",
        [stream_id, ms, ms, seq, *age],
    )
    return bool(cursor.fetchone()[0])


def maintain(*, now: float | None = None) -> list[str]:
    """The ingest worker's periodic pass: make partitions ahead, drop the expired ones."""
    try:
        make_ahead(now=now)
    except DatabaseError:  # the lock timed out: the next pass (or an insert) makes them
        log.warning("could not make partitions ahead now; trying again at the next prune", exc_info=True)
    return drop_expired(now=now)
