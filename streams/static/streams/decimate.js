// What a line chart draws of a window that holds more points than its plot has pixels. Pure:
// no DOM, no Plotly.
//
// An SVG line of 10,000 points costs Plotly and the browser about four times what one of 2,500
// does (calculating, building the path, painting it), yet a plot about 1,100 pixels wide cannot
// show more than a few points per pixel column. So the chart keeps every point of its window
// and draws, per bucket of about two pixel columns, the bucket's first, lowest, highest and last
// point, in time order (M4 aggregation: the drawn line covers the same pixels as the full one,
// every spike and dip included). Buckets are aligned on whole multiples of a "nice" width in x,
// not on the window's start, so a rolling window does not make the line shimmer: a bucket keeps
// its points as the window slides, only whole buckets come and go.

import { axisX } from "./range.js";

/** Pixel columns per bucket. Each bucket draws at most 4 points: at most 2 a pixel column. */
export const COLUMNS_PER_BUCKET = 2;

const NICE = [1, 2, 2.5, 5, 10];

/**
 * The smallest "nice" width (1, 2, 2.5 or 5 times a power of ten) of at least span / buckets:
 * steady while the span drifts a little, so buckets stay put from one draw to the next.
 * @param {number} span  x extent to show (ms for a date axis)
 * @param {number} buckets  how many buckets it may take at most
 * @returns {number} 0 when there is nothing to split
 */
export function bucketWidth(span, buckets) {
  if (!(span > 0) || !(buckets >= 1)) return 0;
  const raw = span / Math.floor(buckets);
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const step of NICE) {
    const width = step * power;
    if (width >= raw * (1 - 1e-12)) return width;
  }
  return 10 * power;
}

/**
 * The points to draw of a series: everything when it has no more than `columns` * 2 points (or
 * width is 0), else each bucket's first, lowest, highest and last point, in x order, no point
 * twice. xs must be in ascending order (a rolling window is).
 * @param {ArrayLike<number>} xs
 * @param {ArrayLike<number>} ys
 * @param {{columns: number, width: number}} shape  columns: the plot's width in pixels;
 *   width: the bucket width in x (bucketWidth)
 * @returns {{x: number[], y: number[]}}
 */
export function decimate(xs, ys, { columns, width }) {
  const count = Math.min(xs.length, ys.length);
  if (count <= columns * 2 || !(width > 0)) {
    return { x: Array.from(xs).slice(0, count), y: Array.from(ys).slice(0, count) };
  }
  const x = [];
  const y = [];
  let start = 0;
  while (start < count) {
    const bucket = Math.floor(xs[start] / width);
    let end = start + 1;
    let low = start;
    let high = start;
    while (end < count && Math.floor(xs[end] / width) === bucket) {
      if (ys[end] < ys[low]) low = end;
      if (ys[end] > ys[high]) high = end;
      end += 1;
    }
    const picked = [start, Math.min(low, high), Math.max(low, high), end - 1];
    let last = -1;
    for (const index of picked) {
      if (index === last) continue;
      x.push(xs[index]);
      y.push(ys[index]);
      last = index;
    }
    start = end;
  }
  return { x, y };
}

/**
 * How many buckets a plot of `columns` pixels takes.
 * @param {number} columns
 */
export function bucketsFor(columns) {
  return Math.max(1, Math.floor(columns / COLUMNS_PER_BUCKET));
}

/**
 * The x extent the plot shows: the zoomed range when the viewer zoomed (the drawn points must be
 * fine enough for it), else from the oldest first point to the newest last one.
 * @param {ArrayLike<number>[]} traceXs  each trace's x values, ascending
 * @param {unknown[]|null} zoomedRange  the x axis range while not autoranged (numbers or Plotly dates)
 * @returns {number} 0 when there is nothing to show
 */
export function visibleSpan(traceXs, zoomedRange) {
  if (Array.isArray(zoomedRange) && zoomedRange.length === 2) {
    const [low, high] = zoomedRange.map(axisX);
    if (low !== null && high !== null && low !== high) return Math.abs(high - low);
  }
  let oldest = Number.POSITIVE_INFINITY;
  let newest = Number.NEGATIVE_INFINITY;
  for (const xs of traceXs) {
    if (xs.length === 0) continue;
    oldest = Math.min(oldest, xs[0]);
    newest = Math.max(newest, xs[xs.length - 1]);
  }
  return newest > oldest ? newest - oldest : 0;
}
