"""Ways access to a stream is taken away from alice while she watches it (socket and SSE tests
use the same ones): each takes (stream, alice, her session key)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.utils import timezone

from streams.models import Stream


def take_alice_off(stream: Stream, alice: User, session: str) -> None:
    stream.viewers.remove(alice)


def deactivate(stream: Stream, alice: User, session: str) -> None:
    User.objects.filter(pk=alice.pk).update(is_active=False)


def disable(stream: Stream, alice: User, session: str) -> None:
    Stream.objects.filter(pk=stream.pk).update(enabled=False)


def delete(stream: Stream, alice: User, session: str) -> None:
    Stream.objects.filter(pk=stream.pk).delete()


def sign_out(stream: Stream, alice: User, session: str) -> None:
    Session.objects.filter(session_key=session).delete()


def expire_session(stream: Stream, alice: User, session: str) -> None:
    Session.objects.filter(session_key=session).update(expire_date=timezone.now() - timedelta(seconds=1))


def change_password(stream: Stream, alice: User, session: str) -> None:
    alice.set_password("a-new-password-42")
    alice.save()
