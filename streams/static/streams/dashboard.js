// The dashboard page's entry: many panels, one socket. live.js's Connection keeps one entry per
// stream (so a stream is subscribed once however many panels show it); here that entry is a
// StreamFeed, which hands each batch to every panel showing the stream. Each panel is its own
// Plotly chart with its own window; a panel of several streams has traces from each.
// The decisions live in pure modules: panel.js (multi-stream plans, gauge values, which panels
// to draw in a frame) and candles.js (candles from ticks).
//
// Many panels stay smooth: every chart is SVG (no WebGL context to run out of), panels out of
// view are not drawn (they keep their window and draw when scrolled to), and a frame draws only
// as many panels as fit a time budget, the longest waiting first (DrawScheduler).
//
// Test hooks, besides live.js's: window.livecharts.panels[<panel id>] = {chartType, streams,
// draws, lightDraws, lastDraw ("light" or "full"), points, value, candles, cost}, window.livecharts.streams (the slugs this
// page subscribes to), and window.livecharts.lightDraws (set it to false and every draw is a
// full Plotly draw: bench/browser.py measures the page both ways).

import { fitValueAxis, steadyAxes, valueRange } from "./axes.js";
import { addTicks, candleColumns, emptyCandles, trimCandles } from "./candles.js";
import { DashboardRange } from "./dashrange.js";
import { emptyState } from "./emptystate.js";
import { clipFillsToLines } from "./fillclip.js";
import { fillsArea } from "./fillspans.js";
import { withClippedDownload } from "./pngexport.js";
import { breakGaps, drawsLine } from "./gaps.js";
import { appendKeep, drawsLight, fitsRange, FULL_EVERY_MS, lineRange, slideFor } from "./lightdraw.js";
import { LightLines } from "./lightlines.js";
import { Connection, hooks, localX, Page, readJson } from "./live.js";
import { EmptyOverlay } from "./overlay.js";
import {
  chooseSeries,
  LastValue,
  nextCost,
  pickDraws,
  pickSeries,
  planPanel,
  traceName,
} from "./panel.js";
import { restAfter } from "./pace.js";
import { emptyBuffer, mergeBatch } from "./protocol.js";
import { toLocalX } from "./range.js";
import { cutoffFor, trimBuffer } from "./window.js";

/* global Plotly */

/** @typedef {import("./protocol.js").Batch} Batch */

/**
 * @typedef {{slug: string, label: string, window_points: number|null, window_seconds: number|null}} StreamConfig
 * @typedef {{
 *   id: number, element: string, chart_type: string, series: string|null,
 *   streams: StreamConfig[], traces: [string, string][], new_trace: any, figure: any,
 *   candle_ms: number, max_candles: number,
 * }} PanelConfig
 */

/** Draws dirty, visible panels a few at a time (panel.js: pickDraws; pace.js: restAfter). */
class DrawScheduler {
  constructor() {
    /** @type {BasePanel[]} */
    this.panels = [];
    this.requested = false;
    /** performance.now() before which drawing waits */
    this.restUntil = 0;
    /** @type {{paused: boolean}|null} the connection: nothing is drawn while it is paused */
    this.connection = null;
  }

  request() {
    if (this.requested || this.connection?.paused) return;
    this.requested = true;
    const wait = this.restUntil - performance.now();
    const frame = () => window.requestAnimationFrame(() => this.frame());
    if (wait > 0) window.setTimeout(frame, wait);
    else frame();
  }

  frame() {
    this.requested = false;
    if (this.connection?.paused) return;
    // A panel showing a range is drawn by dashrange.js, not from live points.
    const due = this.panels.filter((panel) => panel.dirty && panel.visible && !panel.ranged);
    if (due.length === 0) return;
    const start = performance.now();
    const picked = new Set(
      pickDraws(
        due.map((panel) => ({ id: panel, since: panel.dirtySince ?? start, cost: panel.expectedCost(start) })),
        start,
      ),
    );
    for (const panel of picked) {
      const before = performance.now();
      panel.draw();
      panel.measured(performance.now() - before);
    }
    const end = performance.now();
    hooks.drawMs += end - start;
    this.restUntil = end + restAfter(end - start);
    if (due.length > picked.size) this.request();
  }
}

