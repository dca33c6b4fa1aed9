import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { breakGaps, drawsLine, isGap } from "../../../streams/static/streams/gaps.js";

const every = (step, count, from = 0) => Array.from({ length: count }, (_, i) => from + i * step);
const ones = (xs) => xs.map(() => 1);

describe("breakGaps", () => {
  test("puts a null in the middle of a 5 s hole in a 50 ms series", () => {
    const xs = [0, 50, 100, 150, 5150, 5200, 5250];
    const drawn = breakGaps(xs, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(drawn, {
      x: [0, 50, 100, 150, 2650, 5150, 5200, 5250],
      y: [1, 2, 3, 4, null, 5, 6, 7],
      breaks: 1,
    });
  });

  test("leaves a steady series alone, jitter included", () => {
    const xs = [0, 50, 130, 150, 200, 260, 300, 340];
    assert.equal(breakGaps(xs, ones(xs)).breaks, 0);
  });

  test("a series that changed pace is not broken into dots: each stretch is judged by its own steps", () => {
    const slow = every(1000, 60);
    const fast = every(50, 200, slow[slow.length - 1] + 1000);
    const xs = [...slow, ...fast];
    assert.equal(breakGaps(xs, ones(xs)).breaks, 0);
    // ...while a hole in either stretch still breaks it.
    const holed = [...slow.slice(0, 30), ...slow.slice(30).map((x) => x + 20_000), ...fast.map((x) => x + 20_000)];
    assert.equal(breakGaps(holed, ones(holed)).breaks, 1);
  });

  test("two holes in a row both break", () => {
    const xs = [...every(50, 10), ...every(50, 1, 5000), ...every(50, 10, 10_000)];
    assert.equal(breakGaps(xs, ones(xs)).breaks, 2);
  });

  test("no step shorter than the floor breaks (thinned points are that far apart)", () => {
    const xs = [...every(10, 10), ...every(10, 10, 1000)];
    assert.equal(breakGaps(xs, ones(xs), { floor: 2000 }).breaks, 0);
    assert.equal(breakGaps(xs, ones(xs)).breaks, 1);
  });

  test("an append breaks after the points the trace holds when it starts far after them", () => {
    const drawn = breakGaps([10_000, 10_050, 10_100], [1, 2, 3], { held: [0, 50, 100] });
    assert.deepEqual(drawn.y, [null, 1, 2, 3]);
    assert.equal(drawn.x[0], 5050);
    assert.equal(breakGaps([150, 200], [1, 2], { held: [0, 50, 100] }).breaks, 0);
  });

  test("copies: the caller's arrays are not changed", () => {
    const xs = [0, 10, 20, 1000, 1010];
    const ys = [1, 2, 3, 4, 5];
    breakGaps(xs, ys);
    assert.deepEqual(xs, [0, 10, 20, 1000, 1010]);
    assert.deepEqual(ys, [1, 2, 3, 4, 5]);
  });

  test("cannot tell with nothing around: two points are never a hole", () => {
    assert.equal(breakGaps([0, 100_000], [1, 2]).breaks, 0);
  });
});

describe("isGap", () => {
  test("repeated times do not make a normal step look long", () => {
    const xs = [0, 50, 50, 50, 100, 150, 200];
    assert.equal(isGap(xs, 4), false);
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
