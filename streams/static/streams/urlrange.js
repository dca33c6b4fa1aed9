// The range a page shows, in its address: a link to a stream or dashboard opens at the same
// range. `?range=1h` is a preset (the last hour when the link is opened), `?start=&end=` a fixed
// range (epoch ms or ISO 8601, as the /range endpoint takes them); no parameter is Live.
// Pure: no DOM (the page passes location.search in and history.replaceState's argument out).

import { PRESETS } from "./range.js";

/** @typedef {import("./range.js").Range} Range */
/** @typedef {{key: string, range: Range|null, error?: string}} Chosen  key: "live", a preset, "custom" */

/**
 * A time from the address: epoch ms ("1763800000000") or ISO 8601 (no zone means UTC, as on
 * the server). Null when it is neither.
 * @param {string|null} text
 * @returns {number|null}
 */
export function parseTime(text) {
  const value = (text ?? "").trim();
  if (!value) return null;
  if (/^\d{1,15}(\.\d+)?$/.test(value)) return Number(value);
  const iso = /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/i.exec(value);
  if (iso === null) return null;
  const zoned = iso[4] || !iso[1] ? value : `${value}Z`;
  const t = Date.parse(zoned);
  return Number.isFinite(t) ? t : null;
}

/**
 * What the address asks to show. A malformed or unknown range is Live, with `error` saying why.
 * @param {string|URLSearchParams} search  location.search
 * @param {number} now UTC ms
 * @returns {Chosen}
 */
export function readRangeQuery(search, now) {
  const params = typeof search === "string" ? new URLSearchParams(search) : search;
  const key = params.get("range");
  if (key !== null && key !== "custom") {
    const preset = PRESETS.find((each) => each.key === key);
    if (preset === undefined) return { key: "live", range: null, error: `There is no range “${key}”: showing Live.` };
    return { key, range: preset.span === null ? null : { start: now - preset.span, end: now } };
  }
  const [startText, endText] = [params.get("start"), params.get("end")];
  if (startText === null && endText === null) return { key: "live", range: null };
  const start = parseTime(startText);
  if (start === null) return { key: "live", range: null, error: "The address's range has no valid start: showing Live." };
  const end = endText === null || endText === "" ? now : parseTime(endText);
  if (end === null) return { key: "live", range: null, error: "The address's range has no valid end: showing Live." };
  if (!(start < end)) return { key: "live", range: null, error: "The address's range starts after it ends: showing Live." };
  return { key: "custom", range: { start, end: Math.min(end, now) } };
}

/**
 * The address's query for a chosen range, other parameters kept: `range=<preset>` for a preset,
 * `start`/`end` in epoch ms for a custom range (or a zoom), nothing for Live.
 * @param {string} search  location.search now
 * @param {{key: string, range?: Range|null}} chosen
 * @returns {string} "" or "?..."
 */
export function writeRangeQuery(search, { key, range = null }) {
  const params = new URLSearchParams(search);
  for (const name of ["range", "start", "end"]) params.delete(name);
  if (key !== "live") {
    if (PRESETS.some((each) => each.key === key)) params.set("range", key);
    else if (range !== null) {
      params.set("start", String(Math.floor(range.start)));
      params.set("end", String(Math.ceil(range.end)));
    }
  }
  const query = params.toString();
  return query ? `?${query}` : "";
}
