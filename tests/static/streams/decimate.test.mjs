import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { bucketWidth, bucketsFor, decimate, visibleSpan } from "../../../streams/static/streams/decimate.js";

describe("bucketWidth", () => {
  test("is the smallest 1, 2, 2.5 or 5 times a power of ten that fits", () => {
    assert.equal(bucketWidth(10_000, 550), 20); // 18.2 -> 20
    assert.equal(bucketWidth(10_000, 100), 100);
    assert.equal(bucketWidth(2_200, 1000), 2.5);
    assert.equal(bucketWidth(6_000, 1000), 10); // 6 -> 10
  });
  test("stays the same while the span drifts a little (buckets do not shimmer)", () => {
    assert.equal(bucketWidth(9_950, 550), bucketWidth(10_050, 550));
  });
  test("is 0 when there is nothing to split", () => {
    assert.equal(bucketWidth(0, 100), 0);
    assert.equal(bucketWidth(1000, 0), 0);
  });
});

describe("bucketsFor", () => {
  test("is one bucket per two pixel columns, at least one", () => {
    assert.equal(bucketsFor(1100), 550);
    assert.equal(bucketsFor(1), 1);
  });
});

describe("decimate", () => {
  test("draws every point when there are no more than two a column", () => {
    const xs = [1, 2, 3, 4];
    const ys = [5, 6, 7, 8];
    assert.deepEqual(decimate(xs, ys, { columns: 2, width: 10 }), { x: xs, y: ys });
  });

  test("keeps each bucket's first, lowest, highest and last point, in order", () => {
    // Two buckets of width 10: [0, 10) and [10, 20).
    const xs = [0, 2, 4, 6, 8, 10, 12, 14];
    const ys = [5, 9, 1, 3, 4, 2, 2, 7];
    const drawn = decimate(xs, ys, { columns: 1, width: 10 });
    assert.deepEqual(drawn.x, [0, 2, 4, 8, 10, 14]);
    assert.deepEqual(drawn.y, [5, 9, 1, 4, 2, 7]);
  });

  test("keeps every spike of 10,000 noisy points in at most four per bucket", () => {
    const xs = Array.from({ length: 10_000 }, (_, i) => 1_000_000 + i);
    const ys = xs.map((_, i) => Math.sin(i / 300) + (i % 37 === 0 ? 5 : 0) - (i % 53 === 0 ? 5 : 0));
    const columns = 1100;
    const width = bucketWidth(10_000, bucketsFor(columns));
    const drawn = decimate(xs, ys, { columns, width });
    assert.ok(drawn.x.length <= 2 * columns + 4, drawn.x.length);
    assert.ok(drawn.x.length < xs.length / 4);
    assert.equal(Math.max(...drawn.y), Math.max(...ys));
    assert.equal(Math.min(...drawn.y), Math.min(...ys));
    assert.equal(drawn.x[0], xs[0]);
    assert.equal(drawn.x.at(-1), xs.at(-1));
    for (let i = 1; i < drawn.x.length; i += 1) assert.ok(drawn.x[i] > drawn.x[i - 1]);
  });

  test("draws the same points for a bucket however the window has slid", () => {
    const xs = Array.from({ length: 100 }, (_, i) => i);
    const ys = xs.map((x) => (x * 7919) % 101);
    const all = decimate(xs, ys, { columns: 5, width: 10 });
    const slid = decimate(xs.slice(20), ys.slice(20), { columns: 5, width: 10 });
    const from20 = all.x.findIndex((x) => x >= 20);
    assert.deepEqual(slid.x, all.x.slice(from20));
  });
});

describe("visibleSpan", () => {
  test("is the extent of the traces when autoranged", () => {
    assert.equal(visibleSpan([[10, 20, 30], [5, 25]], null), 25);
    assert.equal(visibleSpan([[], []], null), 0);
  });
  test("is the zoomed range when the viewer zoomed, dates as Plotly writes them", () => {
    assert.equal(visibleSpan([[0, 100_000]], [1000, 3000]), 2000);
    assert.equal(visibleSpan([[0, 100_000]], ["2024-05-01 12:00:00", "2024-05-01 12:00:02.5"]), 2500);
  });
});
