"""Probes answer whatever the Host and without the https redirect; pages do not."""

from __future__ import annotations

import pytest

# The views read the database from their own threads (database_sync_to_async): a transaction
# per test (the default) would hold it in another thread, and PostgreSQL closes it under them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["charts.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.LIVECHARTS_METRICS_TOKEN = "t0ken"


def test_health_and_readiness_answer_an_address_host_over_plain_http(client, production, memory_layer):
    assert client.get("/healthz", HTTP_HOST="127.0.0.1:8001").status_code == 200
    ready = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert ready.status_code == 200, ready.content
    assert ready.json()["ready"] is True


def test_metrics_answer_the_token_bearer_on_any_host(client, production, memory_layer):
    response = client.get("/metrics", HTTP_HOST="127.0.0.1:8001", HTTP_AUTHORIZATION="Bearer t0ken")
    assert response.status_code == 200
    assert b"livecharts_" in response.content


def test_a_wrong_token_or_a_page_still_meets_the_host_check(client, production, memory_layer):
    assert client.get("/metrics", HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION="Bearer no").status_code == 400
    assert client.get("/streams/", HTTP_HOST="127.0.0.1").status_code == 400
    assert client.post("/healthz", HTTP_HOST="127.0.0.1").status_code == 400
