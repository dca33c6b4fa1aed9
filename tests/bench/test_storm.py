"""The reconnect-storm bench, smoke-sized: a daphne killed under 12 viewers of 3 streams, each
back on the other one with its chart whole. Proves the harness (servers, feed, viewers, kill,
exactness check, table), not the figures."""

from __future__ import annotations

import pytest

from bench import storm

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(400)]


def test_every_viewer_of_the_killed_daphne_comes_back_to_the_other_with_nothing_lost_or_repeated() -> None:
    args = storm.parse_args(["--viewers", "12", "--streams", "3", "--window", "300", "--settle", "0.5"])
    result = storm.run(args)

    assert result["live_before"] == 12
    assert result["not_back"] == 0 and len(result["back"]) == 12
    # Every viewer subscribed again, on the surviving daphne, at least once after the kill.
    assert result["subscribes"] >= 12
    assert (result["lost"], result["repeated"]) == (0, 0)
    table = storm.report(result, args)
    assert "| viewers back after the kill | 12 of 12 | all | met |" in table
    assert result["listen_overflows"] >= 0
    assert "| connections dropped by a full accept queue" in table


def test_the_section_runs_a_resumed_and_a_reloaded_storm_with_their_goals() -> None:
    argv = ["--viewers", "12", "--streams", "3", "--window", "300", "--settle", "0.5"]
    text = storm.section(argv, command="python -m bench.storm")
    assert text.startswith("## Reconnect storm")
    assert "**resumed from the last id (live.js)**" in text
    assert "**reloaded pages, a whole window each**" in text
    assert text.count("| viewers back after the kill | 12 of 12 | all | met |") == 2
    assert text.count("| points lost / repeated (against the window) | 0 / 0 | 0 / 0 | met |") == 2
    assert text.count("| subscribes per second on that process") == 2