const scheduler = new DrawScheduler();
// A 300 px panel has room for about four time labels side by side.
const PANEL_TICKS = 4;

/** One stream of the page, as live.js's Connection sees a chart: ids, resync state, draw. */
class StreamFeed {
  /** @param {string} slug */
  constructor(slug) {
    this.slug = slug;
    /** @type {string|null} */
    this.lastId = null;
    /** @type {number|null} */
    this.resyncSince = null;
    this.stopped = false;
    // Range views are the stream page's; a dashboard is always live.
    this.ranged = false;
    this.awaitingSubscribed = false;
    /** @type {BasePanel[]} */
    this.panels = [];
  }

  /** @param {Batch} batch */
  take(batch) {
    for (const panel of this.panels) {
      panel.take(this.slug, batch);
      // An empty panel out of view says its points arrived (it draws when scrolled to).
      if (panel.overlay.card?.dataset.empty === "true") panel.showEmpty();
    }
    this.lastId = batch.id;
    this.resyncSince = null;
    hooks.lastIds[this.slug] = batch.id;
    hooks.pointsReceived += Array.isArray(batch.t) ? batch.t.length : 0;
  }

  reset() {
    this.lastId = null;
    this.resyncSince = null;
    hooks.lastIds[this.slug] = null;
    for (const panel of this.panels) panel.reset(this.slug);
  }

  /** Back from a range: start over from the server's whole window (see live.js restartLive). */
  restartLive() {
    this.ranged = false;
    this.reset();
    this.awaitingSubscribed = true;
  }

  draw() {
    // Called by the Connection once a frame while points arrive: the scheduler decides which
    // panels draw now.
    scheduler.request();
  }
}

class BasePanel {
  /** @param {PanelConfig} config @param {HTMLElement} element @param {any} plotlyConfig */
  constructor(config, element, plotlyConfig) {
    this.config = config;
    this.element = element;
    this.plotlyConfig = plotlyConfig;
    /** @type {Map<string, StreamConfig>} */
    this.streams = new Map(config.streams.map((stream) => [stream.slug, stream]));
    /** @type {Map<string, number|null>} newest x seen per stream: its age window ends there */
    this.newestX = new Map();
    this.hook = {
      chartType: config.chart_type,
      streams: config.streams.map((stream) => stream.slug),
      draws: 0,
      points: 0,
      value: null,
      candles: 0,
      cost: 0,
      gapBreaks: 0,
    };
    hooks.panels[config.id] = this.hook;
    /** performance.now() when the panel got something new to draw (null: nothing) */
    this.dirtySince = null;
    /** false while scrolled out of view: not drawn, but still fed and trimmed */
    this.visible = true;
    /** expected ms per draw (nextCost), 0 until measured */
    this.cost = 0;
    /** true while the page's range picker shows stored points (dashrange.js draws them) */
    this.ranged = false;
    /** @type {Map<string, any>} each stream's last feed status, for the empty state */
    this.statuses = new Map();
    this.overlay = new EmptyOverlay(element.closest(".panel"));
  }

  /** Expected ms of the panel's next draw (0 until measured), for the scheduler. @param {number} _now */
  expectedCost(_now) {
    return this.cost;
  }

  /** The last draw took `ms`. @param {number} ms */
  measured(ms) {
    this.cost = nextCost(this.cost, ms);
    this.hook.cost = Math.round(this.cost * 10) / 10;
  }

  /** Whether the panel draws something (its empty state shows until then). */
  hasPoints() {
    const data = /** @type {any[]} */ (/** @type {any} */ (this.element).data ?? []);
    return data.some((trace) => (trace.x?.length ?? 0) > 0);
  }

  /** Whether points arrived that are not drawn yet (out of view, or waiting for a frame). */
  hasPending() {
    return this.dirty && this.hook.points > 0;
  }

