"""The mqtt feed: subscribe to topic filters on an MQTT broker and map each message to points.

Built on aiomqtt (asyncio over paho-mqtt). One connection per `batches()` call, with a clean
session: when the connection drops, aiomqtt raises MqttError, the generator ends with it, and
the worker backs off and calls `batches()` again, which connects and subscribes afresh.
Messages published while the feed was away are not replayed (a clean session has no queue).

Retained messages are kept: on subscribe the broker sends the last value it holds for each
matching topic, and that value is what a chart should show first. Its time is the time it
arrived unless `extract.time` reads one from the payload, so after each reconnect the last
known value is drawn again at "now".
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from streams.core.points import Batch
from streams.ingest.feeds.base import (
    FeedSettingsError,
    host_setting_check,
    reject_unknown,
    stall_setting,
)
from streams.ingest.feeds.extract import BadPayload, ExtractingFeed, clean_extract
from streams.ingest.feeds.guarded import connect_socket_blocking

KEYS = {
    "host",
    "port",
    "tls",
    "ca_file",
    "tls_insecure",
    "username",
    "password",
    "client_id",
    "topics",
    "qos",
    "keepalive",
    "stall_after",
    "extract",
}
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_TOPICS = 100
# The MQTT spec caps a topic at 65535 bytes of UTF-8; nobody needs a filter that long.
MAX_TOPIC_BYTES = 1024
MAX_CLIENT_ID = 128
# How often aggregating extracts flush when no message arrives.
FLUSH_EVERY = 0.25
# Messages handed over in one batch at most, so a burst is still yielded in steady slices.
MAX_BATCH_MESSAGES = 1000
# aiomqtt queues messages between paho's socket callback and our loop; a bound keeps a flood
# from eating memory while the worker is busy (beyond it aiomqtt drops and logs a warning).
MAX_QUEUED_MESSAGES = 10_000
# CONNACK reason codes (MQTT 5 numbering, which paho also uses for 3.1.1 refusals) that mean
# the credentials are wrong or missing.
AUTH_REFUSALS = {134, 135}


class MqttFeedError(ConnectionError):
    """The broker could not be reached, refused us, or refused a subscription."""


class MqttFeed(ExtractingFeed):
    kind = "mqtt"

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        reject_unknown(raw, KEYS)
        tls = _bool_setting(raw, "tls")
        ca_file = raw.get("ca_file")
        if ca_file is not None:
            if not isinstance(ca_file, str) or not ca_file.startswith("/"):
                raise FeedSettingsError(
                    "ca_file", "must be an absolute path to a PEM file of CA certificates"
                )
            if not tls:
                raise FeedSettingsError("ca_file", "only used with tls: true")
        tls_insecure = _bool_setting(raw, "tls_insecure")
        if tls_insecure and not tls:
            raise FeedSettingsError("tls_insecure", "only used with tls: true")
        username = _text_setting(raw, "username", max_length=65535)
        password = raw.get("password")
        if password is not None:
            # Never echo the value: it is a secret.
            if not isinstance(password, str):
                raise FeedSettingsError("password", "must be text")
            if username is None:
                raise FeedSettingsError("password", "needs a username (MQTT sends no password alone)")
        return {
            "host": _host_setting(raw),
            "port": _whole_setting(raw, "port", default=8883 if tls else 1883, minimum=1, maximum=65535),
            "tls": tls,
            "ca_file": ca_file,
            "tls_insecure": tls_insecure,
            "username": username,
            "password": password,
            "client_id": _text_setting(raw, "client_id", max_length=MAX_CLIENT_ID),
            "topics": _topics_setting(raw),
            "qos": _qos_setting(raw),
            "keepalive": _whole_setting(raw, "keepalive", default=30, minimum=5, maximum=3600),
            "stall_after": stall_setting(raw),
            "extract": clean_extract(raw.get("extract")),
        }

    @classmethod
    def destinations(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [("host", settings["host"])]

    def describe(self) -> str:
        host, port = self.settings["host"], self.settings["port"]
        if ":" in host:
            host = f"[{host}]"
        return f"{'mqtts' if self.settings['tls'] else 'mqtt'}://{host}:{port}"

    async def batches(self) -> AsyncIterator[Batch]:
        """Connect, subscribe, yield an empty batch, then points as messages arrive. Raises when
        the connection fails or drops (MqttFeedError, aiomqtt.MqttError); the worker reconnects."""
        every = FLUSH_EVERY if self.extractor.aggregating else None
        async with contextlib.AsyncExitStack() as stack:
            client = await self._connect(stack)
            # Connected and subscribed: an empty batch tells the worker the feed is live, even
            # when the topics are quiet for a long time.
            yield []
            messages = client.messages
            # One pending read carried across ticks: cancelling a read on timeout could lose a
            # message taken off the queue in the same instant.
            reading: asyncio.Task[aiomqtt.Message] | None = None
            try:
                while True:
                    if reading is None:
                        reading = asyncio.ensure_future(anext(messages))
                    await asyncio.wait({reading}, timeout=every)
                    batch: Batch = []
                    if reading.done():
                        # Raises MqttError when the connection dropped.
                        message, reading = reading.result(), None
                        batch += self.read(message)
                        for _ in range(min(len(messages), MAX_BATCH_MESSAGES)):
                            batch += self.read(await anext(messages))
                    batch += self.extractor.flush(time.time())
                    if batch:
                        yield batch
            finally:
                if reading is not None:
                    reading.cancel()
                    # Not awaited (that could swallow a second cancellation of ours); the
                    # callback only marks a late MqttError as seen, so asyncio does not warn.
                    reading.add_done_callback(_retrieve)

    def read(self, message: aiomqtt.Message) -> Batch:
        """Points from one message; a payload that cannot be used is counted and skipped."""
        payload = message.payload
        if not payload:
            # A zero-length message is how MQTT clears a retained value: nothing to draw, and
            # nothing wrong either.
            return []
        topic = str(message.topic)
        if len(payload) > MAX_PAYLOAD_BYTES:
            self.skip(f"{topic}: payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
            return []
        try:
            # utf-8-sig: a byte-order mark is harmless, so accept it.
            text = payload.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.skip(f"{topic}: payload is not UTF-8 text")
            return []
        try:
            # Parsed and read in one (Extractor.points_from_json: what parse_json then
            # Extractor.points give, the usual settings without parse_json's look for long numbers).
            return self.extractor.points_from_json(text, received_at=time.time(), topic=topic)
        except BadPayload as error:  # a ValueError too: first
            self.skip(f"{topic}: {error}")
            return []
        except (ValueError, RecursionError):
            self.skip(f"{topic}: payload is not JSON nor a number: {payload[:40]!r}")
            return []

    async def _connect(self, stack: contextlib.AsyncExitStack) -> aiomqtt.Client:
        """A connected client with every topic filter subscribed, closed with `stack`."""
        s = self.settings
        client = aiomqtt.Client(
            s["host"],
            s["port"],
            username=s["username"],
            password=s["password"],
            identifier=s["client_id"],
            clean_session=True,
            keepalive=s["keepalive"],
            tls_context=self._tls_context() if s["tls"] else None,
            max_queued_incoming_messages=MAX_QUEUED_MESSAGES,
        )
        paho = client._client
        # A hack: aiomqtt takes no socket factory, so paho's own (a private method, called in
        # an executor thread on every connect) is replaced on this instance by one that
        # resolves the host, checks each address (streams/ingest/netguard.py) and connects to a
        # checked one. paho still wraps TLS with the host name for SNI and verification.
        paho._create_socket_connection = lambda: connect_socket_blocking(
            s["host"], s["port"], timeout=paho._connect_timeout, source=None
        )
        where = self.describe()
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttCodeError as error:
            # A CONNACK refusal (aiomqtt.exceptions.MqttConnectError, not exported).
            raise MqttFeedError(f"{where} refused the connection: {_refusal(error)}") from None
        except aiomqtt.MqttError as error:
            raise MqttFeedError(f"cannot connect to {where}: {error}") from None
        topics = s["topics"]
        try:
            granted = await client.subscribe([(topic, s["qos"]) for topic in topics])
        except aiomqtt.MqttError as error:
            raise MqttFeedError(f"{where}: subscribing failed: {error}") from None
        refused = [
            topic
            for topic, code in zip(topics, granted, strict=False)
            if (code.is_failure if isinstance(code, ReasonCode) else code >= 128)
        ]
        if refused:
            # Usually an ACL: the broker lets us in but not at these topics.
            raise MqttFeedError(f"{where} refused the subscription to {', '.join(refused)}")
        return client

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        try:
            context = ssl.create_default_context(cafile=s["ca_file"])
        except (OSError, ssl.SSLError) as error:
            raise MqttFeedError(f"cannot read ca_file {s['ca_file']}: {error}") from None
        if s["tls_insecure"]:
            # For self-signed brokers on a trusted network: encrypted, but not authenticated.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _refusal(error: aiomqtt.MqttCodeError) -> str:
    code = error.rc
    value = code.value if isinstance(code, ReasonCode) else code
    reason = str(code) if isinstance(code, ReasonCode) else str(error)
    if value in AUTH_REFUSALS or value in (4, 5):
        return f"{reason} (check username and password)"
    return reason


def _bool_setting(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise FeedSettingsError(key, f"must be true or false, not {value!r}")
    return value


def _whole_setting(raw: Mapping[str, Any], key: str, *, default: int, minimum: int, maximum: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FeedSettingsError(key, f"must be a whole number, not {value!r}")
    if not minimum <= value <= maximum:
        raise FeedSettingsError(key, f"must be from {minimum} to {maximum}, not {value}")
    return value


def _qos_setting(raw: Mapping[str, Any]) -> int:
    value = raw.get("qos", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1, 2):
        raise FeedSettingsError("qos", f"must be 0, 1 or 2, not {value!r}")
    return value


def _text_setting(raw: Mapping[str, Any], key: str, *, max_length: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_length or "\x00" in value:
        raise FeedSettingsError(key, f"must be text of 1-{max_length} characters")
    return value


def _host_setting(raw: Mapping[str, Any]) -> str:
    host = raw.get("host")
    if not isinstance(host, str) or not host.strip():
        raise FeedSettingsError("host", "required: the broker's host name or IP address")
    if "://" in host or "/" in host:
        raise FeedSettingsError("host", f"must be a host name or IP address, not a URL: {host!r}")
    if any(char.isspace() for char in host) or len(host) > 253:
        raise FeedSettingsError("host", f"must be a host name or IP address, not {host!r}")
    # [::1] as written in URLs: the brackets are not part of the address.
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host_setting_check(host, key="host")
    return host


def _topics_setting(raw: Mapping[str, Any]) -> list[str]:
    topics = raw.get("topics")
    if isinstance(topics, str):
        raise FeedSettingsError("topics", f'must be a list of topic filters, like ["{topics}"]')
    if not isinstance(topics, list) or not topics:
        raise FeedSettingsError("topics", "required: a list of topic filters, like [sensors/+/temperature]")
    if len(topics) > MAX_TOPICS:
        raise FeedSettingsError("topics", f"at most {MAX_TOPICS} topic filters, not {len(topics)}")
    seen: set[str] = set()
    for index, topic in enumerate(topics):
        key = f"topics[{index}]"
        _check_topic_filter(topic, key=key)
        if topic in seen:
            raise FeedSettingsError(key, f"{topic!r} is listed twice")
        seen.add(topic)
    return list(topics)


def _check_topic_filter(topic: Any, *, key: str) -> None:
    """MQTT 3.1.1 section 4.7: `+` fills a whole level, `#` only the whole last level."""
    if not isinstance(topic, str) or not topic:
        raise FeedSettingsError(key, f"must be a topic filter (text), not {topic!r}")
    if "\x00" in topic:
        raise FeedSettingsError(key, "a topic filter cannot hold a NUL character")
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        raise FeedSettingsError(key, f"a topic filter is at most {MAX_TOPIC_BYTES} bytes")
    levels = topic.split("/")
    for position, level in enumerate(levels):
        if "+" in level and level != "+":
            raise FeedSettingsError(key, f"{topic!r}: + must fill a whole level, as in a/+/c")
        if "#" in level and (level != "#" or position != len(levels) - 1):
            raise FeedSettingsError(key, f"{topic!r}: # must be the whole last level, as in a/b/#")
