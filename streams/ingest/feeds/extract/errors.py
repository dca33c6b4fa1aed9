"""What a payload that does not fit the extract settings raises, and how its data is shown."""

from __future__ import annotations

import json
from typing import Any


class BadPayload(ValueError):
    """A payload that does not fit the extract settings; the feed counts and skips it."""


def show(data: Any) -> str:
    """Some data, short and on one line, for a reason the feed logs."""
    text = json.dumps(data, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."
