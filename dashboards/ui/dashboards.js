// Dashboards: the Grafana dashboards of `dashboards/grafana/` (the same
// files Grafana is given), drawn here: time series, stat, table and logs
// panels, with template variables from `label_values(...)`.

import { call, labelValues, lokiInstant, lokiRange, promInstant, promRange } from "./api.js";
import { matrixSeries, timeSeriesChart } from "./chart.js";
import { errorBox, fmtTime, fmtValue, h, legend, table } from "./dom.js";
import { setParams } from "./nav.js";
import { resolveRange, stepFor, timePicker } from "./time.js";

/** `#/dashboards` lists them; `#/dashboards/<uid>` draws one. */
export function render(main, params, rest) {
  if (rest[0]) return renderDashboard(main, rest[0], params);
  main.append(h("h1", {}, "Dashboards"));
  const list = h("ul", { class: "dashboard-list" });
  main.append(list, h("p", { class: "muted" }, "The same files are provisioned to Grafana: see dashboards/README.md."));
  call("/ui/api/dashboards")
    .then((r) =>
      list.replaceChildren(
        ...r.data.map((d) => h("li", {}, h("a", { href: `#/dashboards/${encodeURIComponent(d.uid)}` }, d.title), " ", h("span", { class: "tags" }, d.tags.join(", ")))),
      ),
    )
    .catch((e) => list.replaceChildren(errorBox("cannot list dashboards", e)));
  return null;
}

/** The query text of a variable (`label_values(...)`, or a custom list). */
function variableQuery(v) {
  return typeof v.query === "string" ? v.query : (v.query && v.query.query) || "";
}

/** The values a template variable may take, as Grafana finds them. */
export async function variableOptions(v, range) {
  if (v.type === "custom" || v.type === "interval") {
    return variableQuery(v).split(",").map((s) => s.trim()).filter(Boolean);
  }
  if (v.type === "constant" || v.type === "textbox") return [variableQuery(v)];
  const q = variableQuery(v).trim();
  const m = q.match(/^label_values\((.*)\)$/s);
  if (!m) throw new Error(`variable ${v.name}: the built-in UI resolves label_values(...) queries, not ${q}`);
  const inner = m[1];
  const comma = inner.lastIndexOf(",");
  const [match, label] = comma < 0 ? [undefined, inner.trim()] : [inner.slice(0, comma).trim(), inner.slice(comma + 1).trim()];
  const loki = v.datasource && v.datasource.type === "loki";
  return labelValues(label, { loki, match, startMs: range.start, endMs: range.end });
}

/** A regex-safe alternative of several values, as Grafana formats multi-value variables for Prometheus. */
function multiValue(values) {
  if (values.length === 1) return values[0];
  return `(${values.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`;
}

/** `expr` with `$var`, `${var}`, `[[var]]` and Grafana's built-ins replaced. */
export function interpolate(expr, vars, { stepS, rangeS }) {
  const builtins = {
    __interval: `${stepS}s`,
    __interval_ms: String(stepS * 1000),
    __rate_interval: `${Math.max(stepS + 15, 60)}s`,
    __range: `${Math.round(rangeS)}s`,
    __range_s: String(Math.round(rangeS)),
    __range_ms: String(Math.round(rangeS * 1000)),
  };
  const all = { ...builtins, ...vars };
  const value = (name, whole) => (name in all ? (Array.isArray(all[name]) ? multiValue(all[name]) : all[name]) : whole);
  return expr
    .replace(/\$\{([a-zA-Z_]\w*)(?::[^}]*)?\}/g, (whole, n) => value(n, whole))
    .replace(/\[\[([a-zA-Z_]\w*)\]\]/g, (whole, n) => value(n, whole))
    .replace(/\$([a-zA-Z_]\w*)/g, (whole, n) => value(n, whole));
}

