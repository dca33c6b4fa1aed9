"""The registry of feed kinds: a kind name maps to its Feed class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.ingest.feeds.base import Feed, FeedSettingsError, check_destinations
from streams.ingest.feeds.mqtt import MqttFeed
from streams.ingest.feeds.poll import PollFeed
from streams.ingest.feeds.push import PushFeed
from streams.ingest.feeds.simulate import SimulateFeed
from streams.ingest.feeds.sse import SSEFeed
from streams.ingest.feeds.websocket import WebsocketFeed

FEED_KINDS: dict[str, type[Feed]] = {
    feed.kind: feed for feed in (SimulateFeed, WebsocketFeed, SSEFeed, PollFeed, MqttFeed, PushFeed)
}


def feed_class(kind: str) -> type[Feed]:
    try:
        return FEED_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(FEED_KINDS))
        raise FeedSettingsError("kind", f"unknown feed kind {kind!r} (known: {known})") from None


def clean_feed_settings(kind: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Settings as saved by admin and provision: checked by the kind, and its hosts looked up."""
    feed = feed_class(kind)
    cleaned = feed.clean_settings(settings or {})
    check_destinations(feed, cleaned)
    return feed.settings_json(cleaned)


def build_feed(kind: str, settings: Mapping[str, Any]) -> Feed:
    return feed_class(kind)(settings)
