// Completion for the PromQL and LogQL boxes: metric names and functions
// at a bare word, label names inside `{...}`, label values inside quotes
// after a matcher. Names come from the label APIs and are cached per page.

import { labelNames, labelValues } from "./api.js";
import { h } from "./dom.js";

const PROMQL_WORDS = [
  "sum", "avg", "min", "max", "count", "count_values", "topk", "bottomk", "quantile", "stddev", "stdvar", "group", "limitk", "limit_ratio",
  "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless",
  "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "count_over_time",
  "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_quantile",
  "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
  "max_over_time", "min_over_time", "minute", "month", "predict_linear", "present_over_time", "quantile_over_time",
  "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time",
  "sum_over_time", "time", "timestamp", "vector", "year",
];
const LOGQL_WORDS = [
  "rate", "count_over_time", "bytes_over_time", "bytes_rate", "sum_over_time", "avg_over_time", "max_over_time",
  "min_over_time", "quantile_over_time", "absent_over_time", "first_over_time", "last_over_time",
  "sum", "avg", "min", "max", "count", "topk", "bottomk", "by", "without",
  "json", "logfmt", "regexp", "pattern", "line_format", "label_format", "unwrap", "drop", "keep",
];

/**
 * Where `before` (the text left of the cursor) ends: inside a string
 * (`quote`, with the index of its opening), inside a selector's braces
 * (`brace`, the index of the open `{`), or neither.
 */
function scan(before) {
  let quote = null;
  let quoteAt = -1;
  let brace = -1;
  for (let i = 0; i < before.length; i++) {
    const c = before[i];
    if (quote) {
      if (c === "\\" && quote !== "`") i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'" || c === "`") {
      quote = c;
      quoteAt = i;
    } else if (c === "{") brace = i;
    else if (c === "}") brace = -1;
  }
  return { quote, quoteAt, brace };
}

/** What to complete at the end of `before` (the text left of the cursor). */
export function context(before, loki) {
  const { quote, quoteAt, brace } = scan(before);
  if (brace >= 0) {
    const selectorMetric = (before.slice(0, brace).match(/([a-zA-Z_:][\w:]*)\s*$/) || [])[1];
    if (quote) {
      // A label value: the string follows `name op`.
      const m = before.slice(brace, quoteAt).match(/([a-zA-Z_][\w]*)\s*(=~|!~|!=|=)\s*$/);
      return m ? { kind: "value", label: m[1], prefix: before.slice(quoteAt + 1), metric: selectorMetric } : null;
    }
    const name = before.match(/[{,]\s*([a-zA-Z_][\w]*)?$/);
    if (name) return { kind: "label", prefix: name[1] || "", metric: selectorMetric };
    return null;
  }
  if (quote) return null;
  const word = before.match(/([a-zA-Z_:][\w:]*)$/);
  if (word) return { kind: loki ? "logql-word" : "word", prefix: word[1] };
  return null;
}

/** Attaches a completion list to `box` (a textarea) for PromQL or LogQL. */
export function attachCompletion(box, { loki = false } = {}) {
  const cache = new Map();
  const cached = (key, load) => {
    if (!cache.has(key)) cache.set(key, load().catch(() => []));
    return cache.get(key);
  };
  if (!box.parentNode) throw new Error("attachCompletion: put the box in the page first");
  const list = h("ul", { class: "completions", role: "listbox", hidden: true });
  box.after(list);
  let items = [];
  let active = 0;
  let ctx = null;
  let generation = 0;

  const close = () => {
    list.hidden = true;
    items = [];
  };
  const render = () => {
    list.replaceChildren(
      ...items.map((it, i) =>
        h("li", { role: "option", class: i === active ? "active" : "", "aria-selected": i === active, onmousedown: (e) => { e.preventDefault(); accept(i); } }, it),
      ),
    );
    list.hidden = items.length === 0;
  };
  const accept = (i) => {
    const item = items[i];
    if (item === undefined || !ctx) return;
    const pos = box.selectionStart;
    const before = box.value.slice(0, pos - ctx.prefix.length);
    let after = box.value.slice(pos);
    let insert = item;
    if (ctx.kind === "value") {
      insert = item.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
      if (!after.startsWith('"')) insert += '"';
    } else if (ctx.kind === "label") {
      insert += '="';
      after = after.replace(/^=?"?/, "");
    }
    box.value = before + insert + after;
    const at = before.length + insert.length;
    box.setSelectionRange(at, at);
    close();
    box.dispatchEvent(new Event("input"));
  };
  const suggest = async () => {
    const g = ++generation;
    const pos = box.selectionStart;
    ctx = context(box.value.slice(0, pos), loki);
    if (!ctx) return close();
    let candidates = [];
    if (ctx.kind === "value") {
      const match = ctx.metric && !loki ? ctx.metric : undefined;
      candidates = await cached(`v:${ctx.label}:${match || ""}`, () => labelValues(ctx.label, { loki, match }));
    } else if (ctx.kind === "label") {
      const match = ctx.metric && !loki ? ctx.metric : undefined;
      candidates = (await cached(`l:${match || ""}`, () => labelNames({ loki, match }))).filter((n) => n !== "__name__");
    } else if (ctx.kind === "word") {
      if (ctx.prefix.length < 1) return close();
      const metrics = await cached("metrics", () => labelValues("__name__"));
      candidates = [...PROMQL_WORDS, ...metrics];
    } else if (ctx.kind === "logql-word") {
      candidates = LOGQL_WORDS;
    }
    if (g !== generation) return;
    const p = ctx.prefix.toLowerCase();
    const starts = candidates.filter((c) => c.toLowerCase().startsWith(p));
    const contains = candidates.filter((c) => !c.toLowerCase().startsWith(p) && c.toLowerCase().includes(p));
    items = [...new Set([...starts, ...contains])].filter((c) => c !== ctx.prefix).slice(0, 50);
    active = 0;
    render();
  };

  box.addEventListener("input", () => {
    suggest();
  });
  box.addEventListener("blur", () => setTimeout(close, 100));
  box.addEventListener("keydown", (e) => {
    if (list.hidden) {
      if (e.key === " " && e.ctrlKey) {
        e.preventDefault();
        suggest();
      }
      return;
    }
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      render();
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      e.stopImmediatePropagation();
      accept(active);
    } else if (e.key === "Escape") {
      close();
    }
  });
  return { close };
}
