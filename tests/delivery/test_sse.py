"""GET /streams/<slug>/events through the whole ASGI app, in-memory and against real Redis.

The request is driven by hand (our own receive/send), so a test decides when the client leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session

from livecharts.asgi import application
from streams.access.revocation import Viewing, check_viewings
from streams.broadcast import get_broadcaster
from streams.core.groups import group_name
from streams.core.ids import IdClock, format_id, parse_id
from streams.core.points import Entry, Point
from streams.core.retention import Retention
from streams.delivery import sse
from streams.delivery.hub import get_hub
from streams.ingest.feeds.sse_parser import Event, SSEParser
from streams.models import Stream
from streams.storage.store import save_batches
from streams.storage.window import get_history
from tests.asgi_get import AsgiGet
from tests.revocations import REVOCATIONS, CheckRounds
from tests.sessions import session_of
from tests.waits import DEADLINE, eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

# What the test waits for comes as soon as it is sent: the bound only stops a hung test, so it
# is the suite's (3 s was a request's database and Redis round trips on a loaded machine).
WAIT = DEADLINE


class EventClient(AsgiGet):
    """One GET of the event stream, with the client's side of ASGI in the test's hands."""

    def __init__(
        self, path: str, *, session: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        raw_headers = []
        if session:
            raw_headers.append((b"cookie", f"sessionid={session}".encode()))
        raw_headers += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
        super().__init__(path, headers=raw_headers)
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.raw = b""
        self.finished = asyncio.Event()  # the server sent its last body message
        self.parser = SSEParser()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._started = asyncio.Event()
        # Cleared, the client stops reading: the server's next body send waits (a slow client).
        self.reading = asyncio.Event()
        self.reading.set()
        self.blocked_sends = 0  # body sends that found the client not reading
        self.task: asyncio.Task | None = None

    async def _send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {name.decode().lower(): value.decode() for name, value in message["headers"]}
            self._started.set()
        elif message["type"] == "http.response.body":
            if not self.reading.is_set():
                self.blocked_sends += 1
            await self.reading.wait()
            body = message.get("body", b"")
            self.raw += body
            for event in self.parser.feed(body):
                self.events.put_nowait(event)
            if not message.get("more_body", False):
                self.finished.set()

    async def open(self) -> EventClient:
        self.task = asyncio.create_task(application(self.scope, self._receive, self._send))
        await asyncio.wait_for(self._started.wait(), WAIT)
        return self

    async def next_event(self, within: float = WAIT) -> Event:
        return await asyncio.wait_for(self.events.get(), within)

    async def points(self, count: int) -> tuple[list[float], list[Event]]:
        """Read `points` events until `count` points arrived: their times (s) and the events."""
        import json

        times: list[float] = []
        seen: list[Event] = []
        while len(times) < count:
            event = await self.next_event()
            assert event.type == "points", event
            seen.append(event)
            times += [t / 1000 for t in json.loads(event.data)["t"]]
        return times, seen

    async def leave(self) -> None:
        """The client goes away (closes the connection)."""
        self._leave.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, WAIT)

    async def body(self) -> str:
        await asyncio.wait_for(self.finished.wait(), WAIT)
        return self.raw.decode()


@pytest.fixture
def alice_session(alice) -> str:
    return session_of(alice)


@pytest.fixture
def bob_session(bob) -> str:
    return session_of(bob)


async def publish(slug: str, values: list[float], *, window: int = 50) -> str:
    """Points through broadcast as ONE batch (one tick); returns the batch's id."""
    broadcaster = get_broadcaster()
    broadcaster.publish(
        slug, [Point(t=value, values={"v": value}) for value in values], retention=Retention(points=window)
    )
    await broadcaster.flush()
    return await broadcaster.history.last_id(slug)


async def assert_nothing_more(client: EventClient, slug: str = "plant") -> None:
    """Nothing else is on its way: a batch published now is the very next event (whatever was
    still to come, a duplicate say, would have been sent before it)."""
    marker = await publish(slug, [999_999.0], window=1000)
    event = await client.next_event()
    assert (event.type, event.id) == ("points", marker), f"before the marker batch: {event}"


def data_of(event: Event) -> dict:
    import json

    return json.loads(event.data)


