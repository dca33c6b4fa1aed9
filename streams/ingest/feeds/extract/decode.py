"""`extract.decode`: JSON text nested in a payload, decoded before any other path runs.

JMESPath cannot parse a JSON string inside the payload (StackExchange sends
`{"action": ..., "data": "<JSON text>"}`). A decode path names such a field; it must be a plain
path (fields, `[n]` and `[*]`) so the decoded value can be written back in its place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.extract.errors import BadPayload, show
from streams.ingest.feeds.extract.paths import Path

# ("field", name), ("index", n) or ("each", None)
Step = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class Decode:
    """One decode path: its text as typed, and the steps that lead to the JSON text."""

    text: str
    steps: tuple[Step, ...]

    def apply(self, payload: Any) -> Any:
        """`payload` with the JSON text decoded; copies what it changes, never the caller's."""
        return _decode_at(payload, self.steps)


def decode_path(path: Path, *, key: str) -> Decode:
    """The decode of a compiled path; FeedSettingsError naming `key` when it is not a plain path."""
    steps: list[Step] = []

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

    walk(path.tree)
    return Decode(text=path.text, steps=tuple(steps))


def _decode_at(data: Any, steps: tuple[Step, ...]) -> Any:
    if not steps:
        if not isinstance(data, str):
            return data
        try:
            return json.loads(data)
        except ValueError:
            raise BadPayload(f"decode: {show(data)} is not JSON") from None
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
