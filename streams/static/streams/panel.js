// A dashboard panel's pure side: naming and picking series, the draw plan of a panel whose
// traces come from several streams (each stream keeping its own window), and the last-value
// state of a gauge. No DOM, no Plotly: node --test runs this file as is.

import { keepCount, planExtend } from "./window.js";

/** @typedef {import("./protocol.js").Batch} Batch */
/** @typedef {import("./protocol.js").Buffer} Buffer */
/** @typedef {import("./window.js").Limits} Limits */

/**
 * A trace's name: the series, after its stream's label when the panel shows several streams
 * (streams/web/figures.py names the traces it draws up front the same way).
 * @param {string} label @param {string} series
 */
export function traceName(label, series) {
  return label ? `${label} · ${series}` : series;
}

/**
 * The batch with only one series (null or undefined: all of them).
 * @param {Batch} batch @param {string|null|undefined} series
 * @returns {Batch}
 */
export function pickSeries(batch, series) {
  if (series === null || series === undefined) return batch;
  const y = batch.y ?? {};
  return { ...batch, y: Object.hasOwn(y, series) ? { [series]: y[series] } : {} };
}

/**
 * The series a single-value panel follows: the configured one, else the first the data brings.
 * @param {string|null} current @param {Batch} batch
 * @returns {string|null}
 */
export function chooseSeries(current, batch) {
  if (current !== null) return current;
  const names = Object.keys(batch.y ?? {});
  return names.length > 0 ? names[0] : null;
}

/**
 * @typedef {{stream: string, series: string}} TraceOwner
 * @typedef {{
 *   clear: number[],
 *   addTraces: TraceOwner[],
 *   indices: number[],
 *   update: {x: number[][], y: number[][]},
 *   maxPoints: {x: number[], y: number[]},
 * }} PanelPlan
 */

/**
 * One frame's draw of a panel with traces from several streams: for each stream with something
 * pending, window.js's planExtend over that stream's traces alone (its own window limits), put
 * together into one set of Plotly calls: restyle the `clear` traces empty (their stream had a
 * gap), add `addTraces` at the end, then one extendTraces.
 * @param {{
 *   traces: TraceOwner[],
 *   traceXs: ArrayLike<number>[],
 *   traceYs?: ArrayLike<number|null>[],
 *   pending: Map<string, {buffer: Buffer, limits: Limits}>,
 * }} input  traces/traceXs/traceYs: the panel's traces now, in order
 * @returns {PanelPlan|null} null when nothing would change
 */
export function planPanel({ traces, traceXs, traceYs = [], pending }) {
  /** @type {PanelPlan} */
  const plan = { clear: [], addTraces: [], indices: [], update: { x: [], y: [] }, maxPoints: { x: [], y: [] } };
  for (const [stream, { buffer, limits }] of pending) {
    const own = [];
    traces.forEach((trace, index) => {
      if (trace.stream === stream) own.push(index);
    });
    const part = planExtend({
      traceNames: own.map((index) => traces[index].series),
      traceXs: own.map((index) => traceXs[index] ?? []),
      traceYs: own.map((index) => traceYs[index] ?? []),
      buffer,
      limits,
    });
    if (part === null) continue;
    if (part.reset) plan.clear.push(...own);
    const firstNew = traces.length + plan.addTraces.length;
    for (const series of part.addTraces) plan.addTraces.push({ stream, series });
    part.indices.forEach((local, k) => {
      plan.indices.push(local < own.length ? own[local] : firstNew + (local - own.length));
      plan.update.x.push(part.update.x[k]);
      plan.update.y.push(part.update.y[k]);
      plan.maxPoints.x.push(part.maxPoints.x[k]);
      plan.maxPoints.y.push(part.maxPoints.y[k]);
    });
  }
  if (plan.clear.length === 0 && plan.addTraces.length === 0 && plan.indices.length === 0) return null;
  return plan;
}

/**
 * A gauge's values within its stream's window: `value` is the newest (last received), and
 * `reference` the oldest still in the window, so a big number can show its change over the window.
 */
export class LastValue {
  constructor() {
    /** @type {number[]} */
    this.x = [];
    /** @type {number[]} */
    this.y = [];
  }

  /**
   * @param {ArrayLike<number>} xs @param {ArrayLike<number|null>} ys
   * @returns {number} values taken (nulls and non-numbers skipped)
   */
  add(xs, ys) {
    let taken = 0;
    const count = Math.min(xs.length, ys.length);
    for (let i = 0; i < count; i += 1) {
      const y = ys[i];
      if (typeof y !== "number" || !Number.isFinite(y)) continue;
      this.x.push(xs[i]);
      this.y.push(y);
      taken += 1;
    }
    return taken;
  }

  /** @param {Limits} limits */
  trim(limits) {
    const drop = this.x.length - keepCount([], this.x, limits);
    if (drop > 0) {
      this.x.splice(0, drop);
      this.y.splice(0, drop);
    }
  }

  get value() {
    return this.y.length > 0 ? this.y[this.y.length - 1] : null;
  }

  get reference() {
    return this.y.length > 0 ? this.y[0] : null;
  }

  clear() {
    this.x = [];
    this.y = [];
  }
}

// Drawing many panels: one Plotly draw cannot be split, and a panel of thousands of markers or
// bars costs tens of milliseconds (measured: ~100 ms for 3,000 markers in software rendering).
// So each frame draws the most overdue panels within a budget of expected draw time, then
// leaves the main thread alone for a while (pace.js): drawing keeps it under half busy, scrolling
// and clicks stay responsive. "Overdue" is time waited per ms of drawing, so every panel gets
// about the same drawing time: a cheap line chart redraws many times a second, a costly panel
// of markers less often, and no panel starves.

/** Expected draw time per frame, ms. */
export const DRAW_BUDGET_MS = 12;
/**
 * A panel that waited this long (ms) goes first, whatever its cost: an expected cost inflated by
 * one slow draw (a garbage collection, a busy machine) must not leave a panel still for seconds.
 */
export const MAX_WAIT_MS = 1000;
/** Panels are never counted cheaper than this (ms): a never-measured panel is not infinitely overdue. */
const MIN_COST_MS = 1;

/**
 * The panels to draw this frame: most overdue first (time waited / expected draw time; a panel
 * that waited MAX_WAIT_MS before all others, longest waiting first), while their expected draw
 * times fit the budget; always at least one, so a costly panel still gets its turn.
 * @template T
 * @param {{id: T, since: number, cost: number}[]} waiting  since: when it got something new;
 *   cost: expected ms (0 when unknown)
 * @param {number} now
 * @param {number} [budgetMs]
 * @returns {T[]}
 */
export function pickDraws(waiting, now, budgetMs = DRAW_BUDGET_MS) {
  const overdue = (panel) =>
    now - panel.since >= MAX_WAIT_MS
      ? Number.POSITIVE_INFINITY
      : (now - panel.since) / Math.max(panel.cost, MIN_COST_MS);
  const ordered = [...waiting].sort((a, b) => overdue(b) - overdue(a) || a.since - b.since);
  const picked = [];
  let spent = 0;
  for (const panel of ordered) {
    if (picked.length > 0 && spent + panel.cost > budgetMs) continue;
    picked.push(panel.id);
    spent += panel.cost;
  }
  return picked;
}

/**
 * A panel's expected draw time after one more measurement (a moving average: one slow draw,
 * a garbage collection, does not starve a panel).
 * @param {number} previous 0 when never measured @param {number} measured @param {number} [weight]
 */
export function nextCost(previous, measured, weight = 0.3) {
  return previous === 0 ? measured : previous + weight * (measured - previous);
}
