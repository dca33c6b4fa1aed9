"""make bench's summary: the clean-clone figure counts making the virtualenv, when this run made it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bench.__main__ as bench_main


def test_the_summary_judges_install_plus_sections_against_15_minutes() -> None:
    times = [("fanout", 200.0, "done"), ("peers", 300.0, "done")]
    met = bench_main.summary_section(times, total=600.0, install=120.0)
    assert "took **12.0 min** in all: goal under 15 min, met." in met
    assert "| fanout | 3.3 | done |" in met
    missed = bench_main.summary_section(times, total=840.0, install=120.0)
    assert "took **16.0 min** in all: goal under 15 min, **missed**." in missed
    unmeasured = bench_main.summary_section(times, total=600.0, install=None)
    assert "the clean-clone figure is not measured by this run" in unmeasured


def test_install_time_is_read_only_from_a_virtualenv_this_run_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("")
    (venv / ".bench").write_text("")
    os.utime(venv / "pyvenv.cfg", (1000.0, 1000.0))
    os.utime(venv / ".bench", (1100.0, 1100.0))
    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    assert bench_main.install_seconds(started_wall=1105.0) == 100.0
    # Stamped long before this run: an old virtualenv, not a clean clone's.
    assert bench_main.install_seconds(started_wall=5000.0) is None
    (venv / ".bench").unlink()
    assert bench_main.install_seconds(started_wall=1105.0) is None
