import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  Latest,
  MAX_POINTS,
  PRESETS,
  axisX,
  customRange,
  describeAnswer,
  describeFailure,
  formatLocalInput,
  fromLocalX,
  liveLoaded,
  parseLocalInput,
  presetRange,
  rangeTraces,
  rangeUrl,
  readAnswer,
  relayoutAction,
  toLocalX,
} from "../../../streams/static/streams/range.js";

const HOUR = 3_600_000;
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const utc = () => 0;
// Two hours ahead of UTC (as Date#getTimezoneOffset says it: -120), like Paris in summer.
const paris = () => -120;
// One hour ahead until 01:00 UTC on 2024-03-31, two hours after (Europe's spring change).
const DST_CHANGE = Date.UTC(2024, 2, 31, 1, 0, 0);
const parisSpring = (/** @type {number} */ t) => (t < DST_CHANGE ? -60 : -120);

/** A plotly_relayout payload for a drag zoom, as Plotly writes it (date strings, no zone). */
function dragZoom(start, end) {
  const text = (/** @type {number} */ x) => new Date(x).toISOString().replace("T", " ").replace("Z", "");
  return { "xaxis.range[0]": text(start), "xaxis.range[1]": text(end) };
}

describe("presetRange", () => {
  test("each preset ends now and spans what its label says", () => {
    assert.deepEqual(presetRange("15m", NOW), { start: NOW - 15 * 60_000, end: NOW });
    assert.deepEqual(presetRange("1h", NOW), { start: NOW - HOUR, end: NOW });
    assert.deepEqual(presetRange("24h", NOW), { start: NOW - 24 * HOUR, end: NOW });
    assert.deepEqual(presetRange("7d", NOW), { start: NOW - 7 * 24 * HOUR, end: NOW });
  });

  test("live is no range: the socket's window is shown instead", () => {
    assert.equal(presetRange("live", NOW), null);
  });

  test("an unknown preset is a mistake, not a silent live view", () => {
    assert.throws(() => presetRange("1y", NOW), RangeError);
  });

  test("the buttons come in the order a trading chart shows them", () => {
    assert.deepEqual(
      PRESETS.map((preset) => preset.label),
      ["Live", "15 min", "1 h", "24 h", "7 d"],
    );
  });
});

describe("local x and back", () => {
  test("the chart's x is local wall time written as UTC", () => {
    assert.equal(toLocalX(NOW, paris), NOW + 2 * HOUR);
    assert.equal(fromLocalX(NOW + 2 * HOUR, paris), NOW);
    assert.equal(toLocalX(NOW, utc), NOW);
  });

  test("round trips on both sides of a daylight-saving change", () => {
    for (const t of [DST_CHANGE - 30 * 60_000, DST_CHANGE, DST_CHANGE + 30 * 60_000, DST_CHANGE + 3 * HOUR]) {
      assert.equal(fromLocalX(toLocalX(t, parisSpring), parisSpring), t);
    }
  });

  test("reads Plotly's date strings and plain numbers", () => {
    assert.equal(axisX("2024-05-01 12:30:15.1234"), Date.UTC(2024, 4, 1, 12, 30, 15) + 123.4);
    assert.equal(axisX("2024-05-01 12:30"), Date.UTC(2024, 4, 1, 12, 30));
    assert.equal(axisX("2024-05-01"), Date.UTC(2024, 4, 1));
    assert.equal(axisX(NOW), NOW);
    assert.equal(axisX("yesterday"), null);
    assert.equal(axisX(Number.NaN), null);
    assert.equal(axisX(undefined), null);
  });
});

describe("custom ranges from two datetime-local inputs", () => {
  const local = (/** @type {number[]} */ ...parts) => new Date(...parts).getTime();

  test("reads the inputs as the browser's local time", () => {
    assert.equal(parseLocalInput("2024-05-01T09:15"), local(2024, 4, 1, 9, 15));
    assert.equal(parseLocalInput("2024-05-01T09:15:30"), local(2024, 4, 1, 9, 15, 30));
    assert.equal(parseLocalInput(""), null);
    assert.equal(parseLocalInput("2024-02-31T10:00"), null, "a day that does not exist");
    assert.equal(parseLocalInput("May 1st"), null);
  });

  test("formats a time back for the inputs, to the minute", () => {
    const t = local(2024, 4, 1, 9, 5, 42);
    assert.equal(formatLocalInput(t), "2024-05-01T09:05");
    assert.equal(parseLocalInput(formatLocalInput(t)), local(2024, 4, 1, 9, 5));
  });

  test("a start before an end in the past is the range", () => {
    const now = local(2024, 4, 1, 12, 0);
    assert.deepEqual(customRange({ start: "2024-05-01T09:00", end: "2024-05-01T10:30", now }), {
      range: { start: local(2024, 4, 1, 9, 0), end: local(2024, 4, 1, 10, 30) },
    });
  });

  test("an end in the future is cut to now", () => {
    const now = local(2024, 4, 1, 12, 0);
    assert.deepEqual(customRange({ start: "2024-05-01T09:00", end: "2024-05-01T23:59", now }), {
      range: { start: local(2024, 4, 1, 9, 0), end: now },
    });
  });

  test("says what is wrong with the inputs", () => {
    const now = local(2024, 4, 1, 12, 0);
    const error = (start, end) => customRange({ start, end, now }).error;
    assert.match(error("", "2024-05-01T10:00"), /both a start and an end/);
    assert.match(error("2024-05-01T10:00", "2024-05-01T10:00"), /before the end/);
    assert.match(error("2024-05-01T11:00", "2024-05-01T10:00"), /before the end/);
    assert.match(error("2024-05-01T13:00", "2024-05-01T14:00"), /future/);
    assert.match(error("2024-13-01T10:00", "2024-05-01T11:00"), /start is not a valid/);
  });
});

