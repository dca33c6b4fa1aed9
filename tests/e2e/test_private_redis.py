"""The tests' private Redis servers keep nothing on disk, replicas included: a master's full
sync for its replica once wrote dump.rdb into the checkout (and it was committed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from tests.processes import on_free_port, start_redis
from tests.sentinel import start_replica
from tests.services import lacking

pytestmark = pytest.mark.e2e


def test_a_master_and_its_replica_write_no_file_where_they_run(tmp_path: Path, monkeypatch):
    if shutil.which("redis-server") is None:
        lacking("the redis-server program is not installed: apt-get install -y redis-server")
    monkeypatch.chdir(tmp_path)
    master_port, master = on_free_port(start_redis)
    replica = None
    try:
        redis.Redis(port=master_port).set("k", "v")
        # returns once the full sync is done
        replica_port, replica = on_free_port(lambda port: start_replica(port, master_port))
        assert redis.Redis(port=replica_port).get("k") == b"v"
    finally:
        for proc in (replica, master):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
    assert sorted(path.name for path in tmp_path.iterdir()) == []
