"""Production settings pass Django's deploy checks; missing SECRET_KEY is refused."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.processes import ROOT

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "charts.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://charts.example.com",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_under_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", env={**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_malformed_setting_is_refused_at_start():
    result = manage("check", env={"LIVECHARTS_TICK_MS": "fast"})
    assert result.returncode != 0
    assert "LIVECHARTS_TICK_MS='fast' is not an integer" in result.stderr


def setting(name: str, *, env: dict[str, str]) -> str:
    result = manage("shell", "-c", f"from django.conf import settings; print(settings.{name})", env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after shell's "N objects imported" note


def test_private_feeds_are_refused_in_production_and_allowed_in_the_demo():
    assert setting("LIVECHARTS_ALLOW_PRIVATE_FEEDS", env=PRODUCTION) == "False"
    assert setting("LIVECHARTS_ALLOW_PRIVATE_FEEDS", env={"DEBUG": "true"}) == "True"
    allowed = {**PRODUCTION, "LIVECHARTS_ALLOW_PRIVATE_FEEDS": "true"}
    assert setting("LIVECHARTS_ALLOW_PRIVATE_FEEDS", env=allowed) == "True"


PROBE = """
from django.test import Client
client = Client()
tls = client.get("/healthz", HTTP_HOST="charts.example.com", HTTP_X_FORWARDED_PROTO="https")
print("hsts", tls.headers.get("Strict-Transport-Security"))
print("csp", tls.headers.get("Content-Security-Policy"))
plain = client.get("/accounts/login/", HTTP_HOST="charts.example.com")
print("plain", plain.status_code, plain.headers.get("Location"))
probe = client.get("/healthz", HTTP_HOST="charts.example.com")
print("probe", probe.status_code)
from django.conf import settings
secure = (settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY)
print("cookies", *secure)
"""


def test_production_sends_hsts_over_tls_redirects_plain_http_and_secures_cookies():
    result = manage("shell", "-c", PROBE, env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert "script-src 'self';" in lines["csp"]
    assert "connect-src 'self' ws://charts.example.com wss://charts.example.com" in lines["csp"]
    assert lines["plain"] == "301 https://charts.example.com/accounts/login/"
    # Health probes come over plain HTTP from the load balancer: not redirected.
    assert lines["probe"] == "200"
    assert lines["cookies"] == "True True True"
