"""The access watcher's queries, compiled once and asked again every round
(streams/access/compiled.py, revocation.visible_slugs)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, User

from streams.access import compiled
from streams.access.compiled import CompiledTextQueries
from streams.access.revocation import Viewing, check_viewings, visible_slugs
from streams.models import Stream
from tests.sessions import session_of


@pytest.fixture
def queries(monkeypatch) -> CompiledTextQueries:
    """A cache of this test's own: nothing compiled by another test answers here."""
    fresh = CompiledTextQueries()
    monkeypatch.setattr(compiled, "QUERIES", fresh)
    monkeypatch.setattr("streams.access.revocation.QUERIES", fresh)
    return fresh


@pytest.fixture
def lobby(db) -> Stream:
    return Stream.objects.create(slug="lobby", title="Lobby", visibility=Stream.Visibility.PUBLIC)


def test_a_round_compiles_once_and_still_asks_the_database_every_time(
    queries, alice, plant, lobby, django_assert_num_queries
):
    session = session_of(alice)
    viewings = [Viewing(session, alice.pk, "plant"), Viewing(None, None, "lobby")]
    # Sessions, users, which streams are public, which of the rest alice may see.
    for _ in range(3):
        with django_assert_num_queries(4):
            assert check_viewings(viewings) == {}
    assert queries.compiled == 2  # the public streams and alice's: compiled in the first round


def taken_off_the_stream(plant: Stream, alice: User, operators) -> None:
    plant.viewers.remove(alice)


def stream_disabled_without_a_signal(plant: Stream, alice: User, operators) -> None:
    Stream.objects.filter(pk=plant.pk).update(enabled=False)


def group_taken_off_the_stream(plant: Stream, alice: User, operators) -> None:
    plant.viewers.remove(alice)
    plant.viewer_groups.add(operators)
    assert visible_slugs(alice, {"plant"}) == {"plant"}  # now through the group alone
    plant.viewer_groups.remove(operators)


def taken_out_of_the_group(plant: Stream, alice: User, operators) -> None:
    plant.viewers.remove(alice)
    plant.viewer_groups.add(operators)
    assert visible_slugs(alice, {"plant"}) == {"plant"}
    alice.groups.remove(operators)


@pytest.mark.parametrize(
    "take_away",
    [
        taken_off_the_stream,
        stream_disabled_without_a_signal,
        group_taken_off_the_stream,
        taken_out_of_the_group,
    ],
)
def test_access_taken_away_after_compiling_is_seen_by_the_next_round(
    queries, alice, operators, plant, take_away
):
    assert visible_slugs(alice, {"plant"}) == {"plant"}
    take_away(plant, alice, operators)
    assert visible_slugs(alice, {"plant"}) == set()
    assert queries.compiled == 1  # one compiled query, answered anew each time


def test_users_and_slug_sets_do_not_share_answers(queries, alice, bob, staff, plant, lobby):
    assert visible_slugs(alice, {"plant", "lobby"}) == {"plant", "lobby"}
    assert visible_slugs(bob, {"plant", "lobby"}) == {"lobby"}
    assert visible_slugs(AnonymousUser(), {"plant", "lobby"}) == {"lobby"}
    assert visible_slugs(staff, {"plant", "lobby"}) == {"plant", "lobby"}
    assert visible_slugs(alice, {"plant"}) == {"plant"}
    # A user made inactive is asked as anonymous (access/rules.py): the anonymous query,
    # already compiled, not alice's.
    alice.is_active = False
    assert visible_slugs(alice, {"plant", "lobby"}) == {"lobby"}
    assert queries.compiled == 5


def test_the_oldest_query_is_forgotten_past_the_bound(db, monkeypatch, lobby):
    small = CompiledTextQueries(size=2)
    monkeypatch.setattr("streams.access.revocation.QUERIES", small)
    for slugs in ({"a"}, {"b"}, {"a"}, {"c"}, {"a"}, {"b"}):
        visible_slugs(AnonymousUser(), slugs)
    # a, b; a again (kept, now newest); c pushes b out; a kept; b compiled again.
    assert small.compiled == 4
    assert len(small._compiled) == 2


def test_no_slugs_asks_nothing(queries, alice, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert visible_slugs(alice, set()) == set()