  /** The empty state, from the panel's points and the state of its streams' feeds. */
  showEmpty() {
    if (this.ranged) return; // dashrange.js says what a range shows
    const statuses = [...this.statuses.values()];
    // The worst feed of the panel speaks for it: an error before a stall before waiting.
    const rank = (/** @type {any} */ status) => ({ error: 3, stalled: 2, connecting: 1 })[status?.state] ?? 0;
    const status = statuses.sort((a, b) => rank(b) - rank(a))[0] ?? null;
    this.overlay.show(
      emptyState({
        points: this.hasPoints() ? 1 : 0,
        pending: this.hasPending(),
        status,
        connection: hooks.socketState,
      }),
    );
  }

  get dirty() {
    return this.dirtySince !== null;
  }

  set dirty(value) {
    if (!value) this.dirtySince = null;
    else if (this.dirtySince === null) this.dirtySince = performance.now();
  }

  async plot() {
    const figure = this.config.figure;
    // Area panels: their fills stop at the holes the lines stop at, live and in ranges, and in
    // the PNG the mode bar downloads.
    const fills = fillsArea([...figure.data, this.config.new_trace]);
    if (fills) {
      const name = this.config.streams.map((stream) => stream.slug).join("-") || "panel";
      this.plotlyConfig = withClippedDownload(this.plotlyConfig, name);
    }
    await Plotly.newPlot(this.element, figure.data, steadyAxes(figure.layout, { nticks: PANEL_TICKS }), this.plotlyConfig);
    if (fills) clipFillsToLines(this.element);
  }

  /** @param {string} slug */
  limits(slug) {
    const stream = this.streams.get(slug);
    return {
      windowPoints: stream?.window_points ?? null,
      cutoff: cutoffFor(this.newestX.get(slug) ?? null, stream?.window_seconds),
    };
  }

  /** @param {string} slug @param {number[]} xs */
  seen(slug, xs) {
    let newest = this.newestX.get(slug) ?? null;
    for (const x of xs) if (newest === null || x > newest) newest = x;
    this.newestX.set(slug, newest);
  }

  /** @param {string} _slug @param {Batch} _batch */
  take(_slug, _batch) {}

  /** The layout of the panel's own figure, with the x axis fixed to `range` (UTC ms). */
  rangeLayout(/** @type {import("./range.js").Range} */ range) {
    const layout = steadyAxes(this.config.figure.layout, { nticks: PANEL_TICKS });
    if (!layout?.xaxis) return { ...layout };
    return {
      ...layout,
      uirevision: `range-${range.start}-${range.end}`,
      xaxis: { ...layout.xaxis, range: [toLocalX(range.start), toLocalX(range.end)], autorange: false },
      yaxis: { ...layout.yaxis },
    };
  }

  /**
   * Draw stored points of `range` in place of the live window.
   * @param {Map<string, import("./range.js").Answer>} _answers by stream slug
   * @param {import("./range.js").Range} _range
   */
  async showRange(_answers, _range) {}

  /** Back to the live view: the panel's empty figure, then the backfill fills it. */
  backToLive() {
    this.ranged = false;
    for (const slug of this.streams.keys()) this.reset(slug);
    const figure = this.config.figure;
    Plotly.react(this.element, figure.data, steadyAxes(figure.layout, { nticks: PANEL_TICKS }), this.plotlyConfig);
    this.dirty = true;
    this.showEmpty();
  }

  /** @param {number} points  points the range drew */
  showRangeEmpty(points) {
    this.overlay.show(emptyState({ points, view: "range" }));
    this.hook.rangePoints = points;
    this.hook.draws += 1;
  }

  /** @param {string} slug */
  reset(slug) {
    this.newestX.delete(slug);
  }

  draw() {}
}

/** line, area, scatter, bar: traces extended in place, one window per stream. */
class SeriesPanel extends BasePanel {
  /** @param {PanelConfig} config @param {HTMLElement} element @param {any} plotlyConfig */
  constructor(config, element, plotlyConfig) {
    super(config, element, plotlyConfig);
    /** @type {{stream: string, series: string}[]} who owns each trace, in trace order */
    this.owners = config.traces.map(([stream, series]) => ({ stream, series }));
    /** @type {Map<string, import("./protocol.js").Buffer>} */
    this.buffers = new Map();
    /** performance.now() of the last full Plotly draw (lightdraw.js), null before the first */
    this.lastFull = null;
    /** @type {[number, number]|null} the x range Plotly last laid the axis out for (light draws slide from it) */
    this.axisRange = null;
    /** expected ms of a light draw (0 until measured); `cost` is a full draw's */
    this.lightCost = 0;
    /** whether the last draw was light */
    this.lastLight = false;
    /** the light draws' lines and slide (shared with the stream page) */
    this.light = new LightLines(element);
    /** true once a light draw drew lines Plotly's own data for them (calcdata) does not know */
    this.lightSinceFull = false;
    /** true while the pointer is over the chart: full draws, so hover knows every point */
    this.pointed = false;
    element.addEventListener("pointerenter", () => {
      this.pointed = true;
    });
    element.addEventListener("pointerleave", () => {
      this.pointed = false;
    });
  }

