//! Sending alerts to external Alertmanagers (`alerting: {alertmanagers:
//! …}`) through their API v2, as Prometheus' notifier does: a bounded
//! queue (oldest dropped when full), batches of up to 64, every
//! Alertmanager gets every batch, and failures are retried with
//! exponential backoff and jitter on network errors, 429 and 5xx.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::delivery::{DeliveryError, post_json};
use crate::group::NotifyAlert;
use crate::timefmt::rfc3339;

/// Most alerts waiting; beyond it the oldest are dropped.
const QUEUE_CAPACITY: usize = 10_000;
/// Most alerts per request.
const BATCH: usize = 64;

/// One Alertmanager to send to.
#[derive(Debug, Clone)]
pub struct AlertmanagerTarget {
    /// Base URL, e.g. `http://127.0.0.1:9093` (with any path prefix).
    pub base_url: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct NotifierStats {
    /// Alerts delivered to an Alertmanager.
    pub sent: AtomicU64,
    /// Alerts that could not be delivered after retries.
    pub errors: AtomicU64,
    /// Alerts dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The queue and its sender task.
pub struct Notifier {
    targets: Vec<AlertmanagerTarget>,
    queue: Mutex<VecDeque<NotifyAlert>>,
    wake: Notify,
    client: reqwest::Client,
    /// Counters.
    pub stats: NotifierStats,
}

/// Alertmanager API v2 `postableAlerts` body.
pub fn api_v2_body(alerts: &[NotifyAlert]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = alerts
        .iter()
        .map(|a| {
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(a.ends_at),
                "generatorURL": a.generator_url,
            })
        })
        .collect();
    serde_json::to_vec(&list).unwrap_or_default()
}

impl Notifier {
    /// A notifier for these Alertmanagers.
    pub fn new(targets: Vec<AlertmanagerTarget>) -> Arc<Self> {
        Arc::new(Notifier {
            targets,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            client: crate::tls::http_client(),
            stats: NotifierStats::default(),
        })
    }

    /// Queues alerts for sending.
    pub fn send(&self, alerts: Vec<NotifyAlert>) {
        if self.targets.is_empty() || alerts.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        q.extend(alerts);
        while q.len() > QUEUE_CAPACITY {
            q.pop_front();
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Sends queued alerts until `stop`; then sends what is left once.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let batch: Vec<NotifyAlert> = {
                let mut q = self.queue.lock();
                let n = q.len().min(BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                if *stop.borrow() {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let body = api_v2_body(&batch);
            let sends = self.targets.iter().map(|t| self.post(t, body.clone()));
            for (t, r) in self.targets.iter().zip(futures::future::join_all(sends).await) {
                match r {
                    Ok(()) => {
                        self.stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.stats.errors.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        tracing::warn!(alertmanager = %t.base_url, alerts = batch.len(), error = %e, "sending alerts failed");
                    }
                }
            }
        }
    }

    async fn post(&self, target: &AlertmanagerTarget, body: Vec<u8>) -> Result<(), DeliveryError> {
        let url = format!("{}/api/v2/alerts", target.base_url.trim_end_matches('/'));
        post_json(&self.client, &url, &body, target.timeout, 4).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_alertmanager_v2() {
        let a = NotifyAlert {
            labels: [("alertname".to_string(), "Down".to_string())].into_iter().collect(),
            annotations: Default::default(),
            starts_at: 1_700_000_000_000,
            ends_at: 1_700_000_240_000,
            generator_url: "http://x/graph".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&api_v2_body(&[a])).unwrap();
        assert_eq!(v[0]["labels"]["alertname"], "Down");
        assert_eq!(v[0]["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v[0]["endsAt"], "2023-11-14T22:17:20Z");
        assert_eq!(v[0]["generatorURL"], "http://x/graph");
    }
}
