//! Cross-site log reads: a [`LogReader`] over this site's log storage and
//! its peer sites', merged stream by stream; an entry shipped to two sites
//! (same stream, time and line) counts once.
//!
//! Log reads run on blocking threads, so peers are asked through the
//! runtime handle given at construction; the request's [`super::SiteScope`]
//! comes from the thread ([`super::SiteScope::enter`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sightline_storage::logs::{LogEntry, LogReader, LogSelect, LogStream, StreamKey, TailBatch};
use sightline_storage::{Labels, MatchOp, Matcher, Result, StorageError};

use super::{PeerSet, corrupt_peer};
use crate::params::Params;

/// Reads this site's logs and its peers'.
pub struct FanoutLogReader {
    local: Arc<dyn LogReader>,
    peers: Arc<PeerSet>,
    runtime: tokio::runtime::Handle,
}

impl FanoutLogReader {
    /// Reads `local` and `peers`, asking peers on `runtime`.
    pub fn new(local: Arc<dyn LogReader>, peers: Arc<PeerSet>, runtime: tokio::runtime::Handle) -> Self {
        FanoutLogReader { local, peers, runtime }
    }

    fn ask(&self, path: &str, q: &LogSelect) -> Result<Vec<String>> {
        let params = select_params(q);
        self.runtime.block_on(self.peers.ask(path, &params))
    }
}

/// A matcher as peers receive it: `[name, op, value]`.
type WireMatcher = (String, String, String);

fn op_name(op: MatchOp) -> &'static str {
    match op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Regex => "=~",
        MatchOp::NotRegex => "!~",
    }
}

fn select_params(q: &LogSelect) -> Vec<(String, String)> {
    let matchers: Vec<WireMatcher> = q
        .matchers
        .iter()
        .map(|m| (m.name.clone(), op_name(m.op).to_string(), m.value.clone()))
        .collect();
    let mut params = vec![
        ("tenant".to_string(), q.tenant.clone()),
        (
            "matchers".to_string(),
            serde_json::to_string(&matchers).unwrap_or_default(),
        ),
        ("start".to_string(), q.start.to_string()),
        ("end".to_string(), q.end.to_string()),
        ("max_bytes".to_string(), q.max_bytes.to_string()),
        ("skip_lines".to_string(), q.skip_lines.to_string()),
    ];
    params.extend(q.contains.iter().map(|c| ("contains".to_string(), c.clone())));
    params
}

/// The read a peer asked for.
fn parse_select(p: &Params) -> std::result::Result<LogSelect, String> {
    let num = |name: &str| -> std::result::Result<i64, String> {
        p.get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("parameter {name:?} missing or not a number"))
    };
    let wire: Vec<WireMatcher> =
        serde_json::from_str(p.get("matchers").unwrap_or("[]")).map_err(|e| format!("parameter \"matchers\": {e}"))?;
    let mut matchers = Vec::with_capacity(wire.len());
    for (name, op, value) in wire {
        let op = match op.as_str() {
            "=" => MatchOp::Equal,
            "!=" => MatchOp::NotEqual,
            "=~" => MatchOp::Regex,
            "!~" => MatchOp::NotRegex,
            other => return Err(format!("unknown matcher operator {other:?}")),
        };
        matchers.push(Matcher::new(op, name, value).map_err(|e| e.to_string())?);
    }
    let mut q = LogSelect::new(p.get("tenant").unwrap_or(""), matchers, num("start")?, num("end")?);
    q.max_bytes = num("max_bytes").unwrap_or(0).max(0) as u64;
    q.skip_lines = p.get("skip_lines") == Some("true");
    q.contains = p.all("contains").into_iter().map(str::to_string).collect();
    Ok(q)
}

/// Name/value pairs (labels, structured metadata).
type Pairs = Vec<(String, String)>;

/// One entry as peers send it: time (ns), line, metadata.
type WireEntry = (i64, String, Pairs);

/// One stream as peers send it.
#[derive(Debug, Serialize, Deserialize)]
struct WireStream {
    tenant: String,
    labels: Pairs,
    entries: Vec<WireEntry>,
}

fn key_of(tenant: String, labels: Vec<(String, String)>) -> Arc<StreamKey> {
    Arc::new(StreamKey {
        tenant,
        labels: Labels::from_pairs(labels),
    })
}

