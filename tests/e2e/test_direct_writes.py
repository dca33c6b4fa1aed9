"""Under the daphne, autobahn and Twisted that pyproject.toml pins, sockets get the direct
writer (streams/delivery/transport.py): if a release renames an internal it reads, this says which."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.processes import ROOT, free_port, port_is_open
from tests.waits import wait_until

pytestmark = pytest.mark.e2e


def test_a_socket_under_daphne_gets_the_direct_writer(tmp_path: Path):
    port = free_port()
    log_path = tmp_path / "daphne.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "livecharts.settings", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with log_path.open("w") as log:
        daphne = subprocess.Popen(
            [*argv, "tests.daphne_probe:application"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:

        def listening() -> bool:
            assert daphne.poll() is None, log_path.read_text()
            return port_is_open(port)

        wait_until(listening, what="daphne to listen", seen=log_path.read_text)
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as socket:
            assert socket.recv(timeout=10) == "direct"
            assert socket.recv(timeout=10) == "framed once"
    finally:
        daphne.terminate()
        daphne.wait(10)
