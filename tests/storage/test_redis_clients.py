"""Redis addresses, plain or under Sentinel, and a push refused with 503 when Redis is not there."""

from __future__ import annotations

import re

import pytest
from channels.layers import channel_layers
from django.test import AsyncClient

from streams.core import runtime
from streams.models import PushToken, Stream
from streams.storage.redis_clients import (
    LAYER_READ_TIMEOUT_SECONDS,
    RedisAddressError,
    SentinelAddress,
    async_client,
    layer_host,
    parse_address,
    safe,
    split_addresses,
    sync_client,
)
from tests.fake_redis import FakeRedis
from tests.processes import refused_port
from tests.services import require_redis


def test_plain_urls_pass_through():
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock"):
        assert parse_address(url) == url
        assert layer_host(url) == {"address": url, "socket_timeout": LAYER_READ_TIMEOUT_SECONDS}


def test_the_layers_read_timeout_outlasts_its_blocking_wait_for_a_message():
    from channels_redis.core import RedisChannelLayer

    assert RedisChannelLayer.brpop_timeout + 5 < LAYER_READ_TIMEOUT_SECONDS


async def test_a_core_layer_consumer_idle_past_its_blocking_wait_still_receives(redis_prefix):
    """RedisChannelLayer waits for a message with BZPOPMIN for 5 s at a time; with redis-py 8's
    default read timeout, also 5 s, an idle `receive` raised TimeoutError after one round (and
    the consumer's socket closed). Built from layer_host, it waits on, round after round."""
    import asyncio

    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[layer_host(require_redis())], prefix=f"{redis_prefix}:asgi")
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    try:
        # Idle for longer than one blocking round: the first BZPOPMIN has answered "nothing".
        await asyncio.sleep(RedisChannelLayer.brpop_timeout + 1.5)
        assert not receiving.done(), receiving.exception()
        await layer.send(channel, {"type": "hello"})
        assert await asyncio.wait_for(receiving, timeout=30) == {"type": "hello"}
    finally:
        receiving.cancel()
        await layer.flush()


def test_the_sentinel_form_names_its_sentinels_service_database_and_password():
    address = parse_address("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/lcmaster/2")
    assert address == SentinelAddress(
        service="lcmaster",
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)),
        db=2,
        password="s3cret",
    )
    # channels-redis builds its own Sentinel pool from this form of `hosts` entry.
    assert layer_host("redis+sentinel://a:1,b:2/lcmaster") == {
        "master_name": "lcmaster",
        "sentinels": [["a", 1], ["b", 2]],
        "socket_timeout": LAYER_READ_TIMEOUT_SECONDS,
        "db": 0,
    }
    assert parse_address("rediss+sentinel://a:1/m").ssl is True


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:6379", "is not a redis://, rediss://, unix:// or redis+sentinel:// address"),
        ("redis+sentinel://a:1", "name the Sentinel service"),
        ("redis+sentinel://a:1/m/x", "database 'x' is not a number"),
        ("redis+sentinel://a:port/m", "sentinel port 'port' is not a number"),
        ("redis+sentinel://:pw@a:1/m/0/extra", "the path is /<service>[/<db>]"),
    ],
)
def test_a_malformed_address_says_what_is_wrong_without_its_password(url: str, message: str):
    with pytest.raises(RedisAddressError, match=re.escape(message)) as caught:
        parse_address(url)
    assert "pw" not in str(caught.value)


def test_a_list_of_addresses_splits_only_between_addresses():
    text = "redis+sentinel://a:1,b:2,c:3/m/0, redis://x:1/0,unix:///tmp/r.sock"
    assert split_addresses(text) == [
        "redis+sentinel://a:1,b:2,c:3/m/0",
        "redis://x:1/0",
        "unix:///tmp/r.sock",
    ]
    assert split_addresses("redis://a/0,redis://b/0") == ["redis://a/0", "redis://b/0"]
    assert safe("redis://:hunter2@h:1/0") == "redis://:***@h:1/0"


@pytest.fixture
def dead_redis(settings):
    """Production mode pointed at a port where no Redis listens (an outage)."""
    with refused_port() as port:
        url = f"redis://127.0.0.1:{port}/0"
        settings.REDIS_URL = url
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        channel_layers.backends = {}
        runtime.reset()
        yield url
        channel_layers.backends = {}
        runtime.reset()


@pytest.mark.django_db(transaction=True)
async def test_a_push_while_redis_is_down_is_refused_with_503_and_retry_after(dead_redis):
    stream = await Stream.objects.acreate(slug="pushed", title="Pushed", feed_kind="push", feed_settings={})
    row = PushToken(name="gateway")
    secret = row.issue()
    await row.asave()
    await row.streams.aadd(stream)
    response = await AsyncClient().post(
        "/api/streams/pushed/points",
        "[1]",
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "1"
    assert response.json()["error"] == "unavailable"


async def test_replies_are_parsed_by_hiredis(redis_prefix):
    """The async clients read replies with hiredis's C parser: redis-py quietly falls back to its
    pure-Python one when hiredis is missing or too old for it, a dozen times slower on a window
    (a reconnect storm reads twenty of 1,500 points)."""
    from redis._parsers import _AsyncHiredisParser

    client = async_client(require_redis())
    try:
        key = f"{redis_prefix}:parser"
        await client.xadd(key, {"p": "[1,{}]"})
        connection = await client.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _AsyncHiredisParser)
        finally:
            await client.connection_pool.release(connection)
        assert len(await client.xrange(key)) == 1
    finally:
        await client.aclose()


async def test_a_command_whose_connection_died_is_not_sent_again():
    """A command may have run when its connection dies before the answer (an XADD to the push
    inbox, the tick's history script): redis-py must not send it again by itself, its caller
    decides. `Redis()` retries ten times from redis-py 8.0; our clients, async and blocking,
    say none. A real loopback server that drops the connection as the command arrives."""
    import redis

    server = FakeRedis(swallow=frozenset({"XADD"}), drop=True)
    try:
        client = async_client(server.url)
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.xadd("inbox", {"p": "1"})
        await client.aclose(close_connection_pool=True)
        blocking = sync_client(server.url)
        with pytest.raises(redis.exceptions.ConnectionError):
            blocking.xadd("inbox", {"p": "2"})
        blocking.close()
    finally:
        server.close()
    assert server.swallowed == ["XADD", "XADD"]  # each once
