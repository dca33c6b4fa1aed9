// Chart layouts that cost less to redraw many times a second. Pure: no DOM, no Plotly.
//
// A rolling window moves the x ticks on every draw. With the template's automargin and Plotly's
// automatic tick angle, each draw measured every tick label's box (getBoundingClientRect, a
// forced layout) to fit the margins, pick an angle and hide labels that overflow; in small
// panels the angle flipped between flat and slanted from one draw to the next. Time labels have
// a known shape, so the x axis gets a fixed margin and flat labels; the y axis keeps automargin
// (its labels, say "12,345.6", vary in width, and change only when the range does) but skips
// the overflow check, which measured every label again.

const NO_OVERFLOW_CHECK = { ticklabeloverflow: "allow" };

/**
 * The layout with steady axes; a layout without an x axis (a gauge) is returned as it is.
 * @param {any} layout  a Plotly layout (not changed)
 * @param {{nticks?: number}} [options]  nticks: at most this many x ticks (small panels)
 * @returns {any}
 */
export function steadyAxes(layout, { nticks } = {}) {
  if (!layout?.xaxis) return layout;
  const xaxis = { ...layout.xaxis, ...NO_OVERFLOW_CHECK, automargin: false, tickangle: 0 };
  if (nticks !== undefined) xaxis.nticks = nticks;
  return { ...layout, xaxis, yaxis: { ...layout.yaxis, ...NO_OVERFLOW_CHECK } };
}

/**
 * An area chart's default fill (towards zero): Plotly's tozeroy fill pulls autorange down to 0,
 * which flattens a price series at 100 into a line along the top. So while the viewer has not
 * zoomed the value axis, the range is the values' own (with a little room); the fill reaches
 * below it and is clipped at the axis. A double click gives the axis back to this function.
 * @param {any} element @param {ArrayLike<number|null>[]} traceYs
 */
export function fitValueAxis(element, traceYs) {
  if (!element.layout) return;
  const yaxis = element.layout.yaxis ?? {};
  const set = element._livechartsY ?? null;
  const current = Array.isArray(yaxis.range) ? yaxis.range : null;
  const userZoomed =
    yaxis.autorange === false && (set === null || current === null || current[0] !== set[0] || current[1] !== set[1]);
  if (userZoomed) return;
  const range = valueRange(traceYs);
  if (range === null) return;
  // In place: Plotly.redraw reads the layout object the chart holds.
  element.layout.yaxis = yaxis;
  yaxis.range = range;
  yaxis.autorange = false;
  element._livechartsY = range;
}

/**
 * The values' extent with 5 % room on each side (a flat series gets ±1), or null when empty.
 * @param {ArrayLike<number|null>[]} traceYs
 * @returns {[number, number]|null}
 */
export function valueRange(traceYs) {
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (const ys of traceYs) {
    for (let i = 0; i < ys.length; i += 1) {
      const y = ys[i];
      if (typeof y !== "number" || !Number.isFinite(y)) continue;
      if (y < low) low = y;
      if (y > high) high = y;
    }
  }
  if (low > high) return null;
  const room = high > low ? (high - low) * 0.05 : Math.max(Math.abs(high) * 0.05, 1);
  return [low - room, high + room];
}
