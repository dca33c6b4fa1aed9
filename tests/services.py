"""Real local services the tests use, and what to do when one is not running.

Under CI=true a missing service fails the run; on a laptop those tests skip and say what to start.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_URL = os.environ.get("LIVECHARTS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
CHROMIUM = "/usr/bin/chromium"

START = {
    "redis": 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    "chromium": "apt-get install -y chromium",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def missing(service: str, what: str) -> None:
    message = f"{what} is not available: start it with `{START[service]}`"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_redis() -> str:
    if not port_open(REDIS_HOST, REDIS_PORT):
        missing("redis", f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def require_chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing("chromium", "Chromium (/usr/bin/chromium)")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")  # type: ignore[return-value]
