import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ago, countAfter, describeHealth } from "../../../streams/static/streams/health.js";

describe("ago", () => {
  test("reads like a person would say it", () => {
    assert.equal(ago(0.5), "just now");
    assert.equal(ago(42), "42 s ago");
    // Whole seconds gone by: redrawn every second, it counts 2, 3, 4 without skipping one.
    assert.equal(ago(2.9), "2 s ago");
    assert.equal(ago(3.1), "3 s ago");
    assert.equal(ago(300), "5 min ago");
    assert.equal(ago(3 * 3600), "3 h ago");
    assert.equal(ago(3 * 86400), "3 d ago");
  });

  test("a clock behind the server's is not 'in the future'", () => {
    assert.equal(ago(-5), "just now");
    assert.equal(ago(Number.NaN), "just now");
  });
});

describe("describeHealth", () => {
  test("shows counters, the last point's age and the last error with its age", () => {
    const health = describeHealth(
      { state: "live", points: 12345, bad_payloads: 2, reconnects: 1, last_point_at: 990, error: "HTTP 503", error_at: 700 },
      1000,
    );
    assert.deepEqual(health, {
      state: "live",
      facts: { last_point: "10 s ago", points: "12,345", bad_payloads: "2", reconnects: "1" },
      error: "HTTP 503 (5 min ago)",
    });
  });

  test("a stream nobody reports on is unknown, with nothing made up", () => {
    assert.deepEqual(describeHealth(null, 1000), {
      state: "unknown",
      facts: { last_point: "none yet", points: "—", bad_payloads: "—", reconnects: "—" },
      error: "",
    });
  });
});

describe("describeHealth with what the browser received", () => {
  test("the age runs from the newest point received, not the last status frame", () => {
    const status = { state: "live", points: 50, last_point_at: 995 };
    const health = describeHealth(status, 1000, { lastPointAt: 999.5, pointsAfter: 25 });
    assert.equal(health.facts.last_point, "just now");
    assert.equal(health.facts.points, "75");
  });

  test("a point stamped ahead of this clock is not in the future", () => {
    const health = describeHealth({ state: "live", last_point_at: 900 }, 1000, { lastPointAt: 1500, pointsAfter: 0 });
    assert.equal(health.facts.last_point, "just now");
  });

  test("an older point received (a backfill) does not make the feed look stale", () => {
    const health = describeHealth({ state: "live", last_point_at: 990 }, 1000, { lastPointAt: 10, pointsAfter: 0 });
    assert.equal(health.facts.last_point, "10 s ago");
  });
});

describe("countAfter", () => {
  test("counts only the times after the status's last point", () => {
    assert.equal(countAfter([1000, 2000, 3000], 2000), 1);
    assert.equal(countAfter([1000, 2000], null), 2);
  });
});
