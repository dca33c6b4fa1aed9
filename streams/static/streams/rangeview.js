// Range views on the stream page: the range picker (rangepicker.js), stored points fetched from
// /streams/<slug>/range and drawn in place of the live traces, finer points on zoom, and the
// way back to live. The decisions are range.js's; this is the DOM, fetch and Plotly side.
//
// Test hook: window.livecharts.range = {view, chosen, start, end, loading, requests, answer}.

import { fitValueAxis, steadyAxes } from "./axes.js";
import { emptyState } from "./emptystate.js";
import { breakGaps, drawsLine } from "./gaps.js";
import {
  Latest,
  ZOOM_DEBOUNCE_MS,
  describeAnswer,
  describeFailure,
  liveLoaded,
  rangeTraces,
  rangeUrl,
  readAnswer,
  relayoutAction,
  toLocalX,
} from "./range.js";
import { RangePicker } from "./rangepicker.js";

/* global Plotly */

/** A failed answer: its status and JSON body ({error, message}), when there was one. */
class RangeRefused extends Error {
  /** @param {number} status @param {any} body */
  constructor(status, body) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export class RangeView {
  /**
   * @param {{chart: any, connection: any, page: any, hooks: any}} parts  live.js's Chart (one
   *   stream's chart), its Connection (subscribe, setPaused), its Page (banner, badge) and hooks
   */
  constructor({ chart, connection, page, hooks }) {
    this.chart = chart;
    this.connection = connection;
    this.page = page;
    this.element = chart.element;
    this.config = chart.config;
    this.note = document.getElementById("range-note");
    this.windowLabel = document.getElementById("window-label");
    this.card = this.element.closest(".chart-card");
    const figure = document.getElementById(this.config.figure);
    // The page's own layout (autorange), not element.layout, which Plotly fills with ranges.
    this.layout = steadyAxes(JSON.parse(figure?.textContent ?? "{}")?.layout ?? {});
    this.url = this.config.range_url ?? `/streams/${encodeURIComponent(this.chart.slug)}/range`;
    this.latest = new Latest();
    /** @type {AbortController|null} */
    this.controller = null;
    /** @type {number|undefined} */
    this.zoomTimer = undefined;
    /** @type {{range: import("./range.js").Range, answer: import("./range.js").Answer|null}|null} */
    this.base = null;
    /** @type {import("./range.js").Loaded|null} what a range view holds now */
    this.loaded = null;
    this.revision = 0;
    this.applying = false;
    this.bannerOurs = false;
    this.hooks = hooks;
    hooks.range = { view: "live", chosen: "live", start: null, end: null, loading: false, requests: 0, answer: null };
    this.picker = new RangePicker({ owner: this, page, hooks });
  }

  /** Wire the buttons, the form and the chart's zoom; a page without range buttons gets nothing. */
  attach() {
    if (!this.picker.element) return this;
    this.picker.attach();
    /** @type {any} */ (this.element).on("plotly_relayout", (/** @type {any} */ event) => this.onRelayout(event));
    return this;
  }

  /** Show what the address asks for (a shared link). */
  fromAddress() {
    if (this.picker.element) this.picker.fromAddress();
  }

  /** The range on screen, where the custom form opens; null when live. */
  shownRange() {
    return this.base?.range ?? null;
  }

  /**
   * Show a chosen range (a preset or the custom one).
   * @param {string} key @param {import("./range.js").Range} range @param {{address?: boolean}} [options]
   */
  showRange(key, range, { address = true } = {}) {
    this.picker.setPressed(key);
    if (address) this.picker.writeAddress(key, range);
    this.base = { range, answer: null };
    this.enterRange();
    this.load(range, { base: true });
  }

  /** Stop drawing live points. The socket stays open and subscribed: feed states keep coming. */
  enterRange() {
    if (this.chart.ranged) return;
    this.chart.ranged = true;
    this.chart.endLight(); // no slide left on the layers the range's traces are drawn in
    if (this.connection.paused) this.connection.setPaused(false);
    if (this.windowLabel) this.windowLabel.hidden = true;
    this.page.setView("range");
    this.hooks.range.view = "range";
  }

  /**
   * Back to live from scratch: the traces are emptied and the stream subscribed again with
   * after = null, so the server sends its whole live window and then live batches. That is how
   * "back to live resumes with no gap" holds: nothing shown depends on what was skipped while
   * the range was on screen, and the socket was never closed.
   */
  goLive({ address = true } = {}) {
    this.cancelRequests();
    this.picker.setPressed("live");
    if (address) this.picker.writeAddress("live", null);
    this.base = null;
    this.loaded = null;
    this.setNote("");
    this.clearBanner();
    if (!this.chart.ranged) return;
    this.chart.restartLive();
    this.revision += 1;
    const empty = (this.element.data ?? []).map((/** @type {any} */ trace) => ({ ...trace, x: [], y: [] }));
    // A new uirevision: the live view starts from the page's layout (autorange), not the range's.
    Plotly.react(this.element, empty, { ...this.layout, uirevision: `live-${this.revision}` }, this.config.plotly_config);
    if (this.windowLabel) this.windowLabel.hidden = false;
    this.page.setView("live");
    this.hooks.range.view = "live";
    this.hooks.range.start = this.hooks.range.end = null;
    this.chart.showEmpty();
    this.connection.subscribe(this.chart);
  }

  cancelRequests() {
    window.clearTimeout(this.zoomTimer);
    this.zoomTimer = undefined;
    this.latest.cancel();
    this.controller?.abort();
    this.controller = null;
    this.setLoading(false);
  }

  /** @param {Record<string, unknown>} event */
  onRelayout(event) {
    // A light draw's own relayout (live.js) moves the live axes along: not a zoom.
    if (this.applying || this.chart.stopped || this.chart.ownRelayout(event)) return;
    const loaded = this.chart.ranged
      ? this.loaded
      : liveLoaded((this.element.data ?? []).map((/** @type {any} */ trace) => trace.x ?? []));
    const action = relayoutAction(event, loaded, { now: Date.now() });
    if (action === null) return;
    window.clearTimeout(this.zoomTimer);
    if (action.action === "reset") {
      if (!this.chart.ranged) return; // live autoranges by itself
      if (this.picker.chosen === "zoom") {
        this.goLive(); // the zoom started from live: reset is back to live
        return;
      }
      if (this.base !== null) this.restoreBase();
      return;
    }
    // A drag fires once, but Plotly.relayout from code, pans and wheel zooms come in bursts.
    this.zoomTimer = window.setTimeout(() => {
      this.zoomTimer = undefined;
      if (!this.chart.ranged) {
        this.picker.setPressed("zoom");
        this.enterRange();
      }
      this.load({ start: action.start, end: action.end }, { base: false });
    }, ZOOM_DEBOUNCE_MS);
  }

  /** Back to the chosen range, from the answer we hold when there is one. */
  restoreBase() {
    const base = this.base;
    if (base === null) return;
    if (base.answer === null) {
      this.load(base.range, { base: true });
      return;
    }
    this.cancelRequests();
    this.draw(base.range, base.answer);
  }

  /**
   * Ask for a range; draw the answer unless a newer request was made meanwhile.
   * @param {import("./range.js").Range} range
   * @param {{base: boolean}} options base: the chosen range (kept for a reset), not a zoom
   */
  async load(range, { base }) {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const token = this.latest.begin();
    this.setLoading(true);
    this.hooks.range.requests += 1;
    let answer;
    try {
      const response = await fetch(rangeUrl(this.url, range), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        // A redirect here can only be to the sign-in page: it means signed out, not an answer.
        redirect: "manual",
        signal: controller.signal,
      });
      if (response.type === "opaqueredirect") throw new RangeRefused(401, null);
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new RangeRefused(response.status, body);
      try {
        answer = readAnswer(body);
      } catch (error) {
        throw new RangeRefused(response.status, { message: String(error instanceof Error ? error.message : error) });
      }
    } catch (error) {
      if (!this.latest.finish(token)) return; // stale, or aborted for a newer one
      this.setLoading(false);
      const failure = error instanceof RangeRefused ? { status: error.status, body: error.body } : { error };
      this.showBanner(describeFailure(failure));
      this.setNote("could not load this range");
      return;
    }
    if (!this.latest.finish(token) || !this.chart.ranged) return;
    this.setLoading(false);
    this.clearBanner();
    if (base && this.base !== null) this.base.answer = answer;
    await this.draw(range, answer);
  }

