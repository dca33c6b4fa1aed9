"""What every feed kind shares: the settings error, the Feed base, the settings helpers.

A feed kind is one module in streams/ingest/feeds/ with a Feed subclass registered in
streams/ingest/feeds/__init__.py. It validates its own settings and yields batches of points.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

# The feeds parse their messages with it (they import it from here, with the rest of base).
from streams.core.json_parse import parse_json as parse_json
from streams.core.points import Batch
from streams.ingest import netguard

log = logging.getLogger("streams.ingest.feeds")

# A feed that has sent nothing for this long is shown as stalled, unless its settings say
# otherwise (`stall_after`) or the kind knows its own rhythm (poll: three intervals).
DEFAULT_STALL_SECONDS = 60.0


class FeedSettingsError(ValueError):
    """A feed setting is wrong; `key` names it so admin and provision can point at it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class Feed(ABC):
    # The registry's name for it (streams/ingest/feeds/__init__.py holds its label), for logs.
    kind: ClassVar[str]
    # The stream this feed runs for; the worker sets it (the push feed reads its inbox by it).
    slug: str = ""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = self.clean_settings(settings)
        # Health counters the worker reads and reports; the feed only adds to them.
        self.bad_payloads = 0
        # A floor for the worker's next reconnect delay, when the server asked for one
        # (SSE `retry:`); None lets the worker's own backoff decide.
        self.retry_after: float | None = None

    def resume_after(self, t: float) -> None:
        """Called once before the first `batches()` with the time of the stream's newest stored
        point; a feed that re-reads windows (poll) skips what is already stored."""
        return None

    def handed_over(self, batch: Batch) -> Callable[[], None] | None:
        """Called as the worker gives `batch` to broadcast; what it returns, broadcast calls once
        the batch is in history (the push feed acknowledges its inbox then). None: nothing to do."""
        return None

    def describe(self) -> str:
        """Where this feed reads from, safe for logs (no credentials)."""
        return self.kind

    def stall_seconds(self) -> float:
        """How long without a point before the stream counts as stalled."""
        return float(self.settings.get("stall_after") or DEFAULT_STALL_SECONDS)

    def skip(self, reason: str) -> None:
        """Count a payload that could not be used and log it, sampled: the first three, then one
        in a hundred, so a broken source does not flood the log."""
        self.bad_payloads += 1
        if self.bad_payloads <= 3 or self.bad_payloads % 100 == 0:
            log.warning(
                "%s feed %s: bad payload #%d skipped: %s",
                self.kind,
                self.describe(),
                self.bad_payloads,
                reason[:300],
            )

    @classmethod
    @abstractmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Return the settings with defaults filled in, or raise FeedSettingsError. They may hold
        objects made for the feed (compiled extract paths): settings_json is the saved form."""

    @classmethod
    def settings_json(cls, cleaned: Mapping[str, Any]) -> dict[str, Any]:
        """Cleaned settings as saved (JSON), cleaning to the same again; most kinds' are JSON already."""
        return dict(cleaned)

    @classmethod
    def destinations(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(setting key, host) of every host this feed connects to, for the address check on
        save; cleaned settings. The `url` setting's host by default."""
        url = settings.get("url")
        host = urlsplit(url).hostname if isinstance(url, str) else None
        return [("url", host)] if host else []

    @classmethod
    def series_names(cls, settings: Mapping[str, Any]) -> list[str]:
        """Series known before any data arrives (the page draws their traces up front)."""
        return []

    @abstractmethod
    def batches(self) -> AsyncIterator[Batch]:
        """Yield batches of points for as long as the feed runs.

        Yield an empty batch once connected (the worker then shows the stream live before the
        first point). Raise or return when the connection is lost: the worker calls this again,
        on the same object, after a backoff.
        """


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


def stall_setting(raw: Mapping[str, Any]) -> float:
    """The optional `stall_after` setting: seconds without data before the stream shows stalled."""
    return number_setting(raw, "stall_after", default=DEFAULT_STALL_SECONDS, minimum=1, maximum=86_400)


def url_setting(raw: Mapping[str, Any], key: str = "url", *, schemes: tuple[str, ...]) -> str:
    url = raw.get(key)
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise FeedSettingsError(key, f"must be a {wanted} URL, not {url!r}")
    host_setting_check(parts.hostname, key=key)
    return url


def host_setting_check(host: str, *, key: str) -> None:
    """Refuse a host written as a non-public address or a localhost name, unless private
    feeds are allowed (no DNS lookup: this also runs when the worker builds a feed)."""
    message = netguard.refusal(host)
    if message is not None:
        raise FeedSettingsError(key, message)


def check_destinations(feed: type[Feed], settings: Mapping[str, Any]) -> None:
    """On save (admin, provision): refuse a host whose DNS addresses are not all public now.
    Connecting checks again (streams/ingest/netguard.py says why both)."""
    for key, host in feed.destinations(settings):
        message = netguard.refusal_after_lookup(host)
        if message is not None:
            raise FeedSettingsError(key, message)


def headers_setting(raw: Mapping[str, Any], key: str = "headers") -> dict[str, str]:
    headers = raw.get(key, {})
    if headers is None:
        return {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise FeedSettingsError(key, "must be an object of header names to text values")
    return dict(headers)


def safe_url(url: str) -> str:
    """The URL without credentials or query (where API keys travel), for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"
