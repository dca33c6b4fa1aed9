"""Every feed kind, from a real local source through real LiveCharts processes to a viewer's socket.

The sources run in this test process on loopback (a websockets server, an SSE server, the JSON
server of tests/json_api.py), MQTT goes through the shared Mosquitto and pushes through the real
HTTP API; the viewer is a real websocket client signed in as alice.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from paho.mqtt import publish as mqtt_publish
from websockets.asyncio.client import ClientConnection

from tests.e2e.test_live_path import open_socket
from tests.json_api import API, serve_json_api
from tests.processes import STACK_PASSWORD as PASSWORD
from tests.processes import Stack, embedded_stack, seed_streams, sign_in
from tests.services import require_mosquitto
from tests.sources import SSESource, WebsocketSource

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

# Seconds to wait for something a viewer should see; generous, the usual is well under one.
SEE_WITHIN = 20.0
# A source's last value in a test: nothing else of its stream may come before it arrives.
MARKER = 999.0


class Viewer:
    """One socket subscribed to several streams, keeping what arrived per stream as a browser
    would: states from `subscribed`/`status`, and (t, value) per series from `points`."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.states: dict[str, list[str | None]] = {}
        self.statuses: dict[str, dict[str, Any] | None] = {}
        self.series: dict[str, dict[str, list[tuple[float, float]]]] = {}
        self.last_id: dict[str, str | None] = {}

    @classmethod
    async def open(cls, stack: Stack, session: str, slugs: list[str]) -> Viewer:
        viewer = cls(await open_socket(stack, session))
        for slug in slugs:
            await viewer.socket.send(json.dumps({"op": "subscribe", "stream": slug, "after": None}))
            viewer.series[slug] = {}
            viewer.last_id[slug] = None
        await viewer.wait(lambda: set(viewer.states) == set(slugs), what="subscribed to every stream")
        return viewer

    def take(self, frame: dict[str, Any]) -> None:
        op = frame["op"]
        if op == "subscribed":
            status = frame["status"]
            self.states[frame["stream"]] = [status["state"] if status else None]
            self.statuses[frame["stream"]] = status
        elif op == "status":
            self.states[frame["stream"]].append(frame["state"])
            self.statuses[frame["stream"]] = frame
        elif op == "points":
            for batch in frame["data"]:
                slug = batch["stream"]
                assert batch["prev"] == self.last_id[slug], f"{slug}: a batch was lost or repeated"
                self.last_id[slug] = batch["id"]
                for name, column in batch["y"].items():
                    pairs = self.series[slug].setdefault(name, [])
                    pairs += [(t, y) for t, y in zip(batch["t"], column, strict=True) if y is not None]
        else:
            pytest.fail(f"unexpected frame {frame}")

    async def wait(self, done: Callable[[], bool], *, what: str, within: float = SEE_WITHIN) -> None:
        try:
            async with asyncio.timeout(within):
                while not done():
                    self.take(json.loads(await self.socket.recv()))
        except TimeoutError:
            pytest.fail(f"{what}: not within {within:g} s; states {self.states}, values {self.values()}")

    def state(self, slug: str) -> str | None:
        return self.states.get(slug, [None])[-1]

    def values(self, slug: str | None = None) -> Any:
        if slug is None:
            return {slug: self.values(slug) for slug in self.series}
        return {name: [y for _, y in pairs] for name, pairs in self.series[slug].items()}

    def times(self, slug: str, name: str) -> list[float]:
        return [t for t, _ in self.series[slug][name]]

    def received(self, expected: dict[str, dict[str, list[float]]]) -> bool:
        """At least as many values as `expected` holds, in every series named there."""
        return all(
            len(self.series[slug].get(name, [])) >= len(values)
            for slug, by_series in expected.items()
            for name, values in by_series.items()
        )


def stream(slug: str, kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "slug": slug,
        "title": f"E2E {kind}",
        "visibility": "restricted",
        "viewers": ["alice"],
        "feed_kind": kind,
        "feed_settings": settings,
    }


