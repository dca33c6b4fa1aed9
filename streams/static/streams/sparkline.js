// The small line on each card of the stream list: the newest points of a stream's first series
// as an SVG path, scaled to the box, broken where points are missing (gaps.js). Pure: no DOM.

import { isGap } from "./gaps.js";

/** Points a sparkline keeps: about two per pixel of its width. */
export const SPARK_POINTS = 240;

/**
 * Keep the newest `max` points (in place).
 * @param {{x: number[], y: number[]}} line @param {number} [max]
 */
export function trimSpark(line, max = SPARK_POINTS) {
  const drop = line.x.length - max;
  if (drop > 0) {
    line.x.splice(0, drop);
    line.y.splice(0, drop);
  }
}

/**
 * The SVG path ("M…L…") of a line in a width × height box (y grows downwards), a new "M"
 * after each hole. Empty for no point; a single point is a short flat stroke.
 * @param {ArrayLike<number>} xs ascending @param {ArrayLike<number>} ys
 * @param {{width: number, height: number, pad?: number}} box
 */
export function sparkPath(xs, ys, { width, height, pad = 1 }) {
  const count = Math.min(xs.length, ys.length);
  if (count === 0) return "";
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i += 1) {
    if (ys[i] < low) low = ys[i];
    if (ys[i] > high) high = ys[i];
  }
  const x0 = xs[0];
  const spanX = xs[count - 1] - x0;
  const spanY = high - low;
  const round = (/** @type {number} */ n) => Math.round(n * 10) / 10;
  const px = (/** @type {number} */ x) => round(spanX > 0 ? ((x - x0) / spanX) * width : width);
  const py = (/** @type {number} */ y) =>
    round(spanY > 0 ? pad + (1 - (y - low) / spanY) * (height - 2 * pad) : height / 2);
  if (count === 1) return `M${round(width - 2)},${py(ys[0])}L${width},${py(ys[0])}`;
  let path = `M${px(xs[0])},${py(ys[0])}`;
  for (let i = 1; i < count; i += 1) {
    path += `${isGap(xs, i) ? "M" : "L"}${px(xs[i])},${py(ys[i])}`;
  }
  return path;
}
