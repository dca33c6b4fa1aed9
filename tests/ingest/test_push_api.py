"""The push API: tokens, limits, body formats and every error status, over Django's client."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from streams.ingest.feeds.push import PushFeed
from streams.ingest.inbox import get_inbox
from streams.ingest.push_api import PushRefused, RateLimiter, read_points
from streams.models import PushToken, Stream
from tests.waits import eventually

NOW = 1_763_000_000.0
URL = "/api/streams/{}/points"


def read(body: bytes | str, content_type: str = "application/json", **settings):
    raw = body.encode() if isinstance(body, str) else body
    return read_points(raw, content_type=content_type, feed=PushFeed(settings), received_at=NOW)


def refused(body: bytes | str, content_type: str = "application/json") -> PushRefused:
    with pytest.raises(PushRefused) as caught:
        read(body, content_type)
    return caught.value


def test_one_point_a_list_a_points_object_and_ndjson_are_all_read():
    assert [p.values for p in read("4")] == [{"value": 4.0}]
    assert [p.values for p in read('{"value": 1}')] == [{"value": 1.0}]
    assert [p.values for p in read("[1, 2, 3]")] == [{"value": 1.0}, {"value": 2.0}, {"value": 3.0}]
    assert [p.t for p in read('{"points": [{"t": 10, "value": 1}, {"t": 11, "value": 2}]}')] == [10.0, 11.0]
    ndjson = '{"t": 10, "value": 1}\n\n{"t": 11, "values": {"a": 2}}\n'
    assert [p.t for p in read(ndjson, "application/x-ndjson")] == [10.0, 11.0]
    # NDJSON sent as application/json is understood too.
    assert len(read(ndjson)) == 2
    # A UTF-8 byte-order mark (Windows tools) is not an error.
    assert len(read("\ufeff[1]".encode())) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("", "application/json", 400, "the body is empty"),
        ("{nope", "application/json", 400, "not JSON: Expecting property name"),
        ("[1, NaN]", "application/json", 400, "not JSON we accept: NaN is not JSON"),
        ("[1, Infinity]", "application/json", 400, "not JSON we accept: Infinity is not JSON"),
        ('[1, 2, {"value": "x"}]', "application/json", 400, "points[2]: value: must be a number"),
        ('{"points": [1], "extra": 2}', "application/json", 400, "extra: unknown field beside `points`"),
        ('{"points": 5}', "application/json", 400, "points: must be a list"),
        ('1\n{"t": "soon", "value": 1}', "application/x-ndjson", 400, "line 2: t: "),
        ("1\n{oops", "application/x-ndjson", 400, "line 2: not JSON"),
        ("[]", "application/json", 400, "no points in the body"),
        ("[" * 5_000 + "]" * 5_000, "application/json", 400, "not JSON we accept: nested too deeply"),
        ("1" * 5000, "application/json", 400, "not JSON we accept"),
        ("1", "text/csv", 415, "send application/json or application/x-ndjson, not 'text/csv'"),
        (b"\xff\xfe1", "application/json", 400, "the body is not UTF-8"),
    ],
)
def test_a_bad_body_is_refused_with_the_status_and_what_is_wrong(body, content_type, status, message):
    error = refused(body, content_type)
    assert (error.status, error.message[: len(message)]) == (status, message)


def test_a_point_dated_far_ahead_of_the_server_clock_is_refused_saying_so(settings):
    error = refused('[{"t": 1763000000, "value": 1}, {"t": 1763003600, "value": 2}]')
    assert error.status == 400
    assert error.message.startswith("points[1]: t: time 2025-11-13T03:13:20Z is 3600 s ahead of this server")
    assert "LIVECHARTS_MAX_FUTURE_SECONDS=300" in error.message
    assert len(read('{"t": 1763000299, "value": 1}')) == 1  # within the bound
    settings.LIVECHARTS_MAX_FUTURE_SECONDS = 7200
    assert len(read('{"t": 1763003600, "value": 1}')) == 1


def test_more_points_than_the_limit_is_too_large(settings):
    settings.LIVECHARTS_PUSH_MAX_POINTS = 3
    assert refused("[1, 2, 3, 4]").status == 413


def test_the_rate_limiter_allows_bursts_then_says_when_to_retry():
    limiter = RateLimiter(rate=2, burst=4)
    for _ in range(4):
        limiter.check("token", now=100.0)
    with pytest.raises(PushRefused) as caught:
        limiter.check("token", now=100.0)
    assert caught.value.status == 429 and caught.value.retry_after == pytest.approx(0.5)
    limiter.check("other-token", now=100.0)  # buckets are per token
    limiter.check("token", now=100.5)  # half a second buys one request at 2/s


# Over HTTP, through Django's ASGI handler.


@pytest.fixture
def push_stream(db) -> Stream:
    return Stream.objects.create(slug="pushed", title="Pushed", feed_kind="push", feed_settings={})


@pytest.fixture
def token(push_stream) -> str:
    row = PushToken(name="gateway")
    secret = row.issue()
    row.save()
    row.streams.add(push_stream)
    return secret


async def post(token: str | None, body: bytes | str, *, slug: str = "pushed", **headers):
    client = AsyncClient()
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    headers.setdefault("Content-Type", "application/json")
    content_type = headers.pop("Content-Type")
    response = await client.post(URL.format(slug), body, content_type=content_type, headers=headers)
    return response.status_code, json.loads(response.content), response


async def waiting_points(slug: str = "pushed") -> list:
    taken = await get_inbox().take(slug, wait=0.05)
    return [] if taken is None else taken.points


@pytest.mark.django_db(transaction=True)
async def test_accepted_points_reach_the_stream_inbox(layer, token):
    status, body, _ = await post(token, '[{"t": 1700000000, "value": 1}, 2]')
    assert (status, body) == (202, {"stream": "pushed", "accepted": 2})
    points = await waiting_points()
    assert [p.values for p in points] == [{"value": 1.0}, {"value": 2.0}]
    assert points[0].t == 1_700_000_000.0


@pytest.mark.django_db(transaction=True)
async def test_a_request_with_one_bad_point_stores_none_of_them(memory_layer, token):
    status, body, _ = await post(token, '[1, 2, {"value": "three"}]')
    assert status == 400 and body["error"] == "bad_request"
    assert body["message"].startswith("points[2]: value: must be a number or null")
    assert await waiting_points() == []


@pytest.mark.django_db(transaction=True)
async def test_a_missing_wrong_or_revoked_token_is_401(memory_layer, token):
    status, body, response = await post(None, "1")
    assert status == 401 and "Authorization: Bearer" in body["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert (await post("lc_wrong", "1"))[0] == 401
    assert (await post(token, "1", Authorization=f"Basic {token}"))[0] == 401
    await PushToken.objects.all().aupdate(revoked=timezone.now())
    status, body, _ = await post(token, "1")
    assert status == 401 and "revoked" in body["message"]


@pytest.mark.django_db(transaction=True)
async def test_a_token_may_push_only_to_its_own_enabled_push_streams(memory_layer, token):
    await Stream.objects.acreate(slug="other-push", title="Other", feed_kind="push")
    await Stream.objects.acreate(slug="simulated", title="Simulated", feed_kind="simulate")
    status, body, _ = await post(token, "1", slug="other-push")
    assert status == 403 and "may not push to 'other-push'" in body["message"]
    assert (await post(token, "1", slug="nope"))[0] == 404
    token_row = await PushToken.objects.aget()
    simulated = await Stream.objects.aget(slug="simulated")
    await sync_to_async(token_row.streams.add)(simulated)
    status, body, _ = await post(token, "1", slug="simulated")
    assert status == 403 and "takes its points from its simulate feed" in body["message"]
    await Stream.objects.filter(slug="pushed").aupdate(enabled=False)
    status, body, _ = await post(token, "1")
    assert status == 403 and "disabled" in body["message"]


@pytest.mark.django_db(transaction=True)
async def test_over_the_size_limit_is_413_and_compressed_or_other_types_415(memory_layer, token, settings):
    settings.LIVECHARTS_PUSH_MAX_BYTES = 1024
    status, body, _ = await post(token, json.dumps(list(range(500))))
    assert status == 413 and "1024 bytes" in body["message"]
    # A gzip bomb (2 MB that packs into a few KB) is refused before anything is inflated.
    settings.LIVECHARTS_PUSH_MAX_BYTES = 64 * 1024
    bomb = gzip.compress(b"[" + b"1," * 1_000_000 + b"1]")
    assert len(bomb) < 64 * 1024
    assert (await post(token, bomb, **{"Content-Encoding": "gzip"}))[0] == 415
    assert (await post(token, "a,b", **{"Content-Type": "text/csv"}))[0] == 415
    assert await waiting_points() == []


@pytest.mark.django_db(transaction=True)
async def test_over_the_rate_limit_is_429_with_retry_after(memory_layer, token, settings, monkeypatch):
    settings.LIVECHARTS_PUSH_RATE = 1  # bursts of 2
    # The bucket's clock stands still: at 1 request a second, four requests through the whole
    # stack had to take under a second, or the bucket refilled one and the third got a 202.
    check = RateLimiter.check
    monkeypatch.setattr(RateLimiter, "check", lambda limiter, key, now=None: check(limiter, key, now=NOW))
    statuses = [(await post(token, "1"))[0] for _ in range(3)]
    assert statuses == [202, 202, 429]
    _, body, response = await post(token, "1")
    assert body["error"] == "rate_limited" and int(response["Retry-After"]) >= 1


@pytest.mark.django_db(transaction=True)
async def test_only_post_is_allowed(memory_layer, token):
    response = await AsyncClient().get(URL.format("pushed"), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405 and response["Allow"] == "POST"


@pytest.mark.django_db(transaction=True)
async def test_pushed_points_reach_history_through_the_worker(memory_layer, token):
    from streams.core.retention import Retention
    from streams.ingest.supervisor import Supervisor
    from streams.storage.window import get_history

    supervisor = Supervisor()
    await supervisor.sync()
    try:
        assert (
            await post(token, '{"points": [{"t": 1700000000, "value": 5}, {"t": 1700000001, "value": 6}]}')
        )[0] == 202

        async def both_in_history():
            backfill = await get_history().read("pushed", after=None, retention=Retention(points=100))
            return backfill if len(backfill.entries) == 2 else None

        backfill = await eventually(both_in_history, what="both pushed points in history")
        assert [entry.point.values["value"] for entry in backfill.entries] == [5.0, 6.0]

        async def both_counted() -> bool:
            return (await get_history().get_status("pushed"))["points"] == 2

        await eventually(both_counted, what="the status to count both points")
        assert (await get_history().get_status("pushed"))["state"] == "live"
    finally:
        await supervisor.stop_all()


async def test_a_push_feed_stops_even_when_a_redis_call_swallows_its_cancellation(memory_layer, monkeypatch):
    # redis-py under asyncio.wait_for (Python < 3.12, CPython gh-86296) can return normally
    # from a command although the task was cancelled: the feed's loop must stop all the same.
    from streams.ingest import inbox as inbox_module
    from streams.ingest.inbox import MemoryInbox

    class SwallowingInbox(MemoryInbox):
        def __init__(self) -> None:
            super().__init__()
            self.taking = asyncio.Event()

        async def take(self, slug, *, wait):
            self.taking.set()
            try:
                return await super().take(slug, wait=wait)
            except asyncio.CancelledError:
                return None  # what the lost cancellation looks like to the caller

    inbox = SwallowingInbox()
    monkeypatch.setattr(inbox_module, "get_inbox", lambda: inbox)
    feed = PushFeed({})
    feed.slug = "pushed"

    async def drain() -> None:
        async for _ in feed.batches():
            pass

    task = asyncio.ensure_future(drain())
    await inbox.taking.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    if not done:  # the old behaviour: it would take forever; end it for the next tests
        monkeypatch.setattr(SwallowingInbox, "take", MemoryInbox.take)
        task.cancel()
        await asyncio.wait([task])
    assert done and task.cancelled()
