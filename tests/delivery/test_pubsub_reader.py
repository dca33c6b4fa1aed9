"""The hub's direct reader of its streams' Redis channels: RESP read in pieces, subscriptions
confirmed before they count, the layer's messages delivered, a dropped connection reopened."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis
from channels.layers import get_channel_layer

from streams.delivery.hub import Hub
from streams.delivery.pubsub_reader import (
    CLIENT_NAME,
    PubSubReader,
    ReplyError,
    encode_command,
    parse_reply,
    reader_for,
)
from tests.waits import eventually

MESSAGE = b"*3\r\n$7\r\nmessage\r\n$5\r\nchan1\r\n$12\r\nhello\r\nworld\r\n"


def test_a_message_is_read_whole_and_only_whole():
    assert parse_reply(MESSAGE, 0) == ([b"message", b"chan1", b"hello\r\nworld"], len(MESSAGE))
    for cut in range(len(MESSAGE)):
        assert parse_reply(MESSAGE[:cut], 0) is None, cut


def test_replies_back_to_back_are_read_one_after_another():
    data = bytearray(b":3\r\n" + MESSAGE + b"+OK\r\n")
    first, at = parse_reply(data, 0)
    second, at = parse_reply(data, at)
    third, at = parse_reply(data, at)
    assert (first, second[0], third, at) == (3, b"message", b"OK", len(data))


def test_resp3_pushes_nulls_and_errors_are_understood():
    push = b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    assert parse_reply(push, 0) == ([b"subscribe", b"c", 1], len(push))
    assert parse_reply(b"$-1\r\n", 0) == (None, 5)
    assert parse_reply(b"_\r\n", 0) == (None, 3)
    error, _ = parse_reply(b"-ERR no\r\n", 0)
    assert isinstance(error, ReplyError) and str(error) == "ERR no"
    with pytest.raises(ValueError, match="unexpected reply type"):
        parse_reply(b"?\r\n", 0)


def test_commands_are_encoded_as_resp():
    assert encode_command("SUBSCRIBE", "a", b"bc") == b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$2\r\nbc\r\n"


def test_only_the_redis_pub_sub_layer_gets_a_direct_reader(memory_layer):
    assert reader_for(get_channel_layer(), print, print, print) is None


class Received:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.reads = 0
        self.open_read = False

    def message(self, message: dict[str, Any]) -> None:
        assert self.open_read  # always inside a read
        self.messages.append(message)

    def started(self) -> None:
        self.open_read = True

    def done(self) -> None:
        self.open_read = False
        self.reads += 1


async def subscribers(url: str, channel: str) -> int:
    client = redis.from_url(url)
    try:
        return dict(await client.pubsub_numsub(channel))[channel.encode()]
    finally:
        await client.aclose()


async def test_a_confirmed_subscription_gets_every_later_group_message(redis_layer):
    layer = get_channel_layer()
    received = Received()
    reader = reader_for(layer, received.message, received.started, received.done)
    assert isinstance(reader, PubSubReader)
    try:
        await asyncio.wait_for(reader.subscribe("stream.plant"), 10)
        # Confirmed: a publish right now, on another connection, comes back.
        await layer.group_send("stream.plant", {"type": "stream.points", "stream": "plant", "n": 1})
        await layer.group_send("stream.other", {"type": "stream.points", "stream": "other", "n": 2})
        await layer.group_send("stream.plant", {"type": "stream.points", "stream": "plant", "n": 3})
        await eventually(lambda: len(received.messages) == 2, what="both batches of plant")
        assert [m["n"] for m in received.messages] == [1, 3]
        assert received.reads >= 1 and not received.open_read
        channel = reader.channel_of("stream.plant")
        assert reader.subscribed_channels() == {channel}

        reader.unsubscribe("stream.plant")
        assert reader.subscribed_channels() == set()

        async def unsubscribed() -> bool:
            return await subscribers(redis_layer, channel) == 0

        # Up to the suite's deadline: 200 polls 10 ms apart gave a loaded machine about 2 s.
        await eventually(unsubscribed, what="Redis to count no subscriber of the channel")
    finally:
        reader.close()


async def test_a_dropped_connection_is_opened_again_with_its_subscriptions(redis_layer, caplog):
    layer = get_channel_layer()
    received = Received()
    reader = reader_for(layer, received.message, received.started, received.done)
    admin = redis.from_url(redis_layer)
    try:
        await asyncio.wait_for(reader.subscribe("stream.plant"), 10)
        clients = [c for c in await admin.client_list() if c["name"] == CLIENT_NAME]
        assert clients, "the reader's connection is named in CLIENT LIST (this process's pid in it)"
        for client in clients:
            await admin.client_kill_filter(_id=client["id"])
        await eventually(lambda: reader.reconnects >= 1, what="the reader to see its connection drop")
        # The hub's count of them is what /metrics exports (livecharts_layer_reconnects_total).
        hub = Hub(layer=layer, tick_seconds=0.05)
        hub._reader = reader
        assert hub.layer_reconnects == reader.reconnects
        # Subscribed again on the new connection: publish until one comes through (up to the
        # suite's deadline: 500 publishes 20 ms apart gave a loaded machine about 10 s).
        sent = 0

        async def one_came_through() -> bool:
            nonlocal sent
            await layer.group_send("stream.plant", {"type": "stream.points", "stream": "plant", "n": sent})
            sent += 1
            return bool(received.messages)

        await eventually(one_came_through, what="a message after the reconnect", poll=0.02)
        assert "connection lost" in caplog.text
    finally:
        reader.close()
        await admin.aclose()


async def test_only_the_last_of_several_subscribes_confirms(redis_layer):
    """subscribe, unsubscribe, subscribe again: the first answer does not confirm the second."""
    layer = get_channel_layer()
    received = Received()
    reader = reader_for(layer, received.message, received.started, received.done)
    try:
        await asyncio.wait_for(reader.subscribe("stream.warmup"), 10)  # the connection is open
        first = asyncio.ensure_future(reader.subscribe("stream.plant"))
        await asyncio.sleep(0)
        reader.unsubscribe("stream.plant")
        second = asyncio.ensure_future(reader.subscribe("stream.plant"))
        await asyncio.sleep(0)  # both SUBSCRIBEs sent, neither answered yet
        shard = next(iter(reader._shards.values()))
        assert shard._unanswered[reader.channel_of("stream.plant")] == 2
        await asyncio.wait_for(second, 10)
        assert first.cancelled()
        assert reader.channel_of("stream.plant") not in shard._unanswered
        await layer.group_send("stream.plant", {"type": "stream.points", "stream": "plant", "n": 1})
        await eventually(lambda: received.messages, what="the batch after the second subscribe")
    finally:
        reader.close()
