"""The websocket feed: connect to a ws:// or wss:// server, send subscribe messages, map pushes to points.

Many live sources push over a WebSocket (exchanges, StackExchange's question stream). This kind
connects with optional handshake headers (API keys), sends the `send` messages after every
connect (subscriptions must be repeated on a new connection), answers control messages named in
`reply` (StackExchange's `hb` heartbeat) and hands every other message to the extractor.

Failures: a refused or timed-out handshake, a lost peer (keepalive pings unanswered) or a closed
connection raise WebsocketError, and the worker reconnects with backoff by calling `batches()`
again on the same instance; the extractor, and so any open aggregation interval, lives on.
A message over `max_size` makes websockets close the connection (code 1009): it is counted as a
bad payload and the feed reconnects, since the connection is gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import CloseCode

from streams.core.points import Batch
from streams.ingest.feeds.base import (
    FeedSettingsError,
    headers_setting,
    number_setting,
    parse_json,
    reject_unknown,
    safe_url,
    stall_setting,
    url_setting,
)
from streams.ingest.feeds.extract import BadPayload, ExtractingFeed, clean_extract
from streams.ingest.feeds.guarded import guarded_connect

log = logging.getLogger(__name__)

KEYS = {
    "url",
    "headers",
    "send",
    "reply",
    "ping_interval",
    "ping_timeout",
    "open_timeout",
    "max_size",
    "stall_after",
    "extract",
}
DEFAULT_MAX_SIZE = 2**20
MAX_MAX_SIZE = 64 * 2**20
MAX_SEND = 100
# Aggregating extracts close intervals on time, not on messages: wake up this often to flush.
FLUSH_EVERY = 0.25
# Our side of the closing handshake; a peer that is gone must not hold a reconnect (or the
# worker's shutdown) for websockets' default 10 s.
CLOSE_TIMEOUT = 2.0


class WebsocketError(ConnectionError):
    """The connection could not be opened or was lost; the message is safe to log and show."""


class WebsocketFeed(ExtractingFeed):
    kind = "websocket"

    @classmethod
    def clean_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        reject_unknown(raw, KEYS)
        max_size = number_setting(
            raw, "max_size", default=DEFAULT_MAX_SIZE, minimum=1024, maximum=MAX_MAX_SIZE
        )
        if max_size != int(max_size):
            raise FeedSettingsError("max_size", f"must be a whole number of bytes, not {max_size:g}")
        return {
            "url": url_setting(raw, schemes=("ws", "wss")),
            "headers": headers_setting(raw),
            "send": _send_setting(raw),
            "reply": _reply_setting(raw),
            "ping_interval": number_setting(raw, "ping_interval", default=20.0, minimum=0.1, maximum=3600),
            "ping_timeout": number_setting(raw, "ping_timeout", default=20.0, minimum=0.1, maximum=3600),
            "open_timeout": number_setting(raw, "open_timeout", default=10.0, minimum=0.1, maximum=120),
            "max_size": int(max_size),
            "stall_after": stall_setting(raw),
            "extract": clean_extract(raw.get("extract")),
        }

    def describe(self) -> str:
        return safe_url(self.settings["url"])

    async def batches(self) -> AsyncIterator[Batch]:
        connection = await self._connect()
        try:
            try:
                for message in self.settings["send"]:
                    await connection.send(message if isinstance(message, str) else json.dumps(message))
                # Connected and subscribed: an empty batch lets the worker show the stream live
                # before the first point (a quiet source may push nothing for minutes).
                yield []
                async for batch in self._receive(connection):
                    yield batch
            except ConnectionClosed as error:
                raise self._closed_error(error) from None
        finally:
            await connection.close()

    async def _connect(self) -> ClientConnection:
        settings = self.settings
        try:
            connection = await guarded_connect(
                settings["url"],
                additional_headers=settings["headers"] or None,
                open_timeout=settings["open_timeout"],
                ping_interval=settings["ping_interval"],
                ping_timeout=settings["ping_timeout"],
                close_timeout=CLOSE_TIMEOUT,
                max_size=settings["max_size"],
                logger=_QuietLogger(logging.getLogger("websockets.client"), {}),
            )
        except InvalidStatus as error:
            response = error.response
            self.retry_after = _retry_after(response.headers.get("Retry-After"))
            hint = " (check the headers: API key or token)" if response.status_code in (401, 403) else ""
            raise WebsocketError(
                f"{self.describe()} refused the WebSocket handshake: "
                f"HTTP {response.status_code} {response.reason_phrase}{hint}"
            ) from None
        except TimeoutError:
            raise WebsocketError(
                f"no WebSocket handshake from {self.describe()} within open_timeout "
                f"{settings['open_timeout']:g} s"
            ) from None
        except OSError as error:
            # Refused, unreachable, DNS or TLS failures: the OS reason names no secret.
            reason = error.strerror or type(error).__name__
            raise WebsocketError(f"cannot connect to {self.describe()}: {reason}") from None
        except WebSocketException as error:
            # Only the class name: some websockets messages quote the URI or a header.
            raise WebsocketError(
                f"WebSocket handshake with {self.describe()} failed: {type(error).__name__}"
            ) from None
        self.retry_after = None
        return connection

    async def _receive(self, connection: ClientConnection) -> AsyncIterator[Batch]:
        timeout = FLUSH_EVERY if self.extractor.aggregating else None
        while True:
            message: str | bytes | None = None
            try:
                # recv() is safe to cancel (no message is lost), so a timeout only wakes us.
                async with asyncio.timeout(timeout):
                    message = await connection.recv()
            except TimeoutError:
                pass
            batch = [] if message is None else await self._handle(connection, message)
            batch += self.extractor.flush(time.time())
            if batch:
                yield batch

    async def _handle(self, connection: ClientConnection, message: str | bytes) -> Batch:
        """Points from one message; answers a control message from `reply`; skips a bad one."""
        received_at = time.time()
        if isinstance(message, bytes):
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError:
                self.skip(f"binary message of {len(message)} bytes is not UTF-8 text")
                return []
        reply = self.settings["reply"]
        if message in reply:
            await connection.send(reply[message])
            return []
        if not reply:
            # No control message to answer: parsed and read in one (the usual settings skip
            # parse_json's look for long numbers, Extractor.points_from_json).
            try:
                return self.extractor.points_from_json(message, received_at=received_at)
            except BadPayload as error:
                self.skip(str(error))
                return []
            except (ValueError, RecursionError):
                self.skip(f"message is not JSON: {message[:60]!r}")
                return []
        try:
            payload = parse_json(message)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            self.skip(f"message is not JSON: {message[:60]!r}")
            return []
        action = payload.get("action") if isinstance(payload, dict) else None
        if isinstance(action, str) and action in reply:
            await connection.send(reply[action])
            return []
        try:
            return self.extractor.points(payload, received_at=received_at)
        except BadPayload as error:
            self.skip(str(error))
            return []

    def _closed_error(self, error: ConnectionClosed) -> WebsocketError:
        where = self.describe()
        sent, rcvd = error.sent, error.rcvd
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            self.skip(f"a message was over max_size ({self.settings['max_size']} bytes)")
            return WebsocketError(
                f"a message from {where} was over max_size ({self.settings['max_size']} bytes); "
                "websockets closed the connection (1009), reconnecting"
            )
        if sent is not None and rcvd is None and sent.reason == "keepalive ping timeout":
            return WebsocketError(
                f"{where} did not answer a ping within ping_timeout {self.settings['ping_timeout']:g} s"
            )
        if rcvd is not None:
            reason = f" {rcvd.reason[:100]}" if rcvd.reason else ""
            return WebsocketError(f"{where} closed the connection (code {rcvd.code}{reason})")
        if sent is not None:
            return WebsocketError(
                f"connection to {where} closed by us (code {sent.code} {sent.reason[:100]})"
            )
        return WebsocketError(f"connection to {where} lost without a close frame")


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A hack: websockets logs every handshake header and frame at DEBUG, API keys and auth
    messages included. Saying DEBUG is off keeps them out of our logs whatever the log level."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


def _send_setting(raw: Mapping[str, Any]) -> list[str | dict[str, Any] | list[Any]]:
    send = raw.get("send", [])
    if send is None:
        return []
    if not isinstance(send, list):
        raise FeedSettingsError("send", "must be a list of messages (text, or a JSON object or list)")
    if len(send) > MAX_SEND:
        raise FeedSettingsError("send", f"at most {MAX_SEND} messages")
    cleaned: list[str | dict[str, Any] | list[Any]] = []
    for index, message in enumerate(send):
        key = f"send[{index}]"
        # Messages may carry credentials (auth requests): errors name the type, never the value.
        if isinstance(message, str):
            cleaned.append(message)
        elif isinstance(message, (Mapping, list)):
            try:
                # Round trip: what is stored is what is sent, and cleans to itself.
                cleaned.append(json.loads(json.dumps(message, allow_nan=False)))
            except (TypeError, ValueError):
                raise FeedSettingsError(key, "holds something that is not JSON") from None
        else:
            raise FeedSettingsError(
                key, f"must be text or a JSON object or list, not {type(message).__name__}"
            )
    return cleaned


def _reply_setting(raw: Mapping[str, Any]) -> dict[str, str]:
    reply = raw.get("reply", {})
    if reply is None:
        return {}
    if not isinstance(reply, Mapping) or not all(
        isinstance(key, str) and key and isinstance(value, str) for key, value in reply.items()
    ):
        raise FeedSettingsError("reply", "must be an object of incoming text or action: reply text")
    return dict(reply)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given as a number (an HTTP date is rare here: ignored)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds <= 3600 else None