  /** @param {string} slug */
  buffer(slug) {
    let buffer = this.buffers.get(slug);
    if (buffer === undefined) {
      buffer = emptyBuffer();
      this.buffers.set(slug, buffer);
    }
    return buffer;
  }

  /** @param {string} slug @param {Batch} batch */
  take(slug, batch) {
    const buffer = this.buffer(slug);
    const { points, newestX } = mergeBatch(buffer, pickSeries(batch, this.config.series), localX);
    if (newestX !== null) this.seen(slug, [newestX]);
    trimBuffer(buffer, this.limits(slug)); // paused, the buffer must not outgrow the window
    this.hook.points += points;
    this.dirty = true;
  }

  /** @param {string} slug */
  reset(slug) {
    super.reset(slug);
    const buffer = emptyBuffer();
    buffer.reset = true;
    this.buffers.set(slug, buffer);
    this.dirty = true;
  }

  draw() {
    this.lastLight = false;
    if (!this.dirty) return;
    this.dirty = false;
    const data = /** @type {any[]} */ (/** @type {any} */ (this.element).data ?? []);
    const pending = new Map();
    for (const [slug, buffer] of this.buffers) pending.set(slug, { buffer, limits: this.limits(slug) });
    const plan = planPanel({
      traces: this.owners,
      traceXs: data.map((trace) => trace.x ?? []),
      traceYs: data.map((trace) => trace.y ?? []),
      pending,
    });
    this.buffers = new Map();
    if (plan === null) return;
    if (plan.clear.length > 0) {
      Plotly.restyle(
        this.element,
        { x: plan.clear.map(() => []), y: plan.clear.map(() => []) },
        plan.clear,
      );
    }
    if (plan.addTraces.length > 0) {
      Plotly.addTraces(
        this.element,
        plan.addTraces.map(({ stream, series }) => ({
          ...this.config.new_trace,
          name: traceName(this.streams.get(stream)?.label ?? "", series),
          x: [],
          y: [],
        })),
      );
      this.owners.push(...plan.addTraces);
    }
    this.breakGaps(plan);
    const element = /** @type {any} */ (this.element);
    const now = performance.now();
    const light = hooks.lightDraws !== false && drawsLight({
      traces: data,
      plan,
      now,
      lastFull: this.lastFull,
      pointed: this.pointed,
      xaxis: { ...element._fullLayout?.xaxis, autorange: element.layout?.xaxis?.autorange },
      yaxis: { ...element._fullLayout?.yaxis, autorange: element.layout?.yaxis?.autorange },
    });
    if (light && this.drawLight(plan)) {
      this.lastLight = true;
      this.hook.lastDraw = "light";
      this.hook.draws += 1;
      this.hook.lightDraws = (this.hook.lightDraws ?? 0) + 1;
      this.showEmpty();
      return;
    }
    this.lastFull = now;
    this.lightSinceFull = false;
    this.hook.lastDraw = "full";
    this.light.slide(0);
    if (this.config.fill_to_min) {
      // Before extendTraces, which draws with the layout as it is then.
      const ys = (element.data ?? []).map((/** @type {any} */ trace, /** @type {number} */ index) => {
        const k = plan.indices.indexOf(index);
        return k < 0 ? trace.y : [...trace.y.slice(-plan.maxPoints.y[k]), ...plan.update.y[k]];
      });
      fitValueAxis(element, ys);
    }
    if (plan.indices.length > 0) Plotly.extendTraces(this.element, plan.update, plan.indices, plan.maxPoints);
    const laid = element._fullLayout?.xaxis;
    this.axisRange = laid?.type === "date" && Array.isArray(laid.range) ? laid.range.map((r) => laid.r2l(r)) : null;
    this.hook.draws += 1;
    this.showEmpty();
  }

