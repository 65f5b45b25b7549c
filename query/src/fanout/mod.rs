//! Cross-site reads: a [`SeriesReader`] over this site's storage and its
//! peer sites, so a query on any site spans the fleet.
//!
//! Each read goes to the local reader and, in parallel, to every peer's
//! internal API (`/internal/v1/select`, `/internal/v1/series`, served from
//! the peer's own storage only, so reads never bounce between sites).
//! Series that arrived at two sites (dual shipping) are merged: one series
//! per label set, one sample per timestamp (this site's first, then the
//! peers' in configuration order). A peer that fails or does not answer
//! within the timeout is left out with a warning naming it, or, for a
//! strict request, fails the read; a failed peer is not asked again for a
//! few seconds, so queries during an outage stay fast.
//!
//! Warnings and strictness belong to one API request: the handler runs the
//! query inside [`SiteScope::run`] (or, for reads on a blocking thread such
//! as log queries, [`SiteScope::enter`]); reads outside a scope (rule
//! evaluation) are lenient and log the missing site.
//!
//! Log reads fan out the same way ([`logs`]).

pub mod logs;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sightline_storage::{Labels, MatchOp, Matcher, Result, SeriesData, SeriesReader, StorageError};

use crate::api::ApiError;

/// A peer site: its name (for warnings) and base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The site's name, e.g. `dc2`.
    pub name: String,
    /// Its HTTP base URL, e.g. `http://10.1.0.5:9780`.
    pub url: String,
}

/// How long a failed peer is skipped before it is asked again.
const DOWN_BACKOFF: Duration = Duration::from_secs(5);

/// One API request's view of the fleet: strict or not, and the warnings
/// its reads collected.
#[derive(Debug, Clone, Default)]
pub struct SiteScope {
    strict: bool,
    warnings: Arc<Mutex<Vec<String>>>,
}

tokio::task_local! {
    static SCOPE: SiteScope;
}

thread_local! {
    static THREAD_SCOPE: RefCell<Option<SiteScope>> = const { RefCell::new(None) };
}

/// The scope of the request being served: the task's, else the thread's.
fn current_scope() -> Option<SiteScope> {
    SCOPE
        .try_with(Clone::clone)
        .ok()
        .or_else(|| THREAD_SCOPE.with(|s| s.borrow().clone()))
}

impl SiteScope {
    /// A scope; `strict` makes a missing site an error instead of a warning.
    pub fn new(strict: bool) -> Self {
        SiteScope {
            strict,
            warnings: Arc::default(),
        }
    }

    /// Runs `f` (a query) in this scope.
    pub async fn run<F: Future>(&self, f: F) -> F::Output {
        SCOPE.scope(self.clone(), f).await
    }

    /// Runs `f` (blocking work on this thread) in this scope.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let previous = THREAD_SCOPE.with(|s| s.replace(Some(self.clone())));
        let out = f();
        THREAD_SCOPE.with(|s| *s.borrow_mut() = previous);
        out
    }

    /// The warnings collected so far, each once.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn warn(&self, message: String) {
        if let Ok(mut w) = self.warnings.lock()
            && !w.contains(&message)
        {
            w.push(message);
        }
    }
}

/// The peer sites, with what is known of their health; shared by the
/// metrics and the logs reader.
pub struct PeerSet {
    peers: Vec<PeerState>,
    client: reqwest::Client,
    timeout: Duration,
}

/// Reads this site's storage and its peers'.
pub struct FanoutReader<R> {
    local: Arc<R>,
    peers: Arc<PeerSet>,
}

struct PeerState {
    peer: Peer,
    /// Skipped until then after a failure.
    down_until: Mutex<Option<Instant>>,
}

impl<R: SeriesReader> FanoutReader<R> {
    /// Reads `local` and `peers`.
    pub fn new(local: Arc<R>, peers: Arc<PeerSet>) -> Self {
        FanoutReader { local, peers }
    }
}

