//! Syslog in: RFC 5424 and RFC 3164 messages over TCP (octet-counted or
//! newline framing, per RFC 6587) and UDP (one message per datagram).
//!
//! Each message becomes an entry of the stream `{job, host, app}` (job
//! from the configuration, host and app from the message); severity,
//! facility, process id, message id and RFC 5424 structured data become
//! structured metadata. Syslog has no acknowledgements: a TCP connection
//! stops being read while its batch waits for durability, which is all
//! the backpressure the protocol allows.

use std::net::SocketAddr;

use sightline_storage::logs::{LogEntry, LogPush, RawLabels};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::logstore::LogIngest;

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct SyslogOptions {
    /// TCP listen address, if any.
    pub tcp: Option<SocketAddr>,
    /// UDP listen address, if any.
    pub udp: Option<SocketAddr>,
    /// Value of the `job` label.
    pub job: String,
    /// Tenant the entries belong to.
    pub tenant: String,
}

/// Syslog severities by number (RFC 5424), as the `severity` metadata and
/// the journal reader's `level` label name them.
pub const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// A parsed message: stream labels and the entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogMessage {
    /// `host` and `app`.
    pub labels: RawLabels,
    /// The entry.
    pub entry: LogEntry,
}

/// Parses one syslog message (either RFC); `now_ns` stands in for a
/// missing or unreadable timestamp. `Err` names what is malformed.
pub fn parse(msg: &str, now_ns: i64) -> Result<SyslogMessage, String> {
    let msg = msg.trim_end_matches(['\n', '\r', '\0']);
    let rest = msg
        .strip_prefix('<')
        .ok_or("syslog message does not start with <PRI>")?;
    let end = rest
        .find('>')
        .filter(|e| *e <= 3)
        .ok_or("syslog message has no valid <PRI>")?;
    let pri: u32 = rest[..end].parse().map_err(|_| "syslog <PRI> is not a number")?;
    if pri > 191 {
        return Err(format!("syslog <PRI> {pri} is out of range (0-191)"));
    }
    let mut metadata = vec![
        ("severity".to_string(), SEVERITIES[(pri % 8) as usize].to_string()),
        ("facility".to_string(), FACILITIES[(pri / 8) as usize].to_string()),
    ];
    let body = &rest[end + 1..];
    let (host, app, ts, line) = if let Some(r) = body.strip_prefix("1 ") {
        rfc5424(r, now_ns, &mut metadata)?
    } else {
        rfc3164(body, now_ns, &mut metadata)
    };
    let mut labels = vec![];
    if !host.is_empty() && host != "-" {
        labels.push(("host".to_string(), host));
    }
    if !app.is_empty() && app != "-" {
        labels.push(("app".to_string(), app));
    }
    metadata.sort();
    Ok(SyslogMessage {
        labels,
        entry: LogEntry { ts, line, metadata },
    })
}

fn next_field<'a>(s: &mut &'a str) -> &'a str {
    let (f, r) = s.split_once(' ').unwrap_or((s, ""));
    *s = r;
    f
}

type Parsed = (String, String, i64, String);

fn rfc5424(mut r: &str, now_ns: i64, meta: &mut Vec<(String, String)>) -> Result<Parsed, String> {
    let ts_text = next_field(&mut r);
    let ts = if ts_text == "-" {
        now_ns
    } else {
        chrono::DateTime::parse_from_rfc3339(ts_text)
            .ok()
            .and_then(|d| d.timestamp_nanos_opt())
            .ok_or_else(|| format!("RFC 5424 timestamp {ts_text:?} is not RFC 3339"))?
    };
    let host = next_field(&mut r).to_string();
    let app = next_field(&mut r).to_string();
    let procid = next_field(&mut r);
    let msgid = next_field(&mut r);
    if procid != "-" && !procid.is_empty() {
        meta.push(("procid".into(), procid.into()));
    }
    if msgid != "-" && !msgid.is_empty() {
        meta.push(("msgid".into(), msgid.into()));
    }
    // Structured data: "-" or [id k="v" ...]...
    if let Some(x) = r.strip_prefix('-') {
        r = x.strip_prefix(' ').unwrap_or(x);
    } else {
        while r.starts_with('[') {
            let close = sd_element_end(r).ok_or("unterminated RFC 5424 structured data")?;
            let elem = &r[1..close];
            let (id, mut params) = elem.split_once(' ').unwrap_or((elem, ""));
            while let Some(eq) = params.find("=\"") {
                let name = params[..eq].trim();
                let mut val = String::new();
                let mut chars = params[eq + 2..].char_indices();
                let mut consumed = params.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                val.push(n);
                            }
                        }
                        '"' => {
                            consumed = eq + 2 + i + 1;
                            break;
                        }
                        c => val.push(c),
                    }
                }
                let key: String = format!("{id}_{name}")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
                    .collect();
                meta.push((key, val));
                params = &params[consumed.min(params.len())..];
            }
            r = &r[close + 1..];
        }
        r = r.strip_prefix(' ').unwrap_or(r);
    }
    let line = r.strip_prefix('\u{feff}').unwrap_or(r).to_string();
    Ok((host, app, ts, line))
}

