"""A one-second Redis outage under daphne, ingest and a viewer: the logs say so in a few lines,
one per failing operation, with no traceback (it wrote 132 ERROR lines with tracebacks)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.e2e.test_redis_restart import STEADY, Viewer
from tests.processes import STACK_PASSWORD, free_port, make_stack, seed_streams, start_redis
from tests.services import missing, require_redis
from tests.waits import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

# Each process has a handful of operations that notice the outage (history, leases, the layer,
# health, the store's window refill): each may say so once, and once more when it repeats.
MAX_ERROR_LINES = 20


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]


def test_a_short_redis_outage_is_a_few_lines_without_tracebacks(tmp_path, redis_prefix):
    require_redis()
    if shutil.which("redis-server") is None:
        missing("redis-server", "the redis-server program (apt-get install -y redis-server)")
    port = free_port()
    server = start_redis(port)
    stack = make_stack(workdir=tmp_path, redis_url=f"redis://127.0.0.1:{port}/0", prefix=redis_prefix)
    try:
        stack.seed(STACK_PASSWORD)
        seed_streams(stack, [STEADY])
        stack.start_ingest()
        stack.start_daphne()
        viewer = Viewer(stack.ws_url, stack.base_url)

        async def scenario() -> None:
            nonlocal server
            stop = asyncio.Event()
            watching = asyncio.create_task(viewer.run(stop))
            await eventually(lambda: len(viewer.times) >= 20, what="points before the outage", within=60)
            server.kill()
            server.wait(timeout=10)
            await asyncio.sleep(1)  # the outage's length, not a wait for a condition
            server = start_redis(port)
            seen = len(viewer.times)
            await eventually(
                lambda: len(viewer.times) >= seen + 40, what="points after the outage", within=60
            )
            stop.set()
            await watching

        asyncio.run(scenario())
        logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in ("ingest", "daphne")}
        for name, text in logs.items():
            assert "Traceback" not in text, f"{name}: {text}"
        errors = [line for text in logs.values() for line in error_lines(text)]
        print(f"{len(errors)} error lines:", *errors, sep="\n")
        assert 0 < len(errors) <= MAX_ERROR_LINES, "\n".join(errors)
    finally:
        stack.stop_all()
        server.kill()
        server.wait(timeout=10)