describe("rangeUrl", () => {
  test("asks for whole ms and at most 2,000 points per series by default", () => {
    assert.equal(
      rangeUrl("/streams/line/range", { start: 1000.4, end: 2000.2 }),
      `/streams/line/range?start=1000&end=2001&points=${MAX_POINTS}`,
    );
    assert.equal(MAX_POINTS, 2000);
    assert.equal(rangeUrl("/r", { start: 1, end: 2, points: 500 }), "/r?start=1&end=2&points=500");
  });
});

describe("relayoutAction: does a zoom need finer points?", () => {
  const options = { now: NOW, offsetOf: utc };
  const loaded = { start: NOW - HOUR, end: NOW, downsampled: true };

  test("a drag zoom into thinned points asks for that window", () => {
    const start = NOW - 40 * 60_000;
    const end = NOW - 30 * 60_000;
    assert.deepEqual(relayoutAction(dragZoom(start, end), loaded, options), { action: "fetch", start, end });
  });

  test("a zoom into points held in full asks nothing: there are no finer ones", () => {
    const full = { ...loaded, downsampled: false };
    assert.equal(relayoutAction(dragZoom(NOW - 40 * 60_000, NOW - 30 * 60_000), full, options), null);
  });

  test("panning beyond what is held asks, even when it is held in full", () => {
    const full = { ...loaded, downsampled: false };
    const start = NOW - 90 * 60_000;
    const end = NOW - 30 * 60_000;
    assert.deepEqual(relayoutAction(dragZoom(start, end), full, options), { action: "fetch", start, end });
  });

  test("the window it already shows (our own relayout) asks nothing", () => {
    assert.equal(relayoutAction({ "xaxis.range": [loaded.start, loaded.end] }, loaded, options), null);
    assert.equal(relayoutAction(dragZoom(loaded.start + 1, loaded.end - 1), loaded, options), null);
  });

  test("Plotly.relayout's whole-range form counts like a drag", () => {
    const start = NOW - 10 * 60_000;
    assert.deepEqual(relayoutAction({ "xaxis.range": [start, NOW] }, loaded, options), {
      action: "fetch",
      start,
      end: NOW,
    });
  });

  test("axis values are local wall time: the request is in UTC", () => {
    const start = NOW - 40 * 60_000;
    const end = NOW - 30 * 60_000;
    const event = dragZoom(start + 2 * HOUR, end + 2 * HOUR);
    assert.deepEqual(relayoutAction(event, loaded, { now: NOW, offsetOf: paris }), { action: "fetch", start, end });
  });

  test("the end is cut to now, and a window all in the future asks nothing", () => {
    const start = NOW - 10 * 60_000;
    assert.deepEqual(relayoutAction(dragZoom(start, NOW + HOUR), null, options), { action: "fetch", start, end: NOW });
    assert.equal(relayoutAction(dragZoom(NOW + HOUR, NOW + 2 * HOUR), null, options), null);
  });

  test("an autorange (double click) goes back to the chosen range", () => {
    assert.deepEqual(relayoutAction({ "xaxis.autorange": true, "yaxis.autorange": true }, loaded, options), {
      action: "reset",
    });
  });

  test("a y zoom, a resize or one dragged axis end ask nothing", () => {
    assert.equal(relayoutAction({ "yaxis.range[0]": 1, "yaxis.range[1]": 2 }, loaded, options), null);
    assert.equal(relayoutAction({ autosize: true }, loaded, options), null);
    assert.equal(relayoutAction({ "xaxis.range[1]": "2024-05-01 11:50" }, loaded, options), null);
    assert.equal(relayoutAction(null, loaded, options), null);
  });

  test("in live mode, zooming inside the live window asks nothing; reaching before it asks", () => {
    const live = liveLoaded([[NOW - 5 * 60_000, NOW - 4 * 60_000], [NOW - 6 * 60_000]], utc);
    assert.deepEqual(live, { start: NOW - 6 * 60_000, end: Number.POSITIVE_INFINITY, downsampled: false });
    assert.equal(relayoutAction(dragZoom(NOW - 3 * 60_000, NOW - 60_000), live, options), null);
    const start = NOW - 20 * 60_000;
    assert.deepEqual(relayoutAction(dragZoom(start, NOW - 60_000), live, options), {
      action: "fetch",
      start,
      end: NOW - 60_000,
    });
  });

  test("an empty live chart holds nothing", () => {
    assert.equal(liveLoaded([[], []], utc), null);
  });
});

