import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  addTick,
  addTicks,
  candleColumns,
  candleStart,
  emptyCandles,
  trimCandles,
} from "../../../streams/static/streams/candles.js";

/** The candles as rows, easy to compare: [start, open, high, low, close]. */
function rows(candles) {
  return candles.start.map((start, i) => [
    start,
    candles.open[i],
    candles.high[i],
    candles.low[i],
    candles.close[i],
  ]);
}

describe("candleStart", () => {
  test("is the start of the interval holding the time", () => {
    assert.equal(candleStart(61_500, 60_000), 60_000);
    assert.equal(candleStart(60_000, 60_000), 60_000);
    assert.equal(candleStart(59_999, 60_000), 0);
  });
});

describe("emptyCandles", () => {
  test("refuses an interval that is not positive", () => {
    assert.throws(() => emptyCandles(0), RangeError);
    assert.throws(() => emptyCandles(Number.NaN), RangeError);
  });
});

describe("addTicks", () => {
  test("ticks of one interval make one candle: first, highest, lowest, last", () => {
    const candles = emptyCandles(1000);
    addTicks(candles, [0, 100, 200, 300], [10, 14, 8, 11]);
    assert.deepEqual(rows(candles), [[0, 10, 14, 8, 11]]);
  });

  test("a tick in a later interval opens a new candle", () => {
    const candles = emptyCandles(1000);
    addTicks(candles, [0, 500, 1000, 2500], [10, 12, 13, 9]);
    assert.deepEqual(rows(candles), [
      [0, 10, 12, 10, 12],
      [1000, 13, 13, 13, 13],
      [2000, 9, 9, 9, 9],
    ]);
  });

  test("ticks of the next batch merge into the candle still open", () => {
    const candles = emptyCandles(1000);
    addTicks(candles, [0, 100], [10, 11]);
    addTicks(candles, [200, 300], [15, 7]);
    assert.deepEqual(rows(candles), [[0, 10, 15, 7, 7]]);
    assert.deepEqual(candles.ticks, [4]);
  });

  test("a late tick keeps open and close by time, not by arrival", () => {
    const candles = emptyCandles(1000);
    addTicks(candles, [400, 600], [10, 12]);
    addTick(candles, 100, 5); // earlier than the first: the new open
    addTick(candles, 500, 20); // between: only the high moves
    assert.deepEqual(rows(candles), [[0, 5, 20, 5, 12]]);
  });

  test("a late tick for an older interval goes into (or before) that candle, in time order", () => {
    const candles = emptyCandles(1000);
    addTicks(candles, [1000, 3000], [10, 30]);
    addTick(candles, 2500, 25);
    addTick(candles, 500, 5);
    addTick(candles, 1500, 40);
    assert.deepEqual(candles.start, [0, 1000, 2000, 3000]);
    assert.deepEqual(rows(candles)[1], [1000, 10, 40, 10, 40]);
  });

  test("null, missing and non-finite values are no ticks", () => {
    const candles = emptyCandles(1000);
    const used = addTicks(candles, [0, 100, 200, 300], [null, Number.NaN, 3, undefined]);
    assert.equal(used, 1);
    assert.deepEqual(rows(candles), [[0, 3, 3, 3, 3]]);
  });

  test("at equal times the later arrival is the close", () => {
    const candles = emptyCandles(1000);
    addTicks(candles, [100, 100], [1, 2]);
    assert.deepEqual(rows(candles), [[0, 1, 2, 1, 2]]);
  });
});

describe("trimCandles", () => {
  function filled() {
    const candles = emptyCandles(1000);
    addTicks(candles, [0, 1000, 2000, 3000, 4000], [1, 2, 3, 4, 5]);
    return candles;
  }

  test("drops candles that ended before the cutoff and keeps one partly inside", () => {
    const candles = filled();
    assert.equal(trimCandles(candles, { cutoff: 2500, maxCandles: null }), 2);
    assert.deepEqual(candles.start, [2000, 3000, 4000]);
    assert.deepEqual(candles.close, [3, 4, 5]);
  });

  test("keeps at most maxCandles, the newest", () => {
    const candles = filled();
    trimCandles(candles, { cutoff: null, maxCandles: 2 });
    assert.deepEqual(candles.start, [3000, 4000]);
    assert.equal(candles.ticks.length, 2);
  });

  test("without limits keeps everything", () => {
    const candles = filled();
    assert.equal(trimCandles(candles, { cutoff: null, maxCandles: null }), 0);
    assert.equal(candles.start.length, 5);
  });
});

describe("candleColumns", () => {
  test("are copies a later tick does not change", () => {
    const candles = emptyCandles(1000);
    addTick(candles, 0, 1);
    const columns = candleColumns(candles);
    addTick(candles, 100, 9);
    assert.deepEqual(columns, { x: [0], open: [1], high: [1], low: [1], close: [1] });
  });
});
