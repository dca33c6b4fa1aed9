// The stream page's entry: wires the DOM, one WebSocket and Plotly together. The decisions
// (id order, drop/resubscribe, merging, trimming, backoff) live in the pure modules beside it.
//
// Test hooks: document.body.dataset.connection holds the badge state (connecting, live,
// reconnecting, offline) and window.livecharts = {socketState, lastIds, pointsReceived, ...};
// on the stream page, window.livecharts.liveWindow(series) = {x, y}: every point the live chart
// holds (its trace draws a thinned copy when they outnumber the plot's pixels);
// window.livecharts.gapBreaks: nulls the last draw put in lines where points are missing;
// window.livecharts.lightDrawn and axisDraws: the stream page's light draws (lightdraw.js) and
// the layouts of its axes among them, lastDraw: "light" or "full" (set
// window.livecharts.lightDraws = false and every draw is full, as before light draws).
//
// dashboard.js imports the page, the connection and the hooks from here (one socket for many
// panels); on a dashboard page, main() below finds no livechart-config and does nothing.

import { fitValueAxis, steadyAxes, valueRange } from "./axes.js";
import { Backoff, delayAfterClose, TOO_MANY_SOCKETS } from "./backoff.js";
import { bucketWidth, bucketsFor, decimate, visibleSpan } from "./decimate.js";
import { emptyState } from "./emptystate.js";
import { clipFillsToLines } from "./fillclip.js";
import { fillsArea } from "./fillspans.js";
import { withClippedDownload } from "./pngexport.js";
import { breakGaps, drawsLine } from "./gaps.js";
import { countAfter, describeHealth } from "./health.js";
import { showHealthLine } from "./healthline.js";
import { drawsLight, fitsRange, lineRange, maxSlideFor, slideFor } from "./lightdraw.js";
import { LightLines } from "./lightlines.js";
import { EmptyOverlay } from "./overlay.js";
import { restAfter } from "./pace.js";
import { decideBatch, emptyBuffer, mergeBatch } from "./protocol.js";
import { RangeView } from "./rangeview.js";
import { cutoffFor, planExtend, trimBuffer } from "./window.js";

/* global Plotly */

// Errors after which asking again cannot help: stop that chart and say why.
const FINAL_ERRORS = new Set(["forbidden", "not_found"]);
/** How often the health line looks at the clock, ms. */
export const HEALTH_TICK_MS = 250;

export const hooks = {
  /** @type {"connecting"|"live"|"reconnecting"|"offline"} */
  socketState: "connecting",
  /** @type {Object<string, string|null>} last applied batch id per stream */
  lastIds: {},
  /** times received and applied, over all streams and reconnects */
  pointsReceived: 0,
  /** @type {Object<string, string>} */
  feedStates: {},
  paused: false,
  /** @type {WebSocket|null} the current socket (tests close it to exercise a resume) */
  socket: null,
  /** Plotly updates of the stream page's chart (bench/browser.py counts them per second) */
  draws: 0,
  /** ms spent drawing (Plotly calls), all charts of the page */
  drawMs: 0,
  /** breaks (nulls) the stream page's last draw put where points are missing (gaps.js) */
  gapBreaks: 0,
};
window.livecharts = hooks;

/**
 * Plotly draws numeric dates as UTC; shifting by the zone offset *at that time* makes the
 * axis read local wall time (the offset is looked up per point, so DST changes stay right).
 * @param {number} t ms since the epoch, UTC
 */
export function localX(t) {
  return t - new Date(t).getTimezoneOffset() * 60_000;
}

