// The mode bar's "Download plot as a PNG" for charts whose area fills fillclip.js clips. Plotly's
// own button (Plotly.toImage) draws a hidden copy of the chart and takes its picture; that copy
// never gets our clips, so the picture filled the holes the page shows white. Ours makes the same
// copy, clips its fills as the page's are clipped, and turns it into a PNG with Plotly's own
// Snapshot.toSVG and Snapshot.svgToImg, as Plotly.toImage does.

import { clipFills } from "./fillclip.js";

/* global Plotly */

/** The button's name among the mode bar's (Plotly's own is "toImage"). */
export const BUTTON = "toImageClipped";

/**
 * `config` with Plotly's PNG button swapped for ours (`config` itself when it has ours already).
 * @param {any} config  a Plotly config
 * @param {string} filename  the file's name, without ".png"
 * @returns {any}
 */
export function withClippedDownload(config, filename) {
  if (config?.modeBarButtonsToAdd?.some((button) => button?.name === BUTTON)) return config;
  return {
    ...config,
    modeBarButtonsToRemove: [...(config?.modeBarButtonsToRemove ?? []), "toImage"],
    modeBarButtonsToAdd: [
      ...(config?.modeBarButtonsToAdd ?? []),
      {
        name: BUTTON,
        title: "Download plot as a PNG",
        icon: Plotly.Icons.camera,
        click: (/** @type {any} */ element) =>
          downloadPng(element, filename).catch((error) => console.error("LiveCharts: no PNG of the chart:", error)),
      },
    ],
  };
}

/**
 * The chart as drawn now, as a PNG data URL, its area fills clipped as on the page.
 * @param {any} element  a Plotly chart
 * @returns {Promise<string>}
 */
export async function clippedPng(element) {
  const { width, height } = element._fullLayout;
  const copy = document.createElement("div");
  copy.style.position = "absolute";
  copy.style.left = "-5000px";
  document.body.append(copy);
  try {
    const layout = { ...element.layout, width, height };
    await Plotly.newPlot(copy, element.data, layout, { ...element._context, staticPlot: true });
    clipFills(copy);
    const svg = Plotly.Snapshot.toSVG(copy, "png", 1);
    const canvas = document.createElement("canvas");
    return await Plotly.Snapshot.svgToImg({ format: "png", width, height, scale: 1, canvas, svg, promise: true });
  } finally {
    Plotly.purge(copy);
    copy.remove();
  }
}

/**
 * Save the chart's clipped picture as `filename`.png.
 * @param {any} element @param {string} filename
 */
export async function downloadPng(element, filename) {
  const link = document.createElement("a");
  link.href = await clippedPng(element);
  link.download = `${filename}.png`;
  document.body.append(link);
  link.click();
  link.remove();
}
