//! `/api/v1/status/buildinfo` and `/api/v1/status/tsdb`.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use sightline_storage::SeriesReader;

use super::query::AllParams;
use super::{ApiError, success};
use crate::ApiState;
use crate::params::{MAX_TIME, MIN_TIME};

/// `GET /api/v1/metadata`: type, help and unit per metric name as clients
/// sent them (`metric`, `limit`, `limit_per_metric` as Prometheus).
pub async fn metadata<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    AllParams(p): AllParams,
) -> Result<Response, ApiError> {
    let count = |name: &str| -> Result<usize, ApiError> {
        match p.get(name) {
            None | Some("") => Ok(0),
            Some(v) => v
                .parse::<i64>()
                .map(|n| usize::try_from(n).unwrap_or(0))
                .map_err(|_| ApiError::bad_data(format!("invalid parameter {name:?}: cannot parse {v:?}"))),
        }
    };
    let limit = count("limit")?;
    let per_metric = count("limit_per_metric")?;
    let metric = p.get("metric").filter(|m| !m.is_empty());
    Ok(success(st.metadata.query(metric, limit, per_metric), Vec::new()))
}

/// The Prometheus version whose API and PromQL Sightline answers like.
/// Grafana reads it to decide which features the data source offers.
pub const PROMETHEUS_COMPAT_VERSION: &str = "3.0.0";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: &'static str,
}

/// `GET /api/v1/status/buildinfo`: Prometheus' fields; `version` is the
/// Prometheus API level served, `revision` Sightline's own version.
pub async fn buildinfo() -> Response {
    success(
        BuildInfo {
            version: PROMETHEUS_COMPAT_VERSION,
            revision: concat!("sightline-", env!("CARGO_PKG_VERSION")),
            branch: "sightline",
            build_user: "sightline",
            build_date: "",
            go_version: "none (Rust)",
        },
        Vec::new(),
    )
}

#[derive(Serialize)]
struct Stat {
    name: String,
    value: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Stat>,
    label_value_count_by_label_name: Vec<Stat>,
    memory_in_bytes_by_label_name: Vec<Stat>,
    series_count_by_label_value_pair: Vec<Stat>,
}

fn top(map: HashMap<String, u64>, limit: usize) -> Vec<Stat> {
    let mut v: Vec<Stat> = map.into_iter().map(|(name, value)| Stat { name, value }).collect();
    v.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    v.truncate(limit);
    v
}

/// `GET /api/v1/status/tsdb`: cardinality of all stored series — the top
/// `limit` (default 10) metric names by series count, label names by
/// number of values and by bytes of values, and label pairs by series.
pub async fn tsdb<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    AllParams(p): AllParams,
) -> Result<Response, ApiError> {
    let limit = match p.limit().map_err(ApiError::bad_data)? {
        0 => 10,
        n => n,
    };
    let all = st.reader.series(&[], MIN_TIME, MAX_TIME).await?;
    let mut by_metric: HashMap<String, u64> = HashMap::new();
    let mut values_by_name: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    let mut bytes_by_name: HashMap<String, u64> = HashMap::new();
    let mut by_pair: HashMap<String, u64> = HashMap::new();
    for labels in &all {
        if let Some(name) = labels.metric_name() {
            *by_metric.entry(name.to_string()).or_default() += 1;
        }
        for l in labels.iter() {
            values_by_name
                .entry(l.name.to_string())
                .or_default()
                .insert(l.value.to_string());
            *bytes_by_name.entry(l.name.to_string()).or_default() += l.value.len() as u64;
            *by_pair.entry(format!("{}={}", l.name, l.value)).or_default() += 1;
        }
    }
    let num_label_pairs = by_pair.len() as u64;
    let value_counts = values_by_name.into_iter().map(|(k, v)| (k, v.len() as u64)).collect();
    Ok(success(
        TsdbStatus {
            head_stats: HeadStats {
                num_series: all.len() as u64,
                num_label_pairs,
            },
            series_count_by_metric_name: top(by_metric, limit),
            label_value_count_by_label_name: top(value_counts, limit),
            memory_in_bytes_by_label_name: top(bytes_by_name, limit),
            series_count_by_label_value_pair: top(by_pair, limit),
        },
        Vec::new(),
    ))
}