class Chart {
  /**
   * @param {any} config the page's livechart-config
   * @param {HTMLElement} element
   */
  constructor(config, element) {
    this.slug = config.stream;
    this.config = config;
    this.element = element;
    /** @type {string|null} */
    this.lastId = null;
    /** @type {number|null} when we last asked to resync after a missed batch */
    this.resyncSince = null;
    this.buffer = emptyBuffer();
    /** @type {number|null} */
    this.newestX = null;
    this.stopped = false;
    /** true while a range view (rangeview.js) shows stored points: live batches are not applied */
    this.ranged = false;
    /** true from a fresh subscribe until its "subscribed": batches before it are the old subscription's */
    this.awaitingSubscribed = false;
    /**
     * Every point of the window, per trace (in trace order): the traces draw a thinned copy
     * when there are more points than the plot has pixels (decimate.js).
     * @type {{x: number[], y: number[]}[]}
     */
    this.full = [];
    /** @type {any} the feed's last status (subscribed or status frame), for the empty state */
    this.status = null;
    this.overlay = new EmptyOverlay(element.closest(".chart-card"));
    this.light = new LightLines(element);
    /** performance.now() of the last full Plotly draw (lightdraw.js), null before the first */
    this.lastFull = null;
    /** @type {[number, number]|null} the x range Plotly last laid the axis out for (light draws slide from it) */
    this.axisRange = null;
    /** true once a light draw drew lines Plotly's own data for them (calcdata) does not know */
    this.lightSinceFull = false;
    /** true while the pointer is over the chart: full draws, so hover knows every point */
    this.pointed = false;
    /** true during a light draw's own Plotly.relayout */
    this.relayingOut = false;
    /** light draws' own Plotly.relayout calls whose plotly_relayout event is still to come */
    this.ownRelayouts = 0;
    /** @type {WeakSet<object>} plotly_relayout events of our own relayouts (every listener asks) */
    this.ownEvents = new WeakSet();
  }

  /** @param {any} figure */
  async plot(figure) {
    // Areas (never drawn light): their fills stop at the holes the lines stop at, live and in
    // ranges, and in the PNG the mode bar downloads (the range view draws with this config too).
    const fills = fillsArea([...figure.data, this.config.new_trace]);
    if (fills) this.config.plotly_config = withClippedDownload(this.config.plotly_config, this.slug);
    await Plotly.newPlot(this.element, figure.data, steadyAxes(figure.layout), this.config.plotly_config);
    const element = /** @type {any} */ (this.element);
    if (fills) clipFillsToLines(element);
    element.addEventListener("pointerenter", () => {
      this.pointed = true;
    });
    element.addEventListener("pointerleave", () => {
      this.pointed = false;
    });
    // Plotly draws again on its own (a resize, a margin that grew): its lines are then those of
    // its last full draw, older than the points light draws have drawn since. Put ours back.
    element.on("plotly_afterplot", () => {
      if (!this.lightSinceFull || this.ranged || this.relayingOut) return;
      this.light.draw();
      this.light.slide(this.light.slidPx);
    });
    // The viewer zoomed, panned or double-clicked: Plotly drew the axes for it, and the lines
    // from its last full draw. No slide then, and Plotly's data made whole again.
    element.on("plotly_relayout", (/** @type {any} */ event) => {
      const own = this.ownRelayout(event);
      if (own || this.ranged) return;
      this.endLight();
    });
  }

  /**
   * Whether a plotly_relayout event is a light draw's own (Plotly emits them in the order of
   * the calls, after the call returned): the range view and the chart both ask, any order.
   * @param {any} event
   */
  ownRelayout(event) {
    if (event === null || typeof event !== "object") return false;
    if (this.ownEvents.has(event)) return true;
    if (this.ownRelayouts === 0) return false;
    this.ownRelayouts -= 1;
    this.ownEvents.add(event);
    return true;
  }

  /** Plotly's own drawing from here on (a zoom, a range view): no slide, its data made whole. */
  endLight() {
    this.light.slide(0);
    this.lastFull = null;
    if (!this.lightSinceFull) return;
    this.lightSinceFull = false;
    // redraw, not react: react would see the same trace objects and compute nothing again.
    if (!this.ranged) Plotly.redraw(this.element);
  }

  /** Points the live chart holds (over all its traces). */
  held() {
    return this.full.reduce((n, trace) => n + trace.x.length, 0);
  }

  limits() {
    return {
      windowPoints: this.config.window_points ?? null,
      cutoff: cutoffFor(this.newestX, this.config.window_seconds),
    };
  }

  /** @param {import("./protocol.js").Batch} batch */
  take(batch) {
    const { points, newestX } = mergeBatch(this.buffer, batch, localX);
    if (newestX !== null && (this.newestX === null || newestX > this.newestX)) this.newestX = newestX;
    trimBuffer(this.buffer, this.limits());
    this.lastId = batch.id;
    this.resyncSince = null;
    hooks.lastIds[this.slug] = batch.id;
    hooks.pointsReceived += points;
  }

