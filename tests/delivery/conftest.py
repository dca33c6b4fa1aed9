"""Fixtures of the delivery tests (socket and SSE)."""

from __future__ import annotations

import pytest

from streams.models import Stream


@pytest.fixture
def plant(alice) -> Stream:
    """A restricted stream that alice may see and bob may not, with a window of 50 points."""
    stream = Stream.objects.create(
        slug="plant", title="Plant", visibility=Stream.Visibility.RESTRICTED, window_points=50
    )
    stream.viewers.add(alice)
    return stream
