// The DOM side of the stream page's light draws (lightdraw.js says when a draw is light and
// builds the paths): each line's SVG path set from the points its trace holds, with the axes as
// Plotly last laid them out, and the plot slid to the left in between two layouts.

import { linePath, lineRendering, slidOut, translateX } from "./lightdraw.js";

export class LightLines {
  /** @param {HTMLElement} element  the Plotly chart */
  constructor(element) {
    this.element = element;
    /** true while the layers carry a slide (slide()), of slidPx */
    this.slid = false;
    this.slidPx = 0;
  }

  /** @returns {Map<number, Element>} each drawn trace's line, by trace index (d3 binds its calcdata) */
  lines() {
    const lines = new Map();
    for (const group of this.element.querySelectorAll(".scatterlayer .trace")) {
      const index = /** @type {any} */ (group).__data__?.[0]?.trace?.index;
      const line = group.querySelector("path.js-line");
      if (typeof index === "number" && line) lines.set(index, line);
    }
    return lines;
  }

  /**
   * Each line's path from its trace's points (element.data), with the axes as Plotly last laid
   * them out. The x mapping of a date axis is linear: two of Plotly's own points make it.
   * @param {Map<number, Element>} [lines]
   */
  draw(lines = this.lines()) {
    const element = /** @type {any} */ (this.element);
    const xaxis = element._fullLayout.xaxis;
    const yaxis = element._fullLayout.yaxis;
    const x0 = xaxis.r2l(xaxis.range[0]);
    const px0 = xaxis.c2p(x0);
    const pxPerX = (xaxis.c2p(x0 + 1000) - px0) / 1000;
    const toX = (/** @type {number} */ x) => px0 + (x - x0) * pxPerX;
    const toY = (/** @type {number} */ y) => yaxis.c2p(y);
    for (const [index, line] of lines) {
      const trace = element.data[index];
      const xs = trace.x ?? [];
      line.setAttribute("d", linePath(xs, trace.y ?? [], toX, toY));
      // A presentation attribute, not a style: the pages' Content-Security-Policy allows it.
      const rendering = lineRendering(xs.length, xaxis._length);
      if (rendering) line.setAttribute("shape-rendering", rendering);
      else line.removeAttribute("shape-rendering");
    }
  }

  /**
   * Slide the lines, the x grid and the x labels `px` to the left (0: where Plotly put them).
   * @param {number} px
   */
  slide(px) {
    if (px === 0 && !this.slid) return;
    const transform = px === 0 ? "" : `translate(${-Math.round(px * 100) / 100},0)`;
    for (const layer of this.element.querySelectorAll(".scatterlayer, .gridlayer > .x, .xaxislayer-above")) {
      if (transform) layer.setAttribute("transform", transform);
      else layer.removeAttribute("transform");
    }
    // A tick (its label, its grid line) slid left of the plot is hidden, as Plotly leaves out
    // a tick outside the range. Every time: Plotly reuses tick elements when it draws again.
    // Plotly 3 puts a label's place on its text, a grid line's on the line.
    const left = /** @type {any} */ (this.element)._fullLayout?._size?.l ?? 0;
    for (const tick of this.element.querySelectorAll(".xaxislayer-above .xtick, .gridlayer > .x > path")) {
      const x = translateX(tick.getAttribute("transform") ?? tick.firstElementChild?.getAttribute("transform"));
      const hidden = slidOut({ x, slide: px, left });
      if (hidden !== tick.hasAttribute("visibility")) {
        if (hidden) tick.setAttribute("visibility", "hidden");
        else tick.removeAttribute("visibility");
      }
    }
    this.slid = px !== 0;
    this.slidPx = px;
  }
}
