"""Signed-in sessions for tests that open sockets and event streams as a user."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import SessionBase
from django.test import Client


def session_of(user: User) -> str:
    """The key of a real session signed in as `user` (what the browser's cookie holds)."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def signed_in_session(user: User) -> SessionBase:
    """That session as the session middleware puts it in a socket's scope. The access watcher
    re-checks a signed-in viewer's session every second: a user with no session reads as
    signed out, so a socket test without one races that check on a slow machine."""
    return import_module(settings.SESSION_ENGINE).SessionStore(session_of(user))