def publish(*messages: tuple[str, str]) -> None:
    """Publish to the shared Mosquitto, in order, from one connection (QoS 0 keeps that order)."""
    host, port = require_mosquitto()
    mqtt_publish.multiple([{"topic": topic, "payload": payload} for topic, payload in messages], host, port)


def ms(seconds: float) -> float:
    return seconds * 1000


@pytest.fixture
def ws_source() -> Iterator[WebsocketSource]:
    source = WebsocketSource()
    source.start()
    try:
        yield source
    finally:
        source.close()


@pytest.fixture
def sse_source() -> Iterator[SSESource]:
    source = SSESource()
    try:
        yield source
    finally:
        source.close()


@pytest.fixture
def json_source() -> Iterator[tuple[API, str]]:
    with serve_json_api() as (api, url):
        yield api, url


@pytest.fixture
def embedded(tmp_path) -> Iterator[Stack]:
    """The one-process mode: `manage.py serve`, in-memory layer and history, no Redis."""
    with embedded_stack(tmp_path) as stack:
        yield stack


def test_every_feed_kind_reaches_a_viewer_with_the_values_its_source_sent(
    embedded: Stack, ws_source: WebsocketSource, sse_source: SSESource, json_source: tuple[API, str]
):
    require_mosquitto()
    api, poll_url = json_source
    api.body = {"candles": []}
    # A topic root of this test alone on the shared broker: <root>/<sensor>/temperature.
    root = f"sensors-{uuid.uuid4().hex[:12]}"
    tokens = seed_streams(
        embedded,
        [
            stream(
                "kind-websocket",
                "websocket",
                {
                    "url": ws_source.url,
                    "send": [{"op": "subscribe", "channel": "trades"}],
                    "extract": {"value": "price", "series": "btc"},
                },
            ),
            stream(
                "kind-sse",
                "sse",
                {
                    "url": sse_source.url,
                    "events": ["reading"],
                    "extract": {"value": "temperature", "series": "temperature"},
                },
            ),
            stream(
                "kind-poll",
                "poll",
                {
                    "url": poll_url,
                    "interval": 0.2,
                    # Not three intervals: the test may take longer than that to send anything.
                    "stall_after": 60,
                    "extract": {"records": "candles", "time": "t", "value": "close", "series": "close"},
                },
            ),
            stream(
                "kind-mqtt",
                "mqtt",
                {
                    "host": "127.0.0.1",
                    "topics": [f"{root}/+/temperature"],
                    "extract": {"value": "@", "series_from_topic": 1},
                },
            ),
            stream("kind-push", "push", {"series": "flow"}),
            stream(
                "kind-simulate",
                "simulate",
                {"rate": 20, "series": [{"name": "wave", "amplitude": 5, "period": 4, "offset": 10}]},
            ),
        ],
    )
    slugs = ["kind-websocket", "kind-sse", "kind-poll", "kind-mqtt", "kind-push", "kind-simulate"]
    embedded.start_serve()
    session = sign_in(embedded, "alice", PASSWORD).cookies["sessionid"]
    # Explicit times well in the past, so points stamped on arrival come after them.
    base = int(time.time()) - 100
    push_url = f"{embedded.base_url}/api/streams/kind-push/points"
    auth = {"Authorization": f"Bearer {tokens['kind-push']}"}

    def candle(second: int, close: float) -> dict[str, float]:
        return {"t": ms(base + second), "close": close}

    async def scenario() -> Viewer:
        viewer = await Viewer.open(embedded, session, slugs)
        await viewer.wait(
            lambda: all(viewer.state(slug) == "live" for slug in slugs), what="every stream live"
        )
        async with httpx.AsyncClient(timeout=10) as http:
            # Round one.
            ws_source.send({"price": 101.5}, {"price": 102.25})
            sse_source.send({"temperature": 20.5}, event="reading", id="1")
            sse_source.send({"ok": True}, event="ping")  # not a listed event: dropped quietly
            sse_source.send({"temperature": 20.75}, event="reading", id="2")
            api.body = {"candles": [candle(0, 10.0), candle(1, 11.0)]}
            publish(
                (f"{root}/kitchen/temperature", "21"),
                (f"{root}/kitchen/humidity", "55"),  # not matched by the topic filter
                (f"{root}/garage/temperature", "9.5"),
            )
            response = await http.post(
                push_url,
                json={"points": [{"t": base, "value": 1.25}, {"t": base + 1, "value": 2.5}]},
                headers=auth,
            )
            assert response.status_code == 202, response.text
            first = {
                "kind-websocket": {"btc": [101.5, 102.25]},
                "kind-sse": {"temperature": [20.5, 20.75]},
                "kind-poll": {"close": [10.0, 11.0]},
                "kind-mqtt": {"kitchen": [21.0], "garage": [9.5]},
                "kind-push": {"flow": [1.25, 2.5]},
            }
            await viewer.wait(lambda: viewer.received(first), what="the first values of every source")
            for slug, values in first.items():
                assert viewer.values(slug) == values, slug

            # Round two: the poll answers an overlapping window, the push comes as NDJSON.
            ws_source.send({"price": 99.75})
            sse_source.send({"temperature": 21.0}, event="reading", id="3")
            api.body = {"candles": [candle(0, 10.0), candle(1, 11.0), candle(2, 12.5)]}
            publish((f"{root}/kitchen/temperature", "21.5\n"))
            response = await http.post(
                push_url,
                content=json.dumps({"t": base + 2, "values": {"flow": 3.75}}) + "\n5\n",
                headers={**auth, "Content-Type": "application/x-ndjson"},
            )
            assert response.status_code == 202, response.text
            assert response.json() == {"stream": "kind-push", "accepted": 2}
        every = {
            "kind-websocket": {"btc": [101.5, 102.25, 99.75]},
            "kind-sse": {"temperature": [20.5, 20.75, 21.0]},
            "kind-poll": {"close": [10.0, 11.0, 12.5]},
            "kind-mqtt": {"kitchen": [21.0, 21.5], "garage": [9.5]},
            "kind-push": {"flow": [1.25, 2.5, 3.75, 5.0]},
        }
        await viewer.wait(
            lambda: viewer.received(every) and len(viewer.values("kind-simulate").get("wave", [])) >= 40,
            what="every value of every source",
        )
        # Nothing more (a repeat, a stray value), proven by order: one last value from each source,
        # and anything else of its stream would arrive before it.
        async with httpx.AsyncClient(timeout=10) as http:
            ws_source.send({"price": MARKER})
            sse_source.send({"temperature": MARKER}, event="reading", id="4")
            api.body = {"candles": [candle(0, 10.0), candle(1, 11.0), candle(2, 12.5), candle(3, MARKER)]}
            publish((f"{root}/kitchen/temperature", str(MARKER)))
            response = await http.post(push_url, json=[MARKER], headers=auth)
            assert response.status_code == 202, response.text
        marked = {
            "kind-websocket": "btc",
            "kind-sse": "temperature",
            "kind-poll": "close",
            "kind-mqtt": "kitchen",
            "kind-push": "flow",
        }
        ended = {
            slug: {name: [*values, MARKER] if name == marked[slug] else values for name, values in by.items()}
            for slug, by in every.items()
        }
        await viewer.wait(lambda: viewer.received(ended), what="every source's last value")
        await viewer.socket.close()
        for slug, values in ended.items():
            assert viewer.values(slug) == values, slug
        return viewer

    viewer = asyncio.run(scenario())

    # Times the sources gave are the times drawn; the rest are arrival times.
    assert viewer.times("kind-poll", "close") == [ms(base), ms(base + 1), ms(base + 2), ms(base + 3)]
    pushed = viewer.times("kind-push", "flow")
    assert pushed[:3] == [ms(base), ms(base + 1), ms(base + 2)]
    assert pushed[3] > ms(base + 50)
    # Simulated values follow the configured wave at the time they are stamped with.
    assert set(viewer.series["kind-simulate"]) == {"wave"}
    for t, y in viewer.series["kind-simulate"]["wave"]:
        assert y == pytest.approx(10 + 5 * math.sin(2 * math.pi * (t / 1000) / 4), abs=1e-4)
    # The websocket feed sent its subscription; nothing went wrong on the way.
    assert [json.loads(message) for message in ws_source.received] == [
        {"op": "subscribe", "channel": "trades"}
    ]
    for slug in slugs:
        assert viewer.state(slug) == "live", slug
        assert "error" not in viewer.states[slug], (slug, viewer.statuses[slug])


