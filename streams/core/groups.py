"""Channel-layer group names and the points message sent to them: the one place broadcast
and delivery agree on both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.core.frames import batch_text
from streams.core.ids import IdKey
from streams.core.points import Entry, last_id


def group_name(slug: str) -> str:
    """The channel-layer group of a stream's viewers (slugs are [-a-zA-Z0-9_], all allowed)."""
    return f"stream.{slug}"


def points_message(slug: str, entries: Sequence[Entry], *, prev: str | None, key: IdKey) -> dict[str, Any]:
    """One stream's batch as the group message broadcast sends: its text encoded once, here.
    `key` is the last id already parsed, so consumers compare it per socket without a regex."""
    return {
        "type": "stream.points",
        "stream": slug,
        "id": last_id(entries),
        "key": key,
        "prev": prev,
        "points": len(entries),
        "text": batch_text(slug=slug, prev=prev, entries=entries),
    }
