//! `GET|POST /api/v1/efficiency`: efficiency reports (see
//! [`crate::efficiency`]) over HTTP, the engine behind `sightline report
//! efficiency`.
//!
//! POST takes the report configuration as YAML or JSON (by
//! `Content-Type`); GET takes it as parameters (`work`, `resource`,
//! `work_name`, `resource_name`, `latency`, `step`, `confidence`,
//! `iterations`, `seed`, `title`, and `baseline.name`, `baseline.matchers`,
//! `baseline.start`, `baseline.end`, the same for `candidate`). The answer
//! is the report in Prometheus' envelope, or Markdown with `format=markdown`.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use sightline_storage::SeriesReader;

use super::query::query_error;
use super::{ApiError, ErrorType, success};
use crate::ApiState;
use crate::efficiency::{self, Cohort, EfficiencyError, Measure, ReportConfig, TimeSpec};
use crate::params::Params;

/// Largest configuration body accepted.
const MAX_CONFIG_BYTES: usize = 1 << 20;

/// `GET|POST /api/v1/efficiency`.
pub async fn efficiency<R: SeriesReader>(State(st): State<ApiState<R>>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let params = Params::from_parts(parts.uri.query(), &parts.headers, &[]);
    let cfg = if parts.method == Method::POST {
        let body = axum::body::to_bytes(body, MAX_CONFIG_BYTES)
            .await
            .map_err(|e| ApiError::bad_data(format!("cannot read the report configuration: {e}")))?;
        let json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        parse_body(&body, json)?
    } else {
        from_params(&params)?
    };
    let report = efficiency::run(&st.engine, st.reader.as_ref(), &cfg)
        .await
        .map_err(|e| match e {
            EfficiencyError::Config(m) => ApiError::bad_data(m),
            EfficiencyError::NotEnoughData(m) => ApiError {
                kind: ErrorType::Execution,
                message: m,
            },
            EfficiencyError::Query { cohort, what, source } => {
                let mut err = query_error(source);
                err.message = format!("cohort {cohort:?}, {what} query: {}", err.message);
                err
            }
        })?;
    match params.get("format") {
        Some("markdown") => Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report.to_markdown(),
        )
            .into_response()),
        None | Some("") | Some("json") => Ok(success(report, Vec::new())),
        Some(other) => Err(ApiError::bad_data(format!(
            "invalid parameter \"format\": {other:?} (use json or markdown)"
        ))),
    }
}

/// A configuration sent as YAML or JSON.
fn parse_body(body: &[u8], json: bool) -> Result<ReportConfig, ApiError> {
    let bad = |e: String| ApiError::bad_data(format!("invalid report configuration: {e}"));
    if json {
        return serde_json::from_slice(body).map_err(|e| bad(e.to_string()));
    }
    let text = std::str::from_utf8(body).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))
}

/// A configuration given as request parameters.
fn from_params(p: &Params) -> Result<ReportConfig, ApiError> {
    let required = |name: &str| {
        p.get(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_data(format!("missing parameter {name:?}")))
    };
    let optional = |name: &str| p.get(name).unwrap_or("").to_string();
    let number = |name: &str, default: f64| match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .map_err(|_| ApiError::bad_data(format!("invalid parameter {name:?}: {v:?} is not a number"))),
    };
    let cohort = |side: &str| -> Result<Cohort, ApiError> {
        Ok(Cohort {
            name: p.get(&format!("{side}.name")).unwrap_or(side).to_string(),
            matchers: optional(&format!("{side}.matchers")),
            start: TimeSpec::Text(required(&format!("{side}.start"))?),
            end: TimeSpec::Text(required(&format!("{side}.end"))?),
        })
    };
    Ok(ReportConfig {
        title: optional("title"),
        work: Measure {
            name: optional("work_name"),
            query: required("work")?,
        },
        resource: Measure {
            name: optional("resource_name"),
            query: required("resource")?,
        },
        latency: p.get("latency").filter(|v| !v.is_empty()).map(str::to_string),
        step: p.get("step").filter(|v| !v.is_empty()).unwrap_or("5m").to_string(),
        confidence: number("confidence", 0.95)?,
        iterations: number("iterations", 2000.0)? as usize,
        seed: number("seed", 1.0)? as u64,
        baseline: cohort("baseline")?,
        candidate: cohort("candidate")?,
    })
}
