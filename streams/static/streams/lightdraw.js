// A dashboard line panel's light draw. Pure: no DOM, no Plotly.
//
// Measured in headless Chromium without a GPU (bench/browser.py), a Plotly draw of a small line
// panel (Plotly.extendTraces, which redraws the whole figure) took 7-13 ms, of which the points
// were about 2 %: the rest is Plotly working the figure's defaults out again (about a third),
// drawing both axes with their labels (measuring them, a forced layout), and setting up hover.
// Twenty panels at five draws a second each cannot afford that. So most draws of a line panel
// are light: the points go into the traces' arrays as extendTraces would put them (the same
// window, every point kept), each line's SVG path is rebuilt from the points with the axes' own
// pixel mapping, and the plot slides left by as much as its newest point moved on (an SVG
// transform of the lines, the x grid and the x labels: the labels stay under the points they
// name; a tick that slid out on the left is hidden, one that would come in on the right waits
// for the next layout). Once it slid MAX_SLIDE_PX, or when a new value is outside the value axis' range, the
// axes are laid out again with Plotly.relayout of their ranges alone (Plotly's pan path: no
// defaults, no calc; the value axis then spans the window's values with 5 % room, as axes.js
// valueRange does). A full Plotly draw still comes when a light one cannot show the change (a
// trace added or cleared), every FULL_EVERY_MS (the value axis is Plotly's own again, and
// shrinks back to the window's values; hover learns the new points), and on every draw while
// the pointer is over the panel (hover is then exact).

/** A line panel draws fully at least this often (ms), light draws in between. */
export const FULL_EVERY_MS = 15_000;
/** How far (px) a light draw may slide the plot before Plotly lays the x axis out again. */
export const MAX_SLIDE_PX = 40;
/**
 * The most a wide chart (the stream page's) slides before Plotly lays the x axis out again, px.
 * A layout of the axes is the one costly part of a light draw there (10-20 ms in headless
 * Chromium without a GPU: a dropped frame); sliding farther leaves the newest x label out
 * for longer (it waits for the next layout), so the limit grows with the plot, up to this.
 */
export const MAX_SLIDE_WIDE_PX = 100;
/** The share of the plot's width a chart may slide, between MAX_SLIDE_PX and MAX_SLIDE_WIDE_PX. */
export const SLIDE_SHARE = 0.08;
/** How much (px) the x span may differ from the laid-out axis' and the plot still slide. */
const SPAN_SLACK_PX = 2;

/**
 * How far to slide the plot (lines, x grid, x labels) to the left, in px, so the x axis laid out
 * for `axisRange` shows `range`; null when sliding cannot show it (the span changed, it went
 * back, or it slid too far): Plotly lays the axis out again then.
 * @param {{axisRange: [number, number]|null, range: [number, number]|null, pxPerX: number,
 *   maxSlidePx?: number}} input  pxPerX: pixels per x unit of the laid-out axis
 * @returns {number|null}
 */
export function slideFor({ axisRange, range, pxPerX, maxSlidePx = MAX_SLIDE_PX }) {
  if (axisRange === null || range === null || !(pxPerX > 0)) return null;
  const spanChange = Math.abs(range[1] - range[0] - (axisRange[1] - axisRange[0])) * pxPerX;
  if (spanChange > SPAN_SLACK_PX) return null;
  const slide = (range[1] - axisRange[1]) * pxPerX;
  if (slide < 0 || slide > maxSlidePx) return null;
  return slide;
}

/**
 * How far a chart `plotWidth` px wide may slide between two layouts of its x axis, px.
 * @param {number} plotWidth
 */
export function maxSlideFor(plotWidth) {
  const share = plotWidth > 0 ? plotWidth * SLIDE_SHARE : 0;
  return Math.min(MAX_SLIDE_WIDE_PX, Math.max(MAX_SLIDE_PX, share));
}

/**
 * Whether the panel's traces can all be drawn light: visible lines without fill or markers.
 * @param {any[]} traces  the chart's trace objects (element.data)
 */
export function lightTraces(traces) {
  return (
    traces.length > 0 &&
    traces.every(
      (trace) =>
        (trace.type ?? "scatter") === "scatter" &&
        trace.mode === "lines" &&
        (trace.fill ?? "none") === "none" &&
        (trace.visible ?? true) === true &&
        (trace.line?.shape ?? "linear") === "linear",
    )
  );
}

/**
 * Light or full, for one draw of a line panel (or of the stream page's chart).
 * @param {{
 *   traces: any[], plan: {clear: unknown[], addTraces: unknown[]}, now: number, lastFull: number|null,
 *   pointed: boolean, xaxis: any, yaxis: any,
 * }} input  traces: the chart's traces before this draw; xaxis/yaxis: the axes as laid out
 *   (Plotly's _fullLayout) and as asked (layout: autorange false means the viewer zoomed)
 * @returns {boolean} true: light
 */