def test_a_websocket_source_that_comes_up_late_turns_its_stream_from_error_to_live_without_a_restart(
    embedded: Stack,
):
    source = WebsocketSource()  # its port is chosen, but nothing listens there yet
    try:
        seed_streams(
            embedded,
            [stream("late", "websocket", {"url": source.url, "extract": {"value": "v", "series": "level"}})],
        )
        embedded.start_serve()
        serve = embedded.procs["serve"]
        session = sign_in(embedded, "alice", PASSWORD).cookies["sessionid"]

        async def scenario() -> Viewer:
            viewer = await Viewer.open(embedded, session, ["late"])
            await viewer.wait(lambda: viewer.state("late") == "error", what="the stream in error")
            status = viewer.statuses["late"]
            assert status is not None
            assert f"cannot connect to {source.url}" in status["error"]
            assert status["retry_at"] is not None

            source.start()
            # The worker's backoff is capped at 30 s (with jitter); it is usually a second or two.
            await viewer.wait(lambda: viewer.state("late") == "live", what="the stream live", within=45)
            source.send({"v": 1.5}, {"v": 2.5}, {"v": 4.0})
            await viewer.wait(lambda: viewer.received({"late": {"level": [0, 0, 0]}}), what="the points")
            await viewer.socket.close()
            return viewer

        viewer = asyncio.run(scenario())
        assert viewer.values("late") == {"level": [1.5, 2.5, 4.0]}
        states = viewer.states["late"]
        assert "live" in states[states.index("error") :], states
        # The same serve process all along.
        assert embedded.procs["serve"] is serve
        assert serve.poll() is None
    finally:
        source.close()


