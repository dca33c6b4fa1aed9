"""autobahn's per-connection debug pformat, made lazy (streams/delivery/handshake.py)."""

from __future__ import annotations

import pprint

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket import protocol
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent

from streams.delivery.handshake import LazyPformat, lazy_autobahn_debug


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
