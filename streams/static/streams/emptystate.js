// What a chart with nothing to draw says instead of Plotly's default axes (Jan 2000 – Jan 2001,
// −1 to 4): waiting for the first point, with the feed's state and its last error, or that a
// range holds no stored points. Pure: no DOM.

/**
 * @typedef {{title: string, detail: string, state: string}} EmptyState
 *   state: the feed's state, for the overlay's colour (data-state)
 */

const FEED_WORDS = {
  connecting: "The feed is connecting to its source.",
  live: "The feed is connected; no point has arrived yet.",
  stalled: "The feed is connected but has gone quiet.",
  error: "The feed cannot reach its source.",
  unknown: "Waiting for the feed's state.",
};

/**
 * The empty state to show, or null when the chart has points to draw.
 * @param {{
 *   points: number,
 *   view?: "live"|"range",
 *   loading?: boolean,
 *   status?: any,
 *   connection?: string,
 *   stopped?: boolean,
 *   pending?: boolean,
 * }} input  points: points the chart draws now; status: the feed's last status frame (or null);
 *   pending: points have arrived but are not drawn yet (a dashboard panel out of view)
 * @returns {EmptyState|null}
 */
export function emptyState({
  points,
  view = "live",
  loading = false,
  status = null,
  connection = "live",
  stopped = false,
  pending = false,
}) {
  if (points > 0) return null;
  const state = typeof status?.state === "string" ? status.state : "unknown";
  if (loading) return { title: "Loading…", detail: "", state };
  if (pending && view === "live") {
    return { title: "Points received", detail: "Drawn when this panel scrolls into view.", state };
  }
  if (view === "range") {
    return { title: "No stored points in this range", detail: "Pick a longer range, or go back to Live.", state };
  }
  if (stopped) return { title: "Nothing to show", detail: "This chart no longer receives points.", state };
  const parts = [];
  if (connection !== "live") parts.push(`Connection: ${connection}.`);
  parts.push(FEED_WORDS[state] ?? `Feed: ${state}.`);
  if (typeof status?.error === "string" && status.error) parts.push(`Last error: ${status.error}`);
  return { title: "Waiting for the first point", detail: parts.join(" "), state };
}