def members(group: str) -> set[str]:
    """The channels in a group of this process's layer (in-memory or Redis pub/sub); under
    Redis the hub subscribes its groups' channels itself (streams/delivery/pubsub_reader.py)."""
    layer = get_channel_layer()
    reader = get_hub()._reader
    if reader is not None:
        channel = reader.channel_of(group)
        return {channel} & reader.subscribed_channels()
    if isinstance(layer, InMemoryChannelLayer):
        return set(layer.groups.get(group, {}))
    local = layer._get_layer()  # the pub/sub layer proxies one layer per event loop
    return set(local.groups.get(local._get_group_channel_name(group), set()))


def subscribed_channels() -> set[str]:
    layer = get_channel_layer()
    reader = get_hub()._reader
    if reader is not None:
        return reader.subscribed_channels()
    if isinstance(layer, InMemoryChannelLayer):
        return set(layer.channels)
    return set(layer._get_layer().channels)


async def test_backfill_then_live_arrive_exactly_once_in_order(layer, alice_session, plant):
    first = await publish("plant", [1, 2, 3])
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    assert client.status == 200
    assert client.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert client.headers["cache-control"] == "no-cache"
    assert client.headers["x-accel-buffering"] == "no"

    backfill = await client.next_event()
    assert client.raw.startswith(b"retry: 3000\n\n")
    assert client.parser.retry_ms == 3000
    assert (backfill.type, backfill.id) == ("points", first)
    assert data_of(backfill)["t"] == [1000, 2000, 3000]
    assert data_of(backfill)["y"] == {"v": [1, 2, 3]}

    second = await publish("plant", [4, 5])
    live = await client.next_event()
    assert (live.type, live.id) == ("points", second)
    assert data_of(live)["t"] == [4000, 5000] and data_of(live)["prev"] == first
    await assert_nothing_more(client)  # nothing twice
    await client.leave()


async def test_batches_published_while_connecting_arrive_exactly_once(layer, alice_session, plant):
    client = EventClient("/streams/plant/events", session=alice_session)
    published = 0

    async def produce() -> None:
        # Batches before the client connects, all through its connecting (until its first
        # event), and up to 10 after: at any machine speed, some fall into each step.
        nonlocal published
        after_first = 0
        while after_first < 10 and published < 45:  # the stream's window keeps 50
            await publish("plant", [float(published)], window=1000)
            published += 1
            if published == 5:
                opening.set()
            if client.events.qsize() > 0:
                after_first += 1
            await asyncio.sleep(0)  # a turn for the connecting client between any two batches

    opening = asyncio.Event()
    producer = asyncio.create_task(produce())
    await opening.wait()
    await client.open()
    await producer
    times, events = await client.points(published)
    assert times == [float(n) for n in range(published)]
    ids = [parse_id(event.id) for event in events]
    assert ids == sorted(set(ids)), "event ids strictly increasing"
    await client.leave()


async def test_batches_sent_just_before_and_after_the_window_is_read_arrive_once(
    layer, alice_session, plant, monkeypatch
):
    await publish("plant", [1])
    history = get_history()
    real_read = history.read

    async def read_between_two_batches(slug: str, **kwargs):
        monkeypatch.setattr(history, "read", real_read)
        await publish("plant", [2])  # live AND in the window read next: must not come twice
        backfill = await real_read(slug, **kwargs)
        await publish("plant", [3])  # only live: must not be lost
        return backfill

    monkeypatch.setattr(history, "read", read_between_two_batches)
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    times, _ = await client.points(3)
    assert times == [1, 2, 3]
    await assert_nothing_more(client)
    await client.leave()


@pytest.mark.parametrize("how", ["header", "query"])
async def test_last_event_id_resumes_from_the_window_with_no_gap(layer, alice_session, plant, how):
    await publish("plant", [1, 2])
    seen = await publish("plant", [3, 4])
    await publish("plant", [5])
    await publish("plant", [6, 7])
    if how == "header":
        client = EventClient("/streams/plant/events", session=alice_session, headers={"Last-Event-ID": seen})
    else:
        client = EventClient(f"/streams/plant/events?{urlencode({'after': seen})}", session=alice_session)
    await client.open()
    times, events = await client.points(3)
    assert times == [5, 6, 7]
    assert data_of(events[0])["prev"] == seen
    await client.leave()


