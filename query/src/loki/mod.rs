//! The Loki HTTP API as Grafana's Loki data source uses it:
//! `query`, `query_range`, `labels`, `label/<name>/values`, `series`,
//! `index/stats`, `index/volume`, `format_query`, `status/buildinfo`, and
//! live `tail` over WebSocket.
//!
//! Tenants come from `X-Scope-OrgID` (Loki's single-tenant id `fake`
//! when absent). Errors are plain text with 400 (bad query or limit),
//! 504 (timeout) or 500, as Loki answers them.

mod params;
mod tail;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sightline_storage::logs::{DEFAULT_TENANT, LogReader, LogSelect};
use sightline_storage::{MatchOp, Matcher};

use crate::fanout::SiteScope;
use crate::logql::{self, Context, Direction, EvalError, Expr, LogqlLimits, Steps};
use crate::params::Params;
use crate::promql::value::format_float;
use params::{LokiParams, default_step_ns, parse_loki_duration_ns};

/// Shared state of the Loki handlers.
#[derive(Clone)]
pub struct LokiState {
    /// Log storage.
    pub reader: Arc<dyn LogReader>,
    /// Query limits.
    pub limits: Arc<LogqlLimits>,
}

/// The Loki API routes.
pub fn router(state: LokiState) -> Router {
    Router::new()
        .route("/loki/api/v1/query", get(query).post(query))
        .route("/loki/api/v1/query_range", get(query_range).post(query_range))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series).post(series))
        .route("/loki/api/v1/index/stats", get(index_stats).post(index_stats))
        .route("/loki/api/v1/index/volume", get(index_volume).post(index_volume))
        .route("/loki/api/v1/format_query", get(format_query).post(format_query))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/loki/api/v1/tail", get(tail::tail))
        .with_state(state)
}

/// An error answered as Loki does: plain text.
struct LokiError(StatusCode, String);

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

impl From<EvalError> for LokiError {
    fn from(e: EvalError) -> Self {
        let status = if e.timeout {
            StatusCode::GATEWAY_TIMEOUT
        } else if e.bad_request {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        LokiError(status, e.message)
    }
}

fn bad(m: impl Into<String>) -> LokiError {
    LokiError(StatusCode::BAD_REQUEST, m.into())
}

type Answer = Result<Response, LokiError>;

fn tenant(headers: &HeaderMap) -> Result<String, LokiError> {
    match headers.get("x-scope-orgid") {
        None => Ok(DEFAULT_TENANT.to_string()),
        Some(v) => {
            let t = v.to_str().map_err(|_| bad("X-Scope-OrgID is not valid text"))?.trim();
            if t.is_empty() || t.contains('|') {
                return Err(bad(format!(
                    "invalid X-Scope-OrgID {t:?}: name exactly one tenant (queries across tenants are not supported)"
                )));
            }
            Ok(t.to_string())
        }
    }
}

fn success(data: Value) -> Response {
    let body = json!({"status": "success", "data": data});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LokiError> + Send + 'static,
) -> Result<T, LokiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LokiError(StatusCode::INTERNAL_SERVER_ERROR, format!("query task failed: {e}")))?
}

/// The request's view of the sites (`partial_response=false`: every site
/// must answer), as in the Prometheus API.
fn site_scope(p: &LokiParams) -> Result<SiteScope, LokiError> {
    crate::api::site_scope(p).map_err(|e| bad(e.message))
}

