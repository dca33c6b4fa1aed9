import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  RESYNC_TIMEOUT_MS,
  compareIds,
  decideBatch,
  emptyBuffer,
  mergeBatch,
  parseId,
} from "../../../streams/static/streams/protocol.js";

describe("ids", () => {
  test("parse into (ms, seq) numbers", () => {
    assert.deepEqual(parseId("1700000000123-7"), [1700000000123, 7]);
    assert.equal(parseId("abc"), null);
    assert.equal(parseId("12-"), null);
    assert.equal(parseId(null), null);
  });

  test("compare numerically, not as strings", () => {
    assert.equal(compareIds("9-0", "10-0"), -1); // "9-0" > "10-0" as strings
    assert.equal(compareIds("5-10", "5-9"), 1); // "5-10" < "5-9" as strings
    assert.equal(compareIds("5-3", "5-3"), 0);
    assert.equal(compareIds("1700000000123-0", "1700000000122-99"), 1);
  });

  test("refuse to compare what is not an id", () => {
    assert.throws(() => compareIds("x", "1-0"), TypeError);
  });
});

describe("decideBatch", () => {
  const fresh = { lastId: null, resyncSince: null };
  const holding = { lastId: "100-0", resyncSince: null };

  test("applies anything when nothing is held yet (backfill, prev null)", () => {
    assert.equal(decideBatch(fresh, { id: "100-0", prev: null }, 0), "apply");
    assert.equal(decideBatch(fresh, { id: "100-0", prev: "90-0" }, 0), "apply");
  });

  test("applies the batch that follows on", () => {
    assert.equal(decideBatch(holding, { id: "150-2", prev: "100-0" }, 0), "apply");
  });

  test("drops what was seen already, compared as numbers", () => {
    assert.equal(decideBatch(holding, { id: "100-0", prev: "90-0" }, 0), "drop");
    assert.equal(decideBatch(holding, { id: "99-5", prev: "90-0" }, 0), "drop");
    assert.equal(decideBatch({ lastId: "10-0", resyncSince: null }, { id: "9-0", prev: "8-0" }, 0), "drop");
  });

  test("asks again when a batch went missing", () => {
    assert.equal(decideBatch(holding, { id: "200-0", prev: "150-2" }, 0), "resubscribe");
  });

  test("asks again only once while the answer is on its way", () => {
    const waiting = { lastId: "100-0", resyncSince: 1000 };
    assert.equal(decideBatch(waiting, { id: "250-0", prev: "200-0" }, 1000 + 10), "drop");
    assert.equal(decideBatch(waiting, { id: "150-2", prev: "100-0" }, 1000 + 10), "apply");
    assert.equal(decideBatch(waiting, { id: "300-0", prev: "250-0" }, 1000 + RESYNC_TIMEOUT_MS), "resubscribe");
  });

  test("drops a malformed id", () => {
    assert.equal(decideBatch(holding, { id: "later", prev: "100-0" }, 0), "drop");
  });
});

describe("mergeBatch", () => {
  test("splits columns per series and drops nulls", () => {
    const buffer = emptyBuffer();
    const result = mergeBatch(buffer, {
      stream: "s",
      prev: null,
      id: "3-0",
      t: [1000, 2000, 3000],
      y: { a: [1, null, 3], b: [null, 5, null] },
    });
    assert.deepEqual(result, { points: 3, newestX: 3000 });
    assert.deepEqual(buffer.series.get("a"), { x: [1000, 3000], y: [1, 3] });
    assert.deepEqual(buffer.series.get("b"), { x: [2000], y: [5] });
  });

  test("appends batches in order and keeps series order of first sight", () => {
    const buffer = emptyBuffer();
    mergeBatch(buffer, { stream: "s", prev: null, id: "1-0", t: [1], y: { a: [1] } });
    mergeBatch(buffer, { stream: "s", prev: "1-0", id: "2-0", t: [2], y: { c: [7], a: [2] } });
    assert.deepEqual([...buffer.series.keys()], ["a", "c"]);
    assert.deepEqual(buffer.series.get("a"), { x: [1, 2], y: [1, 2] });
    assert.deepEqual(buffer.series.get("c"), { x: [2], y: [7] });
  });

  test("a new series with only nulls still gets an entry (so its trace is added)", () => {
    const buffer = emptyBuffer();
    mergeBatch(buffer, { stream: "s", prev: null, id: "1-0", t: [1, 2], y: { quiet: [null, null] } });
    assert.deepEqual(buffer.series.get("quiet"), { x: [], y: [] });
  });

  test("maps times through toX (local wall time)", () => {
    const buffer = emptyBuffer();
    const { newestX } = mergeBatch(buffer, { stream: "s", prev: null, id: "1-0", t: [0, 60000], y: { a: [1, 2] } }, (t) => t + 3600000);
    assert.deepEqual(buffer.series.get("a").x, [3600000, 3660000]);
    assert.equal(newestX, 3660000);
  });

  test("a column shorter than t does not invent points", () => {
    const buffer = emptyBuffer();
    mergeBatch(buffer, { stream: "s", prev: null, id: "1-0", t: [1, 2, 3], y: { a: [1] } });
    assert.deepEqual(buffer.series.get("a"), { x: [1], y: [1] });
  });
});

describe("a backfill spread over many points frames", () => {
  test("every frame of the chain is applied in order, then live batches go on from it", () => {
    const state = { lastId: null, resyncSince: null };
    const buffer = emptyBuffer();
    const frames = [];
    let prev = null;
    // 5,000 points of backfill in frames of 1,000, then two live batches.
    for (let frame = 0; frame < 7; frame += 1) {
      const size = frame < 5 ? 1000 : 10;
      const start = frames.reduce((n, each) => n + each.t.length, 0);
      const t = Array.from({ length: size }, (_, i) => 1000 + (start + i) * 50);
      const id = `${t[t.length - 1]}-0`;
      frames.push({ stream: "s", prev, id, t, y: { a: t.map((x) => x / 10) } });
      prev = id;
    }
    for (const batch of frames) {
      assert.equal(decideBatch(state, batch, 0), "apply", batch.id);
      mergeBatch(buffer, batch);
      state.lastId = batch.id;
    }
    const a = buffer.series.get("a");
    assert.equal(a?.x.length, 5020);
    assert.ok(a?.x.every((x, i) => i === 0 || x - a.x[i - 1] === 50));
    // The same chain arriving again (a live batch overlapping the backfill) is dropped.
    assert.equal(decideBatch(state, frames[3], 0), "drop");
  });

  test("a frame missing from the middle of the chain asks again from the last id held", () => {
    const state = { lastId: "2000-0", resyncSince: null };
    assert.equal(decideBatch(state, { prev: "3000-0", id: "4000-0" }, 0), "resubscribe");
  });
});
