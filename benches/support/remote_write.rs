//! What both benchmarks send: remote-write labels and a POST that retries
//! the way a Prometheus remote-write queue does.
#![allow(dead_code)]

use std::time::Duration;

use sightline_ingest::remote_write::proto;

/// Label pairs as remote-write protobuf labels.
pub fn proto_labels(pairs: &[(String, String)]) -> Vec<proto::Label> {
    pairs
        .iter()
        .map(|(n, v)| proto::Label {
            name: n.clone(),
            value: v.clone(),
        })
        .collect()
}

/// POSTs one snappy remote-write 1.0 body to `url`; 429 and 5xx are
/// retried (up to 50 times, 100 ms apart). The error names the final
/// status and body, or the transport failure.
pub fn post_write(c: &reqwest::blocking::Client, url: &str, body: &[u8]) -> Result<(), String> {
    let mut attempts = 0;
    loop {
        let r = c
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.to_vec())
            .send();
        match r {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if (r.status().as_u16() == 429 || r.status().is_server_error()) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(r) => return Err(format!("{} {}", r.status(), r.text().unwrap_or_default())),
            Err(e) => return Err(e.to_string()),
        }
    }
}
