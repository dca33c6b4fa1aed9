"""The access watcher's rounds when a viewing was let in on an answer read earlier
(streams/access/revocation.py: `since`, check_by)."""

from __future__ import annotations

import asyncio
import contextlib

from streams.access import revocation
from streams.access.revocation import AccessWatcher, Viewing
from tests.waits import eventually


def record_rounds(monkeypatch) -> list[set[Viewing]]:
    rounds: list[set[Viewing]] = []

    def check(viewings):
        rounds.append(set(viewings))
        return {}

    monkeypatch.setattr(revocation, "check_viewings", check)
    return rounds


async def stop(watcher: AccessWatcher) -> None:
    task = watcher._task
    assert task is not None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_viewing_let_in_on_an_old_answer_is_checked_by_a_second_after_that_answer(monkeypatch):
    rounds = record_rounds(monkeypatch)
    watcher = AccessWatcher(interval=3600)  # the usual cadence never comes within this test
    loop = asyncio.get_running_loop()
    fresh = watcher.watch(Viewing(session_key=None, user_id=None, slug="fresh"))
    await asyncio.sleep(0)
    assert rounds == []
    stale = watcher.watch(Viewing(session_key=None, user_id=None, slug="kept"), since=loop.time() - 3600)
    await eventually(lambda: len(rounds) >= 1, what="a round for the viewing let in on an old answer")
    assert rounds[0] == {fresh.viewing, stale.viewing}
    await stop(watcher)


async def test_rounds_keep_their_cadence_when_every_answer_is_fresh(monkeypatch):
    rounds = record_rounds(monkeypatch)
    watcher = AccessWatcher(interval=0.05)
    watch = watcher.watch(Viewing(session_key=None, user_id=None, slug="s"))
    await eventually(lambda: len(rounds) >= 3, what="three rounds")
    assert all(viewings == {watch.viewing} for viewings in rounds)
    await stop(watcher)
