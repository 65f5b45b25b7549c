// Drives Sightline's built-in UI in Debian's headless Chromium, the way a
// person would: explore a query (graph, table, completion, log lines, a
// shared link), open every dashboard and wait for every panel to draw,
// look at the fleet and status pages, create and expire a silence, and
// compare efficiency. A screenshot of each page goes to SCREENSHOT_DIR.
//
// Started by tests/ui.rs with SIGHTLINE_URL pointing at a running binary
// that holds the sample data of tests/common/sample_data.rs. Prints one
// line per check and exits 1 when any failed.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.SIGHTLINE_URL;
const shots = process.env.SCREENSHOT_DIR || "ui-screenshots";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base) {
  console.error("SIGHTLINE_URL is not set (tests/ui.rs sets it)");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const failures = [];
const pageErrors = [];

/** Runs one named check; a thrown error is a failure, the rest go on. */
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message.split("\n")[0]}`);
    failures.push(`${name}: ${e.message}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.setDefaultTimeout(20000);
page.on("pageerror", (e) => pageErrors.push(`${page.url()}: ${e.message}`));
// Failed requests are logged by the browser itself (the bad query's 400
// is one); what they mean is checked on the page. Any other error is the
// UI's own.
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(`${page.url()}: console: ${m.text()}`);
});

/** Saves the page's picture, after checking it shows no leaked "null", "undefined" or "NaN". */
const shot = async (name) => {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const junk = await page.evaluate(() => (document.querySelector("main").innerText.match(/\b(null|undefined|NaN|\[object Object\])\b/) || [])[0]);
  assert(!junk, `the page shows "${junk}" (see ${name}.png)`);
};
const go = async (hash) => {
  await page.goto(`${base}/${hash}`);
};

await check("explore: a PromQL query draws a graph, and its address is a shareable link", async () => {
  await go("#/explore?q=up&from=now-30m&to=now");
  await page.waitForSelector(".result[data-state=drawn] canvas");
  const meta = await page.textContent(".result .meta");
  // 12 nodes reporting, one silent for ten minutes (still in the range).
  assert(/^13 series/.test(meta), `expected 13 series of up, got "${meta}"`);
  await shot("explore-graph");
  // The same link in a fresh tab shows the same query.
  const shared = page.url();
  const other = await browser.newPage();
  await other.goto(shared);
  await other.waitForSelector(".result[data-state=drawn] canvas");
  assert((await other.inputValue("textarea.query")) === "up", "the shared link lost the query");
  await other.close();
});

await check("explore: the table view lists instant values", async () => {
  await page.click("button.view-table");
  await page.waitForSelector(".result[data-state=drawn] table.data");
  const rows = await page.locator(".result table.data tbody tr").count();
  assert(rows === 12, `expected 12 rows (the silent node has no value now), got ${rows}`);
  assert(page.url().includes("view=table"), `the address does not keep the view: ${page.url()}`);
  await shot("explore-table");
});

await check("explore: completion offers metric names, label names and label values", async () => {
  await go("#/explore?from=now-30m&to=now");
  const box = page.locator("textarea.query");
  await box.click();
  await box.pressSequentially("node_loa");
  await page.waitForSelector("ul.completions li:text-is('node_load1')");
  await shot("explore-completion");
  await page.click("ul.completions li:text-is('node_load1')");
  await box.pressSequentially("{inst");
  await page.waitForSelector("ul.completions li:text-is('instance')");
  await page.keyboard.press("Enter");
  await page.waitForSelector("ul.completions li:text-is('dc1-c1-n1:9100')");
  await page.click("ul.completions li:text-is('dc1-c1-n1:9100')");
  await box.pressSequentially("}");
  const q = await box.inputValue();
  assert(q === 'node_load1{instance="dc1-c1-n1:9100"}', `completion built ${JSON.stringify(q)}`);
  await page.keyboard.press("Enter");
  await page.waitForSelector(".result[data-state=drawn] canvas");
});

await check("explore: a LogQL query shows log lines", async () => {
  await go(`#/explore?lang=logql&q=${encodeURIComponent('{job="mail"} |= "error"')}&from=now-1h&to=now`);
  await page.waitForSelector(".result[data-state=drawn] .log-line");
  const lines = await page.locator(".log-line .log-text").allTextContents();
  assert(lines.length === 60, `expected 60 error lines, got ${lines.length}`);
  assert(lines.every((l) => l.includes("error")), "a line without 'error' passed the filter");
  await shot("explore-logs");
});

