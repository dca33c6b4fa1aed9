"""The /ws/ protocol, through WebsocketCommunicator, in-memory and against real Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from livecharts.asgi import application
from streams.broadcast import get_broadcaster
from streams.core.ids import parse_id
from streams.core.points import Point
from streams.core.retention import Retention
from streams.delivery.consumers import MAX_MESSAGE_BYTES, StreamConsumer
from streams.delivery.hub import get_hub
from streams.models import Stream
from tests.sessions import signed_in_session
from tests.waits import DEADLINE, eventually

pytestmark = pytest.mark.django_db(transaction=True)

# A frame the test waits for comes as soon as it is sent: the bound only stops a hung test, so
# it is the suite's (3 s was a subscribe's database and Redis round trips on a loaded machine).
RECEIVE_TIMEOUT = DEADLINE


@pytest.fixture
def restricted(plant: Stream) -> Stream:
    return plant  # tests/delivery/conftest.py


@pytest.fixture
def second(alice) -> Stream:
    return Stream.objects.create(slug="second", title="Second", visibility=Stream.Visibility.SIGNED_IN)


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(StreamConsumer.as_asgi(), "/ws/")
    communicator.scope["user"] = user
    if user.is_authenticated:
        communicator.scope["session"] = await database_sync_to_async(signed_in_session)(user)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def send(communicator: WebsocketCommunicator, message: dict) -> None:
    await communicator.send_to(text_data=json.dumps(message))


async def receive(communicator: WebsocketCommunicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=RECEIVE_TIMEOUT))


async def receive_op(communicator: WebsocketCommunicator, op: str) -> dict:
    """The next frame, which must be of kind `op`."""
    frame = await receive(communicator)
    assert frame["op"] == op, frame
    return frame


async def publish(slug: str, values: list[float], *, window: int = 50) -> None:
    """Points 0..n through broadcast as ONE batch (one tick)."""
    broadcaster = get_broadcaster()
    broadcaster.publish(
        slug, [Point(t=value, values={"v": value}) for value in values], retention=Retention(points=window)
    )
    await broadcaster.flush()


def points_of(frame: dict, slug: str) -> list[float]:
    return [t / 1000 for batch in frame["data"] if batch["stream"] == slug for t in batch["t"]]


MARKER = 424_242.0


async def nothing_before_a_marker(client: WebsocketCommunicator, slug: str = "plant") -> dict:
    """Absence proven by a positive event, not by waiting: a batch published now to `slug` (a
    subscribed stream) takes the live path behind anything still in flight, so the very next
    message must be its frame, holding it alone."""
    await publish(slug, [MARKER])
    frame = await receive_op(client, "points")
    assert [(batch["stream"], batch["t"]) for batch in frame["data"]] == [(slug, [MARKER * 1000])], frame
    return frame


async def test_subscribe_backfills_then_goes_live_with_every_point_once(layer, alice, restricted):
    await publish("plant", [1, 2, 3])
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant", "after": None})
    subscribed = await receive_op(client, "subscribed")
    assert subscribed["stream"] == "plant"
    backfill = await receive_op(client, "points")
    assert points_of(backfill, "plant") == [1, 2, 3]
    assert backfill["data"][0]["y"] == {"v": [1, 2, 3]}

    await publish("plant", [4, 5])
    live = await receive_op(client, "points")
    assert points_of(live, "plant") == [4, 5]
    assert live["data"][0]["prev"] == backfill["data"][0]["id"]
    marker = await nothing_before_a_marker(client)  # nothing twice
    assert marker["data"][0]["prev"] == live["data"][0]["id"]
    await client.disconnect()


async def test_subscribe_after_an_id_sends_only_newer_points(layer, alice, restricted):
    await publish("plant", [1, 2])
    first_id = await get_broadcaster().history.last_id("plant")
    await publish("plant", [3, 4])
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant", "after": first_id})
    await receive_op(client, "subscribed")
    backfill = await receive_op(client, "points")
    assert points_of(backfill, "plant") == [3, 4]
    assert backfill["data"][0]["prev"] == first_id
    await client.disconnect()


async def test_batches_published_while_subscribing_arrive_exactly_once(layer, alice, restricted):
    published: list[float] = []

    async def produce() -> None:
        for n in range(40):
            await publish("plant", [float(n)], window=1000)
            published.append(float(n))
            await asyncio.sleep(0.002)  # pacing the source, not waiting for anything

    producer = asyncio.create_task(produce())
    # Subscribe while the source is mid-way: some batches already out, more to come.
    await eventually(lambda: len(published) >= 5, what="the first batches published")
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant", "after": None})
    await receive_op(client, "subscribed")
    seen: list[float] = []
    last_id = None
    while not seen or seen[-1] < 39:
        frame = await receive_op(client, "points")
        for batch in frame["data"]:
            if last_id is not None:
                assert batch["prev"] == last_id, "a batch was lost or repeated"
            last_id = batch["id"]
            seen.extend(t / 1000 for t in batch["t"])
    await producer
    assert seen == [float(n) for n in range(int(seen[0]), 40)]
    assert seen[0] == 0.0
    await client.disconnect()


async def test_after_older_than_the_window_gets_a_gap_then_the_whole_window(layer, alice, restricted):
    await publish("plant", [1.0], window=3)
    old_id = await get_broadcaster().history.last_id("plant")
    for value in range(2, 8):
        await publish("plant", [float(value)], window=3)
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant", "after": old_id})
    await receive_op(client, "subscribed")
    assert (await receive_op(client, "gap"))["stream"] == "plant"
    backfill = await receive_op(client, "points")
    assert points_of(backfill, "plant") == [5, 6, 7]
    assert backfill["data"][0]["prev"] is None
    await client.disconnect()


async def test_forbidden_stream_gets_error_frame_and_the_socket_stays_open(layer, bob, restricted):
    client = await connect(bob)
    await send(client, {"op": "subscribe", "stream": "plant"})
    error = await receive_op(client, "error")
    assert error["code"] == "forbidden" and error["stream"] == "plant"
    await send(client, {"op": "subscribe", "stream": "nope"})
    assert (await receive_op(client, "error"))["code"] == "not_found"
    await client.disconnect()


async def test_anonymous_user_is_forbidden_a_signed_in_stream(layer, second):
    client = await connect(AnonymousUser())
    await send(client, {"op": "subscribe", "stream": "second"})
    assert (await receive_op(client, "error"))["code"] == "forbidden"
    await client.disconnect()


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("{not json", "bad_request", "malformed JSON"),
        ("[1, 2]", "bad_request", "JSON object"),
        ('{"stream": "plant"}', "bad_request", "missing field 'op'"),
        ('{"op": "dance", "stream": "plant"}', "bad_request", "unknown op"),
        ('{"op": "subscribe"}', "bad_request", "missing field 'stream'"),
        ('{"op": "subscribe", "stream": 7}', "bad_request", "'stream'"),
        ('{"op": "subscribe", "stream": "plant", "after": "yesterday"}', "bad_request", "'after'"),
        # Nesting deep enough to exhaust the parser's recursion, inside the size limit.
        ("[" * 30_000 + "]" * 30_000, "bad_request", "nested too deeply"),
        (
            '{"op": "subscribe", "stream": ' + "[" * 30_000 + "]" * 30_000 + "}",
            "bad_request",
            "nested too deeply",
        ),
        # JSON the browser would never send, that Python's parser accepts.
        ('{"op": "subscribe", "stream": NaN}', "bad_request", "'stream'"),
        ('{"op": "subscribe", "stream": "plant", "after": Infinity}', "bad_request", "'after'"),
        (
            '{"op": "subscribe", "stream": "plant", "after": ' + "9" * 5000 + "}",
            "bad_request",
            "malformed JSON",
        ),
        ('{"op": "subscribe", "stream": "plant", "after": "' + "9" * 5000 + '-1"}', "bad_request", "'after'"),
        ('{"op": ' + "1" * 4000 + "}", "bad_request", "unknown op"),
        (
            '{"op": "subscribe", "stream": "plant", "pad": "' + "x" * MAX_MESSAGE_BYTES + '"}',
            "too_large",
            "64 KiB",
        ),
    ],
)
async def test_bad_client_messages_get_error_frames_without_closing(
    layer, alice, restricted, raw, code, words
):
    client = await connect(alice)
    await client.send_to(text_data=raw)
    error = await receive_op(client, "error")
    assert error["code"] == code
    assert words in error["message"]
    # The socket still works.
    await send(client, {"op": "subscribe", "stream": "plant"})
    await receive_op(client, "subscribed")
    await client.disconnect()


async def test_channel_layer_keys_in_a_client_frame_are_only_data(layer, alice, restricted):
    """A frame shaped like a layer event ("type": "stream.points") is a client message like any
    other: it cannot inject points or reach a handler."""
    client = await connect(alice)
    forged = {"type": "stream.points", "stream": "plant", "key": [9e15, 0], "text": '{"forged":1}'}
    await send(client, forged)
    assert "missing field 'op'" in (await receive_op(client, "error"))["message"]
    await send(client, {**forged, "op": "subscribe", "after": None})
    await receive_op(client, "subscribed")
    await send(client, {"op": "stream.points", "stream": "plant", "text": "x"})
    assert (await receive_op(client, "error"))["code"] == "bad_request"
    assert "forged" not in json.dumps(await nothing_before_a_marker(client))
    await client.disconnect()


async def test_binary_frames_are_a_bad_request(layer, alice, restricted):
    client = await connect(alice)
    await client.send_to(bytes_data=b'{"op": "subscribe"}')
    assert (await receive_op(client, "error"))["code"] == "bad_request"
    await client.disconnect()


async def test_two_streams_share_one_socket_and_one_frame_per_tick(layer, alice, restricted, second):
    client = await connect(alice)
    for slug in ("plant", "second"):
        await send(client, {"op": "subscribe", "stream": slug})
        await receive_op(client, "subscribed")
    broadcaster = get_broadcaster()
    broadcaster.publish("plant", [Point(t=1, values={"v": 1})], retention=Retention(points=50))
    broadcaster.publish("second", [Point(t=2, values={"w": 2})], retention=Retention(points=50))
    await broadcaster.flush()
    frame = await receive_op(client, "points")
    assert {batch["stream"] for batch in frame["data"]} == {"plant", "second"}
    await client.disconnect()


async def test_a_burst_of_batches_is_coalesced_into_few_frames(layer, settings, alice, restricted):
    settings.LIVECHARTS_TICK_MS = 300
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant"})
    await receive_op(client, "subscribed")
    for value in range(10):
        await publish("plant", [float(value)])
    frames: list[dict] = []
    received: list[float] = []
    while len(received) < 10:
        frames.append(await receive_op(client, "points"))
        received.extend(points_of(frames[-1], "plant"))
    assert received == [float(v) for v in range(10)]
    # Ten batches inside one tick: the first goes out at once, the rest wait for the next tick.
    assert len(frames) <= 2
    ids = [batch["id"] for frame in frames for batch in frame["data"]]
    assert ids == sorted(ids, key=parse_id)
    await client.disconnect()


async def test_unsubscribed_stream_sends_nothing_more(layer, alice, restricted, second):
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant"})
    await receive_op(client, "subscribed")
    await send(client, {"op": "subscribe", "stream": "second"})
    await receive_op(client, "subscribed")
    await send(client, {"op": "unsubscribe", "stream": "plant"})
    await receive_op(client, "unsubscribed")
    await publish("plant", [1.0])
    await nothing_before_a_marker(client, "second")
    await client.disconnect()


async def test_status_changes_reach_subscribers(layer, alice, restricted):
    await get_broadcaster().publish_status("plant", {"state": "stalled"})
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant"})
    assert (await receive_op(client, "subscribed"))["status"]["state"] == "stalled"
    await get_broadcaster().publish_status("plant", {"state": "live"})
    status = await receive_op(client, "status")
    assert status["stream"] == "plant" and status["state"] == "live"
    await client.disconnect()


async def test_resubscribe_after_a_lost_batch_fills_the_hole(layer, alice, restricted):
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant"})
    await receive_op(client, "subscribed")
    await publish("plant", [1.0])
    first = (await receive_op(client, "points"))["data"][0]
    await publish("plant", [2.0])
    await receive_op(client, "points")  # pretend the browser never got this one
    await publish("plant", [3.0])
    third = (await receive_op(client, "points"))["data"][0]
    assert third["prev"] != first["id"]  # the client notices the hole ...
    await send(client, {"op": "subscribe", "stream": "plant", "after": first["id"]})  # ... and asks
    await receive_op(client, "subscribed")
    refill = await receive_op(client, "points")
    assert points_of(refill, "plant") == [2.0, 3.0]
    assert refill["data"][0]["prev"] == first["id"]
    await client.disconnect()


async def test_foreign_origin_is_refused(layer, alice, restricted):
    communicator = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://evil.example.com")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_same_origin_socket_is_accepted(layer):
    communicator = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000")])
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


async def test_a_resume_the_window_no_longer_holds_comes_from_the_database(layer, alice, restricted):
    """A Redis restart empties the window; the database kept every point: no gap."""

    from streams.core.ids import IdClock, format_id
    from streams.core.points import Entry
    from streams.storage.store import save_batches
    from streams.storage.window import get_history

    clock, t = IdClock(), 1_700_000_000.0
    batches = []
    for _ in range(4):
        batch = []
        for _ in range(5):
            batch.append(Entry(id=format_id(clock.next()), point=Point(t=t, values={"v": t})))
            t += 1
        batches.append(batch)
    # The database has all four batches; the (restarted, empty) window only the newest one.
    await database_sync_to_async(save_batches)([("plant", batch) for batch in batches])
    await get_history().append("plant", batches[3], retention=Retention(points=50))
    everything = [entry for batch in batches for entry in batch]
    after = everything[2].id

    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant", "after": after})
    await receive_op(client, "subscribed")
    frame = await receive_op(client, "points")
    (batch,) = frame["data"]
    assert batch["prev"] == after
    assert [t / 1000 for t in batch["t"]] == [entry.point.t for entry in everything[3:]]
    assert batch["id"] == everything[-1].id
    assert (await nothing_before_a_marker(client))["data"][0]["prev"] == everything[-1].id
    await client.disconnect()


async def test_a_stream_watched_again_after_its_last_viewer_left_is_delivered(layer, alice, restricted):
    """The process's last viewer leaving stops its layer listener; the next one starts anew."""
    for round_ in range(3):
        client = await connect(alice)
        await send(client, {"op": "subscribe", "stream": "plant", "after": None})
        await receive_op(client, "subscribed")
        if round_:
            await receive_op(client, "points")  # the backfill of earlier rounds
        await publish("plant", [100 + round_])
        frame = await receive_op(client, "points")
        assert points_of(frame, "plant") == [100 + round_]
        await client.disconnect()


