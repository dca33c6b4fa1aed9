// The stream list's entry: a live sparkline and the newest value on each card, and each card's
// health line kept current (its age ticking every second), over one socket for the page.
// Uses live.js's Connection as the dashboard does; each card is a "chart" that keeps the newest
// points of its stream's first series (sparkline.js draws them).
//
// Test hook: window.livecharts.sparks[<slug>] = {points, draws, path, value}.

import { formatNumber } from "./format.js";
import { countAfter, describeHealth } from "./health.js";
import { showHealthLine } from "./healthline.js";
import { Connection, HEALTH_TICK_MS, hooks, localX, Page, readJson } from "./live.js";
import { SPARK_POINTS, sparkPath, trimSpark } from "./sparkline.js";

// The server refuses more than 100 streams on one socket (docs/protocol.md).
const MAX_STREAMS = 100;
const BOX = { width: 120, height: 28, pad: 2 };

/** One card: what live.js's Connection expects of a chart, drawing a sparkline. */
class SparkCard {
  /** @param {{slug: string, decimals: number|null}} config @param {HTMLElement} card */
  constructor(config, card) {
    this.slug = config.slug;
    this.decimals = config.decimals;
    this.card = card;
    this.path = card.querySelector(".spark path");
    this.valueCell = card.querySelector("[data-spark-value]");
    this.health = card.querySelector(".health");
    /** @type {string|null} */
    this.lastId = null;
    /** @type {number|null} */
    this.resyncSince = null;
    this.stopped = false;
    this.ranged = false;
    this.awaitingSubscribed = false;
    /** @type {string|null} the series drawn: the first one the stream sends */
    this.series = null;
    this.line = { x: /** @type {number[]} */ ([]), y: /** @type {number[]} */ ([]) };
    this.dirty = false;
    /** @type {any} */
    this.status = null;
    /** @type {import("./health.js").Seen} */
    this.seen = { lastPointAt: null, pointsAfter: 0 };
    this.hook = { points: 0, draws: 0, path: "", value: null };
    hooks.sparks[this.slug] = this.hook;
  }

  /** @param {import("./protocol.js").Batch} batch */
  take(batch) {
    const ts = Array.isArray(batch.t) ? batch.t : [];
    if (this.series === null) this.series = Object.keys(batch.y ?? {})[0] ?? null;
    const ys = this.series === null ? [] : (batch.y?.[this.series] ?? []);
    for (let i = 0; i < ts.length; i += 1) {
      const y = ys[i];
      if (typeof y !== "number" || !Number.isFinite(y)) continue;
      this.line.x.push(localX(ts[i]));
      this.line.y.push(y);
    }
    trimSpark(this.line, SPARK_POINTS);
    const since = typeof this.status?.last_point_at === "number" ? this.status.last_point_at * 1000 : null;
    this.seen.pointsAfter += countAfter(ts, since);
    for (const t of ts) if (this.seen.lastPointAt === null || t / 1000 > this.seen.lastPointAt) this.seen.lastPointAt = t / 1000;
    this.lastId = batch.id;
    this.resyncSince = null;
    hooks.lastIds[this.slug] = batch.id;
    this.hook.points += ts.length;
    this.dirty = true;
  }

  reset() {
    this.lastId = null;
    this.resyncSince = null;
    this.line = { x: [], y: [] };
    this.dirty = true;
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const path = sparkPath(this.line.x, this.line.y, BOX);
    this.path?.setAttribute("d", path);
    this.card.dataset.spark = path ? "drawn" : "empty";
    const value = this.line.y.length > 0 ? this.line.y[this.line.y.length - 1] : null;
    if (this.valueCell) this.valueCell.textContent = value === null ? "" : formatNumber(value, this.decimals);
    Object.assign(this.hook, { path, value, draws: this.hook.draws + 1 });
    this.showHealth();
  }

  /** @param {any} status */
  setStatus(status) {
    if (status !== this.status) this.seen.pointsAfter = 0;
    this.status = status ?? null;
    this.showHealth();
  }

  showHealth() {
    if (!this.health || this.status === null) return;
    showHealthLine(this.health, describeHealth(this.status, Date.now() / 1000, this.seen));
  }
}

/** The list's Page: no badges; a feed's state goes to its card. */
class ListPage extends Page {
  /** @param {Map<string, SparkCard>} cards */
  constructor(cards) {
    super();
    this.cards = cards;
    window.setInterval(() => {
      for (const card of cards.values()) card.showHealth();
    }, HEALTH_TICK_MS);
  }

  /** @param {string} slug @param {any} status */
  setFeed(slug, status) {
    hooks.feedStates[slug] = typeof status?.state === "string" ? status.state : "unknown";
    this.cards.get(slug)?.setStatus(status);
  }

  clearFeed() {}

  /** @param {import("./protocol.js").Batch} _batch */
  received(_batch) {} // each card counts its own
}

function main() {
  const config = readJson("stream-list-config");
  if (!config) return;
  hooks.sparks = {};
  /** @type {Map<string, SparkCard>} */
  const cards = new Map();
  for (const stream of config.streams.slice(0, MAX_STREAMS)) {
    const card = document.querySelector(`[data-card="${CSS.escape(stream.slug)}"]`);
    if (card instanceof HTMLElement) cards.set(stream.slug, new SparkCard(stream, card));
  }
  if (cards.size === 0) return;
  const page = new ListPage(cards);
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  new Connection(`${scheme}//${window.location.host}${config.ws_path}`, cards, page).connect();
}

main();
