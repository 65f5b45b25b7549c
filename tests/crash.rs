//! Crash safety: while a client writes, the server is killed with SIGKILL
//! at random moments; after every restart each acknowledged sample is
//! present with its exact value and nothing stored is corrupt.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

const SERIES: usize = 40;

/// The value written for series `s` at time `t`: recognisable on read.
fn value(s: usize, t: i64) -> f64 {
    (t % 1_000_000) as f64 + s as f64 / 100.0
}

#[test]
fn acknowledged_samples_survive_kill_9_at_random_moments() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut rng = Rng::new(0x5eed_1e55);
    // Small head so that flushes (and compactions) happen during the test.
    let cfg = tmp.path().join("crash.yml");
    std::fs::write(&cfg, "storage:\n  head_max_samples: 3000\n").expect("cfg");
    let cfg = cfg.to_string_lossy().to_string();
    let mut acked: BTreeMap<(usize, i64), f64> = BTreeMap::new();
    let base = now_ms() - 10 * 60_000;
    let mut next_t = base;
    for round in 0..20 {
        let srv = Server::start(&data, &["--config", &cfg]);
        verify(&srv, &acked, round);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let srv_url = srv.url("/api/v1/write");
        let start_t = next_t;
        let writer = std::thread::spawn(move || {
            let probe = ProbeServer { url: srv_url };
            let mut t = start_t;
            let mut got = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let batch: Vec<_> = (0..SERIES)
                    .map(|s| {
                        let inst = format!("i{s}");
                        ts(&[("__name__", "crash_test"), ("instance", &inst)], &[(t, value(s, t))])
                    })
                    .collect();
                let (code, _) = probe.write(batch);
                if code != 204 {
                    break;
                }
                got.push(t);
                t += 100;
            }
            (got, t)
        });
        std::thread::sleep(Duration::from_millis(rng.range(30, 400)));
        let mut srv = srv;
        srv.kill9();
        stop.store(true, Ordering::Relaxed);
        let (got, t_end) = writer.join().expect("writer");
        for t in got {
            for s in 0..SERIES {
                acked.insert((s, t), value(s, t));
            }
        }
        next_t = t_end + 100;
    }
    let srv = Server::start(&data, &["--config", &cfg]);
    verify(&srv, &acked, 20);
    assert!(
        acked.len() > 1000,
        "the test wrote too little to mean anything: {}",
        acked.len()
    );
}

struct ProbeServer {
    url: String,
}

impl ProbeServer {
    fn write(&self, series: Vec<sightline_ingest::remote_write::proto::TimeSeries>) -> (u16, String) {
        use prost::Message;
        let raw = sightline_ingest::remote_write::proto::WriteRequest {
            timeseries: series,
            metadata: vec![],
        }
        .encode_to_vec();
        let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
        match client()
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .body(body)
            .send()
        {
            Ok(r) => (r.status().as_u16(), String::new()),
            Err(e) => (0, e.to_string()),
        }
    }
}

fn verify(srv: &Server, acked: &BTreeMap<(usize, i64), f64>, round: usize) {
    let exported = export(srv, "crash_test");
    let mut stored: BTreeMap<(usize, i64), f64> = BTreeMap::new();
    for e in &exported {
        let inst = e.metric["instance"].as_str().expect("instance");
        let s: usize = inst[1..].parse().expect("series number");
        for (t, v) in e.timestamps.iter().zip(&e.values) {
            let v = v.as_f64().expect("numeric value");
            assert_eq!(v, value(s, *t), "round {round}: corrupt value for series {s} at {t}");
            assert!(stored.insert((s, *t), v).is_none(), "round {round}: duplicate sample");
        }
    }
    for (k, v) in acked {
        assert_eq!(stored.get(k), Some(v), "round {round}: acknowledged sample {k:?} lost");
    }
}
