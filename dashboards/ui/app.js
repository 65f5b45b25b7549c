// The UI's entry: a page per `#/<page>` address, its state in the rest
// of the address so that every view can be shared as a link.

import * as explore from "./explore.js";
import * as dashboards from "./dashboards.js";
import * as alerts from "./alerts.js";
import * as fleet from "./fleet.js";
import * as status from "./status.js";
import * as efficiency from "./efficiency.js";

const PAGES = { explore, dashboards, alerts, fleet, status, efficiency };

/** The address's page, its path below the page, and its parameters. */
export function parseHash(hash = location.hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/");
  return { page: page || "explore", rest: rest.map(decodeURIComponent), params: new URLSearchParams(query) };
}

let current = null;

function render() {
  const { page, rest, params } = parseHash();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.page === page);
  if (current && current.stop) current.stop();
  const main = document.getElementById("main");
  main.replaceChildren();
  const mod = PAGES[page] || explore;
  document.title = `Sightline – ${page}`;
  current = mod.render(main, params, rest) || null;
}

window.addEventListener("hashchange", render);
render();
