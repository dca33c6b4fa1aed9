"""An MQTT stream in a real Chromium: one trace per sensor, named from the topic, growing live."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt import publish as mqtt_publish

from tests.browser.pages import sign_in
from tests.processes import Stack, embedded_stack, seed_streams
from tests.services import require_mosquitto
from tests.waits import wait_in_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(150)]

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
TRACES = """() => Array.from(document.getElementById('chart').data || [])
  .map((trace) => ({name: trace.name, y: Array.from(trace.y || [])}))"""


@pytest.fixture
def embedded(tmp_path) -> Iterator[Stack]:
    with embedded_stack(tmp_path) as stack:
        yield stack


def traces(page) -> dict[str, list[float]]:
    return {trace["name"]: trace["y"] for trace in page.evaluate(TRACES)}


def wait_for_values(page, count: int) -> None:
    """Until the chart holds `count` values over all traces."""
    wait_in_page(
        page,
        f"(({TRACES})()).reduce((n, trace) => n + trace.y.length, 0) >= {count}",
        what=f"{count} values on the chart",
    )


def test_mqtt_sensors_become_named_traces_that_grow_in_the_browser(embedded: Stack, browser):
    host, port = require_mosquitto()
    # sensors-<id>/<sensor>/temperature: a topic root of this test alone on the shared broker.
    root = f"sensors-{uuid.uuid4().hex[:12]}"
    seed_streams(
        embedded,
        [
            {
                "slug": "sensors",
                "title": "Workshop temperatures",
                "description": "One trace per sensor, named from its MQTT topic.",
                "visibility": "restricted",
                "viewers": ["alice"],
                "feed_kind": "mqtt",
                "feed_settings": {
                    "host": host,
                    "port": port,
                    "topics": [f"{root}/+/temperature"],
                    "extract": {"value": "@", "series_from_topic": 1},
                },
                "y_title": "Temperature",
                "y_unit": "°C",
            }
        ],
    )
    embedded.start_serve()

    def publish(kitchen: float, garage: float) -> None:
        mqtt_publish.multiple(
            [
                {"topic": f"{root}/kitchen/temperature", "payload": str(kitchen)},
                {"topic": f"{root}/garage/temperature", "payload": str(garage)},
            ],
            host,
            port,
        )

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, embedded, "/streams/sensors/")
    wait_in_page(page, "document.body.dataset.connection === 'live'", what="the socket to be live")
    # Live: subscribed to the topic, so what is published from now on is drawn.
    wait_in_page(page, "document.body.dataset.feed === 'live'", what="the MQTT feed to be live")
    assert traces(page) == {}, "no series is known before the sensors report"

    publish(21.0, 9.5)
    wait_for_values(page, 2)
    assert traces(page) == {"kitchen": [21.0], "garage": [9.5]}

    kitchen, garage = [21.0], [9.5]
    for step in range(1, 12):
        kitchen.append(round(21.0 + 0.4 * step + (0.3 if step % 3 == 0 else 0.0), 2))
        garage.append(round(9.5 + 0.25 * step - (0.4 if step % 4 == 0 else 0.0), 2))
        publish(kitchen[-1], garage[-1])
        # Each reading on the chart before the next is sent: spread in time, as sensors report.
        wait_for_values(page, len(kitchen) + len(garage))
    assert traces(page) == {"kitchen": kitchen, "garage": garage}
    assert page.locator("#feed-badge").inner_text() == "feed: live"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "mqtt_sensors.png"), full_page=True)
    assert errors == []