fn sd_element_end(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            ']' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

fn rfc3164(body: &str, now_ns: i64, meta: &mut Vec<(String, String)>) -> Parsed {
    // "Mmm dd hh:mm:ss host tag[pid]: msg"; anything unreadable is kept
    // as the line with the time of arrival.
    let mut ts = now_ns;
    let mut r = body;
    if body.len() >= 16 && body.as_bytes()[15] == b' ' {
        let year = chrono::Utc::now().format("%Y").to_string();
        let stamp = format!("{year} {}", body[..15].replace("  ", " 0"));
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y %b %d %H:%M:%S") {
            ts = t.and_utc().timestamp_nanos_opt().unwrap_or(now_ns);
            r = &body[16..];
        }
    }
    let mut host = String::new();
    let mut app = String::new();
    let mut rest = r;
    let first = r.split(' ').next().unwrap_or("");
    if !first.ends_with(':') && !first.contains('[') && r.contains(' ') {
        host = first.to_string();
        rest = &r[first.len() + 1..];
    }
    // The TAG is the first word, ended by ':', '[' or a space, as rsyslog
    // and syslog-ng read it (RFC 3164 4.1.3: any character outside the
    // tag ends it): `sshd[811]: msg`, `cron: msg`, and rsyslog's
    // `mailqueue msg` for a file input tagged without a colon.
    let word_end = rest.find(' ').unwrap_or(rest.len());
    let word = &rest[..word_end];
    let name_end = word.find(['[', ':']).unwrap_or(word.len());
    let name = &word[..name_end];
    let tail = &word[name_end..];
    let tag_like = !name.is_empty()
        && name.len() <= 48
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && (tail.is_empty() || tail == ":" || (tail.starts_with('[') && tail.trim_end_matches(':').ends_with(']')));
    if tag_like && word_end < rest.len() {
        app = name.to_string();
        if let Some(pid) = tail.strip_prefix('[') {
            meta.push(("procid".into(), pid.trim_end_matches(':').trim_end_matches(']').into()));
        }
        rest = &rest[word_end + 1..];
    }
    (host, app, ts, rest.to_string())
}

/// Splits a TCP byte stream into messages: octet counting (`LEN SP MSG`)
/// when a frame starts with a digit, else one message per line. Returns
/// the messages and how many bytes were consumed.
pub fn split_frames(buf: &[u8]) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        if buf[pos].is_ascii_digit() {
            let Some(sp) = buf[pos..].iter().position(|b| *b == b' ') else {
                break;
            };
            let Some(len) = std::str::from_utf8(&buf[pos..pos + sp])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                // Not a length: treat as a line.
                let Some(nl) = buf[pos..].iter().position(|b| *b == b'\n') else {
                    break;
                };
                out.push(String::from_utf8_lossy(&buf[pos..pos + nl]).into_owned());
                pos += nl + 1;
                continue;
            };
            let start = pos + sp + 1;
            if buf.len() < start + len {
                break;
            }
            out.push(String::from_utf8_lossy(&buf[start..start + len]).into_owned());
            pos = start + len;
        } else if buf[pos] == b'\n' || buf[pos] == b'\r' {
            pos += 1;
        } else {
            let Some(nl) = buf[pos..].iter().position(|b| *b == b'\n') else {
                break;
            };
            out.push(String::from_utf8_lossy(&buf[pos..pos + nl]).into_owned());
            pos += nl + 1;
        }
    }
    (out, pos)
}

fn to_push(opts: &SyslogOptions, msgs: &[String]) -> LogPush {
    let now = sightline_storage::logs::now_ns();
    let mut streams: std::collections::BTreeMap<RawLabels, Vec<LogEntry>> = Default::default();
    for m in msgs {
        let parsed = parse(m, now).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "syslog: unparsable message kept as a line");
            SyslogMessage {
                labels: Vec::new(),
                entry: LogEntry::new(now, m.clone()),
            }
        });
        let mut labels = parsed.labels;
        labels.push(("job".into(), opts.job.clone()));
        labels.sort();
        streams.entry(labels).or_default().push(parsed.entry);
    }
    LogPush {
        tenant: opts.tenant.clone(),
        streams: streams.into_iter().collect(),
    }
}

async fn store(state: &LogIngest, opts: &SyslogOptions, msgs: &[String]) {
    if msgs.is_empty() {
        return;
    }
    match state.store(to_push(opts, msgs)).await {
        Ok(r) => {
            if let Some(why) = r.first_rejection {
                tracing::warn!(rejected = r.rejected, reason = %why, "syslog: entries refused");
            }
        }
        Err(e) => tracing::warn!(error = %e, messages = msgs.len(), "syslog: entries not stored"),
    }
}

