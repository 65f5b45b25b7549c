//! Loki's push API, `POST /loki/api/v1/push`: protobuf (snappy block
//! format) or JSON bodies, optionally gzip-compressed, `X-Scope-OrgID` as
//! the tenant. Answers 204 once every stored entry is durable; 400 naming
//! the first refused entry when some were refused (the rest is stored,
//! as Loki does); 429/503 with `Retry-After` under overload.

pub mod labels;
pub mod proto;
mod wire;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sightline_storage::logs::{LogEntry, LogPush};

use crate::IngestError;
use crate::logstore::{LogIngest, partial_error, tenant_from_headers};
use crate::remote_write::{body_error, decompress, with_decompressed};

/// Handles one push request.
pub async fn push(State(state): State<LogIngest>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let body = body.map_err(|e| body_error(e, state.opts.max_request_bytes))?;
        let _permit = state.admit()?;
        let tenant = tenant_from_headers(&headers)?;
        let streams = decode(&headers, &body, state.opts.max_decoded_bytes)?;
        let report = state.store(LogPush { tenant, streams }).await?;
        match partial_error(&report) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    .await;
    match result {
        Ok(()) => {
            state
                .stats
                .requests_ok
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            state
                .stats
                .requests_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            e.into_response()
        }
    }
}

/// Stream label pairs as received and their entries.
pub type DecodedStreams = Vec<(Vec<(String, String)>, Vec<LogEntry>)>;

/// Decodes a push body by its Content-Type and Content-Encoding.
pub fn decode(headers: &HeaderMap, body: &[u8], max_decoded: usize) -> Result<DecodedStreams, IngestError> {
    let ct = header_value(headers, header::CONTENT_TYPE);
    let enc = header_value(headers, header::CONTENT_ENCODING);
    let body = match enc.as_str() {
        "" | "identity" => std::borrow::Cow::Borrowed(body),
        "gzip" => std::borrow::Cow::Owned(crate::gunzip(body, max_decoded)?),
        "snappy" if ct != "application/x-protobuf" => std::borrow::Cow::Owned(decompress(body, max_decoded)?),
        "snappy" => std::borrow::Cow::Borrowed(body),
        other => {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding {other:?} for a Loki push: use gzip or none"
            )));
        }
    };
    match ct.as_str() {
        "application/x-protobuf" | "application/protobuf" => with_decompressed(&body, max_decoded, decode_protobuf),
        "application/json" | "" => decode_json(&body),
        other => Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Type {other:?} for a Loki push: use application/x-protobuf (snappy) or application/json"
        ))),
    }
}

/// A header's media value: before any `;` parameters, trimmed, lowercase
/// ("" when absent).
pub(crate) fn header_value(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a `logproto.PushRequest`.
pub fn decode_protobuf(raw: &[u8]) -> Result<DecodedStreams, IngestError> {
    let streams =
        wire::decode_push(raw).map_err(|e| IngestError::BadRequest(format!("corrupt protobuf push request: {e}")))?;
    streams
        .into_iter()
        .map(|(labels, entries)| {
            Ok((
                labels::parse_label_string(labels).map_err(IngestError::BadRequest)?,
                entries,
            ))
        })
        .collect()
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

/// Decodes Loki's JSON push body: `{"streams":[{"stream":{…},
/// "values":[["<ns>","line"{, {metadata}}]]}]}`.
pub fn decode_json(raw: &[u8]) -> Result<DecodedStreams, IngestError> {
    let req: JsonPush =
        serde_json::from_slice(raw).map_err(|e| IngestError::BadRequest(format!("invalid JSON push request: {e}")))?;
    let mut out = Vec::with_capacity(req.streams.len());
    for (si, s) in req.streams.into_iter().enumerate() {
        let mut entries = Vec::with_capacity(s.values.len());
        for (vi, v) in s.values.into_iter().enumerate() {
            let bad = |what: &str| IngestError::BadRequest(format!("streams[{si}].values[{vi}]: {what}"));
            if !(2..=3).contains(&v.len()) {
                return Err(bad(
                    "expected [\"<unix nanoseconds>\", \"<line>\"] or with a third element of structured metadata",
                ));
            }
            let ts = match &v[0] {
                serde_json::Value::String(s) => s.parse::<i64>().ok(),
                serde_json::Value::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| bad("timestamp must be Unix nanoseconds as a string"))?;
            let line = v[1].as_str().ok_or_else(|| bad("line must be a string"))?.to_string();
            let mut metadata = Vec::new();
            if let Some(m) = v.get(2) {
                let obj = m
                    .as_object()
                    .ok_or_else(|| bad("structured metadata must be an object"))?;
                for (k, val) in obj {
                    let val = val
                        .as_str()
                        .ok_or_else(|| bad(&format!("structured metadata {k:?} must be a string")))?;
                    metadata.push((k.clone(), val.to_string()));
                }
            }
            entries.push(LogEntry { ts, line, metadata });
        }
        out.push((s.stream.into_iter().collect(), entries));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn json_bodies_decode_with_metadata_and_errors_point_at_the_value() {
        let body = br#"{"streams":[{"stream":{"app":"mail"},"values":[["1700000000000000001","hello",{"trace_id":"t1"}],["1700000000000000002","bye"]]}]}"#;
        let got = decode_json(body).expect("decodes");
        assert_eq!(got[0].0, vec![("app".to_string(), "mail".to_string())]);
        assert_eq!(got[0].1[0].metadata, vec![("trace_id".to_string(), "t1".to_string())]);
        assert_eq!(got[0].1[1].ts, 1_700_000_000_000_000_002);
        let e = decode_json(br#"{"streams":[{"stream":{"a":"b"},"values":[["x","l"]]}]}"#).unwrap_err();
        assert!(e.to_string().contains("streams[0].values[0]: timestamp"), "{e}");
        assert!(decode_json(b"{").is_err());
    }

    #[test]
    fn protobuf_bodies_decode() {
        let req = proto::PushRequest {
            streams: vec![proto::StreamAdapter {
                labels: r#"{app="mail"}"#.into(),
                entries: vec![proto::EntryAdapter {
                    timestamp: Some(proto::Timestamp { seconds: 2, nanos: 5 }),
                    line: "l".into(),
                    structured_metadata: vec![proto::LabelPairAdapter {
                        name: "k".into(),
                        value: "v".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let got = decode_protobuf(&req.encode_to_vec()).expect("decodes");
        assert_eq!(got[0].1[0].ts, 2_000_000_005);
        assert_eq!(got[0].1[0].metadata, vec![("k".to_string(), "v".to_string())]);
        assert!(decode_protobuf(b"\xff\xff").is_err());
    }
}
