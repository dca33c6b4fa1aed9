// The dashboard's time-range picker: Live, a preset or a custom range for every panel at once.
// Each stream of the page is asked for its stored points once (/streams/<slug>/range); every
// panel draws its part of the answers (dashboard.js: showRange, backToLive); Live subscribes
// every stream again from scratch, so it comes back whole with no gap. The range is written to
// the address (urlrange.js), so a link opens the dashboard at the same range.
//
// Test hook: window.livecharts.range = {view, chosen, start, end, loading, requests, failed}.

import { describeFailure, Latest, rangeUrl, readAnswer } from "./range.js";
import { RangePicker } from "./rangepicker.js";

/** @typedef {import("./range.js").Range} Range */
/** @typedef {import("./range.js").Answer} Answer */

export class DashboardRange {
  /**
   * @param {{panels: any[], feeds: Map<string, any>, connection: any, page: any, hooks: any}} parts
   *   dashboard.js's panels and stream feeds, live.js's Connection, Page and hooks
   */
  constructor({ panels, feeds, connection, page, hooks }) {
    this.panels = panels;
    this.feeds = feeds;
    this.connection = connection;
    this.page = page;
    this.hooks = hooks;
    this.note = document.getElementById("range-note");
    this.latest = new Latest();
    /** @type {AbortController|null} */
    this.controller = null;
    this.ranged = false;
    /** @type {Range|null} */
    this.range = null;
    hooks.range = { view: "live", chosen: "live", start: null, end: null, loading: false, requests: 0, failed: 0 };
    this.picker = new RangePicker({ owner: this, page, hooks });
  }

  attach() {
    this.picker.attach();
    return this;
  }

  /** Show what the address asks for (a shared link). */
  fromAddress() {
    this.picker.fromAddress();
  }

  /** The range on screen, where the custom form opens; null when live. */
  shownRange() {
    return this.range;
  }

  /** @param {string} key @param {Range|null} range @param {boolean} address */
  setChosen(key, range, address) {
    this.picker.setPressed(key);
    if (address) this.picker.writeAddress(key, range);
  }

  /**
   * Every panel at `range`: stored points of each stream, fetched once however many panels show it.
   * @param {string} key @param {Range} range @param {{address?: boolean}} [options]
   */
  async showRange(key, range, { address = true } = {}) {
    this.setChosen(key, range, address);
    this.range = range;
    this.enterRange();
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const token = this.latest.begin();
    this.setLoading(true);
    const slugs = [...this.feeds.keys()];
    const answers = new Map(
      await Promise.all(slugs.map(async (slug) => [slug, await this.fetchRange(slug, range, controller.signal)])),
    );
    if (!this.latest.finish(token) || !this.ranged) return;
    this.setLoading(false);
    const failed = [...answers.values()].filter((answer) => "failure" in answer);
    this.hooks.range.failed = failed.length;
    if (failed.length > 0) this.page.showBanner(describeFailure(failed[0].failure));
    else this.page.showBanner(null);
    /** @type {Map<string, Answer>} */
    const good = new Map();
    for (const [slug, answer] of answers) if (!("failure" in answer)) good.set(slug, answer);
    await Promise.all(this.panels.map((panel) => panel.showRange(good, range)));
    if (!this.latest.isCurrent(token) || !this.ranged) return;
    let stored = 0;
    for (const answer of good.values()) stored += answer.stored;
    this.setNote(`${stored.toLocaleString("en-US")} stored point${stored === 1 ? "" : "s"}`);
    Object.assign(this.hooks.range, { start: range.start, end: range.end });
  }

  /**
   * @param {string} slug @param {Range} range @param {AbortSignal} signal
   * @returns {Promise<Answer|{failure: {status?: number, body?: any, error?: unknown}}>}
   */
  async fetchRange(slug, range, signal) {
    this.hooks.range.requests += 1;
    try {
      const response = await fetch(rangeUrl(`/streams/${encodeURIComponent(slug)}/range`, range), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        redirect: "manual",
        signal,
      });
      if (response.type === "opaqueredirect") return { failure: { status: 401 } };
      const body = await response.json().catch(() => null);
      if (!response.ok) return { failure: { status: response.status, body } };
      try {
        return readAnswer(body);
      } catch (error) {
        return { failure: { status: response.status, body: { message: String(error) } } };
      }
    } catch (error) {
      return { failure: { error } };
    }
  }

  /** Stop drawing live points; the socket stays open (feed states keep coming). */
  enterRange() {
    if (this.ranged) return;
    this.ranged = true;
    for (const feed of this.feeds.values()) feed.ranged = true;
    for (const panel of this.panels) panel.ranged = true;
    if (this.connection.paused) this.connection.setPaused(false);
    this.page.setView("range");
    this.hooks.range.view = "range";
  }

  /** Back to live: every panel emptied, every stream subscribed again for its whole window. */
  goLive({ address = true } = {}) {
    this.latest.cancel();
    this.controller?.abort();
    this.controller = null;
    this.setLoading(false);
    this.setChosen("live", null, address);
    this.range = null;
    this.setNote("");
    if (!this.ranged) return;
    this.ranged = false;
    for (const panel of this.panels) panel.backToLive();
    for (const feed of this.feeds.values()) {
      feed.restartLive();
      if (!feed.stopped) this.connection.subscribe(feed);
    }
    this.page.setView("live");
    Object.assign(this.hooks.range, { view: "live", start: null, end: null });
  }

  /** @param {boolean} loading */
  setLoading(loading) {
    this.hooks.range.loading = loading;
    if (loading) this.setNote("loading…");
    if (this.note) this.note.dataset.loading = String(loading);
    document.querySelector(".dashboard-grid")?.setAttribute("aria-busy", String(loading));
  }

  /** @param {string} text */
  setNote(text) {
    if (!this.note) return;
    this.note.textContent = text;
    this.note.hidden = !text;
  }
}
