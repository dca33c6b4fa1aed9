import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fillsArea, intersectSpans, lineSpans, pieceSpan } from "../../../streams/static/streams/fillspans.js";

describe("pieceSpan", () => {
  test("reads the first and last x of a straight piece, as Plotly writes it", () => {
    assert.deepEqual(pieceSpan("M0,100L131.78,80L263.56,60"), [0, 263.56]);
    assert.deepEqual(pieceSpan("M-84.71,19.05L84.71,15.43"), [-84.71, 84.71]);
  });

  test("reads steps (H then V: x from the H) and curves (the point reached)", () => {
    assert.deepEqual(pieceSpan("M10,5H20V7H30V9"), [10, 30]);
    assert.deepEqual(pieceSpan("M10,5C12,6 18,6 25,4"), [10, 25]);
  });

  test("a lone point between two holes (Plotly draws it as a dot) spans no width", () => {
    assert.deepEqual(pieceSpan("M377.36,62Z"), [377.36, 377.36]);
  });

  test("is null for what is not a piece of a line", () => {
    assert.equal(pieceSpan(null), null);
    assert.equal(pieceSpan(""), null);
    assert.equal(pieceSpan("L1,2"), null);
  });
});

describe("lineSpans", () => {
  test("one span per piece of a line broken by a hole, in x order", () => {
    const pieces = ["M527.11,70L593,60", "M0,100L131.78,80", "M263.56,60L329.44,50"];
    assert.deepEqual(lineSpans(pieces), [
      [0, 131.78],
      [263.56, 329.44],
      [527.11, 593],
    ]);
  });

  test("a line with no hole is one span; a line with no piece (one point) none", () => {
    assert.deepEqual(lineSpans(["M0,1L5,2L9,3"]), [[0, 9]]);
    assert.deepEqual(lineSpans([]), []);
  });

  test("pieces that touch or overlap merge", () => {
    assert.deepEqual(lineSpans(["M0,1L5,2", "M5,1L9,2", "M8,1L12,2"]), [[0, 12]]);
  });
});

describe("intersectSpans", () => {
  test("a fill to the next line is kept only where both lines have points", () => {
    const low = [
      [0, 100],
      [300, 400],
    ];
    const high = [
      [0, 150],
      [350, 500],
    ];
    assert.deepEqual(intersectSpans(low, high), [
      [0, 100],
      [350, 400],
    ]);
  });

  test("the same holes in both lines keep them", () => {
    const spans = [
      [0, 100],
      [300, 400],
    ];
    assert.deepEqual(intersectSpans(spans, spans), spans);
  });

  test("lines that meet only at a point share no span", () => {
    assert.deepEqual(intersectSpans([[0, 100]], [[100, 200]]), []);
  });
});

describe("fillsArea", () => {
  test("is true when a trace fills, whatever the kind", () => {
    assert.equal(fillsArea([{ fill: "tozeroy" }]), true);
    assert.equal(fillsArea([{ mode: "lines" }, { fill: "tonexty" }]), true);
  });

  test("is false for lines, markers, bars, candles and a panel with no new trace", () => {
    assert.equal(fillsArea([{ mode: "lines" }, { fill: "none" }, { type: "candlestick" }, null]), false);
  });
});
