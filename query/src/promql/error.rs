//! What can go wrong running a PromQL query, mapped onto Prometheus'
//! API error types.

use sightline_storage::StorageError;

/// A failed query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query text does not parse or does not type-check (400).
    #[error("{0}")]
    Parse(String),
    /// The query parsed but cannot be evaluated (422).
    #[error("{0}")]
    Execution(String),
    /// The query ran longer than the configured timeout (503).
    #[error("query timed out in {0}; the limit is query.timeout in the configuration")]
    Timeout(&'static str),
    /// The query would read more samples than allowed (422).
    #[error(
        "query processing would load too many samples into memory in query execution: \
         more than {0} samples (query.max_samples); narrow the selector or the time range"
    )]
    TooManySamples(usize),
    /// Storage failed underneath (500).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// Shorthand for a failed evaluation with a message.
pub(crate) fn exec_err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError::Execution(msg.into()))
}