  /** The server no longer holds what we hold: start over from its backfill. */
  reset() {
    this.lastId = null;
    this.resyncSince = null;
    this.newestX = null;
    this.buffer = emptyBuffer();
    this.buffer.reset = true;
    hooks.lastIds[this.slug] = null;
  }

  /** Back from a range view: start over from the server's whole window (then live, no gap). */
  restartLive() {
    this.ranged = false;
    this.reset();
    // Batches of the still-open subscription may be on their way: taken first (lastId is null),
    // they would make the backfill's older ids look seen. Everything they hold is in the backfill.
    this.awaitingSubscribed = true;
  }

  /** One Plotly update for everything buffered since the last frame. */
  draw() {
    if (this.ranged) return; // the range view owns the traces; restartLive empties them
    const element = /** @type {any} */ (this.element);
    const data = /** @type {any[]} */ (element.data ?? []);
    while (this.full.length < data.length) this.full.push({ x: [], y: [] });
    const plan = planExtend({
      traceNames: data.map((trace) => trace.name),
      traceXs: this.full.map((trace) => trace.x),
      buffer: this.buffer,
      limits: this.limits(),
    });
    this.buffer = emptyBuffer();
    if (plan === null) return;
    const now = performance.now();
    // Light or full (lightdraw.js), decided on the traces as they were drawn last.
    const light =
      hooks.lightDraws !== false &&
      drawsLight({
        traces: data,
        plan: { clear: plan.reset ? [0] : [], addTraces: plan.addTraces },
        now,
        lastFull: this.lastFull,
        pointed: this.pointed,
        xaxis: { type: element._fullLayout?.xaxis?.type, autorange: element.layout?.xaxis?.autorange },
        yaxis: {
          type: element._fullLayout?.yaxis?.type,
          range: element._fullLayout?.yaxis?.range,
          autorange: element.layout?.yaxis?.autorange,
        },
      });
    if (plan.reset) this.full = data.map(() => ({ x: [], y: [] }));
    if (plan.addTraces.length > 0) {
      Plotly.addTraces(
        element,
        plan.addTraces.map((name) => ({ ...this.config.new_trace, name, x: [], y: [] })),
      );
      for (const _ of plan.addTraces) this.full.push({ x: [], y: [] });
    }
    plan.indices.forEach((index, k) => appendWindow(this.full[index], plan, k));
    // Every trace from its whole window, thinned to what the plot's width can show.
    const columns = element._fullLayout?._size?.w ?? element.clientWidth ?? 0;
    const zoomed = element.layout?.xaxis?.autorange === false ? element.layout.xaxis.range : null;
    const width = bucketWidth(visibleSpan(this.full.map((trace) => trace.x), zoomed), bucketsFor(columns));
    let breaks = 0;
    this.full.forEach((trace, index) => {
      const drawn = decimate(trace.x, trace.y, { columns, width });
      if (drawsLine(element.data[index])) {
        // Thinned points are up to two buckets apart with no point missing between them.
        const broken = breakGaps(drawn.x, drawn.y, { floor: 2 * width });
        breaks += broken.breaks;
        element.data[index].x = broken.x;
        element.data[index].y = broken.y;
      } else {
        element.data[index].x = drawn.x;
        element.data[index].y = drawn.y;
      }
    });
    hooks.gapBreaks = breaks;
    if (light && this.drawLight()) {
      hooks.draws += 1;
      hooks.lightDrawn = (hooks.lightDrawn ?? 0) + 1;
      hooks.lastDraw = "light";
      this.showEmpty();
      return;
    }
    this.lastFull = now;
    this.lightSinceFull = false;
    hooks.lastDraw = "full";
    this.light.slide(0);
    if (this.config.fill_to_min) fitValueAxis(element, this.full.map((trace) => trace.y));
    // The traces' arrays were replaced in place: Plotly computes and draws them again.
    Plotly.redraw(element);
    const laid = element._fullLayout?.xaxis;
    this.axisRange = laid?.type === "date" && Array.isArray(laid.range) ? laid.range.map((r) => laid.r2l(r)) : null;
    hooks.draws += 1;
    this.showEmpty();
  }

