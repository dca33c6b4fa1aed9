// Candlesticks from ticks: one candle (open, high, low, close) per interval of time, built in the
// browser from a stream's points, so market data needs no second feed. Pure: no DOM, no Plotly;
// node --test runs this file as is.
//
// Times are whatever x the chart uses (ms; the dashboard passes local wall time, so hourly or
// daily candles start on the viewer's hour and day). A tick may arrive late or out of order
// (a resumed socket, a feed's own backfill): each candle remembers the times of its first and
// last tick, so the open is always the earliest tick's value and the close the latest's.

/**
 * Columnar candles, oldest first; `start` is the start of each candle's interval.
 * @typedef {{
 *   interval: number,
 *   start: number[], open: number[], high: number[], low: number[], close: number[],
 *   firstX: number[], lastX: number[], ticks: number[],
 * }} Candles
 */

/** @param {number} interval ms per candle (> 0) @returns {Candles} */
export function emptyCandles(interval) {
  if (!(interval > 0)) throw new RangeError(`a candle interval must be positive, not ${interval}`);
  return { interval, start: [], open: [], high: [], low: [], close: [], firstX: [], lastX: [], ticks: [] };
}

/**
 * The start of the interval holding x.
 * @param {number} x @param {number} interval
 */
export function candleStart(x, interval) {
  return Math.floor(x / interval) * interval;
}

/**
 * Index of the candle starting at `start`, or where one would be inserted (binary search; the
 * common case, the newest candle, is checked first).
 * @param {number[]} starts @param {number} start
 * @returns {{index: number, found: boolean}}
 */
function locate(starts, start) {
  const last = starts.length - 1;
  if (last < 0 || start > starts[last]) return { index: starts.length, found: false };
  if (start === starts[last]) return { index: last, found: true };
  let low = 0;
  let high = last;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (starts[middle] < start) low = middle + 1;
    else high = middle;
  }
  return { index: low, found: starts[low] === start };
}

/**
 * Merge one tick into its candle, opening a new candle (in time order) when there is none.
 * Ticks whose value or time is not a finite number are skipped.
 * @param {Candles} candles @param {number} x @param {number|null|undefined} y
 * @returns {boolean} whether the tick was used
 */
export function addTick(candles, x, y) {
  if (typeof y !== "number" || !Number.isFinite(y) || !Number.isFinite(x)) return false;
  const start = candleStart(x, candles.interval);
  const { index, found } = locate(candles.start, start);
  if (!found) {
    candles.start.splice(index, 0, start);
    candles.open.splice(index, 0, y);
    candles.high.splice(index, 0, y);
    candles.low.splice(index, 0, y);
    candles.close.splice(index, 0, y);
    candles.firstX.splice(index, 0, x);
    candles.lastX.splice(index, 0, x);
    candles.ticks.splice(index, 0, 1);
    return true;
  }
  if (y > candles.high[index]) candles.high[index] = y;
  if (y < candles.low[index]) candles.low[index] = y;
  if (x < candles.firstX[index]) {
    candles.firstX[index] = x;
    candles.open[index] = y;
  }
  // At equal times the later arrival wins the close: ids order points that share a time.
  if (x >= candles.lastX[index]) {
    candles.lastX[index] = x;
    candles.close[index] = y;
  }
  candles.ticks[index] += 1;
  return true;
}

/**
 * Merge ticks given as columns (a batch's times and one series' values; null: no value).
 * @param {Candles} candles @param {ArrayLike<number>} xs @param {ArrayLike<number|null>} ys
 * @returns {number} ticks used
 */
export function addTicks(candles, xs, ys) {
  let used = 0;
  const count = Math.min(xs.length, ys.length);
  for (let i = 0; i < count; i += 1) if (addTick(candles, xs[i], ys[i])) used += 1;
  return used;
}

/**
 * Drop the candles that ended before the cutoff (a candle still partly inside the window stays),
 * then all but the newest `maxCandles`.
 * @param {Candles} candles
 * @param {{cutoff: number|null, maxCandles: number|null}} limits
 * @returns {number} candles dropped
 */
export function trimCandles(candles, { cutoff, maxCandles }) {
  let drop = 0;
  if (cutoff !== null && cutoff !== undefined) {
    while (drop < candles.start.length && candles.start[drop] + candles.interval <= cutoff) drop += 1;
  }
  if (maxCandles !== null && maxCandles !== undefined && maxCandles >= 0) {
    drop = Math.max(drop, candles.start.length - maxCandles);
  }
  if (drop > 0) {
    for (const key of /** @type {const} */ (["start", "open", "high", "low", "close", "firstX", "lastX", "ticks"])) {
      candles[key].splice(0, drop);
    }
  }
  return drop;
}

/**
 * The candles as a Plotly candlestick trace's columns (copies: Plotly keeps what it is given).
 * @param {Candles} candles
 */
export function candleColumns(candles) {
  return {
    x: candles.start.slice(),
    open: candles.open.slice(),
    high: candles.high.slice(),
    low: candles.low.slice(),
    close: candles.close.slice(),
  };
}
