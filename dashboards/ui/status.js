// Status: ingest rates (from Sightline's own /metrics, read twice),
// storage size, cardinality (top metrics and labels) and the health of
// rule evaluation.

import { call } from "./api.js";
import { ago, errorBox, fmtValue, h, table } from "./dom.js";

/** Sums of each metric name in Prometheus' text format. */
export function sumByName(text) {
  const sums = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)/);
    if (!m) continue;
    const v = parseFloat(m[3]);
    if (Number.isFinite(v)) sums.set(m[1], (sums.get(m[1]) || 0) + v);
  }
  return sums;
}

const RATES = [
  ["samples accepted", "sightline_ingest_samples_accepted_total"],
  ["samples rejected", "sightline_ingest_samples_rejected_total"],
  ["write requests", "sightline_ingest_requests_total"],
  ["log lines stored", "sightline_logs_entries_stored_total"],
  ["log bytes stored", "sightline_logs_bytes_stored_total"],
  ["notifications sent", "sightline_notifications_sent_total"],
];
const SIZES = [
  ["metric blocks", "sightline_storage_block_bytes"],
  ["metric WAL", "sightline_storage_wal_bytes"],
  ["log blocks", "sightline_logs_block_bytes"],
  ["log WAL", "sightline_logs_wal_bytes"],
  ["log head (memory)", "sightline_logs_head_bytes"],
];

async function readMetrics() {
  const r = await fetch("/metrics");
  if (!r.ok) throw new Error(`/metrics: ${r.status}`);
  return { at: performance.now(), sums: sumByName(await r.text()) };
}

export function render(main) {
  const build = h("p", { class: "meta" });
  const ingest = h("section", { class: "ingest", "data-state": "loading" });
  const storage = h("section", { class: "storage", "data-state": "loading" });
  const card = h("section", { class: "cardinality", "data-state": "loading" });
  const rules = h("section", { class: "rule-health", "data-state": "loading" });
  main.append(
    h("h1", {}, "Status"),
    build,
    h("div", { class: "columns" },
      h("div", {}, h("h2", {}, "Ingest"), ingest),
      h("div", {}, h("h2", {}, "Storage"), storage)),
    h("h2", {}, "Cardinality"),
    card,
    h("h2", {}, "Rule evaluation"),
    rules,
  );
  call("/api/v1/status/buildinfo")
    .then((r) => build.append(`${r.data.revision || "sightline"}, answering as Prometheus ${r.data.version}`))
    .catch((e) => build.append(errorBox("build info", e)));

  let previous = null;
  async function refreshMetrics() {
    try {
      const now = await readMetrics();
      if (previous) {
        const secs = (now.at - previous.at) / 1000;
        ingest.replaceChildren(
          table(["", "per second"], RATES.map(([what, name]) => [what, fmtValue(Math.max(0, ((now.sums.get(name) || 0) - (previous.sums.get(name) || 0)) / secs))]), { class: "data" }),
          h("p", { class: "muted" }, `over the last ${secs.toFixed(1)} s`),
        );
        ingest.dataset.state = "drawn";
      }
      const total = SIZES.reduce((t, [, n]) => t + (now.sums.get(n) || 0), 0);
      storage.replaceChildren(
        table(
          ["", "size"],
          [...SIZES.map(([what, n]) => [what, fmtValue(now.sums.get(n) || 0, "bytes")]), [h("strong", {}, "total"), h("strong", {}, fmtValue(total, "bytes"))],
            ["head series", fmtValue(now.sums.get("sightline_storage_head_series") || 0)],
            ["metric blocks (count)", fmtValue(now.sums.get("sightline_storage_blocks") || 0)],
            ["log blocks (count)", fmtValue(now.sums.get("sightline_logs_blocks") || 0)]],
          { class: "data" },
        ),
      );
      storage.dataset.state = "drawn";
      previous = now;
    } catch (e) {
      ingest.replaceChildren(errorBox("cannot read /metrics", e));
      ingest.dataset.state = "error";
    }
  }

  async function refreshCardinality() {
    try {
      const r = await call("/api/v1/status/tsdb", { params: { limit: "10" } });
      const d = r.data;
      const two = (title, list, what) =>
        h("div", {}, h("h3", {}, title), table([what, "count"], list.map((s) => [s.name, fmtValue(s.value)]), { class: "data" }));
      card.replaceChildren(
        h("p", { class: "meta" }, `${fmtValue(d.headStats.numSeries)} series, ${fmtValue(d.headStats.numLabelPairs)} label pairs`),
        h("div", { class: "columns" },
          two("Top metrics by series", d.seriesCountByMetricName, "metric"),
          two("Top labels by values", d.labelValueCountByLabelName, "label"),
          two("Top label pairs by series", d.seriesCountByLabelValuePair, "pair")),
      );
      card.dataset.state = "drawn";
    } catch (e) {
      card.replaceChildren(errorBox("cannot read cardinality", e));
      card.dataset.state = "error";
    }
  }

  async function refreshRules() {
    try {
      const r = await call("/api/v1/rules");
      const groups = r.data.groups || [];
      if (!groups.length) {
        rules.replaceChildren(h("p", { class: "empty" }, "No rule groups are loaded (rule_files in the configuration)."));
        rules.dataset.state = "drawn";
        return;
      }
      rules.replaceChildren(
        table(
          ["group", "file", "rules", "failing", "last evaluation", "took", "errors"],
          groups.map((g) => {
            const bad = g.rules.filter((x) => x.health === "err");
            return [
              g.name,
              g.file,
              String(g.rules.length),
              h("span", { class: bad.length ? "state state-down" : "state state-reporting" }, String(bad.length)),
              g.lastEvaluation && !g.lastEvaluation.startsWith("0001") ? ago(Date.parse(g.lastEvaluation)) : "never",
              fmtValue(g.evaluationTime || 0, "s"),
              bad.map((x) => `${x.name}: ${x.lastError}`).join("; "),
            ];
          }),
          { class: "data" },
        ),
      );
      rules.dataset.state = "drawn";
    } catch (e) {
      rules.replaceChildren(errorBox("cannot read rules", e));
      rules.dataset.state = "error";
    }
  }

  refreshMetrics();
  setTimeout(refreshMetrics, 2000);
  refreshCardinality();
  refreshRules();
  const timer = setInterval(() => {
    if (document.hidden) return;
    refreshMetrics();
    refreshRules();
  }, 5000);
  return { stop: () => clearInterval(timer) };
}
