//! Request and response buffering (issue 10): `proxy_request_buffering` (a body read
//! whole before an upstream is chosen, sent with a Content-Length, retried on the
//! next server) and `proxy_buffering` (a response read ahead of a slow client, so
//! the upstream is done with as soon as it has answered), each against its `off`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

fn body_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn conf(port: u16, http: &str, locations: &str) -> String {
    format!(
        "daemon off; pid off; error_log stderr info; events {{}}
         http {{ access_log off; client_max_body_size 0; {http}
           server {{ listen 127.0.0.1:{port}; {locations} }} }}"
    )
}

/// A client that sends half its body, pauses, then the rest: with buffering on the
/// upstream is not even connected to until the body is all here; with it off the
/// request is under way at once.
#[test]
fn a_slow_body_reaches_the_upstream_only_once_whole() {
    let b = Backend::start("a");
    let port = free_port();
    let locs = format!(
        "location /on/ {{ proxy_pass http://{0}/; }}
         location /off/ {{ proxy_pass http://{0}/; proxy_http_version 1.1; proxy_request_buffering off; }}",
        b.addr
    );
    let _r = Ringx::start(&conf(port, "", &locs), &[], addr_of(port));
    let data = body_of(200_000);
    for (path, streams) in [("/on/echo", false), ("/off/echo", true)] {
        let before = b.conns.load(Ordering::SeqCst);
        let mut s = TcpStream::connect(addr_of(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        )
        .unwrap();
        s.write_all(&data[..100_000]).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let during = b.conns.load(Ordering::SeqCst) - before;
        assert_eq!(
            during,
            usize::from(streams),
            "{path}: upstream connections while the body is half sent"
        );
        s.write_all(&data[100_000..]).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).expect("a response");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body == data, "{path}: echo differs");
    }
}

/// A chunked body goes upstream de-chunked with a Content-Length (nginx sends it so
/// once it has it whole), also to an HTTP/1.1 upstream; with buffering off it
/// streams chunked. Past client_body_buffer_size it goes through a temporary file,
/// with nginx's warning.
#[test]
fn a_chunked_body_goes_upstream_with_a_content_length() {
    let b = Backend::start("a");
    let port = free_port();
    let locs = format!(
        "location /on/ {{ proxy_pass http://{0}/; proxy_http_version 1.1; client_body_buffer_size 1k; }}
         location /off/ {{ proxy_pass http://{0}/; proxy_http_version 1.1; proxy_request_buffering off; }}",
        b.addr
    );
    let r = Ringx::start(&conf(port, "", &locs), &[], addr_of(port));
    for size in [500usize, 300_000] {
        for (path, chunked) in [("/on/echo", false), ("/off/echo", true)] {
            let data = body_of(size);
            let mut raw =
                format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                    .into_bytes();
            for c in data.chunks(9000) {
                raw.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                raw.extend_from_slice(c);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"0\r\n\r\n");
            let resp = request(addr_of(port), &raw).expect("a response");
            assert_eq!(resp.status, 200, "{path} {size}");
            assert!(resp.body == data, "{path} {size}: echo differs");
            let rec = b.requests().last().unwrap().clone();
            assert!(rec.body == data);
            if chunked && size > 64 * 1024 {
                assert_eq!(rec.header("transfer-encoding"), Some("chunked"), "{path} {size}");
            } else if !chunked {
                assert_eq!(rec.header("transfer-encoding"), None, "{path} {size}");
                assert_eq!(
                    rec.header("content-length"),
                    Some(size.to_string().as_str()),
                    "{path} {size}"
                );
            }
        }
    }
    let err = r.stderr();
    assert_eq!(
        err.matches("a client request body is buffered to a temporary file")
            .count(),
        1,
        "only the 300 kB body on /on/ is over 1k and not in the receive buffer: {err}"
    );
}

/// A large POST whose first server refuses connections reaches the second one: the
/// body was read whole first (nginx's default). With buffering off the body still
/// streams from the client, yet nothing of it was sent: it may go again too. A server
/// that takes the request and then fails is not retried for a POST either way.
#[test]
fn a_large_body_goes_to_the_next_server_when_the_first_refuses() {
    let good = Backend::start("good");
    let dead = free_port();
    let port = free_port();
    // Every request tries the refusing server first.
    let http = format!(
        "upstream pool {{ server 127.0.0.1:{dead} max_fails=0; server {} backup; }}",
        good.addr
    );
    let locs = "location /on/ { proxy_pass http://pool/; }
         location /off/ { proxy_pass http://pool/; proxy_http_version 1.1; proxy_request_buffering off; }";
    let _r = Ringx::start(&conf(port, &http, locs), &[], addr_of(port));
    let data = body_of(1 << 20);
    for path in ["/on/echo", "/off/echo", "/on/echo", "/off/echo"] {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        )
        .into_bytes();
        raw.extend_from_slice(&data);
        let resp = request(addr_of(port), &raw).expect("a response");
        assert_eq!(resp.status, 200, "{path}");
        assert!(resp.body == data, "{path}: echo differs");
    }
}

/// The client-side timeout while a body is read whole: no answer, the connection
/// closes (nginx terminates the request), logged naming the client.
#[test]
fn a_body_that_stops_arriving_times_out() {
    let b = Backend::start("a");
    let port = free_port();
    let locs = format!("location / {{ proxy_pass http://{}; client_body_timeout 1s; }}", b.addr);
    let r = Ringx::start(&conf(port, "", &locs), &[], addr_of(port));
    let mut s = TcpStream::connect(addr_of(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
        .unwrap();
    s.write_all(&[b'x'; 100_000]).unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no response: {}", String::from_utf8_lossy(&rest));
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
    assert_eq!(b.count(), 0, "the upstream never saw the request");
    wait_for("the timeout logged", Duration::from_secs(3), || {
        r.stderr().contains(
            "client timed out (110: Connection timed out) while reading client request body, client: 127.0.0.1",
        )
    });
}

/// `proxy_buffer_size` (4k by default, as nginx's page-sized buffer) bounds the
/// response head an upstream may send: over it is 502 "upstream sent too big
/// header"; a larger buffer takes it. Side by side with nginx.
#[test]
fn proxy_buffer_size_bounds_the_upstream_head() {
    let up = serve_each(|mut s| {
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            "a".repeat(5000)
        );
        let _ = s.write_all(head.as_bytes());
    });
    let block = |port: u16| {
        format!(
            "access_log off;
             server {{ listen 127.0.0.1:{port};
               location /small {{ proxy_pass http://{up}; }}
               location /large {{ proxy_pass http://{up}; proxy_buffer_size 8k; }} }}"
        )
    };
    let Some((_r, _n, ra, na)) = side_by_side(block) else {
        return;
    };
    for addr in [ra, na] {
        let small = get(addr, "/small", "x").expect("a response");
        let large = get(addr, "/large", "x").expect("a response");
        assert_eq!((small.status, large.status), (502, 200), "{addr}");
        assert_eq!(large.header("x-big").map(str::len), Some(5000));
    }
}

const BIG: usize = 32 << 20;

/// When the upstream had written each path's response.
type Finished = std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>;

fn pattern_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// An upstream that answers every request with `BIG` bytes (`X-Accel-Buffering: no`
/// when the path says `/xab`) and notes, per path, when it had written them all.
fn big_upstream(size: usize) -> (std::net::SocketAddr, Finished) {
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let d2 = done.clone();
    let addr = serve_each(move |mut s| {
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let line = String::from_utf8_lossy(&buf).lines().next().unwrap_or("").to_string();
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let xab = if path.contains("/xab") {
            "X-Accel-Buffering: no\r\n"
        } else {
            ""
        };
        let mut out =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n{xab}Connection: close\r\n\r\n").into_bytes();
        out.extend((0..size).map(pattern_byte));
        if s.write_all(&out).is_ok() {
            d2.lock().unwrap().push((path, Instant::now()));
        }
    });
    (addr, done)
}

fn finished(done: &std::sync::Mutex<Vec<(String, Instant)>>, path: &str) -> Option<Instant> {
    done.lock().unwrap().iter().find(|(p, _)| p == path).map(|(_, t)| *t)
}

/// A client that asks and then reads nothing for a while: with proxy_buffering on
/// the upstream still gets its whole 32 MiB response out (memory, then the
/// temporary file) and is done with; off, with no temporary file, or when the
/// upstream says `X-Accel-Buffering: no`, it waits on the client, as nginx's. Every
/// client then gets the whole body intact.
#[test]
fn a_slow_client_does_not_hold_the_upstream() {
    let (up, done) = big_upstream(BIG);
    let port = free_port();
    let locs = format!(
        "location /on/ {{ proxy_pass http://{up}; }}
         location /off/ {{ proxy_pass http://{up}; proxy_buffering off; }}
         location /nofile/ {{ proxy_pass http://{up}; proxy_max_temp_file_size 0; }}
         location /on/xab {{ proxy_pass http://{up}; }}
         location /ignored/xab {{ proxy_pass http://{up}; proxy_ignore_headers X-Accel-Buffering; }}"
    );
    let r = Ringx::start(&conf(port, "", &locs), &[], addr_of(port));
    let cases = [
        ("/on/a", true),
        ("/off/a", false),
        ("/nofile/a", false),
        ("/on/xab", false),
        ("/ignored/xab", true),
    ];
    let threads: Vec<_> = cases
        .iter()
        .map(|&(path, early)| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr_of(port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
                let asked = Instant::now();
                std::thread::sleep(Duration::from_millis(2500));
                let during = finished(&done, path).is_some_and(|t| t - asked < Duration::from_millis(2500));
                let resp = read_response(&mut s, &mut Vec::new(), false).expect("a response");
                assert_eq!(resp.status, 200, "{path}");
                assert_eq!(resp.body.len(), BIG, "{path}");
                assert!(
                    resp.body.iter().enumerate().all(|(i, &b)| b == pattern_byte(i)),
                    "{path}: body differs"
                );
                assert_eq!(resp.header("x-accel-buffering"), None, "{path}: not passed on");
                assert_eq!(during, early, "{path}: upstream done while the client read nothing");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let err = r.stderr();
    assert_eq!(
        err.matches("an upstream response is buffered to a temporary file")
            .count(),
        2,
        "{err}"
    );
}

/// Over TLS, with a client that reads at 4 MB/s (curl --limit-rate) and with
/// `limit_rate`: the upstream is done within a second, `$upstream_response_time`
/// says so while `$request_time` is the client's, and the body arrives intact.
#[test]
fn a_throttled_tls_client_gets_a_buffered_response() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: no curl");
        return;
    }
    let size = 12 << 20;
    let (up, done) = big_upstream(size);
    let dir = tempdir("buffering-tls");
    let pki = Pki::new(&dir, "ca");
    pki.leaf(&dir, "site", &["localhost"]);
    let log = dir.join("access.log");
    let port = free_port();
    let http = format!(
        "log_format t '$uri $status $upstream_response_time $request_time';
         server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {0}/site.crt; ssl_certificate_key {0}/site.key;
           access_log {1} t;
           location /curl/ {{ proxy_pass http://{up}; }}
           location /paced/ {{ proxy_pass http://{up}; limit_rate 4m; }} }}",
        dir.display(),
        log.display()
    );
    let conf = format!("daemon off; pid off; error_log stderr info; events {{}} http {{ {http} }}");
    let _r = Ringx::start(&conf, &[], addr_of(port));
    for (path, rate) in [("/curl/a", "4M"), ("/paced/a", "100M")] {
        let out_file = dir.join("body");
        let t = Instant::now();
        let out = std::process::Command::new("curl")
            .args(["-sk", "--limit-rate", rate, "-o"])
            .arg(&out_file)
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .unwrap();
        let took = t.elapsed();
        assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
        let body = std::fs::read(&out_file).unwrap();
        assert_eq!(body.len(), size, "{path}");
        assert!(
            body.iter().enumerate().all(|(i, &b)| b == pattern_byte(i)),
            "{path}: body differs"
        );
        assert!(took >= Duration::from_secs(2), "{path}: the client took {took:?}");
        let up_took = finished(&done, path).expect("the upstream finished") - t;
        assert!(
            up_took < Duration::from_millis(1500),
            "{path}: upstream done after {up_took:?}"
        );
    }
    wait_for("two log lines", Duration::from_secs(3), || {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() == 2
    });
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (up_t, req_t): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        // The request ends when ringx has written the last byte (the kernel holds a
        // part of the throttled client's share).
        assert!(up_t < 1.5 && req_t > up_t + 0.5, "{line}");
    }
}

/// `proxy_limit_rate 1m`: a 3 MiB response is read from the upstream over two
/// seconds (nginx's rule: a second's worth ahead, counted from the start), so
/// `$upstream_response_time` is at least 2; without it the same response is read
/// at once. The client gets every byte either way.
#[test]
fn proxy_limit_rate_paces_the_upstream() {
    let size = 3 << 20;
    let (up, _) = big_upstream(size);
    let dir = tempdir("proxy-limit-rate");
    let log = dir.join("access.log");
    let port = free_port();
    let http = format!(
        "log_format t '$uri $upstream_response_time'; access_log {} t;",
        log.display()
    );
    let locs = format!(
        "location /paced/ {{ proxy_pass http://{up}; proxy_limit_rate 1m; }}
         location /free/ {{ proxy_pass http://{up}; }}"
    );
    let conf = conf(port, "", &locs).replace("access_log off;", &http);
    let _r = Ringx::start(&conf, &[], addr_of(port));
    for path in ["/paced/a", "/free/a"] {
        let mut s = TcpStream::connect(addr_of(port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let resp = read_response(&mut s, &mut Vec::new(), false).expect("a response");
        assert_eq!(resp.body.len(), size, "{path}");
        assert!(
            resp.body.iter().enumerate().all(|(i, &b)| b == pattern_byte(i)),
            "{path}"
        );
    }
    wait_for("two log lines", Duration::from_secs(3), || {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() == 2
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let took = |uri: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(uri)).expect(uri);
        line.split(' ').nth(1).unwrap().parse().unwrap()
    };
    assert!(took("/paced/a") >= 1.9, "{text}");
    assert!(took("/free/a") < 1.0, "{text}");
}
