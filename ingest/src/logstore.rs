//! The shared back end of every log front door (Loki push, OTLP logs,
//! syslog, JSON lines): tenant checks, the per-tenant rate limit, and the
//! hand-over to log storage, which answers once the entries are durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use sightline_storage::logs::{DEFAULT_TENANT, LogDb, LogPush, LogPushReport};
use tokio::sync::Semaphore;

use crate::IngestError;

/// Limits of the log front doors (the storage limits, such as line size,
/// live in `LogLimits`).
#[derive(Debug, Clone)]
pub struct LogIngestOptions {
    /// Largest accepted request body (compressed), bytes.
    pub max_request_bytes: usize,
    /// Largest body after decompression, bytes.
    pub max_decoded_bytes: usize,
    /// Sustained bytes per second one tenant may push (0: no limit);
    /// Loki's `ingestion_rate_mb`.
    pub rate_bytes_per_sec: u64,
    /// Bytes a tenant may push at once above the rate; Loki's
    /// `ingestion_burst_size_mb`.
    pub burst_bytes: u64,
    /// Push requests processed at once; more are answered 429.
    pub max_inflight_requests: usize,
    /// OTLP resource attributes that become stream labels.
    pub otlp_stream_attributes: Vec<String>,
}

impl Default for LogIngestOptions {
    fn default() -> Self {
        LogIngestOptions {
            max_request_bytes: 32 << 20,
            max_decoded_bytes: 256 << 20,
            rate_bytes_per_sec: 64 << 20,
            burst_bytes: 128 << 20,
            max_inflight_requests: 64,
            otlp_stream_attributes: crate::otlp::logs::DEFAULT_STREAM_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Counters of the log front doors.
#[derive(Debug, Default)]
pub struct LogIngestStats {
    /// Push requests answered 2xx.
    pub requests_ok: AtomicU64,
    /// Push requests refused whole (bad body, rate limit, overload).
    pub requests_failed: AtomicU64,
    /// Entries refused for the rate limit.
    pub rate_limited_entries: AtomicU64,
}

/// Shared state of the log handlers.
#[derive(Clone)]
pub struct LogIngest {
    /// Where entries go.
    pub db: Arc<LogDb>,
    /// Limits.
    pub opts: Arc<LogIngestOptions>,
    /// Counters.
    pub stats: Arc<LogIngestStats>,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    inflight: Arc<Semaphore>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LogIngest {
    /// Log ingest writing to `db`.
    pub fn new(db: Arc<LogDb>, opts: LogIngestOptions) -> Self {
        LogIngest {
            db,
            inflight: Arc::new(Semaphore::new(opts.max_inflight_requests.max(1))),
            opts: Arc::new(opts),
            stats: Arc::new(LogIngestStats::default()),
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A permit for one request, or 429 when too many are running.
    pub fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, IngestError> {
        self.inflight.clone().try_acquire_owned().map_err(|_| {
            IngestError::TooManyRequests(format!(
                "more than {} log push requests in flight; retry later (logs.ingest.max_inflight_requests)",
                self.opts.max_inflight_requests
            ))
        })
    }

    /// Stores a push and waits until it is durable. A push over the
    /// tenant's rate is refused whole with 429; invalid entries are
    /// refused one by one (the report says why) while the rest is kept.
    pub async fn store(&self, push: LogPush) -> Result<LogPushReport, IngestError> {
        let lines: usize = push.streams.iter().map(|(_, e)| e.len()).sum();
        let bytes: u64 = push
            .streams
            .iter()
            .flat_map(|(_, e)| e.iter())
            .map(|e| e.size() as u64)
            .sum();
        if let Err(limit) = self.take_tokens(&push.tenant, bytes) {
            self.stats
                .rate_limited_entries
                .fetch_add(lines as u64, Ordering::Relaxed);
            return Err(IngestError::TooManyRequests(format!(
                "Ingestion rate limit exceeded for user {} (limit: {limit} bytes/sec) while attempting to ingest '{lines}' lines totaling '{bytes}' bytes, reduce log volume or raise logs.ingest.rate_bytes_per_sec",
                push.tenant
            )));
        }
        Ok(self.db.push(push).await?)
    }

    /// Takes `bytes` from the tenant's bucket; the rate on refusal.
    fn take_tokens(&self, tenant: &str, bytes: u64) -> Result<(), u64> {
        let rate = self.opts.rate_bytes_per_sec;
        if rate == 0 {
            return Ok(());
        }
        let burst = self.opts.burst_bytes.max(rate) as f64;
        let mut buckets = self.buckets.lock();
        let now = Instant::now();
        let b = buckets
            .entry(tenant.to_string())
            .or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate as f64).min(burst);
        b.at = now;
        if bytes as f64 > b.tokens {
            return Err(rate);
        }
        b.tokens -= bytes as f64;
        Ok(())
    }
}

/// The tenant named by `X-Scope-OrgID`, or Loki's single-tenant default.
pub fn tenant_from_headers(headers: &axum::http::HeaderMap) -> Result<String, IngestError> {
    tenant_of(headers.get("x-scope-orgid").map(|v| v.as_bytes()))
}

/// The tenant named by an `X-Scope-OrgID` value (an HTTP header or gRPC
/// metadata), checked; Loki's single-tenant default when there is none.
pub fn tenant_of(raw: Option<&[u8]>) -> Result<String, IngestError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_TENANT.to_string());
    };
    let t = std::str::from_utf8(raw)
        .map_err(|_| IngestError::BadRequest("X-Scope-OrgID is not valid text".into()))?
        .trim();
    check_tenant(t)?;
    Ok(t.to_string())
}

/// Checks a tenant id as Loki does: 1–150 characters from
/// `[a-zA-Z0-9!-_.*'()]`, not `.` or `..`.
pub fn check_tenant(t: &str) -> Result<(), IngestError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
    if t.is_empty() || t.len() > 150 || t == "." || t == ".." || !t.chars().all(ok_char) {
        return Err(IngestError::BadRequest(format!(
            "invalid tenant id {t:?} in X-Scope-OrgID: use 1-150 characters from a-z A-Z 0-9 ! - _ . * ' ( )"
        )));
    }
    Ok(())
}

/// The answer to a push whose entries were partly refused: 400 naming the
/// first problem and the count (the valid entries are stored, as in Loki).
pub fn partial_error(report: &LogPushReport) -> Option<IngestError> {
    let first = report.first_rejection.as_ref()?;
    Some(IngestError::BadRequest(format!(
        "{first} ({} entries refused, {} stored)",
        report.rejected, report.stored
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_checked() {
        assert!(check_tenant("team-a").is_ok());
        assert!(check_tenant("..").is_err());
        assert!(check_tenant("a/b").is_err());
        assert!(check_tenant(&"x".repeat(151)).is_err());
    }
}