await check("explore: a bad query says what is wrong", async () => {
  await go(`#/explore?q=${encodeURIComponent("sum(rate(up[5m])")}`);
  await page.waitForSelector(".result[data-state=error] .error");
  const text = await page.textContent(".result .error");
  assert(/parse|unclosed|expected/i.test(text), `the error does not explain: ${text}`);
});

let dashboards = [];
await check("dashboards: the list names every shipped dashboard", async () => {
  await go("#/dashboards");
  await page.waitForSelector("ul.dashboard-list li a");
  dashboards = await page.$$eval("ul.dashboard-list li a", (as) => as.map((a) => ({ href: a.getAttribute("href"), title: a.textContent })));
  assert(dashboards.length === 6, `expected 6 dashboards, got ${dashboards.length}`);
  await shot("dashboards");
});

for (const d of dashboards) {
  await check(`dashboard "${d.title}": every panel draws data`, async () => {
    await go(d.href);
    await page.waitForSelector(".grid .panel");
    await page.waitForFunction(() => document.querySelectorAll(".panel[data-state=loading]").length === 0, null, { timeout: 30000 });
    const panels = await page.$$eval(".panel", (ps) =>
      ps.map((p) => ({
        title: p.dataset.title,
        state: p.dataset.state,
        type: [...p.classList].find((c) => c.startsWith("panel-")),
        canvas: !!p.querySelector("canvas"),
        text: p.querySelector(".panel-body").textContent.slice(0, 200),
      })),
    );
    const bad = panels.filter((p) => p.state !== "drawn" || (p.type === "panel-timeseries" && !p.canvas));
    await shot(`dashboard-${d.href.split("/").pop()}`);
    assert(panels.length > 0, "no panels");
    assert(!bad.length, bad.map((p) => `${p.title}: ${p.state} ${p.text}`).join("; "));
  });
}

await check("dashboards: a template variable is a select that redraws the panels", async () => {
  await go("#/dashboards/sightline-site");
  await page.waitForSelector("select.variable[data-name=site]");
  await page.waitForFunction(() => document.querySelectorAll(".panel[data-state=loading]").length === 0);
  const options = await page.$$eval("select.variable[data-name=site] option", (os) => os.map((o) => o.value));
  assert(options.join(",") === "dc1,dc2", `site options ${options}`);
  await page.selectOption("select.variable[data-name=site]", "dc2");
  await page.waitForFunction(() => location.hash.includes("var-site=dc2"));
  await page.waitForFunction(() => document.querySelectorAll(".panel[data-state=loading]").length === 0);
  const down = await page.textContent('.panel[data-title="Nodes down in dc2"] .stat-value');
  assert(down.trim() === "1", `dc2 has one node down, the stat says ${down}`);
});

await check("fleet: sites, clusters and nodes, with the one down node", async () => {
  await go("#/fleet");
  await page.waitForSelector(".fleet[data-state=drawn]");
  const sites = await page.$$eval("details.site", (ds) => ds.map((d) => d.dataset.site));
  assert(sites.includes("dc1") && sites.includes("dc2"), `sites ${sites}`);
  const cls = await page.getAttribute('li.node[data-instance="dc2-c2-n3:9100"]', "class");
  assert(cls.includes("state-down"), `dc2-c2-n3 is ${cls}`);
  const silent = await page.getAttribute('li.node[data-instance="dc1-c2-n4:9100"]', "class");
  assert(silent.includes("state-silent"), `dc1-c2-n4 is ${silent}`);
  const reporting = await page.locator("li.node.state-reporting").count();
  assert(reporting === 11, `${reporting} nodes reporting, 11 are`);
  await shot("fleet");
});

