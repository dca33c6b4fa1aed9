"""The recent window of points per stream, plus each stream's last status.

Redis Streams when REDIS_URL is set (shared by every process, survives their restarts), an
in-process ring otherwise (the embedded one-process mode). Both answer the same calls.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings

from streams.core import runtime
from streams.core.frames import times_and_columns
from streams.core.ids import IdKey, parse_id
from streams.core.json_parse import parse_json
from streams.core.points import Entry, Point, ids_and_points
from streams.core.retention import Retention
from streams.storage.redis_clients import loop_client, parse_address, sync_client

log = logging.getLogger(__name__)

# How long the appender thread waits for Redis to answer a tick's script before the tick fails
# (its batches kept for the next one). Set here, not left to redis-py: its default is 5 s from
# 8.0 and none (wait for good) before, and pyproject.toml admits both. Far above a tick's script
# (0.1-0.3 s at 1,000 streams) and Redis's lua-time-limit (5 s, past which a busy Redis answers
# BUSY).
APPEND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Backfill:
    entries: list[Entry]
    # True when the client's `after` is older than the window: it missed points for good.
    gap: bool


def is_gap(
    *, after: IdKey | None, first: IdKey | None, last: IdKey | None, max_deleted: IdKey, ever_added: int
) -> bool:
    """Whether a client holding `after` has missed points that are no longer kept."""
    if after is None:
        return False
    if first is None or last is None:
        # Nothing kept: fine only if everything up to `after` was seen and then expired.
        return ever_added == 0 or after != max_deleted
    if after > last:
        # The client holds ids we never kept: this history was lost or reset.
        return True
    if after >= first:
        return False
    # Before our first point: only fine if it is exactly the last point we dropped.
    return after != max_deleted


# Not `frozen` (never changed once made all the same): one is made per stream per tick, and a
# frozen dataclass's __init__ cost 490 ns against 170 (0.07 us a point at 5 points a batch).
@dataclass(slots=True)
class WindowAppend:
    """One stream's points of a tick, for `History.append_many`."""

    slug: str
    entries: Sequence[Entry]
    retention: Retention


