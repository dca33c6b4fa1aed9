// How often a page may draw: drawing takes at most a share of the main thread, so the page stays
// smooth (animation frames keep coming) and answers clicks and scrolls however fast points
// arrive. Pure: no DOM, no Plotly.
//
// A Plotly draw cannot be split, and what it changes in the page is then styled, laid out and
// painted after it returns: measured in headless Chromium (bench/browser.py), the main thread
// was busy 1.7 (the stream page) to 2.0 (a dashboard of 20 panels) times as long as the Plotly
// calls took. So after a draw the page rests for long enough that draws and their rendering
// together take at most DRAW_SHARE of the time; the rest of the page's work (the socket, the
// points) stays under a few percent, so the main thread is under half busy.

/** Most of the main thread's time that drawing (and rendering what it drew) may take. */
export const DRAW_SHARE = 0.45;
/** Main-thread time per ms of Plotly calls: the calls, then style, layout and paint. */
export const RENDER_FACTOR = 2;
/**
 * The longest rest, ms. A page's first frame draws every panel with its backfill (their cost is
 * not known yet) and can take seconds on a slow machine; resting 2.4 times that would leave the
 * charts still for longer than anyone waits. Later draws are short and rest far less.
 */
export const MAX_REST_MS = 1000;

/**
 * How long to leave the main thread alone after drawing for `spentMs`.
 * @param {number} spentMs  time measured around the Plotly calls
 * @param {number} [share]  most of the main thread drawing may take
 * @param {number} [renderFactor]  main-thread time per ms of Plotly calls
 */
export function restAfter(spentMs, share = DRAW_SHARE, renderFactor = RENDER_FACTOR) {
  return Math.min(MAX_REST_MS, Math.max(0, (spentMs * renderFactor) / share - spentMs));
}
