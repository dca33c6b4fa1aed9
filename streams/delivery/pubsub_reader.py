"""The hub's stream subscriptions, read straight off Redis pub/sub as each message arrives.

Under `RedisPubSubChannelLayer` the hub's batches came through channels-redis's reader: a task
awaiting redis-py's `get_message(timeout=0.1)` (a timer armed and cancelled per message, the
reply parsed through a stream reader), a queue per channel, and the hub's own task taking from
it. bench.loop_costs put that at 350-450 µs of daphne's CPU per batch: at 100 viewers of one
stream, a third of what a tick costs. The hub follows one channel per stream and wants each
message the moment it is read, so it subscribes those channels itself: one connection per
layer shard, opened by the layer's own pool class from the layer's own host settings (its URL,
password, TLS, Sentinel), then handed to a plain asyncio protocol that parses the pushes and
calls the hub from the read callback: no task, no queue, no timer per message. The hub is told
when a read starts and ends, so that the batches of one broadcast tick, read together, share
one tick (streams/delivery/hub.py `read_done`).

Everything else stays the layer's: which shard a group lives on, the group's channel name, the
message format (`layer.deserialize`), and every publish. A subscription is in effect once Redis
confirms it on this connection (`subscribe` returns then): a batch published after that reaches
the hub, which is what the hub's probe proved on the layer's own path.

When the connection drops, it is opened again (backoff up to 5 s) and every channel subscribed
again; batches published meanwhile are lost here, as they were through the layer, and viewers
refill them through the `prev` chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

RECONNECT_FIRST_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0
# A reply longer than this is not a pub/sub message the hub could use (batches are bounded
# far below: daphne refuses frames over 1 MiB): the connection is dropped and opened again.
MAX_REPLY_BYTES = 64 * 1024 * 1024
# How the connection shows in Redis's CLIENT LIST: one per process and layer shard.
CLIENT_NAME = f"livecharts-hub-{os.getpid()}"


class ReplyError(Exception):
    """An error reply from Redis (`-ERR ...`)."""


def encode_command(*parts: str | bytes) -> bytes:
    """A command in RESP, as every Redis client sends it."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def parse_reply(buffer: bytearray | bytes, start: int) -> tuple[Any, int] | None:
    """One RESP2 or RESP3 value from `buffer` at `start`, and where the next begins; None when
    the buffer does not yet hold all of it."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    kind = buffer[start]
    head = bytes(buffer[start + 1 : end])
    after = end + 2
    if kind == 0x24:  # $ bulk string
        length = int(head)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            return None
        return bytes(buffer[after : after + length]), after + length + 2
    if kind in (0x2A, 0x3E):  # * array, > push (RESP3)
        count = int(head)
        items = []
        for _ in range(max(count, 0)):
            parsed = parse_reply(buffer, after)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return items, after
    if kind == 0x3A:  # : integer
        return int(head), after
    if kind == 0x2B:  # + simple string
        return head, after
    if kind == 0x2D:  # - error
        return ReplyError(head.decode(errors="replace")), after
    if kind == 0x5F:  # _ null (RESP3)
        return None, after
    raise ValueError(f"unexpected reply type {chr(kind)!r} from Redis")


class _Connection(asyncio.Protocol):
    """One shard's pub/sub connection once redis-py has opened it: bytes in, replies out."""

    def __init__(self, shard: ShardSubscriber, stream_writer: Any) -> None:
        self.shard = shard
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.lost = asyncio.get_running_loop().create_future()
        # redis-py's stream writer for this transport, kept while it is open: a StreamWriter
        # closes its transport when it is garbage collected.
        self.stream_writer = stream_writer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        position = 0
        shard = self.shard
        shard.read_started()
        try:
            while position < len(buffer):
                parsed = parse_reply(buffer, position)
                if parsed is None:
                    break
                reply, position = parsed
                shard.on_reply(reply)
        except Exception:
            log.exception("fan-out hub: a reply from Redis could not be read; reconnecting")
            buffer.clear()
            if self.transport is not None:
                self.transport.close()
            return
        finally:
            shard.read_done()
        del buffer[:position]
        if len(buffer) > MAX_REPLY_BYTES:
            log.error("fan-out hub: a reply from Redis over %d bytes; reconnecting", MAX_REPLY_BYTES)
            buffer.clear()
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(exc)