  /** A light draw is the likely next one while a full draw is not due (lightdraw.js). @param {number} now */
  expectedCost(now) {
    const lightNext = this.lastFull !== null && now - this.lastFull < FULL_EVERY_MS && !this.pointed;
    return lightNext && this.lightCost > 0 ? this.lightCost : this.cost;
  }

  /** @param {number} ms */
  measured(ms) {
    if (!this.lastLight) {
      super.measured(ms);
      return;
    }
    this.lightCost = nextCost(this.lightCost, ms);
    this.hook.lightCost = Math.round(this.lightCost * 10) / 10;
  }

  /**
   * A light draw (lightdraw.js): the plan's points into the traces' arrays, the x axis moved to
   * them, each line's path rebuilt. False when it could not (nothing changed then).
   * @param {import("./panel.js").PanelPlan} plan
   */
  drawLight(plan) {
    const element = /** @type {any} */ (this.element);
    const data = /** @type {any[]} */ (element.data);
    const xs = data.map((trace) => trace.x ?? []);
    plan.indices.forEach((index, k) => {
      xs[index] = appendKeep(xs[index], plan.update.x[k], plan.maxPoints.x[k]);
    });
    const range = lineRange(xs);
    const lines = this.light.lines();
    if (range === null || lines.size !== data.length) return false;
    plan.indices.forEach((index, k) => {
      data[index].x = xs[index];
      data[index].y = appendKeep(data[index].y ?? [], plan.update.y[k], plan.maxPoints.y[k]);
    });
    let xaxis = element._fullLayout.xaxis;
    const pxPerX = (xaxis.c2p(range[0] + 1000) - xaxis.c2p(range[0])) / 1000;
    const yFits = fitsRange(plan.update.y, element._fullLayout.yaxis.range);
    let slide = yFits ? slideFor({ axisRange: this.axisRange, range, pxPerX }) : null;
    if (slide === null) {
      this.light.slide(0);
      // Plotly's pan path: the axes and their labels drawn again, the traces from what Plotly
      // computed at the last full draw; their lines are then replaced by the new points'.
      /** @type {any} */
      const ranges = { "xaxis.range": range };
      if (!yFits) ranges["yaxis.range"] = valueRange(data.map((trace) => trace.y));
      Plotly.relayout(element, ranges);
      // A hack, labelled as one: the ranges above stand for autorange until the next full draw,
      // and the panel stays live. Left false, the next full draw would keep them, and the
      // viewer's zoom could not be told from ours.
      element.layout.xaxis.autorange = true;
      element.layout.yaxis.autorange = true;
      this.axisRange = range;
      this.hook.axisDraws = (this.hook.axisDraws ?? 0) + 1;
      xaxis = element._fullLayout.xaxis;
      slide = 0;
    }
    this.light.draw(lines);
    this.light.slide(slide);
    this.lightSinceFull = true;
    return true;
  }

  async plot() {
    await super.plot();
    // Plotly draws again on its own (a resize, a margin that grew): its lines are then those of
    // its last full draw, older than the points light draws have drawn since. Put ours back.
    const element = /** @type {any} */ (this.element);
    element.on("plotly_afterplot", () => {
      if (!this.lightSinceFull || this.ranged) return;
      this.light.draw();
      this.light.slide(this.light.slidPx);
    });
    // The viewer zoomed, panned or double-clicked (a light draw's own relayout gives whole
    // ranges, "xaxis.range": [a, b]; the viewer's gives "xaxis.range[0]" or autorange): Plotly
    // drew the axes for it, and the lines from its last full draw. No slide then, and Plotly's
    // data made whole again, even while the page is paused.
    element.on("plotly_relayout", (/** @type {any} */ event) => {
      if (this.ranged || Array.isArray(event?.["xaxis.range"])) return;
      this.light.slide(0);
      this.lastFull = null;
      if (!this.lightSinceFull) return;
      this.lightSinceFull = false;
      // redraw, not react: react would see the same trace objects and compute nothing again.
      Plotly.redraw(element);
    });
  }

