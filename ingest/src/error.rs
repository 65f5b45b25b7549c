//! The ingest crate's error type and its single mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sightline_storage::StorageError;

/// Seconds a client is asked to wait before retrying after overload.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Everything that can make a write request fail.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Content-Type or Content-Encoding the endpoint does not speak.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body could not be decoded, or some of its data was invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many concurrent writes; retry later.
    #[error("{0}")]
    TooManyRequests(String),
    /// Storage cannot take more right now, or is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed; the data was not acknowledged.
    #[error("{0}")]
    Internal(String),
}

impl IngestError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status for the same failure.
    pub fn to_grpc(&self) -> tonic::Status {
        match self {
            IngestError::UnsupportedMediaType(m) | IngestError::BadRequest(m) => tonic::Status::invalid_argument(m),
            IngestError::TooLarge(m) => tonic::Status::resource_exhausted(m),
            IngestError::TooManyRequests(m) | IngestError::Unavailable(m) => tonic::Status::unavailable(m),
            IngestError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

impl From<StorageError> for IngestError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Overloaded(_) | StorageError::ShuttingDown => IngestError::Unavailable(e.to_string()),
            other => IngestError::Internal(format!("storage failed, nothing was acknowledged: {other}")),
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (status, format!("{self}\n")).into_response();
        if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        resp
    }
}
