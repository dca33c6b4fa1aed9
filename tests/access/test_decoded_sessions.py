"""The access watcher decodes a session's text once (revocation.decoded_session), and still
sees every change to it: the text is what it keys on."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session

from streams.access import revocation
from streams.access.revocation import Viewing, check_viewings, signed_in_users
from streams.models import Stream
from tests.sessions import session_of


@pytest.fixture(autouse=True)
def fresh_sessions():
    revocation.decoded_session.cache_clear()
    yield
    revocation.decoded_session.cache_clear()


def store(key: str):
    return import_module(settings.SESSION_ENGINE).SessionStore(key)


@pytest.mark.django_db
def test_a_session_is_decoded_once_while_its_text_stays(alice):
    key = session_of(alice)
    for _ in range(3):
        assert signed_in_users({key}) == {key: alice}
    info = revocation.decoded_session.cache_info()
    assert (info.misses, info.hits) == (1, 2)


@pytest.mark.django_db
def test_a_session_signed_in_as_someone_else_under_the_same_key_is_read_anew(alice, bob):
    key = session_of(alice)
    assert signed_in_users({key}) == {key: alice}
    # The same cookie now carries bob (as a sign-in in that browser would, were the key kept).
    session = store(key)
    session[SESSION_KEY] = str(bob.pk)
    session.save()
    assert signed_in_users({key}) == {}  # bob's password hash is not the one this session holds
    plant = Stream.objects.create(slug="plant", title="Plant", visibility=Stream.Visibility.RESTRICTED)
    plant.viewers.add(alice)
    refusal = check_viewings([Viewing(key, alice.pk, "plant")])
    assert refusal[Viewing(key, alice.pk, "plant")].code == "forbidden"


@pytest.mark.django_db
def test_a_session_whose_text_was_tampered_with_signs_nobody_in(alice):
    key = session_of(alice)
    assert signed_in_users({key}) == {key: alice}
    row = Session.objects.get(session_key=key)
    row.session_data = row.session_data[:-4] + ("AAAA" if not row.session_data.endswith("AAAA") else "BBBB")
    row.save()
    assert signed_in_users({key}) == {}
    assert signed_in_users({key}) == {}


@pytest.mark.django_db
def test_signing_out_is_seen_though_the_text_was_decoded_before(alice):
    key = session_of(alice)
    assert signed_in_users({key}) == {key: alice}
    store(key).flush()
    assert signed_in_users({key}) == {}
