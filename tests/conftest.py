"""Shared fixtures: the named users, the Redis of this test run, layer switching."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis as redis_sync
from channels.layers import channel_layers
from django.contrib.auth.models import Group, User

from streams.core import runtime
from streams.models import Stream
from tests.processes import STACK_PASSWORD, Stack, make_stack
from tests.services import require_redis

PASSWORD = "correct-horse-battery"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    url = require_redis()
    prefix = f"lctest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis_sync.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_layer(settings, redis_prefix: str) -> Iterator[str]:
    """Switch this test to production mode: Redis channel layer and Redis history."""
    url = require_redis()
    settings.REDIS_URL = url
    settings.LIVECHARTS_REDIS_PREFIX = redis_prefix
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": f"{redis_prefix}:asgi"},
        }
    }
    channel_layers.backends = {}
    runtime.reset()
    yield url
    channel_layers.backends = {}
    runtime.reset()


@pytest.fixture
def memory_layer(settings) -> Iterator[None]:
    """The embedded mode: in-memory channel layer and in-process history."""
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends = {}
    runtime.reset()
    yield
    channel_layers.backends = {}
    runtime.reset()


@pytest.fixture(params=["memory", "redis"])
def layer(request) -> str:
    """Run a test once per mode: in-memory (embedded) and real Redis (production)."""
    request.getfixturevalue("memory_layer" if request.param == "memory" else "redis_layer")
    return request.param


@pytest.fixture
def operators(db) -> Group:
    return Group.objects.create(name="operators")


@pytest.fixture
def alice(db, operators: Group) -> User:
    """alice may see the restricted stream: she is named on it and in the operators group."""
    user = User.objects.create_user("alice", "alice@example.com", PASSWORD)
    user.groups.add(operators)
    return user


@pytest.fixture
def bob(db) -> User:
    """bob is signed in but named on nothing."""
    return User.objects.create_user("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def carol(db, operators: Group) -> User:
    """carol sees restricted streams only through the operators group."""
    user = User.objects.create_user("carol", "carol@example.com", PASSWORD)
    user.groups.add(operators)
    return user


@pytest.fixture
def plant(alice: User) -> Stream:
    """A restricted stream that alice may see and bob may not, with a window of 50 points."""
    stream = Stream.objects.create(
        slug="plant", title="Plant", visibility=Stream.Visibility.RESTRICTED, window_points=50
    )
    stream.viewers.add(alice)
    return stream


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def stack(tmp_path, redis_prefix) -> Iterator[Stack]:
    """Production mode on loopback: a SQLite file, the real Redis, daphne + ingest processes."""
    stack = make_stack(workdir=tmp_path, redis_url=require_redis(), prefix=redis_prefix)
    stack.seed(STACK_PASSWORD)
    try:
        yield stack
    finally:
        stack.stop_all()
