"""The reconnect-storm bench, smoke-sized: daphnes killed in turn under 12 viewers of 3 streams,
each time all back on the other one with their charts whole. Proves the harness (servers, feed,
viewers, kills, restarts, exactness check, table), not the figures."""

from __future__ import annotations

import pytest

from bench import storm

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(400)]

SMALL = ["--viewers", "12", "--streams", "3", "--window", "300", "--settle", "0.5"]


def test_every_viewer_comes_back_to_the_other_daphne_after_each_kill_with_nothing_lost_or_repeated() -> None:
    args = storm.parse_args([*SMALL, "--storms", "2"])
    result = storm.run(args)

    assert result["live_before"] == 12
    first, second = result["storms"]
    # daphne-1 killed, daphne-2 takes them; then daphne-1, started again, takes them back.
    assert (first["survivor"], second["survivor"]) == (1, 0)
    for each in (first, second):
        assert each["not_back"] == 0 and len(each["back"]) == 12
        # Every viewer subscribed again, on the surviving daphne, at least once after the kill.
        assert each["subscribes"] >= 12
        assert each["listen_overflows"] >= 0
    assert (result["lost"], result["repeated"]) == (0, 0)
    table = storm.report(result, args)
    assert "| viewers back after each kill | 24 of 24 | all | met |" in table
    assert "2 storms in turn" in table
    assert "| connections dropped by a full accept queue" in table


def test_the_section_runs_a_resumed_and_a_reloaded_storm_with_their_goals() -> None:
    text = storm.section([*SMALL, "--storms", "1"], command="python -m bench.storm")
    assert text.startswith("## Reconnect storm")
    assert "**resumed from the last id (live.js)**" in text
    assert "**reloaded pages, a whole window each**" in text
    assert text.count("| viewers back after each kill | 12 of 12 | all | met |") == 2
    assert (
        text.count("| points lost / repeated (against the window, all storms) | 0 / 0 | 0 / 0 | met |") == 2
    )
    assert text.count("| subscribes per second on that process") == 2


def test_a_storm_figure_is_the_median_of_the_storms_with_their_spread() -> None:
    assert storm.spread([900.0, 1200.0, 1100.0], "{:,.0f}") == "1,100 (900-1,200)"
    assert storm.spread([2.5], "{:.1f}") == "2.5"
