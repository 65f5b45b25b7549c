// Time series charts, drawn by uPlot (vendor/uPlot.iife.min.js, loaded
// by index.html as the global `uPlot`).

import { fmtValue } from "./dom.js";

/** Colours of series, in order (distinct on white and in print). */
export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
];

/**
 * Aligns series of `[seconds, value]` points on one x axis (the union of
 * their times): uPlot's `[xs, ys1, ys2, ...]`, a gap where a series has
 * no point.
 */
export function align(series) {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const y = new Array(xs.length).fill(null);
    for (const [x, v] of s.points) y[index.get(x)] = v;
    return y;
  });
  return [xs, ...ys];
}

/**
 * Draws `series` (`{name, points: [[seconds, value], ...]}`) into `el` as
 * a time series chart sized to `el`'s width (x from `range.start` to
 * `range.end`, milliseconds, when given); redraws on resize. Returns
 * the uPlot instance.
 */
export function timeSeriesChart(el, series, { unit, height = 260, stacked = false, range } = {}) {
  const data = align(series);
  const width = Math.max(el.clientWidth || 600, 200);
  const opts = {
    width,
    height,
    // The x axis spans the asked range (ms), not just the data in it.
    scales: { x: range ? { time: true, range: () => [range.start / 1000, range.end / 1000] } : { time: true } },
    legend: { show: series.length <= 20, live: true },
    cursor: { drag: { x: true, y: false } },
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.name,
        stroke: PALETTE[i % PALETTE.length],
        fill: stacked ? PALETTE[i % PALETTE.length] + "33" : undefined,
        width: 1.5,
        spanGaps: false,
        value: (u, v) => fmtValue(v, unit),
      })),
    ],
    axes: [{}, { size: 76, values: (u, vals) => vals.map((v) => fmtValue(v, unit)) }],
  };
  // eslint-disable-next-line no-undef
  const plot = new uPlot(opts, data, el);
  const resize = new ResizeObserver(() => {
    const w = el.clientWidth;
    if (w > 0 && Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  resize.observe(el);
  return plot;
}

/** Series of a Prometheus or Loki matrix: `{name, points}` with numbers. */
export function matrixSeries(result, nameOf) {
  return result.map((s) => ({
    name: nameOf(s.metric || s.stream || {}),
    points: (s.values || []).map(([t, v]) => [Number(t), parseFloat(v)]),
  }));
}
