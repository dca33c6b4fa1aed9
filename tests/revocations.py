"""Ways access to a stream is taken away from alice while she watches it (socket and SSE tests
use the same ones): each takes (stream, alice, her session key)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.utils import timezone

from streams.access import revocation
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


# Each way with the error code the viewer is told, and whether it ends every stream the viewer
# watches (losing the account or the session) rather than this stream's alone.
REVOCATIONS: list[tuple[Callable[[Stream, User, str], None], str, bool]] = [
    (take_alice_off, "forbidden", False),
    (disable, "forbidden", False),
    (delete, "not_found", False),
    (deactivate, "forbidden", True),
    (sign_out, "forbidden", True),
    (expire_session, "forbidden", True),
    (change_password, "forbidden", True),
]


class CheckRounds:
    """Counts the access watcher's check rounds (streams/access/revocation.py), so a test can say "the
    first check after the change" instead of timing one: rounds start CHECK_SECONDS apart."""

    def __init__(self, monkeypatch: Any) -> None:
        self.started = 0
        self.finished = 0
        real = revocation.check_viewings

        def counting(
            viewings: Collection[revocation.Viewing],
        ) -> dict[revocation.Viewing, revocation.Refusal]:
            self.started += 1
            try:
                return real(viewings)
            finally:
                self.finished += 1

        # The watcher looks the function up at each round, so the patch takes from the next one.
        monkeypatch.setattr(revocation, "check_viewings", counting)