async def test_a_large_backfill_comes_in_events_that_each_resume_exactly(
    layer, alice_session, plant, monkeypatch
):
    monkeypatch.setattr(sse, "EVENT_POINTS", 4)
    await publish("plant", [float(n) for n in range(10)])
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    times, events = await client.points(10)
    assert [len(data_of(event)["t"]) for event in events] == [4, 4, 2]
    assert [data_of(event)["prev"] for event in events[1:]] == [event.id for event in events[:-1]]
    await client.leave()

    resumed = await EventClient(
        "/streams/plant/events", session=alice_session, headers={"Last-Event-ID": events[0].id}
    ).open()
    again, _ = await resumed.points(6)
    assert again == times[4:]
    await resumed.leave()


def stored_batches(slug: str, *, batches: int, size: int) -> list[list[Entry]]:
    clock = IdClock()
    t = 1_700_000_000.0
    out = []
    for _ in range(batches):
        batch = []
        for _ in range(size):
            batch.append(Entry(id=format_id(clock.next()), point=Point(t=t, values={"v": t})))
            t += 1
        out.append(batch)
    return out


async def keep(slug: str, batches: list[list[Entry]], *, window: int, store: list[list[Entry]]) -> None:
    """Batches into the live window (which keeps `window` points) and `store` into the database."""
    for batch in batches:
        await get_history().append(slug, batch, retention=Retention(points=window))
    await database_sync_to_async(save_batches)([(slug, batch) for batch in store])


async def test_resume_older_than_the_window_comes_from_the_database_with_no_gap(layer, alice_session, plant):
    await Stream.objects.filter(pk=plant.pk).aupdate(window_points=5)
    batches = stored_batches("plant", batches=4, size=5)
    await keep("plant", batches, window=5, store=batches[:3])  # the newest batch not written yet
    everything = [entry for batch in batches for entry in batch]
    after = everything[2].id  # inside the first batch, long gone from the window

    client = await EventClient(
        "/streams/plant/events", session=alice_session, headers={"Last-Event-ID": after}
    ).open()
    times, events = await client.points(17)
    assert times == [entry.point.t for entry in everything[3:]]
    assert events[-1].id == everything[-1].id
    assert data_of(events[0])["prev"] == after
    await assert_nothing_more(client)
    await client.leave()


async def test_gap_event_when_even_the_database_no_longer_has_the_points(layer, alice_session, plant):
    await Stream.objects.filter(pk=plant.pk).aupdate(window_points=5)
    batches = stored_batches("plant", batches=4, size=5)
    await keep("plant", batches, window=5, store=batches[2:])  # the first two were pruned
    after = batches[0][2].id

    client = await EventClient(
        "/streams/plant/events", session=alice_session, headers={"Last-Event-ID": after}
    ).open()
    gap = await client.next_event()
    assert gap.type == "gap" and data_of(gap) == {"stream": "plant", "after": after}
    times, events = await client.points(10)
    assert times == [entry.point.t for batch in batches[2:] for entry in batch]
    assert data_of(events[0])["prev"] is None
    await client.leave()


async def test_a_batch_lost_on_the_live_path_is_filled_in_from_history(layer, alice_session, plant):
    await publish("plant", [1])
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    assert (await client.points(1))[0] == [1]

    broadcaster = get_broadcaster()
    real_send = broadcaster.layer.group_send

    async def lose_one(group: str, message: dict) -> None:
        broadcaster.layer.group_send = real_send  # only this one is lost

    broadcaster.layer.group_send = lose_one
    try:
        await publish("plant", [2, 3])
    finally:
        broadcaster.layer.group_send = real_send
    await publish("plant", [4])
    times, _ = await client.points(3)
    assert times == [2, 3, 4]
    await assert_nothing_more(client)
    await client.leave()


async def test_status_changes_arrive_as_status_events(layer, alice_session, plant):
    await get_broadcaster().publish_status("plant", {"state": "connecting"})
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    current = await client.next_event()
    assert current.type == "status" and data_of(current)["state"] == "connecting"
    await get_broadcaster().publish_status("plant", {"state": "live"})
    change = await client.next_event()
    assert change.type == "status"
    assert data_of(change)["stream"] == "plant" and data_of(change)["state"] == "live"
    assert change.id is None, "a status event must not move the resume point"
    await client.leave()


