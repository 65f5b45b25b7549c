// Efficiency: work done per unit of resource, compared between two
// cohorts (label selectors or time windows) by GET /api/v1/efficiency,
// the engine of `sightline report efficiency`. The form's fields are the
// API's parameters, so the address of a report is the report.

import { call } from "./api.js";
import { PALETTE, align } from "./chart.js";
import { errorBox, fmtValue, h, table } from "./dom.js";
import { setParams } from "./nav.js";

/** The form's fields: (API parameter, label, default). The defaults are the built-in sample's. */
const FIELDS = [
  ["title", "Title", "Spam scanner: Kubernetes against VMs"],
  ["work_name", "Work is", "messages scanned per second"],
  ["work", "Work query", 'sum(rate(messages_scanned_total{job="spam-scanner"}[5m]))'],
  ["resource_name", "Resource is", "CPU-second"],
  ["resource", "Resource query", 'sum(rate(process_cpu_seconds_total{job="spam-scanner"}[5m]))'],
  ["latency", "Latency histogram (optional)", 'scan_duration_seconds_bucket{job="spam-scanner"}'],
  ["step", "Window", "5m"],
  ["confidence", "Confidence", "0.95"],
  ["baseline.name", "Baseline", "vm"],
  ["baseline.matchers", "Baseline matchers", '{platform="vm"}'],
  ["baseline.start", "Baseline from", "now-2h"],
  ["baseline.end", "Baseline to", "now"],
  ["candidate.name", "Candidate", "k8s"],
  ["candidate.matchers", "Candidate matchers", '{platform="k8s"}'],
  ["candidate.start", "Candidate from", "now-2h"],
  ["candidate.end", "Candidate to", "now"],
];

export function render(main, params) {
  const inputs = new Map();
  const out = h("section", { class: "report", "data-state": "idle" });
  const form = h(
    "form",
    { class: "efficiency-form", onsubmit: (e) => { e.preventDefault(); run(); } },
    FIELDS.map(([name, label, def]) => {
      const input = h("input", { name, value: params.has(name) ? params.get(name) : def, size: name.includes("query") || name === "work" || name === "resource" || name === "latency" ? 60 : 24 });
      inputs.set(name, input);
      return h("label", {}, h("span", {}, label), input);
    }),
    h("button", { type: "submit" }, "Compare"),
  );
  main.append(
    h("h1", {}, "Efficiency"),
    h("p", { class: "muted" }, "Work per unit of resource in two cohorts, with bootstrap confidence intervals over evaluation windows. The same report: sightline report efficiency --config report.yaml."),
    form,
    out,
  );

  async function run() {
    const p = {};
    for (const [name, input] of inputs) if (input.value.trim()) p[name] = input.value.trim();
    setParams(p);
    out.replaceChildren(h("p", { class: "muted" }, "Computing…"));
    out.dataset.state = "loading";
    try {
      const r = await call("/api/v1/efficiency", { params: p });
      show(out, r.data);
      out.dataset.state = "drawn";
    } catch (e) {
      out.replaceChildren(errorBox("no report", e));
      out.dataset.state = "error";
    }
  }
  if (params.has("work")) run();
  return null;
}

function pct(x) {
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} %`;
}

function show(el, rep) {
  const [base, cand] = rep.cohorts;
  const conf = `${Math.round(rep.confidence * 100)} %`;
  const rows = rep.cohorts.map((c) => [
    c.name,
    c.matchers || "",
    `${c.start} – ${c.end}`,
    String(c.windows),
    fmtValue(c.work_per_second),
    fmtValue(c.resource_per_second),
    h("strong", {}, fmtValue(c.efficiency)),
    `${fmtValue(c.efficiency_interval[0])} – ${fmtValue(c.efficiency_interval[1])}`,
  ]);
  el.replaceChildren(
    h("h2", {}, rep.title || "Report"),
    h("p", { class: rep.change.significant ? "verdict significant" : "verdict" }, rep.change.verdict),
    h("p", { class: "meta" }, `change ${pct(rep.change.relative)}, ${conf} interval ${pct(rep.change.interval[0])} to ${pct(rep.change.interval[1])}; ${rep.iterations} bootstrap resamples over ${rep.step_seconds} s windows`),
    table(["cohort", "matchers", "time", "windows", `${rep.work.name || "work"}`, `${rep.resource.name || "resource"} per s`, "efficiency", `${conf} interval`], rows, { class: "data" }),
    h("div", {}, base.latency || cand.latency
      ? [h("h3", {}, "Latency"), table(
          ["cohort", "observations", "p50", "p90", "p99", "p99.9"],
          rep.cohorts.filter((c) => c.latency).map((c) => [c.name, fmtValue(c.latency.count), fmtValue(c.latency.p50, "s"), fmtValue(c.latency.p90, "s"), fmtValue(c.latency.p99, "s"), fmtValue(c.latency.p999, "s")]),
          { class: "data" },
        )]
      : null),
    ...(rep.warnings.length ? [h("div", { class: "warning" }, rep.warnings.map((w) => h("div", {}, w)))] : []),
  );
  const chart = h("div", { class: "chart efficiency-chart" });
  el.append(h("h3", {}, "Efficiency per window (hours since each cohort's start), with each cohort's ratio and interval"), chart);
  drawChart(chart, rep);
}

/** Each cohort's per-window efficiency, its overall ratio and the ratio's interval as a band. */
function drawChart(el, rep) {
  const series = [];
  rep.cohorts.forEach((c) => {
    const t0 = Date.parse(c.start) / 1000;
    const xs = c.per_window.map(([t]) => (t - t0) / 3600);
    series.push({ name: `${c.name} per window`, points: c.per_window.map(([t, v]) => [(t - t0) / 3600, v]) });
    series.push({ name: `${c.name} ratio`, points: xs.map((x) => [x, c.efficiency]) });
    series.push({ name: `${c.name} upper`, points: xs.map((x) => [x, c.efficiency_interval[1]]) });
    series.push({ name: `${c.name} lower`, points: xs.map((x) => [x, c.efficiency_interval[0]]) });
  });
  const data = align(series);
  const colour = (i) => PALETTE[Math.floor(i / 4) % PALETTE.length];
  const opts = {
    width: Math.max(el.clientWidth || 600, 300),
    height: 300,
    scales: { x: { time: false } },
    axes: [{ label: "hours since the cohort's start" }, { size: 64, values: (u, v) => v.map((x) => fmtValue(x)) }],
    series: [
      { label: "hours", value: (u, v) => (v === null ? "–" : v.toFixed(2)) },
      ...series.map((s, i) => ({
        label: s.name,
        stroke: colour(i) + (i % 4 === 0 ? "88" : i % 4 === 1 ? "" : "00"),
        width: i % 4 === 1 ? 2.5 : 1,
        spanGaps: true,
        points: { show: false },
        value: (u, v) => fmtValue(v),
      })),
    ],
    bands: rep.cohorts.map((c, k) => ({ series: [4 * k + 3, 4 * k + 4], fill: colour(4 * k) + "33" })),
  };
  // eslint-disable-next-line no-undef
  new uPlot(opts, data, el);
}
