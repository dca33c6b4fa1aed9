// Where an area's fill may be drawn: along the stretches its line has points, never across a hole.
// gaps.js breaks a line with a null where points are missing, and Plotly breaks the line there,
// but its fills (tozeroy, tonexty) join the line's pieces straight across the nulls (plotly.js
// #5918, #7448, open): the area would show values that never were. So the fill is clipped to the
// x spans of the line's pieces (fillclip.js applies it). Pure: no DOM, no Plotly.
//
// Work per piece, not per point: a piece's span is read from the two ends of its SVG path.

/** @typedef {[number, number]} Span  from, to (px); from <= to */

// Path commands whose last arguments end with the point's "x,y" (M, L, T) or "x" (H), and the
// curves, whose last pair is the point reached (C, S, Q). V moves in y alone.
const POINT_COMMANDS = "MLT";
const CURVE_COMMANDS = "CSQ";

/**
 * The first and last x of a path Plotly drew for one piece of a line ("M0,100L131.78,80..."),
 * or null when it is not one.
 * @param {string|null|undefined} d
 * @returns {Span|null}
 */
export function pieceSpan(d) {
  if (typeof d !== "string" || d[0] !== "M") return null;
  const first = Number.parseFloat(d.slice(1, 40)); // a number, not the whole path
  const last = lastX(d);
  if (!Number.isFinite(first) || last === null) return null;
  return first <= last ? [first, last] : [last, first];
}

/**
 * The x of the last point of a path: from its last command with an x, looked for from the end.
 * @param {string} d
 * @returns {number|null}
 */
function lastX(d) {
  let end = d.length;
  for (let i = d.length - 1; i >= 0; i -= 1) {
    const command = d[i];
    if (command === "V") {
      end = i; // a vertical step: x is the previous command's
      continue;
    }
    const args = () => d.slice(i + 1, end).trim().split(/[\s,]+/);
    let x = null;
    if (POINT_COMMANDS.includes(command) || command === "H") x = Number.parseFloat(args()[0]);
    else if (CURVE_COMMANDS.includes(command)) {
      const numbers = args();
      x = Number.parseFloat(numbers[numbers.length - 2]);
    } else continue;
    return Number.isFinite(x) ? x : null;
  }
  return null;
}

/**
 * The spans of a line's pieces, sorted, the overlapping ones merged.
 * @param {Iterable<string|null|undefined>} paths  the `d` of each piece
 * @returns {Span[]}
 */
export function lineSpans(paths) {
  /** @type {Span[]} */
  const spans = [];
  for (const d of paths) {
    const span = pieceSpan(d);
    if (span !== null) spans.push(span);
  }
  spans.sort((a, b) => a[0] - b[0]);
  /** @type {Span[]} */
  const merged = [];
  for (const span of spans) {
    const last = merged[merged.length - 1];
    if (last !== undefined && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
    else merged.push([span[0], span[1]]);
  }
  return merged;
}

/**
 * Where both lines have points (sorted spans in, sorted spans out): a fill to the next trace
 * lies between two lines, so it is drawn only where neither has a hole.
 * @param {Span[]} a @param {Span[]} b
 * @returns {Span[]}
 */
export function intersectSpans(a, b) {
  /** @type {Span[]} */
  const both = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const from = Math.max(a[i][0], b[j][0]);
    const to = Math.min(a[i][1], b[j][1]);
    if (from < to) both.push([from, to]);
    if (a[i][1] < b[j][1]) i += 1;
    else j += 1;
  }
  return both;
}

/**
 * Whether any of the traces (a figure's, and the one added for a later series) is an area: only
 * then does a chart need its fills clipped; line charts are left exactly as they were.
 * @param {any[]} traces
 */
export function fillsArea(traces) {
  return traces.some((trace) => typeof trace?.fill === "string" && trace.fill !== "none");
}
