//! `limit_req` and `limit_conn` (issue 10), side by side with Debian's nginx (one
//! worker) and with ringx on two workers, which must admit together what one
//! nginx admits: ringx's zones are one table for all workers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A site whose locations are rate-limited at 1r/m (so nothing leaks away while a
/// test runs) with each option.
fn req_block(port: u16, root: &str) -> String {
    format!(
        r#"access_log off;
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=dry:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=st:1m rate=1r/m;
    limit_req_zone $arg_k zone=bykey:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=fast:1m rate=10r/s;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        add_header X-Limit "$limit_req_status" always;
        location /burst/ {{ limit_req zone=one burst=2 nodelay; }}
        location /dry/ {{ limit_req zone=dry; limit_req_dry_run on; }}
        location /st/ {{ limit_req zone=st; limit_req_status 429; }}
        location /key/ {{ limit_req zone=bykey; }}
        location /delay/ {{ limit_req zone=fast burst=5; }}
        location /free/ {{ }}
    }}"#
    )
}

fn site(tag: &str, dirs: &[&str]) -> std::path::PathBuf {
    let root = tempdir(tag);
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::write(root.join(d).join("index.html"), format!("{d}\n")).unwrap();
    }
    root
}

fn get_status(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = get(addr, path, "x").unwrap();
    (r.status, r.header("x-limit").unwrap_or("").to_string())
}

#[test]
fn limit_req_matches_nginx() {
    let root = site("limit-req", &["burst", "dry", "st", "key", "delay", "free"]);
    let r = root.display().to_string();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| req_block(p, &r)) else {
        return;
    };
    let paths = [
        "/burst/",
        "/burst/",
        "/burst/",
        "/burst/",
        "/burst/",
        "/dry/",
        "/dry/",
        "/st/",
        "/st/",
        "/key/?k=a",
        "/key/?k=b",
        "/key/?k=a",
        "/key/",
        "/key/",
        "/free/",
    ];
    let mut diffs = Vec::new();
    for p in paths {
        let (rs, ns) = (get_status(ra, p), get_status(na, p));
        if rs != ns {
            diffs.push(format!("{p}: ringx {rs:?} nginx {ns:?}"));
        }
    }
    // A request over the rate within the burst waits (10r/s: 100 ms per excess).
    let mut delayed = Vec::new();
    for a in [ra, na] {
        get_status(a, "/delay/");
        let t = Instant::now();
        let s = get_status(a, "/delay/");
        delayed.push((s, t.elapsed() >= Duration::from_millis(80)));
    }
    if delayed[0] != delayed[1] {
        diffs.push(format!("/delay/: ringx {:?} nginx {:?}", delayed[0], delayed[1]));
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // What the agreement is: three in the burst, then refused; dry run passes.
    let fresh = site("limit-req2", &["burst", "dry", "st", "key", "delay", "free"]);
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ {} }}",
        req_block(port, &fresh.display().to_string())
    );
    let _own = Ringx::start(&conf, &[], addr_of(port));
    let got: Vec<_> = (0..4).map(|_| get_status(addr_of(port), "/burst/")).collect();
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [200, 200, 200, 503],
        "{got:?}"
    );
    assert_eq!(got[3].1, "REJECTED");
    get_status(addr_of(port), "/dry/");
    assert_eq!(get_status(addr_of(port), "/dry/"), (200, "REJECTED_DRY_RUN".into()));
    assert_eq!(delayed[0], ((200, "DELAYED".into()), true));
}

/// Two ringx workers admit what one nginx worker admits: the burst is global.
#[test]
fn two_workers_admit_what_one_nginx_admits() {
    let root = site("limit-2w", &["burst"]);
    let block = |port: u16| {
        format!(
            "access_log off; limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;\n\
             server {{ listen 127.0.0.1:{port}; root {}; location /burst/ {{ limit_req zone=one burst=4 nodelay; }} }}",
            root.display()
        )
    };
    let Some((_r1, _nginx, _, na)) = side_by_side(block) else {
        return;
    };
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; worker_processes 2; events {{}} http {{ {} }}",
        block(port)
    );
    let _ringx = Ringx::start(&conf, &[], addr_of(port));
    // New connections each, so both workers take some.
    let admitted = |a: SocketAddr| (0..20).filter(|_| get_status(a, "/burst/").0 == 200).count();
    let n = admitted(na);
    assert_eq!(n, 5);
    assert_eq!(admitted(addr_of(port)), n);
}

/// A backend that holds each response until `release` is set.
fn held_backend() -> (SocketAddr, Arc<AtomicBool>) {
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    let addr = serve_each(move |mut s| {
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let hold = buf.starts_with(b"GET /hold");
        while hold && !rel.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
    });
    (addr, release)
}

/// Starts a request that the backend holds; the stream to read its answer from.
fn start_held(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    s
}

