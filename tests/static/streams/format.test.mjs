import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { formatCount, formatNumber } from "../../../streams/static/streams/format.js";

describe("formatNumber", () => {
  test("separates thousands and keeps the stream's decimals", () => {
    assert.equal(formatNumber(1234567.891, 2), "1,234,567.89");
    assert.equal(formatNumber(21.5, 2), "21.50");
    assert.equal(formatNumber(3, 0), "3");
  });

  test("without decimals shows up to 6 significant digits, no trailing zeros", () => {
    assert.equal(formatNumber(12345.678), "12,345.7");
    assert.equal(formatNumber(21.5), "21.5");
    assert.equal(formatNumber(0.1 + 0.2), "0.3");
    assert.equal(formatNumber(0.000123456789), "0.000123457");
  });

  test("no value is a dash, and a rounded negative zero is zero", () => {
    assert.equal(formatNumber(null), "—");
    assert.equal(formatNumber(Number.NaN), "—");
    assert.equal(formatNumber(-0.001, 2), "0.00");
    assert.equal(formatNumber(-1.5, 1), "-1.5");
  });
});

describe("formatCount", () => {
  test("whole numbers with separators", () => {
    assert.equal(formatCount(12345), "12,345");
    assert.equal(formatCount(undefined), "—");
  });
});