  /**
   * @param {Map<string, import("./range.js").Answer>} answers
   * @param {import("./range.js").Range} range
   */
  async showRange(answers, range) {
    const data = /** @type {any[]} */ (/** @type {any} */ (this.element).data ?? []);
    const owners = [...this.owners];
    const column = (/** @type {string} */ slug, /** @type {string} */ series) => {
      const answer = answers.get(slug);
      const x = [];
      const y = [];
      const values = answer?.y[series] ?? [];
      for (let i = 0; i < values.length; i += 1) {
        if (values[i] === null || values[i] === undefined) continue;
        x.push(toLocalX(answer.t[i]));
        y.push(values[i]);
      }
      return { x, y };
    };
    const traces = owners.map((owner, index) => ({ ...data[index], ...column(owner.stream, owner.series) }));
    for (const [slug, answer] of answers) {
      if (!this.streams.has(slug)) continue; // the page asked for every stream; this panel shows its own
      for (const series of Object.keys(answer.y)) {
        if (this.config.series !== null && series !== this.config.series) continue;
        if (owners.some((owner) => owner.stream === slug && owner.series === series)) continue;
        owners.push({ stream: slug, series });
        const name = traceName(this.streams.get(slug)?.label ?? "", series);
        traces.push({ ...this.config.new_trace, name, ...column(slug, series) });
      }
    }
    let points = 0;
    const drawn = traces.map((trace) => {
      points += trace.x.length;
      if (!drawsLine(trace) || trace.x.length < 2) return trace;
      // A thinned answer has about span / rows between its rows: only far more is a hole.
      const floor = (4 * (range.end - range.start)) / trace.x.length;
      const broken = breakGaps(trace.x, trace.y, { floor });
      return { ...trace, x: broken.x, y: broken.y };
    });
    const layout = this.rangeLayout(range);
    if (this.config.fill_to_min) fitValueAxis({ layout }, drawn.map((trace) => trace.y));
    this.owners = owners;
    this.light.slide(0);
    this.lastFull = null;
    this.lightSinceFull = false;
    await Plotly.react(this.element, drawn, layout, this.plotlyConfig);
    this.showRangeEmpty(points);
  }

  backToLive() {
    this.owners = this.config.traces.map(([stream, series]) => ({ stream, series }));
    this.buffers = new Map();
    this.light.slide(0);
    this.lastFull = null;
    this.lightSinceFull = false;
    super.backToLive();
  }

  /**
   * A null where a line's points are missing (gaps.js), in what this draw appends: within it,
   * and between the trace's last point and the first new one.
   * @param {import("./panel.js").PanelPlan} plan
   */
  breakGaps(plan) {
    const data = /** @type {any[]} */ (/** @type {any} */ (this.element).data ?? []);
    let breaks = 0;
    plan.indices.forEach((index, k) => {
      const trace = data[index] ?? this.config.new_trace ?? {};
      if (!drawsLine(trace)) return;
      const xs = plan.clear.includes(index) ? [] : (trace.x ?? []);
      const added = plan.update.x[k];
      if (added.length === 0) return;
      const held = Array.prototype.slice.call(xs, -8);
      const broken = breakGaps(added, plan.update.y[k], { held });
      if (broken.breaks === 0) return;
      plan.update.x[k] = broken.x;
      plan.update.y[k] = broken.y;
      // The nulls take places in the trace: keep as many real points as planned.
      plan.maxPoints.x[k] += broken.breaks;
      plan.maxPoints.y[k] += broken.breaks;
      breaks += broken.breaks;
    });
    this.hook.gapBreaks = (this.hook.gapBreaks ?? 0) + breaks;
  }
}

/** gauge: the last value of one series, as a dial or a big number with its change over the window. */
class GaugePanel extends BasePanel {
  /** @param {PanelConfig} config @param {HTMLElement} element @param {any} plotlyConfig */
  constructor(config, element, plotlyConfig) {
    super(config, element, plotlyConfig);
    this.series = config.series;
    this.values = new LastValue();
  }

