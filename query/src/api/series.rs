//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use sightline_storage::{Labels, SeriesReader};

use super::series_query::SeriesQuery;
use super::{ApiError, success};
use crate::ApiState;

fn labels_json(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter().map(|l| (l.name, l.value)).collect()
}

/// `GET|POST /api/v1/series`.
pub async fn series<R: SeriesReader>(State(st): State<ApiState<R>>, q: SeriesQuery) -> Result<Response, ApiError> {
    if q.matcher_sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let mut found: BTreeSet<Arc<Labels>> = BTreeSet::new();
    for matchers in &q.matcher_sets {
        found.extend(q.scope.run(st.reader.series(matchers, q.start, q.end)).await?);
    }
    let mut warnings = q.scope.warnings();
    let found = q.truncate(found.into_iter().collect(), &mut warnings);
    let data: Vec<BTreeMap<&str, &str>> = found.iter().map(|l| labels_json(l)).collect();
    Ok(success(data, warnings))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels<R: SeriesReader>(State(st): State<ApiState<R>>, q: SeriesQuery) -> Result<Response, ApiError> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for matchers in q.sets_or_all() {
        names.extend(q.scope.run(st.reader.label_names(&matchers, q.start, q.end)).await?);
    }
    let mut warnings = q.scope.warnings();
    let names = q.truncate(names.into_iter().collect(), &mut warnings);
    Ok(success(names, warnings))
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    Path(name): Path<String>,
    q: SeriesQuery,
) -> Result<Response, ApiError> {
    if !sightline_storage::labels::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let mut values: BTreeSet<String> = BTreeSet::new();
    for matchers in q.sets_or_all() {
        values.extend(
            q.scope
                .run(st.reader.label_values(&name, &matchers, q.start, q.end))
                .await?,
        );
    }
    let mut warnings = q.scope.warnings();
    let values = q.truncate(values.into_iter().collect(), &mut warnings);
    Ok(success(values, warnings))
}
