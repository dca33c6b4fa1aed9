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
