import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Backoff, backoffDelay } from "../../../streams/static/streams/backoff.js";

const top = () => 0.999999;

describe("backoffDelay", () => {
  test("doubles from 0.5 s up to the 15 s cap", () => {
    const bounds = [0, 1, 2, 3, 4, 5, 6, 10].map((attempt) => backoffDelay(attempt, { random: top }));
    assert.deepEqual(bounds, [499, 999, 1999, 3999, 7999, 14999, 14999, 14999]);
  });

  test("is fully jittered: anywhere from zero to the bound", () => {
    assert.equal(backoffDelay(3, { random: () => 0 }), 0);
    assert.equal(backoffDelay(3, { random: () => 0.5 }), 2000);
    for (let i = 0; i < 200; i += 1) {
      const delay = backoffDelay(4);
      assert.ok(delay >= 0 && delay < 8000, `delay ${delay}`);
    }
  });

  test("stays capped for huge attempt counts", () => {
    assert.equal(backoffDelay(5000, { random: top }), 14999);
  });
});

describe("Backoff", () => {
  test("grows while connections fail", () => {
    const backoff = new Backoff({ random: top });
    assert.deepEqual([backoff.closed(0), backoff.closed(1), backoff.closed(2)], [499, 999, 1999]);
  });

  test("a short-lived connection does not reset the count", () => {
    const backoff = new Backoff({ random: top, stableMs: 10_000 });
    backoff.closed(0);
    backoff.closed(0);
    backoff.opened(1000);
    assert.equal(backoff.closed(2000), 1999);
  });

  test("a connection that stayed open starts over", () => {
    const backoff = new Backoff({ random: top, stableMs: 10_000 });
    backoff.closed(0);
    backoff.closed(0);
    backoff.closed(0);
    backoff.opened(1000);
    assert.equal(backoff.closed(11_000), 499);
  });
});
