// The DOM side of fillspans.js: after every Plotly draw of a chart (plotly_afterplot comes after
// newPlot, react, redraw, extendTraces, restyle and relayout alike), each area fill is clipped to
// the x spans of its line's pieces, so it stops where the line stops instead of bridging a hole.
// A fill to the next trace is clipped to where both its lines have points. Nothing is changed in
// the traces' data: hover, the value axis and the window see the points as they are.
//
// Plotly binds each trace's group and each fill path to the calcdata of a trace (d3's __data__,
// as lightlines.js reads it): cd[0].trace. A fill to the next trace lives in the group of the
// trace it fills down to.

import { intersectSpans, lineSpans } from "./fillspans.js";

const SVG = "http://www.w3.org/2000/svg";
// Far beyond any plot's height (px): a clip's rectangles span every value, only x is cut. A fill
// towards zero under prices near 12,000 reaches far below the plot (the plot clips it there).
const TALL = 1e7;

/** @type {WeakMap<Element, string>} a prefix for each chart's clip path ids */
const prefixes = new WeakMap();
let charts = 0;

/**
 * Keep the chart's area fills off the holes in its data, from its next draw on.
 * @param {any} element  a Plotly chart (after Plotly.newPlot)
 */
export function clipFillsToLines(element) {
  element.on("plotly_afterplot", () => clipFills(element));
  clipFills(element);
}

/** @param {any} trace  a full trace (calcdata's cd[0].trace) */
function drawsLines(trace) {
  return typeof trace?.mode === "string" && trace.mode.includes("lines");
}

/**
 * Clip each fill of the chart as it is drawn now.
 * @param {Element} element
 */
export function clipFills(element) {
  let prefix = prefixes.get(element);
  if (prefix === undefined) {
    charts += 1;
    prefix = `livecharts-fill-${charts}`;
    prefixes.set(element, prefix);
  }
  let count = 0;
  for (const layer of element.querySelectorAll(".scatterlayer")) {
    const fills = layer.querySelectorAll("path.js-fill");
    if (fills.length === 0) continue;
    /** @type {Map<any, import("./fillspans.js").Span[]>} each trace's line spans, by full trace */
    const spans = new Map();
    for (const group of layer.querySelectorAll("g.trace")) {
      const trace = /** @type {any} */ (group).__data__?.[0]?.trace;
      if (trace === undefined) continue;
      const pieces = group.querySelectorAll("path.js-line");
      spans.set(trace, lineSpans(Array.from(pieces, (piece) => piece.getAttribute("d"))));
    }
    for (const fill of fills) {
      const filled = /** @type {any} */ (fill).__data__?.[0]?.trace;
      const holder = /** @type {any} */ (fill.closest("g.trace"))?.__data__?.[0]?.trace;
      const own = spans.get(filled);
      const under = spans.get(holder);
      // Markers only, or a trace we cannot tell: its fill has no line to follow, left as it is.
      if (!drawsLines(filled) || !drawsLines(holder) || own === undefined || under === undefined) {
        fill.removeAttribute("clip-path");
        continue;
      }
      const id = `${prefix}-${count}`;
      count += 1;
      setClip(layer, id, filled === holder ? own : intersectSpans(own, under));
      fill.setAttribute("clip-path", `url(#${id})`);
    }
  }
  // Fills gone since the last draw (a trace hidden, a range view of fewer series): their clips go too.
  const svg = element.querySelector(`defs.${prefix}`);
  for (const clip of svg ? Array.from(svg.children).slice(count) : []) clip.remove();
}

/**
 * The clip path `id` (made on first use, in a <defs> of the chart's own) as rectangles over `spans`.
 * @param {Element} layer @param {string} id @param {import("./fillspans.js").Span[]} spans
 */
function setClip(layer, id, spans) {
  const svg = /** @type {SVGElement} */ (layer).ownerSVGElement;
  if (!svg) return;
  const prefix = id.slice(0, id.lastIndexOf("-"));
  let defs = svg.querySelector(`defs.${prefix}`);
  if (defs === null) {
    defs = document.createElementNS(SVG, "defs");
    defs.setAttribute("class", prefix);
    svg.prepend(defs);
  }
  let clip = defs.querySelector(`#${id}`);
  if (clip === null) {
    clip = document.createElementNS(SVG, "clipPath");
    clip.setAttribute("id", id);
    defs.append(clip);
  }
  const rects = Array.from(clip.children);
  spans.forEach(([from, to], i) => {
    let rect = rects[i];
    if (rect === undefined) {
      rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("y", String(-TALL));
      rect.setAttribute("height", String(2 * TALL));
      clip.append(rect);
    }
    rect.setAttribute("x", String(from));
    rect.setAttribute("width", String(to - from));
  });
  for (const extra of rects.slice(spans.length)) extra.remove();
}
