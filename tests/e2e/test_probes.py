"""A daphne under the shipped production settings (DEBUG off, the public name only in
ALLOWED_HOSTS, https redirect on) answers its probes on its own port, as docs/deploy.md's
release loop and a load balancer call them, and logs one line per foreign-Host request."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.processes import BIN, STACK_PASSWORD, Stack, make_stack
from tests.services import require_redis
from tests.waits import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

METRICS_TOKEN = "scrape-token-for-the-test"


@pytest.fixture
def production(tmp_path, redis_prefix: str) -> Iterator[Stack]:
    stack = make_stack(workdir=tmp_path, redis_url=require_redis(), prefix=redis_prefix)
    stack.env.update(
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="charts.example.com",
        CSRF_TRUSTED_ORIGINS="https://charts.example.com",
        LIVECHARTS_METRICS_TOKEN=METRICS_TOKEN,
    )
    stack.seed(STACK_PASSWORD)
    try:
        stack.start_listening(
            "daphne",
            lambda: [
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(stack.port),
                "livecharts.asgi:application",
            ],
            # daphne says when it listens: the log line an operator looks for is the readiness signal.
            ready=lambda: stack.wait_log("daphne", "Listening on TCP address"),
        )
        yield stack
    finally:
        stack.stop_all()


def test_the_release_loop_probe_answers_on_the_daphne_port(production: Stack):
    # docs/deploy.md: until curl -fsS -o /dev/null http://127.0.0.1:$port/healthz; do sleep 0.5; done
    response = httpx.get(f"{production.base_url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    ready = httpx.get(f"{production.base_url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    # A load balancer probing by address, with its own Host.
    balancer = httpx.get(f"{production.base_url}/healthz", headers={"Host": "10.0.0.7:8001"}, timeout=10)
    assert balancer.status_code == 200


def test_one_daphne_is_scraped_with_the_token_and_nothing_else(production: Stack):
    scraped = httpx.get(
        f"{production.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert scraped.status_code == 200, scraped.text[:300]
    assert "livecharts_" in scraped.text
    wrong = httpx.get(f"{production.base_url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code != 200
    # Pages still insist on the public name: the probe exemption is for the probes only.
    page = httpx.get(f"{production.base_url}/streams/", timeout=10)
    assert page.status_code == 400


def test_a_foreign_host_writes_one_log_line_and_a_flood_is_held_back(production: Stack):
    before = production.log("daphne").count("Invalid HTTP_HOST")
    first = httpx.get(f"{production.base_url}/streams/", headers={"Host": "evil.example"}, timeout=10)
    assert first.status_code == 400
    wait_until(
        lambda: production.log("daphne").count("Invalid HTTP_HOST") > before,
        what="daphne to log the foreign host",
        seen=lambda: production.log("daphne")[-500:],
    )
    log = production.log("daphne")
    line = next(line for line in reversed(log.splitlines()) if "Invalid HTTP_HOST" in line)
    assert "Traceback" not in log, log
    assert "evil.example" in line
    for _ in range(20):
        httpx.get(f"{production.base_url}/streams/", headers={"Host": "evil.example"}, timeout=10)
    # The last request's answer is out, so its log line (if any) was written before it.
    assert production.log("daphne").count("Invalid HTTP_HOST") == before + 1
