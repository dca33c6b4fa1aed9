// The time-range picker of the stream page (rangeview.js) and the dashboard (dashrange.js):
// its buttons, the custom-range form and the address (urlrange.js). What a choice shows is the
// owner's: the picker calls owner.goLive or owner.showRange.

import { customRange, formatLocalInput, presetRange } from "./range.js";
import { readRangeQuery, writeRangeQuery } from "./urlrange.js";

/** @typedef {import("./range.js").Range} Range */
/**
 * @typedef {object} RangeOwner
 * @property {(options?: {address?: boolean}) => void} goLive
 * @property {(key: string, range: Range, options?: {address?: boolean}) => unknown} showRange
 * @property {() => Range|null} shownRange the range on screen, where the custom form opens
 */

export class RangePicker {
  /** @param {{owner: RangeOwner, page: any, hooks: any}} parts page: live.js's Page (banner) */
  constructor({ owner, page, hooks }) {
    this.owner = owner;
    this.page = page;
    this.hooks = hooks;
    this.element = document.getElementById("range-picker");
    this.buttons = /** @type {HTMLButtonElement[]} */ ([...(this.element?.querySelectorAll("[data-range]") ?? [])]);
    this.form = /** @type {HTMLFormElement|null} */ (document.getElementById("custom-range"));
    this.formError = document.getElementById("custom-range-error");
    /** the button pressed: a preset key, "live", "custom", or the owner's own ("zoom") */
    this.chosen = "live";
  }

  /** Wire the buttons, the form and the browser's back and forward buttons. */
  attach() {
    for (const button of this.buttons) {
      button.addEventListener("click", () => this.choose(button.dataset.range ?? "live"));
    }
    this.form?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyCustom();
    });
    window.addEventListener("popstate", () => this.fromAddress());
  }

  /** Show what the address asks for (a shared link); a bad range there is Live, with a word why. */
  fromAddress() {
    const chosen = readRangeQuery(window.location.search, Date.now());
    if (chosen.error) this.page.showBanner(chosen.error, { transient: true });
    this.toggleForm(false);
    if (chosen.range === null) this.owner.goLive({ address: false });
    else this.owner.showRange(chosen.key, chosen.range, { address: false });
  }

  /** @param {string} key */
  choose(key) {
    if (key === "custom") {
      this.toggleForm();
      return;
    }
    this.toggleForm(false);
    if (key === "live") {
      this.owner.goLive();
      return;
    }
    const range = presetRange(key, Date.now());
    if (range !== null) this.owner.showRange(key, range);
  }

  /** @param {boolean} [open] */
  toggleForm(open) {
    if (!this.form) return;
    const show = open ?? this.form.hidden;
    this.form.hidden = !show;
    this.buttons.find((b) => b.dataset.range === "custom")?.setAttribute("aria-expanded", String(show));
    if (!show) return;
    const now = Date.now();
    const range = this.owner.shownRange() ?? { start: now - 3_600_000, end: now };
    const [start, end] = [this.form.elements.namedItem("start"), this.form.elements.namedItem("end")];
    for (const [input, value] of [
      [start, range.start],
      [end, range.end],
    ]) {
      if (!(input instanceof HTMLInputElement)) continue;
      input.value = formatLocalInput(value);
      input.max = formatLocalInput(now + 60_000);
    }
    this.setFormError("");
    if (start instanceof HTMLInputElement) start.focus();
  }

  applyCustom() {
    if (!this.form) return;
    const value = (/** @type {string} */ name) => {
      const input = this.form?.elements.namedItem(name);
      return input instanceof HTMLInputElement ? input.value : "";
    };
    const result = customRange({ start: value("start"), end: value("end"), now: Date.now() });
    if ("error" in result) {
      this.setFormError(result.error);
      return;
    }
    this.toggleForm(false);
    this.owner.showRange("custom", result.range);
  }

  /** @param {string} message */
  setFormError(message) {
    if (!this.formError) return;
    this.formError.textContent = message;
    this.formError.hidden = !message;
  }

  /** @param {string} key */
  setPressed(key) {
    this.chosen = key;
    this.hooks.range.chosen = key;
    for (const button of this.buttons) button.setAttribute("aria-pressed", String(button.dataset.range === key));
  }

  /**
   * The address says what is on screen, so it can be shared: a new history entry for a choice,
   * the same entry for a zoom.
   * @param {string} key @param {Range|null} range @param {{replace?: boolean}} [options]
   */
  writeAddress(key, range, { replace = false } = {}) {
    const query = writeRangeQuery(window.location.search, { key, range });
    const url = `${window.location.pathname}${query}${window.location.hash}`;
    if (url === `${window.location.pathname}${window.location.search}${window.location.hash}`) return;
    if (replace) window.history.replaceState(null, "", url);
    else window.history.pushState(null, "", url);
  }
}
