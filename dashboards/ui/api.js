// Calls of Sightline's HTTP APIs (the ones Grafana and Alertmanager's
// clients use). Every failure becomes an Error whose message is the
// server's own explanation.

/** GET (or POST with a body) `path`; the parsed JSON, or an Error. */
export async function call(path, { params, method = "GET", body, json } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.append(k, v);
  }
  const init = { method, headers: {} };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let r;
  try {
    r = await fetch(url, init);
  } catch (e) {
    throw new Error(`${path}: cannot reach Sightline (${e.message})`);
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    if (!r.ok) throw new Error(`${path}: ${r.status} ${text.trim()}`);
    return text;
  }
  if (!r.ok || (data && data.status === "error")) {
    const why = (data && (data.error || data.message)) || text.trim() || r.statusText;
    const err = new Error(`${why}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

/** Seconds with milliseconds, as the Prometheus API takes times. */
const sec = (ms) => (ms / 1000).toFixed(3);

/** A PromQL range query: `{resultType, result, warnings}`. */
export async function promRange(query, startMs, endMs, stepS) {
  const r = await call("/api/v1/query_range", {
    params: { query, start: sec(startMs), end: sec(endMs), step: String(stepS) },
  });
  return { ...r.data, warnings: r.warnings || [] };
}

/** A PromQL instant query at `timeMs`. */
export async function promInstant(query, timeMs) {
  const r = await call("/api/v1/query", { params: { query, time: sec(timeMs) } });
  return { ...r.data, warnings: r.warnings || [] };
}

/** A LogQL range query (log lines or a metric matrix). */
export async function lokiRange(query, startMs, endMs, stepS, limit = 200) {
  const r = await call("/loki/api/v1/query_range", {
    params: {
      query,
      start: String(BigInt(Math.round(startMs)) * 1000000n),
      end: String(BigInt(Math.round(endMs)) * 1000000n),
      step: String(stepS),
      limit: String(limit),
      direction: "backward",
    },
  });
  return { ...r.data, warnings: r.warnings || [] };
}

/** An instant LogQL query (metric queries only). */
export async function lokiInstant(query, timeMs) {
  const r = await call("/loki/api/v1/query", {
    params: { query, time: String(BigInt(Math.round(timeMs)) * 1000000n), limit: "200" },
  });
  return { ...r.data, warnings: r.warnings || [] };
}

/** Values of one label, optionally of series matching `match`. */
export async function labelValues(label, { loki = false, match, startMs, endMs } = {}) {
  const params = {};
  if (loki) {
    if (match) params.query = match;
    if (startMs) params.start = String(BigInt(Math.round(startMs)) * 1000000n);
    if (endMs) params.end = String(BigInt(Math.round(endMs)) * 1000000n);
    const r = await call(`/loki/api/v1/label/${encodeURIComponent(label)}/values`, { params });
    return r.data || [];
  }
  if (match) params["match[]"] = match;
  if (startMs) params.start = sec(startMs);
  if (endMs) params.end = sec(endMs);
  const r = await call(`/api/v1/label/${encodeURIComponent(label)}/values`, { params });
  return r.data || [];
}

/** Label names, optionally of series matching `match`. */
export async function labelNames({ loki = false, match } = {}) {
  if (loki) {
    const r = await call("/loki/api/v1/labels", { params: match ? { query: match } : {} });
    return r.data || [];
  }
  const r = await call("/api/v1/labels", { params: match ? { "match[]": match } : {} });
  return r.data || [];
}
