//! `GET /api/v1/export`: every stored sample of the matching series as
//! JSON lines, in the format VictoriaMetrics' export uses:
//! `{"metric":{…},"values":[…],"timestamps":[…]}`.
//!
//! Values are JSON numbers, printed so they parse back to the same bits;
//! values JSON cannot hold are strings: `"NaN"`, `"+Inf"`, `"-Inf"`, and
//! `"StaleNaN"` for a Prometheus staleness marker.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sightline_storage::SeriesData;
use sightline_storage::sample::is_stale_marker;

use super::ApiError;
use super::series_query::SeriesQuery;
use crate::ApiState;

/// The JSON form of one value.
pub fn export_value(v: f64) -> Value {
    if is_stale_marker(v) {
        Value::from("StaleNaN")
    } else if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("+Inf")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Inf")
    } else {
        Value::from(v)
    }
}

/// One JSON line for a series.
pub fn export_line(s: &SeriesData) -> String {
    let metric: BTreeMap<&str, &str> = s.labels.iter().map(|l| (l.name, l.value)).collect();
    let line = serde_json::json!({
        "metric": metric,
        "values": s.values.iter().map(|v| export_value(*v)).collect::<Vec<_>>(),
        "timestamps": s.timestamps,
    });
    line.to_string()
}

/// `GET|POST /api/v1/export`.
pub async fn export<R: sightline_storage::SeriesReader>(
    State(st): State<ApiState<R>>,
    q: SeriesQuery,
) -> Result<Response, ApiError> {
    if q.matcher_sets.is_empty() {
        return Err(ApiError::bad_data(
            "missing match[] parameter: say which series to export, e.g. match[]={__name__!=\"\"}",
        ));
    }
    let mut all: BTreeMap<std::sync::Arc<sightline_storage::Labels>, SeriesData> = BTreeMap::new();
    for matchers in &q.matcher_sets {
        for s in st.reader.select(matchers, q.start, q.end).await? {
            all.entry(s.labels.clone()).or_insert(s);
        }
    }
    let mut out = String::new();
    for s in all.values() {
        out.push_str(&export_line(s));
        out.push('\n');
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/stream+json"),
        )],
        out,
    )
        .into_response())
}
