//! OTLP metrics: `POST /v1/metrics` (protobuf or JSON, optionally gzip)
//! and the gRPC `MetricsService/Export`.
//!
//! Refused data points are reported through OTLP's `partial_success`
//! (the request as a whole still succeeds, as the specification asks);
//! malformed requests are 400 / `INVALID_ARGUMENT`; overload is 429 or
//! 503 / `UNAVAILABLE`, which exporters retry.

pub mod logs;
pub mod naming;
pub mod translate;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use serde::Deserialize;

use crate::stats::Protocol;
use crate::{IngestError, IngestState, StoreOutcome};

/// OTLP translation settings (`otlp:` in the config file, as in Prometheus).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpOptions {
    /// Resource attributes copied onto every series as labels.
    pub promote_resource_attributes: Vec<String>,
}

/// Body encodings of OTLP over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

fn request_format(headers: &HeaderMap) -> Result<Format, IngestError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        other => Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Type {other:?} for OTLP: use application/x-protobuf or application/json"
        ))),
    }
}

fn decode_body(headers: &HeaderMap, body: Bytes, max_decoded: usize) -> Result<Vec<u8>, IngestError> {
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match enc.as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" => crate::gunzip(&body, max_decoded),
        other => Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {other:?} for OTLP: use gzip or none"
        ))),
    }
}

/// Decodes an OTLP/HTTP request body (gzip or not) as protobuf or JSON.
fn decode_request<M>(format: Format, headers: &HeaderMap, body: Bytes, max_decoded: usize) -> Result<M, IngestError>
where
    M: Message + Default + serde::de::DeserializeOwned,
{
    let raw = decode_body(headers, body, max_decoded)?;
    let name = std::any::type_name::<M>().rsplit("::").next().unwrap_or("request");
    match format {
        Format::Protobuf => M::decode(raw.as_slice())
            .map_err(|e| IngestError::BadRequest(format!("cannot decode OTLP {name} protobuf: {e}"))),
        Format::Json => serde_json::from_slice(&raw)
            .map_err(|e| IngestError::BadRequest(format!("cannot decode OTLP {name} JSON: {e}"))),
    }
}

/// Answers in the request's encoding, as OTLP/HTTP asks.
fn encode_response<M: Message + serde::Serialize>(format: Format, msg: &M) -> Response {
    match format {
        Format::Protobuf => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))],
            msg.encode_to_vec(),
        )
            .into_response(),
        Format::Json => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            serde_json::to_vec(msg).unwrap_or_default(),
        )
            .into_response(),
    }
}

fn response_message(out: &StoreOutcome) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: out.problems.first().map(|m| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(out.problems.total()).unwrap_or(i64::MAX),
            error_message: m.to_string(),
        }),
    }
}

/// Decodes, translates and stores one OTLP request.
pub async fn export(state: &IngestState, req: ExportMetricsServiceRequest) -> Result<StoreOutcome, IngestError> {
    let translated = translate::translate(req, &state.opts.otlp);
    let store = state.db.metadata();
    for (name, md) in &translated.metadata {
        store.record(name, md.clone());
    }
    let batch = translated.batch();
    state.store(&batch, translated.problems.clone()).await
}

/// `POST /v1/metrics`.
pub async fn handle_http(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let format = request_format(&headers)?;
        let body = body.map_err(|e| crate::remote_write::body_error(e, state.opts.max_request_bytes))?;
        let _permit = state.admit()?;
        let req: ExportMetricsServiceRequest = decode_request(format, &headers, body, state.opts.max_decoded_bytes)?;
        let out = export(&state, req).await?;
        Ok::<_, IngestError>((format, out))
    }
    .await;
    state.stats.request(Protocol::OtlpHttp, result.is_ok());
    match result {
        Err(e) => e.into_response(),
        Ok((format, out)) => encode_response(format, &response_message(&out)),
    }
}

/// The OTLP gRPC metrics service.
pub struct GrpcMetrics {
    state: IngestState,
}

/// The tonic service to mount on the gRPC server.
pub fn grpc_service(state: IngestState) -> MetricsServiceServer<GrpcMetrics> {
    let limit = state.opts.max_decoded_bytes;
    MetricsServiceServer::new(GrpcMetrics { state })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

#[tonic::async_trait]
impl MetricsService for GrpcMetrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let result = async {
            let _permit = self.state.admit()?;
            export(&self.state, request.into_inner()).await
        }
        .await;
        self.state.stats.request(Protocol::OtlpGrpc, result.is_ok());
        match result {
            Ok(out) => Ok(tonic::Response::new(response_message(&out))),
            Err(e) => Err(e.to_grpc()),
        }
    }
}

#[cfg(test)]
mod tests;