  /** @param {string} slug @param {Batch} batch */
  take(slug, batch) {
    this.series = chooseSeries(this.series, batch);
    if (this.series === null) return;
    const xs = (Array.isArray(batch.t) ? batch.t : []).map(localX);
    const taken = this.values.add(xs, batch.y?.[this.series] ?? []);
    if (taken === 0) return;
    this.seen(slug, xs);
    this.values.trim(this.limits(slug));
    this.hook.points += taken;
    this.dirty = true;
  }

  /** @param {string} slug */
  reset(slug) {
    super.reset(slug);
    this.values.clear();
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const value = this.values.value;
    if (value === null) return;
    Plotly.restyle(this.element, { value: [value], "delta.reference": [this.values.reference] }, [0]);
    this.hook.value = value;
    this.hook.draws += 1;
    this.showEmpty();
  }

  hasPoints() {
    return this.hook.value !== null; // set when drawn
  }

  /**
   * The range's last value, its change since the range's first.
   * @param {Map<string, import("./range.js").Answer>} answers
   * @param {import("./range.js").Range} _range
   */
  async showRange(answers, _range) {
    const [slug] = this.streams.keys();
    const answer = answers.get(slug);
    const values = new LastValue();
    const series = answer ? chooseSeries(this.series, { y: answer.y }) : null;
    if (answer && series !== null) values.add(answer.t, answer.y[series] ?? []);
    await Plotly.restyle(this.element, { value: [values.value], "delta.reference": [values.reference] }, [0]);
    this.hook.value = values.value;
    this.showRangeEmpty(values.x.length);
  }
}

/** candlestick: one candle per interval from one series' ticks. */
class CandlePanel extends BasePanel {
  /** @param {PanelConfig} config @param {HTMLElement} element @param {any} plotlyConfig */
  constructor(config, element, plotlyConfig) {
    super(config, element, plotlyConfig);
    this.series = config.series;
    this.candles = emptyCandles(config.candle_ms);
  }

  /** @param {string} slug @param {Batch} batch */
  take(slug, batch) {
    this.series = chooseSeries(this.series, batch);
    if (this.series === null) return;
    const xs = (Array.isArray(batch.t) ? batch.t : []).map(localX);
    const used = addTicks(this.candles, xs, batch.y?.[this.series] ?? []);
    if (used === 0) return;
    this.seen(slug, xs);
    // The stream's age window, in whole candles; the candle count is capped on its own.
    trimCandles(this.candles, { cutoff: this.limits(slug).cutoff, maxCandles: this.config.max_candles });
    this.hook.points += used;
    this.dirty = true;
  }

  /** @param {string} slug */
  reset(slug) {
    super.reset(slug);
    this.candles = emptyCandles(this.config.candle_ms);
    this.dirty = true;
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const columns = candleColumns(this.candles);
    // Candles change in place (the open one grows): the whole columns, at most once a frame.
    // Plotly.update, not restyle: restyling x resets an axis type it did not see set in the
    // same call, and the date axis would turn into raw milliseconds.
    Plotly.update(
      this.element,
      {
        x: [columns.x],
        open: [columns.open],
        high: [columns.high],
        low: [columns.low],
        close: [columns.close],
      },
      { "xaxis.type": "date" },
      [0],
    );
    this.hook.candles = columns.x.length;
    this.hook.draws += 1;
    this.showEmpty();
  }

  hasPoints() {
    return this.hook.candles > 0; // set when drawn
  }

  /**
   * Candles of the range's ticks; a long range gets wider candles, so it fits max_candles.
   * @param {Map<string, import("./range.js").Answer>} answers
   * @param {import("./range.js").Range} range
   */
  async showRange(answers, range) {
    const [slug] = this.streams.keys();
    const answer = answers.get(slug);
    const base = this.config.candle_ms;
    const interval = base * Math.max(1, Math.ceil((range.end - range.start) / (base * this.config.max_candles)));
    const candles = emptyCandles(interval);
    const series = answer ? chooseSeries(this.series, { y: answer.y }) : null;
    if (answer && series !== null) addTicks(candles, answer.t.map((t) => toLocalX(t)), answer.y[series] ?? []);
    const columns = candleColumns(candles);
    const layout = this.rangeLayout(range);
    await Plotly.react(
      this.element,
      [{ ...this.config.figure.data[0], ...columns }],
      { ...layout, xaxis: { ...layout.xaxis, type: "date" } },
      this.plotlyConfig,
    );
    this.hook.candles = columns.x.length;
    this.showRangeEmpty(columns.x.length);
  }
}

