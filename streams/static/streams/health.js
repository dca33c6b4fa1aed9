// How a stream's feed health (a `status` frame, see streams/health.py) reads on the page.
// Pure: the clock is passed in, so node --test can pin it.

/**
 * "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago".
 * @param {number} seconds
 */
export function ago(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "just now";
  if (seconds < 2) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** @param {unknown} value */
function count(value) {
  return typeof value === "number" && Number.isFinite(value) ? value.toLocaleString("en-US") : "—";
}

/**
 * The facts shown beside the chart, keyed like the page's <dd data-health="..."> cells.
 * @param {any} status a status frame or the `status` of a subscribed frame (may be null)
 * @param {number} nowSeconds the current time, seconds since the epoch
 * @returns {{state: string, facts: Record<string, string>, error: string}}
 */
export function describeHealth(status, nowSeconds) {
  const state = typeof status?.state === "string" ? status.state : "unknown";
  const last = typeof status?.last_point_at === "number" ? status.last_point_at : null;
  let error = "";
  if (typeof status?.error === "string" && status.error) {
    const when = typeof status.error_at === "number" ? ` (${ago(nowSeconds - status.error_at)})` : "";
    error = `${status.error}${when}`;
  }
  return {
    state,
    facts: {
      last_point: last === null ? "none yet" : ago(nowSeconds - last),
      points: count(status?.points),
      bad_payloads: count(status?.bad_payloads),
      reconnects: count(status?.reconnects),
    },
    error,
  };
}