/// [`blocking`] with the reads in `scope`; the answer gets its warnings
/// (sites left out) as Loki's top-level `warnings`.
async fn blocking_in(
    scope: SiteScope,
    f: impl FnOnce() -> Result<Value, LokiError> + Send + 'static,
) -> Result<Response, LokiError> {
    let inner = scope.clone();
    let data = blocking(move || inner.enter(f)).await?;
    let warnings = scope.warnings();
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

fn request(raw: Option<String>, headers: &HeaderMap, body: &[u8]) -> LokiParams {
    LokiParams(Params::from_parts(raw.as_deref(), headers, body))
}

fn ts_seconds(ns: i64) -> Value {
    // Loki prints step times as seconds with millisecond precision.
    let ms = ns.div_euclid(1_000_000);
    let v = ms as f64 / 1000.0;
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn stats_json(stats: &logql::eval::EvalStats, started: Instant, returned: usize) -> Value {
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    json!({
        "summary": {
            "bytesProcessedPerSecond": (stats.bytes as f64 / secs) as u64,
            "linesProcessedPerSecond": (stats.lines as f64 / secs) as u64,
            "totalBytesProcessed": stats.bytes,
            "totalLinesProcessed": stats.lines,
            "execTime": secs,
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": returned,
            "splits": 0,
            "shards": 0
        }
    })
}

fn streams_json(streams: Vec<logql::StreamResult>) -> (Value, usize) {
    let mut n = 0;
    let result: Vec<Value> = streams
        .into_iter()
        .map(|s| {
            n += s.entries.len();
            json!({
                "stream": s.labels,
                "values": s.entries.into_iter().map(|(ts, line)| json!([ts.to_string(), line])).collect::<Vec<_>>(),
            })
        })
        .collect();
    (Value::Array(result), n)
}

fn run(
    state: &LokiState,
    tenant: &str,
    expr: &Expr,
    range: Option<(i64, i64, i64)>,
    instant: i64,
    limit: usize,
    direction: Direction,
) -> Result<Value, LokiError> {
    let started = Instant::now();
    let mut ctx = Context {
        reader: state.reader.as_ref(),
        tenant,
        limits: &state.limits,
        started,
        stats: Default::default(),
    };
    let (result_type, result, returned) = match (expr, range) {
        (Expr::Log(log), Some((start, end, _))) => {
            let streams = logql::eval_log(&mut ctx, log, start, end, limit, direction)?;
            let (v, n) = streams_json(streams);
            ("streams", v, n)
        }
        (Expr::Log(_), None) => {
            return Err(bad(
                "log queries are not supported as an instant query type, please change your query to a range query type",
            ));
        }
        (Expr::Metric(m), Some((start, end, step))) => {
            let series = logql::eval_metric(&mut ctx, m, Steps { start, end, step })?;
            let n = series.len();
            let v: Vec<Value> = series
                .into_iter()
                .map(|s| {
                    json!({
                        "metric": s.labels,
                        "values": s.points.into_iter().map(|(t, v)| json!([ts_seconds(t), format_float(v)])).collect::<Vec<_>>(),
                    })
                })
                .collect();
            ("matrix", Value::Array(v), n)
        }
        (Expr::Metric(m), None) => {
            let series = logql::eval_metric(
                &mut ctx,
                m,
                Steps {
                    start: instant,
                    end: instant,
                    step: 1,
                },
            )?;
            if logql::eval::is_scalar(m) {
                let v = series.first().and_then(|s| s.points.first()).map_or(0.0, |p| p.1);
                ("scalar", json!([ts_seconds(instant), format_float(v)]), 1)
            } else {
                let n = series.len();
                let v: Vec<Value> = series
                    .into_iter()
                    .filter_map(|s| {
                        let (t, v) = *s.points.first()?;
                        Some(json!({"metric": s.labels, "value": [ts_seconds(t), format_float(v)]}))
                    })
                    .collect();
                ("vector", Value::Array(v), n)
            }
        }
    };
    Ok(json!({
        "resultType": result_type,
        "result": result,
        "stats": stats_json(&ctx.stats, started, returned),
    }))
}

async fn query(State(state): State<LokiState>, RawQuery(raw): RawQuery, headers: HeaderMap, body: Bytes) -> Answer {
    let p = request(raw, &headers, &body);
    let tenant = tenant(&headers)?;
    let q = p.required("query")?;
    let expr = logql::parse(&q).map_err(bad)?;
    let time = p.time_ns("time", logql_now())?;
    let limit = p.limit()?;
    let direction = p.direction()?;
    let scope = site_scope(&p)?;
    blocking_in(scope, move || run(&state, &tenant, &expr, None, time, limit, direction)).await
}

async fn query_range(
    State(state): State<LokiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let p = request(raw, &headers, &body);
    let tenant = tenant(&headers)?;
    let q = p.required("query")?;
    let expr = logql::parse(&q).map_err(bad)?;
    let (start, end) = p.range_ns(3600)?;
    let step = match p.get("step").or(p.get("interval")) {
        Some(s) if !s.is_empty() => parse_loki_duration_ns(s).filter(|d| *d > 0).ok_or_else(|| {
            bad(format!(
                "invalid parameter \"step\": cannot parse {s:?} to a positive duration"
            ))
        })?,
        _ => default_step_ns(start, end),
    };
    let limit = p.limit()?;
    let direction = p.direction()?;
    let scope = site_scope(&p)?;
    blocking_in(scope, move || {
        run(&state, &tenant, &expr, Some((start, end, step)), end, limit, direction)
    })
    .await
}

fn selectors(p: &LokiParams, names: &[&str]) -> Result<Vec<Vec<Matcher>>, LokiError> {
    let mut out = Vec::new();
    for name in names {
        for q in p.all(name) {
            if q.trim().is_empty() {
                continue;
            }
            out.push(logql::parse_log(q).map_err(bad)?.matchers);
        }
    }
    Ok(out)
}

fn stream_keys(
    state: &LokiState,
    tenant: &str,
    sels: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> Vec<Arc<sightline_storage::logs::StreamKey>> {
    let mut all = Vec::new();
    if sels.is_empty() {
        all.extend(
            state
                .reader
                .stream_keys(&LogSelect::new(tenant, Vec::new(), start, end)),
        );
    }
    for m in sels {
        all.extend(state.reader.stream_keys(&LogSelect::new(tenant, m.clone(), start, end)));
    }
    all.sort();
    all.dedup();
    all
}

/// The streams a metadata request (`labels`, `label/<n>/values`,
/// `series`) is about: its tenant, time range (default: the last 6 hours)
/// and selectors (`param_names`), each stream once.
async fn requested_streams(
    state: LokiState,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
    param_names: &'static [&'static str],
) -> Result<Vec<Arc<sightline_storage::logs::StreamKey>>, LokiError> {
    let p = request(raw, headers, body);
    let tenant = tenant(headers)?;
    let (start, end) = p.range_ns(6 * 3600)?;
    let sels = selectors(&p, param_names)?;
    blocking(move || Ok(stream_keys(&state, &tenant, &sels, start, end))).await
}

async fn labels(State(state): State<LokiState>, RawQuery(raw): RawQuery, headers: HeaderMap, body: Bytes) -> Answer {
    let keys = requested_streams(state, raw, &headers, &body, &["query"]).await?;
    let names: BTreeSet<&str> = keys.iter().flat_map(|k| k.labels.iter().map(|l| l.name)).collect();
    Ok(success(json!(names)))
}

async fn label_values(
    State(state): State<LokiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let keys = requested_streams(state, raw, &headers, &body, &["query"]).await?;
    let values: BTreeSet<&str> = keys.iter().filter_map(|k| k.labels.get(&name)).collect();
    Ok(success(json!(values)))
}

async fn series(State(state): State<LokiState>, RawQuery(raw): RawQuery, headers: HeaderMap, body: Bytes) -> Answer {
    let keys = requested_streams(state, raw, &headers, &body, &["match[]", "match"]).await?;
    let out: Vec<BTreeMap<&str, &str>> = keys
        .iter()
        .map(|k| k.labels.iter().map(|l| (l.name, l.value)).collect())
        .collect();
    Ok(success(json!(out)))
}

async fn index_stats(
    State(state): State<LokiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let p = request(raw, &headers, &body);
        let tenant = tenant(&headers)?;
        let (start, end) = p.range_ns(3600)?;
        let q = p.required("query")?;
        let matchers = logql::parse_log(&q).map_err(bad)?.matchers;
        blocking(move || {
            let streams = state
                .reader
                .select(&LogSelect::new(&tenant, matchers, start, end))
                .map_err(|e| LokiError::from(EvalError::from(e)))?;
            let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
            let bytes: usize = streams.iter().flat_map(|s| s.entries.iter()).map(|e| e.size()).sum();
            Ok(json!({"streams": streams.len(), "chunks": streams.len(), "entries": entries, "bytes": bytes}))
        })
        .await
    }
    .await;
    match result {
        Ok(v) => ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn index_volume(
    State(state): State<LokiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let p = request(raw, &headers, &body);
    let tenant = tenant(&headers)?;
    let (start, end) = p.range_ns(3600)?;
    let q = p.required("query")?;
    let matchers = logql::parse_log(&q).map_err(bad)?.matchers;
    let limit = match p.get("limit") {
        Some(l) if !l.is_empty() => l.parse::<usize>().map_err(|_| bad(format!("invalid limit {l:?}")))?,
        _ => 100,
    };
    let targets: Vec<String> = match p.get("targetLabels") {
        Some(t) if !t.is_empty() => t.split(',').map(|s| s.trim().to_string()).collect(),
        _ => matchers
            .iter()
            .filter(|m| m.op != MatchOp::NotEqual || !m.value.is_empty())
            .map(|m| m.name.clone())
            .collect(),
    };
    let data = blocking(move || {
        let streams = state
            .reader
            .select(&LogSelect::new(&tenant, matchers, start, end))
            .map_err(|e| LokiError::from(EvalError::from(e)))?;
        let mut volume: BTreeMap<BTreeMap<String, String>, u64> = BTreeMap::new();
        for s in &streams {
            let key: BTreeMap<String, String> = targets
                .iter()
                .filter_map(|t| s.key.labels.get(t).map(|v| (t.clone(), v.to_string())))
                .collect();
            *volume.entry(key).or_default() += s.entries.iter().map(|e| e.size() as u64).sum::<u64>();
        }
        let mut v: Vec<_> = volume.into_iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        v.truncate(limit);
        let result: Vec<Value> = v
            .into_iter()
            .map(|(labels, bytes)| json!({"metric": labels, "value": [ts_seconds(end), bytes.to_string()]}))
            .collect();
        Ok(json!({"resultType": "vector", "result": result}))
    })
    .await?;
    Ok(success(data))
}

async fn format_query(RawQuery(raw): RawQuery, headers: HeaderMap, body: Bytes) -> Answer {
    let p = request(raw, &headers, &body);
    let q = p.required("query")?;
    let expr = logql::parse(&q).map_err(bad)?;
    Ok(success(json!(expr.to_string())))
}

async fn buildinfo() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "version": "3.0.0",
            "revision": concat!("sightline-", env!("CARGO_PKG_VERSION")),
            "branch": "main",
            "buildUser": "sightline",
            "buildDate": "",
            "goVersion": ""
        })
        .to_string(),
    )
        .into_response()
}

fn logql_now() -> i64 {
    sightline_storage::logs::now_ns()
}

#[cfg(test)]
mod tests;
