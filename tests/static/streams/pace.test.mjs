import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DRAW_SHARE, MAX_REST_MS, RENDER_FACTOR, restAfter } from "../../../streams/static/streams/pace.js";

describe("restAfter", () => {
  test("without rendering, rests as long again as drawing took at half the time", () => {
    assert.equal(restAfter(40, 0.5, 1), 40);
    assert.equal(restAfter(30, 0.75, 1), 10);
    assert.equal(restAfter(0), 0);
  });
  test("counts the rendering that follows a draw", () => {
    // 20 ms of Plotly calls are 34 ms of main thread: 68 ms in all at half the time.
    assert.equal(restAfter(20, 0.5, 1.7), 48);
  });
  test("by default, a draw and its rest take the main thread for DRAW_SHARE of their time", () => {
    const spent = 25;
    const busy = spent * RENDER_FACTOR;
    assert.ok(Math.abs(busy / (spent + restAfter(spent)) - DRAW_SHARE) < 1e-9);
  });
  test("rests at most MAX_REST_MS, however long a first draw of every panel took", () => {
    assert.equal(restAfter(3000), MAX_REST_MS);
  });
  test("never rests less than nothing", () => {
    assert.equal(restAfter(10, 1, 0.5), 0);
  });
});
