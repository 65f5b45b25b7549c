//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use sightline_storage::{Labels, SeriesReader};

use super::{ApiError, success};
use crate::ApiState;
use crate::params::{MAX_TIME, MIN_TIME, Params};
use crate::selector::{Selector, parse_selector};

/// Parses every `match[]` into selectors.
pub(super) fn selectors(params: &Params) -> Result<Vec<Selector>, ApiError> {
    params
        .all("match[]")
        .into_iter()
        .map(|m| parse_selector(m).map_err(ApiError::bad_data))
        .collect()
}

/// `start` and `end` (defaults: all time), checked for order.
pub(super) fn time_range(params: &Params) -> Result<(i64, i64), ApiError> {
    let start = params.time("start", MIN_TIME).map_err(ApiError::bad_data)?;
    let end = params.time("end", MAX_TIME).map_err(ApiError::bad_data)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

fn truncate<T>(mut v: Vec<T>, limit: usize, warnings: &mut Vec<String>) -> Vec<T> {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        warnings.push("results truncated due to limit".into());
    }
    v
}

fn labels_json(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter().map(|l| (l.name, l.value)).collect()
}

/// `GET|POST /api/v1/series`.
pub async fn series<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_parts(q.as_deref(), &headers, &body);
    let sels = selectors(&params)?;
    if sels.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&params)?;
    let limit = params.limit().map_err(ApiError::bad_data)?;
    let mut found: BTreeSet<Arc<Labels>> = BTreeSet::new();
    for sel in sels {
        for matchers in sel {
            found.extend(st.reader.series(&matchers, start, end).await?);
        }
    }
    let mut warnings = Vec::new();
    let found = truncate(found.into_iter().collect::<Vec<_>>(), limit, &mut warnings);
    let data: Vec<BTreeMap<&str, &str>> = found.iter().map(|l| labels_json(l)).collect();
    Ok(success(data, warnings))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_parts(q.as_deref(), &headers, &body);
    let sels = selectors(&params)?;
    let (start, end) = time_range(&params)?;
    let limit = params.limit().map_err(ApiError::bad_data)?;
    let mut names: BTreeSet<String> = BTreeSet::new();
    if sels.is_empty() {
        names.extend(st.reader.label_names(&[], start, end).await?);
    }
    for sel in sels {
        for matchers in sel {
            names.extend(st.reader.label_names(&matchers, start, end).await?);
        }
    }
    let mut warnings = Vec::new();
    Ok(success(
        truncate(names.into_iter().collect(), limit, &mut warnings),
        warnings,
    ))
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::from_parts(q.as_deref(), &headers, &[]);
    // Prometheus accepts UTF-8 names escaped as "U__" + hex; plain names
    // must be valid label names.
    if !sightline_storage::labels::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sels = selectors(&params)?;
    let (start, end) = time_range(&params)?;
    let limit = params.limit().map_err(ApiError::bad_data)?;
    let mut values: BTreeSet<String> = BTreeSet::new();
    if sels.is_empty() {
        values.extend(st.reader.label_values(&name, &[], start, end).await?);
    }
    for sel in sels {
        for matchers in sel {
            values.extend(st.reader.label_values(&name, &matchers, start, end).await?);
        }
    }
    let mut warnings = Vec::new();
    Ok(success(
        truncate(values.into_iter().collect(), limit, &mut warnings),
        warnings,
    ))
}
