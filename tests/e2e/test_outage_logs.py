"""A one-second Redis outage under daphne, ingest and a viewer: the logs say so in a few lines,
one per failing operation, with no traceback (it wrote 132 ERROR lines with tracebacks)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.test_redis_restart import steady_stack
from tests.processes import again_if_port_taken
from tests.waits import eventually

# Room for a second run, when another process took Redis's port while it was down (the restart
# raises PortTaken and the test runs again on fresh ports).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Each process has a handful of operations that notice the outage (history, leases, the layer,
# health, the store's window refill): each may say so once, and once more when it repeats.
MAX_ERROR_LINES = 20


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]


def test_a_short_redis_outage_is_a_few_lines_without_tracebacks(tmp_path, redis_prefix):
    again_if_port_taken(lambda run: outage_scenario(tmp_path / f"run-{run}", redis_prefix))


def outage_scenario(workdir: Path, redis_prefix: str) -> None:
    workdir.mkdir()
    with steady_stack(workdir, redis_prefix) as (_, server, viewer):

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
        logs = {name: (workdir / f"{name}.log").read_text(errors="replace") for name in ("ingest", "daphne")}
        for name, text in logs.items():
            assert "Traceback" not in text, f"{name}: {text}"
        errors = [line for text in logs.values() for line in error_lines(text)]
        print(f"{len(errors)} error lines:", *errors, sep="\n")
        assert 0 < len(errors) <= MAX_ERROR_LINES, "\n".join(errors)
