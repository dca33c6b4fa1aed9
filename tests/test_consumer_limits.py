"""The socket when access is taken away, and its per-user limit: through the whole ASGI stack
(session cookie, auth middleware), on both layers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from livecharts.asgi import application
from streams import consumers, revocation
from streams.broadcast import get_broadcaster
from streams.fanout import get_hub
from streams.feeds.base import Point
from streams.history import Retention
from streams.models import Stream
from tests.revocations import (
    change_password,
    deactivate,
    delete,
    disable,
    expire_session,
    sign_out,
    take_alice_off,
)

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVE_TIMEOUT = 3


def session_of(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def plant(alice) -> Stream:
    stream = Stream.objects.create(slug="plant", title="Plant", visibility=Stream.Visibility.RESTRICTED)
    stream.viewers.add(alice)
    return stream


@pytest.fixture
def open_stream(alice) -> Stream:
    return Stream.objects.create(slug="open", title="Open", visibility=Stream.Visibility.SIGNED_IN)


async def connect(session: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", f"sessionid={session}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive(communicator: WebsocketCommunicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=RECEIVE_TIMEOUT))


async def subscribe(communicator: WebsocketCommunicator, slug: str) -> None:
    await communicator.send_to(text_data=json.dumps({"op": "subscribe", "stream": slug, "after": None}))
    frame = await receive(communicator)
    assert frame["op"] == "subscribed", frame


async def publish(slug: str, value: float) -> None:
    broadcaster = get_broadcaster()
    broadcaster.publish(slug, [Point(t=value, values={"v": value})], retention=Retention(points=50))
    await broadcaster.flush()


@pytest.mark.parametrize(
    ("revoke", "code", "open_too"),
    [
        (take_alice_off, "forbidden", False),
        (disable, "forbidden", False),
        (delete, "not_found", False),
        # Losing the account or the session ends every stream of the socket.
        (deactivate, "forbidden", True),
        (sign_out, "forbidden", True),
        (expire_session, "forbidden", True),
        (change_password, "forbidden", True),
    ],
)
async def test_losing_access_stops_the_stream_within_a_second_with_an_error_frame(
    layer, alice, plant, open_stream, revoke: Callable, code: str, open_too: bool
):
    session = await database_sync_to_async(session_of)(alice)
    client = await connect(session)
    await subscribe(client, "plant")
    await subscribe(client, "open")
    await publish("plant", 1)
    assert (await receive(client))["op"] == "points"
    await asyncio.sleep(revocation.CHECK_SECONDS * 1.5)  # a check or two pass while allowed
    assert await client.receive_nothing(timeout=0.05)

    await database_sync_to_async(revoke)(plant, alice, session)
    revoked_at = time.monotonic()
    errors = [await receive(client) for _ in range(2 if open_too else 1)]
    took = time.monotonic() - revoked_at
    assert {error["op"] for error in errors} == {"error"}
    assert {error["code"] for error in errors} <= {code, "forbidden"}
    assert {error["stream"] for error in errors} == ({"plant", "open"} if open_too else {"plant"})
    assert all(error["message"] for error in errors)
    assert took < revocation.CHECK_SECONDS + 0.5
    # Nothing more of that stream reaches the socket, and the process no longer listens for it.
    if revoke is not delete:
        await publish("plant", 2)
    assert await client.receive_nothing(timeout=0.3)
    assert "plant" not in get_hub()._members
    if not open_too:
        await publish("open", 3)
        frame = await receive(client)
        assert frame["op"] == "points" and frame["data"][0]["stream"] == "open"
    await client.disconnect()


async def test_a_user_gets_a_bounded_number_of_sockets(layer, alice, open_stream, monkeypatch):
    monkeypatch.setattr(consumers, "MAX_SOCKETS_PER_USER", 3)
    session = await database_sync_to_async(session_of)(alice)
    clients = [await connect(session) for _ in range(3)]
    extra = await connect(session)
    error = await receive(extra)
    assert error == {
        "op": "error",
        "code": "rate_limited",
        "message": "at most 3 open sockets per user: close other tabs",
    }
    closed = await extra.receive_output(timeout=RECEIVE_TIMEOUT)
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_TOO_MANY_SOCKETS}
    await extra.wait()
    # One closes: a new one is welcome again; the earlier ones still work.
    await clients[0].disconnect()
    again = await connect(session)
    await subscribe(again, "open")
    await subscribe(clients[1], "open")
    for client in (again, clients[1], clients[2]):
        await client.disconnect()
    assert consumers._sockets_per_user == {}
