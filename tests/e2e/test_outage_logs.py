"""A one-second Redis outage under daphne, ingest and a viewer: the logs say so in a few lines,
one per failing operation, with no traceback (it wrote 132 ERROR lines with tracebacks)."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.test_redis_restart import steady_stack
from tests.waits import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

# Each process has a handful of operations that notice the outage (history, leases, the layer,
# health, the store's window refill): each may say so once, and once more when it repeats.
MAX_ERROR_LINES = 20


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]


def test_a_short_redis_outage_is_a_few_lines_without_tracebacks(tmp_path, redis_prefix):
    with steady_stack(tmp_path, redis_prefix) as (_, server, viewer):

        async def scenario() -> None:
            stop = asyncio.Event()
            watching = asyncio.create_task(viewer.run(stop))
            await eventually(lambda: len(viewer.times) >= 20, what="points before the outage", within=60)
            server.kill()
            await asyncio.sleep(1)  # the outage's length, not a wait for a condition
            server.start()
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