impl PeerSet {
    /// The peers, each given `timeout` per read.
    pub fn new(peers: Vec<Peer>, timeout: Duration) -> Arc<Self> {
        Arc::new(PeerSet {
            peers: peers
                .into_iter()
                .map(|peer| PeerState {
                    peer,
                    down_until: Mutex::new(None),
                })
                .collect(),
            client: reqwest::Client::new(),
            timeout,
        })
    }

    /// True when there are no peers (reads stay local).
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Asks every peer's `/-/ready`, in parallel: (name, ready) per peer.
    /// A ready peer is asked by reads again at once (a returning site is
    /// back in the answers at the next probe); a peer that is not ready is
    /// left to the reads to judge (a site still starting is not skipped).
    pub async fn probe(&self) -> Vec<(String, bool)> {
        let asks = self.peers.iter().map(|p| async move {
            let url = format!("{}/-/ready", p.peer.url.trim_end_matches('/'));
            let ready = tokio::time::timeout(self.timeout, self.client.get(&url).send())
                .await
                .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
            if ready && let Ok(mut d) = p.down_until.lock() {
                *d = None;
            }
            (p.peer.name.clone(), ready)
        });
        futures::future::join_all(asks).await
    }

    /// Asks every peer for `path` with `params`, in parallel; returns the
    /// bodies of those that answered. A peer that did not answer is
    /// reported through the request's scope (an error when strict).
    async fn ask(&self, path: &str, params: &[(String, String)]) -> Result<Vec<String>> {
        let scope = current_scope();
        let asks = self.peers.iter().map(|p| async move {
            let skipped = p
                .down_until
                .lock()
                .ok()
                .and_then(|d| *d)
                .is_some_and(|t| Instant::now() < t);
            if skipped {
                return Err((p, "did not answer recently".to_string()));
            }
            let url = format!("{}{path}", p.peer.url.trim_end_matches('/'));
            let answer = async {
                let r = self
                    .client
                    .get(&url)
                    .query(params)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = r.status();
                let body = r.text().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(format!("HTTP {status}: {}", body.trim()))
                }
            };
            match tokio::time::timeout(self.timeout, answer).await {
                Ok(Ok(body)) => Ok(body),
                Ok(Err(e)) => Err((p, e)),
                Err(_) => Err((p, format!("no answer within {:?}", self.timeout))),
            }
        });
        let mut bodies = Vec::new();
        for result in futures::future::join_all(asks).await {
            match result {
                Ok(body) => bodies.push(body),
                Err((p, why)) => {
                    if let Ok(mut d) = p.down_until.lock()
                        && d.is_none_or(|t| Instant::now() >= t)
                    {
                        *d = Some(Instant::now() + DOWN_BACKOFF);
                    }
                    let message = format!(
                        "site {:?} is missing from this result: {why}; the other sites answered",
                        p.peer.name
                    );
                    match &scope {
                        Some(s) if s.strict => {
                            return Err(StorageError::Unavailable(format!(
                                "site {:?} did not answer ({why}) and a complete answer was asked for (partial_response=false)",
                                p.peer.name
                            )));
                        }
                        Some(s) => s.warn(message),
                        None => tracing::warn!(site = %p.peer.name, %why, "peer site left out of a read"),
                    }
                }
            }
        }
        Ok(bodies)
    }
}

/// The `match[]` parameter for `matchers` (all series when empty).
pub(crate) fn selector_param(matchers: &[Matcher]) -> (String, String) {
    if matchers.is_empty() {
        return ("match[]".into(), r#"{__name__=~".+"}"#.into());
    }
    let inner: Vec<String> = matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::Regex => "=~",
                MatchOp::NotRegex => "!~",
            };
            // A JSON string is a valid PromQL double-quoted string.
            let value = serde_json::to_string(&m.value).unwrap_or_default();
            format!("{}{op}{value}", m.name)
        })
        .collect();
    ("match[]".into(), format!("{{{}}}", inner.join(",")))
}

fn range_params(matchers: &[Matcher], start: i64, end: i64) -> Vec<(String, String)> {
    vec![
        selector_param(matchers),
        ("start".into(), ms_param(start)),
        ("end".into(), ms_param(end)),
    ]
}

