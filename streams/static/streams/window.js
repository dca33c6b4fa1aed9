// The rolling window of a chart: how many points each trace keeps, planned once per frame as
// what to append and how many to keep per trace. Pure: no DOM, no Plotly. A dashboard panel
// (panel.js, dashboard.js) applies the plan as one Plotly.extendTraces call with its per-trace
// maxPoints; the stream page (live.js) applies it to the whole window it holds and redraws a
// thinned copy (decimate.js).
//
// Trimming by age is done by trimming the trace arrays, not by relayouting the x range: a
// range only hides old points, which Plotly would still hold and redraw on every frame, and a
// fixed range would also switch off autorange and fight the user's zoom. Counting the expired points costs a scan of just
// the expired ones, from the front.

/** @typedef {import("./protocol.js").Buffer} Buffer */

/**
 * @typedef {{windowPoints: number|null, cutoff: number|null}} Limits
 * windowPoints: most points a trace keeps; cutoff: x before which points have expired.
 */

/**
 * @typedef {{
 *   reset: boolean,
 *   addTraces: string[],
 *   indices: number[],
 *   update: {x: number[][], y: number[][]},
 *   maxPoints: {x: number[], y: number[]},
 * }} Plan
 */

/**
 * The x before which points have expired, or null without an age limit. Measured from the
 * newest point seen rather than the browser clock: a client clock that is minutes off would
 * otherwise empty the chart, and a stalled feed keeps its last window on screen.
 * @param {number|null} newestX
 * @param {number|null|undefined} windowSeconds
 * @returns {number|null}
 */
export function cutoffFor(newestX, windowSeconds) {
  if (!windowSeconds || newestX === null || newestX === undefined) return null;
  return newestX - windowSeconds * 1000;
}

/**
 * How many leading values are older than the cutoff. Points arrive in id order and their
 * times mostly follow, so expire from the front only (a rolling window), scanning only what expires.
 * @param {ArrayLike<number>} xs
 * @param {number|null} cutoff
 * @returns {number}
 */
export function countExpired(xs, cutoff) {
  if (cutoff === null) return 0;
  let count = 0;
  while (count < xs.length && xs[count] < cutoff) count += 1;
  return count;
}

/**
 * How many of `existing` followed by `added` a trace keeps.
 * @param {ArrayLike<number>} existing  x values the trace holds
 * @param {ArrayLike<number>} added     x values about to be appended
 * @param {Limits} limits
 * @returns {number}
 */
export function keepCount(existing, added, { windowPoints, cutoff }) {
  const total = existing.length + added.length;
  let keep = total;
  if (windowPoints !== null && windowPoints !== undefined && windowPoints >= 0) keep = Math.min(keep, windowPoints);
  if (cutoff !== null) {
    let expired = countExpired(existing, cutoff);
    if (expired === existing.length) expired += countExpired(added, cutoff);
    keep = Math.min(keep, total - expired);
  }
  return keep;
}

/**
 * Trim buffered points in place to the limits (while paused or hidden, the buffer must not
 * grow without bound).
 * @param {Buffer} buffer
 * @param {Limits} limits
 */
export function trimBuffer(buffer, limits) {
  for (const series of buffer.series.values()) {
    const drop = series.x.length - keepCount([], series.x, limits);
    if (drop > 0) {
      series.x.splice(0, drop);
      series.y.splice(0, drop);
    }
  }
}

/**
 * The draw for one animation frame: traces to add, then per trace the points to append and
 * how many to keep (`maxPoints`, extendTraces' argument), both the count and the age limit
 * applied. Null when nothing would change.
 * @param {{traceNames: string[], traceXs: ArrayLike<number>[], buffer: Buffer, limits: Limits}} input
 *   traceNames/traceXs: the chart's traces now, in order
 * @returns {Plan|null}
 */
export function planExtend({ traceNames, traceXs, buffer, limits }) {
  /** @type {Plan} */
  const plan = {
    reset: buffer.reset,
    addTraces: [],
    indices: [],
    update: { x: [], y: [] },
    maxPoints: { x: [], y: [] },
  };
  const indexOf = new Map(traceNames.map((name, index) => [name, index]));
  for (const name of buffer.series.keys()) {
    if (!indexOf.has(name)) {
      indexOf.set(name, traceNames.length + plan.addTraces.length);
      plan.addTraces.push(name);
    }
  }
  const empty = { x: [], y: [] };
  for (const [name, index] of indexOf) {
    const added = buffer.series.get(name) ?? empty;
    // After a reset the traces are emptied first, so nothing they hold now counts.
    const existing = plan.reset || index >= traceXs.length ? [] : traceXs[index];
    const keep = keepCount(existing, added.x, limits);
    if (added.x.length === 0 && keep >= existing.length) continue;
    plan.indices.push(index);
    plan.update.x.push(added.x);
    plan.update.y.push(added.y);
    plan.maxPoints.x.push(keep);
    plan.maxPoints.y.push(keep);
  }
  if (!plan.reset && plan.addTraces.length === 0 && plan.indices.length === 0) return null;
  return plan;
}