  /**
   * A light draw (lightdraw.js) of the traces' new arrays (element.data): the x axis moved to
   * them by a slide, or laid out again by Plotly when sliding cannot show them, then each
   * line's path rebuilt. False when it could not (a full draw then).
   */
  drawLight() {
    const element = /** @type {any} */ (this.element);
    const data = /** @type {any[]} */ (element.data);
    const range = lineRange(data.map((trace) => trace.x));
    const lines = this.light.lines();
    if (range === null || lines.size !== data.length) return false;
    const xaxis = element._fullLayout.xaxis;
    const pxPerX = (xaxis.c2p(range[0] + 1000) - xaxis.c2p(range[0])) / 1000;
    const yFits = fitsRange(data.map((trace) => trace.y), element._fullLayout.yaxis.range);
    const maxSlidePx = maxSlideFor(element._fullLayout._size?.w ?? 0);
    let slide = yFits ? slideFor({ axisRange: this.axisRange, range, pxPerX, maxSlidePx }) : null;
    if (slide === null) {
      this.light.slide(0);
      // Plotly's pan path: the axes and their labels drawn again, the traces from what Plotly
      // computed at the last full draw; their lines are then replaced by the new points'.
      /** @type {any} */
      const ranges = { "xaxis.range": range };
      if (!yFits) ranges["yaxis.range"] = valueRange(data.map((trace) => trace.y));
      this.ownRelayouts += 1;
      this.relayingOut = true; // its lines are drawn below, once
      try {
        // A refused relayout emits no event: it must not take the viewer's next one for ours.
        Plotly.relayout(element, ranges).catch(() => {
          this.ownRelayouts = Math.max(0, this.ownRelayouts - 1);
        });
      } finally {
        this.relayingOut = false;
      }
      // A hack, labelled as one: the ranges above stand for autorange until the next full draw,
      // and the chart stays live. Left false, the next full draw would keep them, and the
      // viewer's zoom could not be told from ours.
      element.layout.xaxis.autorange = true;
      element.layout.yaxis.autorange = true;
      this.axisRange = range;
      hooks.axisDraws = (hooks.axisDraws ?? 0) + 1;
      slide = 0;
    }
    this.light.draw(lines);
    this.light.slide(slide);
    this.lightSinceFull = true;
    return true;
  }

  /** The empty state while the live chart holds no point (a range view shows its own). */
  showEmpty() {
    if (this.ranged) return;
    this.overlay.show(
      emptyState({ points: this.held(), status: this.status, connection: hooks.socketState, stopped: this.stopped }),
    );
  }
}

/**
 * Append a plan's points for one trace to the trace's whole window, then drop from the front
 * what the window no longer keeps (window.js worked out how many it keeps).
 * @param {{x: number[], y: number[]}} trace
 * @param {import("./window.js").Plan} plan
 * @param {number} k  the trace's place in the plan
 */
function appendWindow(trace, plan, k) {
  const xs = plan.update.x[k];
  const ys = plan.update.y[k];
  for (let i = 0; i < xs.length; i += 1) {
    trace.x.push(xs[i]);
    trace.y.push(ys[i]);
  }
  const drop = trace.x.length - plan.maxPoints.x[k];
  if (drop > 0) {
    trace.x.splice(0, drop);
    trace.y.splice(0, drop);
  }
}

export class Page {
  constructor() {
    this.connectionBadge = document.getElementById("connection-badge");
    this.feedBadge = document.getElementById("feed-badge");
    this.banner = document.getElementById("banner");
    this.pauseButton = document.getElementById("pause-button");
    this.health = document.getElementById("feed-health");
    /** @type {any} */
    this.lastStatus = null;
    /** @type {number|undefined} */
    this.countdown = undefined;
    // "last point 3 s ago" keeps counting between status frames: looked at four times a
    // second (a cell is written only when its text changes), so no second is skipped.
    if (this.health) window.setInterval(() => this.showHealth(), HEALTH_TICK_MS);
    /** @type {number|undefined} */
    this.bannerTimer = undefined;
    /** @type {"live"|"range"} a range view shows stored points: the badge says "range" */
    this.view = "live";
    /** @type {number|undefined} */
    this.retryAt = undefined;
    /** @type {import("./health.js").Seen} points received since the last status frame */
    this.seen = { lastPointAt: null, pointsAfter: 0 };
    /** @type {(() => void)[]} called when the connection or a feed's state changes */
    this.listeners = [];
  }

  changed() {
    for (const listener of this.listeners) listener();
  }

