import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  appendKeep,
  drawsLight,
  FULL_EVERY_MS,
  fitsRange,
  lightTraces,
  linePath,
  lineRange,
  lineRendering,
  MAX_SLIDE_PX,
  MAX_SLIDE_WIDE_PX,
  maxSlideFor,
  slideFor,
  slidOut,
  translateX,
} from "../../../streams/static/streams/lightdraw.js";

const line = { type: "scatter", mode: "lines", line: { width: 2 }, x: [1, 2], y: [0, 1] };
const extendOnly = {
  clear: [],
  addTraces: [],
  indices: [0],
  update: { x: [[3]], y: [[0.5]] },
  maxPoints: { x: [300], y: [300] },
};
const axes = {
  xaxis: { type: "date", autorange: true },
  yaxis: { type: "linear", autorange: true, range: [-1, 1] },
};

function input(overrides = {}) {
  return { traces: [line], plan: extendOnly, now: 5_000, lastFull: 4_000, pointed: false, ...axes, ...overrides };
}

describe("lightTraces", () => {
  test("only plain visible lines draw light: not areas, markers, bars or hidden traces", () => {
    assert.equal(lightTraces([line, { ...line, line: undefined }]), true);
    assert.equal(lightTraces([line, { ...line, fill: "tozeroy" }]), false);
    assert.equal(lightTraces([{ ...line, mode: "markers" }]), false);
    assert.equal(lightTraces([{ ...line, mode: "lines+markers" }]), false);
    assert.equal(lightTraces([{ type: "bar", x: [], y: [] }]), false);
    assert.equal(lightTraces([{ ...line, visible: "legendonly" }]), false);
    assert.equal(lightTraces([{ ...line, line: { shape: "spline" } }]), false);
    assert.equal(lightTraces([]), false);
  });
});

describe("drawsLight", () => {
  test("a line panel that drew fully a moment ago draws light", () => {
    assert.equal(drawsLight(input()), true);
  });

  test("draws fully first, then every FULL_EVERY_MS, and while the pointer is over it", () => {
    assert.equal(drawsLight(input({ lastFull: null })), false);
    assert.equal(drawsLight(input({ now: 4_000 + FULL_EVERY_MS - 1 })), true);
    assert.equal(drawsLight(input({ now: 4_000 + FULL_EVERY_MS })), false);
    assert.equal(drawsLight(input({ pointed: true })), false);
  });

  test("draws fully when traces are added or cleared", () => {
    assert.equal(drawsLight(input({ plan: { ...extendOnly, clear: [0] } })), false);
    assert.equal(drawsLight(input({ plan: { ...extendOnly, addTraces: [{ stream: "s", series: "b" }] } })), false);
  });

  test("leaves an axis the viewer zoomed to Plotly's full draw", () => {
    assert.equal(drawsLight(input({ xaxis: { ...axes.xaxis, autorange: false } })), false);
    assert.equal(drawsLight(input({ yaxis: { ...axes.yaxis, autorange: false } })), false);
  });

  test("only a date x axis and a linear value axis with a range", () => {
    assert.equal(drawsLight(input({ xaxis: { ...axes.xaxis, type: "linear" } })), false);
    assert.equal(drawsLight(input({ yaxis: { ...axes.yaxis, type: "log" } })), false);
    assert.equal(drawsLight(input({ yaxis: { ...axes.yaxis, range: undefined } })), false);
  });
});

describe("fitsRange", () => {
  test("every value within the range, a gap's nulls skipped", () => {
    assert.equal(fitsRange([[0, null, 1], [-1]], [-1, 1]), true);
    assert.equal(fitsRange([[0], [1.01]], [-1, 1]), false);
    assert.equal(fitsRange([[Number.NaN]], [-1, 1]), false);
  });
});

describe("appendKeep", () => {
  test("keeps what extendTraces keeps: the last `keep` of the old then the new values", () => {
    assert.deepEqual(appendKeep([1, 2, 3], [4, 5], 4), [2, 3, 4, 5]);
    assert.deepEqual(appendKeep([1, 2], [3], 10), [1, 2, 3]);
    assert.deepEqual(appendKeep([1, 2], [3, 4, 5], 2), [4, 5]);
    assert.deepEqual(appendKeep([1], [], 0), []);
  });

  test("leaves the arrays it was given alone", () => {
    const existing = [1, 2];
    const added = [3];
    appendKeep(existing, added, 2);
    assert.deepEqual(existing, [1, 2]);
    assert.deepEqual(added, [3]);
  });
});

