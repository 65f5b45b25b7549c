// The page's address as state: read and rewrite `#/page?...` without
// reloading, so a view is a link others can open.

/** Replaces the address's parameters (keeps the page and path). */
export function setParams(params) {
  const [path] = location.hash.split("?");
  const q = new URLSearchParams(params).toString();
  history.replaceState(null, "", `${path}${q ? "?" + q : ""}`);
}
