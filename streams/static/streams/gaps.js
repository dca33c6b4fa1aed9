// Where a line must break: a time step far beyond the series' usual interval means points are
// missing there (a server restart, a feed that went quiet, a reconnect after a `gap`), and a
// straight segment across it would draw values that never were. Plotly breaks a line at a null
// (connectgaps is off), so a null is put in the middle of each such step. Pure: no DOM, no Plotly.

/** A step this many times the usual one is a hole in the data, not jitter. */
export const GAP_FACTOR = 5;
/** Steps sampled to find the usual one: enough for a steady median, cheap on 100,000 points. */
const SAMPLES = 257;

/**
 * The usual time step of a series: the median of (up to 257, evenly spread) steps between
 * consecutive points, ignoring repeats of the same x. Null with fewer than two distinct xs.
 * @param {ArrayLike<number>} xs ascending
 * @returns {number|null}
 */
export function typicalStep(xs) {
  const count = xs.length;
  if (count < 2) return null;
  const stride = Math.max(1, Math.floor((count - 1) / SAMPLES));
  const steps = [];
  for (let i = 1; i < count; i += stride) {
    const step = xs[i] - xs[i - 1];
    if (step > 0) steps.push(step);
  }
  if (steps.length === 0) return null;
  steps.sort((a, b) => a - b);
  return steps[Math.floor(steps.length / 2)];
}

/**
 * The step beyond which a line breaks: GAP_FACTOR usual steps, and never less than `floor`
 * (the width of a decimation bucket: thinned points are that far apart without a hole).
 * Infinity when the usual step is unknown (nothing breaks).
 * @param {ArrayLike<number>} xs ascending
 * @param {{factor?: number, floor?: number}} [options]
 */
export function gapThreshold(xs, { factor = GAP_FACTOR, floor = 0 } = {}) {
  const step = typicalStep(xs);
  if (step === null) return Number.POSITIVE_INFINITY;
  return Math.max(step * factor, floor);
}

/**
 * The points with a null between every two whose step exceeds `threshold` (x in the middle of
 * the step, y null). Returns the inputs' copies; `breaks` counts the nulls put in.
 * @param {ArrayLike<number>} xs ascending
 * @param {ArrayLike<number|null>} ys
 * @param {number} threshold
 * @param {{before?: number|null}} [options]  before: the x of a point drawn before xs[0] (an
 *   append to a trace): a break goes first when the step from it is too long
 * @returns {{x: number[], y: (number|null)[], breaks: number}}
 */
export function breakGaps(xs, ys, threshold, { before = null } = {}) {
  const count = Math.min(xs.length, ys.length);
  const x = [];
  const y = [];
  let breaks = 0;
  let last = before;
  for (let i = 0; i < count; i += 1) {
    if (last !== null && xs[i] - last > threshold) {
      x.push(last + (xs[i] - last) / 2);
      y.push(null);
      breaks += 1;
    }
    x.push(xs[i]);
    y.push(ys[i]);
    last = xs[i];
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