async def test_a_quiet_stream_sends_keep_alive_comments(memory_layer, alice_session, plant, monkeypatch):
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.2)
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    await eventually(lambda: b": keep-alive\n\n" in client.raw, what="a keep-alive comment")
    assert client.events.empty(), "a comment is not an event"
    await client.leave()


@pytest.mark.parametrize(
    ("path", "who", "status", "code"),
    [
        ("/streams/nope/events", "alice", 404, "not_found"),
        ("/streams/plant/events", None, 401, "unauthorized"),
        ("/streams/plant/events", "bob", 403, "forbidden"),
        ("/streams/plant/events?after=yesterday", "alice", 400, "bad_request"),
    ],
)
async def test_refusals_are_json_with_the_right_status_not_an_event_stream(
    memory_layer, alice_session, bob_session, plant, path, who, status, code
):
    import json

    session = {"alice": alice_session, "bob": bob_session, None: None}[who]
    client = await EventClient(path, session=session).open()
    body = await client.body()
    assert client.status == status
    assert client.headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == code
    await client.task


async def test_an_anonymous_viewer_may_follow_a_public_stream(memory_layer, plant):
    await Stream.objects.filter(pk=plant.pk).aupdate(visibility=Stream.Visibility.PUBLIC)
    await publish("plant", [1])
    client = await EventClient("/streams/plant/events").open()
    assert client.status == 200
    assert (await client.points(1))[0] == [1]
    await client.leave()


@pytest.mark.parametrize(
    ("revoke", "code"),
    [(revoke, code) for revoke, code, _ in REVOCATIONS],
)
async def test_losing_access_ends_the_stream_within_a_second_with_an_error_event(
    layer, alice, alice_session, plant, revoke: Callable, code: str, monkeypatch
):
    rounds = CheckRounds(monkeypatch)
    await publish("plant", [1])
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    await client.points(1)
    await eventually(lambda: rounds.finished >= 2, what="two access checks while allowed")
    assert not client.finished.is_set()

    await database_sync_to_async(revoke)(plant, alice, alice_session)
    started_before = rounds.started
    error = await client.next_event(within=30)
    assert error.type == "error" and data_of(error)["code"] == code
    assert data_of(error)["message"]
    # "Within a second": rounds start CHECK_SECONDS apart, and the first to start after the
    # change (or the one in flight, if it read after it) is the one that ends the stream.
    assert rounds.started <= started_before + 1, (rounds.started, started_before)
    await asyncio.wait_for(client.finished.wait(), WAIT)
    await asyncio.wait_for(client.task, WAIT)
    assert members(group_name("plant")) == set()


async def test_a_client_that_leaves_gives_back_its_group_channel_and_watch(layer, alice_session, plant):
    await publish("plant", [1])
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    await client.points(1)
    joined = members(group_name("plant"))
    assert len(joined) == 1
    (channel,) = joined
    assert sse.get_watcher().open_for(await database_sync_to_async(alice_id)()) == 1

    await client.leave()
    assert members(group_name("plant")) == set()
    assert channel not in subscribed_channels()
    assert sse.get_watcher().open_for(await database_sync_to_async(alice_id)()) == 0
    # Nothing is left listening: a batch now goes nowhere and nothing fails.
    await publish("plant", [2])


async def test_a_client_that_leaves_while_the_group_is_being_joined_leaves_nothing_behind(
    layer, alice_session, plant, monkeypatch
):
    reader = get_hub()._reader
    layer_ = get_channel_layer() if reader is None else reader
    real_leave = sse._leave
    joined: list[str] = []
    answered = asyncio.Event()
    if reader is None:
        real_add = layer_.group_add

        async def slow_add(group: str, channel: str) -> None:
            await real_add(group, channel)
            joined.append(channel)
            await answered.wait()  # a slow Redis round trip, after the membership exists

    else:
        real_subscribe = reader.subscribe

        async def slow_add(group: str) -> None:  # the hub's own subscription, under Redis
            await real_subscribe(group)
            joined.append(reader.channel_of(group))
            await answered.wait()

    async def leave_then_answer(*args, **kwargs) -> None:
        answered.set()  # the round trip answers only once the response is being released
        await real_leave(*args, **kwargs)

    monkeypatch.setattr(layer_, "group_add" if reader is None else "subscribe", slow_add)
    monkeypatch.setattr(sse, "_leave", leave_then_answer)
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    await eventually(lambda: joined, what="the membership to exist")
    assert not answered.is_set()
    await client.leave()  # mid-join
    assert answered.is_set()
    assert members(group_name("plant")) == set()
    assert joined[0] not in subscribed_channels()


