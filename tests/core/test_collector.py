"""The collector set once per process: startup frozen, a larger young generation."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.core.collector import tune_gc


@pytest.fixture
def collector_as_found() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)


def test_daphne_starts_with_its_startup_objects_frozen_out_of_full_collections(collector_as_found):
    from livecharts import asgi  # daphne imports it before it listens

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] >= asgi.DAPHNE_GC_YOUNG_THRESHOLD
    assert not tune_gc(asgi.DAPHNE_GC_YOUNG_THRESHOLD), "once is enough"


def test_a_larger_young_generation_wins_and_a_smaller_one_changes_nothing(collector_as_found):
    young = max(gc.get_threshold()[0], 1_000) + 1_000
    assert tune_gc(young)
    middle_and_old = gc.get_threshold()[1:]
    assert not tune_gc(young - 500), "the embedded mode's second caller keeps the larger"
    assert gc.get_threshold() == (young, *middle_and_old)
