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
