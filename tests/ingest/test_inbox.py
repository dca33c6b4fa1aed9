"""The push inbox's stop path: acknowledgements settled, bounded, and cancellable."""

from __future__ import annotations

import asyncio

import pytest

from streams.ingest import inbox as inbox_module
from streams.ingest.inbox import RedisInbox
from tests.core.test_tasks import stubborn
from tests.services import require_redis


async def test_cancelling_settle_while_it_waits_for_a_stuck_acknowledgement_propagates(
    redis_prefix, monkeypatch
):
    # Redis stopped answering: settle gives up after SETTLE_SECONDS and stops the sender,
    # which takes a moment; the stop is cancelled meanwhile and must hear of it.
    monkeypatch.setattr(inbox_module, "SETTLE_SECONDS", 0.01)
    inbox = RedisInbox(require_redis(), prefix=redis_prefix)
    sender, cancelled, release = stubborn()
    inbox._acking = sender
    settling = asyncio.ensure_future(inbox.settle())
    try:
        await cancelled.wait()
        settling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await settling
    finally:
        release.set()