/// Binds the configured listeners (so a bad address fails start-up) and
/// returns the task serving them until `stop`.
pub async fn start(
    state: LogIngest,
    opts: SyslogOptions,
    stop: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let tcp = match opts.tcp {
        Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
        None => None,
    };
    let udp = match opts.udp {
        Some(a) => Some(tokio::net::UdpSocket::bind(a).await?),
        None => None,
    };
    Ok(tokio::spawn(async move {
        let mut tasks = Vec::new();
        if let Some(l) = tcp {
            tasks.push(tokio::spawn(serve_tcp(l, state.clone(), opts.clone(), stop.clone())));
        }
        if let Some(u) = udp {
            tasks.push(tokio::spawn(serve_udp(u, state.clone(), opts.clone(), stop.clone())));
        }
        for t in tasks {
            let _ = t.await;
        }
    }))
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn serve_tcp(l: tokio::net::TcpListener, state: LogIngest, opts: SyslogOptions, stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stopped(stop.clone()) => return,
            acc = l.accept() => {
                let Ok((mut conn, _)) = acc else { continue };
                let (state, opts, stop) = (state.clone(), opts.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = vec![0u8; 64 << 10];
                    loop {
                        let n = tokio::select! {
                            _ = stopped(stop.clone()) => 0,
                            r = conn.read(&mut chunk) => r.unwrap_or(0),
                        };
                        if n == 0 {
                            // The last line may lack its newline.
                            if !buf.is_empty() {
                                buf.push(b'\n');
                                let (msgs, _) = split_frames(&buf);
                                store(&state, &opts, &msgs).await;
                            }
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let (msgs, used) = split_frames(&buf);
                        buf.drain(..used);
                        store(&state, &opts, &msgs).await;
                    }
                });
            }
        }
    }
}

async fn serve_udp(u: tokio::net::UdpSocket, state: LogIngest, opts: SyslogOptions, stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            _ = stopped(stop.clone()) => return,
            r = u.recv_from(&mut buf) => {
                let Ok((n, _)) = r else { continue };
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                store(&state, &opts, &[msg]).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_fields() {
        let m = parse(
            "<165>1 2026-11-26T10:00:00.5Z mx1.example mailer 4242 ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appl\\\"x\"] \u{feff}queue full",
            0,
        )
        .expect("parses");
        assert_eq!(
            m.labels,
            vec![
                ("host".to_string(), "mx1.example".to_string()),
                ("app".into(), "mailer".into())
            ]
        );
        assert_eq!(m.entry.line, "queue full");
        assert_eq!(m.entry.ts, 1_795_687_200_500_000_000);
        let meta: std::collections::BTreeMap<_, _> = m.entry.metadata.into_iter().collect();
        assert_eq!(meta["severity"], "notice");
        assert_eq!(meta["facility"], "local4");
        assert_eq!(meta["procid"], "4242");
        assert_eq!(meta["exampleSDID_32473_eventSource"], "Appl\"x");
    }

    #[test]
    fn rfc3164_fields() {
        let m = parse("<38>Nov  6 09:05:01 node3 sshd[811]: Accepted publickey for root", 0).expect("parses");
        assert_eq!(
            m.labels,
            vec![("host".to_string(), "node3".to_string()), ("app".into(), "sshd".into())]
        );
        assert_eq!(m.entry.line, "Accepted publickey for root");
        let meta: std::collections::BTreeMap<_, _> = m.entry.metadata.into_iter().collect();
        assert_eq!(
            (
                meta["severity"].as_str(),
                meta["facility"].as_str(),
                meta["procid"].as_str()
            ),
            ("informational", "auth", "811")
        );
        // rsyslog forwards a file input's tag without a colon.
        let m = parse("<22>Nov 26 17:52:59 vm mailqueue queue run started", 0).expect("parses");
        assert_eq!(m.labels[1], ("app".to_string(), "mailqueue".to_string()));
        assert_eq!(m.entry.line, "queue run started");
        let m = parse("<13>Nov 26 17:52:59 vm cron: (root) CMD (run-parts)", 0).expect("parses");
        assert_eq!(
            (m.labels[1].1.as_str(), m.entry.line.as_str()),
            ("cron", "(root) CMD (run-parts)")
        );
        assert!(parse("no pri", 0).is_err());
        assert!(parse("<999>x", 0).is_err());
    }

    #[test]
    fn tcp_framing_both_ways() {
        let (m, used) = split_frames(b"11 <13>1 - - -9 <13>hello\nline two\npartial");
        assert_eq!(
            m,
            vec!["<13>1 - - -".to_string(), "<13>hello".into(), "line two".into()]
        );
        assert_eq!(used, 35);
        let (m, _) = split_frames(b"<13>a\n<13>b\n");
        assert_eq!(m, vec!["<13>a".to_string(), "<13>b".into()]);
    }
}
