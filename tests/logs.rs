//! Logs end to end against the real binary: a Loki push client (protobuf
//! with snappy, and JSON), the Loki query API as Grafana calls it, bad
//! input, durability across SIGTERM and `kill -9`.

mod common;

use common::*;
use prost::Message;
use serde_json::{Value, json};

/// Loki's push types, as a Loki client encodes them.
mod loki {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<Pair>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Pair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

fn now_ns() -> i64 {
    now_ms() * 1_000_000
}

fn push_json(srv: &Server, tenant: Option<&str>, body: &Value) -> (u16, String) {
    let mut req = client()
        .post(srv.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let r = req.send().expect("push");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn push_proto(srv: &Server, streams: Vec<loki::Stream>) -> (u16, String) {
    let raw = loki::PushRequest { streams }.encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
    let r = client()
        .post(srv.url("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
        .expect("push");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn get(srv: &Server, path: &str, params: &[(&str, String)]) -> (u16, Value, String) {
    let r = client().get(srv.url(path)).query(params).send().expect("get");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

fn query_range(srv: &Server, q: &str, start: i64, end: i64, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![
        ("query", q.to_string()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    params.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let (status, body, text) = get(srv, "/loki/api/v1/query_range", &params);
    assert_eq!(status, 200, "{q}: {text}");
    body["data"].clone()
}

/// Every line of a streams answer, across its streams, newest first
/// (Loki's default direction) or oldest first.
fn lines_in(data: &Value, newest_first: bool) -> Vec<String> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for s in data["result"].as_array().expect("result") {
        for v in s["values"].as_array().expect("values") {
            let ts: i64 = v[0].as_str().expect("ts").parse().expect("ns");
            out.push((ts, v[1].as_str().expect("line").to_string()));
        }
    }
    out.sort_by_key(|x| x.0);
    if newest_first {
        out.reverse();
    }
    out.into_iter().map(|x| x.1).collect()
}

fn lines_of(data: &Value) -> Vec<String> {
    lines_in(data, true)
}

/// The answers the checks below expect, asked again after a restart.
fn check_answers(srv: &Server, base: i64) {
    let (start, end) = (base - 1_000_000_000, base + 120_000_000_000);
    let data = query_range(srv, r#"{app="mail"} |= "error""#, start, end, &[]);
    assert_eq!(data["resultType"], "streams");
    let lines = lines_of(&data);
    assert_eq!(
        lines,
        vec![
            "level=error msg=\"quota exceeded\" user=bob",
            "level=error msg=\"disk full\" user=alice"
        ],
        "newest first"
    );
    let data = query_range(
        srv,
        r#"{app="mail"} |= "error""#,
        start,
        end,
        &[("direction", "forward"), ("limit", "1")],
    );
    assert_eq!(lines_in(&data, false), vec!["level=error msg=\"disk full\" user=alice"]);
    // Parsed labels become stream labels; structured metadata too.
    let data = query_range(srv, r#"{app="mail"} | logfmt | user="bob""#, start, end, &[]);
    let stream = &data["result"][0]["stream"];
    assert_eq!(stream["user"], "bob");
    assert_eq!(stream["level"], "error");
    assert_eq!(stream["trace_id"], "t-2");
    // A metric query.
    let data = query_range(
        srv,
        r#"sum by (level) (count_over_time({app="mail"} | logfmt [5m]))"#,
        base + 60_000_000_000,
        base + 60_000_000_000,
        &[("step", "60")],
    );
    assert_eq!(data["resultType"], "matrix");
    let mut got: Vec<(String, String)> = data["result"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| {
            (
                s["metric"]["level"].as_str().unwrap_or("").to_string(),
                s["values"][0][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![("error".into(), "2".into()), ("info".into(), "2".into())]);
    // The protobuf-pushed stream.
    let data = query_range(srv, r#"{app="web", site="dc2"}"#, start, end, &[]);
    assert_eq!(lines_of(&data), vec!["GET /b 500", "GET /a 200"]);
    // Labels, values, series.
    let range = [("start", start.to_string()), ("end", end.to_string())];
    let (_, body, _) = get(srv, "/loki/api/v1/labels", &range);
    assert_eq!(body["data"], json!(["app", "host", "site"]));
    let (_, body, _) = get(srv, "/loki/api/v1/label/app/values", &range);
    assert_eq!(body["data"], json!(["mail", "web"]));
    let mut p = range.to_vec();
    p.push(("match[]", r#"{app="web"}"#.into()));
    let (_, body, _) = get(srv, "/loki/api/v1/series", &p);
    assert_eq!(body["data"], json!([{"app": "web", "site": "dc2"}]));
    // Another tenant sees only its own streams.
    let r = client()
        .get(srv.url("/loki/api/v1/label/app/values"))
        .query(&range)
        .header("X-Scope-OrgID", "team-b")
        .send()
        .expect("get");
    assert_eq!(r.json::<Value>().expect("json")["data"], json!(["audit"]));
}

#[test]
fn loki_clients_push_and_grafana_queries_answer_before_and_after_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut srv = Server::start(&data, &[]);
    let base = now_ns() - 600_000_000_000;
    let body = json!({"streams": [
        {"stream": {"app": "mail", "host": "mx1"}, "values": [
            [(base).to_string(), "level=info msg=\"delivered\" user=alice"],
            [(base + 1_000_000_000).to_string(), "level=error msg=\"disk full\" user=alice"],
            [(base + 2_000_000_000).to_string(), "level=info msg=\"delivered\" user=bob"],
            [(base + 3_000_000_000).to_string(), "level=error msg=\"quota exceeded\" user=bob", {"trace_id": "t-2"}]
        ]}
    ]});
    assert_eq!(push_json(&srv, None, &body), (204, String::new()));
    assert_eq!(
        push_json(&srv, None, &body).0,
        204,
        "a retried push is accepted and stored once"
    );
    let audit = json!({"streams": [{"stream": {"app": "audit"}, "values": [[base.to_string(), "login"]]}]});
    assert_eq!(push_json(&srv, Some("team-b"), &audit).0, 204);
    let stream = |line: &str, off: i64| loki::Entry {
        timestamp: Some(loki::Timestamp {
            seconds: (base + off) / 1_000_000_000,
            nanos: ((base + off) % 1_000_000_000) as i32,
        }),
        line: line.into(),
        structured_metadata: vec![],
    };
    let (code, text) = push_proto(
        &srv,
        vec![loki::Stream {
            labels: r#"{app="web", site="dc2"}"#.into(),
            entries: vec![stream("GET /a 200", 0), stream("GET /b 500", 5_000_000_000)],
        }],
    );
    assert_eq!(code, 204, "{text}");
    check_answers(&srv, base);

    // Grafana's health check, format_query, buildinfo, stats and volume.
    let (status, body, text) = get(
        &srv,
        "/loki/api/v1/query",
        &[("query", "vector(1)+vector(1)".into()), ("time", "4".into())],
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["data"]["resultType"], "vector");
    assert_eq!(body["data"]["result"][0]["value"][1], "2");
    let (_, body, _) = get(
        &srv,
        "/loki/api/v1/format_query",
        &[("query", r#"{app="mail"}|="x""#.into())],
    );
    assert_eq!(body["data"], r#"{app="mail"} |= "x""#);
    let (status, body, _) = get(&srv, "/loki/api/v1/status/buildinfo", &[]);
    assert_eq!(status, 200);
    assert!(body["version"].is_string());
    let range = [
        ("query", r#"{app="mail"}"#.to_string()),
        ("start", (base - 1).to_string()),
        ("end", (base + 60_000_000_000).to_string()),
    ];
    let (_, body, _) = get(&srv, "/loki/api/v1/index/stats", &range);
    assert_eq!((body["streams"].as_u64(), body["entries"].as_u64()), (Some(1), Some(4)));
    let (_, body, _) = get(&srv, "/loki/api/v1/index/volume", &range);
    assert_eq!(body["data"]["result"][0]["metric"], json!({"app": "mail"}));

    assert!(srv.sigterm().success());
    let blocks: Vec<_> = std::fs::read_dir(data.join("logs/blocks"))
        .expect("blocks dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!blocks.is_empty(), "SIGTERM writes the logs head to a block");
    // Each line's terms are in one granule here (a block's first 128
    // rows): all are rare terms, so the searches after the restart go
    // through the rare terms file.
    assert!(blocks.iter().all(|b| b.join("rare_terms.bin").is_file()), "{blocks:?}");
    let srv = Server::start(&data, &[]);
    check_answers(&srv, base);
}

#[test]
fn bad_pushes_and_queries_get_clear_errors_and_keep_the_valid_entries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("cfg.yml");
    std::fs::write(
        &cfg,
        "logs:\n  ingestion_rate_bytes: 1000\n  ingestion_burst_bytes: 2000\n  max_line_bytes: 100\n",
    )
    .expect("cfg");
    let srv = Server::start(&data, &["--config", cfg.to_str().expect("path")]);
    let now = now_ns();
    let r = client()
        .post(srv.url("/loki/api/v1/push"))
        .header("Content-Type", "text/plain")
        .body("x")
        .send()
        .expect("push");
    assert_eq!(r.status().as_u16(), 415);
    assert!(
        r.text()
            .unwrap_or_default()
            .contains("unsupported Content-Type \"text/plain\"")
    );
    let r = client()
        .post(srv.url("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(vec![0xffu8; 20])
        .send()
        .expect("push");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap_or_default().contains("snappy"));
    let (code, text) = push_json(
        &srv,
        None,
        &json!({"streams": [{"stream": {"a": "b"}, "values": [["x", "l"]]}]}),
    );
    assert_eq!(code, 400);
    assert!(text.contains("streams[0].values[0]: timestamp"), "{text}");
    let old = now - 30 * 24 * 3_600_000_000_000;
    let (code, text) = push_json(
        &srv,
        None,
        &json!({"streams": [{"stream": {"app": "x"}, "values": [
            [now.to_string(), "kept"],
            [old.to_string(), "too old"],
            [now.to_string(), "y".repeat(200)]
        ]}]}),
    );
    assert_eq!(code, 400);
    assert!(text.contains("timestamp too old"), "{text}");
    assert!(text.contains("2 entries refused, 1 stored"), "{text}");
    let data = query_range(&srv, r#"{app="x"}"#, now - 1_000_000_000, now + 1_000_000_000, &[]);
    assert_eq!(lines_of(&data), vec!["kept"]);
    let (code, text) = push_json(
        &srv,
        None,
        &json!({"streams": [{"stream": {"app": "x"}, "values": [[now.to_string(), "z".repeat(99)]]}]}),
    );
    assert_eq!(code, 204, "{text}");
    let big: Vec<Value> = (0..30)
        .map(|i| json!([(now + i).to_string(), "w".repeat(99)]))
        .collect();
    let (code, text) = push_json(
        &srv,
        None,
        &json!({"streams": [{"stream": {"app": "x"}, "values": big}]}),
    );
    assert_eq!(code, 429, "{text}");
    assert!(
        text.contains("Ingestion rate limit exceeded for user fake (limit: 1000 bytes/sec)"),
        "{text}"
    );

    let (status, _, text) = get(
        &srv,
        "/loki/api/v1/query_range",
        &[("query", r#"{app="x"} | nosuch"#.into())],
    );
    assert_eq!(status, 400);
    assert!(text.starts_with("parse error at line 1, col 13"), "{text}");
    let (status, _, text) = get(&srv, "/loki/api/v1/query", &[("query", r#"{app="x"}"#.into())]);
    assert_eq!(status, 400);
    assert!(text.contains("not supported as an instant query"), "{text}");
    let (status, _, text) = get(
        &srv,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"sum(count_over_time({app="x"} | logfmt | n > 1 [1m]))"#.into(),
            ),
            ("start", (now - 60_000_000_000).to_string()),
            ("end", (now + 1_000_000_000).to_string()),
        ],
    );
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = get(
        &srv,
        "/loki/api/v1/query_range",
        &[("query", r#"{app="x"}"#.into()), ("limit", "100000".into())],
    );
    assert_eq!(status, 400);
    assert!(text.contains("max_entries_limit_per_query"), "{text}");
}

#[test]
fn acknowledged_log_pushes_survive_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut acked: Vec<String> = Vec::new();
    let base = now_ns() - 60_000_000_000;
    for round in 0..5 {
        let mut srv = Server::start(&data, &[]);
        for i in 0..20 {
            let line = format!("round {round} line {i}");
            let t = base + (round * 100 + i) as i64 * 1_000_000;
            let (code, text) = push_json(
                &srv,
                None,
                &json!({"streams": [{"stream": {"app": "crash"}, "values": [[t.to_string(), line]]}]}),
            );
            assert_eq!(code, 204, "{text}");
            acked.push(format!("round {round} line {i}"));
        }
        srv.kill9();
    }
    let srv = Server::start(&data, &[]);
    let got = lines_in(
        &query_range(
            &srv,
            r#"{app="crash"}"#,
            base - 1,
            base + 10_000_000_000,
            &[("limit", "5000"), ("direction", "forward")],
        ),
        false,
    );
    assert_eq!(got, acked);
}

/// A server under `dir` with syslog listeners (job `nodes`) on free
/// TCP and UDP ports.
fn start_with_syslog(dir: &std::path::Path) -> (Server, u16, u16) {
    let (tcp, udp) = (free_port(), free_port());
    let cfg = dir.join("cfg.yml");
    std::fs::write(
        &cfg,
        format!("logs:\n  syslog:\n    listen_tcp: 127.0.0.1:{tcp}\n    listen_udp: 127.0.0.1:{udp}\n    job: nodes\n"),
    )
    .expect("cfg");
    let srv = Server::start(&dir.join("data"), &["--config", cfg.to_str().expect("path")]);
    (srv, tcp, udp)
}

#[test]
fn syslog_over_tcp_and_udp_from_logger() {
    let Some(logger) = require_tool("logger", "apt-get install bsdutils") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (srv, tcp, udp) = start_with_syslog(tmp.path());
    let send = |args: &[&str], msg: &str| {
        let st = std::process::Command::new(&logger)
            .args(["--server", "127.0.0.1", "--tag", "mailer", "--id=4242"])
            .args(args)
            .arg(msg)
            .status()
            .expect("run logger");
        assert!(st.success(), "logger {args:?} failed");
    };
    let tcp_s = tcp.to_string();
    let udp_s = udp.to_string();
    send(
        &[
            "--tcp",
            "--port",
            &tcp_s,
            "--octet-count",
            "--rfc5424",
            "--priority",
            "mail.err",
        ],
        "tcp octet-counted 5424",
    );
    send(
        &["--tcp", "--port", &tcp_s, "--rfc3164", "--priority", "auth.info"],
        "tcp newline 3164",
    );
    send(
        &[
            "--udp",
            "--port",
            &udp_s,
            "--rfc5424",
            "--sd-id",
            "mail@32473",
            "--sd-param",
            "id=\"m-7\"",
        ],
        "udp 5424",
    );
    let now = now_ns();
    let got = wait_for("syslog lines queryable", 20, || {
        let data = query_range(
            &srv,
            r#"{job="nodes", app="mailer"}"#,
            now - 3_600_000_000_000,
            now + 60_000_000_000,
            &[],
        );
        let lines = lines_in(&data, false);
        (lines.len() == 3).then_some(data)
    });
    let mut lines = lines_in(&got, false);
    lines.sort();
    assert_eq!(lines, vec!["tcp newline 3164", "tcp octet-counted 5424", "udp 5424"]);
    let data = query_range(
        &srv,
        r#"{job="nodes"} | severity="error", facility="mail""#,
        now - 3_600_000_000_000,
        now + 60_000_000_000,
        &[],
    );
    assert_eq!(lines_of(&data), vec!["tcp octet-counted 5424"]);
    let data = query_range(
        &srv,
        r#"{job="nodes"} | mail_32473_id="m-7""#,
        now - 3_600_000_000_000,
        now + 60_000_000_000,
        &[],
    );
    assert_eq!(lines_of(&data), vec!["udp 5424"]);
    assert_eq!(data["result"][0]["stream"]["procid"], "4242");
}

#[test]
fn rsyslog_forwards_files_over_tcp_and_udp() {
    // Debian installs rsyslogd in /usr/sbin, which a user's PATH may lack.
    let rsyslogd = require_tool("rsyslogd", "apt-get install rsyslog")
        .or_else(|| Some(std::path::PathBuf::from("/usr/sbin/rsyslogd")).filter(|p| p.is_file()));
    let Some(rsyslogd) = rsyslogd else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (srv, tcp, udp) = start_with_syslog(tmp.path());
    // rsyslog tails two files: one forwarded over TCP as RFC 5424 with
    // octet counting, one over UDP in the traditional (RFC 3164) format.
    let dir = tmp.path();
    let (tcp_log, udp_log) = (dir.join("tcp.log"), dir.join("udp.log"));
    std::fs::write(&tcp_log, "disk almost full on /var/mail\n").expect("write");
    std::fs::write(&udp_log, "queue run started\n").expect("write");
    let conf = format!(
        r#"global(workDirectory="{work}")
module(load="imfile" PollingInterval="1")
ruleset(name="tcp") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
ruleset(name="udp") {{
  action(type="omfwd" target="127.0.0.1" port="{udp}" protocol="udp" template="RSYSLOG_TraditionalForwardFormat")
}}
input(type="imfile" File="{tcp_log}" Tag="mailstore" Facility="local3" Severity="warning" ruleset="tcp")
input(type="imfile" File="{udp_log}" Tag="mailqueue" Facility="mail" Severity="info" ruleset="udp")
"#,
        work = dir.display(),
        tcp_log = tcp_log.display(),
        udp_log = udp_log.display(),
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).expect("rsyslog conf");
    let mut cmd = std::process::Command::new(&rsyslogd);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"));
    let _rsyslog = Proc::spawn(cmd, &dir.join("rsyslogd.out"));
    let now = now_ns();
    let query = |q: &str| query_range(&srv, q, now - 3_600_000_000_000, now + 60_000_000_000, &[]);
    wait_for("lines forwarded by rsyslog", 30, || {
        (lines_of(&query(r#"{job="nodes", app=~"mail.+"}"#)).len() == 2).then_some(())
    });
    // A line appended later follows the first one over the same connection.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&tcp_log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"disk full on /var/mail\n"))
        .expect("append");
    let tcp_lines = wait_for("the appended line", 30, || {
        let lines = lines_of(&query(r#"{job="nodes", app="mailstore"}"#));
        (lines.len() == 2).then_some(lines)
    });
    assert_eq!(
        tcp_lines,
        vec!["disk full on /var/mail", "disk almost full on /var/mail"]
    );
    let data = query(r#"{app="mailstore"} | severity="warning", facility="local3""#);
    assert_eq!(lines_of(&data).len(), 2, "RFC 5424 priority kept: {data}");
    let data = query(r#"{app="mailqueue"} | severity="informational", facility="mail""#);
    assert_eq!(lines_of(&data), vec!["queue run started"], "RFC 3164 over UDP: {data}");
}

#[test]
fn json_lines_over_http_are_stored_with_their_fields() {
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let now = now_ns();
    let t = |k: i64| (now - 60_000_000_000 + k * 1_000_000_000).to_string();
    let body = format!(
        "{{\"timestamp\":{},\"message\":\"login ok\",\"host\":\"mx-1\",\"app\":\"imap\",\"user\":{{\"id\":7}}}}\n\
         {{\"timestamp\":{},\"message\":\"login failed\",\"host\":\"mx-1\",\"app\":\"imap\",\"level\":\"warn\"}}\n\
         this line is not JSON\n",
        t(1),
        t(2)
    );
    // Gzip, as Fluent Bit and Vector send it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let r = client()
        .post(srv.url("/insert/jsonline"))
        .query(&[("_stream_fields", "host,app")])
        .header("Content-Encoding", "gzip")
        .body(gz)
        .send()
        .expect("push");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    assert_eq!(status, 400, "the bad line is named: {text}");
    assert!(
        text.contains("line 3: invalid JSON") && text.contains("2 stored"),
        "{text}"
    );
    let data = query_range(
        &srv,
        r#"{host="mx-1", app="imap"} | user_id="7" or level="warn""#,
        now - 3_600_000_000_000,
        now + 60_000_000_000,
        &[("direction", "forward")],
    );
    assert_eq!(lines_in(&data, false), vec!["login ok", "login failed"]);
    // Without stream fields the stream is named after the service.
    let r = client()
        .post(srv.url("/insert/jsonline"))
        .body(format!("{{\"_time\":{},\"_msg\":\"queued\",\"app\":\"smtp\"}}", t(3)))
        .send()
        .expect("push");
    assert_eq!(r.status().as_u16(), 204);
    let data = query_range(
        &srv,
        r#"{service_name="smtp"}"#,
        now - 3_600_000_000_000,
        now + 60_000_000_000,
        &[],
    );
    assert_eq!(lines_of(&data), vec!["queued"]);
}

#[test]
fn live_tail_over_websocket_gets_the_backlog_then_new_lines() {
    let tmp = tempfile::tempdir().expect("tmp");
    let srv = Server::start(&tmp.path().join("data"), &[]);
    let now = now_ns();
    let push = |lines: &[(&str, i64)]| {
        let values: Vec<Value> = lines.iter().map(|(l, t)| json!([t.to_string(), l])).collect();
        let body = json!({"streams": [{"stream": {"app": "tail"}, "values": values}]});
        assert_eq!(push_json(&srv, None, &body).0, 204);
    };
    push(&[("old one", now - 2_000_000_000), ("old two", now - 1_000_000_000)]);
    let url = format!(
        "ws://{}/loki/api/v1/tail?query={}&limit=10",
        srv.http,
        form_urlencoded_query(r#"{app="tail"} != "skip""#)
    );
    let (mut ws, _) = tungstenite::connect(url.as_str()).expect("websocket");
    let mut got: Vec<String> = Vec::new();
    let read = |ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
                got: &mut Vec<String>| {
        let msg = ws.read().expect("message");
        let v: Value = serde_json::from_str(msg.to_text().expect("text")).expect("json");
        for s in v["streams"].as_array().expect("streams") {
            assert_eq!(s["stream"]["app"], "tail");
            for e in s["values"].as_array().expect("values") {
                got.push(e[1].as_str().expect("line").to_string());
            }
        }
    };
    read(&mut ws, &mut got);
    assert_eq!(got, vec!["old one", "old two"], "the backlog first");
    push(&[("skip me", now), ("new three", now + 1)]);
    read(&mut ws, &mut got);
    assert_eq!(got, vec!["old one", "old two", "new three"], "then new lines, filtered");
    let _ = ws.close(None);
}

/// Percent-encodes a query parameter value.
fn form_urlencoded_query(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[test]
fn logql_rules_alert_and_record_through_the_rule_engine() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rules = tmp.path().join("log-rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: mail-errors
    interval: 1s
    rules:
      - alert: MailErrors
        expr: sum by (app) (count_over_time({app="mail"} |= "error" [1m])) > 2
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.app }} logged {{ $value }} errors in a minute"
      - record: app:log_errors:count1m
        expr: sum by (app) (count_over_time({app="mail"} |= "error" [1m]))
"#,
    )
    .expect("rules");
    let cfg = tmp.path().join("cfg.yml");
    std::fs::write(&cfg, "logs:\n  rule_files: [log-rules.yml]\n").expect("cfg");
    let srv = Server::start(&tmp.path().join("data"), &["--config", cfg.to_str().expect("path")]);
    let now = now_ns();
    let values: Vec<Value> = (0..3)
        .map(|i| json!([(now - i).to_string(), format!("smtp error {i}")]))
        .collect();
    assert_eq!(
        push_json(
            &srv,
            None,
            &json!({"streams": [{"stream": {"app": "mail"}, "values": values}]})
        )
        .0,
        204
    );
    let alert = wait_for("MailErrors firing", 30, || {
        let v: Value = client().get(srv.url("/api/v1/alerts")).send().ok()?.json().ok()?;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "MailErrors" && a["state"] == "firing")
            .cloned()
    });
    assert_eq!(alert["labels"]["app"], "mail");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["annotations"]["summary"], "mail logged 3 errors in a minute");
    let recorded = wait_for("recording rule output", 30, || {
        let v: Value = client()
            .get(srv.url("/api/v1/query"))
            .query(&[("query", "app:log_errors:count1m")])
            .send()
            .ok()?
            .json()
            .ok()?;
        v["data"]["result"].as_array().filter(|r| !r.is_empty()).cloned()
    });
    assert_eq!(recorded[0]["metric"]["app"], "mail");
    assert_eq!(recorded[0]["value"][1], "3");
}
