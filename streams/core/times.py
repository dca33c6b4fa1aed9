"""Times read from text and numbers (feeds, the push API, the range API), and written for messages.

One reader for every way a time comes in: a feed's `extract.time` and a pushed point's `t`
(numbers of s, ms, µs or ns told apart by size, or ISO 8601 text), and the range API's `start`
and `end` (epoch milliseconds or ISO 8601 from a query string). What differs between them is
an option of `parse_time`, so each keeps what it accepts and both share the parsing itself.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

# How numbers read with numbers="auto": below 1e11 seconds (up to the year 5138), below 1e14
# milliseconds, below 1e17 microseconds, else nanoseconds. Each bound is the year 5138 in the
# smaller unit and March 1973 in the larger, so every time from 1973 to 5138 reads right in any
# of the four units; an earlier one needs a fixed unit.
UNIT_BOUNDS = ((1e11, 1), (1e14, 1_000), (1e17, 1_000_000))
DIVISORS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_PLAIN_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


class BadTime(ValueError):
    """A time that cannot be read; the message says why, for the caller to name the field."""


def parse_time(
    raw: Any,
    *,
    numbers: str | None = "auto",
    iso: bool = True,
    plain_numbers: bool = False,
    space_for_plus: bool = False,
    limit: float | None = None,
) -> float:
    """Seconds since the epoch from a number (or a number as text) or ISO 8601 text (UTC when
    no offset is given). Raises BadTime.

    `numbers`: the unit of numbers (s, ms, us, ns; auto: by size, see UNIT_BOUNDS), or None to
    refuse numbers. `iso`: ISO 8601 text is accepted; when it is not, text must be a number.
    `plain_numbers`: text is a number only when written -12.5 (else whatever float() reads,
    1e9 too), anything else is read as ISO 8601. `space_for_plus`: a space before the offset
    stands for the "+" an unencoded query string turns into one. `limit`: times further than
    this many seconds from 1970 are refused (a unit mistake).
    """
    if isinstance(raw, bool):
        raise BadTime(f"{raw!r} is a boolean, not a time")
    if isinstance(raw, str) and numbers is not None:
        text = raw.strip()
        if plain_numbers:
            number = float(text) if _PLAIN_DECIMAL.match(text) else None
        else:
            try:
                number = float(text)
            except ValueError:
                number = None
        if number is not None:
            raw = number
        elif not iso:
            raise BadTime(f"{_show(raw)} is not a number of {numbers}")
    if isinstance(raw, (int, float)):
        if numbers is None:
            raise BadTime(f"{raw!r} is a number, not an ISO 8601 time")
        t = _epoch_seconds(raw, unit=numbers)
        if not math.isfinite(t):
            raise BadTime(f"{_show(raw)} is not a finite number")
    elif isinstance(raw, str):
        t = _iso_seconds(raw, space_for_plus=space_for_plus, numbers=numbers)
    else:
        raise BadTime(f"{_show(raw)} is not a time")
    if limit is not None and abs(t) > limit:
        raise BadTime(f"{_show(raw)} is out of range")
    return t


def _epoch_seconds(number: float, *, unit: str) -> float:
    divisor = DIVISORS.get(unit)
    if divisor is None:  # auto
        size = abs(number)
        divisor = 1_000_000_000
        for bound, by in UNIT_BOUNDS:
            if size < bound:
                divisor = by
                break
    try:
        # An int over an int is rounded once, so nanoseconds keep what a float can hold.
        return number / divisor if divisor != 1 else float(number)
    except OverflowError:  # an integer of 309+ digits
        raise BadTime("the number is too large") from None


def _iso_seconds(raw: str, *, space_for_plus: bool, numbers: str | None) -> float:
    text = raw.strip()
    # fromisoformat takes Z from 3.11 on; the replace keeps a lower-case z working too.
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    candidates = [text]
    if space_for_plus and " " in text:
        head, _, tail = text.rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if numbers in (None, "auto"):
        raise BadTime(f"{_show(raw)} is not an ISO 8601 time")
    raise BadTime(f"{_show(raw)} is neither epoch {numbers} nor an ISO 8601 time")


def utc_text(t: float) -> str:
    """A time as ISO 8601 UTC text for messages (the number itself when out of range)."""
    try:
        return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{t:g}"


def _show(data: Any) -> str:
    # Short and on one line: these messages end up in logs and 400 answers.
    text = json.dumps(data, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."
