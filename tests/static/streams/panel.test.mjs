import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  chooseSeries,
  LastValue,
  nextCost,
  pickDraws,
  pickSeries,
  planPanel,
  traceName,
} from "../../../streams/static/streams/panel.js";
import { emptyBuffer, mergeBatch } from "../../../streams/static/streams/protocol.js";

const noLimits = { windowPoints: null, cutoff: null };

function buffered(batch) {
  const buffer = emptyBuffer();
  mergeBatch(buffer, batch);
  return buffer;
}

describe("traceName", () => {
  test("is the series alone for a panel of one stream, else after the stream's label", () => {
    assert.equal(traceName("", "ACME"), "ACME");
    assert.equal(traceName("Market", "ACME"), "Market · ACME");
  });
});

describe("pickSeries", () => {
  const batch = { stream: "m", prev: null, id: "1-0", t: [1], y: { a: [1], b: [2] } };
  test("keeps only the named series", () => {
    assert.deepEqual(pickSeries(batch, "b").y, { b: [2] });
  });
  test("keeps everything without a name and nothing for an unknown one", () => {
    assert.equal(pickSeries(batch, null), batch);
    assert.deepEqual(pickSeries(batch, "zzz").y, {});
  });
});

describe("chooseSeries", () => {
  test("keeps the configured series, else takes the first one in the data", () => {
    assert.equal(chooseSeries("b", { y: { a: [1] } }), "b");
    assert.equal(chooseSeries(null, { y: { a: [1], b: [2] } }), "a");
    assert.equal(chooseSeries(null, { y: {} }), null);
  });
});

describe("planPanel", () => {
  const traces = [
    { stream: "cpu", series: "user" },
    { stream: "mem", series: "used" },
    { stream: "cpu", series: "system" },
  ];

  test("extends each stream's own traces at their places in the panel", () => {
    const pending = new Map([
      ["cpu", { buffer: buffered({ t: [10], y: { user: [1], system: [2] } }), limits: noLimits }],
      ["mem", { buffer: buffered({ t: [10], y: { used: [50] } }), limits: noLimits }],
    ]);
    const plan = planPanel({ traces, traceXs: [[], [], []], pending });
    assert.deepEqual(plan.indices, [0, 2, 1]);
    assert.deepEqual(plan.update.y, [[1], [2], [50]]);
    assert.deepEqual(plan.addTraces, []);
    assert.deepEqual(plan.clear, []);
  });

  test("each stream keeps its own window", () => {
    const pending = new Map([
      ["cpu", { buffer: buffered({ t: [4], y: { user: [1] } }), limits: { windowPoints: 2, cutoff: null } }],
      ["mem", { buffer: buffered({ t: [4], y: { used: [1] } }), limits: { windowPoints: 10, cutoff: null } }],
    ]);
    const plan = planPanel({ traces, traceXs: [[1, 2, 3], [1, 2, 3], []], pending });
    assert.deepEqual(plan.indices, [0, 1]);
    assert.deepEqual(plan.maxPoints.x, [2, 4]);
  });

  test("the breaks a trace holds where points were missing do not count against its window", () => {
    const pending = new Map([
      ["cpu", { buffer: buffered({ t: [9], y: { user: [1] } }), limits: { windowPoints: 4, cutoff: null } }],
    ]);
    // A hole between 2 and 6, broken by a null at 4 (gaps.js): 4 points and a break are held.
    const plan = planPanel({
      traces,
      traceXs: [[1, 2, 4, 6, 7], [], []],
      traceYs: [[1, 1, null, 1, 1], [], []],
      pending,
    });
    assert.deepEqual(plan.indices, [0]);
    // 4 points and the break between them: 2, (4), 6, 7, 9.
    assert.deepEqual(plan.maxPoints.x, [5]);
  });

  test("a series seen for the first time gets a trace at the end, owned by its stream", () => {
    const pending = new Map([
      ["mem", { buffer: buffered({ t: [10], y: { used: [1], swap: [2] } }), limits: noLimits }],
      ["cpu", { buffer: buffered({ t: [10], y: { idle: [3] } }), limits: noLimits }],
    ]);
    const plan = planPanel({ traces, traceXs: [[], [], []], pending });
    assert.deepEqual(plan.addTraces, [
      { stream: "mem", series: "swap" },
      { stream: "cpu", series: "idle" },
    ]);
    assert.deepEqual(plan.indices, [1, 3, 4]);
    assert.deepEqual(plan.update.y, [[1], [2], [3]]);
  });

  test("a gap empties only the traces of its stream", () => {
    const buffer = emptyBuffer();
    buffer.reset = true;
    const plan = planPanel({
      traces,
      traceXs: [[1], [1], [1]],
      pending: new Map([["cpu", { buffer, limits: noLimits }]]),
    });
    assert.deepEqual(plan.clear, [0, 2]);
    assert.deepEqual(plan.indices, []);
  });

  test("is null when nothing would change", () => {
    const pending = new Map([["cpu", { buffer: emptyBuffer(), limits: noLimits }]]);
    assert.equal(planPanel({ traces, traceXs: [[1], [1], [1]], pending }), null);
  });
});

