//! LogQL semantics, one construct per test, with the answers Loki's
//! documentation gives for them; evaluated over an in-memory reader.

use std::sync::Arc;
use std::time::Instant;

use sightline_storage::Labels;
use sightline_storage::logs::{LogEntry, LogReader, LogSelect, LogStream, StreamKey};

use super::*;

const S: i64 = 1_000_000_000;

struct Mem(Vec<LogStream>);

impl LogReader for Mem {
    fn select(&self, q: &LogSelect) -> sightline_storage::Result<Vec<LogStream>> {
        Ok(self
            .0
            .iter()
            .filter(|s| q.matches_stream(&s.key))
            .map(|s| LogStream {
                key: s.key.clone(),
                entries: s
                    .entries
                    .iter()
                    .filter(|e| e.ts >= q.start && e.ts < q.end && q.matches_line(&e.line))
                    .cloned()
                    .collect(),
            })
            .filter(|s| !s.entries.is_empty())
            .collect())
    }
    fn stream_keys(&self, q: &LogSelect) -> Vec<Arc<StreamKey>> {
        self.0
            .iter()
            .filter(|s| q.matches_stream(&s.key))
            .map(|s| s.key.clone())
            .collect()
    }
}

fn stream(labels: &[(&str, &str)], lines: &[(i64, &str)]) -> LogStream {
    LogStream {
        key: Arc::new(StreamKey {
            tenant: "t".into(),
            labels: Labels::from_pairs(labels.iter().copied()),
        }),
        entries: lines.iter().map(|(t, l)| LogEntry::new(t * S, *l)).collect(),
    }
}

/// Two apps over 60 s: `api` logs logfmt requests, `db` plain lines.
fn data() -> Mem {
    Mem(vec![
        stream(
            &[("app", "api"), ("env", "prod")],
            &[
                (10, "level=info path=/a status=200 latency=100ms size=1KB"),
                (20, "level=error path=/b status=500 latency=1.5s size=2KB"),
                (30, "level=info path=/a status=200 latency=300ms size=1KB"),
                (40, "level=warn path=/c status=404 latency=50ms size=0.5KB"),
                (50, "level=error path=/b status=503 latency=2s size=4KB"),
            ],
        ),
        stream(
            &[("app", "db"), ("env", "prod")],
            &[(15, "slow query 2.5s"), (45, "connection reset")],
        ),
    ])
}

fn context<'a>(mem: &'a Mem, lim: &'a LogqlLimits) -> Context<'a> {
    Context {
        reader: mem,
        tenant: "t",
        limits: lim,
        started: Instant::now(),
        stats: Default::default(),
    }
}

fn limits() -> LogqlLimits {
    LogqlLimits::default()
}

/// Evaluates a metric query at one instant; answers "labels => value".
fn instant(q: &str, at: i64) -> Vec<String> {
    let mem = data();
    let lim = limits();
    let mut ctx = context(&mem, &lim);
    let Expr::Metric(m) = parse(q).unwrap_or_else(|e| panic!("{q}: {e}")) else {
        panic!("not a metric query")
    };
    eval_metric(
        &mut ctx,
        &m,
        Steps {
            start: at * S,
            end: at * S,
            step: S,
        },
    )
    .unwrap_or_else(|e| panic!("{q}: {}", e.message))
    .into_iter()
    .map(|s| {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{{{}}} => {}",
            labels.join(","),
            crate::promql::value::format_float(s.points[0].1)
        )
    })
    .collect()
}

fn instant_err(q: &str) -> String {
    let mem = data();
    let lim = limits();
    let mut ctx = context(&mem, &lim);
    let Ok(Expr::Metric(m)) = parse(q) else {
        panic!("{q} does not parse")
    };
    eval_metric(
        &mut ctx,
        &m,
        Steps {
            start: 60 * S,
            end: 60 * S,
            step: S,
        },
    )
    .expect_err("fails")
    .message
}

fn logs(q: &str, limit: usize, direction: Direction) -> Vec<String> {
    let mem = data();
    let lim = limits();
    let mut ctx = context(&mem, &lim);
    let Expr::Log(l) = parse(q).unwrap_or_else(|e| panic!("{q}: {e}")) else {
        panic!("not a log query")
    };
    let mut out: Vec<(i64, String)> = eval_log(&mut ctx, &l, 0, 100 * S, limit, direction)
        .expect("evaluates")
        .into_iter()
        .flat_map(|s| s.entries)
        .collect();
    out.sort_by_key(|e| e.0);
    if direction == Direction::Backward {
        out.reverse();
    }
    out.into_iter().map(|e| e.1).collect()
}

