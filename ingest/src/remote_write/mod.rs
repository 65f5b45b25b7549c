//! Prometheus remote write 1.0 and 2.0 at `POST /api/v1/write`.
//!
//! Content negotiation follows the 2.0 specification: the `proto`
//! parameter of `Content-Type` selects the message; no parameter means 1.0.
//! Bodies are snappy block format.

pub mod decode;
pub mod proto;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use sightline_storage::{MetricMetadata, Sample, WriteBatch};

use crate::stats::{Protocol, RejectReason};
use crate::{IngestError, IngestState, Problems, StoreOutcome};

/// `proto` parameter value of remote write 1.0.
pub const PROTO_V1: &str = "prometheus.WriteRequest";
/// `proto` parameter value of remote write 2.0.
pub const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// Which message a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `prometheus.WriteRequest`.
    V1,
    /// `io.prometheus.write.v2.Request`.
    V2,
}

/// Reads the message version from `Content-Type` and checks
/// `Content-Encoding`; anything else is a 415.
pub fn negotiate(headers: &HeaderMap) -> Result<Version, IngestError> {
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    if let Some(enc) = encoding
        && !enc.is_empty()
        && enc != "snappy"
    {
        return Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {enc:?}: remote write bodies must be snappy-compressed (Content-Encoding: snappy)"
        )));
    }
    let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(Version::V1);
    };
    let ct = ct.to_str().unwrap_or("?");
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or("").to_ascii_lowercase();
    if media != "application/x-protobuf" {
        return Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Type {ct:?}: expected application/x-protobuf (remote write 1.0) or application/x-protobuf;proto={PROTO_V2}"
        )));
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("proto")
        {
            return match v.trim().trim_matches('"') {
                PROTO_V1 => Ok(Version::V1),
                PROTO_V2 => Ok(Version::V2),
                other => Err(IngestError::UnsupportedMediaType(format!(
                    "unsupported remote write message {other:?}: this server accepts {PROTO_V1} and {PROTO_V2}"
                ))),
            };
        }
    }
    Ok(Version::V1)
}

