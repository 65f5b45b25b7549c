//! One JSON POST with retries, shared by every outgoing notification
//! (external Alertmanagers, webhooks, PagerDuty, Slack): exponential
//! backoff with jitter on network errors, 429 and 5xx; other answers are
//! final.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

/// Why a delivery failed.
#[derive(Debug)]
pub enum DeliveryError {
    /// Worth retrying (network, 429, 5xx).
    Retryable(String),
    /// Not worth retrying (other 4xx).
    Permanent(String),
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryError::Retryable(m) => write!(f, "{m} (retryable)"),
            DeliveryError::Permanent(m) => write!(f, "{m} (not retried)"),
        }
    }
}

async fn post_once(client: &reqwest::Client, url: &str, body: &[u8], timeout: Duration) -> Result<(), DeliveryError> {
    let resp = client
        .post(url)
        .header("Content-Type", "application/json")
        .timeout(timeout)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| DeliveryError::Retryable(format!("{url}: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = format!(
        "{url}: HTTP {status}: {}",
        text.trim().chars().take(200).collect::<String>()
    );
    if status.is_server_error() || status.as_u16() == 429 {
        Err(DeliveryError::Retryable(msg))
    } else {
        Err(DeliveryError::Permanent(msg))
    }
}

/// POSTs `body` (JSON) to `url`, retrying transient failures up to
/// `retries` times; each attempt may take up to `timeout`.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    timeout: Duration,
    retries: usize,
) -> Result<(), DeliveryError> {
    (|| post_once(client, url, body, timeout))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(retries)
                .with_jitter(),
        )
        .when(|e| matches!(e, DeliveryError::Retryable(_)))
        .await
}
