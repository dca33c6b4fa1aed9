"""A stream's feed health: its state, counters and last error, as the worker reports them.

The worker owns one FeedHealth per running feed and publishes `as_status()` through
broadcast, which stores it beside the stream's history (so pages and admin read the latest)
and sends it to viewers as a `status` frame.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync

CONNECTING, LIVE, STALLED, ERROR = "connecting", "live", "stalled", "error"
STATES = (CONNECTING, LIVE, STALLED, ERROR)
# A status is fresh while its worker keeps re-publishing it; older than this, the worker that
# wrote it is gone (or the stream is not running) and pages say so.
STATUS_MAX_AGE = 30.0
MAX_ERROR_CHARS = 500


@dataclass
class FeedHealth:
    state: str = CONNECTING
    points: int = 0
    bad_payloads: int = 0
    reconnects: int = 0
    last_point_at: float | None = None
    error: str | None = None
    error_at: float | None = None
    retry_at: float | None = None
    stall_after: float | None = None

    def got_points(self, count: int, *, now: float) -> bool:
        """Count a batch; True when the state changed (the caller publishes at once)."""
        self.points += count
        self.last_point_at = now
        changed = self.state != LIVE
        self.state = LIVE
        self.retry_at = None
        return changed

    def is_stalled(self, *, now: float, since: float) -> bool:
        """No point for `stall_after` seconds, counted from the last point or the (re)connect."""
        # A feed that connects but never sends (a quiet topic) stalls too.
        if self.state not in (LIVE, CONNECTING) or self.stall_after is None:
            return False
        return now - max(self.last_point_at or 0.0, since) >= self.stall_after

    def failed(self, error: BaseException | str, *, retry_at: float | None, now: float) -> None:
        self.state = ERROR
        self.error = str(error)[:MAX_ERROR_CHARS] or type(error).__name__
        self.error_at = now
        self.retry_at = retry_at

    def as_status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "points": self.points,
            "bad_payloads": self.bad_payloads,
            "reconnects": self.reconnects,
            "last_point_at": self.last_point_at,
            "error": self.error,
            "error_at": self.error_at,
            "retry_at": self.retry_at,
            "stall_after": self.stall_after,
        }


def describe_status(status: dict[str, Any] | None, *, now: float | None = None) -> dict[str, Any]:
    """A stored status made ready for a page: the state, or `unknown` when nobody reports it."""
    now = time.time() if now is None else now
    if not status:
        return {"state": "unknown", "fresh": False, "last_point_label": "none yet"}
    at = status.get("at") or 0.0
    fresh = now - at <= STATUS_MAX_AGE
    last = status.get("last_point_at")
    return {
        **status,
        "state": status.get("state", "unknown") if fresh else "unknown",
        "fresh": fresh,
        "last_point_label": "none yet" if last is None else ago(now - last),
    }


def ago(seconds: float) -> str:
    """Like the page's health.js: "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"."""
    if seconds < 2:
        return "just now"
    if seconds < 90:
        return f"{round(seconds)} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} d ago"


def stream_statuses(slugs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For sync views and admin: each stream's status, described (see describe_status)."""
    from streams.storage.window import get_history

    slugs = list(slugs)
    try:
        stored = async_to_sync(get_history().get_statuses)(slugs)
    except Exception:
        # A page must render while Redis is down; it just cannot say how the feeds are.
        stored = {}
    now = time.time()
    return {slug: describe_status(stored.get(slug), now=now) for slug in slugs}
