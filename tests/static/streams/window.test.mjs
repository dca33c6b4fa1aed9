import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { emptyBuffer, mergeBatch } from "../../../streams/static/streams/protocol.js";
import {
  countExpired,
  cutoffFor,
  breaksAmongNewest,
  keepCount,
  planExtend,
  trimBuffer,
} from "../../../streams/static/streams/window.js";

const noLimits = { windowPoints: null, cutoff: null };

describe("cutoffFor", () => {
  test("is the newest point minus the window", () => {
    assert.equal(cutoffFor(100_000, 30), 70_000);
  });
  test("is null without an age limit or without points", () => {
    assert.equal(cutoffFor(100_000, null), null);
    assert.equal(cutoffFor(null, 30), null);
  });
});

describe("breaksAmongNewest", () => {
  test("counts the nulls among the newest points, not those before them", () => {
    const ys = [null, 1, null, 2, 3, null, 4];
    assert.equal(breaksAmongNewest(ys, 1), 0);
    assert.equal(breaksAmongNewest(ys, 2), 1);
    assert.equal(breaksAmongNewest(ys, 4), 2);
    assert.equal(breaksAmongNewest(ys, 10), 3);
    assert.equal(breaksAmongNewest(ys, 0), 0);
    assert.equal(breaksAmongNewest(null, 3), 0);
  });
});

describe("keepCount", () => {
  test("keeps everything without limits", () => {
    assert.equal(keepCount([1, 2], [3], noLimits), 3);
  });
  test("keeps windowPoints points besides the breaks among them", () => {
    const limits = { windowPoints: 3, cutoff: null };
    assert.equal(keepCount([1, 2, 3, 4], [5], limits, [1, null, 1, 1]), 3);
    assert.equal(keepCount([1, 2, 3, 4], [5], limits, [1, 1, null, 1]), 4);
    assert.equal(keepCount([1, 2, 3, 4], [5, 6, 7], limits, [1, 1, null, 1]), 3);
  });
  test("keeps at most windowPoints", () => {
    assert.equal(keepCount([1, 2, 3], [4, 5], { windowPoints: 4, cutoff: null }), 4);
    assert.equal(keepCount([1], [2], { windowPoints: 4, cutoff: null }), 2);
  });
  test("drops points older than the cutoff, from existing and then added", () => {
    assert.equal(keepCount([1, 2, 3], [4, 5], { windowPoints: null, cutoff: 3 }), 3);
    assert.equal(keepCount([1, 2], [3, 4, 5], { windowPoints: null, cutoff: 4 }), 2);
  });
  test("applies whichever limit is tighter", () => {
    assert.equal(keepCount([1, 2, 3], [4, 5], { windowPoints: 2, cutoff: 2 }), 2);
    assert.equal(keepCount([1, 2, 3], [4, 5], { windowPoints: 10, cutoff: 4 }), 2);
  });
  test("expires from the front only (a point out of time order ends the scan)", () => {
    assert.equal(countExpired([1, 9, 2, 3], 5), 1);
  });
});

describe("trimBuffer", () => {
  test("bounds a paused chart's buffer by count and age", () => {
    const buffer = emptyBuffer();
    mergeBatch(buffer, { stream: "s", prev: null, id: "5-0", t: [1, 2, 3, 4, 5], y: { a: [1, 2, 3, 4, 5] } });
    trimBuffer(buffer, { windowPoints: 3, cutoff: null });
    assert.deepEqual(buffer.series.get("a"), { x: [3, 4, 5], y: [3, 4, 5] });
    trimBuffer(buffer, { windowPoints: null, cutoff: 5 });
    assert.deepEqual(buffer.series.get("a"), { x: [5], y: [5] });
  });
});

describe("planExtend", () => {
  /** @param {Record<string, [number[], number[]]>} series */
  const bufferOf = (series) => {
    const buffer = emptyBuffer();
    for (const [name, [x, y]] of Object.entries(series)) buffer.series.set(name, { x, y });
    return buffer;
  };

  test("is null when nothing changes", () => {
    const plan = planExtend({ traceNames: ["a"], traceXs: [[1]], buffer: emptyBuffer(), limits: noLimits });
    assert.equal(plan, null);
  });

  test("extends the traces that moved, with one maxPoints per trace", () => {
    const plan = planExtend({
      traceNames: ["a", "b"],
      traceXs: [[2, 3], [1]],
      buffer: bufferOf({ b: [[4, 5], [40, 50]] }),
      limits: { windowPoints: 2, cutoff: null },
    });
    assert.deepEqual(plan, {
      reset: false,
      addTraces: [],
      indices: [1],
      update: { x: [[4, 5]], y: [[40, 50]] },
      maxPoints: { x: [2], y: [2] },
    });
  });

  test("trims a quiet trace whose points aged out", () => {
    const plan = planExtend({
      traceNames: ["a", "b"],
      traceXs: [[1, 2, 3], [8]],
      buffer: bufferOf({ b: [[9], [90]] }),
      limits: { windowPoints: null, cutoff: 3 },
    });
    assert.deepEqual(plan.indices, [0, 1]);
    assert.deepEqual(plan.update.x, [[], [9]]);
    assert.deepEqual(plan.maxPoints.x, [1, 2]);
  });

  test("adds a trace for a new series, at the next index", () => {
    const plan = planExtend({
      traceNames: ["a"],
      traceXs: [[1]],
      buffer: bufferOf({ a: [[2], [2]], fresh: [[2], [20]] }),
      limits: noLimits,
    });
    assert.deepEqual(plan.addTraces, ["fresh"]);
    assert.deepEqual(plan.indices, [0, 1]);
    assert.deepEqual(plan.update.y, [[2], [20]]);
    assert.deepEqual(plan.maxPoints.x, [2, 1]);
  });

  test("after a gap, ignores what the traces held", () => {
    const buffer = bufferOf({ a: [[100], [1]] });
    buffer.reset = true;
    const plan = planExtend({
      traceNames: ["a", "b"],
      traceXs: [[1, 2, 3], [1, 2]],
      buffer,
      limits: { windowPoints: 10, cutoff: null },
    });
    assert.equal(plan.reset, true);
    assert.deepEqual(plan.indices, [0]);
    assert.deepEqual(plan.maxPoints.x, [1]);
  });

  test("a gap with nothing buffered still empties the chart", () => {
    const buffer = emptyBuffer();
    buffer.reset = true;
    const plan = planExtend({ traceNames: ["a"], traceXs: [[1]], buffer, limits: noLimits });
    assert.equal(plan.reset, true);
    assert.deepEqual(plan.indices, []);
  });
});
