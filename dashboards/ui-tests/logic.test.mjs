// Unit tests of the UI's logic that needs no browser: completion
// contexts, silence matchers, variable interpolation, times, the fleet
// tree, /metrics sums, legends and series alignment. Run by
// `cargo test -p sightline-dashboards` (tests/js.rs) with `node --test`.

import { test } from "node:test";
import assert from "node:assert/strict";

import { context } from "../ui/complete.js";
import { parseMatchers } from "../ui/alerts.js";
import { interpolate } from "../ui/dashboards.js";
import { parseDuration, parseTime, resolveRange, stepFor } from "../ui/time.js";
import { fleetTree } from "../ui/fleet.js";
import { sumByName } from "../ui/status.js";
import { legend, seriesName, fmtValue } from "../ui/dom.js";
import { align } from "../ui/chart.js";

test("completion knows where the cursor is", () => {
  assert.deepEqual(context("rate(node_cp", false), { kind: "word", prefix: "node_cp" });
  assert.deepEqual(context("node_load1{inst", false), { kind: "label", prefix: "inst", metric: "node_load1" });
  assert.deepEqual(context('up{job="node", ', false), { kind: "label", prefix: "", metric: "up" });
  assert.deepEqual(context('up{job=~"no', false), { kind: "value", label: "job", prefix: "no", metric: "up" });
  assert.deepEqual(context('{job="mail"} |= "err', true), null);
  assert.deepEqual(context('{job="ma', true), { kind: "value", label: "job", prefix: "ma", metric: undefined });
  assert.deepEqual(context("sum(rate(", false), null);
  assert.deepEqual(context("count_ov", true), { kind: "logql-word", prefix: "count_ov" });
  // Braces and quotes inside strings are text.
  assert.deepEqual(context('up{job="a{b', false), { kind: "value", label: "job", prefix: "a{b", metric: "up" });
  assert.deepEqual(context('up{job="a}\\"x", ins', false), { kind: "label", prefix: "ins", metric: "up" });
  assert.deepEqual(context('up{job="a"} + rate(no', false), { kind: "word", prefix: "no" });
});

test("silence matchers parse, and a bad one is named", () => {
  assert.deepEqual(parseMatchers('{alertname="NodeDown", site!="dc1", instance=~"a.*", x!~"b"}'), [
    { name: "alertname", value: "NodeDown", isRegex: false, isEqual: true },
    { name: "site", value: "dc1", isRegex: false, isEqual: false },
    { name: "instance", value: "a.*", isRegex: true, isEqual: true },
    { name: "x", value: "b", isRegex: true, isEqual: false },
  ]);
  assert.deepEqual(parseMatchers('msg="say \\"hi\\""')[0].value, 'say "hi"');
  assert.throws(() => parseMatchers("alertname NodeDown"), /cannot read the matcher at "alertname NodeDown"/);
  assert.throws(() => parseMatchers("  "), /at least one matcher/);
});

test("dashboard variables and Grafana's built-ins are interpolated", () => {
  const ctx = { stepS: 30, rangeS: 3600 };
  assert.equal(
    interpolate('rate(x{site="$site", i="${inst}", j="[[job]]"}[$__rate_interval]) / $__range_s', { site: "dc1", inst: "a:1", job: "n" }, ctx),
    'rate(x{site="dc1", i="a:1", j="n"}[60s]) / 3600',
  );
  assert.equal(interpolate("rate(x[$__rate_interval])", {}, { stepS: 120, rangeS: 1 }), "rate(x[135s])");
  assert.equal(interpolate('x{a=~"$v"}', { v: ["a.b", "c"] }, ctx), 'x{a=~"(a\\.b|c)"}');
  // Unknown variables are left as written (the query's error names them).
  assert.equal(interpolate("x{a=\"$nope\"}", {}, ctx), 'x{a="$nope"}');
  // A longer name is not cut at a shorter one's end.
  assert.equal(interpolate("$site_name", { site: "dc1" }, ctx), "$site_name");
});

test("times and durations read as Grafana writes them", () => {
  assert.equal(parseDuration("1h30m"), 5400000);
  assert.equal(parseDuration("90s"), 90000);
  assert.equal(parseDuration("1x"), null);
  const now = 1_700_000_000_000;
  assert.equal(parseTime("now", now), now);
  assert.equal(parseTime("now-6h", now), now - 6 * 3600000);
  assert.equal(parseTime("1700000000", now), 1_700_000_000_000);
  assert.equal(parseTime("2023-11-14T22:13:20Z", now), 1_700_000_000_000);
  assert.throws(() => parseTime("yesterday", now), /"yesterday" is not a time/);
  assert.throws(() => resolveRange({ from: "now", to: "now-1h" }, now), /starts \(now\) at or after it ends/);
  assert.equal(stepFor(0, 3600000), 15);
  assert.equal(stepFor(0, 6 * 3600000), 120);
});

test("the fleet tree marks nodes reporting, down and silent", () => {
  const s = (instance, cluster, site, v) => ({ metric: { __name__: "up", instance, cluster, site, job: "node" }, value: [0, v] });
  const lastHour = [s("a", "c1", "dc1", "1"), s("b", "c1", "dc1", "0"), s("c", "c2", "dc1", "1"), { metric: { instance: "d" }, value: [0, "1"] }];
  const now = [s("a", "c1", "dc1", "1"), s("b", "c1", "dc1", "0")];
  const tree = fleetTree(now, lastHour);
  const dc1 = tree.get("dc1");
  assert.deepEqual(dc1.get("c1").map((n) => n.status), ["reporting", "down"]);
  assert.deepEqual(dc1.get("c2").map((n) => n.status), ["silent"]);
  assert.deepEqual(tree.get("(no site)").get("(no cluster)").map((n) => n.instance), ["d"]);
});

test("/metrics text sums by metric name", () => {
  const text = '# HELP x_total x\n# TYPE x_total counter\nx_total{a="1"} 3\nx_total{a="2"} 4.5\ny 1e3\nbad line\nz NaN\n';
  const sums = sumByName(text);
  assert.equal(sums.get("x_total"), 7.5);
  assert.equal(sums.get("y"), 1000);
  assert.equal(sums.has("z"), false);
});

test("legends, series names, values and alignment", () => {
  assert.equal(legend("{{site}}/{{cluster}}", { site: "dc1", cluster: "c1" }), "dc1/c1");
  assert.equal(legend(undefined, { __name__: "up", job: "n", a: "b" }), 'up{a="b", job="n"}');
  assert.equal(seriesName({}), "{}");
  assert.equal(fmtValue(1536, "bytes"), "1.50 KiB");
  assert.equal(fmtValue(0.5, "percentunit"), "50.0 %");
  assert.equal(fmtValue(12345), "12.3 k");
  assert.equal(fmtValue(NaN), "–");
  assert.deepEqual(align([{ points: [[1, 10], [3, 30]] }, { points: [[2, 20], [3, 31]] }]), [[1, 2, 3], [10, null, 30], [null, 20, 31]]);
});