const PANEL_KINDS = { gauge: GaugePanel, candlestick: CandlePanel };

/** The dashboard's Page: a feed dot per stream on each panel instead of one feed badge. */
class DashboardPage extends Page {
  /** @param {string} slug @param {any} status */
  setFeed(slug, status) {
    const state = typeof status?.state === "string" ? status.state : "unknown";
    hooks.feedStates[slug] = state;
    for (const dot of document.querySelectorAll(".feed-dot")) {
      if (!(dot instanceof HTMLElement) || dot.dataset.stream !== slug) continue;
      dot.dataset.state = state;
      const title = dot.getAttribute("aria-label")?.replace(/: open the stream$/, "") ?? slug;
      dot.title = status?.error ? `${title}: ${state}: ${status.error}` : `${title}: ${state}`;
    }
    for (const panel of scheduler.panels) {
      if (!panel.streams.has(slug)) continue;
      panel.statuses.set(slug, status ?? null);
      panel.showEmpty();
    }
  }

  clearFeed() {
    for (const dot of document.querySelectorAll(".feed-dot")) {
      if (dot instanceof HTMLElement) dot.dataset.state = "unknown";
    }
  }
}

/** Panels out of view (with a margin) are not drawn; scrolled into view, they catch up. */
function watchVisibility(drawScheduler) {
  if (typeof IntersectionObserver === "undefined") return;
  const byElement = new Map(drawScheduler.panels.map((panel) => [panel.element, panel]));
  const observer = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        const panel = byElement.get(entry.target);
        if (panel) panel.visible = entry.isIntersecting;
      }
      drawScheduler.request();
    },
    { rootMargin: "200px 0px" },
  );
  for (const element of byElement.keys()) observer.observe(element);
}

async function main() {
  const config = readJson("dashboard-config");
  if (!config) return;
  const page = new DashboardPage();
  page.setConnection("connecting");
  if (typeof Plotly === "undefined") {
    page.setConnection("offline");
    page.showBanner("The chart library did not load. Reload the page.");
    return;
  }
  hooks.panels = {};
  /** @type {Map<string, StreamFeed>} */
  const feeds = new Map();
  const plots = [];
  for (const panelConfig of config.panels) {
    const element = document.getElementById(panelConfig.element);
    if (!element) continue;
    const Kind = PANEL_KINDS[panelConfig.chart_type] ?? SeriesPanel;
    const panel = new Kind(panelConfig, element, config.plotly_config);
    scheduler.panels.push(panel);
    plots.push(panel.plot());
    for (const { slug } of panelConfig.streams) {
      if (!feeds.has(slug)) feeds.set(slug, new StreamFeed(slug));
      feeds.get(slug)?.panels.push(panel);
    }
  }
  await Promise.all(plots);
  for (const panel of scheduler.panels) panel.showEmpty();
  page.listeners.push(() => {
    for (const panel of scheduler.panels) panel.showEmpty();
  });
  hooks.streams = [...feeds.keys()];
  watchVisibility(scheduler);
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const connection = new Connection(`${scheme}//${window.location.host}${config.ws_path}`, feeds, page);
  scheduler.connection = connection;
  page.pauseButton?.addEventListener("click", () => {
    const paused = !connection.paused;
    connection.setPaused(paused);
    page.pauseButton.setAttribute("aria-pressed", String(paused));
    page.pauseButton.textContent = paused ? "Resume" : "Pause";
  });
  const range = new DashboardRange({ panels: scheduler.panels, feeds, connection, page, hooks }).attach();
  connection.connect();
  range.fromAddress();
}

main().catch((error) => {
  document.body.dataset.connection = hooks.socketState = "offline";
  const banner = document.getElementById("banner");
  if (banner) {
    banner.textContent = `The dashboard could not start: ${error}`;
    banner.hidden = false;
  }
  throw error;
});
