import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { sparkPath, trimSpark } from "../../../streams/static/streams/sparkline.js";

describe("sparkPath", () => {
  test("scales the line to the box, highest value at the top", () => {
    assert.equal(sparkPath([0, 1, 2], [0, 10, 5], { width: 100, height: 22, pad: 1 }), "M0,21L50,1L100,11");
  });

  test("starts a new stroke after a hole in the data", () => {
    const xs = [0, 1, 2, 3, 50, 51];
    const path = sparkPath(xs, [1, 2, 1, 2, 1, 2], { width: 51, height: 10 });
    assert.equal(path.match(/M/g)?.length, 2);
    assert.match(path, /L3,1M50,9/);
  });

  test("a flat series sits in the middle; one point is a short stroke; none is nothing", () => {
    assert.equal(sparkPath([0, 1], [5, 5], { width: 10, height: 10 }), "M0,5L10,5");
    assert.equal(sparkPath([0], [5], { width: 10, height: 10 }), "M8,5L10,5");
    assert.equal(sparkPath([], [], { width: 10, height: 10 }), "");
  });
});

describe("trimSpark", () => {
  test("keeps the newest points", () => {
    const line = { x: [1, 2, 3, 4], y: [5, 6, 7, 8] };
    trimSpark(line, 2);
    assert.deepEqual(line, { x: [3, 4], y: [7, 8] });
  });
});
