//! A deterministic, realistic log corpus for the logs benchmark: the
//! loghub samples of `../shared/data/logs/loghub/` (sshd, kernels, JVM
//! services, Apache, OpenStack), each line's `<*>` slots refilled with
//! fresh values of the same shape, plus nginx-style access logs and JSON
//! application logs of a webmail service; 800 hosts in 3 sites, each
//! stream in time order over the last `hours` hours.
#![allow(dead_code)]

use std::path::Path;

use super::rng::Rng;

/// One stream of the corpus.
pub struct GenStream {
    /// Stream labels.
    pub labels: Vec<(String, String)>,
    /// (ns, line, level) in time order.
    pub entries: Vec<(i64, String, &'static str)>,
}

/// A loghub event: its content and template.
struct Event {
    content: String,
    template: String,
}

/// Splits one CSV record (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn load_events(system: &str) -> Vec<Event> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/logs/loghub")
        .join(system)
        .join(format!("{system}_2k.log_structured.csv"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or_default());
    let ci = header.iter().position(|h| h == "Content").expect("Content column");
    let ti = header
        .iter()
        .position(|h| h == "EventTemplate")
        .expect("EventTemplate column");
    lines
        .filter_map(|l| {
            let f = csv_fields(l);
            Some(Event {
                content: f.get(ci)?.clone(),
                template: f.get(ti)?.clone(),
            })
        })
        .collect()
}

/// A fresh value of the same shape: digits stay digits, hex runs stay
/// hex, everything else is kept.
fn reshape(v: &str, rng: &mut Rng) -> String {
    let hexish = v.len() >= 6 && v.chars().all(|c| c.is_ascii_hexdigit()) && v.chars().any(|c| c.is_ascii_alphabetic());
    v.chars()
        .enumerate()
        .map(|(i, c)| {
            if c.is_ascii_digit() {
                let d = rng.below(10) as u8;
                if i == 0 && c != '0' {
                    (b'1' + (d % 9)) as char
                } else {
                    (b'0' + d) as char
                }
            } else if hexish && c.is_ascii_hexdigit() {
                b"0123456789abcdef"[rng.below(16) as usize] as char
            } else {
                c
            }
        })
        .collect()
}

/// The event's content with every slot refilled.
fn refill(e: &Event, rng: &mut Rng) -> String {
    let parts: Vec<&str> = e.template.split("<*>").collect();
    if parts.len() < 2 {
        return e.content.clone();
    }
    let mut out = String::with_capacity(e.content.len() + 8);
    let mut rest = e.content.as_str();
    for (i, lit) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(lit) {
                Some(r) => rest = r,
                None => return reshape(&e.content, rng),
            }
            out.push_str(lit);
            continue;
        }
        let pos = if lit.is_empty() {
            Some(if i == parts.len() - 1 { rest.len() } else { 0 })
        } else {
            rest.find(lit)
        };
        let Some(pos) = pos else {
            return reshape(&e.content, rng);
        };
        out.push_str(&reshape(&rest[..pos], rng));
        out.push_str(lit);
        rest = &rest[pos + lit.len()..];
    }
    out
}

fn level_of(line: &str) -> &'static str {
    let l = line.to_ascii_lowercase();
    if l.contains("error") || l.contains("fail") || l.contains("exception") || l.contains("fatal") {
        "error"
    } else if l.contains("warn") || l.contains("invalid") || l.contains("denied") {
        "warn"
    } else {
        "info"
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1-12, day, h, m, s, ms) of a ns timestamp, UTC.
fn civil(ns: i64) -> (i64, usize, i64, i64, i64, i64, i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as usize, d, sod / 3600, sod % 3600 / 60, sod % 60, ms)
}

/// Kinds of stream, with their share of a host's lines.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Syslog(&'static str, &'static str),
    Jvm(&'static str, &'static str),
    Apache,
    Access,
    Json,
    Nova,
}

struct Sources {
    sshd: Vec<Event>,
    kernel: Vec<Vec<Event>>,
    jvm: Vec<(&'static str, Vec<Event>)>,
    apache: Vec<Event>,
    nova: Vec<Event>,
}

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];
const PATHS: &[&str] = &[
    "/mail/inbox",
    "/mail/read",
    "/mail/send",
    "/api/v1/messages",
    "/api/v1/folders",
    "/login",
    "/static/app.js",
    "/static/style.css",
    "/contacts",
    "/calendar",
];
const MSGS: &[&str] = &[
    "message delivered",
    "message queued",
    "spam verdict computed",
    "attachment scanned",
    "mailbox quota checked",
    "imap session opened",
    "smtp relay refused",
    "search index updated",
    "token refreshed",
    "user logged in",
];

