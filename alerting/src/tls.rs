//! TLS for outgoing HTTP (PagerDuty, Slack and HTTPS webhooks): rustls
//! with the ring provider, so no system OpenSSL is needed to build or run.

/// Installs ring as the process' rustls provider (no-op when one is
/// installed already). Call before building any HTTP client.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client for notifications, with TLS ready.
pub fn http_client() -> reqwest::Client {
    install_provider();
    reqwest::Client::new()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn https_urls_are_spoken() {
        // Nothing listens on port 1: the failure must be the connection,
        // not a missing TLS implementation.
        let err = super::http_client()
            .post("https://127.0.0.1:1/v2/enqueue")
            .send()
            .await
            .expect_err("nothing listens");
        assert!(err.is_connect(), "{err:?}");
    }
}
