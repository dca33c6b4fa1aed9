"""The probes (streams/web/probes.py): /healthz, and /readyz naming each dependency that does not
answer. tests/test_probes.py covers their answers whatever the Host."""

from __future__ import annotations

import json

import pytest
from channels.layers import channel_layers
from django.test import Client

from tests.processes import refused_port

pytestmark = pytest.mark.django_db


def test_healthz(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


# /readyz: the database, Redis and the channel layer, each named when it does not answer.


def test_readyz_is_ready_in_the_embedded_mode(client: Client, memory_layer):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "failing": [],
        "checks": {"database": "ok", "redis": "not configured", "channel_layer": "ok"},
    }
    assert "no-cache" in response.headers["Cache-Control"]


@pytest.mark.redis
def test_readyz_is_ready_with_redis_and_its_layer(client: Client, redis_layer):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "channel_layer": "ok"}


def test_readyz_names_redis_and_the_layer_when_redis_is_down(client: Client, settings):
    with refused_port() as port:
        closed = f"redis://127.0.0.1:{port}/0"
        settings.REDIS_URL = closed
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [closed]},
            }
        }
        channel_layers.backends = {}
        try:
            response = client.get("/readyz")
        finally:
            channel_layers.backends = {}
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["failing"] == ["redis", "channel_layer"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unreachable")
    assert "127.0.0.1" not in json.dumps(body)  # no host or port in a public answer


@pytest.mark.redis
def test_readyz_names_redis_when_one_shard_of_the_layer_is_down(client: Client, redis_layer, settings):
    # A fresh channel may hash to the shard that answers: the ping of every shard catches it.
    with refused_port() as port:
        settings.LIVECHARTS_LAYER_REDIS_URLS = [redis_layer, f"redis://127.0.0.1:{port}/0"]
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "redis" in response.json()["failing"]
    assert response.json()["checks"]["redis"].startswith("unreachable")


@pytest.mark.django_db(databases=[])
def test_readyz_names_the_database_when_it_refuses(client: Client, memory_layer):
    # With no database allowed to this test, the query is refused as by a database that is down.
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
