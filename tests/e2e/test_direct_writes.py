"""Under the daphne, autobahn and Twisted that pyproject.toml pins, sockets get the direct
writer (streams/delivery/transport.py): if a release renames an internal it reads, this says which."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.processes import ROOT, PortTaken, on_free_port, port_taken
from tests.waits import wait_until

pytestmark = pytest.mark.e2e


def start_probe_daphne(port: int, log_path: Path) -> subprocess.Popen:
    """daphne serving tests/daphne_probe.py on `port`, once it says it listens."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "livecharts.settings", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with log_path.open("w") as log:
        daphne = subprocess.Popen(
            [*argv, "tests.daphne_probe:application"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def listening() -> bool:
        text = log_path.read_text()
        if daphne.poll() is not None:
            raise (PortTaken if port_taken(text) else AssertionError)(text)
        # Its own word, not an open port: the port may be another process's that took it first.
        return "Listening on TCP address" in text

    wait_until(listening, what="daphne to listen", seen=log_path.read_text)
    return daphne


def test_a_socket_under_daphne_gets_the_direct_writer(tmp_path: Path):
    port, daphne = on_free_port(lambda port: start_probe_daphne(port, tmp_path / "daphne.log"))
    try:
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as socket:
            assert socket.recv(timeout=10) == "direct"
            assert socket.recv(timeout=10) == "framed once"
    finally:
        daphne.terminate()
        daphne.wait(10)
