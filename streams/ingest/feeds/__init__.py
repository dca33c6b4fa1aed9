"""The registry of feed kinds: a kind name maps to its label and to the module of its Feed class.

A kind's module is imported on first use: the models know the kinds (their choices, which ones
the worker runs) without importing any client library, so `migrate` and the web processes do not
load aiomqtt, websockets or httpx until a feed is checked or run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from streams.ingest.feeds.base import FeedSettingsError, check_destinations

if TYPE_CHECKING:
    from streams.ingest.feeds.base import Feed


@dataclass(frozen=True)
class FeedKind:
    """What is known of a kind before its module is imported."""

    label: str
    path: str  # "module.Class" of its Feed subclass
    # Pulled feeds get a task in the ingest worker (the push feed too: it drains the API's inbox).
    pulled: bool = True

    def load(self) -> type[Feed]:
        return import_string(self.path)


# In the order admin offers them.
FEED_KINDS: dict[str, FeedKind] = {
    "simulate": FeedKind(
        "Simulated data (sine, random walk, noise)", "streams.ingest.feeds.simulate.SimulateFeed"
    ),
    "websocket": FeedKind("Messages pushed over a WebSocket", "streams.ingest.feeds.websocket.WebsocketFeed"),
    "sse": FeedKind("Server-Sent Events (text/event-stream)", "streams.ingest.feeds.sse.SSEFeed"),
    "poll": FeedKind("Poll a JSON endpoint over HTTP", "streams.ingest.feeds.poll.PollFeed"),
    "mqtt": FeedKind("Subscribe to MQTT topics", "streams.ingest.feeds.mqtt.MqttFeed"),
    "push": FeedKind(
        "Pushed to the API (POST /api/streams/<slug>/points)", "streams.ingest.feeds.push.PushFeed"
    ),
}


def feed_class(kind: str) -> type[Feed]:
    """The Feed class of a kind, its module imported now if it was not yet."""
    try:
        entry = FEED_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(FEED_KINDS))
        raise FeedSettingsError("kind", f"unknown feed kind {kind!r} (known: {known})") from None
    return entry.load()


def clean_feed_settings(kind: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Settings as saved by admin and provision: checked by the kind, and its hosts looked up."""
    feed = feed_class(kind)
    cleaned = feed.clean_settings(settings or {})
    check_destinations(feed, cleaned)
    return feed.settings_json(cleaned)


def build_feed(kind: str, settings: Mapping[str, Any]) -> Feed:
    return feed_class(kind)(settings)
