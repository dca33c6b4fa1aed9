"""The shipped units and docs/deploy.md, read as systemd and an operator would take them."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
DEPLOY_DOC = (ROOT / "docs" / "deploy.md").read_text()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read_string((UNITS / name).read_text())
    return parser


def shell_blocks(text: str) -> str:
    return "\n".join(re.findall(r"```sh\n(.*?)```", text, flags=re.S))


def test_migrate_runs_once_per_release_not_on_every_process_restart():
    service = unit("livecharts-migrate.service")["Service"]
    assert service["Type"] == "oneshot"
    # Without it a daphne or worker restart (they Want= migrate) ran migrate + collectstatic again.
    assert service["RemainAfterExit"] == "yes"
    # ...so a release must restart it: `start` would do nothing on an active unit.
    commands = shell_blocks(DEPLOY_DOC)
    assert "systemctl restart livecharts-migrate.service" in commands
    assert "systemctl start livecharts-migrate" not in commands


def test_a_fresh_clone_without_staticfiles_does_not_fail_the_migrate_namespace():
    paths = unit("livecharts-migrate.service")["Service"]["ReadWritePaths"].split()
    assert paths and all(path.startswith("-") for path in paths)
    assert "install -d -m 0755 staticfiles" in shell_blocks(DEPLOY_DOC)


def test_enabling_as_documented_starts_everything_at_boot():
    assert unit("livecharts.target")["Install"]["WantedBy"] == "multi-user.target"
    for name in ("livecharts-daphne@.service", "livecharts-ingest@.service"):
        assert unit(name)["Install"]["WantedBy"] == "livecharts.target"
    enable = re.search(r"systemctl enable --now ([^\n]*(?:\\\n[^\n]*)*)", shell_blocks(DEPLOY_DOC))
    assert enable is not None
    assert "livecharts.target" in enable.group(1).split()


def test_the_documented_install_leaves_out_no_step():
    commands = shell_blocks(DEPLOY_DOC)
    for step in (
        "adduser --system --group",  # the user and group the units name
        "git clone",
        "python3 -m venv .venv",
        "pip install",
        "CREATE ROLE livecharts",
        "createdb -O livecharts livecharts",
        "/etc/livecharts/livecharts.env",
        "createsuperuser",
    ):
        assert step in commands, step


def test_workers_restart_one_at_a_time_in_the_release_loop():
    commands = shell_blocks(DEPLOY_DOC)
    assert "systemctl restart 'livecharts-ingest@*'" not in commands
    assert "systemctl restart livecharts-ingest@$worker" in commands


def test_the_environment_file_sets_the_metrics_token_and_only_known_variables():
    shipped = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "livecharts.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert "LIVECHARTS_METRICS_TOKEN" in shipped
    example = (ROOT / ".env.example").read_text()
    known = {line.split("=", 1)[0].lstrip("# ") for line in example.splitlines() if "=" in line}
    assert set(shipped) <= known, set(shipped) - known