describe("Latest: only the newest answer is drawn", () => {
  test("an earlier request's answer is stale once a newer one is made", () => {
    const latest = new Latest();
    const first = latest.begin();
    const second = latest.begin();
    assert.equal(latest.finish(first), false);
    assert.equal(latest.loading, true, "the newer request is still loading");
    assert.equal(latest.finish(second), true);
    assert.equal(latest.loading, false);
  });

  test("cancelling (back to live) makes what is in flight stale and stops loading", () => {
    const latest = new Latest();
    const token = latest.begin();
    latest.cancel();
    assert.equal(latest.loading, false);
    assert.equal(latest.isCurrent(token), false);
    assert.equal(latest.finish(token), false);
  });
});

describe("readAnswer", () => {
  test("keeps the points and counts", () => {
    const answer = readAnswer({ stream: "s", t: [1, 2], y: { a: [1, null] }, stored: 9, returned: 2, downsampled: true });
    assert.deepEqual(answer, { t: [1, 2], y: { a: [1, null] }, stored: 9, returned: 2, downsampled: true });
  });

  test("refuses what it cannot draw", () => {
    assert.throws(() => readAnswer(null), TypeError);
    assert.throws(() => readAnswer({ t: [1], y: [] }), TypeError);
    assert.throws(() => readAnswer({ t: [1, 2], y: { a: [1] } }), /series "a"/);
  });
});

describe("rangeTraces", () => {
  const answer = readAnswer({
    t: [1000, 2000, 3000],
    y: { b: [5, null, 7], c: [1, 2, 3] },
    stored: 3,
    returned: 3,
    downsampled: false,
  });

  test("keeps the live traces' order and names, adds the series they lack, drops nulls", () => {
    const traces = [
      { name: "a", type: "scatter", line: { width: 2 } },
      { name: "b", type: "scatter", line: { width: 2 } },
    ];
    const data = rangeTraces({ traces, answer, newTrace: { type: "scatter", mode: "lines" }, toX: (t) => t + 1 });
    assert.deepEqual(data, [
      { name: "a", type: "scatter", line: { width: 2 }, x: [], y: [] },
      { name: "b", type: "scatter", line: { width: 2 }, x: [1001, 3001], y: [5, 7] },
      { name: "c", type: "scatter", mode: "lines", x: [1001, 2001, 3001], y: [1, 2, 3] },
    ]);
  });

  test("a hidden trace stays hidden", () => {
    const [trace] = rangeTraces({ traces: [{ name: "c", visible: "legendonly" }], answer });
    assert.equal(trace.visible, "legendonly");
    assert.deepEqual(trace.y, [1, 2, 3]);
  });
});

describe("describeAnswer", () => {
  test("says how many points the range holds and how many are drawn", () => {
    const base = { t: [], y: {} };
    assert.equal(
      describeAnswer({ ...base, stored: 12345, returned: 2000, downsampled: true }),
      "12,345 points · downsampled to 2,000 per series",
    );
    assert.equal(describeAnswer({ ...base, stored: 812, returned: 812, downsampled: false }), "all 812 points");
    assert.equal(describeAnswer({ ...base, stored: 0, returned: 0, downsampled: false }), "no stored points in this range");
  });
});

describe("describeFailure", () => {
  test("tells a signed-out, a refused and an offline viewer what to do", () => {
    assert.match(describeFailure({ status: 401 }), /signed out.*sign in again/);
    assert.match(describeFailure({ status: 403, body: { error: "forbidden" } }), /no longer see this stream/);
    assert.match(describeFailure({ status: 400, body: { message: "start is after end" } }), /start is after end/);
    assert.match(describeFailure({ status: 502 }), /HTTP 502/);
    assert.match(describeFailure({ status: 200, body: { message: "the answer has no times" } }), /could not be read: the answer has no times/);
    assert.match(describeFailure({ error: new TypeError("Failed to fetch") }), /no answer from the server: Failed to fetch/);
  });
});