/// Generates about `target_bytes` of lines over `hosts` hosts.
pub fn generate(target_bytes: u64, hosts: usize, hours: u64, seed: u64) -> Vec<GenStream> {
    let src = Sources {
        sshd: load_events("OpenSSH"),
        kernel: vec![load_events("BGL"), load_events("Thunderbird"), load_events("Linux")],
        jvm: vec![
            ("hadoop", load_events("Hadoop")),
            ("spark", load_events("Spark")),
            ("zookeeper", load_events("Zookeeper")),
            ("hdfs", load_events("HDFS")),
        ],
        apache: load_events("Apache"),
        nova: load_events("OpenStack"),
    };
    let mut rng = Rng::new(seed);
    let mut streams: Vec<(GenStream, Kind, u64)> = Vec::new();
    for h in 0..hosts {
        let site = ["dc1", "dc2", "dc3"][h % 3];
        let cluster = format!("k8s-{site}-{}", h % 7);
        let host = format!("node-{h:03}");
        let role = h % 5;
        let mut kinds: Vec<(Kind, &str, u64)> = vec![
            (Kind::Syslog("sshd", "sshd"), "sshd", 2),
            (Kind::Syslog("kernel", "kernel"), "kernel", 1),
        ];
        match role {
            0 => kinds.push((Kind::Access, "nginx", 6)),
            1 => kinds.push((Kind::Json, "mail-api", 6)),
            2 => kinds.push((Kind::Jvm("hadoop", "org.apache.hadoop"), "hadoop", 5)),
            3 => kinds.push((Kind::Apache, "httpd", 3)),
            _ => kinds.push((Kind::Nova, "nova", 4)),
        }
        if role == 1 {
            kinds.push((Kind::Jvm("zookeeper", "org.apache.zookeeper"), "zookeeper", 1));
        }
        for (kind, app, weight) in kinds {
            streams.push((
                GenStream {
                    labels: vec![
                        ("app".into(), app.into()),
                        ("cluster".into(), cluster.clone()),
                        ("host".into(), host.clone()),
                        ("site".into(), site.into()),
                    ],
                    entries: Vec::new(),
                },
                kind,
                weight,
            ));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let start = now - (hours as i64) * 3_600_000_000_000 - 300_000_000_000;
    let span = (hours as i64) * 3_600_000_000_000;
    // Lines per stream in proportion to weight; the mix averages about
    // 127 bytes a line (measured), so aim a little above the target.
    let total_weight: u64 = streams.iter().map(|s| s.2).sum();
    let lines_total = target_bytes / 120;
    let mut produced = 0u64;
    for (s, kind, weight) in streams.iter_mut() {
        let n = (lines_total * *weight / total_weight).max(1);
        let step = span / n as i64;
        let host = s.labels[2].1.clone();
        let mut t = start + rng.below(step.max(1) as u64) as i64;
        for _ in 0..n {
            t += step.max(1) - 1 + rng.below(2) as i64;
            let line = make_line(*kind, &src, &host, t, &mut rng);
            produced += line.len() as u64 + 1;
            let level = level_of(&line);
            s.entries.push((t, line, level));
        }
    }
    let _ = produced;
    streams.into_iter().map(|s| s.0).collect()
}

fn pick<'a>(v: &'a [Event], rng: &mut Rng) -> &'a Event {
    &v[rng.below(v.len() as u64) as usize]
}

fn make_line(kind: Kind, src: &Sources, host: &str, t: i64, rng: &mut Rng) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    match kind {
        Kind::Syslog(prog, _) => {
            let content = if prog == "sshd" {
                refill(pick(&src.sshd, rng), rng)
            } else {
                let k = &src.kernel[rng.below(src.kernel.len() as u64) as usize];
                refill(pick(k, rng), rng)
            };
            let pid = if prog == "sshd" {
                format!("[{}]", 1000 + rng.below(60_000))
            } else {
                String::new()
            };
            format!(
                "{} {d:2} {h:02}:{mi:02}:{s:02} {host} {prog}{pid}: {content}",
                MONTHS[mo - 1]
            )
        }
        Kind::Jvm(name, pkg) => {
            let events = &src.jvm.iter().find(|(n, _)| *n == name).map_or(&src.jvm[0].1, |x| &x.1);
            let content = refill(pick(events, rng), rng);
            let lvl = match level_of(&content) {
                "error" => "ERROR",
                "warn" => "WARN",
                _ => "INFO",
            };
            format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02},{ms:03} {lvl} [main] {pkg}.Service: {content}")
        }
        Kind::Apache => {
            let content = refill(pick(&src.apache, rng), rng);
            format!(
                "[{} {} {d:02} {h:02}:{mi:02}:{s:02} {y}] {content}",
                ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(t / 86_400_000_000_000 % 7) as usize],
                MONTHS[mo - 1]
            )
        }
        Kind::Nova => {
            let content = refill(pick(&src.nova, rng), rng);
            format!(
                "{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ms:03} {} INFO nova.compute.manager {content}",
                2000 + rng.below(30_000)
            )
        }
        Kind::Access => {
            let ip = format!("10.{}.{}.{}", rng.below(256), rng.below(256), 1 + rng.below(254));
            let path = PATHS[rng.below(PATHS.len() as u64) as usize];
            let status = [200, 200, 200, 200, 200, 302, 304, 404, 500, 503][rng.below(10) as usize];
            let size = 200 + rng.below(80_000);
            let method = if rng.below(5) == 0 { "POST" } else { "GET" };
            format!(
                "{ip} - - [{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000] \"{method} {path}?id={} HTTP/1.1\" {status} {size} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) Firefox/{}.0\"",
                MONTHS[mo - 1],
                rng.below(1_000_000),
                100 + rng.below(30)
            )
        }
        Kind::Json => {
            let msg = MSGS[rng.below(MSGS.len() as u64) as usize];
            let level = if rng.below(20) == 0 {
                "error"
            } else if rng.below(10) == 0 {
                "warn"
            } else {
                "info"
            };
            format!(
                "{{\"ts\":\"{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z\",\"level\":\"{level}\",\"service\":\"mail-api\",\"msg\":\"{msg}\",\"msgid\":\"{:016x}\",\"user\":\"{}{}\",\"latency_ms\":{},\"size\":{}}}",
                rng.next_u64(),
                USERS[rng.below(USERS.len() as u64) as usize],
                rng.below(100_000),
                1 + rng.below(900),
                100 + rng.below(5_000_000)
            )
        }
    }
}