#[test]
fn count_over_time_counts_lines_in_the_window_left_open() {
    // Window (0, 60]: all 5 api lines and both db lines.
    assert_eq!(
        instant(r#"count_over_time({env="prod"}[60s])"#, 60),
        vec!["{app=api,env=prod} => 5", "{app=db,env=prod} => 2"]
    );
    // Window (20, 50]: 20 is excluded, 50 included.
    assert_eq!(
        instant(r#"count_over_time({app="api"}[30s])"#, 50),
        vec!["{app=api,env=prod} => 3"]
    );
}

#[test]
fn rate_and_bytes() {
    assert_eq!(
        instant(r#"rate({app="db"}[60s])"#, 60),
        vec!["{app=db,env=prod} => 0.03333333333333333"]
    );
    assert_eq!(
        instant(r#"bytes_over_time({app="db"}[60s])"#, 60),
        vec!["{app=db,env=prod} => 31"]
    );
    assert_eq!(
        instant(r#"bytes_rate({app="db"}[60s])"#, 60),
        vec!["{app=db,env=prod} => 0.5166666666666667"]
    );
}

#[test]
fn parsed_labels_split_series_and_aggregations_group_them() {
    assert_eq!(
        instant(r#"sum by (level) (count_over_time({app="api"} | logfmt [60s]))"#, 60),
        vec!["{level=error} => 2", "{level=info} => 2", "{level=warn} => 1"]
    );
    assert_eq!(
        instant(
            r#"sum(count_over_time({app="api"} | logfmt | status >= 500 [60s]))"#,
            60
        ),
        vec!["{} => 2"]
    );
    assert_eq!(
        instant(r#"count without (env) (count_over_time({env="prod"}[60s]))"#, 60),
        vec!["{app=api} => 1", "{app=db} => 1"]
    );
}

#[test]
fn unwrap_aggregations_drop_the_unwrapped_label() {
    let q = |f: &str| format!(r#"{f}({{app="api"}} | logfmt | unwrap duration(latency) [60s]) by (path)"#);
    assert_eq!(
        instant(&q("sum_over_time"), 60),
        vec!["{path=/a} => 0.4", "{path=/b} => 3.5", "{path=/c} => 0.05"]
    );
    assert_eq!(
        instant(&q("max_over_time"), 60),
        vec!["{path=/a} => 0.3", "{path=/b} => 2", "{path=/c} => 0.05"]
    );
    assert_eq!(
        instant(&q("avg_over_time"), 60),
        vec!["{path=/a} => 0.2", "{path=/b} => 1.75", "{path=/c} => 0.05"]
    );
    assert_eq!(instant(&q("first_over_time"), 60)[1], "{path=/b} => 1.5");
    assert_eq!(instant(&q("last_over_time"), 60)[1], "{path=/b} => 2");
    assert_eq!(
        instant(
            r#"quantile_over_time(0.5, {app="api"} | logfmt | unwrap bytes(size) [60s]) by (app)"#,
            60
        ),
        vec!["{app=api} => 1000"]
    );
    assert_eq!(
        instant(r#"sum_over_time({app="api"} | logfmt | unwrap status [60s])"#, 60).len(),
        5,
        "without grouping every distinct label set is a series"
    );
}

#[test]
fn conversion_errors_fail_metric_queries_unless_filtered() {
    let e = instant_err(r#"sum_over_time({app="api"} | logfmt | unwrap path [60s])"#);
    assert!(e.starts_with("pipeline error: 'SampleExtractionErr'"), "{e}");
    assert_eq!(
        instant(
            r#"sum(sum_over_time({app="api"} | logfmt | unwrap path | __error__="" [60s]))"#,
            60
        ),
        Vec::<String>::new()
    );
}

#[test]
fn absent_over_time_answers_only_when_nothing_is_there() {
    assert_eq!(
        instant(r#"absent_over_time({app="nope", env="prod"}[60s])"#, 60),
        vec!["{app=nope,env=prod} => 1"]
    );
    assert!(instant(r#"absent_over_time({app="api"}[60s])"#, 60).is_empty());
}

#[test]
fn offset_moves_the_window_back() {
    assert_eq!(
        instant(r#"count_over_time({app="api"}[15s] offset 30s)"#, 60),
        vec!["{app=api,env=prod} => 2"]
    );
}

#[test]
fn topk_bottomk_and_binary_operators() {
    assert_eq!(
        instant(r#"topk(1, count_over_time({env="prod"}[60s]))"#, 60),
        vec!["{app=api,env=prod} => 5"]
    );
    assert_eq!(
        instant(r#"bottomk(1, count_over_time({env="prod"}[60s]))"#, 60),
        vec!["{app=db,env=prod} => 2"]
    );
    assert_eq!(
        instant(r#"count_over_time({app="db"}[60s]) * 10 + 1"#, 60),
        vec!["{app=db,env=prod} => 21"]
    );
    assert_eq!(
        instant(r#"count_over_time({env="prod"}[60s]) > 3"#, 60),
        vec!["{app=api,env=prod} => 5"]
    );
    assert_eq!(
        instant(r#"count_over_time({env="prod"}[60s]) > bool 3"#, 60),
        vec!["{app=api,env=prod} => 1", "{app=db,env=prod} => 0"]
    );
    assert_eq!(
        instant(
            r#"sum by (app) (count_over_time({app="api"} | logfmt | level="error" [60s])) / on (app) sum by (app) (count_over_time({app="api"}[60s]))"#,
            60
        ),
        vec!["{app=api} => 0.4"]
    );
    assert_eq!(
        instant(
            r#"count_over_time({env="prod"}[60s]) and count_over_time({app="db"}[60s])"#,
            60
        ),
        vec!["{app=db,env=prod} => 2"]
    );
    assert_eq!(
        instant(
            r#"count_over_time({env="prod"}[60s]) unless count_over_time({app="db"}[60s])"#,
            60
        ),
        vec!["{app=api,env=prod} => 5"]
    );
    assert_eq!(instant("vector(1)+vector(1)", 4), vec!["{} => 2"]);
    assert_eq!(instant("2 ^ 3 ^ 2", 4), vec!["{} => 512"], "^ is right-associative");
    assert_eq!(
        instant(
            r#"label_replace(count_over_time({app="db"}[60s]), "svc", "$1-svc", "app", "(.*)")"#,
            60
        ),
        vec!["{app=db,env=prod,svc=db-svc} => 2"]
    );
}

#[test]
fn log_queries_honour_limit_and_direction() {
    assert_eq!(
        logs(r#"{env="prod"} |= "s""#, 3, Direction::Backward),
        vec![
            "level=error path=/b status=503 latency=2s size=4KB",
            "connection reset",
            "level=warn path=/c status=404 latency=50ms size=0.5KB",
        ]
    );
    assert_eq!(
        logs(r#"{env="prod"}"#, 2, Direction::Forward),
        vec![
            "level=info path=/a status=200 latency=100ms size=1KB",
            "slow query 2.5s"
        ]
    );
    assert_eq!(
        logs(
            r#"{app="api"} | logfmt | latency > 1s | line_format "{{.path}} {{.status}}""#,
            10,
            Direction::Forward
        ),
        vec!["/b 500", "/b 503"]
    );
    assert_eq!(
        logs(r#"{app="db"} |~ "slow|reset" != "slow""#, 10, Direction::Forward),
        vec!["connection reset"]
    );
}

#[test]
fn limits_name_the_setting() {
    let mem = data();
    let mut lim = LogqlLimits {
        max_series: 1,
        ..LogqlLimits::default()
    };
    let mut ctx = context(&mem, &lim);
    let Ok(Expr::Metric(m)) = parse(r#"count_over_time({env="prod"}[60s])"#) else {
        panic!()
    };
    let e = eval_metric(
        &mut ctx,
        &m,
        Steps {
            start: 60 * S,
            end: 60 * S,
            step: S,
        },
    )
    .expect_err("too many series");
    assert!(
        e.message.contains("maximum number of series (1) reached"),
        "{}",
        e.message
    );
    let Ok(Expr::Metric(m)) = parse(r#"count_over_time({env="prod"}[60s])"#) else {
        panic!()
    };
    let e = eval_metric(
        &mut ctx,
        &m,
        Steps {
            start: 0,
            end: 20_000 * S,
            step: S,
        },
    )
    .expect_err("too many points");
    assert!(
        e.message.contains("maximum resolution of 11000 points"),
        "{}",
        e.message
    );
    // The result limit counts what is returned: a sum is one series.
    let one = Steps {
        start: 60 * S,
        end: 60 * S,
        step: S,
    };
    let Ok(Expr::Metric(m)) = parse(r#"sum(count_over_time({env="prod"}[60s]))"#) else {
        panic!()
    };
    assert!(eval_metric(&mut context(&mem, &lim), &m, one).is_ok());
    lim.max_inner_series = 1;
    let e = eval_metric(&mut context(&mem, &lim), &m, one).expect_err("too many inner series");
    assert!(e.message.contains("logs.max_inner_series_per_query"), "{}", e.message);
}
