// Small DOM and formatting helpers shared by the pages.

/**
 * Creates an element: `h("div", {class: "x", onclick: f}, child, "text")`.
 * Attributes starting with "on" become listeners; `null` children vanish.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An error box naming what failed. */
export function errorBox(what, err) {
  return h("div", { class: "error", role: "alert" }, `${what}: ${err.message || err}`);
}

/** `{a="b", c="d"}` of a label set, `__name__` first as a metric name. */
export function seriesName(metric) {
  const name = metric.__name__ || "";
  const rest = Object.entries(metric)
    .filter(([k]) => k !== "__name__")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}="${v}"`);
  return rest.length ? `${name}{${rest.join(", ")}}` : name || "{}";
}

/** Grafana's legend format: `{{label}}` replaced by the label's value. */
export function legend(format, metric) {
  if (!format || format === "__auto") return seriesName(metric);
  return format.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, l) => metric[l] ?? "");
}

/** A number for people: 3 significant digits, SI suffixes for bytes. */
export function fmtValue(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  if (unit === "bytes" || unit === "decbytes") {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    let x = Math.abs(v);
    while (x >= 1024 && i < units.length - 1) {
      x /= 1024;
      i++;
    }
    return `${v < 0 ? "-" : ""}${x.toPrecision(3)} ${units[i]}`;
  }
  if (unit === "percentunit") return `${(v * 100).toPrecision(3)} %`;
  if (unit === "percent") return `${v.toPrecision(3)} %`;
  if (unit === "s") return v < 1 ? `${(v * 1000).toPrecision(3)} ms` : `${v.toPrecision(3)} s`;
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)} G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)} M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)} k`;
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

/** A time as local `YYYY-MM-DD HH:MM:SS`. */
export function fmtTime(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** How long ago `ms` was, in words ("3m ago"). */
export function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/** A table of `rows` (arrays of cells) under `head`. */
export function table(head, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
  );
}
