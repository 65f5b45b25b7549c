//! JSON lines over HTTP, `POST /insert/jsonline`: one JSON object per
//! line, as Fluent Bit (`format json_lines`), Vector (`codec: json`,
//! newline-delimited framing) and VictoriaLogs' clients send them.
//!
//! Each object becomes one entry. Which fields mean what is chosen by
//! query parameters, with defaults that fit the common shippers:
//! - `_msg_field` (default `_msg,message,msg,log`): the first of these
//!   present is the line; without any, the whole object is the line;
//! - `_time_field` (default `_time,timestamp,time,date,@timestamp`): an
//!   RFC 3339 string or a Unix time number in s, ms, µs or ns (told apart
//!   by size); without any, the time of arrival;
//! - `_stream_fields` (comma-separated, default none): fields whose values
//!   are the stream labels. A stream without labels is named as Loki 3
//!   names one: `service_name` from the first of `service`, `app`,
//!   `application`, `name`, `container`, `component`, `job` present, else
//!   `unknown_service`.
//!
//! Every other field is structured metadata; nested objects are flattened
//! with `_` (`{"http":{"status":200}}` gives `http_status="200"`) and
//! names made valid label names. Lines that are not JSON objects are
//! refused one by one (400 naming the first and the count) while the
//! others are stored, as the Loki push does.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use sightline_storage::logs::{LogEntry, LogPush, now_ns};

use crate::IngestError;
use crate::logstore::{LogIngest, tenant_from_headers};
use crate::remote_write::body_error;

/// The query parameters of a JSON-lines push.
#[derive(Debug, Default, Deserialize)]
pub struct JsonLineParams {
    /// Candidate names of the message field, comma-separated.
    #[serde(rename = "_msg_field")]
    pub msg_field: Option<String>,
    /// Candidate names of the time field, comma-separated.
    #[serde(rename = "_time_field")]
    pub time_field: Option<String>,
    /// Fields that are stream labels, comma-separated.
    #[serde(rename = "_stream_fields")]
    pub stream_fields: Option<String>,
}

const DEFAULT_MSG_FIELDS: &str = "_msg,message,msg,log";
const DEFAULT_TIME_FIELDS: &str = "_time,timestamp,time,date,@timestamp";
/// Where Loki 3 looks for a service name when a stream has none.
const SERVICE_NAME_SOURCES: [&str; 7] = ["service", "app", "application", "name", "container", "component", "job"];

/// Handles one JSON-lines push.
pub async fn push(
    State(state): State<LogIngest>,
    Query(params): Query<JsonLineParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let body = body.map_err(|e| body_error(e, state.opts.max_request_bytes))?;
        let _permit = state.admit()?;
        let tenant = tenant_from_headers(&headers)?;
        let body = match crate::loki::header_value(&headers, header::CONTENT_ENCODING).as_str() {
            "" | "identity" => std::borrow::Cow::Borrowed(&body[..]),
            "gzip" => std::borrow::Cow::Owned(crate::gunzip(&body, state.opts.max_decoded_bytes)?),
            other => {
                return Err(IngestError::UnsupportedMediaType(format!(
                    "unsupported Content-Encoding {other:?} for JSON lines: use gzip or none"
                )));
            }
        };
        let now = now_ns();
        let decoded = decode(&body, &params, now)?;
        let report = state
            .store(LogPush {
                tenant,
                streams: decoded.streams,
            })
            .await?;
        let refused = decoded.refused + report.rejected as usize;
        let first = decoded.first_error.or(report.first_rejection);
        match first {
            Some(first) => Err(IngestError::BadRequest(format!(
                "{first} ({refused} lines refused, {} stored)",
                report.stored
            ))),
            None => Ok(()),
        }
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A decoded body: streams ready to store, and the lines refused.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Stream label pairs and their entries.
    pub streams: crate::loki::DecodedStreams,
    /// Lines that were not JSON objects or had a bad time.
    pub refused: usize,
    /// Why the first refused line was refused.
    pub first_error: Option<String>,
}

