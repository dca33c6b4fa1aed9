"""The benches' server CPU: every thread of a process, and every process of a tree, to the
nanosecond (bench.fanout.cpu_seconds, bench.peers.tree_cpu_seconds)."""

from __future__ import annotations

import subprocess
import sys

from bench.fanout import cpu_seconds
from bench.peers import tree_cpu_seconds

# Burns CPU in a thread that then ends, prints the process's own CPU time, waits for stdin.
BURNER = """
import sys, threading, time
def burn():
    while time.thread_time() < 0.15:
        pass
thread = threading.Thread(target=burn)
thread.start()
thread.join()
print(repr(time.process_time()), flush=True)
sys.stdin.readline()
"""


def spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def test_cpu_seconds_counts_a_thread_that_has_ended_to_below_a_tick() -> None:
    proc = spawn(BURNER)
    try:
        own = float(proc.stdout.readline())  # type: ignore[union-attr]
        measured = cpu_seconds(proc.pid)
        # The process's own clock, read a moment before: at least that, and the ended thread's
        # 0.15 s is in it; /proc's ticks would be 10 ms coarse.
        assert own >= 0.15
        assert own <= measured < own + 0.005
    finally:
        proc.communicate("\n", timeout=30)


def test_tree_cpu_seconds_sums_a_process_and_its_children() -> None:
    parent = spawn(
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {BURNER!r}], stdout=subprocess.PIPE, text=True)\n"
        "print(child.stdout.readline().strip(), flush=True)\n"
        "sys.stdin.readline()\n"
        "child.kill()\n"
    )
    try:
        child_own = float(parent.stdout.readline())  # type: ignore[union-attr]
        assert tree_cpu_seconds(parent.pid) >= child_own + cpu_seconds(parent.pid) * 0.999
        assert tree_cpu_seconds(parent.pid) > cpu_seconds(parent.pid) + 0.15
    finally:
        parent.communicate("\n", timeout=30)
