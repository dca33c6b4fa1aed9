"""Finding daphne's protocol behind the ASGI send callable, and framing once."""

from __future__ import annotations

import functools

import pytest
from autobahn.twisted.websocket import WebSocketServerProtocol
from channels.sessions import InstanceSessionWrapper

from streams.delivery.transport import DirectWriter, direct_writer, prepare


async def handle_reply(protocol, message) -> None:  # the name daphne's Server method has
    pass


async def other(protocol, message) -> None:
    pass


def connected_protocol() -> WebSocketServerProtocol:
    """A protocol as autobahn leaves it once its connection is made (what daphne hands over)."""
    import txaio
    from autobahn.websocket.protocol import TrafficStats

    protocol = WebSocketServerProtocol()
    protocol.transport, protocol.state = None, WebSocketServerProtocol.STATE_OPEN
    protocol._perMessageCompress, protocol.send_queue = None, []
    protocol.log, protocol.trafficStats = txaio.make_logger(), TrafficStats()
    protocol.logOctets = False
    return protocol


def test_finds_the_protocol_in_daphnes_partial():
    protocol = connected_protocol()
    writer = direct_writer(functools.partial(handle_reply, protocol))
    assert isinstance(writer, DirectWriter) and writer.protocol is protocol


def test_looks_through_channels_session_wrapper():
    protocol = connected_protocol()
    wrapper = InstanceSessionWrapper({"type": "websocket", "cookies": {}}, None)
    wrapper.real_send = functools.partial(handle_reply, protocol)
    writer = direct_writer(wrapper.send)
    assert writer is not None and writer.protocol is protocol


def test_anything_else_has_no_direct_writer():
    async def send(message) -> None:
        pass

    assert direct_writer(send) is None
    assert direct_writer(functools.partial(other, WebSocketServerProtocol())) is None
    assert direct_writer(functools.partial(handle_reply, object())) is None


def test_a_prepared_frame_is_one_unmasked_text_frame():
    short, long = prepare('{"op":"x"}'), prepare("é" * 100)
    assert short.payloadHybi == b"\x81\x0a" + b'{"op":"x"}'
    # 200 bytes of UTF-8: the 16-bit length form.
    assert long.payloadHybi[:4] == b"\x81\x7e\x00\xc8"


def test_the_kernel_send_queue_shows_bytes_the_peer_has_not_read():
    import socket

    from streams.delivery.transport import kernel_send_queue

    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    try:

        class Transport:
            def fileno(self) -> int:
                return sender.fileno()

        assert kernel_send_queue(Transport()) == 0
        sender.setblocking(False)
        written = 0
        try:
            while written < 8 * 1024 * 1024:
                written += sender.send(b"x" * 65536)
        except BlockingIOError:
            pass  # the kernel holds all it will: the peer reads nothing
        # Loopback hands bytes to the peer's receive buffer at once; whatever the peer's buffer
        # could not take is still queued on our side.
        assert 0 < kernel_send_queue(Transport()) <= written
        assert kernel_send_queue(object()) == 0  # no socket: nothing known
    finally:
        for sock in (sender, receiver, listener):
            sock.close()


class FakeReactor:
    """Records what a Twisted transport asks of its reactor."""

    def __init__(self) -> None:
        self.writers: list[object] = []

    def addReader(self, reader: object) -> None:
        pass

    def removeReader(self, reader: object) -> None:
        pass

    def addWriter(self, writer: object) -> None:
        self.writers.append(writer)

    def removeWriter(self, writer: object) -> None:
        pass


def test_a_frame_goes_to_an_idle_socket_at_once_and_queues_behind_buffered_bytes():
    import socket

    import txaio
    from autobahn.websocket.protocol import TrafficStats
    from twisted.internet import tcp

    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(1)
    reactor = FakeReactor()
    protocol = WebSocketServerProtocol()
    transport = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, reactor)
    protocol.transport, protocol.state = transport, WebSocketServerProtocol.STATE_OPEN
    protocol._perMessageCompress, protocol.send_queue = None, []
    protocol.log, protocol.trafficStats = txaio.make_logger(), TrafficStats()
    protocol.logOctets = False
    writer = DirectWriter(protocol)
    try:
        writer.write(prepare("one"))
        assert peer.recv(100) == b"\x81\x03one", "sent at once"
        assert reactor.writers == [], "without waiting for the loop to say the socket is writable"
        transport.write(b"held")  # Twisted holds bytes for its next write
        writer.write(prepare("two"))
        assert reactor.writers, "behind Twisted's buffer, in order"
        transport.doWrite()
        assert peer.recv(100) == b"held\x81\x03two"
    finally:
        ours.close()
        peer.close()