class ShardSubscriber:
    """The hub's subscriptions on one layer shard: one connection, opened again when it drops."""

    def __init__(
        self,
        host: dict[str, Any],
        on_message: Callable[[bytes, bytes], None],
        read_started: Callable[[], None],
        read_done: Callable[[], None],
    ) -> None:
        self.host = host
        self.on_message = on_message
        self.read_started = read_started
        self.read_done = read_done
        self.channels: set[str] = set()
        # Per channel: subscribes waiting for Redis to confirm it.
        self._confirming: dict[str, list[asyncio.Future[None]]] = {}
        # Per channel: SUBSCRIBEs sent on this connection and not yet answered. Only the answer
        # to the last confirms (after subscribe, unsubscribe, subscribe, the first answer does
        # not say that the second is in effect).
        self._unanswered: dict[str, int] = {}
        self._connection: _Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def subscribe(self, channel: str) -> None:
        """Subscribe `channel`; returns once Redis confirmed it (every later publish comes here)."""
        self.channels.add(channel)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, []).append(confirmed)
        if self._connection is not None:
            self._unanswered[channel] = self._unanswered.get(channel, 0) + 1
            self._connection.send(encode_command("SUBSCRIBE", channel))
        self._ensure_running()
        await confirmed

    def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        for waiting in self._confirming.pop(channel, ()):
            waiting.cancel()
        if self._connection is not None:
            self._connection.send(encode_command("UNSUBSCRIBE", channel))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def on_reply(self, reply: Any) -> None:
        if isinstance(reply, list) and len(reply) == 3:
            kind = reply[0]
            if kind == b"message":
                self.on_message(reply[1], reply[2])
                return
            if kind == b"subscribe":
                channel = reply[1].decode()
                left = self._unanswered.get(channel, 1) - 1
                if left > 0:
                    self._unanswered[channel] = left
                    return
                self._unanswered.pop(channel, None)
                for waiting in self._confirming.pop(channel, ()):
                    if not waiting.done():
                        waiting.set_result(None)
                return
            if kind == b"unsubscribe":
                return
        if isinstance(reply, ReplyError):
            log.warning("fan-out hub: Redis answered its pub/sub connection with an error: %s", reply)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                connection = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "fan-out hub: could not reach Redis for its subscriptions (%s); again in %.1f s",
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            delay = RECONNECT_FIRST_SECONDS
            self._connection = connection
            connection.send(encode_command("CLIENT", "SETNAME", CLIENT_NAME))
            self._unanswered = dict.fromkeys(self.channels, 1)
            if self.channels:
                connection.send(encode_command("SUBSCRIBE", *sorted(self.channels)))
            try:
                error = await connection.lost
            except asyncio.CancelledError:
                if connection.transport is not None:
                    connection.transport.close()
                raise
            finally:
                self._connection = None
            self.reconnects += 1
            log.warning("fan-out hub: Redis pub/sub connection lost (%s); reconnecting", error or "closed")

    async def _connect(self) -> _Connection:
        """A connection opened by the layer's pool class (address, password, TLS, Sentinel as
        the layer has them), taken over from redis-py once its handshake is done."""
        from channels_redis.utils import create_pool

        pool = create_pool(self.host)
        redis_connection = pool.make_connection()
        await redis_connection.connect()
        writer = redis_connection._writer
        transport = writer.transport
        # Ours from here: redis-py must not read it nor close it when its object goes away.
        redis_connection._writer = redis_connection._reader = None
        connection = _Connection(self, writer)
        transport.set_protocol(connection)
        connection.connection_made(transport)
        return connection


class PubSubReader:
    """The hub's groups on a `RedisPubSubChannelLayer`, read directly (see the module's text)."""

    def __init__(
        self,
        layer: Any,
        on_message: Callable[[dict[str, Any]], None],
        on_read: tuple[Callable[[], None], Callable[[], None]],
    ) -> None:
        self.layer = layer
        self._on_message = on_message
        self._on_read = on_read
        self._shards: dict[int, ShardSubscriber] = {}

    def _shard_for(self, channel: str) -> ShardSubscriber:
        shard = self.layer._get_shard(channel)
        subscriber = self._shards.get(id(shard))
        if subscriber is None:
            subscriber = self._shards[id(shard)] = ShardSubscriber(shard.host, self._deliver, *self._on_read)
        return subscriber

    def _deliver(self, _channel: bytes, data: bytes) -> None:
        try:
            message = self.layer.deserialize(data)
        except Exception:
            log.exception("fan-out hub: a layer message could not be decoded")
            return
        self._on_message(message)

    async def subscribe(self, group: str) -> None:
        channel = self.layer._get_group_channel_name(group)
        await self._shard_for(channel).subscribe(channel)

    def unsubscribe(self, group: str) -> None:
        channel = self.layer._get_group_channel_name(group)
        self._shard_for(channel).unsubscribe(channel)

    def channel_of(self, group: str) -> str:
        """The Redis channel of a layer group (the layer's own name for it)."""
        return self.layer._get_group_channel_name(group)

    def subscribed_channels(self) -> set[str]:
        """Every channel subscribed (or being subscribed) now, on every shard."""
        return set().union(*(shard.channels for shard in self._shards.values()))

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()

    @property
    def reconnects(self) -> int:
        return sum(shard.reconnects for shard in self._shards.values())


def reader_for(
    layer: Any,
    on_message: Callable[[dict[str, Any]], None],
    read_started: Callable[[], None],
    read_done: Callable[[], None],
) -> PubSubReader | None:
    """A direct reader for `layer` when it is channels-redis's pub/sub layer, else None (the
    hub then receives through the layer, as under the in-memory layer)."""
    with contextlib.suppress(ImportError):
        from channels_redis.pubsub import RedisPubSubChannelLayer

        if isinstance(layer, RedisPubSubChannelLayer):
            return PubSubReader(layer, on_message, (read_started, read_done))
    return None