async function renderDashboard(main, uid, params) {
  let dash;
  try {
    dash = await call(`/ui/api/dashboards/${encodeURIComponent(uid)}`);
  } catch (e) {
    main.append(errorBox(`dashboard ${uid}`, e));
    return null;
  }
  const state = {
    from: params.get("from") || (dash.time && dash.time.from) || "now-6h",
    to: params.get("to") || (dash.time && dash.time.to) || "now",
    vars: {},
  };
  const save = () => {
    const p = { from: state.from, to: state.to };
    for (const [k, v] of Object.entries(state.vars)) p[`var-${k}`] = v;
    setParams(p);
  };
  const varBar = h("div", { class: "variables" });
  const grid = h("div", { class: "grid" });
  const picker = timePicker(state, (r) => {
    state.from = r.from;
    state.to = r.to;
    draw();
  }, h);
  main.append(
    h("h1", {}, h("a", { href: "#/dashboards" }, "Dashboards"), " / ", dash.title),
    h("div", { class: "toolbar" }, varBar, picker, h("button", { type: "button", onclick: () => draw() }, "Refresh")),
    grid,
  );

  let timer = null;
  async function draw() {
    save();
    let range;
    try {
      range = resolveRange(state);
    } catch (e) {
      grid.replaceChildren(errorBox("time range", e));
      return;
    }
    // Variables first: panels read them.
    varBar.replaceChildren();
    for (const v of (dash.templating && dash.templating.list) || []) {
      if (v.type === "datasource" || v.hide === 2) continue;
      let options = [];
      try {
        options = await variableOptions(v, range);
      } catch (e) {
        varBar.append(errorBox(`variable ${v.name}`, e));
      }
      const wanted = params.get(`var-${v.name}`) ?? state.vars[v.name] ?? (v.current && v.current.value);
      const chosen = options.includes(wanted) ? wanted : options[0] ?? "";
      state.vars[v.name] = chosen;
      const select = h(
        "select",
        { class: "variable", "data-name": v.name, onchange: () => { state.vars[v.name] = select.value; params.delete(`var-${v.name}`); draw(); } },
        options.map((o) => h("option", { value: o, selected: o === chosen }, o)),
      );
      varBar.append(h("label", {}, `${v.label || v.name} `, select));
    }
    save();
    grid.replaceChildren();
    const stepS = stepFor(range.start, range.end);
    const ctx = { range, stepS, rangeS: (range.end - range.start) / 1000, vars: state.vars };
    const panels = [];
    for (const p of dash.panels || []) {
      if (p.type === "row") {
        grid.append(h("h2", { class: "row", style: gridStyle(p.gridPos) }, p.title));
        for (const inner of p.panels || []) panels.push(inner);
        continue;
      }
      panels.push(p);
    }
    for (const p of panels) {
      const body = h("div", { class: "panel-body" });
      const title = interpolate(p.title || "", state.vars, ctx);
      const el = h("section", { class: `panel panel-${p.type}`, "data-state": "loading", "data-title": title, style: gridStyle(p.gridPos) }, h("h3", {}, title), body);
      grid.append(el);
      drawPanel(p, body, ctx)
        .then((state) => (el.dataset.state = state))
        .catch((e) => {
          body.replaceChildren(errorBox("query failed", e));
          el.dataset.state = "error";
        });
    }
  }
  await draw();
  const refresh = dash.refresh ? parseRefresh(dash.refresh) : 0;
  if (refresh) timer = setInterval(() => !document.hidden && draw(), refresh);
  return { stop: () => timer && clearInterval(timer) };
}

function parseRefresh(text) {
  const m = String(text).match(/^(\d+)(s|m|h)$/);
  return m ? Number(m[1]) * { s: 1000, m: 60000, h: 3600000 }[m[2]] : 0;
}

/** CSS grid placement of Grafana's gridPos (24 columns, 30 px rows). */
function gridStyle(pos = {}) {
  const { x = 0, y = 0, w = 12, h: height = 8 } = pos;
  return `grid-column: ${x + 1} / span ${w}; grid-row: ${y + 1} / span ${height};`;
}