describe("lineRange", () => {
  test("from the oldest first point to the newest last one, empty traces left out", () => {
    assert.deepEqual(lineRange([[10, 20, 30], [], [5, 25]]), [5, 30]);
    assert.equal(lineRange([[10]]), null);
    assert.equal(lineRange([[], []]), null);
  });
});

describe("linePath", () => {
  const toX = (x) => x * 10;
  const toY = (y) => 100 - y;

  test("goes through every point, in pixels", () => {
    assert.equal(linePath([1, 2, 3], [0, 50, 25], toX, toY), "M10,100L20,50L30,75");
  });

  test("breaks where a value is null, as Plotly does with connectgaps off", () => {
    assert.equal(linePath([1, 2, 3, 4, 5], [0, 1, null, 3, 4], toX, toY), "M10,100L20,99M40,97L50,96");
    assert.equal(linePath([1, 2], [null, null], toX, toY), "");
  });

  test("rounds to hundredths of a pixel", () => {
    assert.equal(linePath([0.12345], [0], toX, toY), "M1.23,100");
  });
});

describe("slideFor", () => {
  const pxPerX = 0.01; // 100 x units a pixel

  test("slides by as far as the newest point moved on, in pixels", () => {
    assert.equal(slideFor({ axisRange: [0, 30_000], range: [500, 30_500], pxPerX }), 5);
    assert.equal(slideFor({ axisRange: [0, 30_000], range: [0, 30_000], pxPerX }), 0);
  });

  test("lays the axis out again once the slide is too far, the span changed or went back", () => {
    const far = (MAX_SLIDE_PX + 1) * 100;
    assert.equal(slideFor({ axisRange: [0, 30_000], range: [far, 30_000 + far], pxPerX }), null);
    assert.equal(slideFor({ axisRange: [0, 30_000], range: [0, 31_000], pxPerX }), null); // the window grows
    assert.equal(slideFor({ axisRange: [0, 30_000], range: [-100, 29_900], pxPerX }), null);
    assert.equal(slideFor({ axisRange: null, range: [0, 1], pxPerX }), null);
  });
});

describe("maxSlideFor", () => {
  test("a panel slides as far as before; a wide chart farther, up to a bound", () => {
    assert.equal(maxSlideFor(300), MAX_SLIDE_PX);
    assert.equal(maxSlideFor(0), MAX_SLIDE_PX);
    assert.ok(maxSlideFor(1000) > MAX_SLIDE_PX && maxSlideFor(1000) < MAX_SLIDE_WIDE_PX);
    assert.equal(maxSlideFor(5000), MAX_SLIDE_WIDE_PX);
  });

  test("a wide chart's slide is still laid out again past its own bound", () => {
    const pxPerX = 0.01;
    const far = (MAX_SLIDE_WIDE_PX + 1) * 100;
    const near = (MAX_SLIDE_PX + 10) * 100;
    const wide = maxSlideFor(1400);
    assert.equal(slideFor({ axisRange: [0, 10_000], range: [near, 10_000 + near], pxPerX, maxSlidePx: wide }), MAX_SLIDE_PX + 10);
    assert.equal(slideFor({ axisRange: [0, 10_000], range: [far, 10_000 + far], pxPerX, maxSlidePx: wide }), null);
  });
});

describe("slidOut", () => {
  test("a tick slid past the plot's left edge is out; one still over the plot is not", () => {
    // The plot begins 64 px into the chart (its left margin): Plotly's x are from the chart's left.
    assert.equal(slidOut({ x: 203, slide: 44, left: 64 }), false);
    assert.equal(slidOut({ x: 100, slide: 44, left: 64 }), true); // in the margin, not hidden before
    assert.equal(slidOut({ x: 64, slide: 0, left: 64 }), false);
    assert.equal(slidOut({ x: Number.NaN, slide: 90, left: 64 }), false);
  });

  test("reads the x of a translate", () => {
    assert.equal(translateX("translate(203.09,0)"), 203.09);
    assert.equal(translateX("translate( -4e-1, 3)"), -0.4);
    assert.ok(Number.isNaN(translateX(null)));
  });
});

describe("lineRendering", () => {
  test("a line of a point or more a pixel column is drawn without anti-aliasing", () => {
    assert.equal(lineRendering(1900, 1100), "optimizeSpeed");
    assert.equal(lineRendering(1100, 1100), "optimizeSpeed");
  });
  test("a sparser line keeps the browser's anti-aliased default", () => {
    assert.equal(lineRendering(300, 400), null);
    assert.equal(lineRendering(1099, 1100), null);
  });
  test("a plot with no width yet (not laid out) keeps the default", () => {
    assert.equal(lineRendering(5000, 0), null);
    assert.equal(lineRendering(5000, Number.NaN), null);
  });
});
