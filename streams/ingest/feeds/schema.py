"""What each feed kind's settings are, key by key, for people: type, default, required, help.

The kinds themselves validate (each `clean_settings`); this table is what admin shows beside the
settings box, what it checks first (a required key left out is named as such, not as `not None`)
and where its starter settings come from. tests/ingest/feeds/test_schema.py checks every row against the
kind's own `clean_settings` (keys, defaults, required keys, types), so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.ingest.feeds.base import FeedSettingsError

# A default the kind works out from other settings (mqtt's port) or that is a whole structure
# (extract): `default_label` says it in words, and the agreement test does not compare it.
DERIVED = object()

TYPES = ("text", "url", "number", "integer", "boolean", "choice", "list", "object", "any")


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    help: str
    default: Any = None
    required: bool = False
    # How the default reads in admin, when the value itself does not say it well.
    default_label: str = ""
    choices: tuple[str, ...] = ()
    # A value admin's starter settings put in for a required key (to be replaced by the operator).
    example: Any = None

    @property
    def default_text(self) -> str:
        if self.required:
            return "required"
        if self.default_label:
            return self.default_label
        if self.default is None or self.default is DERIVED:
            return "none"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


@dataclass(frozen=True)
class KindSchema:
    kind: str
    doc: str  # file name under docs/feeds/
    summary: str
    keys: tuple[Key, ...] = field(default=())

    def key(self, name: str) -> Key | None:
        return next((key for key in self.keys if key.name == name), None)

    @property
    def required(self) -> list[Key]:
        return [key for key in self.keys if key.required]

    def starter(self) -> dict[str, Any]:
        """Settings to start from in admin: each required key with an example value."""
        return {key.name: key.example for key in self.keys if key.required}


STALL = Key(
    "stall_after",
    "number",
    "Seconds without a point before the stream shows as stalled (1-86400).",
    default=60,
)
HEADERS = Key(
    "headers",
    "object",
    'Header name: text value, sent with every request, e.g. {"X-Api-Key": "..."}. Values are secrets.',
    default={},
    default_label="none",
)


def _extract(what: str) -> Key:
    return Key(
        "extract",
        "object",
        "How a payload becomes points (JMESPath): records, time, value or values, series, "
        "aggregate… See the extract section of the docs.",
        default=DERIVED,
        default_label=f"value is the {what}",
    )


SCHEMAS: dict[str, KindSchema] = {
    schema.kind: schema
    for schema in (
        KindSchema(
            "simulate",
            "simulate.md",
            "Made-up waves: no network, nothing to fail. Wave keys at the top are every series' defaults.",
            (
                Key("rate", "number", "Points per second (1-1000).", default=10),
                Key(
                    "series",
                    "list",
                    'Names (["fast", "slow"]) or objects {name, shape, amplitude, period, offset, '
                    "noise}; at most 20.",
                    default=DERIVED,
                    default_label='["value"]',
                ),
                Key(
                    "shape",
                    "choice",
                    "sine, walk (random walk) or noise.",
                    default="sine",
                    choices=("sine", "walk", "noise"),
                ),
                Key("amplitude", "number", "Size of the wave (at least 0).", default=1.0),
                Key("period", "number", "Seconds of a sine's period, a walk's time scale.", default=10.0),
                Key("offset", "number", "The level the series moves around.", default=0.0),
                Key("noise", "number", "Standard deviation of noise added to every value.", default=0.0),
                Key("seed", "integer", "An integer makes the random parts repeat from run to run."),
            ),
        ),
        KindSchema(
            "websocket",
            "websocket.md",
            "Connects to a WebSocket server, sends the send messages, turns each message into points.",
            (
                Key(
                    "url",
                    "url",
                    "The server, a ws:// or wss:// URL.",
                    required=True,
                    example="wss://stream.example.com/feed",
                ),
                HEADERS,
                Key(
                    "send",
                    "list",
                    "Messages sent in order after each connect: text, or JSON objects/lists.",
                    default=[],
                    default_label="none",
                ),
                Key(
                    "reply",
                    "object",
                    "Incoming text (or JSON action): reply text, for heartbeats the server expects.",
                    default={},
                    default_label="none",
                ),
                Key("ping_interval", "number", "Seconds between keepalive pings (0.1-3600).", default=20.0),
                Key("ping_timeout", "number", "Seconds to wait for the pong (0.1-3600).", default=20.0),
                Key(
                    "open_timeout",
                    "number",
                    "Seconds for connecting, TLS and the upgrade together (0.1-120).",
                    default=10.0,
                ),
                Key(
                    "max_size",
                    "integer",
                    "Largest message accepted, in bytes (1024 to 64 MiB).",
                    default=1_048_576,
                    default_label="1048576 (1 MiB)",
                ),
                STALL,
                _extract("message"),
            ),
        ),
        KindSchema(
            "sse",
            "sse.md",
            "Reads a Server-Sent-Events stream; each event's data becomes points.",
            (
                Key(
                    "url",
                    "url",
                    "The event stream, an http:// or https:// URL.",
                    required=True,
                    example="https://stream.example.com/events",
                ),
                HEADERS,
                Key(
                    "events",
                    "list",
                    "Event names to keep (unnamed events are message).",
                    default_label="all events",
                ),
                Key(
                    "timeout",
                    "number",
                    "Seconds for connecting, and the longest silence accepted (1-3600).",
                    default=60.0,
                ),
                STALL,
                _extract("event's data"),
            ),
        ),
        KindSchema(
            "poll",
            "poll.md",
            "Requests a JSON endpoint every interval seconds; each answer becomes points.",
            (
                Key(
                    "url",
                    "url",
                    "The endpoint, an http:// or https:// URL.",
                    required=True,
                    example="https://api.example.com/v1/price",
                ),
                Key("method", "choice", "GET or POST.", default="GET", choices=("GET", "POST")),
                Key("body", "any", "Only with POST: an object or list is sent as JSON, text as it is."),
                HEADERS,
                Key(
                    "interval",
                    "number",
                    "Seconds between the starts of two requests (0.1-86400).",
                    default=5.0,
                ),
                Key("timeout", "number", "Seconds the whole request may take (0.1-120).", default=10.0),
                Key(
                    "stall_after",
                    "number",
                    "Seconds without a new point before the stream shows as stalled (1-86400).",
                    default_label="three intervals, at least 5",
                ),
                _extract("answer"),
            ),
        ),
        KindSchema(
            "mqtt",
            "mqtt.md",
            "Subscribes to topic filters on an MQTT broker; each message becomes points.",
            (
                Key(
                    "host",
                    "text",
                    "The broker's host name or IP address (not a URL).",
                    required=True,
                    example="broker.example.com",
                ),
                Key(
                    "port",
                    "integer",
                    "The broker's port (1-65535).",
                    default=DERIVED,
                    default_label="1883, or 8883 with tls",
                ),
                Key("tls", "boolean", "Connect over TLS.", default=False),
                Key("ca_file", "text", "With tls: absolute path of a PEM file of CA certificates."),
                Key("tls_insecure", "boolean", "With tls: do not check the certificate.", default=False),
                Key("username", "text", "User name sent on connect."),
                Key("password", "text", "Password sent on connect (needs username). A secret."),
                Key(
                    "client_id",
                    "text",
                    "Client identifier; leave unset unless the broker's ACLs need it.",
                    default_label="chosen by the broker",
                ),
                Key(
                    "topics",
                    "list",
                    'Topic filters: ["sensors/+/temperature", "plant/#"]; at most 100.',
                    required=True,
                    example=["sensors/+/temperature"],
                ),
                Key("qos", "integer", "Subscription QoS: 0, 1 or 2.", default=0),
                Key("keepalive", "integer", "Seconds between pings when idle (5-3600).", default=30),
                STALL,
                _extract("payload"),
            ),
        ),
        KindSchema(
            "push",
            "push.md",
            "Points arrive when a client POSTs them to the push API with a token.",
            (
                Key("series", "text", "The series a point's value belongs to.", default="value"),
                STALL,
                Key(
                    "extract",
                    "object",
                    "Maps any other JSON shape (a webhook body) with the usual extract settings.",
                    default_label="none: the native point format",
                ),
            ),
        ),
    )
}


def schema_for(kind: str) -> KindSchema | None:
    return SCHEMAS.get(kind)


def missing_required(kind: str, settings: Mapping[str, Any]) -> FeedSettingsError | None:
    """The first required key left out (or null), as an error that says so in words."""
    schema = schema_for(kind)
    if schema is None:
        return None
    for key in schema.required:
        if settings.get(key.name) is None:
            return FeedSettingsError(key.name, f"required, and missing. {key.help}")
    return None


def explain(error: FeedSettingsError) -> str:
    """A kind's error for people: `key: what is wrong`, JSON words for Python ones."""
    message = error.message
    # The kinds quote values with repr(): say null/true/false as they were typed, in JSON.
    for python, typed in ((" None", " null"), (" True", " true"), (" False", " false")):
        if message.endswith(python):
            message = message[: -len(python)] + typed
    return f"{error.key}: {message}"
