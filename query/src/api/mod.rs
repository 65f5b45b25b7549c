//! The Prometheus HTTP API: response envelope, errors and routes.

mod efficiency;
mod export;
pub mod query;
mod series;
mod series_query;
pub mod status;

pub use series_query::SeriesQuery;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use sightline_storage::{SeriesReader, StorageError};

use crate::ApiState;

/// Prometheus' `errorType` values and their status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Bad parameters: 400.
    BadData,
    /// Query execution failed: 422.
    Execution,
    /// Timed out: 503.
    Timeout,
    /// Storage or server failure: 500.
    Internal,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
        }
    }
    fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API error, answered in Prometheus' JSON envelope.
#[derive(Debug)]
pub struct ApiError {
    /// The kind, deciding status and `errorType`.
    pub kind: ErrorType,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// A 400 `bad_data` error.
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BadMatcher(m) => ApiError::bad_data(m),
            StorageError::Unavailable(m) => ApiError {
                kind: ErrorType::Timeout,
                message: m,
            },
            other => ApiError {
                kind: ErrorType::Internal,
                message: other.to_string(),
            },
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: "error",
            error_type: self.kind.as_str(),
            error: &self.message,
        };
        (self.kind.status(), axum::Json(body)).into_response()
    }
}

#[derive(Serialize)]
struct SuccessBody<T: Serialize> {
    status: &'static str,
    data: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// A successful answer: `{"status":"success","data":…,"warnings":[…]}`.
pub fn success<T: Serialize>(data: T, warnings: Vec<String>) -> Response {
    axum::Json(SuccessBody {
        status: "success",
        data,
        warnings,
    })
    .into_response()
}

/// The request's view of the fleet: Thanos' `partial_response=false` asks
/// for a complete answer (an error when a site is missing); by default a
/// missing site is a warning.
pub fn site_scope(p: &crate::params::Params) -> Result<crate::fanout::SiteScope, ApiError> {
    match p.get("partial_response") {
        None | Some("") | Some("true") | Some("1") => Ok(crate::fanout::SiteScope::new(false)),
        Some("false") | Some("0") => Ok(crate::fanout::SiteScope::new(true)),
        Some(other) => Err(ApiError::bad_data(format!(
            "invalid parameter \"partial_response\": {other:?} (use true or false)"
        ))),
    }
}

/// The routes of the Prometheus API served by this crate.
pub fn router<R: SeriesReader>(state: ApiState<R>) -> Router {
    Router::new()
        .route("/api/v1/series", get(series::series::<R>).post(series::series::<R>))
        .route("/api/v1/labels", get(series::labels::<R>).post(series::labels::<R>))
        .route(
            "/api/v1/label/{name}/values",
            get(series::label_values::<R>).post(series::label_values::<R>),
        )
        .route("/api/v1/export", get(export::export::<R>).post(export::export::<R>))
        .route("/api/v1/query", get(query::query::<R>).post(query::query::<R>))
        .route(
            "/api/v1/query_range",
            get(query::query_range::<R>).post(query::query_range::<R>),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route(
            "/api/v1/efficiency",
            get(efficiency::efficiency::<R>).post(efficiency::efficiency::<R>),
        )
        .route("/api/v1/metadata", get(status::metadata::<R>))
        .route("/api/v1/status/tsdb", get(status::tsdb::<R>))
        .with_state(state)
}

#[cfg(test)]
mod tests;
