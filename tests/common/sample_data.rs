//! Sample data for the dashboards' tests (every query of every dashboard
//! answers, and the browser draws every panel): a fleet's `up`, a real
//! node_exporter scrape, the efficiency sample day's last two hours,
//! Sightline's own `/metrics` and log lines of a mail job.

use std::collections::BTreeMap;

use super::*;
use serde_json::{Value, json};
use sightline_ingest::scrape::expfmt;
use sightline_query::efficiency::sample::{self, SampleKind};
use sightline_storage::{MatchOp, Matcher, SeriesReader};

pub const MINUTE: i64 = 60_000;

/// Label pairs of one series.
type Pairs = Vec<(String, String)>;
/// A series to write: labels and samples.
type OwnedSeries = (Pairs, Vec<(i64, f64)>);
/// One sample of a series.
type LabelledSample = (Pairs, (i64, f64));

/// Remote-writes `(labels, samples)` series in time slices, oldest first.
fn write_series(srv: &Server, series: &[OwnedSeries]) {
    let (from, to) = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let mut slice = from;
    while slice <= to {
        let batch: Vec<_> = series
            .iter()
            .map(|(labels, samples)| {
                let mut labels: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                labels.sort();
                let samples: Vec<(i64, f64)> = samples
                    .iter()
                    .copied()
                    .filter(|(t, _)| (slice..slice + 30 * MINUTE).contains(t))
                    .collect();
                ts(&labels, &samples)
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        if !batch.is_empty() {
            let (code, body) = remote_write(srv, batch);
            assert!((200..300).contains(&code), "remote write: {code} {body}");
        }
        slice += 30 * MINUTE;
    }
}

fn pairs(list: &[(&str, &str)]) -> Pairs {
    list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// A scrape's samples with `extra` labels, at `t`, counters advanced by `k`.
fn scrape_at(scrape: &[expfmt::ScrapedSample], extra: &[(&str, &str)], t: i64, k: f64) -> Vec<LabelledSample> {
    scrape
        .iter()
        .filter(|s| s.value.is_finite())
        .map(|s| {
            let mut labels = s.labels.clone();
            labels.extend(pairs(extra));
            let counter = s.labels[0].1.ends_with("_total") || s.labels[0].1.ends_with("_bucket");
            (labels, (t, if counter { s.value + k } else { s.value }))
        })
        .collect()
}

/// Groups scraped samples of several times into series.
fn by_series(samples: Vec<LabelledSample>) -> Vec<OwnedSeries> {
    let mut map: BTreeMap<Pairs, Vec<(i64, f64)>> = BTreeMap::new();
    for (labels, p) in samples {
        map.entry(labels).or_default().push(p);
    }
    map.into_iter().collect()
}

pub fn load_sample_data(srv: &Server, node_scrape: &str) -> i64 {
    let now = now_ms();
    // The efficiency sample day's last two hours (first: storage takes
    // samples at most an hour behind the newest).
    let (data, _) = sample::build_ending(SampleKind::Gain20, now);
    let everything = Matcher::new(MatchOp::Regex, "__name__", ".+").expect("matcher");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let day = rt
        .block_on(data.select(&[everything], now - 120 * MINUTE, now))
        .expect("sample");
    let efficiency: Vec<_> = day
        .iter()
        .map(|s| {
            let labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            (
                labels,
                s.timestamps.iter().copied().zip(s.values.iter().copied()).collect(),
            )
        })
        .collect();
    write_series(srv, &efficiency);
    // A fleet: 2 sites x 2 clusters x 3 nodes, one node down.
    let mut fleet = Vec::new();
    for site in ["dc1", "dc2"] {
        for c in 1..=2 {
            for n in 1..=3 {
                let cluster = format!("{site}-c{c}");
                let instance = format!("{cluster}-n{n}:9100");
                let value = if site == "dc2" && c == 2 && n == 3 { 0.0 } else { 1.0 };
                let labels = pairs(&[
                    ("__name__", "up"),
                    ("site", site),
                    ("cluster", &cluster),
                    ("instance", &instance),
                    ("job", "node"),
                ]);
                fleet.push((
                    labels,
                    (0..80).map(|k| (now - 20 * MINUTE + k * 15_000, value)).collect(),
                ));
            }
        }
    }
    write_series(srv, &fleet);
    // A real node_exporter scrape every 15 s for 20 minutes.
    let scrape = expfmt::parse(node_scrape).expect("node_exporter scrape parses");
    let extra = [("instance", "dc1-c1-n1:9100"), ("job", "node"), ("site", "dc1")];
    let node: Vec<_> = (0..80)
        .flat_map(|k| scrape_at(&scrape, &extra, now - 20 * MINUTE + k * 15_000, k as f64 * 3.0))
        .collect();
    write_series(srv, &by_series(node));
    // Log lines of a mail job, some of them errors.
    let lines: Vec<(String, Vec<[String; 2]>)> = ["info", "error"]
        .iter()
        .map(|level| {
            let values = (0..60)
                .map(|k| {
                    let t = (now - 10 * MINUTE + k * 10_000) * 1_000_000;
                    [
                        t.to_string(),
                        format!("level={level} msg=\"message {k} scanned\" {level}"),
                    ]
                })
                .collect();
            (level.to_string(), values)
        })
        .collect();
    let streams: Vec<Value> = lines
        .into_iter()
        .map(|(level, values)| json!({"stream": {"job": "mail", "level": level}, "values": values}))
        .collect();
    let r = client()
        .post(srv.url("/loki/api/v1/push"))
        .json(&json!({ "streams": streams }))
        .send()
        .expect("push");
    assert!(r.status().is_success(), "push: {}", r.text().unwrap_or_default());
    // Sightline's own /metrics, scraped four times 15 s apart.
    let instance = srv.http.to_string();
    let extra = [("instance", instance.as_str()), ("job", "sightline")];
    let mut own = Vec::new();
    for (i, t) in [now - 45_000, now - 30_000, now - 15_000, now].into_iter().enumerate() {
        let text = metrics_text(srv);
        let scrape = expfmt::parse(&text).expect("own metrics parse");
        own.extend(scrape_at(&scrape, &extra, t, i as f64));
    }
    write_series(srv, &by_series(own));
    now
}