fn pairs_of(key: &StreamKey) -> Vec<(String, String)> {
    key.labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

/// Merges streams of several sources: one per key; entries in time order,
/// an entry equal to one already taken (time, line, metadata) dropped.
fn merge(sources: Vec<Vec<LogStream>>) -> Vec<LogStream> {
    let mut all: BTreeMap<Arc<StreamKey>, Vec<LogEntry>> = BTreeMap::new();
    let mut multi = false;
    for source in sources {
        for s in source {
            let entries = all.entry(s.key).or_default();
            multi |= !entries.is_empty();
            entries.extend(s.entries);
        }
    }
    all.into_iter()
        .map(|(key, mut entries)| {
            if multi {
                // Stable: within one time, the first source's order stays.
                entries.sort_by_key(|e| e.ts);
                let mut kept: Vec<LogEntry> = Vec::with_capacity(entries.len());
                let mut group_start = 0;
                for e in entries {
                    if kept.last().is_some_and(|l| l.ts != e.ts) {
                        group_start = kept.len();
                    }
                    if !kept[group_start..].contains(&e) {
                        kept.push(e);
                    }
                }
                entries = kept;
            }
            LogStream { key, entries }
        })
        .collect()
}

impl LogReader for FanoutLogReader {
    fn select(&self, q: &LogSelect) -> Result<Vec<LogStream>> {
        let local = self.local.select(q)?;
        if self.peers.is_empty() {
            return Ok(local);
        }
        let mut sources = vec![local];
        for body in self.ask("/internal/v1/logs/select", q)? {
            let mut streams = Vec::new();
            for line in body.lines().filter(|l| !l.is_empty()) {
                let w: WireStream = serde_json::from_str(line).map_err(|e| corrupt_peer("log stream", e))?;
                streams.push(LogStream {
                    key: key_of(w.tenant, w.labels),
                    entries: w
                        .entries
                        .into_iter()
                        .map(|(ts, line, metadata)| LogEntry { ts, line, metadata })
                        .collect(),
                });
            }
            sources.push(streams);
        }
        Ok(merge(sources))
    }

    fn stream_keys(&self, q: &LogSelect) -> Vec<Arc<StreamKey>> {
        let mut keys = self.local.stream_keys(q);
        if self.peers.is_empty() {
            return keys;
        }
        // A peer that fails is a warning in the request's scope (a strict
        // request's error cannot travel through this method).
        for body in self.ask("/internal/v1/logs/streams", q).unwrap_or_default() {
            match serde_json::from_str::<Vec<(String, Vec<(String, String)>)>>(&body) {
                Ok(list) => keys.extend(list.into_iter().map(|(t, l)| key_of(t, l))),
                Err(e) => tracing::warn!(error = %e, "a peer site sent an unreadable stream list"),
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<TailBatch>> {
        // Live tail follows this site's entries.
        self.local.subscribe()
    }
}

/// The internal API peers read: this site's own log storage only.
pub fn internal_router(local: Arc<dyn LogReader>) -> Router {
    Router::new()
        .route("/internal/v1/logs/select", get(internal_select))
        .route("/internal/v1/logs/streams", get(internal_streams))
        .with_state(local)
}

fn bad(e: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, e.to_string()).into_response()
}

fn failed(e: StorageError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

/// `GET /internal/v1/logs/select`: JSON lines of [`WireStream`].
async fn internal_select(State(local): State<Arc<dyn LogReader>>, RawQuery(raw): RawQuery) -> Response {
    let p = Params::from_parts(raw.as_deref(), &Default::default(), &[]);
    let q = match parse_select(&p) {
        Ok(q) => q,
        Err(e) => return bad(e),
    };
    let read = tokio::task::spawn_blocking(move || local.select(&q)).await;
    let streams = match read {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(e),
        Err(e) => return failed(StorageError::Internal(e.to_string())),
    };
    let mut out = String::new();
    for s in streams {
        let w = WireStream {
            tenant: s.key.tenant.clone(),
            labels: pairs_of(&s.key),
            entries: s.entries.into_iter().map(|e| (e.ts, e.line, e.metadata)).collect(),
        };
        out.push_str(&serde_json::to_string(&w).unwrap_or_default());
        out.push('\n');
    }
    out.into_response()
}

/// `GET /internal/v1/logs/streams`: `[[tenant, [[name, value], …]], …]`.
async fn internal_streams(State(local): State<Arc<dyn LogReader>>, RawQuery(raw): RawQuery) -> Response {
    let p = Params::from_parts(raw.as_deref(), &Default::default(), &[]);
    let q = match parse_select(&p) {
        Ok(q) => q,
        Err(e) => return bad(e),
    };
    let keys = match tokio::task::spawn_blocking(move || local.stream_keys(&q)).await {
        Ok(k) => k,
        Err(e) => return failed(StorageError::Internal(e.to_string())),
    };
    let list: Vec<(String, Vec<(String, String)>)> = keys.iter().map(|k| (k.tenant.clone(), pairs_of(k))).collect();
    axum::Json(list).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(job: &str, entries: &[(i64, &str)]) -> LogStream {
        LogStream {
            key: key_of("fake".into(), vec![("job".into(), job.into())]),
            entries: entries.iter().map(|(t, l)| LogEntry::new(*t, *l)).collect(),
        }
    }

    #[test]
    fn dual_shipped_lines_count_once_and_equal_times_keep_their_order() {
        let local = vec![stream("a", &[(1, "x"), (2, "y1"), (2, "y2")]), stream("b", &[(5, "q")])];
        let peer = vec![stream("a", &[(2, "y1"), (2, "y2"), (3, "z")]), stream("c", &[(1, "r")])];
        let merged = merge(vec![local, peer]);
        let a: Vec<(i64, &str)> = merged[0].entries.iter().map(|e| (e.ts, e.line.as_str())).collect();
        assert_eq!(a, [(1, "x"), (2, "y1"), (2, "y2"), (3, "z")]);
        assert_eq!(merged.len(), 3);
    }

    #[test]
    fn reads_travel_to_peers_and_back_unchanged() {
        let mut q = LogSelect::new(
            "team-a",
            vec![
                Matcher::equal("job", "mail"),
                Matcher::new(MatchOp::Regex, "level", "err.*").expect("regex"),
            ],
            10,
            20,
        );
        q.contains = vec!["timeout".into(), "smtp".into()];
        q.skip_lines = true;
        let params = select_params(&q);
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let back = parse_select(&Params::from_parts(Some(&query), &Default::default(), &[])).expect("parses");
        assert_eq!((back.tenant.as_str(), back.start, back.end), ("team-a", 10, 20));
        assert_eq!(back.contains, q.contains);
        assert!(back.skip_lines);
        assert_eq!(back.matchers.len(), 2);
        assert!(back.matchers[1].matches("error") && !back.matchers[1].matches("info"));
    }
}
