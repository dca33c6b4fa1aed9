"""Who may see which stream: the rules in streams/access/rules.py, through the model and can_view."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User

from streams.access.rules import can_view, viewable_stream
from streams.models import Stream
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

V = Stream.Visibility


@pytest.fixture
def streams(alice: User, operators: Group) -> dict[str, Stream]:
    """One stream per rule; "restricted" names alice and the operators group, "named" only alice."""

    def make(slug: str, visibility: str, *, enabled: bool = True) -> Stream:
        return Stream.objects.create(slug=slug, title=slug.title(), visibility=visibility, enabled=enabled)

    made = {
        "public": make("public", V.PUBLIC),
        "signed-in": make("signed-in", V.SIGNED_IN),
        "restricted": make("restricted", V.RESTRICTED),
        "named": make("named", V.RESTRICTED),
        "nobody": make("nobody", V.RESTRICTED),
        "public-off": make("public-off", V.PUBLIC, enabled=False),
        "signed-in-off": make("signed-in-off", V.SIGNED_IN, enabled=False),
        "restricted-off": make("restricted-off", V.RESTRICTED, enabled=False),
    }
    made["restricted"].viewers.add(alice)
    made["restricted"].viewer_groups.add(operators)
    made["named"].viewers.add(alice)
    made["restricted-off"].viewers.add(alice)
    return made


@pytest.fixture
def superuser(db) -> User:
    """A superuser without the staff flag: still sees everything."""
    return User.objects.create_user("root", "root@example.com", PASSWORD, is_superuser=True)


@pytest.fixture
def inactive(db, operators: Group) -> User:
    user = User.objects.create_user("ivan", "ivan@example.com", PASSWORD, is_active=False)
    user.groups.add(operators)
    return user


def visible(user) -> set[str]:
    return set(Stream.objects.visible_to(user).values_list("slug", flat=True))


def test_anonymous_user_sees_only_enabled_public_streams(streams):
    assert visible(AnonymousUser()) == {"public"}


def test_none_as_user_counts_as_anonymous(streams):
    assert visible(None) == {"public"}


def test_signed_in_user_sees_public_and_signed_in_streams_but_not_restricted(streams, bob):
    assert visible(bob) == {"public", "signed-in"}


def test_named_viewer_sees_restricted_streams_naming_her(streams, alice):
    assert visible(alice) == {"public", "signed-in", "restricted", "named"}


def test_group_member_sees_restricted_stream_through_the_group_only(streams, carol):
    assert visible(carol) == {"public", "signed-in", "restricted"}


def test_staff_sees_every_stream_including_disabled_ones(streams, staff):
    assert visible(staff) == set(streams)


def test_superuser_sees_every_stream_even_without_the_staff_flag(streams, superuser):
    assert visible(superuser) == set(streams)


def test_inactive_user_is_treated_as_anonymous(streams, inactive, alice):
    assert visible(inactive) == {"public"}
    alice.is_active = False
    alice.save()
    assert visible(alice) == {"public"}


def test_inactive_staff_sees_only_public_streams(streams, staff):
    staff.is_active = False
    staff.save()
    assert visible(staff) == {"public"}


def test_disabled_streams_are_hidden_from_everyone_but_staff(streams, alice, bob, carol):
    for user in (AnonymousUser(), alice, bob, carol):
        assert not visible(user) & {"public-off", "signed-in-off", "restricted-off"}


def test_user_matching_by_name_and_by_group_gets_no_duplicate_rows(streams, alice, operators):
    second = Group.objects.create(name="night-shift")
    alice.groups.add(second)
    streams["restricted"].viewer_groups.add(second)
    rows = list(Stream.objects.visible_to(alice).values_list("slug", flat=True))
    assert rows.count("restricted") == 1
    assert len(rows) == len(set(rows))
    assert Stream.objects.visible_to(alice).count() == 4


def test_can_view_agrees_with_visible_to_for_every_user_and_stream(
    streams, alice, bob, carol, staff, superuser, inactive
):
    for user in (AnonymousUser(), alice, bob, carol, staff, superuser, inactive):
        seen = visible(user)
        for slug, stream in streams.items():
            assert can_view(user, stream) == (slug in seen), (user, slug)


def test_viewable_stream_tells_missing_from_forbidden(streams, bob):
    assert viewable_stream(bob, "no-such-stream") == (None, False)
    stream, allowed = viewable_stream(bob, "restricted")
    assert stream == streams["restricted"]
    assert allowed is False
    assert viewable_stream(bob, "signed-in") == (streams["signed-in"], True)


def test_taking_a_viewer_off_a_stream_hides_it_at_once(streams, alice):
    streams["named"].viewers.remove(alice)
    assert not can_view(alice, streams["named"])
