//! `GET /loki/api/v1/tail`: live tail over WebSocket, as Grafana's Loki
//! data source and `logcli --tail` use it. The client first gets the
//! newest `limit` entries since `start` (default one hour ago), then every
//! matching entry as soon as it is durable, in messages
//! `{"streams":[{"stream":{…},"values":[["<ns>","line"]]}],"dropped_entries":null}`.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sightline_storage::logs::{LogSelect, TailBatch};
use tokio::sync::broadcast;

use super::params::LokiParams;
use super::{LokiError, LokiState, bad, tenant};
use crate::logql::pipeline::{LabelMap, Pipeline};
use crate::logql::{self, Context, Direction, LogExpr};
use crate::params::Params;

/// Upgrades to a WebSocket streaming the query's entries.
pub async fn tail(
    State(state): State<LokiState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let setup = || -> Result<(String, LogExpr, i64, usize, broadcast::Receiver<TailBatch>), LokiError> {
        let p = LokiParams(Params::from_parts(raw.as_deref(), &headers, &[]));
        let tenant = tenant(&headers)?;
        let log = logql::parse_log(&p.required("query")?).map_err(bad)?;
        let start = p.time_ns("start", super::logql_now() - 3_600_000_000_000)?;
        let limit = p.limit()?.min(state.limits.max_entries);
        let rx = state.reader.subscribe().ok_or_else(|| {
            LokiError(
                StatusCode::NOT_IMPLEMENTED,
                "live tail is not available on this node".into(),
            )
        })?;
        Ok((tenant, log, start, limit, rx))
    };
    match setup() {
        Ok((tenant, log, start, limit, rx)) => ws
            .on_upgrade(move |socket| run(socket, state, tenant, log, start, limit, rx))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn message(streams: BTreeMap<String, (LabelMap, Vec<(i64, String)>)>) -> String {
    let result: Vec<Value> = streams
        .into_values()
        .map(|(labels, values)| {
            json!({
                "stream": labels,
                "values": values.into_iter().map(|(t, l)| json!([t.to_string(), l])).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"streams": result, "dropped_entries": null}).to_string()
}

fn key_of(labels: &LabelMap) -> String {
    labels.iter().map(|(k, v)| format!("{k}\u{1}{v}\u{2}")).collect()
}

async fn run(
    mut socket: WebSocket,
    state: LokiState,
    tenant: String,
    log: LogExpr,
    start: i64,
    limit: usize,
    mut rx: broadcast::Receiver<TailBatch>,
) {
    let Ok(pipeline) = Pipeline::new(&log) else { return };
    // What is already there, then what arrives (entries sent in the first
    // part are not sent again).
    let backfill = {
        let (state, tenant, log) = (state.clone(), tenant.clone(), log.clone());
        tokio::task::spawn_blocking(move || {
            let mut ctx = Context {
                reader: state.reader.as_ref(),
                tenant: &tenant,
                limits: &state.limits,
                started: Instant::now(),
                stats: Default::default(),
            };
            logql::eval_log(
                &mut ctx,
                &log,
                start,
                super::logql_now() + 1,
                limit,
                Direction::Backward,
            )
        })
        .await
    };
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    if let Ok(Ok(streams)) = backfill {
        let mut out = BTreeMap::new();
        for s in streams {
            let mut values = s.entries;
            values.sort_by_key(|e| e.0);
            seen.extend(values.iter().cloned());
            out.insert(key_of(&s.labels), (s.labels, values));
        }
        if !out.is_empty() && socket.send(Message::Text(message(out).into())).await.is_err() {
            return;
        }
    }
    let select = LogSelect::new(tenant, log.matchers.clone(), i64::MIN, i64::MAX);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            batch = rx.recv() => {
                let batch = match batch {
                    Ok(b) => b,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(batches = n, "live tail fell behind; batches dropped");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let mut out: BTreeMap<String, (LabelMap, Vec<(i64, String)>)> = BTreeMap::new();
                for s in batch.iter().filter(|s| select.matches_stream(&s.key)) {
                    for e in &s.entries {
                        if !seen.is_empty() && seen.remove(&(e.ts, e.line.clone())) {
                            continue;
                        }
                        let Some(p) = pipeline.process(e.ts, &e.line, &s.key.labels, &e.metadata) else { continue };
                        let labels = p
                            .labels
                            .unwrap_or_else(|| s.key.labels.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect());
                        out.entry(key_of(&labels)).or_insert_with(|| (labels, Vec::new())).1.push((e.ts, p.line));
                    }
                }
                if !out.is_empty() && socket.send(Message::Text(message(out).into())).await.is_err() {
                    return;
                }
            }
        }
    }
}