  /**
   * A batch was applied: the health line counts its points and ages from its newest one at
   * once, instead of waiting for the next status frame.
   * @param {import("./protocol.js").Batch} batch
   */
  received(batch) {
    const ts = Array.isArray(batch.t) ? batch.t : [];
    if (ts.length === 0) return;
    const since = typeof this.lastStatus?.last_point_at === "number" ? this.lastStatus.last_point_at * 1000 : null;
    this.seen.pointsAfter += countAfter(ts, since);
    let newest = this.seen.lastPointAt;
    for (const t of ts) if (newest === null || t / 1000 > newest) newest = t / 1000;
    this.seen.lastPointAt = newest;
    this.showHealth();
  }

  /** @param {"live"|"range"} view */
  setView(view) {
    this.view = view;
    document.body.dataset.view = view;
    // Pause applies to live points only: a range view shows it off and out of use.
    const pause = this.pauseButton;
    if (pause) {
      pause.disabled = view === "range";
      pause.title = view === "range" ? "Pause applies to the live view" : "";
      if (view === "range") {
        pause.setAttribute("aria-pressed", "false");
        pause.textContent = "Pause";
      }
    }
    this.setConnection(hooks.socketState, this.retryAt);
  }

  /**
   * @param {"connecting"|"live"|"reconnecting"|"offline"} state
   * @param {number} [retryAt] performance.now() of the next attempt, while reconnecting
   */
  setConnection(state, retryAt) {
    hooks.socketState = state;
    document.body.dataset.connection = state;
    window.clearInterval(this.countdown);
    this.countdown = undefined;
    this.retryAt = retryAt;
    this.changed();
    if (!this.connectionBadge) return;
    if (this.view === "range") {
      // Stored points are on screen, not the socket's; it stays open for the way back to live.
      this.connectionBadge.dataset.state = "range";
      this.connectionBadge.textContent = "range";
      this.connectionBadge.title = `Showing stored points; the live connection is ${state}`;
      return;
    }
    this.connectionBadge.title = "Connection to the server";
    this.connectionBadge.dataset.state = state;
    if (state === "reconnecting" && retryAt !== undefined) {
      const show = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - performance.now()) / 1000));
        this.connectionBadge.textContent = `reconnecting in ${seconds} s`;
      };
      show();
      this.countdown = window.setInterval(show, 1000);
    } else {
      this.connectionBadge.textContent = state;
    }
  }

  /** @param {string} slug @param {any} status */
  setFeed(slug, status) {
    const state = typeof status?.state === "string" ? status.state : "unknown";
    hooks.feedStates[slug] = state;
    document.body.dataset.feed = state;
    if (!this.feedBadge) return;
    this.feedBadge.dataset.state = state;
    this.feedBadge.textContent = state === "unknown" ? "feed: waiting" : `feed: ${state}`;
    this.feedBadge.title = status?.error ? `Feed error: ${status.error}` : "State of the stream's feed";
    if (status !== this.lastStatus) this.seen.pointsAfter = 0; // the new status counts them
    this.lastStatus = status ?? null;
    this.showHealth();
    this.changed();
  }

  showHealth() {
    if (!this.health || this.lastStatus === null) return;
    showHealthLine(this.health, describeHealth(this.lastStatus, Date.now() / 1000, this.seen));
  }

  /**
   * @param {string|null} message
   * @param {{transient?: boolean}} [options] transient banners go away by themselves
   */
  showBanner(message, { transient = false } = {}) {
    window.clearTimeout(this.bannerTimer);
    if (transient) this.bannerTimer = window.setTimeout(() => this.showBanner(null), 8000);
    if (!this.banner) return;
    this.banner.textContent = message ?? "";
    this.banner.hidden = !message;
  }

  /** Nothing more will come: the feed's last state would be stale. */
  clearFeed() {
    if (this.feedBadge) this.feedBadge.hidden = true;
    delete document.body.dataset.feed;
  }
}

export class Connection {
  /**
   * @param {string} url
   * @param {Map<string, Chart>} charts
   * @param {Page} page
   */
  constructor(url, charts, page) {
    this.url = url;
    this.charts = charts;
    this.page = page;
    this.backoff = new Backoff();
    /** @type {WebSocket|null} */
    this.socket = null;
    this.stopped = false;
    this.paused = false;
    this.everOpened = false;
    /** the last close was 4029 (too many sockets): its banner goes when a socket opens */
    this.crowded = false;
    this.frameRequested = false;
    /** performance.now() before which the next draw waits (pace.js) */
    this.restUntil = 0;
    /** @type {number|undefined} */
    this.retryTimer = undefined;
    window.addEventListener("online", () => this.retrySoon());
    window.addEventListener("offline", () => {
      if (this.socket?.readyState !== WebSocket.OPEN) this.page.setConnection("offline");
    });
  }