/// Turns a body of JSON lines into streams; `now` (ns) is the time of
/// lines without one.
pub fn decode(body: &[u8], params: &JsonLineParams, now: i64) -> Result<Decoded, IngestError> {
    let text =
        std::str::from_utf8(body).map_err(|e| IngestError::BadRequest(format!("JSON lines body is not UTF-8: {e}")))?;
    let split = |s: &Option<String>, default: &'static str| -> Vec<String> {
        s.as_deref()
            .unwrap_or(default)
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect()
    };
    let msg_fields = split(&params.msg_field, DEFAULT_MSG_FIELDS);
    let time_fields = split(&params.time_field, DEFAULT_TIME_FIELDS);
    let stream_fields = split(&params.stream_fields, "");
    let mut streams: BTreeMap<Vec<(String, String)>, Vec<LogEntry>> = BTreeMap::new();
    let mut out = Decoded::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match decode_line(line, &msg_fields, &time_fields, &stream_fields, now) {
            Ok((labels, entry)) => streams.entry(labels).or_default().push(entry),
            Err(e) => {
                out.refused += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(format!("line {}: {e}", n + 1));
                }
            }
        }
    }
    out.streams = streams.into_iter().collect();
    Ok(out)
}

fn decode_line(
    line: &str,
    msg_fields: &[String],
    time_fields: &[String],
    stream_fields: &[String],
    now: i64,
) -> Result<(Vec<(String, String)>, LogEntry), String> {
    let mut obj: Map<String, Value> = match serde_json::from_str(line) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("invalid JSON: {e}")),
    };
    let ts = match time_fields.iter().find_map(|f| obj.remove(f)) {
        None => now,
        Some(v) => parse_time(&v)?,
    };
    let text = match msg_fields.iter().find_map(|f| obj.remove(f)) {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => Value::Object(obj.clone()).to_string(),
    };
    let mut labels = Vec::new();
    for f in stream_fields {
        if let Some(v) = obj.remove(f) {
            let v = scalar_text(&v);
            if !v.is_empty() {
                labels.push((label_name(f), v));
            }
        }
    }
    let mut metadata = Vec::new();
    flatten("", &Value::Object(obj), &mut metadata);
    if labels.is_empty() {
        let service = SERVICE_NAME_SOURCES
            .iter()
            .find_map(|s| metadata.iter().find(|(k, v)| k == s && !v.is_empty()))
            .map_or_else(|| "unknown_service".to_string(), |(_, v)| v.clone());
        labels.push(("service_name".to_string(), service));
    }
    metadata.sort();
    metadata.dedup_by(|a, b| a.0 == b.0);
    Ok((
        labels,
        LogEntry {
            ts,
            line: text,
            metadata,
        },
    ))
}

/// A time field: RFC 3339, or a Unix time in s, ms, µs or ns.
fn parse_time(v: &Value) -> Result<i64, String> {
    let from_number = |x: f64| -> Result<i64, String> {
        let abs = x.abs();
        let ns = if abs < 1e11 {
            x * 1e9
        } else if abs < 1e14 {
            x * 1e6
        } else if abs < 1e17 {
            x * 1e3
        } else {
            x
        };
        if ns.is_finite() && ns.abs() < 9.2e18 {
            Ok(ns as i64)
        } else {
            Err(format!("time {x} is out of range"))
        }
    };
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => integer_time(i),
            None => from_number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return t
                    .timestamp_nanos_opt()
                    .ok_or_else(|| format!("time {s:?} is out of range"));
            }
            if let Ok(i) = s.parse::<i64>() {
                return integer_time(i);
            }
            match s.parse::<f64>() {
                Ok(x) => from_number(x),
                Err(_) => Err(format!(
                    "time {s:?} is neither RFC 3339 (2006-01-02T15:04:05Z) nor a Unix time number"
                )),
            }
        }
        other => Err(format!("time {other} is neither RFC 3339 nor a Unix time number")),
    }
}

