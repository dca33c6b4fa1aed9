"""Figures beside a verdict read on the verdict's side of the goal (bench/report.py)."""

from __future__ import annotations

import pytest

from bench.peers import ratio_text
from bench.report import beside_verdict


@pytest.mark.parametrize(
    ("value", "decimals", "goal", "shown"),
    [
        (9.96, 1, lambda v: v >= 10, "9.96"),  # not "10.0" beside "missed"
        (9.94, 1, lambda v: v >= 10, "9.9"),
        (10.04, 1, lambda v: v >= 10, "10.0"),
        (8.04, 1, lambda v: v <= 8, "8.04"),  # not "8.0" beside "missed"
        (7.96, 1, lambda v: v <= 8, "8.0"),  # met, and 8.0 is within the goal
        (150.4, 0, lambda v: v <= 150, "150.4"),
        (18.96, 1, lambda v: v >= 19, "18.96"),
        (1234.5, 0, lambda v: v <= 2000, "1,234"),
    ],
)
def test_a_figure_never_reads_as_the_other_side_of_its_goal(value, decimals, goal, shown) -> None:
    assert beside_verdict(value, decimals=decimals, met=goal) == shown


def test_a_peer_ratio_just_under_ten_reads_under_ten() -> None:
    assert ratio_text(9.96) == "9.96x"
    assert ratio_text(13.27) == "13.3x"