  connect() {
    window.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.stopped) return;
    // The badge loses its countdown while an attempt is under way.
    this.page.setConnection(this.everOpened || this.backoff.attempt > 0 ? "reconnecting" : "connecting");
    const socket = new WebSocket(this.url);
    this.socket = hooks.socket = socket;
    socket.addEventListener("open", () => this.onOpen(socket));
    socket.addEventListener("message", (event) => this.onMessage(event));
    socket.addEventListener("close", (event) => this.onClose(socket, event));
  }

  /** @param {WebSocket} socket */
  onOpen(socket) {
    if (socket !== this.socket) return;
    this.backoff.opened(performance.now());
    this.everOpened = true;
    this.page.setConnection("live");
    if (this.crowded) this.page.showBanner(null);
    this.crowded = false;
    for (const chart of this.charts.values()) {
      chart.resyncSince = null;
      if (!chart.stopped) this.subscribe(chart);
    }
  }

  /** Resume from the last id we hold (null: send the whole window). @param {Chart} chart */
  subscribe(chart) {
    this.send({ op: "subscribe", stream: chart.slug, after: chart.lastId });
  }

  /** @param {object} message */
  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** @param {WebSocket} socket @param {CloseEvent} event */
  onClose(socket, event) {
    if (socket !== this.socket) return;
    this.socket = hooks.socket = null;
    // Every close is worth a reconnect (4008, 4029, 1001, a dropped network): access taken
    // away ends a chart by an error frame (FINAL_ERRORS), not by closing the shared socket.
    if (this.stopped) return;
    const delay = delayAfterClose(event.code, this.backoff.closed(performance.now()));
    const retryAt = performance.now() + delay;
    if (navigator.onLine === false) this.page.setConnection("offline");
    else this.page.setConnection("reconnecting", retryAt);
    if (event.code === TOO_MANY_SOCKETS) {
      // Stays up (the error frame's banner is transient) until a later socket opens.
      this.crowded = true;
      this.page.showBanner(
        `Too many LiveCharts pages are open for your account: close some tabs. ` +
          `This page tries again in ${Math.ceil(delay / 1000)} s.`,
      );
    }
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  /** The network came back: do not sit out the rest of a long backoff. */
  retrySoon() {
    if (this.retryTimer === undefined || this.stopped) return;
    this.connect();
  }

  /** @param {string} message */
  stop(message) {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.page.setConnection("offline");
    this.page.clearFeed();
    this.page.showBanner(message);
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
  }

  /** @param {MessageEvent} event */
  onMessage(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return; // not ours to understand; the protocol is JSON only
    }
    switch (frame?.op) {
      case "points":
        this.onPoints(frame.data ?? []);
        break;
      case "subscribed":
        this.withChart(frame.stream, (chart) => {
          chart.awaitingSubscribed = false;
          chart.status = frame.status;
          this.page.setFeed(chart.slug, frame.status);
        });
        break;
      case "status":
        this.withChart(frame.stream, (chart) => {
          chart.status = frame;
          this.page.setFeed(chart.slug, frame);
        });
        break;
      case "gap":
        // We asked to resume from an id the window no longer holds: what we show would have a
        // hole in it. Empty the chart; the backfill that follows (prev null) refills it.
        this.withChart(frame.stream, (chart) => {
          chart.reset();
          this.requestFrame();
        });
        break;
      case "error":
        this.onError(frame);
        break;
      default:
        break; // "unsubscribed" and anything newer: nothing to do
    }
  }

  /** @param {string} slug @param {(chart: Chart) => void} action */
  withChart(slug, action) {
    const chart = this.charts.get(slug);
    if (chart && !chart.stopped) action(chart);
  }

  /** @param {import("./protocol.js").Batch[]} batches */
  onPoints(batches) {
    const now = performance.now();
    for (const batch of batches) {
      const chart = this.charts.get(batch?.stream);
      if (!chart || chart.stopped || chart.ranged || chart.awaitingSubscribed) continue;
      const decision = decideBatch(chart, batch, now);
      if (decision === "apply") {
        chart.take(batch);
        this.page.received(batch);
      } else if (decision === "resubscribe") {
        // A batch went missing on the live path: the server re-sends from our last id.
        chart.resyncSince = now;
        this.subscribe(chart);
      }
    }
    this.requestFrame();
  }

  /** @param {{code?: string, message?: string, stream?: string}} frame */
  onError(frame) {
    const chart = frame.stream ? this.charts.get(frame.stream) : undefined;
    if (chart && FINAL_ERRORS.has(frame.code ?? "")) {
      chart.stopped = true;
      // The server says why when it can (signed out, access taken away); else a generic word.
      const why = frame.message
        ? `“${chart.slug}”: ${frame.message}.`
        : frame.code === "forbidden"
          ? `You may not see “${chart.slug}” (any more): sign in, or ask an operator for access, then reload.`
          : `There is no stream “${chart.slug}” any more.`;
      if ([...this.charts.values()].every((each) => each.stopped)) this.stop(why);
      else this.page.showBanner(why);
      return;
    }
    if (chart && frame.code === "rate_limited") chart.resyncSince = null; // let the next mismatch ask again
    this.page.showBanner(`The server said: ${frame.message ?? frame.code ?? "error"}`, { transient: true });
  }

  /**
   * Coalesce: at most one Plotly update per chart per animation frame, and after each, a rest
   * (pace.js) so drawing keeps the main thread under half busy: a chart of 1,000 points/s then
   * draws as often as the machine allows, and the page keeps its frames.
   */
  requestFrame() {
    if (this.frameRequested || this.paused) return;
    this.frameRequested = true;
    const frame = () => {
      // Resting: look again next frame. Frames, not timers, so a hidden tab does no work at all.
      if (!this.paused && performance.now() < this.restUntil) {
        window.requestAnimationFrame(frame);
        return;
      }
      this.frameRequested = false;
      if (this.paused) return;
      const start = performance.now();
      for (const chart of this.charts.values()) chart.draw();
      const end = performance.now();
      hooks.drawMs += end - start;
      this.restUntil = end + restAfter(end - start);
    };
    window.requestAnimationFrame(frame);
  }

  /** Paused: keep receiving (ids move on, the buffer fills within the window); draw on resume. */
  setPaused(paused) {
    this.paused = hooks.paused = paused;
    document.body.dataset.paused = String(paused);
    if (!paused) this.requestFrame();
  }
}

