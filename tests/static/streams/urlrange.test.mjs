import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { parseTime, readRangeQuery, writeRangeQuery } from "../../../streams/static/streams/urlrange.js";

const NOW = Date.UTC(2025, 10, 22, 12, 0, 0);

describe("parseTime", () => {
  test("takes epoch ms and ISO 8601, no zone meaning UTC", () => {
    assert.equal(parseTime("1763800000000"), 1763800000000);
    assert.equal(parseTime("2025-11-22T08:00:00Z"), Date.UTC(2025, 10, 22, 8));
    assert.equal(parseTime("2025-11-22T08:00:00"), Date.UTC(2025, 10, 22, 8));
    assert.equal(parseTime("2025-11-22T08:00:00+01:00"), Date.UTC(2025, 10, 22, 7));
    assert.equal(parseTime("2025-11-22"), Date.UTC(2025, 10, 22));
  });

  test("refuses anything else", () => {
    for (const bad of [null, "", "yesterday", "12:00", "2025-13-45T99:00"]) assert.equal(parseTime(bad), null, bad);
  });
});

describe("readRangeQuery", () => {
  test("no range is Live", () => {
    assert.deepEqual(readRangeQuery("", NOW), { key: "live", range: null });
    assert.deepEqual(readRangeQuery("?range=live", NOW), { key: "live", range: null });
  });

  test("a preset ends now", () => {
    assert.deepEqual(readRangeQuery("?range=1h", NOW), { key: "1h", range: { start: NOW - 3_600_000, end: NOW } });
  });

  test("start and end are a fixed range; an open or future end stops now", () => {
    const start = NOW - 7_200_000;
    assert.deepEqual(readRangeQuery(`?start=${start}&end=${NOW - 3_600_000}`, NOW), {
      key: "custom",
      range: { start, end: NOW - 3_600_000 },
    });
    assert.deepEqual(readRangeQuery(`?start=${start}`, NOW).range, { start, end: NOW });
    assert.deepEqual(readRangeQuery(`?start=${start}&end=${NOW + 99}`, NOW).range, { start, end: NOW });
  });

  test("a bad range falls back to Live and says why", () => {
    for (const search of ["?range=2y", "?start=soon", `?start=${NOW}&end=${NOW - 1}`, "?end=123", "?start=1&end=x"]) {
      const chosen = readRangeQuery(search, NOW);
      assert.equal(chosen.key, "live", search);
      assert.match(chosen.error ?? "", /Live/, search);
    }
  });
});

describe("writeRangeQuery", () => {
  test("round-trips through readRangeQuery", () => {
    const range = { start: NOW - 5000, end: NOW - 1000 };
    const query = writeRangeQuery("", { key: "custom", range });
    assert.equal(query, `?start=${NOW - 5000}&end=${NOW - 1000}`);
    assert.deepEqual(readRangeQuery(query, NOW), { key: "custom", range });
    assert.equal(writeRangeQuery("", { key: "24h", range }), "?range=24h");
  });

  test("keeps other parameters and drops the range for Live", () => {
    assert.equal(writeRangeQuery("?theme=dark&range=1h", { key: "live" }), "?theme=dark");
    assert.equal(writeRangeQuery("?range=1h", { key: "live" }), "");
    assert.equal(writeRangeQuery("?start=1&end=2&x=y", { key: "15m" }), "?x=y&range=15m");
  });
});
