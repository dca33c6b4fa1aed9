"""What a viewer resuming after an id is sent first: the live window, else the database, else
a gap. The socket consumer and the SSE output both start a viewer here, so a resume is the
same whichever way the viewer came back (a reconnect, a lost batch, a Redis restart that
emptied the window while the database kept every point)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from channels.db import database_sync_to_async

from streams.core.ids import parse_id
from streams.core.points import Entry
from streams.core.retention import Retention
from streams.storage.store import read_after
from streams.storage.window import History, get_history

# A resume from the database sends at most the newest this many points (and a gap before them).
MAX_RESUME_POINTS = 100_000
# The socket's backfill reads the window a page at a time: the largest window (100,000 points
# of 20 series) is tens of MB of Redis reply, more than redis-py's 5 s socket timeout allows to
# parse on a busy host, and as Python objects several times that. A page holds about
# PAGE_VALUES values (points times series, sized from the page before; the first is small),
# and never more than PAGE_POINTS points: all the memory a backfill holds at a time.
PAGE_POINTS = 10_000
PAGE_VALUES = 20_000
FIRST_PAGE_POINTS = 500


@dataclass(frozen=True, slots=True)
class Segment:
    """Points to send in id order; `gap` when points before them are lost for good."""

    entries: list[Entry]
    gap: bool = False


def stored_after(slug: str, *, after: str, limit: int) -> tuple[bool, list[Entry]]:
    """(covered, entries): the stored points after `after` (the newest `limit`), and whether
    the database still holds every point after it (the oldest rows are pruned first, so it
    does when a batch at or before `after` is still there)."""
    from streams.models import StoredBatch

    entries = read_after(slug, after=after, limit=limit + 1)
    if len(entries) > limit:
        return False, entries[-limit:]
    ms, seq = parse_id(after)
    batches = StoredBatch.objects.filter(stream__slug=slug)
    if (batches.filter(last_ms__lt=ms) | batches.filter(last_ms=ms, last_seq__lte=seq)).exists():
        return True, entries
    # No batch ends at or before `after`: covered only if `after` is inside the oldest one left.
    oldest = (
        (batches.filter(last_ms__gt=ms) | batches.filter(last_ms=ms, last_seq__gt=seq))
        .order_by("last_ms", "last_seq")
        .values_list("first_ms", "first_seq")
        .first()
    )
    return oldest is not None and tuple(oldest) <= (ms, seq), entries


async def pages_since(
    slug: str, *, after: str | None, retention: Retention, stored: bool, page_points: int = PAGE_POINTS
) -> AsyncIterator[Segment]:
    """Every point after `after` that is still kept anywhere, as segments to send in order: in
    pages of at most `page_points` from the window (the database's part, at most
    MAX_RESUME_POINTS, in one), each read when the caller asks for it. A window
    trimmed past the cursor meanwhile (a slow reader of a fast stream) yields a gap and the
    window from its start: what was between is gone."""
    history = get_history()
    first = min(page_points, FIRST_PAGE_POINTS)
    page = await history.read(slug, after=after, retention=retention, limit=first)
    if after is not None and page.gap and stored:
        covered, entries = await database_sync_to_async(stored_after)(
            slug, after=after, limit=MAX_RESUME_POINTS
        )
        if entries:
            yield Segment(entries, gap=not covered)
            del entries[:-1]  # sent: only the cursor is needed
            async for segment in _pages_after(
                history, slug, cursor=entries[-1], retention=retention, page_points=page_points
            ):
                yield segment
            return
    yield Segment(page.entries, gap=after is not None and page.gap)
    if len(page.entries) == first:
        async for segment in _pages_after(
            history, slug, cursor=page.entries[-1], retention=retention, page_points=page_points
        ):
            yield segment


async def _pages_after(
    history: History, slug: str, *, cursor: Entry, retention: Retention, page_points: int
) -> AsyncIterator[Segment]:
    while True:
        size = max(1, min(page_points, PAGE_VALUES // max(1, len(cursor.point.values))))
        page = await history.read(slug, after=cursor.id, retention=retention, limit=size)
        entries = page.entries
        if page.gap:  # the window from its start: only what is newer than the cursor is news
            last = parse_id(cursor.id)
            entries = [entry for entry in entries if parse_id(entry.id) > last]
        if entries:
            yield Segment(entries, gap=page.gap)
            cursor = entries[-1]
        if len(page.entries) < size:
            return
