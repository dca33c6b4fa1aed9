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
 * The nulls among the newest `points` points of a trace's y values: the breaks gaps.js put
 * where points are missing. They take places in the trace's arrays without being points.
 * (Buffers drop null values, protocol.js mergeBatch, so a null a trace holds is a break.)
 * A scan of the newest `points` values: 13-26 µs for 10,000 in node, against the milliseconds
 * Plotly takes to draw them.
 * @param {ArrayLike<number|null>|null|undefined} ys
 * @param {number} points
 * @returns {number}
 */
export function breaksAmongNewest(ys, points) {
  let breaks = 0;
  let real = 0;
  for (let i = (ys?.length ?? 0) - 1; i >= 0 && real < points; i -= 1) {
    if (ys[i] === null) breaks += 1;
    else real += 1;
  }
  return breaks;
}

/**
 * How many of `existing` followed by `added` a trace keeps: at most `windowPoints` points,
 * not counting the breaks among them (`existingYs`, when given: the trace's y values), so a
 * panel that lived through a hole still shows its whole window.
 * @param {ArrayLike<number>} existing  x values the trace holds
 * @param {ArrayLike<number>} added     x values about to be appended
 * @param {Limits} limits
 * @param {ArrayLike<number|null>|null} [existingYs]  y values the trace holds
 * @returns {number}
 */
export function keepCount(existing, added, { windowPoints, cutoff }, existingYs = null) {
  const total = existing.length + added.length;
  let keep = total;
  if (windowPoints !== null && windowPoints !== undefined && windowPoints >= 0) {
    keep = Math.min(keep, windowPoints + breaksAmongNewest(existingYs, windowPoints - added.length));
  }
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
 * @param {{traceNames: string[], traceXs: ArrayLike<number>[], traceYs?: ArrayLike<number|null>[],
 *          buffer: Buffer, limits: Limits}} input
 *   traceNames/traceXs/traceYs: the chart's traces now, in order (traceYs, when given, so the
 *   breaks a trace holds do not count as points)
 * @returns {Plan|null}
 */
export function planExtend({ traceNames, traceXs, traceYs = [], buffer, limits }) {
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
    const held = !plan.reset && index < traceXs.length;
    const existing = held ? traceXs[index] : [];
    const keep = keepCount(existing, added.x, limits, held ? traceYs[index] : null);
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