export function drawsLight({ traces, plan, now, lastFull, pointed, xaxis, yaxis }) {
  if (lastFull === null || now - lastFull >= FULL_EVERY_MS || pointed) return false;
  if (plan.clear.length > 0 || plan.addTraces.length > 0 || !lightTraces(traces)) return false;
  if (xaxis?.type !== "date" || yaxis?.type !== "linear") return false;
  // A zoomed axis is the viewer's: extendTraces keeps it, a light draw would move it.
  if (xaxis.autorange === false || yaxis.autorange === false) return false;
  return Array.isArray(yaxis.range) && yaxis.range[0] < yaxis.range[1];
}

/**
 * Whether every value is within `range` (nulls, a gap's breaks, skipped): if not, the value
 * axis must grow before the values are drawn.
 * @param {ArrayLike<number|null>[]} traceYs @param {[number, number]} range
 */
export function fitsRange(traceYs, range) {
  for (const ys of traceYs) {
    for (let i = 0; i < ys.length; i += 1) {
      const y = ys[i];
      if (y === null || y === undefined) continue;
      if (!(y >= range[0] && y <= range[1])) return false;
    }
  }
  return true;
}

/**
 * What extendTraces leaves in a trace's array: `existing` then `added`, the last `keep` of them.
 * @template T
 * @param {ArrayLike<T>} existing @param {ArrayLike<T>} added @param {number} keep
 * @returns {T[]}
 */
export function appendKeep(existing, added, keep) {
  const all = Array.prototype.concat.call(Array.from(existing), Array.from(added));
  return keep < all.length ? all.slice(all.length - Math.max(0, keep)) : all;
}

/**
 * The x range an autoranged date axis takes for line traces (no padding): from the oldest first
 * point to the newest last one; null when that is not a span.
 * @param {ArrayLike<number>[]} traceXs  each ascending
 * @returns {[number, number]|null}
 */
export function lineRange(traceXs) {
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (const xs of traceXs) {
    if (xs.length === 0) continue;
    low = Math.min(low, xs[0]);
    high = Math.max(high, xs[xs.length - 1]);
  }
  return low < high ? [low, high] : null;
}

/** Points a pixel column a line must hold on average to be drawn without anti-aliasing. */
export const DENSE_POINTS_PER_PX = 1;

/**
 * How an SVG line with `points` points across `plotWidth` px is rasterised: "optimizeSpeed"
 * (no anti-aliasing) when it is dense, null (the browser's default, anti-aliased) otherwise.
 *
 * Without a GPU Chromium rasterises the page in software, on its own threads: the stream
 * page's 10,000-point line (thinned to about two points a pixel column) drawn 20 times a second
 * took a third of a core there, in tasks of up to 20 ms, and with the machine busy the main
 * thread then waited for them and dropped frames (rAF gaps of 33-83 ms). Without anti-aliasing
 * the same raster took about 40% less and its longest tasks about 5 ms. At a point or more a
 * pixel column every segment is at most a pixel wide, mostly vertical: the line looks the same.
 * A sparse line (a dashboard panel's 300 points) keeps its smooth edges.
 * @param {number} points @param {number} plotWidth  px
 * @returns {"optimizeSpeed"|null}
 */
export function lineRendering(points, plotWidth) {
  return plotWidth > 0 && points >= plotWidth * DENSE_POINTS_PER_PX ? "optimizeSpeed" : null;
}

/**
 * An SVG path through the points, broken where y is null (as Plotly breaks a line with
 * connectgaps off), in pixels from `toX` and `toY`.
 * @param {ArrayLike<number>} xs @param {ArrayLike<number|null>} ys
 * @param {(x: number) => number} toX @param {(y: number) => number} toY
 * @returns {string}
 */
export function linePath(xs, ys, toX, toY) {
  const count = Math.min(xs.length, ys.length);
  const parts = [];
  let open = false;
  for (let i = 0; i < count; i += 1) {
    const y = ys[i];
    if (y === null || y === undefined || !Number.isFinite(y)) {
      open = false;
      continue;
    }
    const px = toX(xs[i]);
    const py = toY(y);
    parts.push(`${open ? "L" : "M"}${Math.round(px * 100) / 100},${Math.round(py * 100) / 100}`);
    open = true;
  }
  return parts.join("");
}

/**
 * The x of an SVG transform "translate(x, y)", NaN without one.
 * @param {string|null|undefined} transform
 */
export function translateX(transform) {
  return Number(/translate\(\s*([-\d.e]+)/.exec(transform ?? "")?.[1]);
}

/**
 * Whether an x tick (its label, its grid line) at `x` px (Plotly's, from the left of the whole
 * chart) is slid out of a plot that begins `left` px from it: hidden then, as Plotly leaves out
 * a tick outside the range (it would show in the margin, among the value axis' labels).
 * @param {{x: number, slide: number, left: number}} input
 */
export function slidOut({ x, slide, left }) {
  return Number.isFinite(x) && x - slide < left - 0.5;
}
