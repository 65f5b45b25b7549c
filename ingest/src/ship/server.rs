//! The site's end of the ship stream: every batch goes through the HTTP
//! front door's own handler (remote write or Loki push), so validation,
//! limits, statistics and durability are those of HTTP.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Body, BoxFuture, StdError, http};

use super::{ACK_QUEUE, Kind, Outcome, SHIP_PATH, ShipAck, ShipRequest};
use crate::IngestState;
use crate::logstore::LogIngest;

/// Where the stream's batches are stored.
#[derive(Clone)]
struct Sinks {
    metrics: IngestState,
    logs: LogIngest,
}

/// The tonic service of `sightline.agent.v1.Agent` (add it to the gRPC
/// server beside OTLP).
#[derive(Clone)]
pub struct ShipServer {
    sinks: Arc<Sinks>,
    max_message_bytes: usize,
    stop: watch::Receiver<bool>,
}

/// The ship service over this node's metric and log ingest. When `stop`
/// turns true every open stream ends after answering the batch in hand
/// (streams last as long as their agents, so a graceful shutdown would
/// otherwise wait for them); agents then ship to their next site.
pub fn service(metrics: IngestState, logs: LogIngest, stop: watch::Receiver<bool>) -> ShipServer {
    let max_message_bytes = metrics.opts.max_request_bytes.max(logs.opts.max_request_bytes) + 1024;
    ShipServer {
        sinks: Arc::new(Sinks { metrics, logs }),
        max_message_bytes,
        stop,
    }
}

impl tonic::server::NamedService for ShipServer {
    const NAME: &'static str = "sightline.agent.v1.Agent";
}

/// The stream of answers of one agent's stream.
type AckStream = Pin<Box<dyn Stream<Item = Result<ShipAck, tonic::Status>> + Send>>;

/// The `Ship` method.
struct ShipMethod(Arc<Sinks>, watch::Receiver<bool>);

impl tonic::server::StreamingService<ShipRequest> for ShipMethod {
    type Response = ShipAck;
    type ResponseStream = AckStream;
    type Future = BoxFuture<tonic::Response<AckStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<ShipRequest>>) -> Self::Future {
        let sinks = self.0.clone();
        let mut stop = self.1.clone();
        Box::pin(async move {
            let mut batches = request.into_inner();
            let (tx, rx) = mpsc::channel(ACK_QUEUE);
            tokio::spawn(async move {
                // One batch at a time, answered in order: the next is
                // read only once this one is durable and its answer
                // queued (a full queue stops reading: flow control).
                loop {
                    let next = tokio::select! {
                        next = batches.message() => next,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    let batch = match next {
                        Ok(Some(b)) => b,
                        Ok(None) => return,
                        Err(e) => {
                            tracing::debug!(error = %e, "an agent's ship stream ended");
                            return;
                        }
                    };
                    let ack = store(&sinks, batch).await;
                    if tx.send(Ok(ack)).await.is_err() {
                        return;
                    }
                }
            });
            let acks: AckStream = Box::pin(ReceiverStream::new(rx));
            Ok(tonic::Response::new(acks))
        })
    }
}

/// Stores one batch through its HTTP handler; the answer says how it went.
async fn store(sinks: &Sinks, batch: ShipRequest) -> ShipAck {
    let seq = batch.seq;
    let body = Ok(Bytes::from(batch.body));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    let response = match Kind::try_from(batch.kind) {
        Ok(Kind::RemoteWrite) => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
            headers.insert("X-Prometheus-Remote-Write-Version", HeaderValue::from_static("0.1.0"));
            crate::remote_write::handle(State(sinks.metrics.clone()), headers, body).await
        }
        Ok(Kind::LokiPush) => crate::loki::push(State(sinks.logs.clone()), headers, body).await,
        _ => {
            return ShipAck {
                seq,
                outcome: Outcome::Refused as i32,
                message: format!(
                    "batch {seq}: unknown kind {} (1 = remote write, 2 = Loki push)",
                    batch.kind
                ),
            };
        }
    };
    let status = response.status();
    let outcome = if status.is_success() {
        Outcome::Stored
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Outcome::Retry
    } else {
        Outcome::Refused
    };
    let message = if status.is_success() {
        String::new()
    } else {
        let text = axum::body::to_bytes(response.into_body(), 64 << 10)
            .await
            .unwrap_or_default();
        format!("HTTP {status}: {}", String::from_utf8_lossy(&text).trim())
    };
    ShipAck {
        seq,
        outcome: outcome as i32,
        message,
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for ShipServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != SHIP_PATH {
            let path = req.uri().path().to_string();
            return Box::pin(async move {
                Ok(
                    tonic::Status::unimplemented(format!("no method {path} (this service has {SHIP_PATH})"))
                        .into_http(),
                )
            });
        }
        let (sinks, limit, stop) = (self.sinks.clone(), self.max_message_bytes, self.stop.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.streaming(ShipMethod(sinks, stop), req).await)
        })
    }
}
