// Where a line must break: a time step far beyond the steps around it means points are missing
// there (a server restart, a feed that went quiet, a reconnect after a `gap`), and a straight
// segment across it would draw values that never were. Plotly breaks a line at a null
// (connectgaps is off), so a null is put in the middle of each such step. Pure: no DOM, no Plotly.
//
// "The steps around it", not the series' median step: a stream that went from 1 point a second
// to 20 would otherwise have its whole slower stretch broken into dots.

/** A step this many times the steps around it is a hole in the data, not jitter. */
export const GAP_FACTOR = 5;
/** Steps looked at on each side of a step. */
const NEIGHBOURS = 4;

/**
 * The (upper) median of the positive steps next to step i (up to NEIGHBOURS on each side), or null
 * when it has none. Step i is xs[i] - xs[i - 1].
 * @param {ArrayLike<number>} xs @param {number} i
 */
function localStep(xs, i) {
  const steps = [];
  for (let j = i - 1, taken = 0; j >= 1 && taken < NEIGHBOURS; j -= 1) {
    const step = xs[j] - xs[j - 1];
    if (step > 0) {
      steps.push(step);
      taken += 1;
    }
  }
  for (let j = i + 1, taken = 0; j < xs.length && taken < NEIGHBOURS; j += 1) {
    const step = xs[j] - xs[j - 1];
    if (step > 0) {
      steps.push(step);
      taken += 1;
    }
  }
  if (steps.length === 0) return null;
  steps.sort((a, b) => a - b);
  // The upper median: where a slow stretch meets a fast one, the step between them is judged
  // by the slower side (not a hole), while one other hole nearby still cannot hide a hole.
  return steps[Math.floor(steps.length / 2)];
}

/**
 * Whether the step before xs[i] is a hole: longer than `floor` and than GAP_FACTOR times the
 * median of the steps around it.
 * @param {ArrayLike<number>} xs ascending @param {number} i @param {{factor?: number, floor?: number}} [options]
 */
export function isGap(xs, i, { factor = GAP_FACTOR, floor = 0 } = {}) {
  const step = xs[i] - xs[i - 1];
  if (!(step > floor)) return false;
  // Cheap first: not longer than `factor` of a next-door step, so not of their median either.
  const before = i >= 2 ? xs[i - 1] - xs[i - 2] : 0;
  const after = i + 1 < xs.length ? xs[i + 1] - xs[i] : 0;
  if ((before > 0 && step <= factor * before) && (after > 0 && step <= factor * after)) return false;
  const local = localStep(xs, i);
  return local !== null && step > factor * local;
}

/**
 * The points with a null in the middle of every hole (isGap). Copies; `breaks` counts the nulls.
 * @param {ArrayLike<number>} xs ascending
 * @param {ArrayLike<number|null>} ys
 * @param {{factor?: number, floor?: number, held?: ArrayLike<number>}} [options]
 *   floor: no step this short is a hole (the width of a decimation bucket, or of a thinned
 *   range's rows); held: x values a trace already holds before xs[0] (an append): their steps
 *   count as neighbours, and the step from the last of them to xs[0] may be a hole too
 * @returns {{x: number[], y: (number|null)[], breaks: number}}
 */
export function breakGaps(xs, ys, { factor = GAP_FACTOR, floor = 0, held = [] } = {}) {
  const count = Math.min(xs.length, ys.length);
  const tail = Array.from(held).slice(-NEIGHBOURS - 1);
  const all = tail.length > 0 ? [...tail, ...Array.from(xs).slice(0, count)] : xs;
  const offset = tail.length;
  const x = [];
  const y = [];
  let breaks = 0;
  for (let i = 0; i < count; i += 1) {
    const at = i + offset;
    if (at >= 1 && isGap(all, at, { factor, floor })) {
      x.push(all[at - 1] + (all[at] - all[at - 1]) / 2);
      y.push(null);
      breaks += 1;
    }
    x.push(xs[i]);
    y.push(ys[i]);
  }
  return { x, y, breaks };
}

/**
 * Whether a Plotly trace is drawn as a line (or an area), where a missing stretch shows.
 * Markers and bars show a hole by themselves.
 * @param {{type?: string, mode?: string}} trace
 */
export function drawsLine(trace) {
  const type = trace?.type ?? "scatter";
  if (type !== "scatter") return false;
  return typeof trace.mode !== "string" || trace.mode.includes("lines");
}
