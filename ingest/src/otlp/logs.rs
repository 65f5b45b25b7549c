//! OTLP logs: `POST /v1/logs` (protobuf or JSON, optionally gzip) and the
//! gRPC `LogsService/Export`, translated as Loki 3's native OTLP ingestion
//! does:
//!
//! - stream labels: the resource attributes named in
//!   `logs.otlp_stream_labels` (Loki's default list), dots becoming
//!   underscores (`service.name` → `service_name`; `unknown_service` when
//!   a resource has no `service.name`);
//! - structured metadata: every other resource attribute, the scope's name
//!   and version, the record's attributes, `severity_text`,
//!   `severity_number`, `trace_id`, `span_id` (hex), `flags`;
//! - line: the body (a string as is, anything else as JSON);
//! - time: `time_unix_nano`, else `observed_time_unix_nano`, else now.
//!
//! Refused records are reported through `partial_success`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use sightline_storage::logs::{LogEntry, LogPush, LogPushReport, RawLabels};

use super::{decode_request, encode_response, request_format};
use crate::IngestError;
use crate::logstore::{LogIngest, tenant_from_headers};

/// Loki's default resource attributes that become stream labels.
pub const DEFAULT_STREAM_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// An attribute name as a label name: characters outside `[a-zA-Z0-9_]`
/// become `_`, a leading digit gets a `_` in front.
pub fn attribute_label(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    out.extend(
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }),
    );
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn json_of(v: &AnyValue) -> serde_json::Value {
    match &v.value {
        Some(Any::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Any::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Any::IntValue(i)) => serde_json::Value::from(*i),
        Some(Any::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(serde_json::Value::Null, Into::into),
        Some(Any::ArrayValue(a)) => serde_json::Value::Array(a.values.iter().map(json_of).collect()),
        Some(Any::KvlistValue(kv)) => serde_json::Value::Object(
            kv.values
                .iter()
                .map(|p| (p.key.clone(), p.value.as_ref().map_or(serde_json::Value::Null, json_of)))
                .collect(),
        ),
        Some(Any::BytesValue(b)) => serde_json::Value::String(hex(b)),
        Some(Any::StringValueStrindex(_)) | None => serde_json::Value::Null,
    }
}

/// An attribute value as text: strings as they are, the rest as JSON.
pub fn any_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        None => String::new(),
        Some(_) => v.map(|v| json_of(v).to_string()).unwrap_or_default(),
    }
}

fn attrs(out: &mut Vec<(String, String)>, kvs: &[KeyValue]) {
    for kv in kvs {
        let v = any_text(kv.value.as_ref());
        if !v.is_empty() {
            out.push((attribute_label(&kv.key), v));
        }
    }
}

/// Turns an export request into streams.
pub fn translate(
    req: ExportLogsServiceRequest,
    stream_attributes: &[String],
    now_ns: i64,
) -> Vec<(RawLabels, Vec<LogEntry>)> {
    let mut streams: BTreeMap<RawLabels, Vec<LogEntry>> = BTreeMap::new();
    for rl in req.resource_logs {
        let mut labels: RawLabels = Vec::new();
        let mut resource_meta = Vec::new();
        let resource_attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
        for kv in &resource_attrs {
            let v = any_text(kv.value.as_ref());
            if v.is_empty() {
                continue;
            }
            if stream_attributes.iter().any(|a| a == &kv.key) {
                labels.push((attribute_label(&kv.key), v));
            } else {
                resource_meta.push((attribute_label(&kv.key), v));
            }
        }
        if !labels.iter().any(|(k, _)| k == "service_name") {
            labels.push(("service_name".into(), "unknown_service".into()));
        }
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        for sl in rl.scope_logs {
            let mut scope_meta = resource_meta.clone();
            if let Some(scope) = &sl.scope {
                if !scope.name.is_empty() {
                    scope_meta.push(("scope_name".into(), scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scope_meta.push(("scope_version".into(), scope.version.clone()));
                }
                attrs(&mut scope_meta, &scope.attributes);
            }
            for r in sl.log_records {
                let ts = [r.time_unix_nano, r.observed_time_unix_nano]
                    .into_iter()
                    .find(|t| *t != 0)
                    .map_or(now_ns, |t| i64::try_from(t).unwrap_or(i64::MAX));
                let mut metadata = scope_meta.clone();
                attrs(&mut metadata, &r.attributes);
                if !r.severity_text.is_empty() {
                    metadata.push(("severity_text".into(), r.severity_text.clone()));
                }
                if r.severity_number != 0 {
                    metadata.push(("severity_number".into(), r.severity_number.to_string()));
                }
                if !r.trace_id.is_empty() {
                    metadata.push(("trace_id".into(), hex(&r.trace_id)));
                }
                if !r.span_id.is_empty() {
                    metadata.push(("span_id".into(), hex(&r.span_id)));
                }
                if r.flags != 0 {
                    metadata.push(("flags".into(), r.flags.to_string()));
                }
                let line = any_text(r.body.as_ref());
                streams
                    .entry(labels.clone())
                    .or_default()
                    .push(LogEntry { ts, line, metadata });
            }
        }
    }
    streams.into_iter().collect()
}

fn response(report: &LogPushReport) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: report.first_rejection.as_ref().map(|m| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(report.rejected).unwrap_or(i64::MAX),
            error_message: m.clone(),
        }),
    }
}