/// Decompresses a snappy block-format body within `max_decoded` bytes.
pub fn decompress(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, IngestError> {
    let mut out = vec![0; decompressed_len(body, max_decoded)?];
    snappy_into(body, &mut out)?;
    Ok(out)
}

fn decompressed_len(body: &[u8], max_decoded: usize) -> Result<usize, IngestError> {
    let len =
        snap::raw::decompress_len(body).map_err(|e| IngestError::BadRequest(format!("corrupt snappy body: {e}")))?;
    if len > max_decoded {
        return Err(IngestError::TooLarge(format!(
            "decompressed body would be {len} bytes, more than the limit of {max_decoded} (ingest.max_decoded_bytes)"
        )));
    }
    Ok(len)
}

fn snappy_into(body: &[u8], out: &mut [u8]) -> Result<(), IngestError> {
    snap::raw::Decoder::new()
        .decompress(body, out)
        .map(|_| ())
        .map_err(|e| IngestError::BadRequest(format!("corrupt snappy body: {e}")))
}

/// Bodies up to this size are decompressed into a buffer the thread keeps.
const KEPT_BUFFER_BYTES: usize = 16 << 20;

/// [`decompress`] into a buffer this thread keeps between requests, handed
/// to `f`: a fresh buffer per request came from fresh pages, a page fault
/// per 4 KiB of every body (2 % of the logs ingest's CPU).
pub fn with_decompressed<T>(
    body: &[u8],
    max_decoded: usize,
    f: impl FnOnce(&[u8]) -> Result<T, IngestError>,
) -> Result<T, IngestError> {
    thread_local! {
        static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let len = decompressed_len(body, max_decoded)?;
    // Taken, not borrowed: a nested call gets a buffer of its own.
    let mut buf = BUFFER.take();
    buf.clear();
    buf.resize(len, 0);
    let result = snappy_into(body, &mut buf).and_then(|()| f(&buf));
    if buf.capacity() <= KEPT_BUFFER_BYTES {
        BUFFER.set(buf);
    }
    result
}

/// Metric metadata found in a request: (metric name, metadata).
pub type FoundMetadata = Vec<(String, MetricMetadata)>;

/// Decodes a 1.0 request into `batch`, noting what cannot be stored and
/// collecting the metadata it carries into `metadata`.
pub fn convert_v1<'a>(
    raw: &'a [u8],
    batch: &mut WriteBatch<'a>,
    metadata: &mut FoundMetadata,
) -> Result<Problems, IngestError> {
    let extras = decode::decode_write_request(raw, batch)
        .map_err(|e| IngestError::BadRequest(format!("cannot decode prometheus.WriteRequest protobuf: {e}")))?;
    metadata.extend(extras.metadata);
    let mut problems = Problems::default();
    if let Some(i) = extras.first_histogram_series {
        problems.add(RejectReason::Unsupported, extras.histograms, || {
            format!("timeseries[{i}]: native histogram samples are not supported yet; send classic histograms")
        });
    }
    Ok(problems)
}

/// Converts a 2.0 request, resolving symbol references into `batch` and
/// collecting per-series metadata into `metadata`.
pub fn convert_v2<'a>(
    req: &'a proto::RequestV2,
    batch: &mut WriteBatch<'a>,
    metadata: &mut FoundMetadata,
) -> Result<Problems, IngestError> {
    if req.symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(IngestError::BadRequest(
            "remote write 2.0: symbols[0] must be the empty string".into(),
        ));
    }
    let mut problems = Problems::default();
    let sym = |r: u32| req.symbols.get(r as usize).map(String::as_str);
    for (i, ts) in req.timeseries.iter().enumerate() {
        if ts.labels_refs.len() % 2 != 0 {
            return Err(IngestError::BadRequest(format!(
                "remote write 2.0: timeseries[{i}] has an odd number of labels_refs ({})",
                ts.labels_refs.len()
            )));
        }
        let mut name = "";
        for pair in ts.labels_refs.chunks_exact(2) {
            match (sym(pair[0]), sym(pair[1])) {
                (Some(n), Some(v)) => {
                    if n == "__name__" {
                        name = v;
                    }
                    batch.push_label(n, v)
                }
                _ => {
                    batch.abandon_series();
                    return Err(IngestError::BadRequest(format!(
                        "remote write 2.0: timeseries[{i}] references symbol {} but the table has {} entries",
                        pair[0].max(pair[1]),
                        req.symbols.len()
                    )));
                }
            }
        }
        if let Some(md) = &ts.metadata
            && (md.r#type != 0 || md.help_ref != 0 || md.unit_ref != 0)
            && !name.is_empty()
        {
            metadata.push((
                name.to_string(),
                MetricMetadata {
                    metric_type: decode::metric_type_name(md.r#type).to_string(),
                    help: sym(md.help_ref).unwrap_or("").to_string(),
                    unit: sym(md.unit_ref).unwrap_or("").to_string(),
                },
            ));
        }
        if !ts.histograms.is_empty() {
            problems.add(RejectReason::Unsupported, ts.histograms.len() as u64, || {
                format!("timeseries[{i}]: native histogram samples are not supported yet; send classic histograms")
            });
        }
        for s in &ts.samples {
            // A sample's own start timestamp, else the series' created
            // timestamp of earlier 2.0 senders.
            let st = if s.start_timestamp != 0 {
                s.start_timestamp
            } else {
                ts.created_timestamp
            };
            batch.push_sample(Sample::with_start(s.timestamp, s.value, st));
        }
        batch.finish_series();
    }
    Ok(problems)
}

/// `POST /api/v1/write`.
pub async fn handle(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let version = negotiate(&headers);
    let protocol = match version {
        Ok(Version::V2) => Protocol::RemoteWriteV2,
        _ => Protocol::RemoteWriteV1,
    };
    let result = async {
        let version = version?;
        let body = body.map_err(|e| body_error(e, state.opts.max_request_bytes))?;
        let _permit = state.admit()?;
        let raw = decompress(&body, state.opts.max_decoded_bytes)?;
        let mut metadata = FoundMetadata::new();
        let outcome = match version {
            Version::V1 => {
                let mut batch = WriteBatch::with_capacity(2048, 12);
                let problems = convert_v1(&raw, &mut batch, &mut metadata)?;
                state.store(&batch, problems).await
            }
            Version::V2 => {
                let req = proto::RequestV2::decode(raw.as_slice()).map_err(|e| {
                    IngestError::BadRequest(format!("cannot decode io.prometheus.write.v2.Request protobuf: {e}"))
                })?;
                let mut batch = WriteBatch::with_capacity(req.timeseries.len(), 12);
                let problems = convert_v2(&req, &mut batch, &mut metadata)?;
                state.store(&batch, problems).await
            }
        };
        let store = state.db.metadata();
        for (name, md) in metadata {
            store.record(&name, md);
        }
        outcome
    }
    .await;
    state
        .stats
        .request(protocol, result.as_ref().is_ok_and(|o| o.problems.first().is_none()));
    respond(protocol, result)
}

/// Maps a body extraction failure: too large is 413, anything else 400.
pub fn body_error(e: BytesRejection, limit: usize) -> IngestError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        IngestError::TooLarge(format!(
            "request body is larger than the limit of {limit} bytes (ingest.max_request_bytes)"
        ))
    } else {
        IngestError::BadRequest(format!("cannot read request body: {e}"))
    }
}

fn respond(protocol: Protocol, result: Result<StoreOutcome, IngestError>) -> Response {
    let (mut resp, written) = match result {
        Err(e) => (e.into_response(), 0),
        Ok(out) => match out.problems.first() {
            Some(msg) => (
                (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response(),
                out.accepted,
            ),
            None => (StatusCode::NO_CONTENT.into_response(), out.accepted),
        },
    };
    if matches!(protocol, Protocol::RemoteWriteV2) {
        let h = resp.headers_mut();
        h.insert("X-Prometheus-Remote-Write-Samples-Written", HeaderValue::from(written));
        h.insert("X-Prometheus-Remote-Write-Histograms-Written", HeaderValue::from(0u64));
        h.insert("X-Prometheus-Remote-Write-Exemplars-Written", HeaderValue::from(0u64));
    }
    resp
}

#[cfg(test)]
mod tests;