@pytest.mark.parametrize("renamed", ["_perMessageCompress", "send_queue", "trafficStats"])
def test_a_socket_whose_autobahn_internals_changed_gets_plain_asgi_sends(renamed, caplog, monkeypatch):
    from streams.delivery import transport

    monkeypatch.setattr(transport, "stats", transport.TransportStats())
    monkeypatch.setattr(transport, "_fallback_reported", False)
    sockets = [connected_protocol() for _ in range(2)]
    for protocol in sockets:
        delattr(protocol, renamed)  # as a release that renamed it would leave it
    writers = [direct_writer(functools.partial(handle_reply, protocol)) for protocol in sockets]
    assert writers == [None, None], "the consumer then sends frames through ASGI"
    assert transport.stats.plain_fallbacks == 2
    said = [record.getMessage() for record in caplog.records if "internals" in record.getMessage()]
    assert len(said) == 1 and renamed in said[0], "said once per process, naming what is missing"
    assert direct_writer(functools.partial(handle_reply, connected_protocol())) is not None


def test_a_socket_whose_twisted_transport_changed_gets_plain_asgi_sends(monkeypatch):
    import socket

    from twisted.internet import tcp

    from streams.delivery import transport

    monkeypatch.setattr(transport, "stats", transport.TransportStats())
    ours, peer = socket.socketpair()
    try:
        protocol = connected_protocol()
        protocol.transport = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, FakeReactor())
        assert direct_writer(functools.partial(handle_reply, protocol)) is not None
        del protocol.transport._tempDataLen  # as a Twisted that renamed it would leave it
        assert direct_writer(functools.partial(handle_reply, protocol)) is None
        assert transport.stats.plain_fallbacks == 1
    finally:
        ours.close()
        peer.close()


def test_behind_asks_the_kernel_only_when_the_bytes_written_could_pass_the_budget(monkeypatch):
    import socket

    import txaio
    from autobahn.websocket.protocol import TrafficStats
    from twisted.internet import tcp

    from streams.delivery import transport as transport_module

    asked: list[int] = []
    real = transport_module.kernel_send_queue

    def counted(transport) -> int:
        asked.append(1)
        return real(transport)

    monkeypatch.setattr(transport_module, "kernel_send_queue", counted)
    listener = socket.create_server(("127.0.0.1", 0))
    ours = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    ours.setblocking(False)
    protocol = WebSocketServerProtocol()
    transport = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, FakeReactor())
    protocol.transport, protocol.state = transport, WebSocketServerProtocol.STATE_OPEN
    protocol._perMessageCompress, protocol.send_queue = None, []
    protocol.log, protocol.trafficStats = txaio.make_logger(), TrafficStats()
    protocol.logOctets = False
    writer = DirectWriter(protocol)
    budget = 64 * 1024
    frame = prepare("x" * 1000)
    try:
        # A reader that keeps up: written bytes are read; the kernel is asked once per budget.
        for _ in range(200):
            writer.write(frame)
            assert not writer.behind(budget)
            got = 0
            while got < len(frame.payloadHybi):
                got += len(peer.recv(65536))
        written = 200 * len(frame.payloadHybi)
        assert len(asked) <= written // budget + 1, "not once per write"
        # A reader that stopped: behind once the unread bytes pass the budget (here the peer's
        # receive buffer takes the first ones; what is beyond stays queued on our side).
        for _ in range(100_000):
            writer.write(frame)
            if writer.behind(budget):
                break
            writer._kernel_checked_at = -1.0  # the test does not wait out KERNEL_CHECK_SECONDS
        else:
            raise AssertionError("a reader that reads nothing never fell behind")
        assert writer.backlog_bytes() > budget
    finally:
        for sock in (ours, peer, listener):
            sock.close()
