"""What every feed kind shares: the point shape, the settings error, the Feed base.

A feed kind is one module in streams/feeds/ with a Feed subclass registered in
streams/feeds/__init__.py. It validates its own settings and yields batches of points.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Point:
    """One sample: a time (seconds since the epoch) and a value per named series."""

    t: float
    values: Mapping[str, float | None]


Batch = list[Point]


class FeedSettingsError(ValueError):
    """A feed setting is wrong; `key` names it so admin and provision can point at it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class Feed(ABC):
    kind: ClassVar[str]
    label: ClassVar[str]
    # Pulled feeds get a task in the ingest worker; pushed ones arrive through the API.
    pulled: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = self.clean_settings(settings)

    @classmethod
    @abstractmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Return the settings with defaults filled in, or raise FeedSettingsError."""

    @classmethod
    def series_names(cls, settings: Mapping[str, Any]) -> list[str]:
        """Series known before any data arrives (the page draws their traces up front)."""
        return []

    @abstractmethod
    def batches(self) -> AsyncIterator[Batch]:
        """Yield batches of points for as long as the feed runs."""


def reject_unknown(raw: Any, allowed: set[str], *, prefix: str = "") -> None:
    """Refuse settings that are not an object, or that hold a key the kind does not know."""
    if not isinstance(raw, Mapping):
        raise FeedSettingsError(prefix.rstrip(".") or "settings", "must be an object")
    # YAML allows non-text keys (`5: x`): name them as text.
    unknown = sorted(str(key) for key in set(raw) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise FeedSettingsError(prefix + unknown[0], f"unknown setting (known: {known})")


def number_setting(
    raw: Mapping[str, Any],
    key: str,
    *,
    default: float,
    minimum: float | None = None,
    maximum: float | None = None,
    prefix: str = "",
) -> float:
    value = raw.get(key, default)
    name = prefix + key
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FeedSettingsError(name, f"must be a number, not {value!r}")
    if not math.isfinite(value):
        raise FeedSettingsError(name, "must be a finite number")
    if minimum is not None and value < minimum:
        raise FeedSettingsError(name, f"must be at least {minimum:g}, not {value:g}")
    if maximum is not None and value > maximum:
        raise FeedSettingsError(name, f"must be at most {maximum:g}, not {value:g}")
    return value


def choice_setting(
    raw: Mapping[str, Any], key: str, *, choices: tuple[str, ...], default: str, prefix: str = ""
) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise FeedSettingsError(prefix + key, f"must be one of {', '.join(choices)}, not {value!r}")
    return value
