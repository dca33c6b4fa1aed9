"""Feeds reach only public addresses unless LIVECHARTS_ALLOW_PRIVATE_FEEDS is on: refused when
settings are saved (admin, provision) and again on every connect, where a DNS answer that changed
since the save (rebinding) must not get through.

Every local source listens on 127.0.0.1, so the connect tests give it a name through a fake
resolver (DNS is outside the machine): the name can answer a public address first and loopback
the next time, as a rebinding attacker's server would.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from streams.config.provisioning import ProvisionError, provision
from streams.core.points import Batch
from streams.ingest.feeds import build_feed, clean_feed_settings
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.guarded import GuardedNetworkBackend, guarded_transport
from streams.ingest.feeds.mqtt import MqttFeedError
from streams.ingest.feeds.poll import PollError
from streams.ingest.feeds.sse import SSEDropped
from streams.ingest.feeds.websocket import WebsocketError
from streams.models import Stream
from tests.json_api import serve_json_api
from tests.services import require_mosquitto
from tests.sources import WebsocketSource
from tests.test_admin import ADD_URL, form

SETTING = "LIVECHARTS_ALLOW_PRIVATE_FEEDS"
PUBLIC = "93.184.216.34"
TIMEOUT = 15.0


@pytest.fixture
def guarded(settings) -> None:
    """Production's default: private feeds not allowed."""
    setattr(settings, SETTING, False)


class FakeDNS:
    """Answers for made-up names, one per lookup in turn (the last one repeats); every other
    name goes to the real resolver. `lookups` counts the lookups of each made-up name."""

    def __init__(self) -> None:
        # Per lookup: an address, several (a tuple), or None for a name that does not resolve.
        self.answers: dict[str, list[str | tuple[str, ...] | None]] = {}
        self.lookups: dict[str, int] = {}

    def getaddrinfo(self, real: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple]:
        name = host.decode() if isinstance(host, bytes) else host
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        if name not in self.answers or flags & socket.AI_NUMERICHOST:
            return real(host, port, *args, **kwargs)
        turn = self.lookups.get(name, 0)
        self.lookups[name] = turn + 1
        answers = self.answers[name]
        answer = answers[min(turn, len(answers) - 1)]
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))
            for address in ([answer] if isinstance(answer, str) else answer)
        ]


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    fake = FakeDNS()
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: fake.getaddrinfo(real, *a, **k))
    return fake


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A bare TCP listener on 127.0.0.1 that tells whether anything connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def nothing_connected(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


def refusal(kind: str, settings: dict[str, Any]) -> FeedSettingsError:
    with pytest.raises(FeedSettingsError) as caught:
        clean_feed_settings(kind, settings)
    return caught.value


NOT_PUBLIC_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("[::1]", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("[fc00::1]", "private"),
    ("[fd12:3456::1]", "private"),
    ("[fe80::1]", "link-local"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
    ("[2002:c0a8:101::]", "private"),  # 6to4 of 192.168.1.1
    ("0.0.0.0", "unspecified"),
    ("[::]", "unspecified"),
    ("100.64.0.1", "not a public address"),
    ("localhost", "loopback"),
    ("LOCALHOST.", "loopback"),
    ("api.localhost", "loopback"),
    ("2130706433", "loopback"),  # 127.0.0.1 as one decimal number
    ("0177.0.0.1", "loopback"),  # octal
    ("0x7f.1", "loopback"),  # hex, short form
    ("127.1", "loopback"),
    ("0", "unspecified"),
]


@pytest.mark.parametrize(("host", "kind_of_address"), NOT_PUBLIC_HOSTS)
def test_a_url_to_a_non_public_address_is_refused_naming_the_setting(guarded, host, kind_of_address):
    error = refusal("poll", {"url": f"http://{host}:8080/data"})
    assert error.key == "url"
    assert kind_of_address in error.message
    assert f"unless the {SETTING} setting is on" in error.message


@pytest.mark.parametrize(
    ("kind", "url"),
    [("websocket", "ws://127.0.0.1:9000/feed"), ("sse", "https://192.168.0.10/events")],
)
def test_every_url_kind_is_checked(guarded, kind, url):
    assert refusal(kind, {"url": url}).key == "url"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "10.0.0.7", "localhost", "2130706433"])
def test_an_mqtt_broker_on_a_non_public_address_is_refused(guarded, host):
    error = refusal("mqtt", {"host": host, "topics": ["a/#"]})
    assert error.key == "host"
    assert SETTING in error.message


