// How a stream's feed health (a `status` frame, see streams/ingest/feed_health.py) reads on the page.
// Pure: the clock is passed in, so node --test can pin it.

import { formatCount } from "./format.js";

/**
 * "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago".
 * @param {number} seconds
 */
export function ago(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "just now";
  if (seconds < 2) return "just now";
  // Whole seconds gone by (floor, not round): a line redrawn every second counts 2, 3, 4.
  if (seconds < 90) return `${Math.floor(seconds)} s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/**
 * What the browser itself saw since the status frame: the newest point's time and how many
 * points came after the status's last point (the status counts those before it). The health
 * line reads both, so its age ticks every second and its count moves with the chart instead
 * of waiting up to 5 s for the next status frame.
 * @typedef {{lastPointAt: number|null, pointsAfter: number}} Seen  lastPointAt: seconds
 */

/**
 * How many of a batch's times are after `sinceMs` (the status's last point): those are points
 * the status frame has not counted yet.
 * @param {ArrayLike<number>} ts ms since the epoch
 * @param {number|null} sinceMs null: all of them
 */
export function countAfter(ts, sinceMs) {
  if (sinceMs === null) return ts.length;
  let count = 0;
  for (let i = 0; i < ts.length; i += 1) if (ts[i] > sinceMs) count += 1;
  return count;
}

/**
 * The facts shown beside the chart, keyed like the page's <dd data-health="..."> cells.
 * @param {any} status a status frame or the `status` of a subscribed frame (may be null)
 * @param {number} nowSeconds the current time, seconds since the epoch
 * @param {Seen|null} [seen] what the browser received since that status
 * @returns {{state: string, facts: Record<string, string>, error: string}}
 */
export function describeHealth(status, nowSeconds, seen = null) {
  const state = typeof status?.state === "string" ? status.state : "unknown";
  let last = typeof status?.last_point_at === "number" ? status.last_point_at : null;
  // A point's own time may run ahead of this clock (a source clock): never "in the future".
  const received = seen?.lastPointAt ?? null;
  if (received !== null && (last === null || received > last)) last = Math.min(received, nowSeconds);
  const points = typeof status?.points === "number" ? status.points + (seen?.pointsAfter ?? 0) : null;
  let error = "";
  if (typeof status?.error === "string" && status.error) {
    const when = typeof status.error_at === "number" ? ` (${ago(nowSeconds - status.error_at)})` : "";
    error = `${status.error}${when}`;
  }
  return {
    state,
    facts: {
      last_point: last === null ? "none yet" : ago(nowSeconds - last),
      points: formatCount(points),
      bad_payloads: formatCount(status?.bad_payloads),
      reconnects: formatCount(status?.reconnects),
    },
    error,
  };
}
