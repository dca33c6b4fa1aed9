"""What every bench section states: how to run it again, the machine it ran on, how long it took."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path


def machine() -> str:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    redis_server = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.split()
    redis_version = next((part[2:] for part in redis_server if part.startswith("v=")), "?")
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("django", "channels", "channels-redis", "daphne", "websockets")
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"Machine: {os.cpu_count()} CPUs (`nproc`), {memory_kb / 1024**2:.0f} GiB memory, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; {packages}; "
        f"redis-server {redis_version}. Load average when the run ended: {load}: the machine is shared "
        "with other work (test suites of other people run at the same time), so figures vary between "
        "runs; the min-max beside each median shows by how much."
    )


def how_it_ran(commands: list[str], took: float) -> list[str]:
    """A section's lines after its prose: its command(s) in a shell block, the machine, the time
    it took (`took` in seconds)."""
    return ["```sh", *commands, "```", "", machine(), f"This section took {took / 60:.1f} min."]


def beside_verdict(value: float, *, decimals: int, met: Callable[[float], bool]) -> str:
    """`value` with `decimals` decimals, or with as many more as it takes for the figure shown
    to fall on the same side of its goal as the value judged: 9.96x against "≥ 10x" reads
    9.96x, not 10.0x beside "missed" (as a make bench of 2026-12-06 printed for Dash)."""
    verdict = met(value)
    for places in range(decimals, decimals + 6):
        if met(round(value, places)) == verdict:
            return f"{value:,.{places}f}"
    return f"{value:,.{decimals + 6}f}"