describe("LastValue", () => {
  test("is the newest value, with the oldest in the window as reference", () => {
    const last = new LastValue();
    last.add([1, 2, 3], [10, null, 12]);
    last.add([4], [15]);
    assert.equal(last.value, 15);
    assert.equal(last.reference, 10);
  });

  test("forgets values past the window", () => {
    const last = new LastValue();
    last.add([1, 2, 3, 4], [10, 11, 12, 13]);
    last.trim({ windowPoints: null, cutoff: 3 });
    assert.equal(last.reference, 12);
    last.trim({ windowPoints: 1, cutoff: null });
    assert.equal(last.reference, 13);
    assert.equal(last.value, 13);
  });

  test("holds nothing before the first value and after clear", () => {
    const last = new LastValue();
    assert.equal(last.value, null);
    last.add([1], [Number.NaN]);
    assert.equal(last.value, null);
    last.add([2], [5]);
    last.clear();
    assert.equal(last.reference, null);
  });
});

describe("pickDraws", () => {
  test("draws the panels that waited longest first, within the budget", () => {
    const waiting = [
      { id: "new", since: 30, cost: 2 },
      { id: "old", since: 10, cost: 2 },
      { id: "middle", since: 20, cost: 2 },
    ];
    assert.deepEqual(pickDraws(waiting, 40, 5), ["old", "middle"]);
    assert.deepEqual(pickDraws(waiting, 40, 100), ["old", "middle", "new"]);
  });

  test("a costly panel waits longer for its turn, in proportion to its cost", () => {
    const waiting = [
      { id: "costly", since: 100, cost: 100 }, // waited 900 ms: 9 ms per ms of drawing
      { id: "cheap", since: 900, cost: 5 }, // waited 100 ms: 20 ms per ms of drawing
    ];
    assert.deepEqual(pickDraws(waiting, 1000, 12), ["cheap"]);
    waiting[1].since = 960; // waited 40 ms: 8 ms per ms of drawing
    assert.deepEqual(pickDraws(waiting, 1000, 12), ["costly"]);
  });

  test("skips a panel that does not fit for others that still do", () => {
    const waiting = [
      { id: "a", since: 0, cost: 3 },
      { id: "costly", since: 0, cost: 50 },
      { id: "b", since: 0, cost: 3 },
    ];
    assert.deepEqual(pickDraws(waiting, 100, 10), ["a", "b"]);
  });

  test("always draws one, however costly, so every panel gets its turn", () => {
    assert.deepEqual(pickDraws([{ id: "costly", since: 1, cost: 120 }], 2, 12), ["costly"]);
    assert.deepEqual(pickDraws([], 2, 12), []);
  });

  test("a panel that waited a second goes first, however costly it was counted", () => {
    const waiting = [
      { id: "inflated", since: 0, cost: 110 }, // one slow draw counted, then left waiting
      { id: "cheap", since: 900, cost: 0.3 },
    ];
    assert.deepEqual(pickDraws(waiting, 999, 12), ["cheap"]);
    assert.deepEqual(pickDraws(waiting, 1000, 12), ["inflated"]);
  });

  test("round after round, every panel is drawn: none waits past a second", () => {
    // 20 panels dirty all the time, one of them counted 100 times costlier than the others;
    // each frame draws within the budget, as the page's scheduler does every 16 ms.
    const panels = Array.from({ length: 20 }, (_, id) => ({ id, since: 0, cost: id === 7 ? 100 : 1 }));
    const draws = new Map(panels.map((panel) => [panel.id, 0]));
    let longest = 0;
    for (let now = 16; now <= 10_000; now += 16) {
      for (const id of pickDraws(panels, now, 4)) {
        const panel = panels[id];
        longest = Math.max(longest, now - panel.since);
        panel.since = now; // drawn, and new points at once
        draws.set(id, draws.get(id) + 1);
      }
    }
    assert.ok(longest <= 1016, `a panel waited ${longest} ms`);
    assert.ok(Math.min(...draws.values()) >= 9, `draws per panel: ${[...draws.values()]}`);
  });

  test("panels never measured count as cheap and all draw at once", () => {
    const waiting = [1, 2, 3].map((id) => ({ id, since: id, cost: 0 }));
    assert.deepEqual(pickDraws(waiting, 10, 1), [1, 2, 3]);
  });
});

describe("nextCost", () => {
  test("starts at the first measurement, then moves part of the way", () => {
    assert.equal(nextCost(0, 20), 20);
    assert.equal(nextCost(20, 120, 0.3), 50);
  });
});
