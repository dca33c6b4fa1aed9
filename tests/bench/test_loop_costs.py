"""bench.loop_costs charges each event-loop callback's CPU to the coroutine or callback it ran."""

from __future__ import annotations

import asyncio
import json
import sys

from bench import loop_costs


async def spin(rounds: int) -> int:
    total = 0
    for _ in range(rounds):
        total += sum(range(20_000))
        await asyncio.sleep(0)  # a step of its own each round
    return total


def test_a_tasks_steps_and_a_plain_callback_are_charged_to_their_names():
    costs = loop_costs.LoopCosts()
    uninstall = loop_costs.install(costs)
    try:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            loop.call_soon(done.set_result, None)
            await asyncio.gather(asyncio.create_task(spin(5)), done)

        asyncio.run(main())
    finally:
        uninstall()
    assert costs.calls["task spin"] == 6  # the first step and one after each sleep(0)
    assert costs.cpu_ns["task spin"] > 0
    assert costs.calls["Future.set_result"] == 1
    data = costs.as_json()
    assert data["thread_cpu_ns"] >= sum(data["cpu_ns"].values())
    table = loop_costs.report(json.loads(json.dumps(data)), top=3)
    assert "| task spin |" in table
    assert "the loop itself" in table


def test_the_hook_times_only_the_programs_it_is_told(monkeypatch, tmp_path):
    original = asyncio.events.Handle._run
    monkeypatch.setenv(loop_costs.ENV, str(tmp_path / "costs.json"))
    monkeypatch.setenv(loop_costs.PROGRAMS_ENV, "daphne")
    loop_costs.install_from_environment(sys.executable)  # not daphne: nothing installed
    assert asyncio.events.Handle._run is original