fn ms_param(ms: i64) -> String {
    let ms = ms.clamp(crate::params::MIN_TIME, crate::params::MAX_TIME);
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// One series as peers send it: exact value bits.
#[derive(Debug, Serialize, Deserialize)]
struct WireSeries {
    labels: Vec<(String, String)>,
    t: Vec<i64>,
    v: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    st: Vec<i64>,
}

impl WireSeries {
    fn from_data(s: &SeriesData) -> Self {
        WireSeries {
            labels: s
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            t: s.timestamps.clone(),
            v: s.values.iter().map(|v| v.to_bits()).collect(),
            st: s.start_timestamps.clone(),
        }
    }
}

pub(crate) fn corrupt_peer(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("a peer site sent an unreadable {what}: {e}"))
}

/// Merges series from several sources: one per label set, one sample per
/// timestamp (the first source's wins), sorted by labels.
fn merge(sources: Vec<Vec<SeriesData>>) -> Vec<SeriesData> {
    type Samples = BTreeMap<i64, (f64, i64)>;
    let mut all: BTreeMap<Arc<Labels>, Samples> = BTreeMap::new();
    for source in sources {
        for s in source {
            let entry = all.entry(s.labels.clone()).or_default();
            for (i, (t, v)) in s.timestamps.iter().zip(&s.values).enumerate() {
                let st = s.start_timestamps.get(i).copied().unwrap_or(0);
                entry.entry(*t).or_insert((*v, st));
            }
        }
    }
    all.into_iter()
        .map(|(labels, samples)| {
            let has_st = samples.values().any(|x| x.1 != 0);
            SeriesData {
                labels,
                timestamps: samples.keys().copied().collect(),
                values: samples.values().map(|x| x.0).collect(),
                start_timestamps: if has_st {
                    samples.values().map(|x| x.1).collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

fn labels_of(pairs: Vec<(String, String)>) -> Labels {
    Labels::from_pairs(pairs)
}

impl<R: SeriesReader> SeriesReader for FanoutReader<R> {
    async fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>> {
        if self.peers.is_empty() {
            return self.local.select(matchers, start, end).await;
        }
        let params = range_params(matchers, start, end);
        let (local, remote) = tokio::join!(
            self.local.select(matchers, start, end),
            self.peers.ask("/internal/v1/select", &params)
        );
        let mut sources = vec![local?];
        for body in remote? {
            let mut series = Vec::new();
            for line in body.lines().filter(|l| !l.is_empty()) {
                let w: WireSeries = serde_json::from_str(line).map_err(|e| corrupt_peer("series", e))?;
                if w.t.len() != w.v.len() || (!w.st.is_empty() && w.st.len() != w.t.len()) {
                    return Err(corrupt_peer("series", "columns of different lengths"));
                }
                series.push(SeriesData {
                    labels: Arc::new(labels_of(w.labels)),
                    timestamps: w.t,
                    values: w.v.into_iter().map(f64::from_bits).collect(),
                    start_timestamps: w.st,
                });
            }
            sources.push(series);
        }
        Ok(merge(sources))
    }

    async fn select_batches(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        batch_samples: usize,
        out: tokio::sync::mpsc::Sender<Vec<SeriesData>>,
    ) -> Result<()> {
        if self.peers.is_empty() {
            return self
                .local
                .select_batches(matchers, start, end, batch_samples, out)
                .await;
        }
        // Merging needs every site's series: read whole, hand out batches.
        sightline_storage::read::send_in_batches(self.select(matchers, start, end).await?, batch_samples, out).await;
        Ok(())
    }

    async fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Arc<Labels>>> {
        if self.peers.is_empty() {
            return self.local.series(matchers, start, end).await;
        }
        let params = range_params(matchers, start, end);
        let (local, remote) = tokio::join!(
            self.local.series(matchers, start, end),
            self.peers.ask("/internal/v1/series", &params)
        );
        let mut all: BTreeMap<Arc<Labels>, ()> = local?.into_iter().map(|l| (l, ())).collect();
        for body in remote? {
            let list: Vec<Vec<(String, String)>> =
                serde_json::from_str(&body).map_err(|e| corrupt_peer("series list", e))?;
            for pairs in list {
                all.entry(Arc::new(labels_of(pairs))).or_default();
            }
        }
        Ok(all.into_keys().collect())
    }

    async fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        if self.peers.is_empty() {
            return self.local.label_names(matchers, start, end).await;
        }
        let mut names: Vec<String> = self
            .series(matchers, start, end)
            .await?
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>> {
        if self.peers.is_empty() {
            return self.local.label_values(name, matchers, start, end).await;
        }
        let mut values: Vec<String> = self
            .series(matchers, start, end)
            .await?
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .filter(|v| !v.is_empty())
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

/// The internal API peers read: this site's own storage only.
pub fn internal_router<R: SeriesReader>(local: Arc<R>) -> Router {
    Router::new()
        .route("/internal/v1/select", get(internal_select::<R>))
        .route("/internal/v1/series", get(internal_series::<R>))
        .with_state(local)
}

/// `GET /internal/v1/select`: JSON lines of [`WireSeries`].
async fn internal_select<R: SeriesReader>(
    State(local): State<Arc<R>>,
    q: crate::api::SeriesQuery,
) -> std::result::Result<Response, ApiError> {
    let mut out = String::new();
    for matchers in q.sets_or_all() {
        for s in local.select(&matchers, q.start, q.end).await? {
            out.push_str(
                &serde_json::to_string(&WireSeries::from_data(&s)).map_err(|e| ApiError {
                    kind: crate::api::ErrorType::Internal,
                    message: e.to_string(),
                })?,
            );
            out.push('\n');
        }
    }
    Ok(out.into_response())
}

/// `GET /internal/v1/series`: a JSON array of label pair lists.
async fn internal_series<R: SeriesReader>(
    State(local): State<Arc<R>>,
    q: crate::api::SeriesQuery,
) -> std::result::Result<Response, ApiError> {
    let mut all: Vec<Vec<(String, String)>> = Vec::new();
    for matchers in q.sets_or_all() {
        for l in local.series(&matchers, q.start, q.end).await? {
            all.push(l.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect());
        }
    }
    Ok(axum::Json(all).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str, samples: &[(i64, f64)]) -> SeriesData {
        SeriesData {
            labels: Arc::new(Labels::from_pairs([("__name__", name)])),
            timestamps: samples.iter().map(|s| s.0).collect(),
            values: samples.iter().map(|s| s.1).collect(),
            start_timestamps: Vec::new(),
        }
    }

    #[test]
    fn dual_shipped_series_count_once() {
        let local = vec![data("a", &[(1, 1.0), (2, 2.0)]), data("c", &[(1, 5.0)])];
        let peer = vec![data("a", &[(2, 2.0), (3, 3.0)]), data("b", &[(1, 7.0)])];
        let merged = merge(vec![local, peer]);
        let names: Vec<&str> = merged.iter().map(|s| s.labels.get("__name__").unwrap_or("")).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(merged[0].timestamps, [1, 2, 3]);
        assert_eq!(merged[0].values, [1.0, 2.0, 3.0]);
    }

    #[test]
    fn matchers_travel_as_a_selector_the_peer_parses() {
        let m = vec![
            Matcher::equal("__name__", "up"),
            Matcher::new(MatchOp::Regex, "job", "a|\"b\"").expect("regex"),
            Matcher::new(MatchOp::NotEqual, "site", "").expect("ne"),
        ];
        let (_, sel) = selector_param(&m);
        let parsed = crate::selector::parse_selector(&sel).expect("parses");
        assert_eq!(format!("{parsed:?}").matches("job").count(), 1, "{sel}");
        assert!(sel.contains(r#"job=~"a|\"b\"""#), "{sel}");
        assert_eq!(ms_param(-1), "-1.999");
        assert_eq!(ms_param(1_500), "1.500");
    }
}