/** @param {string} id */
export function readJson(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent ?? "null") : null;
}

async function main() {
  const config = readJson("livechart-config");
  if (!config) return;
  const page = new Page();
  page.setConnection("connecting");
  const element = document.getElementById(config.chart);
  if (!element || typeof Plotly === "undefined") {
    page.setConnection("offline");
    page.showBanner("The chart library did not load. Reload the page.");
    return;
  }
  const chart = new Chart(config, element);
  await chart.plot(readJson(config.figure));
  page.listeners.push(() => chart.showEmpty());
  chart.showEmpty();
  // The whole live window of a series (its trace may draw a thinned copy): for tests.
  hooks.liveWindow = (/** @type {string} */ name) => {
    const index = (/** @type {any} */ (element).data ?? []).findIndex((/** @type {any} */ t) => t.name === name);
    const held = chart.full[index] ?? { x: [], y: [] };
    return { x: [...held.x], y: [...held.y] };
  };
  // Dashboards put several charts on one page; they share this socket.
  const charts = new Map([[chart.slug, chart]]);
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const connection = new Connection(`${scheme}//${window.location.host}${config.ws_path}`, charts, page);
  page.pauseButton?.addEventListener("click", () => {
    const paused = !connection.paused;
    connection.setPaused(paused);
    page.pauseButton.setAttribute("aria-pressed", String(paused));
    page.pauseButton.textContent = paused ? "Resume" : "Pause";
  });
  const ranges = new RangeView({ chart, connection, page, hooks }).attach();
  connection.connect();
  ranges.fromAddress();
}

main().catch((error) => {
  document.body.dataset.connection = hooks.socketState = "offline";
  const banner = document.getElementById("banner");
  if (banner) {
    banner.textContent = `The chart could not start: ${error}`;
    banner.hidden = false;
  }
  throw error;
});
