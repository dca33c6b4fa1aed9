import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { breakGaps, drawsLine, gapThreshold, typicalStep } from "../../../streams/static/streams/gaps.js";

const every = (step, count, from = 0) => Array.from({ length: count }, (_, i) => from + i * step);

describe("typicalStep", () => {
  test("is the median step, so one long hole does not move it", () => {
    const xs = [...every(50, 100), ...every(50, 100, 100 * 50 + 5000)];
    assert.equal(typicalStep(xs), 50);
  });

  test("ignores repeated times and needs two distinct points", () => {
    assert.equal(typicalStep([]), null);
    assert.equal(typicalStep([5]), null);
    assert.equal(typicalStep([5, 5, 5]), null);
    assert.equal(typicalStep([0, 0, 10, 10, 20]), 10);
  });

  test("samples a long window evenly instead of sorting every step", () => {
    const xs = every(100, 100_000);
    assert.equal(typicalStep(xs), 100);
  });
});

describe("gapThreshold", () => {
  test("is five usual steps, never below the floor", () => {
    assert.equal(gapThreshold(every(50, 10)), 250);
    assert.equal(gapThreshold(every(50, 10), { floor: 1000 }), 1000);
  });

  test("breaks nothing while the usual step is unknown", () => {
    assert.equal(gapThreshold([1]), Number.POSITIVE_INFINITY);
  });
});

describe("breakGaps", () => {
  test("puts a null in the middle of a 5 s hole in a 50 ms series", () => {
    const xs = [0, 50, 100, 5100, 5150];
    const ys = [1, 2, 3, 4, 5];
    const drawn = breakGaps(xs, ys, gapThreshold(xs));
    assert.deepEqual(drawn, { x: [0, 50, 100, 2600, 5100, 5150], y: [1, 2, 3, null, 4, 5], breaks: 1 });
  });

  test("leaves a steady series alone, jitter included", () => {
    const xs = [0, 50, 130, 150, 200, 260];
    const drawn = breakGaps(xs, [1, 2, 3, 4, 5, 6], gapThreshold(xs));
    assert.equal(drawn.breaks, 0);
    assert.deepEqual(drawn.x, xs);
  });

  test("breaks before an append that starts far after the trace's last point", () => {
    const drawn = breakGaps([10_000, 10_050], [1, 2], 250, { before: 100 });
    assert.deepEqual(drawn.y, [null, 1, 2]);
    assert.equal(drawn.x[0], 5050);
  });

  test("copies: the caller's arrays are not changed", () => {
    const xs = [0, 1000];
    const ys = [1, 2];
    breakGaps(xs, ys, 10);
    assert.deepEqual(xs, [0, 1000]);
    assert.deepEqual(ys, [1, 2]);
  });
});

describe("drawsLine", () => {
  test("lines and areas break; markers and bars do not need to", () => {
    assert.equal(drawsLine({ type: "scatter", mode: "lines" }), true);
    assert.equal(drawsLine({ type: "scatter", mode: "lines", fill: "tozeroy" }), true);
    assert.equal(drawsLine({ type: "scatter" }), true);
    assert.equal(drawsLine({ type: "scatter", mode: "markers" }), false);
    assert.equal(drawsLine({ type: "bar" }), false);
  });
});
