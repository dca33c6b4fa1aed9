"""The socket when access is taken away, and its per-user limit: through the whole ASGI stack
(session cookie, auth middleware), on both layers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from livecharts.asgi import application
from streams.access import revocation
from streams.broadcast import get_broadcaster
from streams.core.points import Point
from streams.core.retention import Retention
from streams.delivery import consumers
from streams.delivery.hub import get_hub
from streams.models import Stream
from tests.revocations import REVOCATIONS, CheckRounds, delete
from tests.sessions import session_of
from tests.waits import DEADLINE, eventually

pytestmark = pytest.mark.django_db(transaction=True)

# A frame the test waits for comes as soon as it is sent: the bound only stops a hung test, so
# it is the suite's (3 s was a subscribe's database and Redis round trips on a loaded machine).
RECEIVE_TIMEOUT = DEADLINE


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
    REVOCATIONS,
)
async def test_losing_access_stops_the_stream_within_a_second_with_an_error_frame(
    layer, alice, plant, open_stream, revoke: Callable, code: str, open_too: bool, monkeypatch
):
    rounds = CheckRounds(monkeypatch)
    session = await database_sync_to_async(session_of)(alice)
    client = await connect(session)
    await subscribe(client, "plant")
    await subscribe(client, "open")
    await publish("plant", 1)
    assert (await receive(client))["op"] == "points"
    await eventually(lambda: rounds.finished >= 2, what="two access checks while allowed")
    # Nothing came of them: the next message is a batch published now.
    await publish("open", 0.5)
    assert [batch["stream"] for batch in (await receive(client))["data"]] == ["open"]

    await database_sync_to_async(revoke)(plant, alice, session)
    started_before = rounds.started
    errors = [await receive(client) for _ in range(2 if open_too else 1)]
    assert {error["op"] for error in errors} == {"error"}
    assert {error["code"] for error in errors} <= {code, "forbidden"}
    assert {error["stream"] for error in errors} == ({"plant", "open"} if open_too else {"plant"})
    assert all(error["message"] for error in errors)
    # "Within a second": rounds start CHECK_SECONDS apart, and the first to start after the
    # change (or the one in flight, if it read after it) is the one that ended the stream.
    assert rounds.started <= started_before + 1, (rounds.started, started_before)
    # Nothing more of that stream reaches the socket: the process no longer listens for it...
    await eventually(lambda: "plant" not in get_hub()._members, what="the hub to leave plant")
    if revoke is not delete:
        await publish("plant", 2)
    if not open_too:
        # ...and a batch of the stream still allowed, published after, is the next message.
        await publish("open", 3)
        frame = await receive(client)
        assert frame["op"] == "points" and [batch["stream"] for batch in frame["data"]] == ["open"]
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
    assert consumers.socket_counts().per_user == {}


async def connect_from(address: str, *, forwarded: str | None = None) -> WebsocketCommunicator:
    """An anonymous socket from `address` (the TCP peer), maybe through a proxy that wrote
    X-Forwarded-For."""
    headers = [(b"origin", b"http://127.0.0.1:8000")]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
    communicator.scope["client"] = (address, 50000)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def refused_for_too_many(communicator: WebsocketCommunicator, words: str) -> None:
    error = await receive(communicator)
    assert error["op"] == "error" and error["code"] == "rate_limited" and words in error["message"]
    closed = await communicator.receive_output(timeout=RECEIVE_TIMEOUT)
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_TOO_MANY_SOCKETS}
    await communicator.wait()


async def test_anonymous_sockets_from_one_address_are_limited(layer, settings, open_stream):
    settings.LIVECHARTS_MAX_SOCKETS_PER_ADDRESS = 3
    clients = [await connect_from("203.0.113.7") for _ in range(3)]
    await refused_for_too_many(await connect_from("203.0.113.7"), "at most 3 open sockets per address")
    # Another address is welcome; one closing makes room again.
    other = await connect_from("198.51.100.1")
    await clients[0].disconnect()
    again = await connect_from("203.0.113.7")
    for client in (other, again, clients[1], clients[2]):
        await client.disconnect()
    assert consumers.socket_counts().per_address == {}


async def test_behind_the_proxy_the_address_it_saw_counts_not_what_the_client_wrote(
    layer, settings, open_stream
):
    settings.LIVECHARTS_MAX_SOCKETS_PER_ADDRESS = 2
    settings.LIVECHARTS_TRUSTED_PROXY_HOPS = 1
    # nginx appends the peer it saw; whatever the client put before it changes nothing.
    clients = [await connect_from("127.0.0.1", forwarded=f"10.0.0.{n}, 203.0.113.7") for n in range(2)]
    await refused_for_too_many(
        await connect_from("127.0.0.1", forwarded="10.0.0.9, 203.0.113.7"), "per address"
    )
    # Other clients behind the same proxy are other addresses.
    other = await connect_from("127.0.0.1", forwarded="198.51.100.1")
    for client in (*clients, other):
        await client.disconnect()


async def test_without_trusted_proxies_a_forwarded_header_is_ignored(layer, settings, open_stream):
    settings.LIVECHARTS_MAX_SOCKETS_PER_ADDRESS = 2
    settings.LIVECHARTS_TRUSTED_PROXY_HOPS = 0
    clients = [await connect_from("203.0.113.7", forwarded=f"10.0.0.{n}") for n in range(2)]
    await refused_for_too_many(await connect_from("203.0.113.7", forwarded="10.0.0.9"), "per address")
    for client in clients:
        await client.disconnect()


@pytest.fixture
def public(db) -> Stream:
    return Stream.objects.create(
        slug="public", title="Public", visibility=Stream.Visibility.PUBLIC, window_points=5_000
    )


async def test_subscribes_weigh_more_than_cheap_messages_in_the_rate_limit(layer, public, monkeypatch):
    """No refill: the burst alone decides. Unsubscribes (one token each) are served a whole
    burst; subscribes (SUBSCRIBE_TOKENS each) a fraction of it."""
    monkeypatch.setattr(consumers, "RATE_PER_SECOND", 1e-9)

    async def served(message: dict, count: int) -> int:
        client = await connect_from("192.0.2.1")
        ok = 0
        for _ in range(count):
            await client.send_to(text_data=json.dumps(message))
            frame = await receive(client)
            if frame["op"] == "error":
                assert frame["code"] == "rate_limited", frame
            else:
                ok += 1
        await client.disconnect()
        return ok

    count = consumers.RATE_BURST + 20
    assert await served({"op": "unsubscribe", "stream": "public"}, count) == consumers.RATE_BURST
    subscribes = await served({"op": "subscribe", "stream": "public", "after": None}, count)
    assert subscribes == consumers.RATE_BURST // consumers.SUBSCRIBE_TOKENS


async def test_a_large_backfill_costs_its_frames_in_the_rate_limit(layer, settings, public, monkeypatch):
    monkeypatch.setattr(consumers, "RATE_PER_SECOND", 1e-9)
    settings.LIVECHARTS_BACKFILL_FRAME_BYTES = 16 * 1024
    broadcaster = get_broadcaster()
    broadcaster.publish(
        "public",
        [Point(t=1_000 + n / 1000, values={"a": n * 0.5, "b": -n}) for n in range(5_000)],
        retention=Retention(points=5_000),
    )
    await broadcaster.flush()
    client = await connect_from("192.0.2.2")
    await client.send_to(text_data=json.dumps({"op": "subscribe", "stream": "public", "after": None}))
    assert (await receive(client))["op"] == "subscribed"
    frames, points = 0, 0
    while points < 5_000:
        frame = await receive(client)
        frames += 1
        points += sum(len(batch["t"]) for batch in frame["data"])
    assert frames > 5
    # What is left of the burst after one subscribe that took `frames` frames.
    left = consumers.RATE_BURST - consumers.SUBSCRIBE_TOKENS - (frames - 1)
    served = 0
    for _ in range(consumers.RATE_BURST):
        await client.send_to(text_data=json.dumps({"op": "unsubscribe", "stream": "nothing"}))
        served += (await receive(client))["op"] == "unsubscribed"
    assert served == left
    await client.disconnect()


# Stream rows kept for subscribes (streams/access/revocation.py: known_stream) -------------------


def count_access_queries(monkeypatch) -> list[str]:
    asked: list[str] = []
    real = consumers.viewable_stream

    def counted(user, slug):
        asked.append(slug)
        return real(user, slug)

    monkeypatch.setattr(consumers, "viewable_stream", counted)
    return asked


async def test_a_storm_of_subscribes_to_a_public_stream_asks_the_database_once(layer, public, monkeypatch):
    monkeypatch.setattr(revocation, "ROW_SECONDS", 60.0)  # however slow this machine is today
    asked = count_access_queries(monkeypatch)
    clients = [await connect_from(f"192.0.2.{index}") for index in range(1, 6)]
    for client in clients:
        await subscribe(client, "public")
    assert asked == ["public"]
    for client in clients:
        await client.disconnect()


def hold_stream_reads(monkeypatch) -> tuple[threading.Event, list[str]]:
    """Every read of a stream's row waits on the database thread until `release` is set; the
    slugs read, in order."""
    release = threading.Event()
    asked: list[str] = []
    real = consumers.viewable_stream

    def slow(user, slug):
        asked.append(slug)
        release.wait(30)
        return real(user, slug)

    monkeypatch.setattr(consumers, "viewable_stream", slow)
    return release, asked


async def test_subscribes_asking_while_the_row_is_read_wait_for_that_read(layer, public, monkeypatch):
    """A storm's subscribes arrive before the first read of their stream's row is back: they
    share it rather than each queueing a query behind it on the database thread."""
    release, asked = hold_stream_reads(monkeypatch)
    clients = [await connect_from(f"192.0.2.{index}") for index in range(1, 6)]
    for client in clients:
        await client.send_to(text_data=json.dumps({"op": "subscribe", "stream": "public", "after": None}))
    watcher = revocation.get_watcher()
    await eventually(lambda: watcher.waiting == 4, what="four subscribes waiting on the first one's read")
    release.set()
    for client in clients:
        assert (await receive(client))["op"] == "subscribed"
    assert asked == ["public"]
    for client in clients:
        await client.disconnect()


async def test_a_read_whose_socket_went_away_leaves_its_waiters_to_read_their_own(layer, public, monkeypatch):
    release, asked = hold_stream_reads(monkeypatch)
    first, second = await connect_from("192.0.2.1"), await connect_from("192.0.2.2")
    await first.send_to(text_data=json.dumps({"op": "subscribe", "stream": "public", "after": None}))
    await eventually(lambda: asked == ["public"], what="the first subscribe reading the row")
    await second.send_to(text_data=json.dumps({"op": "subscribe", "stream": "public", "after": None}))
    watcher = revocation.get_watcher()
    await eventually(lambda: watcher.waiting == 1, what="the second subscribe waiting on the first's read")
    await first.disconnect(timeout=0.1)  # its subscribe (the read it waits on) is cancelled
    await eventually(lambda: watcher.waiting == 0, what="the second subscribe no longer waiting")
    release.set()
    assert (await receive(second))["op"] == "subscribed"
    assert asked == ["public", "public"]
    await second.disconnect()


async def test_a_kept_row_never_lets_in_whom_the_row_alone_does_not(layer, alice, bob, plant, monkeypatch):
    monkeypatch.setattr(revocation, "ROW_SECONDS", 60.0)
    asked = count_access_queries(monkeypatch)
    alices = await connect(await database_sync_to_async(session_of)(alice))
    await subscribe(alices, "plant")
    bobs = await connect(await database_sync_to_async(session_of)(bob))
    await bobs.send_to(text_data=json.dumps({"op": "subscribe", "stream": "plant", "after": None}))
    error = await receive(bobs)
    assert (error["op"], error["code"], error["stream"]) == ("error", "forbidden", "plant")
    assert asked == ["plant", "plant"]  # a restricted stream: each viewer is asked about
    await alices.disconnect()
    await bobs.disconnect()


async def test_a_stream_disabled_after_its_row_was_kept_still_ends_every_viewer(layer, public, monkeypatch):
    """Disabled by an UPDATE (no signal: another process, say): a viewer let in on the kept
    row afterwards is refused by the watcher like the one who read it."""
    monkeypatch.setattr(revocation, "ROW_SECONDS", 60.0)
    asked = count_access_queries(monkeypatch)
    first = await connect_from("192.0.2.1")
    await subscribe(first, "public")
    await database_sync_to_async(Stream.objects.filter(slug="public").update)(enabled=False)
    second = await connect_from("192.0.2.2")
    await subscribe(second, "public")  # let in on the kept row
    assert asked == ["public"]
    for client in (first, second):
        error = await receive(client)
        assert (error["op"], error["code"], error["stream"]) == ("error", "forbidden", "public")
        await client.disconnect()


async def test_a_stream_saved_in_this_process_is_read_again_at_the_next_subscribe(layer, public, monkeypatch):
    monkeypatch.setattr(revocation, "ROW_SECONDS", 60.0)
    asked = count_access_queries(monkeypatch)
    first = await connect_from("192.0.2.1")
    await subscribe(first, "public")

    def make_restricted() -> None:
        public.visibility = Stream.Visibility.RESTRICTED
        public.save()

    await database_sync_to_async(make_restricted)()
    second = await connect_from("192.0.2.2")
    await second.send_to(text_data=json.dumps({"op": "subscribe", "stream": "public", "after": None}))
    error = await receive(second)
    assert (error["op"], error["code"]) == ("error", "forbidden")
    assert asked == ["public", "public"]
    await first.disconnect()
    await second.disconnect()