def test_pushed_points_reach_a_viewer_through_daphne_and_ingest_in_order(stack: Stack):
    """Production mode: the API on daphne queues in Redis, `ingest` publishes, daphne delivers."""
    tokens = seed_streams(stack, [stream("pushed", "push", {"series": "flow"})])
    stack.start_ingest()
    stack.start_daphne()
    session = sign_in(stack, "alice", PASSWORD).cookies["sessionid"]
    url = f"{stack.base_url}/api/streams/pushed/points"
    base = int(time.time()) - 100

    async def scenario() -> Viewer:
        viewer = await Viewer.open(stack, session, ["pushed"])
        await viewer.wait(lambda: viewer.state("pushed") == "live", what="the push stream live")
        async with httpx.AsyncClient(timeout=10) as http:
            for request in range(10):
                if request == 5:
                    refused = await http.post(
                        url, json=[666.0], headers={"Authorization": f"Bearer {tokens['pushed']}x"}
                    )
                    assert refused.status_code == 401
                    assert refused.json()["error"] == "unauthorized"
                    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="livecharts"'
                    unsent = await http.post(url, json=[666.0])
                    assert unsent.status_code == 401
                first = 2 * request
                response = await http.post(
                    url,
                    json=[{"t": base + first, "value": first}, {"t": base + first + 1, "value": first + 1}],
                    headers={"Authorization": f"Bearer {tokens['pushed']}"},
                )
                assert response.status_code == 202, response.text
        await viewer.wait(lambda: viewer.received({"pushed": {"flow": [0] * 20}}), what="every pushed point")
        # Anything more (the refused point, a repeat) would come before one last point pushed now.
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                url, json=[MARKER], headers={"Authorization": f"Bearer {tokens['pushed']}"}
            )
            assert response.status_code == 202, response.text
        await viewer.wait(lambda: viewer.received({"pushed": {"flow": [0] * 21}}), what="the last point")
        await viewer.socket.close()
        return viewer

    viewer = asyncio.run(scenario())
    assert viewer.values("pushed") == {"flow": [float(n) for n in range(20)] + [MARKER]}
    assert viewer.times("pushed", "flow")[:20] == [ms(base + n) for n in range(20)]
    assert viewer.state("pushed") == "live"
