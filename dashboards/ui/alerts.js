// Alerts: what the rules have firing and pending, and the built-in
// Alertmanager's silences (create, expire).

import { call } from "./api.js";
import { ago, errorBox, fmtTime, fmtValue, h, seriesName, table } from "./dom.js";
import { parseDuration } from "./time.js";

/** `name="v", other=~"x.*"` as Alertmanager matchers; throws naming a bad one. */
export function parseMatchers(text) {
  const body = text.trim().replace(/^\{/, "").replace(/\}$/, "").trim();
  if (!body) throw new Error("a silence needs at least one matcher, e.g. alertname=\"NodeDown\"");
  const re = /\s*([a-zA-Z_][\w]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  const out = [];
  let at = 0;
  while (at < body.length) {
    re.lastIndex = at;
    const m = re.exec(body);
    if (!m) throw new Error(`cannot read the matcher at "${body.slice(at)}": write name="value" (or !=, =~, !~)`);
    out.push({
      name: m[1],
      value: m[3].replace(/\\(.)/g, "$1"),
      isRegex: m[2].includes("~"),
      isEqual: !m[2].startsWith("!"),
    });
    at = re.lastIndex;
  }
  return out;
}

/** Matchers back as text. */
function matchersText(ms) {
  const op = (m) => (m.isRegex ? (m.isEqual === false ? "!~" : "=~") : m.isEqual === false ? "!=" : "=");
  return ms.map((m) => `${m.name}${op(m)}"${m.value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`).join(", ");
}

/** A label set as a comparable key. */
function labelKey(labels) {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Keys of the alerts the built-in Alertmanager holds silenced (none when it is off). */
async function silencedAlerts() {
  try {
    const list = await call("/api/v2/alerts", { params: { silenced: "true", inhibited: "true", active: "false", unprocessed: "false" } });
    return new Set(list.filter((a) => a.status && a.status.silencedBy && a.status.silencedBy.length).map((a) => labelKey(a.labels)));
  } catch {
    return new Set();
  }
}

export function render(main) {
  const alertsEl = h("section", { class: "alerts", "data-state": "loading" });
  const silencesEl = h("section", { class: "silences", "data-state": "loading" });
  const formMsg = h("div", { class: "form-msg", role: "status" });
  const matchers = h("input", { name: "matchers", size: 50, placeholder: 'alertname="NodeDown", site="dc2"', "aria-label": "matchers" });
  const duration = h("input", { name: "duration", size: 6, value: "2h", "aria-label": "duration" });
  const createdBy = h("input", { name: "createdBy", size: 14, value: localStorage.getItem("sightline.user") || "", placeholder: "your name", "aria-label": "created by" });
  const comment = h("input", { name: "comment", size: 40, placeholder: "why (e.g. planned maintenance)", "aria-label": "comment" });
  const form = h(
    "form",
    { class: "silence-form", onsubmit: (e) => { e.preventDefault(); create(); } },
    h("label", {}, "Matchers ", matchers),
    h("label", {}, "For ", duration),
    h("label", {}, "By ", createdBy),
    h("label", {}, "Comment ", comment),
    h("button", { type: "submit" }, "Create silence"),
    formMsg,
  );
  main.append(h("h1", {}, "Alerts"), alertsEl, h("h2", {}, "Silences"), form, silencesEl);

  async function create() {
    formMsg.replaceChildren();
    try {
      const ms = parseMatchers(matchers.value);
      const d = parseDuration(duration.value.trim());
      if (!d) throw new Error(`duration "${duration.value}" is not a duration such as 30m or 2h`);
      if (!createdBy.value.trim()) throw new Error("say who creates the silence");
      if (!comment.value.trim()) throw new Error("say why (the comment)");
      localStorage.setItem("sightline.user", createdBy.value.trim());
      const now = new Date();
      const r = await call("/api/v2/silences", {
        method: "POST",
        json: {
          matchers: ms,
          startsAt: now.toISOString(),
          endsAt: new Date(now.getTime() + d).toISOString(),
          createdBy: createdBy.value.trim(),
          comment: comment.value.trim(),
        },
      });
      formMsg.append(`silence ${r.silenceID} created`);
      matchers.value = "";
      comment.value = "";
      refresh();
    } catch (e) {
      formMsg.append(errorBox("cannot create the silence", e));
    }
  }

  async function expire(id) {
    try {
      await call(`/api/v2/silence/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (e) {
      silencesEl.prepend(errorBox(`cannot expire ${id}`, e));
    }
    refresh();
  }

  async function refresh() {
    try {
      const r = await call("/api/v1/alerts");
      const silenced = await silencedAlerts();
      const alerts = (r.data.alerts || []).sort((a, b) => (a.state === b.state ? 0 : a.state === "firing" ? -1 : 1));
      const firing = alerts.filter((a) => a.state === "firing").length;
      alertsEl.replaceChildren(
        h("p", { class: "meta" }, `${firing} firing, ${alerts.length - firing} pending`),
        alerts.length
          ? table(
              ["state", "alert", "labels", "active since", "value", ""],
              alerts.map((a) => [
                h("span", {}, h("span", { class: `state state-${a.state}` }, a.state), silenced.has(labelKey(a.labels)) ? h("span", { class: "state state-silenced" }, "silenced") : null),
                a.labels.alertname || "",
                seriesName(Object.fromEntries(Object.entries(a.labels).filter(([k]) => k !== "alertname"))),
                a.activeAt ? `${fmtTime(Date.parse(a.activeAt))} (${ago(Date.parse(a.activeAt))})` : "",
                a.value === undefined ? "" : fmtValue(parseFloat(a.value)),
                h("button", { type: "button", class: "silence-this", onclick: () => { matchers.value = matchersText(Object.entries(a.labels).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }))); comment.focus(); } }, "Silence…"),
              ]),
              { class: "data alert-table" },
            )
          : h("p", { class: "empty" }, "Nothing firing or pending."),
      );
      alertsEl.dataset.state = "drawn";
    } catch (e) {
      alertsEl.replaceChildren(errorBox("cannot read alerts", e));
      alertsEl.dataset.state = "error";
    }
    try {
      const list = await call("/api/v2/silences");
      const order = { active: 0, pending: 1, expired: 2 };
      list.sort((a, b) => order[a.status.state] - order[b.status.state] || (a.endsAt < b.endsAt ? 1 : -1));
      silencesEl.replaceChildren(
        list.length
          ? table(
              ["state", "matchers", "ends", "by", "comment", ""],
              list.map((s) => [
                h("span", { class: `state state-${s.status.state}` }, s.status.state),
                matchersText(s.matchers),
                fmtTime(Date.parse(s.endsAt)),
                s.createdBy,
                s.comment,
                s.status.state === "expired" ? "" : h("button", { type: "button", class: "expire", "data-id": s.id, onclick: () => expire(s.id) }, "Expire"),
              ]),
              { class: "data silence-table" },
            )
          : h("p", { class: "empty" }, "No silences."),
      );
      silencesEl.dataset.state = "drawn";
    } catch (e) {
      const off = e.status === 404;
      silencesEl.replaceChildren(
        off
          ? h("p", { class: "muted" }, "The built-in Alertmanager is off: set alertmanager_config in the configuration file to hold silences here.")
          : errorBox("cannot read silences", e),
      );
      form.hidden = off;
      silencesEl.dataset.state = off ? "off" : "error";
    }
  }
  refresh();
  const timer = setInterval(() => !document.hidden && refresh(), 15000);
  return { stop: () => clearInterval(timer) };
}
