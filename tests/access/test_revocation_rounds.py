"""The access watcher's rounds when a viewing was let in on an answer read earlier
(streams/access/revocation.py: `since`, check_by)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from channels.db import database_sync_to_async
from django.db import connection as django_connection

from streams.access import revocation
from streams.access.revocation import AccessWatcher, Viewing
from streams.models import Stream
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


async def test_a_round_asks_once_per_viewing_and_a_refusal_ends_every_watch_of_it(monkeypatch):
    asked: list[list[Viewing]] = []
    refused: dict[Viewing, revocation.Refusal] = {}

    def check(viewings):
        asked.append(list(viewings))
        return dict(refused)

    monkeypatch.setattr(revocation, "check_viewings", check)
    watcher = AccessWatcher(interval=0.02)
    crowd = Viewing(session_key=None, user_id=None, slug="crowd")
    other = Viewing(session_key=None, user_id=None, slug="other")
    watches = [watcher.watch(crowd) for _ in range(100)]
    kept = watcher.watch(other)
    await eventually(lambda: asked, what="a round")
    # A hundred anonymous viewers of one stream are one viewing to ask about.
    assert sorted(asked[0], key=lambda viewing: viewing.slug) == [crowd, other]
    refused[crowd] = revocation.Refusal("not_found", "stream 'crowd' no longer exists")
    await eventually(lambda: all(watch.revoked.done() for watch in watches), what="every watch ended")
    assert {watch.revoked.result() for watch in watches} == {refused[crowd]}
    rounds = len(asked)
    await eventually(lambda: len(asked) > rounds, what="a later round")
    # Ended viewings are not asked about again; the other is still watched.
    assert asked[-1] == [other]
    assert not kept.revoked.done()
    await stop(watcher)


async def test_a_watch_added_during_a_round_is_not_ended_by_that_rounds_answer(monkeypatch):
    started, answer = threading.Event(), threading.Event()
    viewing = Viewing(session_key=None, user_id=None, slug="s")
    refusal = revocation.Refusal("forbidden", "you may no longer see stream 's'")
    calls: list[int] = []

    def check(viewings):
        calls.append(len(viewings))
        if len(calls) == 1:
            started.set()
            answer.wait(30)
            return {viewing: refusal}
        return {}

    monkeypatch.setattr(revocation, "check_viewings", check)
    watcher = AccessWatcher(interval=0.02)
    first = watcher.watch(viewing)
    await eventually(started.is_set, what="the first round asking")
    # Let in (on an answer read now, after the round's own read began) while the round runs.
    second = watcher.watch(viewing)
    answer.set()
    await eventually(first.revoked.done, what="the first watch ended by the round's answer")
    await eventually(lambda: len(calls) >= 3, what="two more rounds")
    assert not second.revoked.done()
    await stop(watcher)


async def rounds_on_connections(monkeypatch) -> tuple[AccessWatcher, revocation.Watch, list[object]]:
    """A watcher re-checking one public viewing every 20 ms; each round's database connection
    (the DBAPI object) as it answered."""
    from django.db import connection

    # database_sync_to_async: its thread's connection closed after (acreate's would be left open).
    await database_sync_to_async(Stream.objects.create)(
        slug="kept", title="Kept", visibility=Stream.Visibility.PUBLIC
    )
    connections: list[object] = []
    real = revocation.check_viewings

    def check(viewings):
        refusals = real(viewings)
        connections.append(connection.connection)
        return refusals

    monkeypatch.setattr(revocation, "check_viewings", check)
    watcher = AccessWatcher(interval=0.02)
    watch = watcher.watch(Viewing(session_key=None, user_id=None, slug="kept"))
    await eventually(lambda: len(connections) >= 3, what="three rounds")
    return watcher, watch, connections


@pytest.mark.django_db(transaction=True)
async def test_rounds_keep_their_database_connection(monkeypatch):
    watcher, watch, connections = await rounds_on_connections(monkeypatch)
    assert len({id(each) for each in connections}) == 1  # one connection, kept from round to round
    assert not watch.revoked.done()
    await stop(watcher)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    django_connection.vendor != "postgresql", reason="drops a backend with pg_terminate_backend"
)
async def test_a_round_whose_connection_the_database_dropped_asks_again_on_a_new_one(monkeypatch, caplog):
    from django.db import connection

    watcher, watch, connections = await rounds_on_connections(monkeypatch)
    dropped = connections[-1]
    backend = dropped.info.backend_pid

    def terminate() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        connection.close()

    await asyncio.to_thread(terminate)
    seen = len(connections)
    await eventually(lambda: len(connections) > seen + 1, what="two rounds after the drop")
    # The round that found its connection gone asked again on a new one, and answered.
    assert connections[-1] is not dropped
    assert not watch.revoked.done()
    assert "could not re-check" not in caplog.text
    await stop(watcher)


@pytest.mark.django_db
def test_viewers_of_public_streams_cost_one_query_for_all_and_still_lose_them(django_assert_num_queries):
    from django.contrib.auth.models import User

    from tests.sessions import session_of

    lobby = Stream.objects.create(slug="lobby", title="Lobby", visibility=Stream.Visibility.PUBLIC)
    hall = Stream.objects.create(slug="hall", title="Hall", visibility=Stream.Visibility.PUBLIC)
    viewings = [Viewing(None, None, "lobby"), Viewing(None, None, "hall")]
    for n in range(5):
        user = User.objects.create_user(f"viewer{n}")
        viewings += [Viewing(session_of(user), user.pk, slug) for slug in ("lobby", "hall")]
    # Sessions, users, then one query for which streams are public: none per viewer.
    with django_assert_num_queries(3):
        assert revocation.check_viewings(viewings) == {}

    lobby.visibility = Stream.Visibility.SIGNED_IN
    lobby.save()
    hall.enabled = False
    hall.save()
    refusals = revocation.check_viewings(viewings)
    # Signed-in viewers still see the lobby; the anonymous one does not, and nobody the hall.
    assert {viewing: refusal.code for viewing, refusal in refusals.items()} == {
        viewing: "forbidden" for viewing in viewings if viewing.slug == "hall" or viewing.user_id is None
    }
