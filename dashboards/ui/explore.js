// Explore: a PromQL or LogQL query over a time range, as a graph, a
// table or log lines.

import { lokiRange, promInstant, promRange } from "./api.js";
import { matrixSeries, timeSeriesChart } from "./chart.js";
import { attachCompletion } from "./complete.js";
import { errorBox, fmtTime, fmtValue, h, seriesName, table } from "./dom.js";
import { setParams } from "./nav.js";
import { resolveRange, stepFor, timePicker } from "./time.js";

/** Renders Explore into `main` from the address's parameters. */
export function render(main, params) {
  const state = {
    lang: params.get("lang") === "logql" ? "logql" : "promql",
    q: params.get("q") || "",
    from: params.get("from") || "now-1h",
    to: params.get("to") || "now",
    view: params.get("view") || "graph",
  };
  const result = h("section", { class: "result", "data-state": "idle" });
  const box = h("textarea", {
    class: "query",
    rows: 2,
    spellcheck: "false",
    placeholder: state.lang === "logql" ? '{job="mail"} |= "error"' : "rate(node_cpu_seconds_total[5m])",
    "aria-label": "query",
    value: state.q,
  });
  const lang = h(
    "select",
    { class: "lang", "aria-label": "query language", onchange: () => { state.lang = lang.value; save(); location.reload(); } },
    h("option", { value: "promql", selected: state.lang === "promql" }, "PromQL (metrics)"),
    h("option", { value: "logql", selected: state.lang === "logql" }, "LogQL (logs)"),
  );
  const views = h(
    "span",
    { class: "views", role: "tablist" },
    ["graph", "table"].map((v) =>
      h("button", { type: "button", role: "tab", class: `view-${v}`, "aria-selected": state.view === v, onclick: () => { state.view = v; run(); } }, v === "graph" ? "Graph" : "Table"),
    ),
  );
  const save = () => setParams({ lang: state.lang, q: state.q, from: state.from, to: state.to, view: state.view });
  const picker = timePicker(state, (r) => {
    state.from = r.from;
    state.to = r.to;
    run();
  }, h);

  async function run() {
    state.q = box.value.trim();
    save();
    for (const b of views.querySelectorAll("button")) b.setAttribute("aria-selected", b.classList.contains(`view-${state.view}`));
    result.replaceChildren();
    if (!state.q) {
      result.dataset.state = "idle";
      return;
    }
    result.dataset.state = "loading";
    try {
      const { start, end } = resolveRange(state);
      const step = stepFor(start, end);
      if (state.lang === "logql") await showLogql(result, state.q, start, end, step);
      else if (state.view === "table") await showTable(result, state.q, end);
      else await showGraph(result, state.q, start, end, step);
    } catch (e) {
      result.replaceChildren(errorBox("query failed", e));
      result.dataset.state = "error";
    }
  }

  main.append(
    ...[
    h("h1", {}, "Explore"),
    h("div", { class: "toolbar" }, lang, picker),
    h("div", { class: "query-row" }, h("div", { class: "query-box" }, box), h("button", { class: "run", type: "button", onclick: run }, "Run")),
    state.lang === "promql" ? views : null,
    result,
    ].filter(Boolean),
  );
  // After the box is in the page (the list goes beside it), and before
  // Enter runs the query (an open list takes Enter first).
  attachCompletion(box, { loki: state.lang === "logql" });
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      run();
    }
  });
  run();
}

/** The query's warnings (an empty box when there are none). */
function warnings(list) {
  return h("div", { class: "warning" }, (list || []).map((w) => h("div", {}, `warning: ${w}`)));
}

async function showGraph(el, q, start, end, step) {
  const r = await promRange(q, start, end, step);
  if (r.resultType !== "matrix") throw new Error(`a graph needs a range vector result, got ${r.resultType}`);
  el.append(warnings(r.warnings));
  drawMatrix(el, r.result, start, end, step);
}

/** A matrix answer as a chart (or "no data"), with its series count. */
function drawMatrix(el, result, start, end, step) {
  const series = matrixSeries(result, seriesName);
  el.append(h("div", { class: "meta" }, `${series.length} series, step ${step}s`));
  if (!series.length) {
    el.append(h("p", { class: "empty" }, "No data in this range."));
    el.dataset.state = "empty";
    return;
  }
  const chart = h("div", { class: "chart" });
  el.append(chart);
  timeSeriesChart(chart, series, { height: 320, range: { start, end } });
  el.dataset.state = "drawn";
}

async function showTable(el, q, time) {
  const r = await promInstant(q, time);
  let rows = [];
  if (r.resultType === "vector") rows = r.result.map((s) => [seriesName(s.metric), fmtValue(parseFloat(s.value[1]))]);
  else if (r.resultType === "scalar" || r.resultType === "string") rows = [["(scalar)", r.result[1]]];
  else if (r.resultType === "matrix")
    rows = r.result.map((s) => [seriesName(s.metric), s.values.map(([t, v]) => `${v} @ ${t}`).join("\n")]);
  el.append(warnings(r.warnings), h("div", { class: "meta" }, `${rows.length} results at ${fmtTime(time)}`));
  if (!rows.length) {
    el.append(h("p", { class: "empty" }, "No data at this time."));
    el.dataset.state = "empty";
    return;
  }
  el.append(table(["series", "value"], rows, { class: "data" }));
  el.dataset.state = "drawn";
}

/** Log lines of a LogQL log query, newest first, or a chart of a metric query. */
export async function showLogql(el, q, start, end, step, limit = 200) {
  const r = await lokiRange(q, start, end, step, limit);
  el.append(warnings(r.warnings));
  if (r.resultType === "streams") {
    const lines = r.result
      .flatMap((s) => s.values.map(([t, line]) => ({ t: BigInt(t), line, labels: s.stream })))
      .sort((a, b) => (a.t < b.t ? 1 : a.t > b.t ? -1 : 0));
    el.append(h("div", { class: "meta" }, `${lines.length} lines from ${r.result.length} streams (newest first, at most ${limit})`));
    if (!lines.length) {
      el.append(h("p", { class: "empty" }, "No log lines in this range."));
      el.dataset.state = "empty";
      return;
    }
    el.append(
      h(
        "div",
        { class: "logs" },
        lines.map((l) =>
          h(
            "div",
            { class: "log-line" },
            h("span", { class: "log-time" }, fmtTime(Number(l.t / 1000000n))),
            h("span", { class: "log-labels", title: seriesName(l.labels) }, seriesName(l.labels)),
            h("span", { class: "log-text" }, l.line),
          ),
        ),
      ),
    );
    el.dataset.state = "drawn";
    return;
  }
  drawMatrix(el, r.result, start, end, step);
}
