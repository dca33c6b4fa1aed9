"""autobahn's per-connection debug pformat, made lazy (streams/delivery/handshake.py)."""

from __future__ import annotations

import pprint

import pytest
from autobahn.twisted import websocket
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket import protocol
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent

from streams.delivery.handshake import (
    LazyHighlight,
    LazyPformat,
    lazy_autobahn_debug,
)


def count_pformats(monkeypatch) -> list[object]:
    calls: list[object] = []
    real = pprint.PrettyPrinter.pformat

    def counted(self, value):
        calls.append(value)
        return real(self, value)

    monkeypatch.setattr(pprint.PrettyPrinter, "pformat", counted)
    return calls


def test_a_new_connection_pretty_prints_nothing_unless_logged(monkeypatch):
    assert lazy_autobahn_debug()
    calls = count_pformats(monkeypatch)
    factory = WebSocketServerFactory("ws://127.0.0.1:9/ws/")
    factory.protocol = WebSocketServerProtocol  # as daphne's factory sets its own subclass
    connection = factory.buildProtocol(None)
    connection.makeConnection(StringTransport())
    assert calls == []
    assert connection.autoPingInterval == factory.autoPingInterval  # _connectionMade ran


def test_a_connection_and_its_data_colour_no_debug_text_unless_logged(monkeypatch):
    from autobahn import util

    assert lazy_autobahn_debug()
    coloured: list[object] = []
    real = util.hl
    monkeypatch.setattr(util, "hl", lambda text, **kwargs: coloured.append(text) or real(text, **kwargs))
    factory = WebSocketServerFactory("ws://127.0.0.1:9/ws/")
    factory.protocol = WebSocketServerProtocol
    connection = factory.buildProtocol(None)
    connection.makeConnection(StringTransport())
    connection.dataReceived(b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a request
    assert coloured == []
    func, n = websocket.hltype(connection.dataReceived), websocket.hlval(3)
    event = {"log_format": "{func} got {n}", "func": func, "n": n}
    assert isinstance(event["func"], LazyHighlight)
    assert formatEvent(event) == f"{util.hltype(connection.dataReceived)} got {util.hlval(3)}"
    assert "WebSocketAdapterProtocol.dataReceived" in formatEvent(event)


def test_a_debug_line_still_reads_as_autobahn_wrote_it():
    lazy_autobahn_debug()
    options = [("autoPingInterval", 20, "WebSocketServerFactory"), ("utf8validateIncoming", True, "x")]
    event = {"log_format": "\n{attrs}", "attrs": protocol.pformat(options)}
    assert isinstance(event["attrs"], LazyPformat)
    assert formatEvent(event) == "\n" + pprint.pformat(options)


def test_timings_still_print_as_text():
    lazy_autobahn_debug()
    timings = protocol.Timings()
    timings.track("onOpen")
    text = str(timings)
    assert isinstance(text, str) and "onOpen" in text


def test_patching_twice_is_harmless():
    assert lazy_autobahn_debug()
    assert lazy_autobahn_debug()
    assert protocol.pformat is LazyPformat


async def sockets_user(headers: list[tuple[bytes, bytes]], monkeypatch) -> tuple[object, int]:
    """(the user the consumer saw, how many times channels' get_user ran) for one socket."""
    from channels import auth
    from channels.testing import WebsocketCommunicator

    from livecharts.asgi import application
    from streams.delivery import consumers

    calls = []
    real = auth.get_user

    async def counted(scope):
        calls.append(scope)
        return await real(scope)

    monkeypatch.setattr(auth, "get_user", counted)
    seen = []
    real_connect = consumers.StreamConsumer.connect

    async def connect(self):
        seen.append(self.scope["user"])
        await real_connect(self)

    monkeypatch.setattr(consumers.StreamConsumer, "connect", connect)
    communicator = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000"), *headers]
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()
    return seen[0], len(calls)


@pytest.mark.django_db(transaction=True)
async def test_a_socket_without_a_session_is_anonymous_without_asking_the_database(memory_layer, monkeypatch):
    user, lookups = await sockets_user([], monkeypatch)
    assert not user.is_authenticated
    assert lookups == 0


@pytest.mark.django_db(transaction=True)
async def test_a_socket_with_cookies_but_no_session_is_anonymous_with_its_cookies(memory_layer, monkeypatch):
    from streams.delivery import consumers

    scopes = []
    real_connect = consumers.StreamConsumer.connect

    async def connect(self):
        scopes.append(self.scope)
        await real_connect(self)

    monkeypatch.setattr(consumers.StreamConsumer, "connect", connect)
    user, lookups = await sockets_user([(b"cookie", b"csrftoken=abc; theme=dark")], monkeypatch)
    assert not user.is_authenticated
    assert lookups == 0
    (scope,) = scopes
    assert scope["cookies"] == {"csrftoken": "abc", "theme": "dark"}
    assert scope["session"].session_key is None


@pytest.mark.parametrize(
    "origin",
    [
        b"http://127.0.0.1:8000",
        b"http://evil.example.com",
        b"http://127.0.0.1.evil.example.com",
        None,
        b"\xff",
    ],
)
@pytest.mark.django_db(transaction=True)  # a refusal's consumer closes old database connections
async def test_an_origin_validator_that_remembers_answers_as_channels_does(origin, settings):
    """The same answer as channels' AllowedHostsOriginValidator, asked first and asked again."""
    from channels.security.websocket import AllowedHostsOriginValidator

    from streams.delivery.handshake import allowed_hosts_origin_validator

    settings.ALLOWED_HOSTS = ["127.0.0.1", ".example.org"]
    answers = []
    for make in (AllowedHostsOriginValidator, allowed_hosts_origin_validator):
        seen = []

        async def inner(scope, receive, send, seen=seen):
            seen.append(scope)

        async def send(message):
            pass

        validator = make(inner)
        headers = [] if origin is None else [(b"origin", origin)]
        for _ in range(2):
            messages = iter([{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}])

            async def receive(messages=messages):
                return next(messages)

            await validator({"type": "websocket", "headers": headers}, receive, send)
        answers.append(len(seen))
    assert answers[0] == answers[1]
    assert answers[0] == (2 if origin == b"http://127.0.0.1:8000" else 0)


@pytest.mark.django_db(transaction=True)
async def test_a_socket_with_a_session_is_its_user(memory_layer, alice, monkeypatch):
    from channels.db import database_sync_to_async

    from tests.sessions import session_of

    session = await database_sync_to_async(session_of)(alice)
    user, lookups = await sockets_user([(b"cookie", f"sessionid={session}".encode())], monkeypatch)
    assert user.is_authenticated and user.pk == alice.pk
    assert lookups == 1


def test_a_port_listens_with_room_for_a_reconnect_storm():
    import socket

    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.internet.tcp import Port

    from streams.delivery.handshake import LISTEN_BACKLOG, raise_listen_backlog

    assert raise_listen_backlog()
    assert raise_listen_backlog()  # twice: still one wrapper
    port = Port(0, Factory(), interface="127.0.0.1", reactor=reactor)
    assert port.backlog == 50  # Twisted's default, as daphne asks
    port.startListening()
    try:
        assert port.backlog == LISTEN_BACKLOG
        assert port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        port.stopListening()


def test_a_unix_socket_port_listens_with_room_for_a_reconnect_storm(tmp_path):
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory
    from twisted.internet.unix import Port

    from streams.delivery.handshake import LISTEN_BACKLOG, raise_listen_backlog

    raise_listen_backlog()
    port = Port(str(tmp_path / "daphne.sock"), Factory(), reactor=reactor)
    port.startListening()
    try:
        assert port.backlog == LISTEN_BACKLOG
    finally:
        port.stopListening()
