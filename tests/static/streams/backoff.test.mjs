import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  Backoff,
  backoffDelay,
  CROWDED_MIN_MS,
  delayAfterClose,
  TOO_MANY_SOCKETS,
} from "../../../streams/static/streams/backoff.js";

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

describe("delayAfterClose", () => {
  test("keeps the ordinary backoff for every other close code", () => {
    for (const code of [1000, 1001, 1006, 1011, 4008]) assert.equal(delayAfterClose(code, 123), 123);
  });

  test("waits 30 to 60 s after 4029 (too many sockets), jittered", () => {
    assert.equal(TOO_MANY_SOCKETS, 4029);
    assert.equal(delayAfterClose(4029, 10, () => 0), CROWDED_MIN_MS);
    assert.equal(delayAfterClose(4029, 10, top), 2 * CROWDED_MIN_MS - 1);
    for (let i = 0; i < 200; i += 1) {
      const delay = delayAfterClose(4029, 0);
      assert.ok(delay >= 30000 && delay < 60000, `delay ${delay}`);
    }
  });
});
