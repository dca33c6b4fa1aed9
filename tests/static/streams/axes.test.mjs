import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { steadyAxes } from "../../../streams/static/streams/axes.js";

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
