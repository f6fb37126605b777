//! An open-loop HTTP/1.1 load generator for fixed-rate latency (what wrk2 does; wrk2
//! is not packaged here).
//!
//! `loadgen URL RATE SECONDS CONNECTIONS`: the requests of connection `c` are due at
//! `start + (i * CONNECTIONS + c) / RATE`. A request is sent at its due time or, if the
//! previous response on that connection is late, as soon as it arrives; its latency is
//! measured from the due time, so a stall counts for every request it delays
//! (coordinated omission corrected). Keep-alive GETs; prints one JSON line with the
//! achieved rate, errors and latency percentiles in microseconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut tmp = [0u8; 65536];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            let ok = head.starts_with("http/1.1 2") || head.starts_with("http/1.0 2");
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0);
            let need = p + 4 + cl;
            while buf.len() < need {
                match s.read(&mut tmp) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            buf.drain(..need);
            return ok;
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: loadgen URL RATE SECONDS CONNECTIONS");
        std::process::exit(2);
    }
    let url = a[1].strip_prefix("http://").expect("http:// URL");
    let (hostport, path) = url.split_at(url.find('/').unwrap_or(url.len()));
    let path = if path.is_empty() { "/" } else { path };
    let rate: f64 = a[2].parse().expect("RATE");
    let secs: f64 = a[3].parse().expect("SECONDS");
    let conns: usize = a[4].parse().expect("CONNECTIONS");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\n\r\n").into_bytes();
    let start = Instant::now() + Duration::from_millis(50);
    let per_conn = (rate * secs / conns as f64).ceil() as u64;
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let (hp, req) = (hostport.to_string(), req.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(per_conn as usize);
                let mut errors = 0u64;
                let mut s = TcpStream::connect(&hp).expect("connect");
                s.set_nodelay(true).ok();
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut buf = Vec::new();
                for i in 0..per_conn {
                    let due = start + Duration::from_secs_f64((i as f64 * conns as f64 + c as f64) / rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let ok = s.write_all(&req).is_ok() && read_response(&mut s, &mut buf);
                    if ok {
                        lat.push(due.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                        buf.clear();
                        match TcpStream::connect(&hp) {
                            Ok(n) => {
                                s = n;
                                s.set_nodelay(true).ok();
                                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                            }
                            Err(_) => break,
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().expect("thread");
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "RESULT {{\"requests\": {}, \"duration_us\": {}, \"errors\": {errors}, \"non2xx\": 0, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"max_us\": {}}}",
        all.len(),
        (elapsed * 1e6) as u64,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        all.last().copied().unwrap_or(0)
    );
}