@pytest.mark.parametrize(
    ("kind", "feed_settings"),
    [
        ("poll", {"url": f"http://{PUBLIC}/data"}),
        ("poll", {"url": "https://[2606:4700:4700::1111]/"}),
        ("mqtt", {"host": "8.8.8.8", "topics": ["a/#"]}),
    ],
)
def test_public_addresses_are_accepted(guarded, kind, feed_settings):
    clean_feed_settings(kind, feed_settings)


def test_with_the_setting_on_private_addresses_are_accepted(settings):
    setattr(settings, SETTING, True)
    assert clean_feed_settings("poll", {"url": "http://127.0.0.1:8080/"})["url"] == "http://127.0.0.1:8080/"
    assert clean_feed_settings("mqtt", {"host": "192.168.1.5", "topics": ["a"]})["host"] == "192.168.1.5"


def test_a_name_resolving_to_a_private_address_is_refused_on_save(guarded, dns):
    dns.answers["intranet.example"] = ["10.0.0.5"]
    dns.answers["broker.example"] = ["::1"]
    error = refusal("sse", {"url": "https://intranet.example/events"})
    assert error.message.startswith("intranet.example resolves to 10.0.0.5, a private address")
    error = refusal("mqtt", {"host": "broker.example", "topics": ["a"]})
    assert error.message.startswith("broker.example resolves to ::1, a loopback address")


def test_a_name_with_a_private_address_among_public_ones_is_refused(guarded, dns):
    dns.answers["mixed.example"] = [(PUBLIC, "127.0.0.1")]
    assert "resolves to 127.0.0.1" in refusal("poll", {"url": "https://mixed.example/"}).message


def test_a_name_that_does_not_resolve_yet_is_accepted_on_save(guarded, dns):
    # It is checked when the feed connects, against whatever it resolves to then.
    dns.answers["later.example"] = [None]
    clean_feed_settings("poll", {"url": "https://later.example/"})


@pytest.mark.django_db
def test_admin_refuses_a_private_feed_url_saying_which_setting_allows_it(guarded, admin_client):
    settings = json.dumps({"url": "http://169.254.169.254/latest/meta-data/"})
    response = admin_client.post(ADD_URL, form(feed_kind="poll", feed_settings=settings))
    assert response.status_code == 200
    body = response.content.decode()
    assert "url: 169.254.169.254 is a link-local address" in body
    assert SETTING in body
    assert not Stream.objects.exists()


@pytest.mark.django_db
def test_admin_accepts_a_private_feed_url_when_the_setting_is_on(settings, admin_client):
    setattr(settings, SETTING, True)
    feed = json.dumps({"url": "http://127.0.0.1:9/data"})
    response = admin_client.post(ADD_URL, form(feed_kind="poll", feed_settings=feed))
    assert response.status_code == 302
    assert Stream.objects.get(slug="boiler").feed_settings["url"] == "http://127.0.0.1:9/data"


@pytest.mark.django_db
def test_provision_refuses_a_private_broker_naming_stream_and_key(guarded):
    feed = {"kind": "mqtt", "host": "10.0.0.9", "topics": ["a"]}
    entry = {"slug": "line-3", "title": "Line 3", "feed": feed}
    with pytest.raises(ProvisionError) as caught:
        provision({"streams": [entry]})
    [error] = caught.value.errors
    assert error.startswith('stream "line-3": feed.host: 10.0.0.9 is a private address')
    assert SETTING in error
    assert not Stream.objects.exists()


def test_the_httpx_transport_hack_still_reaches_httpcore():
    # guarded_transport swaps a private httpcore attribute; this fails if httpx/httpcore move it.
    transport = guarded_transport()
    assert isinstance(transport._pool._network_backend, GuardedNetworkBackend)


# On connect: a name that answered a public address when saved answers loopback now.


async def first_batch(batches: AsyncIterator[Batch]) -> Batch:
    async with asyncio.timeout(TIMEOUT):
        return await anext(batches)


async def test_poll_refuses_a_rebound_name_without_sending_a_request(guarded, dns, listener):
    port = listener.getsockname()[1]
    dns.answers["rebind.example"] = [PUBLIC, "127.0.0.1"]
    url = f"http://rebind.example:{port}/data"
    clean_feed_settings("poll", {"url": url})  # saved: the name was public then
    feed = build_feed("poll", {"url": url})
    with pytest.raises(PollError, match=r"rebind\.example resolves to 127\.0\.0\.1, a loopback address"):
        await first_batch(feed.batches())
    assert nothing_connected(listener)


