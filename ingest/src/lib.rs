//! Sightline ingest: the protocol front doors for metrics and logs.
//!
//! - Prometheus remote write 1.0 and 2.0 at `POST /api/v1/write`
//! - OTLP metrics over HTTP (`POST /v1/metrics`, protobuf or JSON) and gRPC
//! - Loki push at `POST /loki/api/v1/push` (protobuf or JSON), through
//!   [`logstore::LogIngest`] into log storage
//!
//! Every door decodes, validates and converts its input to
//! [`SeriesSamples`], then hands it to [`IngestState::store`], which writes
//! to storage and answers only once the data is durable.

#![warn(missing_docs)]

pub mod agent;
pub mod error;
pub mod jsonline;
pub mod logstore;
pub mod loki;
pub mod otlp;
pub mod remote_write;
pub mod scrape;
pub mod ship;
pub mod stats;
pub mod syslog;
#[cfg(test)]
mod testutil;
mod wire;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use sightline_storage::{AppendReport, Db, LabelLimits, Rejection, WriteBatch};
use tokio::sync::Semaphore;

pub use error::IngestError;
use stats::{IngestStats, RejectReason};

/// Limits and options of the ingest tier.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Largest accepted request body (compressed), in bytes.
    pub max_request_bytes: usize,
    /// Largest accepted body after decompression, in bytes.
    pub max_decoded_bytes: usize,
    /// Write requests processed at once; more are answered 429.
    pub max_inflight_requests: usize,
    /// Label limits applied to every new series (enforced by storage;
    /// kept here so the config has one place for ingest limits).
    pub label_limits: LabelLimits,
    /// OTLP translation options.
    pub otlp: otlp::OtlpOptions,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_request_bytes: 32 << 20,
            max_decoded_bytes: 256 << 20,
            max_inflight_requests: 64,
            label_limits: LabelLimits::default(),
            otlp: otlp::OtlpOptions::default(),
        }
    }
}

/// Shared state of the ingest handlers.
#[derive(Clone)]
pub struct IngestState {
    /// Where samples go.
    pub db: Db,
    /// Limits and options.
    pub opts: Arc<IngestOptions>,
    /// Self-metrics.
    pub stats: Arc<IngestStats>,
    inflight: Arc<Semaphore>,
}

/// Refused data: counts per reason and the first message, which names the
/// offending series.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    first: Option<String>,
    counts: [u64; RejectReason::ALL.len()],
}

impl Problems {
    /// Records `n` refused samples; `message` is built only for the first.
    pub fn add(&mut self, reason: RejectReason, n: u64, message: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        let i = RejectReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.counts[i] += n;
        if self.first.is_none() {
            self.first = Some(message());
        }
    }

    /// The first problem, if any.
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    /// Total refused samples.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Refused samples for one reason.
    pub fn count(&self, reason: RejectReason) -> u64 {
        let i = RejectReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.counts[i]
    }
}

/// What a store call achieved.
#[derive(Debug, Default)]
pub struct StoreOutcome {
    /// Samples now durably stored (new ones plus exact duplicates of
    /// stored ones, which a retrying client must see as written).
    pub accepted: u64,
    /// Everything refused, from conversion and from storage.
    pub problems: Problems,
}

impl IngestState {
    /// Ingest state writing to `db`.
    pub fn new(db: Db, opts: IngestOptions) -> Self {
        let inflight = Arc::new(Semaphore::new(opts.max_inflight_requests.max(1)));
        IngestState {
            db,
            opts: Arc::new(opts),
            stats: Arc::new(IngestStats::default()),
            inflight,
        }
    }

    /// A permit for one write request, or 429 when too many are running.
    pub fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, IngestError> {
        self.inflight.clone().try_acquire_owned().map_err(|_| {
            IngestError::TooManyRequests(format!(
                "more than {} write requests in flight; retry later (ingest.max_inflight_requests)",
                self.opts.max_inflight_requests
            ))
        })
    }

    /// Writes a batch and returns once it is durable. `problems` holds
    /// what the decoder already refused; storage adds what it refuses.
    pub async fn store(&self, batch: &WriteBatch<'_>, mut problems: Problems) -> Result<StoreOutcome, IngestError> {
        let report = if batch.is_empty() {
            AppendReport::default()
        } else {
            let report = self.db.append(batch).await?;
            // Storage names the first refused sample; the message goes with
            // whichever reason it belongs to.
            let first = report.first_rejection.as_ref().map(|(i, why)| match why {
                Rejection::InvalidLabels(e) => format!("invalid series {}: {e}", batch.describe(*i)),
                other => format!("series {}: {other}", batch.describe(*i)),
            });
            for (reason, n) in [
                (RejectReason::InvalidSeries, report.invalid),
                (RejectReason::TooOld, report.too_old),
                (RejectReason::TooNew, report.too_new),
                (RejectReason::DuplicateTimestamp, report.conflicts),
            ] {
                problems.add(reason, n, || first.clone().unwrap_or_default());
            }
            report
        };
        for r in RejectReason::ALL {
            self.stats.reject(r, problems.count(r));
        }
        let accepted = report.stored + report.duplicates;
        self.stats.samples_accepted.fetch_add(accepted, Ordering::Relaxed);
        Ok(StoreOutcome { accepted, problems })
    }
}

/// Decompresses a gzip body within `max_decoded` bytes (every front door
/// that accepts `Content-Encoding: gzip`).
pub fn gunzip(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, IngestError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(max_decoded as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::BadRequest(format!("corrupt gzip body: {e}")))?;
    if out.len() > max_decoded {
        return Err(IngestError::TooLarge(format!(
            "decompressed body is more than the limit of {max_decoded} bytes"
        )));
    }
    Ok(out)
}

/// The HTTP routes of the log front doors (Loki push).
pub fn logs_router(state: logstore::LogIngest) -> Router {
    let limit = state.opts.max_request_bytes;
    Router::new()
        .route("/loki/api/v1/push", post(loki::push))
        .route("/v1/logs", post(otlp::logs::handle_http))
        .route("/insert/jsonline", post(jsonline::push))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The HTTP routes of the ingest tier (remote write, OTLP HTTP).
pub fn router(state: IngestState) -> Router {
    let limit = state.opts.max_request_bytes;
    Router::new()
        .route("/api/v1/write", post(remote_write::handle))
        .route("/v1/metrics", post(otlp::handle_http))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
