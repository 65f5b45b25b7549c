//! Ingest self-metrics, rendered under `sightline_ingest_*`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why samples were refused at ingest (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The series' labels are invalid.
    InvalidSeries,
    /// Older than the out-of-order window or retention.
    TooOld,
    /// Too far in the future.
    TooNew,
    /// A different value is stored at the same timestamp.
    DuplicateTimestamp,
    /// A kind of data Sightline does not store yet (native histograms,
    /// exponential histograms, delta temporality).
    Unsupported,
}

impl RejectReason {
    /// All reasons, for rendering.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::InvalidSeries,
        RejectReason::TooOld,
        RejectReason::TooNew,
        RejectReason::DuplicateTimestamp,
        RejectReason::Unsupported,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidSeries => "invalid_series",
            RejectReason::TooOld => "too_old",
            RejectReason::TooNew => "too_new",
            RejectReason::DuplicateTimestamp => "duplicate_timestamp",
            RejectReason::Unsupported => "unsupported",
        }
    }
}

/// Counters kept by the ingest front doors.
#[derive(Debug, Default)]
pub struct IngestStats {
    rejected: [AtomicU64; 5],
    /// Samples acknowledged (stored or recognised as already stored).
    pub samples_accepted: AtomicU64,
    /// Write requests answered, by protocol: remote write 1, remote write 2, OTLP HTTP, OTLP gRPC.
    pub requests: [AtomicU64; 4],
    /// Write requests that failed (any non-2xx answer).
    pub requests_failed: AtomicU64,
}

/// Index into [`IngestStats::requests`].
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// Prometheus remote write 1.0.
    RemoteWriteV1 = 0,
    /// Prometheus remote write 2.0.
    RemoteWriteV2 = 1,
    /// OTLP over HTTP.
    OtlpHttp = 2,
    /// OTLP over gRPC.
    OtlpGrpc = 3,
}

impl Protocol {
    /// All protocols, for rendering.
    pub const ALL: [Protocol; 4] = [
        Protocol::RemoteWriteV1,
        Protocol::RemoteWriteV2,
        Protocol::OtlpHttp,
        Protocol::OtlpGrpc,
    ];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::RemoteWriteV1 => "remote_write_v1",
            Protocol::RemoteWriteV2 => "remote_write_v2",
            Protocol::OtlpHttp => "otlp_http",
            Protocol::OtlpGrpc => "otlp_grpc",
        }
    }
}

impl IngestStats {
    /// Counts `n` refused samples.
    pub fn reject(&self, reason: RejectReason, n: u64) {
        let i = RejectReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Refused samples so far for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        let i = RejectReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejected[i].load(Ordering::Relaxed)
    }

    /// Counts one request of `protocol`.
    pub fn request(&self, protocol: Protocol, ok: bool) {
        self.requests[protocol as usize].fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.requests_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
