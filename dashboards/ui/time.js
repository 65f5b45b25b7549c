// Time ranges as Grafana writes them (`now-6h` to `now`, or absolute
// times), the picker that edits them, and the step a range is drawn at.

const UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000, y: 31536000000 };

/** Milliseconds of a Prometheus duration such as `1h30m`, or null. */
export function parseDuration(text) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/g;
  let total = 0;
  let used = 0;
  for (const m of text.matchAll(re)) {
    total += parseFloat(m[1]) * UNITS[m[2]];
    used += m[0].length;
  }
  return used === text.length && used > 0 ? total : null;
}

/**
 * Milliseconds of a time: `now`, `now-1h`, Unix seconds or milliseconds,
 * or a date the browser parses (RFC 3339, `2026-11-26 10:00`). Throws
 * naming the text when it is none of these.
 */
export function parseTime(text, now = Date.now()) {
  const t = String(text).trim();
  if (t === "now") return now;
  const rel = t.match(/^now([+-])(.+)$/);
  if (rel) {
    const d = parseDuration(rel[2]);
    if (d !== null) return rel[1] === "-" ? now - d : now + d;
  }
  if (/^\d+(\.\d+)?$/.test(t)) {
    const n = parseFloat(t);
    return n > 1e11 ? n : n * 1000;
  }
  const d = Date.parse(t.includes("T") || t.includes("Z") ? t : t.replace(" ", "T"));
  if (!Number.isNaN(d)) return d;
  throw new Error(`"${t}" is not a time (use now, now-1h, Unix seconds or 2026-11-26 10:00)`);
}

/** A range `{from, to}` (texts) resolved to milliseconds. */
export function resolveRange(range, now = Date.now()) {
  const start = parseTime(range.from, now);
  const end = parseTime(range.to, now);
  if (!(start < end)) throw new Error(`the range starts (${range.from}) at or after it ends (${range.to})`);
  return { start, end };
}

/** A step (seconds) giving about `points` points over the range, at least 1 s, rounded to a nice value. */
export function stepFor(startMs, endMs, points = 250) {
  const raw = (endMs - startMs) / 1000 / points;
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
  return nice.find((n) => n >= raw) || Math.ceil(raw / 86400) * 86400;
}

const PRESETS = ["5m", "15m", "30m", "1h", "3h", "6h", "12h", "24h", "2d", "7d", "30d"];

/**
 * The time range picker: presets and free `from`/`to` boxes. Calls
 * `onChange({from, to})` when the user picks or applies a range.
 */
export function timePicker(range, onChange, h) {
  const from = h("input", { class: "time-from", value: range.from, size: 16, "aria-label": "from" });
  const to = h("input", { class: "time-to", value: range.to, size: 16, "aria-label": "to" });
  const preset = h(
    "select",
    {
      class: "time-preset",
      "aria-label": "time range",
      onchange: () => {
        if (!preset.value) return;
        from.value = `now-${preset.value}`;
        to.value = "now";
        onChange({ from: from.value, to: to.value });
      },
    },
    h("option", { value: "" }, "Range…"),
    PRESETS.map((p) => h("option", { value: p, selected: range.to === "now" && range.from === `now-${p}` }, `Last ${p}`)),
  );
  const apply = () => onChange({ from: from.value.trim(), to: to.value.trim() });
  for (const box of [from, to]) box.addEventListener("keydown", (e) => e.key === "Enter" && apply());
  return h("span", { class: "time-picker" }, preset, from, " to ", to, h("button", { onclick: apply, type: "button" }, "Apply"));
}
