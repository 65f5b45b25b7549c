// Fleet: sites → clusters → nodes, each node reporting (up = 1), down
// (up = 0) or silent (seen in the last hour, no sample now), and the
// peer sites this node reaches.

import { promInstant } from "./api.js";
import { errorBox, h, table } from "./dom.js";

/** Groups nodes by site and cluster; statuses from `up` now and in the last hour. */
export function fleetTree(now, lastHour) {
  const current = new Map(now.map((s) => [key(s.metric), parseFloat(s.value[1])]));
  const sites = new Map();
  for (const s of lastHour) {
    const m = s.metric;
    const v = current.get(key(m));
    const status = v === undefined ? "silent" : v >= 1 ? "reporting" : "down";
    const site = m.site || "(no site)";
    const cluster = m.cluster || "(no cluster)";
    if (!sites.has(site)) sites.set(site, new Map());
    const clusters = sites.get(site);
    if (!clusters.has(cluster)) clusters.set(cluster, []);
    clusters.get(cluster).push({ instance: m.instance || "", job: m.job || "", status });
  }
  return sites;
}

function key(m) {
  return JSON.stringify(Object.entries(m).filter(([k]) => k !== "__name__").sort());
}

function counts(nodes) {
  const c = { reporting: 0, down: 0, silent: 0 };
  for (const n of nodes) c[n.status]++;
  return c;
}

function summary(c) {
  return h(
    "span",
    { class: "counts" },
    h("span", { class: "state state-reporting" }, `${c.reporting} reporting`),
    c.down ? h("span", { class: "state state-down" }, `${c.down} down`) : null,
    c.silent ? h("span", { class: "state state-silent" }, `${c.silent} silent`) : null,
  );
}

export function render(main) {
  const tree = h("section", { class: "fleet", "data-state": "loading" });
  const peers = h("section", { class: "peers" });
  main.append(h("h1", {}, "Fleet"), h("p", { class: "muted" }, "Targets by site and cluster, from up{site, cluster, instance}: reporting now, down (up = 0), or silent (seen in the last hour, nothing now)."), tree, h("h2", {}, "Peer sites"), peers);

  async function refresh() {
    const t = Date.now();
    try {
      const [now, hour] = await Promise.all([promInstant("up", t), promInstant("last_over_time(up[1h])", t)]);
      const sites = fleetTree(now.result, hour.result);
      if (!sites.size) {
        tree.replaceChildren(h("p", { class: "empty" }, "No target has reported an up sample in the last hour."));
        tree.dataset.state = "empty";
      } else {
        tree.replaceChildren(
          ...[...sites.entries()].sort().map(([site, clusters]) => {
            const all = [...clusters.values()].flat();
            return h(
              "details",
              { class: "site", open: true, "data-site": site },
              h("summary", {}, h("strong", {}, site), " ", summary(counts(all))),
              [...clusters.entries()].sort().map(([cluster, nodes]) =>
                h(
                  "details",
                  { class: "cluster", open: counts(nodes).down + counts(nodes).silent > 0, "data-cluster": cluster },
                  h("summary", {}, cluster, " ", summary(counts(nodes))),
                  h("ul", { class: "nodes" }, nodes.sort((a, b) => (a.instance < b.instance ? -1 : 1)).map((n) =>
                    h("li", { class: `node state-${n.status}`, "data-instance": n.instance }, `${n.instance} `, h("span", { class: "muted" }, `${n.job} · ${n.status}`)),
                  )),
                ),
              ),
            );
          }),
        );
        tree.dataset.state = "drawn";
      }
    } catch (e) {
      tree.replaceChildren(errorBox("cannot read up", e));
      tree.dataset.state = "error";
    }
    try {
      const r = await promInstant("sightline_peer_up", t);
      peers.replaceChildren(
        r.result.length
          ? table(["site", "peer", "reachable"], r.result.map((s) => [s.metric.site || "", s.metric.peer || "", s.value[1] === "1" ? "yes" : "no"]), { class: "data" })
          : h("p", { class: "muted" }, "This node has no peer sites configured (site.peers)."),
      );
    } catch (e) {
      peers.replaceChildren(errorBox("cannot read sightline_peer_up", e));
    }
  }
  refresh();
  const timer = setInterval(() => !document.hidden && refresh(), 15000);
  return { stop: () => clearInterval(timer) };
}