await check("status: ingest rates, storage size, cardinality and rule health", async () => {
  await go("#/status");
  await page.waitForSelector(".cardinality[data-state=drawn] table");
  const card = await page.textContent(".cardinality");
  assert(card.includes("node_cpu_seconds_total") || card.includes("up"), "top metrics missing");
  // Lines pushed between the page's two readings of /metrics show as a rate.
  await page.waitForSelector(".storage[data-state=drawn]");
  const now = BigInt(Date.now()) * 1000000n;
  const values = Array.from({ length: 200 }, (_, i) => [String(now + BigInt(i)), `status page line ${i}`]);
  const pushed = await page.request.post(`${base}/loki/api/v1/push`, { data: { streams: [{ stream: { job: "ui-status" }, values }] } });
  assert(pushed.ok(), `push: ${pushed.status()}`);
  await page.waitForSelector(".ingest[data-state=drawn]", { timeout: 10000 });
  const rate = await page.textContent(".ingest tr:has-text('log lines stored') td:nth-child(2)");
  assert(parseFloat(rate) > 0, `200 lines pushed, the log line rate says ${rate}`);
  await page.waitForSelector(".rule-health[data-state=drawn]");
  const rules = await page.textContent(".rule-health");
  assert(rules.includes("ui-test"), `rule group missing: ${rules}`);
  await shot("status");
});

await check("alerts: a firing alert is listed; a silence is created and expired", async () => {
  await go("#/alerts");
  // The rule fires after its first evaluations; the page polls.
  for (let i = 0; i < 30; i++) {
    await page.waitForSelector(".alerts[data-state=drawn]");
    if (await page.locator(".alert-table td:text-is('NodeDown')").count()) break;
    await page.waitForTimeout(1000);
    await page.reload();
  }
  const firing = await page.locator(".alert-table .state-firing").count();
  assert(firing === 1, `expected 1 firing NodeDown alert, found ${firing}`);
  await page.fill("input[name=matchers]", 'alertname="NodeDown", site="dc2"');
  await page.fill("input[name=duration]", "1h");
  await page.fill("input[name=createdBy]", "browser-test");
  await page.fill("input[name=comment]", "maintenance of dc2-c2");
  await page.click(".silence-form button[type=submit]");
  await page.waitForSelector(".form-msg:has-text('created')");
  await page.waitForSelector(".silence-table .state-active");
  const row = await page.textContent(".silence-table tbody tr");
  assert(row.includes('alertname="NodeDown"') && row.includes("maintenance of dc2-c2"), `silence row: ${row}`);
  // The Alertmanager holds the alert silenced now.
  const badge = async (want) => {
    for (let i = 0; i < 20; i++) {
      await page.waitForSelector(".alerts[data-state=drawn]");
      if ((await page.locator(".alert-table .state-silenced").count()) === want) return;
      await page.waitForTimeout(500);
      await page.reload();
    }
    throw new Error(`the alert is ${want ? "not" : "still"} shown as silenced`);
  };
  await badge(1);
  await shot("alerts-silenced");
  await page.waitForSelector(".silence-table button.expire");
  await page.click(".silence-table button.expire");
  await page.waitForSelector(".silence-table .state-expired");
  assert((await page.locator(".silence-table .state-active").count()) === 0, "the silence is still active");
  await badge(0);
  await shot("alerts-expired");
  // A bad matcher is refused with a reason, and nothing is created.
  await page.fill("input[name=matchers]", "alertname NodeDown");
  await page.fill("input[name=comment]", "x");
  await page.click(".silence-form button[type=submit]");
  await page.waitForSelector(".form-msg .error");
  assert((await page.textContent(".form-msg")).includes("cannot read the matcher"), "no reason given");
  assert((await page.locator(".silence-table tbody tr").count()) === 1, "a bad silence was created");
});

await check("efficiency: the sample's gain is found and charted", async () => {
  await go("#/efficiency");
  await page.click(".efficiency-form button[type=submit]");
  await page.waitForSelector(".report[data-state=drawn] .efficiency-chart canvas", { timeout: 30000 });
  const verdict = await page.textContent(".verdict");
  assert(/^k8s does \d+(\.\d)? % more work per CPU-second than vm/.test(verdict), `verdict: ${verdict}`);
  assert(page.url().includes("candidate.matchers="), "the report's address does not hold its configuration");
  await shot("efficiency");
});

await browser.close();
if (pageErrors.length) failures.push(`script errors in the page:\n  ${pageErrors.join("\n  ")}`);
console.log(`${failures.length ? "FAILED" : "passed"}: screenshots in ${shots}`);
if (failures.length) {
  console.log(failures.join("\n"));
  process.exit(1);
}
