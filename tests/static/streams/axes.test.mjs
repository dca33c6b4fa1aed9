import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fitValueAxis, steadyAxes, valueRange } from "../../../streams/static/streams/axes.js";

describe("steadyAxes", () => {
  const layout = { xaxis: { type: "date" }, yaxis: { title: { text: "°C" } }, margin: { l: 52 } };

  test("fixes the x axis margin and label angle, and skips the overflow checks", () => {
    const steady = steadyAxes(layout);
    assert.deepEqual(steady.xaxis, { type: "date", ticklabeloverflow: "allow", automargin: false, tickangle: 0 });
    assert.deepEqual(steady.yaxis, { title: { text: "°C" }, ticklabeloverflow: "allow" });
    assert.deepEqual(steady.margin, { l: 52 });
    assert.deepEqual(layout.xaxis, { type: "date" }, "the page's layout is not changed");
  });
  test("limits the x ticks when asked", () => {
    assert.equal(steadyAxes(layout, { nticks: 4 }).xaxis.nticks, 4);
    assert.equal("nticks" in steadyAxes(layout).xaxis, false);
  });
  test("leaves a layout without axes (a gauge) alone", () => {
    const gauge = { margin: { l: 40 } };
    assert.equal(steadyAxes(gauge), gauge);
  });
});

describe("valueRange", () => {
  test("is the values' extent with 5 % room, nulls skipped", () => {
    assert.deepEqual(valueRange([[100, null, 110], [105]]), [99.5, 110.5]);
  });

  test("gives a flat series some room, and nothing for no values", () => {
    assert.deepEqual(valueRange([[100, 100]]), [95, 105]);
    assert.deepEqual(valueRange([[0]]), [-1, 1]);
    assert.equal(valueRange([[], [null]]), null);
  });
});

describe("fitValueAxis", () => {
  test("keeps a price series' axis at its values, not down to zero", () => {
    const element = { layout: { yaxis: { autorange: true } } };
    fitValueAxis(element, [[100, 102]]);
    assert.deepEqual(element.layout.yaxis.range, [99.9, 102.1]);
    assert.equal(element.layout.yaxis.autorange, false);
    fitValueAxis(element, [[100, 104]]);
    assert.deepEqual(element.layout.yaxis.range, [99.8, 104.2]);
  });

  test("leaves a range the viewer zoomed to alone, and takes the axis back after autorange", () => {
    const element = { layout: { yaxis: { autorange: true } } };
    fitValueAxis(element, [[100, 102]]);
    element.layout.yaxis.range = [50, 60]; // a zoom
    fitValueAxis(element, [[100, 110]]);
    assert.deepEqual(element.layout.yaxis.range, [50, 60]);
    element.layout.yaxis.autorange = true; // a double click
    fitValueAxis(element, [[100, 110]]);
    assert.deepEqual(element.layout.yaxis.range, [99.5, 110.5]);
  });
});
