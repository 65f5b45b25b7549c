//! The agent's end of the ship stream: one long-lived stream per site,
//! shared by the metric and the log shipper, reconnected when it breaks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http;

use super::{Kind, Outcome, SHIP_PATH, ShipAck, ShipRequest};

/// Why a batch did not reach the site.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Not stored: the site is unreachable, overloaded or slow; send the
    /// batch again (here or elsewhere).
    #[error("{0}")]
    Retry(String),
    /// The site refused the batch as bad: resending would not help.
    #[error("{0}")]
    Refused(String),
}

/// Batches sent and waiting for their answer, by number.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<ShipAck>>>>;

/// An open stream.
struct Conn {
    batches: mpsc::Sender<ShipRequest>,
    pending: Pending,
    /// False once the site's answers stopped (the stream broke).
    alive: Arc<AtomicBool>,
}

/// A site's ship stream (`http://host:grpc-port`), opened at the first
/// batch and again after it breaks.
pub struct SiteStream {
    url: String,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    seq: AtomicU64,
    connect_timeout: Duration,
    answer_timeout: Duration,
}

/// Batches the agent may have sent on one stream before the site reads
/// them (beyond HTTP/2's own windows).
const SEND_QUEUE: usize = 4;

impl SiteStream {
    /// A stream to the site at `url` (its `--grpc-listen`, e.g.
    /// `http://ingest.ams:4317`); nothing is connected yet.
    pub fn new(url: &str) -> Self {
        SiteStream {
            url: url.to_string(),
            conn: tokio::sync::Mutex::new(None),
            seq: AtomicU64::new(1),
            connect_timeout: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(30),
        }
    }

    /// The site's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one batch and waits until the site answered it: `Ok` once it
    /// is durable there.
    pub async fn send(&self, kind: Kind, body: Vec<u8>) -> Result<(), ShipError> {
        let conn = self.connected().await?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().insert(seq, tx);
        if !conn.alive.load(Ordering::Acquire) {
            conn.pending.lock().remove(&seq);
            self.drop_conn(&conn).await;
            return Err(ShipError::Retry(format!("{}: the stream broke", self.url)));
        }
        let request = ShipRequest {
            seq,
            kind: kind as i32,
            body,
        };
        let answer = tokio::time::timeout(self.answer_timeout, async {
            conn.batches
                .send(request)
                .await
                .map_err(|_| ShipError::Retry(format!("{}: the stream closed", self.url)))?;
            rx.await.map_err(|_| {
                ShipError::Retry(format!(
                    "{}: the stream broke before batch {seq} was answered",
                    self.url
                ))
            })
        })
        .await;
        let ack = match answer {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) => {
                self.drop_conn(&conn).await;
                return Err(e);
            }
            Err(_) => {
                conn.pending.lock().remove(&seq);
                self.drop_conn(&conn).await;
                return Err(ShipError::Retry(format!(
                    "{}: no answer to batch {seq} within {:?}",
                    self.url, self.answer_timeout
                )));
            }
        };
        match Outcome::try_from(ack.outcome) {
            Ok(Outcome::Stored) => Ok(()),
            Ok(Outcome::Retry) => Err(ShipError::Retry(format!("{}: {}", self.url, ack.message))),
            _ => Err(ShipError::Refused(format!("{}: {}", self.url, ack.message))),
        }
    }

    /// Forgets a broken stream (unless another caller replaced it already).
    async fn drop_conn(&self, broken: &Arc<Conn>) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            *slot = None;
        }
    }

    /// The open stream, opening one when there is none.
    async fn connected(&self) -> Result<Arc<Conn>, ShipError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot
            .as_ref()
            .filter(|c| c.alive.load(Ordering::Acquire) && !c.batches.is_closed())
        {
            return Ok(c.clone());
        }
        let conn = Arc::new(self.open().await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn open(&self) -> Result<Conn, ShipError> {
        let retry = |what: &str, e: &dyn std::fmt::Display| ShipError::Retry(format!("{}: {what}: {e}", self.url));
        let endpoint = tonic::transport::Endpoint::from_shared(self.url.clone())
            .map_err(|e| ShipError::Refused(format!("{} is not a gRPC URL: {e}", self.url)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10));
        let channel = endpoint.connect().await.map_err(|e| retry("cannot connect", &e))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| retry("not ready", &e))?;
        let (batches, rx) = mpsc::channel(SEND_QUEUE);
        let path = http::uri::PathAndQuery::from_static(SHIP_PATH);
        let response = tokio::time::timeout(
            self.connect_timeout,
            grpc.streaming(
                tonic::Request::new(ReceiverStream::new(rx)),
                path,
                tonic_prost::ProstCodec::<ShipRequest, ShipAck>::default(),
            ),
        )
        .await
        .map_err(|_| retry("no answer to the stream's opening", &"timed out"))?
        .map_err(|e| retry("the stream was refused", &e))?;
        let mut acks = response.into_inner();
        let pending: Pending = Arc::default();
        let answers = pending.clone();
        let alive = Arc::new(AtomicBool::new(true));
        let still = alive.clone();
        let url = self.url.clone();
        tokio::spawn(async move {
            loop {
                match acks.message().await {
                    Ok(Some(ack)) => {
                        if let Some(waiter) = answers.lock().remove(&ack.seq) {
                            let _ = waiter.send(ack);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(url = %url, error = %e, "ship stream broke");
                        break;
                    }
                }
            }
            // Whoever still waits learns the stream is gone.
            still.store(false, Ordering::Release);
            answers.lock().clear();
        });
        Ok(Conn {
            batches,
            pending,
            alive,
        })
    }
}
