from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.processes import Stack, make_stack
from tests.services import require_redis

PASSWORD = "e2e-password-123"


@pytest.fixture
def stack(tmp_path, redis_prefix) -> Iterator[Stack]:
    """Production mode on loopback: a SQLite file, the real Redis, daphne + ingest processes."""
    stack = make_stack(workdir=tmp_path, redis_url=require_redis(), prefix=redis_prefix)
    stack.seed(PASSWORD)
    try:
        yield stack
    finally:
        stack.stop_all()