async def test_sse_refuses_a_rebound_name(guarded, dns, listener):
    port = listener.getsockname()[1]
    dns.answers["rebind.example"] = [PUBLIC, "::ffff:127.0.0.1"]
    url = f"http://rebind.example:{port}/events"
    clean_feed_settings("sse", {"url": url})
    feed = build_feed("sse", {"url": url})
    with pytest.raises(SSEDropped, match=r"resolves to ::ffff:7f00:1, a loopback address"):
        await first_batch(feed.batches())
    assert nothing_connected(listener)


async def test_websocket_refuses_a_rebound_name(guarded, dns, listener):
    port = listener.getsockname()[1]
    dns.answers["rebind.example"] = [PUBLIC, "127.0.0.1"]
    url = f"ws://rebind.example:{port}/feed"
    clean_feed_settings("websocket", {"url": url})
    feed = build_feed("websocket", {"url": url})
    with pytest.raises(WebsocketError, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        await first_batch(feed.batches())
    assert nothing_connected(listener)


async def test_mqtt_refuses_a_rebound_name(guarded, dns, listener):
    port = listener.getsockname()[1]
    dns.answers["rebind.example"] = [PUBLIC, "127.0.0.1"]
    settings = {"host": "rebind.example", "port": port, "topics": ["a/#"]}
    clean_feed_settings("mqtt", settings)
    feed = build_feed("mqtt", settings)
    with pytest.raises(MqttFeedError, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        await first_batch(feed.batches())
    assert nothing_connected(listener)


async def test_a_redirect_to_a_private_address_is_refused(guarded):
    # The public name answers with a redirect to the metadata service: the redirect opens a new
    # connection, which is checked like the first. The "public" server is our local one.
    with serve_json_api() as (api, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        transport = guarded_transport()
        backend = transport._pool._network_backend
        # Let only the first connection through unchecked, as if the name were public.
        allowed_once = {"left": 1}
        checked = backend.connect_tcp

        async def first_unchecked(host: str, port: int, **kwargs: Any) -> Any:
            if allowed_once["left"]:
                allowed_once["left"] -= 1
                return await backend.inner.connect_tcp("127.0.0.1", port, **kwargs)
            return await checked(host, port, **kwargs)

        backend.connect_tcp = first_unchecked
        api.status, api.headers = 302, {"Location": "http://169.254.169.254/latest/meta-data/"}
        async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
            with pytest.raises(httpx.ConnectError, match=r"169\.254\.169\.254 is a link-local address"):
                await client.get(f"http://public.example:{port}/data")
        assert len(api.requests) == 1


# With the setting on (the demo, the tests), the feed still connects to the address it checked.


async def test_poll_connects_to_the_address_it_checked_not_a_second_lookup(settings, dns):
    setattr(settings, SETTING, True)
    with serve_json_api() as (api, url):
        api.body = {"v": 4}
        # A second lookup would say 127.0.0.2, where nothing listens.
        dns.answers["twice.example"] = ["127.0.0.1", "127.0.0.2"]
        named = url.replace("127.0.0.1", "twice.example")
        feed = build_feed("poll", {"url": named, "extract": {"value": "v"}})
        batches = feed.batches()
        try:
            [point] = await first_batch(batches)
        finally:
            await batches.aclose()
    assert point.values == {"value": 4.0}
    assert dns.lookups["twice.example"] == 1


async def test_websocket_connects_to_the_address_it_checked(settings, dns):
    setattr(settings, SETTING, True)
    source = WebsocketSource()
    source.start()
    try:
        dns.answers["twice.example"] = ["127.0.0.1", "127.0.0.2"]
        feed = build_feed("websocket", {"url": source.url.replace("127.0.0.1", "twice.example")})
        batches = feed.batches()
        try:
            assert await first_batch(batches) == []
        finally:
            await batches.aclose()
    finally:
        source.close()
    assert dns.lookups["twice.example"] == 1


async def test_mqtt_connects_to_the_address_it_checked(settings, dns):
    setattr(settings, SETTING, True)
    _, port = require_mosquitto()
    dns.answers["twice.example"] = ["127.0.0.1", "127.0.0.2"]
    feed = build_feed("mqtt", {"host": "twice.example", "port": port, "topics": ["livecharts-test/netguard"]})
    batches = feed.batches()
    try:
        assert await first_batch(batches) == []
    finally:
        await batches.aclose()
    assert dns.lookups["twice.example"] == 1