async def publish_wide(slug: str, *, start: int, count: int, window: int) -> None:
    """`count` points of four series through broadcast, in one tick."""
    broadcaster = get_broadcaster()
    points = [
        Point(t=1_000 + n / 1000, values={f"s{k}": n * 0.5 + k for k in range(4)})
        for n in range(start, start + count)
    ]
    broadcaster.publish(slug, points, retention=Retention(points=window))
    await broadcaster.flush()


async def read_points(client: WebsocketCommunicator, count: int) -> tuple[list[dict], list[int]]:
    """Points frames until `count` points came: their batches, and each frame's UTF-8 size."""
    batches: list[dict] = []
    sizes: list[int] = []
    while sum(len(batch["t"]) for batch in batches) < count:
        raw = await client.receive_from(timeout=RECEIVE_TIMEOUT)
        frame = json.loads(raw)
        assert frame["op"] == "points", frame
        sizes.append(len(raw.encode()))
        batches.extend(frame["data"])
    return batches, sizes


async def test_a_large_backfill_comes_in_bounded_frames_chained_by_prev(layer, settings, alice, restricted):

    settings.LIVECHARTS_BACKFILL_FRAME_BYTES = 16 * 1024
    restricted.window_points = 6_000
    await database_sync_to_async(restricted.save)()
    for start in range(0, 6_000, 1_500):
        await publish_wide("plant", start=start, count=1_500, window=6_000)
    client = await connect(alice)
    await send(client, {"op": "subscribe", "stream": "plant", "after": None})
    await receive_op(client, "subscribed")
    batches, sizes = await read_points(client, 6_000)
    assert len(sizes) > 10 and max(sizes) <= 16 * 1024
    assert batches[0]["prev"] is None
    assert [batch["prev"] for batch in batches[1:]] == [batch["id"] for batch in batches[:-1]]
    assert [v for batch in batches for v in batch["y"]["s2"]] == [n * 0.5 + 2 for n in range(6_000)]
    # Live goes on from the backfill's last id.
    await publish_wide("plant", start=6_000, count=3, window=6_000)
    live = await receive_op(client, "points")
    assert live["data"][0]["prev"] == batches[-1]["id"]
    await client.disconnect()

    # A resume from the middle: exactly the points after it, chained from `after`.
    after = next(
        batch["id"] for batch in batches if sum(1 for _ in batch["t"]) and batch["t"][-1] >= 1_000_999
    )
    resumed = await connect(alice)
    await send(resumed, {"op": "subscribe", "stream": "plant", "after": after})
    await receive_op(resumed, "subscribed")
    expected = [t for batch in batches for t in batch["t"] if parse_id(batch["id"]) > parse_id(after)]
    expected += live["data"][0]["t"]
    rest, sizes = await read_points(resumed, len(expected))
    assert max(sizes) <= 16 * 1024
    assert rest[0]["prev"] == after
    assert [batch["prev"] for batch in rest[1:]] == [batch["id"] for batch in rest[:-1]]
    assert [t for batch in rest for t in batch["t"]] == expected
    await resumed.disconnect()


async def test_a_status_change_during_the_backfill_follows_it(layer, alice, restricted):
    """Per subscription: subscribed, the backfill, then anything else about the stream."""
    from streams.delivery import consumers

    await publish("plant", [1, 2, 3])
    client = await connect(alice)
    real_pages_since = consumers.pages_since

    async def pages_then_status(*args, **kwargs):
        async for segment in real_pages_since(*args, **kwargs):
            await get_broadcaster().publish_status("plant", {"state": "stalled"})
            # The status reaches this socket while its backfill is not out (held for after it).
            (consumer,) = get_hub()._members["plant"]
            await eventually(
                lambda consumer=consumer: consumer.subscriptions["plant"].held_status,
                what="the status held back behind the backfill",
            )
            yield segment

    consumers.pages_since = pages_then_status
    try:
        await send(client, {"op": "subscribe", "stream": "plant", "after": None})
        ops = [(await receive(client))["op"] for _ in range(3)]
    finally:
        consumers.pages_since = real_pages_since
    assert ops == ["subscribed", "points", "status"]
    await client.disconnect()
