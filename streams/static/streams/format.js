// One way to write numbers everywhere on the page: thousands separated, a fixed number of
// decimals when the stream (or panel) sets `decimals`, else up to 6 significant digits.
// The Plotly formats (ticks, hover, gauges) are set by streams/web/figures.py the same way.
// Pure: no DOM.

/** Significant digits shown when no `decimals` is set (d3's ",.6~r" in the figures). */
export const SIGNIFICANT = 6;

/** Whole counts: one formatter (toLocaleString makes one per call, several times a second). */
const COUNT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
/** @type {Map<string, Intl.NumberFormat>} */
const formats = new Map();

/** @param {number|null|undefined} decimals */
function formatFor(decimals) {
  const key = String(decimals ?? "auto");
  let format = formats.get(key);
  if (format === undefined) {
    format =
      decimals === null || decimals === undefined
        ? new Intl.NumberFormat("en-US", { maximumSignificantDigits: SIGNIFICANT })
        : new Intl.NumberFormat("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    formats.set(key, format);
  }
  return format;
}

/**
 * "12,345.68", "0.000123457", "—" for no value.
 * @param {unknown} value
 * @param {number|null} [decimals] digits after the point; null: up to 6 significant digits
 */
export function formatNumber(value, decimals = null) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  const text = formatFor(decimals).format(value);
  // -0.00 is not a value anyone measured.
  return /^-[0.,]+$/.test(text) ? text.slice(1) : text;
}

/**
 * A whole count: "12,345".
 * @param {unknown} value
 */
export function formatCount(value) {
  return typeof value === "number" && Number.isFinite(value) ? COUNT.format(Math.round(value)) : "—";
}
