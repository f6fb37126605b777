//! Active health checks (nginx Plus's `health_check` and `match`).
//!
//! For each upstream with a `health_check`, exactly one worker probes (the worker
//! whose index is the upstream's index modulo the number of workers), one task per
//! server: every `interval` it connects, sends `GET uri HTTP/1.0`, reads the response
//! and judges it with [`judge`] (by default a 2xx or 3xx status). `fails` consecutive
//! failures mark the server unhealthy for every worker (the shared `unhealthy` flag);
//! `passes` consecutive successes bring it back and start its `slow_start` ramp.
//! Probes are not client requests: a server that starts failing its checks is out
//! before any client meets it.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::balance::shared::now_ms_at;
use crate::config::model::{HeaderCond, HealthCheck, Match, Upstream};
use crate::net::Stream;
use crate::observe::log;
use crate::proto::h1::response::{parse_response, ResponseHead};
use crate::runtime::worker::Worker;

/// Whether a probe response passes. `buf` holds the whole response (head and body).
pub fn judge(m: Option<&Match>, buf: &[u8]) -> bool {
    let mut head = ResponseHead::default();
    if !matches!(parse_response(buf, &mut head), Ok(Some(()))) {
        return false;
    }
    let code = head.code;
    let Some(m) = m else { return (200..400).contains(&code) };
    let status_ok = if m.status.is_empty() {
        (200..400).contains(&code)
    } else {
        let pos: Vec<_> = m.status.iter().filter(|s| !s.2).collect();
        let in_pos = pos.is_empty() || pos.iter().any(|&&(lo, hi, _)| (lo..=hi).contains(&code));
        let in_neg = m.status.iter().any(|&(lo, hi, neg)| neg && (lo..=hi).contains(&code));
        in_pos && !in_neg
    };
    if !status_ok {
        return false;
    }
    for (name, cond) in &m.headers {
        let v = head
            .headers
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| String::from_utf8_lossy(h.value.get(buf)).trim().to_string());
        let ok = match (cond, &v) {
            (HeaderCond::Present, v) => v.is_some(),
            (HeaderCond::Absent, v) => v.is_none(),
            (HeaderCond::Eq(x), Some(v)) => v == x,
            (HeaderCond::Ne(x), Some(v)) => v != x,
            (HeaderCond::Re(r), Some(v)) => r.is_match(v.as_bytes()),
            (HeaderCond::NotRe(r), Some(v)) => !r.is_match(v.as_bytes()),
            (_, None) => false,
        };
        if !ok {
            return false;
        }
    }
    let body = &buf[head.head_len.min(buf.len())..];
    m.body.iter().all(|(r, neg)| r.is_match(body) != *neg)
}

/// Starts this worker's probe tasks for `snap_gen` (they stop when the worker's
/// snapshot changes or it quits).
pub fn start(w: &Rc<Worker>, upstreams: &[Arc<Upstream>], workers: usize) {
    for u in upstreams {
        let Some(hc) = u.health_check.get() else { continue };
        if u.index % workers.max(1) != w.id {
            continue;
        }
        for si in 0..u.servers.len() {
            let (w, u) = (w.clone(), u.clone());
            let gen = w.generation();
            tokio::task::spawn_local(async move {
                let hc: &HealthCheck = u.health_check.get().expect("checked above");
                probe_loop(&w, &u, si, hc, gen).await;
            });
        }
        let _ = hc;
    }
}

async fn probe_once(u: &Upstream, si: usize, hc: &HealthCheck) -> bool {
    let mut addr = u.servers[si].addr.clone();
    if let (Some(p), crate::net::Peer::Ip(a)) = (hc.port, &mut addr) {
        a.set_port(p);
    }
    let timeout = hc.interval.min(Duration::from_secs(5)).max(Duration::from_millis(500));
    let Ok(s) = Stream::connect_peer(&addr, timeout).await else {
        return false;
    };
    let req = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: ringx-health-check\r\nConnection: close\r\n\r\n",
        hc.uri, hc.host
    );
    if s.write_all(req.into_bytes(), timeout).await.is_err() {
        return false;
    }
    let mut buf = Vec::with_capacity(4096);
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || buf.len() >= 256 * 1024 {
            break;
        }
        match s.read_append(buf, 64 * 1024, left).await {
            Ok((0, b)) => {
                buf = b;
                break;
            }
            Ok((_, b)) => buf = b,
            Err(_) => return false,
        }
    }
    judge(hc.matcher.as_deref(), &buf)
}

async fn probe_loop(w: &Worker, u: &Upstream, si: usize, hc: &HealthCheck, gen: u64) {
    let peer = &u.shared().peers[si];
    let (mut fails, mut passes) = (0u32, 0u32);
    loop {
        if w.quitting.get() || w.generation() != gen {
            return;
        }
        let ok = probe_once(u, si, hc).await;
        let unhealthy = peer.unhealthy.load(Relaxed);
        if ok {
            fails = 0;
            passes += 1;
            if unhealthy && passes >= hc.passes {
                peer.unhealthy.store(false, Relaxed);
                peer.recovered_at.store(now_ms_at(Instant::now()), Relaxed);
                log::notice(format_args!(
                    "health check: {} in upstream \"{}\" is healthy",
                    u.servers[si].name, u.name
                ));
            }
        } else {
            passes = 0;
            fails += 1;
            if !unhealthy && fails >= hc.fails {
                peer.unhealthy.store(true, Relaxed);
                log::warn(format_args!(
                    "health check: {} in upstream \"{}\" is unhealthy",
                    u.servers[si].name, u.name
                ));
            }
        }
        tokio::time::sleep(hc.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::build::{build, BuildEnv};
    use crate::config::parser::parse_str;

    fn matcher(text: &str) -> Arc<Match> {
        let conf = format!(
            "events {{}} http {{ access_log off; match m {{ {text} }} upstream u {{ server 127.0.0.1:1; }}
             server {{ listen 127.0.0.1:1; location / {{ proxy_pass http://u; health_check match=m; }} }} }}"
        );
        let t = parse_str(&conf, "t", std::path::Path::new("/tmp")).unwrap();
        let c = build(&t, &BuildEnv::at("/tmp")).unwrap();
        c.http.upstreams[0].health_check.get().unwrap().matcher.clone().unwrap()
    }

    #[test]
    fn default_is_2xx_3xx() {
        assert!(judge(None, b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(judge(None, b"HTTP/1.1 302 Found\r\n\r\n"));
        assert!(!judge(None, b"HTTP/1.1 500 Oops\r\n\r\n"));
        assert!(!judge(None, b"garbage"));
    }

    #[test]
    fn match_blocks() {
        let m = matcher("status 200; header Content-Type ~ json; body ~ \"\\\"ok\\\":true\";");
        assert!(judge(
            Some(&m),
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}"
        ));
        assert!(!judge(
            Some(&m),
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":false}"
        ));
        assert!(!judge(
            Some(&m),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{\"ok\":true}"
        ));
        assert!(!judge(
            Some(&m),
            b"HTTP/1.1 201 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}"
        ));
        let m = matcher("status ! 500-599; header !X-Broken;");
        assert!(judge(Some(&m), b"HTTP/1.1 404 Not Found\r\n\r\n"));
        assert!(!judge(Some(&m), b"HTTP/1.1 503 X\r\n\r\n"));
        assert!(!judge(Some(&m), b"HTTP/1.1 200 OK\r\nX-Broken: 1\r\n\r\n"));
    }
}
