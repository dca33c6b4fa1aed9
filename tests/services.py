"""Real local services (and optional packages) the tests use, and what to do when one is missing.

Under CI=true a missing service fails the run; on a laptop those tests skip and say what to start.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import sys
from types import ModuleType

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
POSTGRES_URL = os.environ.get("LIVECHARTS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
CHROMIUM = "/usr/bin/chromium"

START = {
    "redis": 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    "chromium": "apt-get install -y chromium",
    "mosquitto": "mosquitto -d -p 1883  (Debian: apt-get install -y mosquitto)",
}
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


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
    lacking(message)


def lacking(message: str) -> None:
    """Something a test needs from the machine is not there (`message` says what to do): under
    CI=true, where .ci/run installs it, the test fails; on a laptop it skips."""
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message, allow_module_level=True)  # a test module may ask at import


def require_package(module: str) -> ModuleType:
    """`module`, from a package of the test extra (the bench's peers, say). A laptop venv made
    before the extra grew skips with what to install; under CI=true, where `make test` installs
    the extra, its absence fails instead of silently skipping the test."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name not in (module, module.partition(".")[0]):
            raise  # the package is there but broken: that is the test's failure, not a skip
        message = (
            f"{module} is not installed: install the test extra with "
            "`.venv/bin/pip install -e '.[test]'` (`make test` does)"
        )
        lacking(message)


def require_redis() -> str:
    if not port_open(REDIS_HOST, REDIS_PORT):
        missing("redis", f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def require_mosquitto() -> tuple[str, int]:
    """The shared Mosquitto broker on 127.0.0.1:1883."""
    if not port_open(MQTT_HOST, MQTT_PORT):
        missing("mosquitto", f"Mosquitto on {MQTT_HOST}:{MQTT_PORT}")
    return MQTT_HOST, MQTT_PORT


def require_mosquitto_binary() -> str:
    """The mosquitto program, for tests that start a private broker (passwords, restarts)."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if found is None:
        missing("mosquitto", "The mosquitto program")
    return found  # type: ignore[return-value]


def require_chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing("chromium", "Chromium (/usr/bin/chromium)")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")  # type: ignore[return-value]


POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
START["postgres"] = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START["node"] = "apt-get install -y nodejs"
AVAILABLE, SKIP = 0, 3


def check_for_make(service: str) -> int:
    """`python -m tests.services NAME` for the Makefile: 0 when NAME is there, 3 to skip its
    step on a laptop (with a message saying what to start), 1 under CI=true."""
    if service == "postgres":
        present = port_open(POSTGRES_HOST, POSTGRES_PORT)
    elif service == "node":
        present = shutil.which("node") is not None
    else:
        raise SystemExit(f"unknown service {service!r}")
    if present:
        return AVAILABLE
    message = f"{service} is not available: start it with `{START[service]}`"
    if in_ci():
        print(f"CI=true and {message}", file=sys.stderr)
        return 1
    print(f"SKIPPED: {message}", file=sys.stderr)
    return SKIP


if __name__ == "__main__":
    raise SystemExit(check_for_make(sys.argv[1]))


START["nginx"] = "apt-get install -y nginx-light"
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")


def require_nginx() -> str:
    """Debian's nginx binary (often in /usr/sbin, off a non-root PATH); the tests run their own
    instance from a private config, never the system service."""
    found = shutil.which("nginx") or next((path for path in NGINX_PATHS if os.path.exists(path)), None)
    if found is None:
        missing("nginx", "The nginx program")
    return found  # type: ignore[return-value]