async def test_a_client_that_leaves_with_batches_waiting_unread_leaves_nothing_behind(
    layer, alice_session, plant
):
    await publish("plant", [1])
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    await client.points(1)
    (channel,) = members(group_name("plant"))
    client.reading.clear()
    await publish("plant", [2])  # the server waits to send this one
    await publish("plant", [3])  # and this one waits in its channel
    await eventually(lambda: client.blocked_sends > 0, what="the server to wait on its send")
    await client.leave()
    # Django leaves this response's generator suspended, unclosed: the request's end releases it.
    await eventually(
        lambda: not members(group_name("plant")) and channel not in subscribed_channels(),
        what="the group and the channel given back",
    )


async def test_a_response_that_falls_behind_drops_live_batches_and_refills_them(
    layer, alice_session, plant, monkeypatch
):
    monkeypatch.setattr(sse, "MAX_BACKLOG", 1)
    listeners: list[sse._Listener] = []

    class Recorded(sse._Listener):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            listeners.append(self)

    monkeypatch.setattr(sse, "_Listener", Recorded)
    await publish("plant", [0])
    client = await EventClient("/streams/plant/events", session=alice_session).open()
    await client.points(1)
    client.reading.clear()
    for value in range(1, 8):
        await publish("plant", [float(value)])
    # The server waits to send 1, 2 waits in the inbox (MAX_BACKLOG 1), and the rest overflow.
    await eventually(lambda: listeners[0].dropped, what="a batch dropped on the full inbox")
    client.reading.set()
    times, events = await client.points(7)
    assert times == [float(value) for value in range(1, 8)]
    assert [data_of(event)["prev"] for event in events[1:]] == [event.id for event in events[:-1]]
    await client.leave()


def alice_id() -> int:
    return User.objects.get(username="alice").pk


async def test_open_event_streams_per_user_are_bounded(memory_layer, alice_session, plant, monkeypatch):
    import json

    monkeypatch.setattr(sse, "MAX_PER_USER", 1)
    first = await EventClient("/streams/plant/events", session=alice_session).open()
    # Its generator has started (the retry line came), so it holds its watch.
    await eventually(lambda: first.raw, what="the first response's opening line")
    second = await EventClient("/streams/plant/events", session=alice_session).open()
    assert second.status == 429 and json.loads(await second.body())["error"] == "rate_limited"
    await first.leave()
    third = await EventClient("/streams/plant/events", session=alice_session).open()
    assert third.status == 200
    await third.leave()


def test_one_access_round_reads_all_sessions_and_users_in_two_queries(django_assert_num_queries, plant):
    open_stream = Stream.objects.create(slug="open", title="Open", visibility=Stream.Visibility.SIGNED_IN)
    viewings = []
    for n in range(5):
        user = User.objects.create_user(f"viewer{n}")
        plant.viewers.add(user)
        session = session_of(user)
        viewings += [Viewing(session, user.pk, "plant"), Viewing(session, user.pk, "open")]
    # Sessions, users, which watched streams are public (none), then one query per user for
    # all the streams they watch.
    with django_assert_num_queries(3 + 5):
        assert check_viewings(viewings) == {}

    open_stream.delete()
    plant.viewers.remove(User.objects.get(username="viewer0"))
    Session.objects.filter(session_key=viewings[2].session_key).delete()
    refusals = check_viewings(viewings)
    assert (
        {viewing: refusal.code for viewing, refusal in refusals.items()}
        == {
            viewings[0]: "forbidden",  # taken off the stream
            **{
                viewing: "not_found"
                for viewing in viewings[1::2]
                if viewing.session_key != viewings[2].session_key
            },
            viewings[2]: "forbidden",  # signed out
            viewings[3]: "forbidden",
        }
    )