fn conn_block(port: u16, be: SocketAddr) -> String {
    format!(
        r#"access_log off;
    limit_conn_zone $binary_remote_addr zone=addr:1m;
    server {{
        listen 127.0.0.1:{port};
        add_header X-Conn "$limit_conn_status" always;
        location / {{ limit_conn addr 2; proxy_pass http://{be}; }}
    }}"#
    )
}

/// `limit_conn`: requests being served count until they end, across workers.
#[test]
fn limit_conn_matches_nginx_and_is_global_across_workers() {
    let (be, release) = held_backend();
    let Some((_r, _nginx, _, na)) = side_by_side(|p| conn_block(p, be)) else {
        return;
    };
    let port = free_port();
    let logs = tempdir("limit-conn");
    let conf = format!(
        "daemon off; pid off; worker_processes 2; error_log {}/error.log info; events {{}} http {{ {} }}",
        logs.display(),
        conn_block(port, be)
    );
    let ringx = Ringx::start(&conf, &[], addr_of(port));
    let mut seen = Vec::new();
    for a in [na, addr_of(port)] {
        release.store(false, Ordering::SeqCst);
        let held: Vec<_> = (0..2).map(|_| start_held(a)).collect();
        // Both reach the backend before the third asks.
        std::thread::sleep(Duration::from_millis(300));
        let third = get(a, "/x", "x").unwrap();
        release.store(true, Ordering::SeqCst);
        let mut answers = Vec::new();
        for mut h in held {
            let mut b = Vec::new();
            let _ = h.read_to_end(&mut b);
            answers.push(String::from_utf8_lossy(&b).lines().next().unwrap_or("").to_string());
        }
        let after = get(a, "/x", "x").unwrap();
        seen.push((
            third.status,
            third.header("x-conn").map(str::to_owned),
            answers,
            after.status,
        ));
    }
    assert_eq!(seen[0], seen[1], "nginx, then ringx");
    assert_eq!(seen[1].0, 503);
    assert_eq!(seen[1].1.as_deref(), Some("REJECTED"));
    assert_eq!(seen[1].3, 200);
    let log = std::fs::read_to_string(logs.join("error.log")).unwrap();
    assert!(
        log.contains("[error]") && log.contains("limiting connections by zone \"addr\", client: 127.0.0.1"),
        "{log}"
    );
    drop(ringx);
}

/// The log levels, a custom `limit_conn_status` and `limit_conn_dry_run`: a refusal
/// is logged at `limit_*_log_level`, a delay one level below it; the dry run lets the
/// request through and says so in `$limit_conn_status`.
#[test]
fn log_levels_status_and_dry_run() {
    let (be, release) = held_backend();
    let logs = tempdir("limit-levels");
    let root = site("limit-levels-root", &["r"]);
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; error_log {d}/error.log info; events {{}} http {{ access_log off;\n\
         limit_req_zone $binary_remote_addr zone=q:1m rate=1r/m;\n\
         limit_req_zone $binary_remote_addr zone=slow:1m rate=10r/s;\n\
         limit_conn_zone $binary_remote_addr zone=c:1m;\n\
         limit_conn_zone $binary_remote_addr zone=cd:1m;\n\
         server {{ listen 127.0.0.1:{port}; root {r};\n\
           add_header X-Conn \"$limit_conn_status\" always;\n\
           location /r/ {{ limit_req zone=q; limit_req_log_level warn; }}\n\
           location /d/ {{ limit_req zone=slow burst=5; limit_req_log_level warn; }}\n\
           location /c/ {{ limit_conn c 1; limit_conn_status 429; limit_conn_log_level notice; proxy_pass http://{be}/; }}\n\
           location /cd/ {{ limit_conn cd 1; limit_conn_dry_run on; proxy_pass http://{be}/; }} }} }}",
        d = logs.display(),
        r = root.display()
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    get(addr_of(port), "/r/", "x").unwrap();
    assert_eq!(get(addr_of(port), "/r/", "x").unwrap().status, 503);
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::write(root.join("d/index.html"), "d").unwrap();
    for _ in 0..2 {
        get(addr_of(port), "/d/", "x").unwrap();
    }
    let mut held = start_held_at(addr_of(port), "/c/hold");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(addr_of(port), "/c/x", "x").unwrap().status, 429);
    release.store(true, Ordering::SeqCst);
    let _ = held.read_to_end(&mut Vec::new());
    release.store(false, Ordering::SeqCst);
    let mut held = start_held_at(addr_of(port), "/cd/hold");
    std::thread::sleep(Duration::from_millis(300));
    let dry = get(addr_of(port), "/cd/x", "x").unwrap();
    assert_eq!((dry.status, dry.header("x-conn")), (200, Some("REJECTED_DRY_RUN")));
    release.store(true, Ordering::SeqCst);
    let _ = held.read_to_end(&mut Vec::new());
    let log = std::fs::read_to_string(logs.join("error.log")).unwrap();
    for want in [
        "[warn]",
        "limiting requests, excess: 1.000 by zone \"q\"",
        "[notice]",
        // (The excess is 1.000 less what leaked in the milliseconds between the two.)
        ", by zone \"slow\"",
        "limiting connections by zone \"c\"",
        "limiting connections, dry run by zone \"cd\"",
    ] {
        assert!(log.contains(want), "{want:?} not in:\n{log}");
    }
    let level_of = |what: &str| {
        log.lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split('[').nth(1))
            .and_then(|l| l.split(']').next())
            .map(str::to_owned)
    };
    assert_eq!(level_of("limiting requests").as_deref(), Some("warn"));
    assert_eq!(level_of("delaying request").as_deref(), Some("notice"));
    assert_eq!(level_of("by zone \"c\"").as_deref(), Some("notice"));
}

fn start_held_at(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    s
}