  /**
   * The answer in place of the traces, the x axis set to the range asked for.
   * @param {import("./range.js").Range} range @param {import("./range.js").Answer} answer
   */
  async draw(range, answer) {
    const traces = rangeTraces({
      traces: this.element.data ?? [],
      answer,
      newTrace: this.config.new_trace,
      toX: (t) => toLocalX(t),
    }).map((/** @type {any} */ trace) => {
      if (!drawsLine(trace) || trace.x.length < 2) return trace;
      // A thinned answer has about span / points between its rows: only far more is a hole.
      const floor = answer.downsampled ? (4 * (range.end - range.start)) / trace.x.length : 0;
      const broken = breakGaps(trace.x, trace.y, { floor });
      return { ...trace, x: broken.x, y: broken.y };
    });
    this.revision += 1;
    const layout = {
      ...this.layout,
      // A new uirevision: this range's x axis wins over the zoom that asked for it.
      uirevision: `range-${this.revision}`,
      xaxis: { ...this.layout.xaxis, range: [toLocalX(range.start), toLocalX(range.end)], autorange: false },
      yaxis: { ...this.layout.yaxis }, // a copy: fitValueAxis sets its range in place
    };
    if (this.config.fill_to_min) {
      fitValueAxis({ layout }, traces.map((/** @type {any} */ trace) => trace.y));
    }
    this.applying = true;
    try {
      await Plotly.react(this.element, traces, layout, this.config.plotly_config);
    } finally {
      this.applying = false;
    }
    if (!this.chart.ranged) return; // back to live while Plotly drew: its react came after ours
    this.loaded = { start: range.start, end: range.end, downsampled: answer.downsampled };
    if (this.picker.chosen === "zoom") this.picker.writeAddress("zoom", range, { replace: true });
    this.chart.overlay.show(emptyState({ points: answer.returned, view: "range" }));
    this.setNote(describeAnswer(answer));
    Object.assign(this.hooks.range, { start: range.start, end: range.end, answer });
  }

  /** @param {boolean} loading */
  setLoading(loading) {
    this.hooks.range.loading = loading;
    if (this.card) this.card.setAttribute("aria-busy", String(loading));
    if (loading) this.setNote("loading…");
    if (this.note) this.note.dataset.loading = String(loading);
  }

  /** @param {string} text */
  setNote(text) {
    if (!this.note) return;
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  /** @param {string} message */
  showBanner(message) {
    this.bannerOurs = true;
    this.page.showBanner(message);
  }

  /** Clear the banner only when it is ours: a socket's message must stay. */
  clearBanner() {
    if (!this.bannerOurs) return;
    this.bannerOurs = false;
    this.page.showBanner(null);
  }
}
