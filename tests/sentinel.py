"""Redis under Sentinel on loopback for tests and the rehearsal: a master, a replica, sentinels.

Real processes (Debian's redis-server and redis-sentinel), each on a free port, nothing kept on
disk; every start returns once the process answers."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.processes import is_process, polling_client, raise_if_exited, redis_server_argv
from tests.services import lacking
from tests.waits import wait_until

SERVICE = "lcmaster"


def require_sentinel() -> None:
    if shutil.which("redis-sentinel") is None:
        lacking("redis-sentinel is not installed: apt-get install -y redis-sentinel")


def start_replica(port: int, master_port: int) -> subprocess.Popen:
    """Raises PortTaken when `port` was taken (see tests.processes.on_free_port)."""
    with tempfile.TemporaryFile() as log:  # read only if it exits: kept open by the server
        proc = subprocess.Popen(
            [*redis_server_argv(port), "--replicaof", "127.0.0.1", str(master_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = polling_client(port)

        def synced() -> bool:
            raise_if_exited(proc, log, what=f"the replica on {port}")
            try:
                up = client.info("replication").get("master_link_status") == "up"
                return up and is_process(client, proc)
            except redis.RedisError:
                return False

        try:
            wait_until(synced, what=f"the replica on {port} to sync with {master_port}", within=15)
        except AssertionError:
            proc.kill()
            raise
    return proc


def start_sentinel(
    directory: Path, *, port: int, master_port: int, down_after_ms: int = 1000
) -> subprocess.Popen:
    """Raises PortTaken when `port` was taken (see tests.processes.on_free_port)."""
    config = directory / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one each
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
        f"sentinel parallel-syncs {SERVICE} 1\n"
    )
    with tempfile.TemporaryFile() as log:  # read only if it exits: kept open by the server
        proc = subprocess.Popen(["redis-sentinel", str(config)], stdout=log, stderr=subprocess.STDOUT)
        client = polling_client(port)

        def answers() -> bool:
            raise_if_exited(proc, log, what=f"the sentinel on {port}")
            try:
                return bool(client.sentinel_master(SERVICE)) and is_process(client, proc)
            except redis.RedisError:
                return False

        try:
            wait_until(answers, what=f"the sentinel on {port} to answer", within=15)
        except AssertionError:
            proc.kill()
            raise
    return proc


def sentinel_url(ports: list[int], *, db: int = 0) -> str:
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return f"redis+sentinel://{hosts}/{SERVICE}/{db}"


def wait_promoted(port: int, *, timeout: float = 30) -> None:
    """Until the Redis on `port` (a replica) is a master."""
    client = redis.Redis(port=port)
    wait_until(
        lambda: client.info("replication")["role"] == "master",
        what=f"a sentinel to promote the replica on {port}",
        within=timeout,
    )
