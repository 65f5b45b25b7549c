//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`,
//! `/api/v1/query_exemplars`: PromQL over HTTP in Prometheus' exact
//! response format.

use std::fmt::Write as _;

use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sightline_storage::{SeriesReader, now_ms};

use super::{ApiError, ErrorType, success};
use crate::ApiState;
use crate::params::{Params, parse_duration_ms, parse_time};
use crate::promql::value::{LabelSet, Point, QueryValue};
use crate::promql::{QueryError, QueryResult};

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 4 << 20;

/// Most points per series a range query may ask for, as Prometheus.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// All request parameters (query string plus form body).
pub struct AllParams(pub Params);

impl<S: Send + Sync> FromRequest<S> for AllParams {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|e| ApiError::bad_data(format!("cannot read request body: {e}")))?;
        Ok(AllParams(Params::from_parts(parts.uri.query(), &parts.headers, &body)))
    }
}

fn invalid(param: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_data(format!("invalid parameter {param:?}: {msg}"))
}

fn query_param(p: &Params) -> Result<String, ApiError> {
    match p.get("query") {
        Some(q) if !q.trim().is_empty() => Ok(q.to_string()),
        _ => Err(invalid("query", "query must not be empty")),
    }
}

fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| invalid(name, format!("cannot parse {v:?} to a valid timestamp"))),
    }
}

fn limit_param(p: &Params) -> Result<usize, ApiError> {
    p.limit().map_err(ApiError::bad_data)
}

/// Maps an engine error onto Prometheus' error types.
pub(super) fn query_error(e: QueryError) -> ApiError {
    let kind = match &e {
        QueryError::Parse(_) => {
            return invalid("query", e);
        }
        QueryError::Execution(_) | QueryError::TooManySamples(_) => ErrorType::Execution,
        QueryError::Timeout(_) | QueryError::Storage(sightline_storage::StorageError::Unavailable(_)) => {
            ErrorType::Timeout
        }
        QueryError::Storage(_) => ErrorType::Internal,
    };
    ApiError {
        kind,
        message: e.to_string(),
    }
}