async fn export(
    state: &LogIngest,
    tenant: String,
    req: ExportLogsServiceRequest,
) -> Result<LogPushReport, IngestError> {
    let streams = translate(
        req,
        &state.opts.otlp_stream_attributes,
        sightline_storage::logs::now_ns(),
    );
    state.store(LogPush { tenant, streams }).await
}

/// `POST /v1/logs`.
pub async fn handle_http(
    State(state): State<LogIngest>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let format = request_format(&headers)?;
        let body = body.map_err(|e| crate::remote_write::body_error(e, state.opts.max_request_bytes))?;
        let _permit = state.admit()?;
        let tenant = tenant_from_headers(&headers)?;
        let req: ExportLogsServiceRequest = decode_request(format, &headers, body, state.opts.max_decoded_bytes)?;
        let report = export(&state, tenant, req).await?;
        Ok::<_, IngestError>((format, report))
    }
    .await;
    match result {
        Err(e) => e.into_response(),
        Ok((format, r)) => encode_response(format, &response(&r)),
    }
}

/// The OTLP gRPC logs service.
pub struct GrpcLogs {
    state: LogIngest,
}

/// The tonic service to mount on the gRPC server.
pub fn grpc_service(state: LogIngest) -> LogsServiceServer<GrpcLogs> {
    let limit = state.opts.max_decoded_bytes;
    LogsServiceServer::new(GrpcLogs { state })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

#[tonic::async_trait]
impl LogsService for GrpcLogs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let result = async {
            let _permit = self.state.admit()?;
            let tenant = crate::logstore::tenant_of(request.metadata().get("x-scope-orgid").map(|v| v.as_bytes()))?;
            export(&self.state, tenant, request.into_inner()).await
        }
        .await;
        match result {
            Ok(r) => Ok(tonic::Response::new(response(&r))),
            Err(e) => Err(e.to_grpc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Any::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn resources_become_streams_and_the_rest_metadata() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "spam-scanner"),
                        kv("k8s.pod.name", "p-1"),
                        kv("host.name", "n1"),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "scanner".into(),
                        ..Default::default()
                    }),
                    log_records: vec![LogRecord {
                        time_unix_nano: 5,
                        severity_text: "WARN".into(),
                        severity_number: 13,
                        body: Some(AnyValue {
                            value: Some(Any::StringValue("mail rejected".into())),
                        }),
                        attributes: vec![kv("mail.id", "m-42")],
                        trace_id: vec![0xab; 16],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let defaults: Vec<String> = DEFAULT_STREAM_ATTRIBUTES.iter().map(|s| s.to_string()).collect();
        let got = translate(req, &defaults, 99);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].0,
            vec![
                ("k8s_pod_name".to_string(), "p-1".to_string()),
                ("service_name".into(), "spam-scanner".into())
            ]
        );
        let e = &got[0].1[0];
        assert_eq!((e.ts, e.line.as_str()), (5, "mail rejected"));
        let meta: BTreeMap<_, _> = e.metadata.iter().cloned().collect();
        assert_eq!(meta["host_name"], "n1");
        assert_eq!(meta["mail_id"], "m-42");
        assert_eq!(meta["scope_name"], "scanner");
        assert_eq!(meta["severity_text"], "WARN");
        assert_eq!(meta["severity_number"], "13");
        assert_eq!(meta["trace_id"], "ab".repeat(16));
        let empty = translate(
            ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records: vec![LogRecord::default()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
            &defaults,
            99,
        );
        assert_eq!(
            empty[0].0,
            vec![("service_name".to_string(), "unknown_service".to_string())]
        );
        assert_eq!(empty[0].1[0].ts, 99, "no time: now");
    }
}