/** Runs a panel's targets; draws them; resolves to "drawn" or "empty". */
async function drawPanel(p, body, ctx) {
  const targets = (p.targets || []).filter((t) => !t.hide && t.expr);
  if (!targets.length) throw new Error("the panel has no query");
  const unit = p.fieldConfig && p.fieldConfig.defaults && p.fieldConfig.defaults.unit;
  const isLoki = (t) => ((t.datasource || p.datasource || {}).type || "") === "loki";
  const { start, end } = ctx.range;
  const expr = (t) => interpolate(t.expr, ctx.vars, ctx);

  if (p.type === "logs") {
    const lines = [];
    for (const t of targets) {
      const r = await lokiRange(expr(t), start, end, ctx.stepS, t.maxLines || 100);
      for (const s of r.result) for (const [ts, line] of s.values) lines.push({ t: BigInt(ts), line, labels: s.stream });
    }
    lines.sort((a, b) => (a.t < b.t ? 1 : a.t > b.t ? -1 : 0));
    if (!lines.length) return empty(body);
    body.append(
      h("div", { class: "logs" }, lines.slice(0, 200).map((l) =>
        h("div", { class: "log-line" }, h("span", { class: "log-time" }, fmtTime(Number(l.t / 1000000n))), h("span", { class: "log-text" }, l.line)),
      )),
    );
    return "drawn";
  }

  if (p.type === "table" || targets.every((t) => t.instant)) {
    const rows = [];
    const labels = new Set();
    for (const t of targets) {
      const r = isLoki(t) ? await lokiInstant(expr(t), end) : await promInstant(expr(t), end);
      const samples = r.resultType === "vector" ? r.result : r.resultType === "scalar" ? [{ metric: {}, value: r.result }] : [];
      for (const s of samples) {
        Object.keys(s.metric).forEach((k) => labels.add(k));
        rows.push(s);
      }
    }
    if (!rows.length) return empty(body);
    const cols = [...labels].sort();
    body.append(
      table([...cols, "Value"], rows.map((s) => [...cols.map((c) => s.metric[c] ?? ""), fmtValue(parseFloat(s.value[1]), unit)]), { class: "data" }),
    );
    return "drawn";
  }

  const series = [];
  for (const t of targets) {
    const r = isLoki(t) ? await lokiRange(expr(t), start, end, ctx.stepS) : await promRange(expr(t), start, end, ctx.stepS);
    if (r.resultType !== "matrix") throw new Error(`expected a matrix, got ${r.resultType}`);
    series.push(...matrixSeries(r.result, (m) => legend(t.legendFormat, m)));
  }
  if (!series.length || series.every((s) => !s.points.length)) return empty(body);

  if (p.type === "stat" || p.type === "gauge" || p.type === "bargauge") {
    body.append(
      h("div", { class: "stats" }, series.map((s) => {
        const last = [...s.points].reverse().find((pt) => Number.isFinite(pt[1]));
        return h("div", { class: "stat" }, h("div", { class: "stat-value" }, fmtValue(last ? last[1] : NaN, unit)), series.length > 1 ? h("div", { class: "stat-name" }, s.name) : null);
      })),
    );
    return "drawn";
  }
  if (p.type !== "timeseries" && p.type !== "graph") {
    body.append(h("p", { class: "muted" }, `(a ${p.type} panel: drawn as a time series)`));
  }
  const chart = h("div", { class: "chart" });
  body.append(chart);
  // The panel's height in grid rows, less its title and legend.
  const rows = (p.gridPos && p.gridPos.h) || 8;
  timeSeriesChart(chart, series, { unit, height: Math.max(rows * 36 - 100, 80), range: ctx.range });
  return "drawn";
}

function empty(body) {
  body.append(h("p", { class: "empty" }, "No data"));
  return "empty";
}