/// A whole Unix time in s, ms, µs or ns (told apart by size), in ns.
fn integer_time(i: i64) -> Result<i64, String> {
    let scale = match i.unsigned_abs() {
        a if a < 100_000_000_000 => 1_000_000_000,
        a if a < 100_000_000_000_000 => 1_000_000,
        a if a < 100_000_000_000_000_000 => 1_000,
        _ => 1,
    };
    i.checked_mul(scale).ok_or_else(|| format!("time {i} is out of range"))
}

/// A value as label text: strings as they are, other scalars as JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Flattens nested objects into `outer_inner` names; arrays stay JSON.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let name = if prefix.is_empty() {
                    label_name(k)
                } else {
                    format!("{prefix}_{}", label_name(k))
                };
                flatten(&name, v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), scalar_text(other))),
    }
}

/// A valid label name from a field name: other characters become `_`,
/// and a leading digit gets a `_` before it.
fn label_name(field: &str) -> String {
    let mut s: String = field
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(stream: Option<&str>) -> JsonLineParams {
        JsonLineParams {
            stream_fields: stream.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn fields_become_line_time_labels_and_metadata() {
        let body = br#"{"timestamp":"2026-11-26T10:00:00.5Z","message":"GET / 200","host":"web-1","app":"shop","http":{"status":200,"path":"/"}}
{"_time":1795000000123,"_msg":"second","host":"web-1","app":"shop","tags":["a","b"]}

"#;
        let d = decode(body, &params(Some("host, app")), 7).expect("decode");
        assert_eq!(d.refused, 0);
        assert_eq!(d.streams.len(), 1);
        let (labels, entries) = &d.streams[0];
        assert_eq!(
            labels,
            &vec![("host".to_string(), "web-1".to_string()), ("app".into(), "shop".into())]
        );
        assert_eq!(entries[0].line, "GET / 200");
        assert_eq!(entries[0].ts, 1_795_687_200_500_000_000);
        assert_eq!(
            entries[0].metadata,
            vec![
                ("http_path".to_string(), "/".to_string()),
                ("http_status".into(), "200".into())
            ]
        );
        assert_eq!(
            entries[1].ts, 1_795_000_000_123_000_000,
            "milliseconds told apart by size"
        );
        assert_eq!(
            entries[1].metadata,
            vec![("tags".to_string(), r#"["a","b"]"#.to_string())]
        );
    }

    #[test]
    fn streams_without_labels_get_a_service_name_and_lines_without_time_get_now() {
        let body = br#"{"msg":"a","app":"shop"}
{"log":"b"}"#;
        let d = decode(body, &params(None), 42).expect("decode");
        let names: Vec<&str> = d.streams.iter().map(|(l, _)| l[0].1.as_str()).collect();
        assert_eq!(names, vec!["shop", "unknown_service"]);
        assert!(d.streams.iter().all(|(_, e)| e[0].ts == 42));
    }

    #[test]
    fn bad_lines_are_refused_one_by_one_and_named() {
        let body = b"{\"_msg\":\"ok\"}\nnot json\n[1,2]\n{\"_msg\":\"x\",\"_time\":\"yesterday\"}\n";
        let d = decode(body, &params(None), 1).expect("decode");
        assert_eq!(d.refused, 3);
        assert!(
            d.first_error
                .as_deref()
                .is_some_and(|e| e.starts_with("line 2: invalid JSON")),
            "{:?}",
            d.first_error
        );
        assert_eq!(d.streams.iter().map(|(_, e)| e.len()).sum::<usize>(), 1);
        let d = decode(b"{\"_time\":\"yesterday\"}", &params(None), 1).expect("decode");
        assert!(d.first_error.is_some_and(|e| e.contains("RFC 3339")));
    }

    #[test]
    fn times_in_every_unit_agree() {
        let want = 1_795_687_200_000_000_000i64;
        for v in [
            serde_json::json!(1_795_687_200),
            serde_json::json!(1_795_687_200_000i64),
            serde_json::json!(1_795_687_200_000_000i64),
            serde_json::json!(want),
            serde_json::json!("1795687200"),
            serde_json::json!("2026-11-26T10:00:00Z"),
        ] {
            assert_eq!(parse_time(&v), Ok(want), "{v}");
        }
    }
}