/// `GET|POST /api/v1/query`.
pub async fn query<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    AllParams(p): AllParams,
) -> Result<Response, ApiError> {
    let q = query_param(&p)?;
    let t = time_param(&p, "time", now_ms())?;
    let limit = limit_param(&p)?;
    let scope = super::site_scope(&p)?;
    let res = with_timeout(&p, scope.run(st.engine.instant(st.reader.as_ref(), &q, t))).await?;
    Ok(answer(with_site_warnings(res, &scope), limit))
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range<R: SeriesReader>(
    State(st): State<ApiState<R>>,
    AllParams(p): AllParams,
) -> Result<Response, ApiError> {
    let q = query_param(&p)?;
    let start = match p.get("start") {
        None | Some("") => return Err(invalid("start", "missing")),
        Some(_) => time_param(&p, "start", 0)?,
    };
    let end = match p.get("end") {
        None | Some("") => return Err(invalid("end", "missing")),
        Some(_) => time_param(&p, "end", 0)?,
    };
    if end < start {
        return Err(invalid("end", "end timestamp must not be before start time"));
    }
    let step = match p.get("step") {
        None | Some("") => return Err(invalid("step", "missing")),
        Some(s) => {
            parse_duration_ms(s).ok_or_else(|| invalid("step", format!("cannot parse {s:?} to a valid duration")))?
        }
    };
    if step <= 0 {
        return Err(invalid(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let limit = limit_param(&p)?;
    let scope = super::site_scope(&p)?;
    let res = with_timeout(&p, scope.run(st.engine.range(st.reader.as_ref(), &q, start, end, step))).await?;
    Ok(answer(with_site_warnings(res, &scope), limit))
}

/// The result with the warnings of sites that did not answer first.
fn with_site_warnings(mut res: QueryResult, scope: &crate::fanout::SiteScope) -> QueryResult {
    let mut warnings = scope.warnings();
    warnings.append(&mut res.warnings);
    res.warnings = warnings;
    res
}

/// Applies the request's own `timeout` parameter (the engine's limit
/// still applies when it is longer).
async fn with_timeout(
    p: &Params,
    fut: impl Future<Output = Result<QueryResult, QueryError>>,
) -> Result<QueryResult, ApiError> {
    match p.get("timeout") {
        None | Some("") => fut.await.map_err(query_error),
        Some(t) => {
            let ms = parse_duration_ms(t)
                .filter(|ms| *ms > 0)
                .ok_or_else(|| invalid("timeout", format!("cannot parse {t:?} to a valid duration")))?;
            match tokio::time::timeout(std::time::Duration::from_millis(ms as u64), fut).await {
                Ok(r) => r.map_err(query_error),
                Err(_) => Err(query_error(QueryError::Timeout("query execution"))),
            }
        }
    }
}

/// Writes the success envelope by hand: large matrices serialise several
/// times faster than through generic JSON values.
fn answer(mut res: QueryResult, limit: usize) -> Response {
    if limit > 0 {
        let truncated = match &mut res.value {
            QueryValue::Vector(v) if v.len() > limit => {
                v.truncate(limit);
                true
            }
            QueryValue::Matrix(m) if m.len() > limit => {
                m.truncate(limit);
                true
            }
            _ => false,
        };
        if truncated {
            res.warnings.push("results truncated due to limit".into());
        }
    }
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"status":"success","data":{"resultType":""#);
    out.push_str(res.value.type_name());
    out.push_str(r#"","result":"#);
    write_value(&mut out, &res.value);
    out.push('}');
    for (key, list) in [("warnings", &res.warnings), ("infos", &res.infos)] {
        if !list.is_empty() {
            let _ = write!(
                out,
                r#","{key}":{}"#,
                serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
            );
        }
    }
    out.push('}');
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// A JSON string literal.
fn json_str(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

/// Milliseconds as Prometheus prints them: seconds with up to three
/// decimals.
pub fn write_timestamp(out: &mut String, t: i64) {
    if t < 0 {
        out.push('-');
    }
    let t = t.unsigned_abs();
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(t / 1000));
    let frac = t % 1000;
    if frac != 0 {
        out.push('.');
        if frac < 100 {
            out.push('0');
        }
        if frac < 10 {
            out.push('0');
        }
        out.push_str(buf.format(frac));
    }
}

fn write_point(out: &mut String, p: &Point) {
    out.push('[');
    write_timestamp(out, p.t);
    out.push_str(",\"");
    crate::promql::value::push_float(out, p.v);
    out.push_str("\"]");
}

fn write_labels(out: &mut String, l: &LabelSet) {
    out.push('{');
    for (i, (n, v)) in l.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, n);
        out.push(':');
        json_str(out, v);
    }
    out.push('}');
}

fn write_value(out: &mut String, v: &QueryValue) {
    match v {
        QueryValue::Scalar(p) => write_point(out, p),
        QueryValue::String(t, s) => {
            out.push('[');
            write_timestamp(out, *t);
            out.push(',');
            json_str(out, s);
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push('[');
            for (i, (l, p)) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, l);
                out.push_str(r#","value":"#);
                write_point(out, p);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push('[');
            for (i, (l, points)) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, l);
                out.push_str(r#","values":["#);
                for (j, p) in points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(out, p);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
}

/// `GET|POST /api/v1/format_query`: the query pretty-printed.
pub async fn format_query(AllParams(p): AllParams) -> Result<Response, ApiError> {
    let q = query_param(&p)?;
    let expr = crate::promql::parse(&q).map_err(query_error)?;
    Ok(success(expr.prettify(), Vec::new()))
}

/// `GET|POST /api/v1/query_exemplars`: Sightline keeps no exemplars yet,
/// so every valid request answers with an empty list, as Prometheus does
/// for series without exemplars.
pub async fn query_exemplars(AllParams(p): AllParams) -> Result<Response, ApiError> {
    let q = query_param(&p)?;
    crate::promql::parse(&q).map_err(query_error)?;
    let start = time_param(&p, "start", crate::params::MIN_TIME)?;
    let end = time_param(&p, "end", crate::params::MAX_TIME)?;
    if end < start {
        return Err(invalid("end", "end timestamp must not be before start time"));
    }
    Ok(success(Vec::<()>::new(), Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_prometheus() {
        let mut s = String::new();
        write_timestamp(&mut s, 1_435_781_451_781);
        s.push(' ');
        write_timestamp(&mut s, 1000);
        s.push(' ');
        write_timestamp(&mut s, 1005);
        s.push(' ');
        write_timestamp(&mut s, -1500);
        assert_eq!(s, "1435781451.781 1 1.005 -1.500");
    }
}
