//! The agent's stream to a site: `sightline.agent.v1.Agent/Ship`, one
//! bidirectional gRPC stream per agent and site that carries both its
//! metrics and its logs.
//!
//! The agent sends [`ShipRequest`]s (a remote write 1.0 or Loki push body,
//! snappy, as the HTTP front doors take them), numbered by `seq`. The site
//! stores each through the very handler of its HTTP twin, in order, and
//! answers with a [`ShipAck`] once the batch is durable (or refused, or to
//! be retried). Flow control: the site reads the next batch only after
//! answering the previous one and holds at most [`ACK_QUEUE`] answers the
//! agent has not read, so a slow site or a slow agent slows the other down
//! through HTTP/2's windows instead of queueing in memory.

pub mod client;
pub mod server;

/// The stream's gRPC path.
pub const SHIP_PATH: &str = "/sightline.agent.v1.Agent/Ship";

/// Answers the site queues for an agent that does not read them.
pub const ACK_QUEUE: usize = 16;

/// One batch from the agent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShipRequest {
    /// The batch's number on this stream (answers carry it back).
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// What `body` is.
    #[prost(enumeration = "Kind", tag = "2")]
    pub kind: i32,
    /// The request body, exactly as its HTTP front door takes it.
    #[prost(bytes = "vec", tag = "3")]
    pub body: Vec<u8>,
}

/// What a batch holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    /// Not set: refused.
    Unspecified = 0,
    /// A Prometheus remote write 1.0 request (protobuf, snappy).
    RemoteWrite = 1,
    /// A Loki push request (protobuf, snappy).
    LokiPush = 2,
}

/// The site's answer to one batch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ShipAck {
    /// The batch answered.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// What became of it.
    #[prost(enumeration = "Outcome", tag = "2")]
    pub outcome: i32,
    /// Why, when it was not stored (the HTTP front door's message).
    #[prost(string, tag = "3")]
    pub message: String,
}

/// What became of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Outcome {
    /// Durable on the site (HTTP 2xx).
    Stored = 0,
    /// Bad data: resending it would not help (HTTP 4xx but 429). What of
    /// it was valid is stored, as over HTTP.
    Refused = 1,
    /// Not stored now (overloaded or storage behind: HTTP 429 or 5xx):
    /// send it again, here or to another site.
    Retry = 2,
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use sightline_storage::logs::{LogDb, LogDbOptions};

    use super::client::{ShipError, SiteStream};
    use super::*;
    use crate::IngestOptions;
    use crate::logstore::{LogIngest, LogIngestOptions};
    use crate::scrape::target::Sample;
    use crate::testutil::{state, stored};

    /// Serves the ship service on `addr` until `true` is sent, as
    /// `sightline serve` stops; the handle ends when the server has.
    async fn serve(
        addr: SocketAddr,
        metrics: crate::IngestState,
        logs: LogIngest,
    ) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let mut until = stopped.clone();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server::service(metrics, logs, stopped))
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async move {
                    let _ = until.wait_for(|s| *s).await;
                })
                .await
                .expect("serve");
        });
        (stop, task)
    }

    fn write_body(t: i64, v: f64) -> Vec<u8> {
        crate::agent::encode(&[Sample {
            labels: vec![("__name__".into(), "shipped".into()), ("node".into(), "n1".into())],
            t,
            v,
        }])
    }

    #[tokio::test]
    async fn batches_are_acknowledged_once_durable_refused_when_bad_and_retried_when_the_site_is_gone() {
        let (_tmp, metrics) = state(IngestOptions::default()).await;
        let logdir = tempfile::tempdir().expect("tmp");
        let mut lo = LogDbOptions::new(logdir.path());
        lo.wal_fsync = false;
        let logs = LogIngest::new(Arc::new(LogDb::open(lo).expect("log db")), LogIngestOptions::default());
        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr")
        };
        let (stop, server) = serve(addr, metrics.clone(), logs.clone()).await;
        let site = SiteStream::new(&format!("http://{addr}"));
        let now = sightline_storage::now_ms();

        // Stored, and readable, when the answer comes.
        site.send(Kind::RemoteWrite, write_body(now, 1.0))
            .await
            .expect("stored");
        let got = stored(&metrics, "shipped").await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, vec![(now, 1.0f64.to_bits())]);

        // Bad data is refused with the front door's reason, not retried.
        let err = site
            .send(Kind::RemoteWrite, b"not snappy".to_vec())
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, ShipError::Refused(m) if m.contains("HTTP 400") && m.contains("snappy")),
            "{err}"
        );
        let err = site.send(Kind::Unspecified, Vec::new()).await.expect_err("refused");
        assert!(
            matches!(&err, ShipError::Refused(m) if m.contains("unknown kind 0")),
            "{err}"
        );
        // The stream survives refusals: the next batch is stored.
        site.send(Kind::RemoteWrite, write_body(now + 1000, 2.0))
            .await
            .expect("stored");
        assert_eq!(stored(&metrics, "shipped").await[0].1.len(), 2);

        // The site shuts down (its open stream ends with it, not after the
        // agent leaves): the batch is to be retried (elsewhere).
        stop.send(true).expect("stop");
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("the server stopped although a stream was open")
            .expect("server task");
        let err = site
            .send(Kind::RemoteWrite, write_body(now + 2000, 3.0))
            .await
            .expect_err("gone");
        assert!(matches!(err, ShipError::Retry(_)), "{err}");
        // It comes back on the same address: the stream reopens.
        let _stop = serve(addr, metrics.clone(), logs).await;
        site.send(Kind::RemoteWrite, write_body(now + 2000, 3.0))
            .await
            .expect("stored after reconnect");
        assert_eq!(stored(&metrics, "shipped").await[0].1.len(), 3);
    }
}