class History(ABC):
    @abstractmethod
    async def append(self, slug: str, entries: Sequence[Entry], *, retention: Retention) -> None:
        """Store one batch atomically and trim the window."""

    async def append_many(self, batches: Sequence[WindowAppend]) -> list[Exception | None]:
        """Store the batches of several streams, each as `append` does; one answer per batch,
        in order: None when it was stored, the error when it was not (so the caller keeps
        exactly the failed streams' points)."""
        errors: list[Exception | None] = []
        for batch in batches:
            try:
                await self.append(batch.slug, batch.entries, retention=batch.retention)
            except Exception as error:
                errors.append(error)
            else:
                errors.append(None)
        return errors

    async def append_tick(
        self, batches: Sequence[WindowAppend], *, statuses: dict[str, dict[str, Any]]
    ) -> list[Exception | None]:
        """A tick's writes: the feeds' statuses (`set_statuses`), then `append_many(batches)`,
        whose answers it returns. Statuses are best effort (the next one carries the health):
        a failure to store them is logged, not returned."""
        if statuses:
            try:
                await self.set_statuses(statuses)
            except Exception as error:
                log.warning("could not store the health of %d feeds (%s)", len(statuses), error)
        return await self.append_many(batches)

    def start_append_tick(
        self, batches: Sequence[WindowAppend], *, statuses: dict[str, dict[str, Any]]
    ) -> asyncio.Future[list[Exception | None]]:
        """`append_tick`, started now: a store that can sends its command before this returns,
        so the caller does its own work while the store runs it (broadcast makes the tick's group
        messages meanwhile), then awaits the answers."""
        return asyncio.ensure_future(self.append_tick(batches, statuses=statuses))

    @abstractmethod
    async def read(
        self, slug: str, *, after: str | None, retention: Retention, limit: int | None = None
    ) -> Backfill:
        """Every kept point after `after` (all of the window when None); with `limit`, the
        oldest `limit` of them (a backfill reads a large window in pages)."""

    @abstractmethod
    async def last_id(self, slug: str) -> str | None: ...

    async def last_ids(self, slugs: Sequence[str]) -> dict[str, str | None]:
        """`last_id` of several streams at once (broadcast asks when it first sees them)."""
        return {slug: await self.last_id(slug) for slug in slugs}

    @abstractmethod
    async def last_entry(self, slug: str) -> Entry | None:
        """The newest point kept (a restarted feed resumes after its time)."""

    async def last_entries(self, slugs: Sequence[str]) -> list[Entry | None]:
        """`last_entry` of several streams at once, in order (feeds starting together)."""
        return [await self.last_entry(slug) for slug in slugs]

    @abstractmethod
    async def set_status(self, slug: str, status: dict[str, Any]) -> None: ...

    async def set_statuses(self, statuses: dict[str, dict[str, Any]]) -> None:
        """`set_status` of several streams at once (broadcast stores a tick's in one go)."""
        for slug, status in statuses.items():
            await self.set_status(slug, status)

    @abstractmethod
    async def get_status(self, slug: str) -> dict[str, Any] | None: ...

    async def get_statuses(self, slugs: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Several streams' statuses at once (the stream list and admin show them all)."""
        return {slug: await self.get_status(slug) for slug in slugs}

    @abstractmethod
    async def drop_stream(self, slug: str) -> None:
        """Drop a stream's window and status (a deleted stream, a test cleaning up)."""


@dataclass
class _Ring:
    entries: deque[tuple[IdKey, Entry]] = field(default_factory=deque)
    ever_added: int = 0
    max_deleted: IdKey = (0, 0)


class MemoryHistory(History):
    def __init__(self) -> None:
        self._rings: dict[str, _Ring] = {}
        self._status: dict[str, dict[str, Any]] = {}

    def _trim(self, ring: _Ring, retention: Retention) -> None:
        oldest_ms = retention.oldest_kept_ms()
        while ring.entries and (
            (retention.points is not None and len(ring.entries) > retention.points)
            or (oldest_ms is not None and ring.entries[0][0][0] < oldest_ms)
        ):
            ring.max_deleted = ring.entries.popleft()[0]

    async def append(self, slug: str, entries: Sequence[Entry], *, retention: Retention) -> None:
        ring = self._rings.setdefault(slug, _Ring())
        for entry in entries:
            ring.entries.append((parse_id(entry.id), entry))
        ring.ever_added += len(entries)
        self._trim(ring, retention)

    async def read(
        self, slug: str, *, after: str | None, retention: Retention, limit: int | None = None
    ) -> Backfill:
        ring = self._rings.setdefault(slug, _Ring())
        self._trim(ring, retention)
        after_key = None if after is None else parse_id(after)
        kept = ring.entries
        gap = is_gap(
            after=after_key,
            first=kept[0][0] if kept else None,
            last=kept[-1][0] if kept else None,
            max_deleted=ring.max_deleted,
            ever_added=ring.ever_added,
        )
        if after_key is None or gap:
            entries = [entry for _, entry in kept]
        else:
            entries = [entry for key, entry in kept if key > after_key]
        return Backfill(entries if limit is None else entries[:limit], gap)

    async def last_id(self, slug: str) -> str | None:
        ring = self._rings.get(slug)
        return ring.entries[-1][1].id if ring and ring.entries else None

    async def last_entry(self, slug: str) -> Entry | None:
        ring = self._rings.get(slug)
        return ring.entries[-1][1] if ring and ring.entries else None

    async def set_status(self, slug: str, status: dict[str, Any]) -> None:
        self._status[slug] = status

    async def get_status(self, slug: str) -> dict[str, Any] | None:
        return self._status.get(slug)

    async def drop_stream(self, slug: str) -> None:
        self._rings.pop(slug, None)
        self._status.pop(slug, None)


# Trim a window by count and/or age and remember the newest id trimmed, in one atomic step.
TRIM_FUNCTION = """
local function trim(key, floor_key, max_points, oldest_id)
  local floor = nil
  if max_points ~= '' then
    local excess = redis.call('XLEN', key) - tonumber(max_points)
    if excess > 0 then
      local dropped = redis.call('XRANGE', key, '-', '+', 'COUNT', excess)
      floor = dropped[#dropped][1]
      redis.call('XTRIM', key, 'MAXLEN', max_points)
    end
  end
  if oldest_id ~= '' then
    local older = redis.call('XREVRANGE', key, '(' .. oldest_id, '-', 'COUNT', 1)
    if #older > 0 then
      floor = older[1][1]
      redis.call('XTRIM', key, 'MINID', oldest_id)
    end
  end
  if floor then redis.call('SET', floor_key, floor) end
  return floor
end
"""
# KEYS: stream, floor. ARGV: max points or "", oldest id kept or "".
TRIM_SCRIPT = TRIM_FUNCTION + "return trim(KEYS[1], KEYS[2], ARGV[1], ARGV[2])"

# Every stream's batch of a tick in one call: XADD each point with its id, then trim. ARGV[1]:
# the key prefix ("<prefix>:"); ARGV[2]: the batches, separated by a record separator (\x1e,
# which neither slugs, ids, numbers nor JSON text hold raw), each "<slug>\n<max points or
# ''>\n<oldest id kept or ''>\n" then its points (entries_text), either as "p\n" and
# "<id>\n<p>\n" pairs, or for the usual batch of number columns as "c\n", the ids and the
# times on a line each, then per series its name (as JSON) and its values on a line each,
# comma-separated: the script writes each point's `[t,{"name":v}]` itself. Ids, numbers and
# JSON names hold no newline, ids and numbers no comma.
# One command and two arguments for all streams keep the client's cost per tick rather than
# per stream or per point: redis-py packs each argument in Python (2,000 keys and 1,000 texts
# took 2.4 ms a tick), and a Python string per point was most of a tick's cost (1.6 us a
# point). So the script builds the keys itself (`<prefix>window:<slug>`, as RedisHistory.key):
# fine on one Redis (and under Sentinel), which is what LiveCharts runs on, not on a Cluster.
# Each batch runs under pcall: a refused one (an id below its stream's newest) is
# answered with its error and the others are stored. Returns 0 when every batch was stored,
# else per batch 0 or the error text: an answer of 1,000 zeros a tick cost redis-py 1.5 ms of
# CPU to read (0.3 us a point at 1,000 streams, measured here), one integer 0.07 ms.
APPEND_SCRIPT = (
    TRIM_FUNCTION
    + """
local call, gmatch, find, sub = redis.call, string.gmatch, string.find, string.sub
-- A batch is ARGV[2] from `from` to `to`: its lines are found by a plain find (a memchr), not by
-- a pattern that steps through it a character at a time, and the batch is never copied whole
-- (both were a sixth of the script's instructions a point, counted by callgrind).
local function append(key, floor_key, text, from, to)
  local first = find(text, '\\n', from, true)
  local second = find(text, '\\n', first + 1, true)
  local max_points, oldest_id = sub(text, from, first - 1), sub(text, first + 1, second - 1)
  local mode, start = sub(text, second + 1, second + 1), second + 3
  if mode == 'p' then
    for id, p in gmatch(sub(text, start, to), '([^\\n]+)\\n([^\\n]*)\\n') do
      call('XADD', key, id, 'p', p)
    end
  else
    -- Its lines: the ids, the times, then each series' JSON name and values. Each column is
    -- read by an iterator in step with the ids (no table of its items): Lua's string work was
    -- a third of the script's time a point.
    local lines, at = {}, start
    while true do
      local stop = find(text, '\\n', at, true)
      if not stop or stop > to then break end
      lines[#lines + 1] = sub(text, at, stop - 1)
      at = stop + 1
    end
    local times = gmatch(lines[2], '[^,]+')
    if #lines == 4 then
      -- One series, the usual batch: each point's text in one concatenation.
      local head, values = ',{' .. lines[3] .. ':', gmatch(lines[4], '[^,]+')
      for id in gmatch(lines[1], '[^,]+') do
        call('XADD', key, id, 'p', '[' .. times() .. head .. values() .. '}]')
      end
    else
      local heads, columns, parts = {}, {}, {}
      for i = 3, #lines - 1, 2 do
        heads[#heads + 1] = lines[i] .. ':'
        columns[#columns + 1] = gmatch(lines[i + 1], '[^,]+')
      end
      for id in gmatch(lines[1], '[^,]+') do
        for s = 1, #heads do parts[s] = heads[s] .. columns[s]() end
        call('XADD', key, id, 'p', '[' .. times() .. ',{' .. table.concat(parts, ',') .. '}]')
      end
    end
  end
  trim(key, floor_key, max_points, oldest_id)
end
local prefix, answers, refused = ARGV[1], {}, false
-- ARGV[3], when given: the feeds' statuses, a line of slug and a line of JSON each, stored
-- before the points.
for slug, status in string.gmatch(ARGV[3] or '', '([^\\n]*)\\n([^\\n]*)\\n') do
  redis.call('SET', prefix .. 'status:' .. slug, status)
end
local text, at, size = ARGV[2], 1, #ARGV[2]
while at <= size do
  -- A batch: its slug's line, then what append reads, up to the next record separator.
  local stop = (find(text, '\\30', at, true) or size + 1) - 1
  local slug_end = find(text, '\\n', at, true)
  local slug = sub(text, at, slug_end - 1)
  local key, floor_key = prefix .. 'window:' .. slug, prefix .. 'floor:' .. slug
  local ok, err = pcall(append, key, floor_key, text, slug_end + 1, stop)
  at = stop + 2
  if ok then
    answers[#answers + 1] = 0
  else
    refused = true
    if type(err) == 'table' and err.err then
      answers[#answers + 1] = err.err
    else
      answers[#answers + 1] = tostring(err)
    end
  end
end
if not refused then return 0 end
return answers
"""
)

_point_json = json.JSONEncoder(separators=(",", ":")).encode
dumps = orjson.dumps


def entries_text(entries: Sequence[Entry]) -> str:
    """APPEND_SCRIPT's points of one batch: as columns when every point holds the same series
    of numbers (the script writes each point's JSON), else each point's id and JSON
    `[t, values]`. Columns are written by orjson (a float repr apiece took longer): its float
    text differs from the json module's only in form (0.00001 for 1e-05), read back the same."""
    ids, points = ids_and_points(entries)
    columns = _columns_text(entries, points)
    if columns is None:
        lines = [f"{id_}\n{_point_json([p.t, p.values])}\n" for id_, p in zip(ids, points, strict=True)]
        return "p\n" + "".join(lines)
    return f"c\n{','.join(ids)}\n{columns}"


def _columns_text(entries: Sequence[Entry], points: Sequence[Point]) -> str | None:
    """The usual batch, every point with the same series and every time and value a number:
    its times on a line, then each series' JSON name and values on a line each, numbers
    comma-separated. None for anything else (gaps, non-finite values, other series)."""
    first = points[0].values if points else None
    if not first:
        return None
    # The times and columns the batch's other texts are made from (frames.columns): the
    # columns start with the first point's series, in its order, and hold more only when a
    # point has another. So the same number of them, and below no null in any (a point
    # lacking a series has a null there), is every point holding exactly those series: checked
    # on the columns made once for every text, not on each point's values again (that pass
    # was about an eighth of entries_text, 0.1 us a point, measured here).
    times, y = times_and_columns(entries)
    if len(y) != len(first):
        return None
    if len(first) > 1 and not all(list(point.values) == list(first) for point in points):
        return None  # the same series in another order: written in its own order
    try:
        # One text for all: [[times],[series],...], checked and cut at once.
        text = dumps([times, *y.values()])
    except TypeError:  # what orjson cannot write (an integer past 64 bits)
        return None
    # Nothing but numbers, commas and the brackets: null (a gap, a missing series, or a NaN
    # orjson wrote so), true, text go point by point, written by the json module as before.
    if text.translate(None, _ARRAY_CHARS):
        return None
    times_text, *series = text[2:-2].decode().split("],[")
    return f"{times_text}\n" + "".join(
        [f"{_name_json(name)}\n{values}\n" for name, values in zip(first, series, strict=True)]
    )


_ARRAY_CHARS = b"0123456789.-+e,[]"
# A series name as JSON, for each batch of each tick: the few names a worker sees, encoded once.
_name_json = functools.lru_cache(maxsize=4096)(_point_json)


class RedisHistory(History):
    """One Redis Stream per stream: XADD with our own ids, trimmed by MAXLEN and MINID."""

    def __init__(self, url: str, *, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        parse_address(url)  # a malformed address fails here, not at the first command
        self._trim_script: Any = None
        # The tick's history script runs on a thread of its own with a blocking client: the
        # thread sends it at once, whatever the loop is doing, and its answer costs the loop one
        # callback. redis.asyncio took three or four loop iterations to send it and read the
        # answer, each behind every feed task ready then.
        self._appender: ThreadPoolExecutor | None = None
        self._append_client: Any = None
        self._thread_script: Any = None

    def _redis(self) -> Any:
        client = loop_client(self.url, user="window")
        if self._trim_script is None:
            # Script objects: each runs on whichever client or pipeline it is given.
            self._trim_script = client.register_script(TRIM_SCRIPT)
        return client

    def key(self, slug: str) -> str:
        return f"{self.prefix}:window:{slug}"

    def floor_key(self, slug: str) -> str:
        # The id of the newest point trimmed away: Redis's own max-deleted-entry-id counts
        # XDEL only, not XTRIM, so we keep it ourselves.
        return f"{self.prefix}:floor:{slug}"

    def status_key(self, slug: str) -> str:
        return f"{self.prefix}:status:{slug}"

    async def append(self, slug: str, entries: Sequence[Entry], *, retention: Retention) -> None:
        (error,) = await self.append_many([WindowAppend(slug, entries, retention)])
        if error is not None:
            raise error

    async def append_many(self, batches: Sequence[WindowAppend]) -> list[Exception | None]:
        """Every stream's batch in one command (APPEND_SCRIPT), sent from the appender thread:
        one round trip per tick however many streams moved, and its answer one callback on the
        loop (on a busy worker, each loop iteration a wait takes runs every ready feed first)."""
        if not batches:
            return []
        return await self._start_append(batches, statuses="")

    async def append_tick(
        self, batches: Sequence[WindowAppend], *, statuses: dict[str, dict[str, Any]]
    ) -> list[Exception | None]:
        """The statuses and the batches in one command: a tick of 1,000 streams is one round
        trip, not two (an MSET of 2,000 arguments also cost redis-py 5 ms to pack)."""
        return await self.start_append_tick(batches, statuses=statuses)

    def start_append_tick(
        self, batches: Sequence[WindowAppend], *, statuses: dict[str, dict[str, Any]]
    ) -> asyncio.Future[list[Exception | None]]:
        if not batches:  # the statuses alone, by set_statuses
            return asyncio.ensure_future(History.append_tick(self, batches, statuses=statuses))
        # Slugs hold no newline and JSON text none raw: a line each.
        text = "".join([f"{slug}\n{json.dumps(status)}\n" for slug, status in statuses.items()])
        answers = self._start_append(batches, statuses=text)
        if statuses:

            def warn_if_lost(done: asyncio.Future[list[Exception | None]]) -> None:
                errors = None if done.cancelled() else done.result()
                if errors and all(error is not None for error in errors):
                    log.warning("could not store the health of %d feeds (%s)", len(statuses), errors[0])

            answers.add_done_callback(warn_if_lost)
        return answers

    def _start_append(
        self, batches: Sequence[WindowAppend], *, statuses: str
    ) -> asyncio.Future[list[Exception | None]]:
        """The batches' texts, made here, then APPEND_SCRIPT sent from the appender thread."""
        texts: list[str] = []
        for batch in batches:
            oldest_ms = batch.retention.oldest_kept_ms()
            points = batch.retention.points
            texts.append(
                f"{batch.slug}\n{'' if points is None else points}\n"
                f"{'' if oldest_ms is None else f'{oldest_ms}-0'}\n{entries_text(batch.entries)}"
            )
        args = [f"{self.prefix}:", "\x1e".join(texts), statuses]
        if self._appender is None:
            self._appender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-append")
        return asyncio.wrap_future(self._appender.submit(self._run_append, args, len(batches)))

    def _appender_redis(self) -> Any:
        """The appender thread's blocking client (redis-py's are safe to share between threads)."""
        if self._append_client is None:
            # A read timeout: a Redis that takes the script and never answers (hung, or a
            # network that drops packets) fails the tick's append, whose batches are kept for
            # the next tick, instead of holding the thread, the flush and every feed for good
            # (a thread cannot be cancelled, and the process waits for it at exit).
            self._append_client = sync_client(self.url, socket_timeout=APPEND_TIMEOUT_SECONDS)
            self._thread_script = self._append_client.register_script(APPEND_SCRIPT)
        return self._append_client

    def _run_append(self, args: list[str], count: int) -> list[Exception | None]:
        """On the appender thread: the script call and its answers, one per batch."""
        try:
            client = self._appender_redis()
            answers = self._thread_script(keys=[], args=args, client=client)
        except Exception as error:
            # The call failed as a whole (connection lost, Redis busy): which batches were
            # stored is unknown, so every one is retried (a retried point gets a new id: a
            # viewer may get it twice, never miss it).
            return [error] * count
        if answers == 0:  # every batch stored
            return [None] * count
        from redis.exceptions import ResponseError

        return [None if answer == 0 else ResponseError(_text(answer)) for answer in answers]

    async def _queue_trim(self, pipe: Any, slug: str, retention: Retention) -> None:
        oldest_ms = retention.oldest_kept_ms()
        # A Script object: the pipeline loads it (SCRIPT LOAD) before MULTI when Redis lacks it.
        await self._trim_script(
            keys=[self.key(slug), self.floor_key(slug)],
            args=[
                "" if retention.points is None else retention.points,
                "" if oldest_ms is None else f"{oldest_ms}-0",
            ],
            client=pipe,
        )

    async def read(
        self, slug: str, *, after: str | None, retention: Retention, limit: int | None = None
    ) -> Backfill:
        key = self.key(slug)
        after_key = None if after is None else parse_id(after)
        # One MULTI so the window, its ends and its counters are read at the same instant.
        async with self._redis().pipeline(transaction=True) as pipe:
            await self._queue_trim(pipe, slug, retention)
            pipe.get(self.floor_key(slug))
            pipe.xrange(key, min="-" if after is None else f"({after}", max="+", count=limit)
            pipe.xrange(key, min="-", max="+", count=1)
            pipe.xrevrange(key, max="+", min="-", count=1)
            pipe.xinfo_stream(key)
            *_, floor, newer, first, last, info = await pipe.execute(raise_on_error=False)
        ever_added = 0 if isinstance(info, Exception) else int(info["entries-added"])  # no key yet
        gap = is_gap(
            after=after_key,
            first=parse_id(_text(first[0][0])) if first else None,
            last=parse_id(_text(last[0][0])) if last else None,
            max_deleted=parse_id(_text(floor)) if floor else (0, 0),
            ever_added=ever_added,
        )
        if gap:
            newer = await self._redis().xrange(key, min="-", max="+", count=limit)
        return Backfill([_entry(entry_id, fields) for entry_id, fields in newer], gap)

    async def last_id(self, slug: str) -> str | None:
        newest = await self._redis().xrevrange(self.key(slug), count=1)
        return _text(newest[0][0]) if newest else None

    async def last_ids(self, slugs: Sequence[str]) -> dict[str, str | None]:
        async with self._redis().pipeline(transaction=False) as pipe:
            for slug in slugs:
                pipe.xrevrange(self.key(slug), count=1)
            found = await pipe.execute()
        return {
            slug: _text(newest[0][0]) if newest else None for slug, newest in zip(slugs, found, strict=True)
        }

    async def last_entry(self, slug: str) -> Entry | None:
        newest = await self._redis().xrevrange(self.key(slug), count=1)
        return _entry(*newest[0]) if newest else None

    async def last_entries(self, slugs: Sequence[str]) -> list[Entry | None]:
        async with self._redis().pipeline(transaction=False) as pipe:
            for slug in slugs:
                pipe.xrevrange(self.key(slug), count=1)
            found = await pipe.execute()
        return [_entry(*newest[0]) if newest else None for newest in found]

    async def set_status(self, slug: str, status: dict[str, Any]) -> None:
        await self._redis().set(self.status_key(slug), json.dumps(status))

    async def set_statuses(self, statuses: dict[str, dict[str, Any]]) -> None:
        if statuses:
            await self._redis().mset({self.status_key(slug): json.dumps(s) for slug, s in statuses.items()})

    async def get_status(self, slug: str) -> dict[str, Any] | None:
        raw = await self._redis().get(self.status_key(slug))
        return None if raw is None else json.loads(raw)

    async def get_statuses(self, slugs: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        if not slugs:
            return {}
        raws = await self._redis().mget([self.status_key(slug) for slug in slugs])
        return {slug: None if raw is None else json.loads(raw) for slug, raw in zip(slugs, raws, strict=True)}

    async def drop_stream(self, slug: str) -> None:
        await self._redis().delete(self.key(slug), self.status_key(slug), self.floor_key(slug))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(entry_id: bytes | str, fields: dict) -> Entry:
    # parse_json: json.loads of the bytes took 2.9 us a point, a third of a 1,500-point
    # window's read once hiredis parses the reply (a reconnect storm reads twenty).
    t, values = parse_json(fields[b"p"] if b"p" in fields else fields["p"])
    return Entry(id=_text(entry_id), point=Point(t=t, values=values))


def get_history() -> History:
    """The process's history backend, chosen by REDIS_URL."""
    return runtime.shared("storage.window", _new_history)


def _new_history() -> History:
    if settings.REDIS_URL:
        return RedisHistory(settings.REDIS_URL, prefix=settings.LIVECHARTS_REDIS_PREFIX)
    return MemoryHistory()
