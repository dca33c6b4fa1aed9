"""A plain EventSource in Chromium follows a stream and resumes by itself across a restart."""

from __future__ import annotations

import itertools

import pytest

from streams.core.ids import parse_id
from tests.browser.pages import sign_in
from tests.processes import Stack
from tests.waits import wait_in_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(150)]

RATE = 20  # points/s of the seeded simulate stream

FOLLOW = """() => {
  window.sse = {points: [], opens: 0, errors: 0};
  const source = new EventSource("/streams/line/events");
  source.addEventListener("open", () => { window.sse.opens += 1; });
  source.addEventListener("error", () => { window.sse.errors += 1; });
  source.addEventListener("points", (event) => {
    const batch = JSON.parse(event.data);
    window.sse.points.push({id: event.lastEventId, prev: batch.prev, t: batch.t});
  });
}"""
POINTS = "() => window.sse.points.reduce((n, batch) => n + batch.t.length, 0)"


def test_event_source_resumes_with_last_event_id_after_a_server_restart(stack: Stack, browser):
    stack.start_ingest()
    stack.start_daphne()
    page = browser.new_page()
    resumed_from: list[str | None] = []
    page.on(
        "request",
        lambda request: (
            request.url.endswith("/events")
            and resumed_from.append(request.all_headers().get("last-event-id"))
        ),
    )
    sign_in(page, stack, "/")

    page.evaluate(FOLLOW)
    wait_in_page(page, f"({POINTS})() > 20", what="20 points through the EventSource")
    stack.stop("daphne")
    wait_in_page(page, "window.sse.errors > 0", what="the EventSource to see daphne gone")
    before, last_before = page.evaluate("[window.sse.points.length, window.sse.points.at(-1).id]")
    stack.start_daphne()  # the same port
    wait_in_page(page, "window.sse.opens >= 2", what="the EventSource to open again")
    counted = page.evaluate(POINTS)
    wait_in_page(page, f"({POINTS})() > {counted + 40}", what="40 more points after the restart")

    batches = page.evaluate("window.sse.points")
    assert resumed_from[0] is None and last_before in resumed_from[1:], resumed_from
    assert batches[before]["prev"] == last_before, "the first batch after the restart chains on the last one"
    ids = [parse_id(batch["id"]) for batch in batches]
    assert ids == sorted(set(ids)), "ids strictly increasing: no batch twice"
    times = [t for batch in batches for t in batch["t"]]
    steps = {round(b - a) for a, b in itertools.pairwise(times)}
    assert steps == {1000 // RATE}, f"gaps or duplicates across the restart: {sorted(steps)[:10]}"
