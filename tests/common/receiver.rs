//! A stand-in HTTP receiver for notification tests and the outage
//! benchmark (shared by both through `#[path]`).
#![allow(dead_code)]

/// A tiny HTTP server standing in for a notification receiver or an
/// Alertmanager: records every request (path, body) and answers 200, or
/// 503 while `fail_next` is above zero (counting down) and for every
/// `fail_every`-th request when that is set (the failure status can be
/// changed with `fail_status`).
pub struct Receiver {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// Requests still to fail.
    pub fail_next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Fail every n-th request (0: never).
    pub fail_every: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The status failures answer with (503 unless changed).
    pub fail_status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    /// When each request arrived (ms since the epoch), failed or not.
    pub arrivals: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
}

impl Receiver {
    /// Starts listening.
    pub fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let fail_next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fail_every = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fail_status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(503));
        let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (b, fnx, fev, fst, arr) = (
            bodies.clone(),
            fail_next.clone(),
            fail_every.clone(),
            fail_status.clone(),
            arrivals.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0usize;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                n += 1;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                arr.lock().expect("lock").push(now);
                let every = fev.load(Ordering::SeqCst);
                let fail = fnx
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                    .is_ok()
                    || (every > 0 && n.is_multiple_of(every));
                if fail {
                    let code = fst.load(Ordering::SeqCst);
                    let _ = stream.write_all(
                        format!("HTTP/1.1 {code} Failing\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                    );
                    continue;
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                b.lock()
                    .expect("lock")
                    .push((path, String::from_utf8_lossy(&body).into_owned()));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Receiver {
            port,
            bodies,
            fail_next,
            fail_every,
            fail_status,
            arrivals,
        }
    }

    /// Requests answered 200 so far: (path, body).
    pub fn bodies(&self) -> Vec<(String, String)> {
        self.bodies.lock().expect("lock").clone()
    }
}
