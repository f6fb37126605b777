//! HTTP/2 to clients, seen by real HTTP/2 clients: curl (TLS with ALPN `h2`) and the
//! h2 crate's client (prior-knowledge h2c, where flow control, multiplexing and
//! resets can be driven frame by frame). The backends are plain HTTP/1, as behind
//! nginx.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use h2::client::SendRequest;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A prior-knowledge HTTP/2 connection (its frames driven by a task of the runtime).
async fn connect(addr: SocketAddr, window: u32) -> SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(window)
        .initial_connection_window_size(window.max(65535))
        .handshake(tcp)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// One request; `len`: whether a body is announced with content-length.
async fn fetch(send: &SendRequest<Bytes>, method: &str, path: &str, body: Option<&[u8]>, len: bool) -> Got {
    fetch_with(send, method, path, body, len, &[]).await
}

/// [`fetch`] with `extra` header fields.
async fn fetch_with(
    send: &SendRequest<Bytes>,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    len: bool,
    extra: &[(&str, &str)],
) -> Got {
    let mut send = send.clone().ready().await.unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let (Some(b), true) = (body, len) {
        req = req.header("content-length", b.len());
    }
    let (resp, mut out) = send.send_request(req.body(()).unwrap(), body.is_none()).unwrap();
    if let Some(b) = body {
        // In pieces, each when the window allows (as a streaming client).
        for piece in b.chunks(16 * 1024) {
            out.reserve_capacity(piece.len());
            let mut sent = 0;
            while sent < piece.len() {
                let n = std::future::poll_fn(|cx| out.poll_capacity(cx)).await.unwrap().unwrap();
                let n = n.min(piece.len() - sent);
                out.send_data(Bytes::copy_from_slice(&piece[sent..sent + n]), false)
                    .unwrap();
                sent += n;
            }
        }
        out.send_data(Bytes::new(), true).unwrap();
    }
    let resp = resp.await.unwrap();
    let (parts, mut rb) = resp.into_parts();
    let mut body = Vec::new();
    while let Some(d) = rb.data().await {
        let d = d.unwrap();
        let _ = rb.flow_control().release_capacity(d.len());
        body.extend_from_slice(&d);
    }
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A plaintext server with `http2 on` (h2c with prior knowledge, HTTP/1 too).
fn h2c_ringx(tag: &str, backend: SocketAddr, server: &str) -> (Ringx, u16) {
    let dir = tempdir(tag);
    let port = free_port();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log {d}/access.log; upstream b {{ server {backend}; }}
           server {{ listen 127.0.0.1:{port}; http2 on; {server} }} }}",
        d = dir.display()
    );
    (Ringx::start(&conf, &[], addr_of(port)), port)
}

/// The story's front, as the team wrote it (`listen 443 ssl http2`, the port-80
/// redirect), with test ports and a test certificate: HTTP/2 over TLS from curl,
/// the same server over HTTP/1.1, the headers the backend sees, the access log.
#[test]
fn story_front_over_h2() {
    let b = Backend::start("b1");
    let dir = tempdir("h2-story");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["api.company.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("api.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("api.key"), key.serialize_pem()).unwrap();
    let (tls, plain) = (free_port(), free_port());
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log {d}/access.log;
           upstream ml_api_backend {{ least_conn; server {b} max_fails=3 fail_timeout=30s; }}
           server {{ listen 127.0.0.1:{plain}; server_name api.company.com;
                     return 301 https://$server_name$request_uri; }}
           server {{ listen 127.0.0.1:{tls} ssl http2; server_name api.company.com;
             ssl_certificate {d}/api.crt; ssl_certificate_key {d}/api.key;
             ssl_protocols TLSv1.2 TLSv1.3;
             location /classify {{
               proxy_pass http://ml_api_backend;
               proxy_set_header Host $host;
               proxy_set_header X-Real-IP $remote_addr;
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
               proxy_set_header X-Forwarded-Proto $scheme;
               proxy_connect_timeout 60s; proxy_send_timeout 60s; proxy_read_timeout 60s;
               client_max_body_size 10M; }}
             location /health {{ access_log off; return 200 \"healthy\\n\"; add_header Content-Type text/plain; }}
           }} }}",
        d = dir.display(),
        b = b.addr
    );
    let r = Ringx::start(&conf, &[], addr_of(tls));
    assert!(
        r.stderr()
            .contains("the \"listen ... http2\" directive is deprecated, use the \"http2\" directive instead"),
        "{}",
        r.stderr()
    );
    let curl = |args: &[&str], url: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(dir.join("api.crt"))
            .args(["--resolve", &format!("api.company.com:{tls}:127.0.0.1")])
            .args(["-w", "\n%{http_version} %{response_code}"])
            .args(args)
            .arg(url)
            .output()
            .expect("curl is missing: run scripts/install-test-deps.sh");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let base = format!("https://api.company.com:{tls}");
    assert_eq!(curl(&["--http2"], &format!("{base}/health")), "healthy\n\n2 200");
    let body = "x".repeat(300_000);
    let file = dir.join("image.jpg");
    std::fs::write(&file, &body).unwrap();
    let got = curl(
        &[
            "--http2",
            "--data-binary",
            &format!("@{}", file.display()),
            "-H",
            "Content-Type: image/jpeg",
        ],
        &format!("{base}/classify/echo"),
    );
    assert_eq!(got, format!("{body}\n2 200"));
    // The same server over HTTP/1.1 (ALPN http/1.1).
    assert_eq!(curl(&["--http1.1"], &format!("{base}/health")), "healthy\n\n1.1 200");
    let seen = b.requests();
    let r1 = &seen[0];
    assert_eq!(r1.header("host"), Some("api.company.com"));
    assert_eq!(r1.header("x-forwarded-proto"), Some("https"));
    assert_eq!(r1.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(r1.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(r1.header("content-type"), Some("image/jpeg"));
    assert_eq!(r1.body.len(), 300_000);
    // The redirect server on the plain port.
    let red = get(addr_of(plain), "/classify?x=1", "api.company.com").unwrap();
    assert_eq!(red.status, 301);
    assert_eq!(
        red.header("location"),
        Some("https://api.company.com/classify?x=1".to_string()).as_deref()
    );
    wait_for("the access log", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("access.log"))
            .is_ok_and(|l| l.contains("\"POST /classify/echo HTTP/2.0\" 200 300000"))
    });
    drop(r);
}

/// Many streams at once on one connection, bodies both ways byte for byte: 120
/// multiplexed downloads, 5 MiB uploads with and without content-length (the
/// latter streamed chunked to an HTTP/1.1 upstream), an 8 MiB download, a chunked
/// upstream response, and HTTP/1.1 on the same plaintext port.
#[test]
fn multiplexed_streams_and_large_bodies() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx(
        "h2-bodies",
        b.addr,
        "client_max_body_size 20m; location / { proxy_pass http://b; proxy_http_version 1.1; }",
    );
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let mut tasks = Vec::new();
        for i in 0..120 {
            let s = send.clone();
            tasks.push(tokio::spawn(async move {
                let n = 1000 + i * 97;
                let g = fetch(&s, "GET", &format!("/big?n={n}"), None, false).await;
                (g.status, g.body == pattern(n))
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), (200, true));
        }
        let up: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        for len in [true, false] {
            let g = fetch(&send, "POST", "/echo", Some(&up), len).await;
            assert_eq!(g.status, 200);
            assert!(g.body == up, "upload with content-length={len} came back intact");
        }
        let g = fetch(&send, "GET", "/big?n=8388608", None, false).await;
        assert_eq!(g.headers.get("content-length").unwrap(), "8388608");
        assert!(g.body == pattern(8388608));
        let g = fetch(&send, "GET", "/chunked?n=100000", None, false).await;
        assert!(g.headers.get("transfer-encoding").is_none() && g.headers.get("connection").is_none());
        assert!(g.body == pattern(100000));
    });
    let seen = b.requests();
    let posts: Vec<_> = seen.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts[0].header("content-length"), Some("5242880"));
    // Without a content-length: read whole first and sent with one (nginx's
    // proxy_request_buffering on).
    assert_eq!(posts[1].header("transfer-encoding"), None);
    assert_eq!(posts[1].header("content-length"), Some("5242880"));
    assert_eq!(get(addr_of(port), "/big?n=10", "localhost").unwrap().status, 200);
}

/// `client_max_body_size` over HTTP/2: a declared length over it is refused at
/// once; a body without one is counted as it streams (nginx's 413 either way).
#[test]
fn body_limit_413() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx(
        "h2-413",
        b.addr,
        "client_max_body_size 1k; location / { proxy_pass http://b; proxy_http_version 1.1; }",
    );
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let body = vec![b'z'; 10 * 1024];
        assert_eq!(fetch(&send, "POST", "/echo", Some(&body), true).await.status, 413);
        let send = connect(addr_of(port), 65535).await;
        assert_eq!(fetch(&send, "POST", "/echo", Some(&body), false).await.status, 413);
        let send = connect(addr_of(port), 65535).await;
        let g = fetch(&send, "POST", "/echo", Some(b"small"), false).await;
        assert_eq!((g.status, g.body), (200, b"small".to_vec()));
    });
    assert!(b.requests().iter().all(|r| r.body.len() <= 1024));
}

/// Flow control end to end: a client that opens no window past the first 64 KiB
/// of a 64 MiB response gets no more, and ringx does not read the upstream ahead
/// of it (its memory stays flat); once the client reads, all of it arrives intact.
#[test]
fn client_window_holds_the_upstream() {
    let b = Backend::start("b1");
    let (r, port) = h2c_ringx("h2-window", b.addr, "location / { proxy_pass http://b; }");
    let n = 64 * 1024 * 1024;
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let rss = |pid: i32| -> u64 {
            let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            st.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        let before = rss(r.pid());
        let mut s = send.ready().await.unwrap();
        let req = http::Request::get(format!("http://localhost/big?n={n}"))
            .body(())
            .unwrap();
        let (resp, _) = s.send_request(req, true).unwrap();
        let mut body = resp.await.unwrap().into_body();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stalled = rss(r.pid());
        assert!(
            stalled < before + 16 * 1024,
            "ringx grew from {before} kB to {stalled} kB behind a closed window"
        );
        let mut got = 0usize;
        let mut ok = true;
        while let Some(d) = body.data().await {
            let d = d.unwrap();
            ok &= d.iter().enumerate().all(|(i, &c)| c == b'a' + ((got + i) % 26) as u8);
            got += d.len();
            let _ = body.flow_control().release_capacity(d.len());
        }
        assert_eq!(got, n);
        assert!(ok);
    });
}

/// Graceful quit: a stream in flight finishes with its response, the connection
/// gets GOAWAY (no new stream is taken), and ringx exits.
#[test]
fn graceful_quit_finishes_streams() {
    let b = Backend::start("b1");
    let (mut r, port) = h2c_ringx("h2-quit", b.addr, "location / { proxy_pass http://b; }");
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let s2 = send.clone();
        let slow = tokio::spawn(async move { fetch(&s2, "GET", "/slow?ms=800", None, false).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        r.signal(libc::SIGQUIT);
        let g = slow.await.unwrap();
        assert_eq!((g.status, g.body), (200, b"slow b1\n".to_vec()));
        // After GOAWAY the connection takes no new stream.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = match send.clone().ready().await {
            Err(_) => true,
            Ok(mut s) => {
                let req = http::Request::get("http://localhost/health").body(()).unwrap();
                match s.send_request(req, true) {
                    Err(_) => true,
                    Ok((resp, _)) => resp.await.is_err(),
                }
            }
        };
        assert!(refused, "a new stream after GOAWAY was served");
    });
    assert_eq!(r.wait_exit(Duration::from_secs(5)), Some(0));
}

/// Rapid reset (CVE-2023-44487): a client that opens streams and resets each at
/// once cannot make ringx hold more upstream requests than
/// `http2_max_concurrent_streams` (a reset stream's upstream connection is closed
/// at once), and every other client is still served.
#[test]
fn rapid_reset_is_bounded() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    // An upstream that never answers and counts the connections open to it.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let (open, most, total) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (o, m, t) = (open.clone(), most.clone(), total.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let (o, m, t) = (o.clone(), m.clone(), t.clone());
            // Counted once a request arrives on it: a connect ringx abandoned before
            // sending (still in the backlog when its stream was reset) is not a request.
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                if !matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {
                    return;
                }
                t.fetch_add(1, SeqCst);
                m.fetch_max(o.fetch_add(1, SeqCst) + 1, SeqCst);
                while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
                o.fetch_sub(1, SeqCst);
            });
        }
    });
    let b = Backend::start("b1");
    let dir = tempdir("h2-reset");
    let port = free_port();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off; upstream hang {{ server {up}; }} upstream b {{ server {b}; }}
           server {{ listen 127.0.0.1:{port}; http2 on; http2_max_concurrent_streams 16;
                     location /ok {{ proxy_pass http://b/big; }}
                     location / {{ proxy_pass http://hang; }} }} }}",
        d = dir.display(),
        b = b.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        // Batches of 16 (the client keeps to the announced limit): each batch's
        // HEADERS go out, reach the upstream, then all of them are reset.
        'outer: for _ in 0..40 {
            let mut batch = Vec::new();
            for _ in 0..16 {
                let Ok(mut s) = send.clone().ready().await else {
                    break 'outer; // ringx closed the connection (GOAWAY): also bounded.
                };
                let req = http::Request::get("http://localhost/hang").body(()).unwrap();
                match s.send_request(req, true) {
                    Ok((resp, out)) => batch.push((resp, out)),
                    Err(_) => break 'outer,
                }
            }
            // Reset once the whole batch is upstream: a stream reset before ringx
            // accepted it is h2's pending-accept reset, which ends the connection
            // (also bounded, but then the cancel path below goes untested).
            let t0 = std::time::Instant::now();
            while open.load(SeqCst) < batch.len() && t0.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            for (_, mut out) in batch {
                out.send_reset(h2::Reason::CANCEL);
            }
            // ringx closes a reset stream's upstream connection at once; the upstream
            // sees it a little later (its reader thread must run): wait for that before
            // the next batch, so the count measures ringx, not the scheduler.
            let t0 = std::time::Instant::now();
            while open.load(SeqCst) > 0 {
                // Well under the 500 ms after which a waiting request would notice a
                // client that left anyway: the reset itself must cancel the work.
                assert!(
                    t0.elapsed() < Duration::from_millis(300),
                    "{} upstream connections of reset streams still open",
                    open.load(SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let other = connect(addr_of(port), 65535).await;
        assert_eq!(fetch(&other, "GET", "/ok?n=10", None, false).await.status, 200);
    });
    let (most, total) = (most.load(SeqCst), total.load(SeqCst));
    assert!(total > 32, "the resets reached the upstream ({total} connections)");
    assert!(most <= 17, "{most} upstream requests at once for 16 streams");
    wait_for(
        "reset streams' upstream connections to close",
        Duration::from_secs(5),
        || open.load(SeqCst) == 0,
    );
}

/// The h2 settings nginx's directives make: `http2_max_concurrent_streams` is
/// what the server announces.
#[test]
fn announced_limits() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx(
        "h2-settings",
        b.addr,
        "http2_max_concurrent_streams 7; location / { proxy_pass http://b; }",
    );
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        // The SETTINGS frame arrives with the first response.
        let _ = fetch(&send, "GET", "/big?n=1", None, false).await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let s = send.clone();
            tasks.push(tokio::spawn(async move {
                fetch(&s, "GET", "/slow?ms=300", None, false).await.status
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
    });
    let most = b.live.max_inflight.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most <= 7, "{most} streams at once past http2_max_concurrent_streams 7");
}

/// Requests RFC 9113 calls malformed that the h2 crate lets through are reset
/// with PROTOCOL_ERROR before anything reaches a backend; the connection serves on.
#[test]
fn malformed_requests_are_reset() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx("h2-malformed", b.addr, "location / { proxy_pass http://b; }");
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        for (k, v) in [("x-a", " leading"), ("x-a", "trailing\t"), ("host", "other.example")] {
            let mut s = send.clone().ready().await.unwrap();
            let req = http::Request::get("http://localhost/echo")
                .header(k, http::HeaderValue::from_static(v))
                .body(())
                .unwrap();
            let (resp, _) = s.send_request(req, true).unwrap();
            let e = resp.await.expect_err("a malformed request was answered");
            assert_eq!(e.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{k}: {v:?}");
        }
        assert_eq!(fetch(&send, "GET", "/big?n=3", None, false).await.body, b"abc");
    });
    assert_eq!(b.count(), 1);
}

/// A response whose head comes from the upstream before any of its body leaves in
/// HEADERS then DATA frames that carry bytes: no empty DATA frame (which a client
/// counts against the small-frame limits and conformance suites flag).
#[test]
fn no_empty_data_frames() {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
            std::thread::sleep(Duration::from_millis(150));
            let _ = s.write_all(b"hello");
        }
    });
    let (_r, port) = h2c_ringx("h2-empty", up, "location / { proxy_pass http://b; }");
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let mut s = send.ready().await.unwrap();
        let (resp, _) = s
            .send_request(http::Request::get("http://localhost/").body(()).unwrap(), true)
            .unwrap();
        let mut body = resp.await.unwrap().into_body();
        let mut frames = Vec::new();
        while let Some(d) = body.data().await {
            frames.push(d.unwrap());
        }
        assert_eq!(frames, vec![Bytes::from_static(b"hello")]);
    });
}

/// A stream stalled on a window the client never opens is reset after
/// `send_timeout` (its upstream connection closed), so streams cannot pin memory
/// behind a zero window; the client's other connections are served.
#[test]
fn stalled_window_is_reaped() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx(
        "h2-stall",
        b.addr,
        "send_timeout 1s; location / { proxy_pass http://b; }",
    );
    rt().block_on(async {
        let send = connect(addr_of(port), 0).await;
        let mut s = send.ready().await.unwrap();
        let req = http::Request::get("http://localhost/big?n=200000").body(()).unwrap();
        let (resp, _) = s.send_request(req, true).unwrap();
        let t0 = std::time::Instant::now();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let e = match tokio::time::timeout(Duration::from_secs(5), body.data()).await {
            Ok(Some(Err(e))) => e,
            other => panic!(
                "the stalled stream was not reset: {:?}",
                other.map(|o| o.map(|r| r.map(|b| b.len())))
            ),
        };
        assert_eq!(e.reason(), Some(h2::Reason::INTERNAL_ERROR));
        assert!(t0.elapsed() >= Duration::from_millis(900), "reset before send_timeout");
        let other = connect(addr_of(port), 65535).await;
        assert_eq!(fetch(&other, "GET", "/big?n=3", None, false).await.body, b"abc");
    });
}

/// An HTTP/2 connection with no stream open is closed after `keepalive_timeout`
/// (GOAWAY), as nginx 1.19.7+ does; one with a stream in flight is not.
#[test]
fn idle_connection_closes_after_keepalive_timeout() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx(
        "h2-idle",
        b.addr,
        "keepalive_timeout 1s; location / { proxy_pass http://b; }",
    );
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        // A stream longer than the timeout keeps the connection.
        let g = fetch(&send, "GET", "/slow?ms=1500", None, false).await;
        assert_eq!(g.status, 200);
        assert_eq!(fetch(&send, "GET", "/big?n=3", None, false).await.body, b"abc");
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let closed = match send.clone().ready().await {
            Err(_) => true,
            Ok(mut s) => match s.send_request(http::Request::get("http://localhost/").body(()).unwrap(), true) {
                Err(_) => true,
                Ok((resp, _)) => resp.await.is_err(),
            },
        };
        assert!(closed, "the idle connection was still served after keepalive_timeout");
    });
}

/// `Expect: 100-continue` over HTTP/2 is ignored, as nginx (the window paces the
/// body): the client gets the real response, not a `100` with END_STREAM.
#[test]
fn expect_continue_is_ignored() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx("h2-expect", b.addr, "location / { proxy_pass http://b; }");
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let body = vec![b'e'; 100000];
        let extra = [("expect", "100-continue")];
        let g = fetch_with(&send, "POST", "/echo", Some(&body), true, &extra).await;
        assert_eq!((g.status, g.body.len()), (200, 100000));
    });
    assert!(b.requests()[0].header("expect").is_none());
}

/// A client that stops talking keeps no connection: after `keepalive_timeout` the
/// server sends GOAWAY and closes, whether or not the client answers its PING.
#[test]
fn silent_client_is_closed() {
    use std::io::{Read, Write};
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx(
        "h2-silent",
        b.addr,
        "keepalive_timeout 1s; lingering_timeout 1s; location / { proxy_pass http://b; }",
    );
    let mut s = std::net::TcpStream::connect(addr_of(port)).unwrap();
    // The preface and an empty SETTINGS frame, then nothing (not even acks).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let t0 = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the connection stayed open ({e}) after {:?}", t0.elapsed()),
        }
    }
    // A GOAWAY frame (type 7) came before the close.
    let mut pos = 0;
    let mut goaway = false;
    while pos + 9 <= got.len() {
        let len = (got[pos] as usize) << 16 | (got[pos + 1] as usize) << 8 | got[pos + 2] as usize;
        goaway |= got[pos + 3] == 7;
        pos += 9 + len;
    }
    assert!(goaway, "no GOAWAY before the close");
    assert!(t0.elapsed() < Duration::from_secs(4), "closed after {:?}", t0.elapsed());
}

/// One stream whose body ringx cannot take yet (its upstream connect hangs) does
/// not stall the other streams' uploads on the connection: the connection window
/// has room for every stream's.
#[test]
fn one_stalled_upload_does_not_stall_others() {
    let b = Backend::start("b1");
    let full = FullListener::bind();
    let dir = tempdir("h2-connwin");
    let port = free_port();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off; upstream b {{ server {b}; }} upstream hang {{ server {h}; }}
           server {{ listen 127.0.0.1:{port}; http2 on; client_max_body_size 10m;
             location /hang {{ proxy_pass http://hang; proxy_connect_timeout 5s; }}
             location / {{ proxy_pass http://b; }} }} }}",
        d = dir.display(),
        b = b.addr,
        h = full.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let s1 = send.clone();
        let stalled = tokio::spawn(async move {
            let body = vec![b's'; 1024 * 1024];
            fetch(&s1, "POST", "/hang", Some(&body), true).await.status
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = std::time::Instant::now();
        let body = vec![b'o'; 200 * 1024];
        let g = fetch(&send, "POST", "/echo", Some(&body), true).await;
        assert_eq!((g.status, g.body.len()), (200, body.len()));
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "the upload waited {:?} behind a stalled stream",
            t0.elapsed()
        );
        stalled.abort();
    });
}

/// A stream the client resets while the upstream thinks is given up at once and
/// logged 499, as nginx logs a client that went away.
#[test]
fn client_reset_is_logged_499() {
    let b = Backend::start("b1");
    let dir = tempdir("h2-499");
    let port = free_port();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log {d}/access.log; upstream b {{ server {b}; }}
           server {{ listen 127.0.0.1:{port}; http2 on; location / {{ proxy_pass http://b; }} }} }}",
        d = dir.display(),
        b = b.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let mut s = send.clone().ready().await.unwrap();
        let req = http::Request::get("http://localhost/slow?ms=3000").body(()).unwrap();
        let (_resp, mut out) = s.send_request(req, true).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        out.send_reset(h2::Reason::CANCEL);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fetch(&send, "GET", "/big?n=2", None, false).await.body, b"ab");
    });
    wait_for("the 499 line", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("access.log"))
            .is_ok_and(|l| l.contains("\"GET /slow?ms=3000 HTTP/2.0\" 499 0"))
    });
}

/// Header floods: a header list over `large_client_header_buffers` gets 431 and
/// one field over its size 400 (the connection serves on); a HEADERS frame followed
/// by CONTINUATION frames that never end the block (the 2024 CONTINUATION flood)
/// makes ringx close the connection long before the client is done, holding bounded
/// memory.
#[test]
fn header_floods_are_bounded() {
    use std::io::{Read, Write};
    let b = Backend::start("b1");
    let (r, port) = h2c_ringx("h2-flood", b.addr, "location / { proxy_pass http://b; }");
    rt().block_on(async {
        let send = connect(addr_of(port), 65535).await;
        let many: Vec<(String, String)> = (0..8).map(|i| (format!("x-big-{i}"), "v".repeat(7000))).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            fetch_with(&send, "GET", "/big?n=1", None, false, &many).await.status,
            431
        );
        let long = "l".repeat(9000);
        let one = [("x-long", long.as_str())];
        assert_eq!(
            fetch_with(&send, "GET", "/big?n=1", None, false, &one).await.status,
            400
        );
        assert_eq!(fetch(&send, "GET", "/big?n=2", None, false).await.body, b"ab");
    });
    let before = peak_rss_kb(r.pid());
    let mut s = std::net::TcpStream::connect(addr_of(port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    // HEADERS on stream 1 without END_HEADERS: `:method GET` (indexed 2).
    s.write_all(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82]).unwrap();
    // CONTINUATION frames (type 9, no flags) carrying literal fields, 16 KiB each.
    let mut field = vec![0x40, 0x05];
    field.extend_from_slice(b"x-fld");
    field.extend_from_slice(&[0x7f, 0x80, 0x01]); // a 255-byte value: 127 + 128
    field.extend(std::iter::repeat_n(b'a', 255));
    let mut frame = Vec::new();
    let payload: Vec<u8> = field.iter().copied().cycle().take(field.len() * 60).collect();
    frame.extend_from_slice(&[
        (payload.len() >> 16) as u8,
        (payload.len() >> 8) as u8,
        payload.len() as u8,
        9,
        0,
        0,
        0,
        0,
        1,
    ]);
    frame.extend_from_slice(&payload);
    let mut sent = 0usize;
    let closed = loop {
        if sent > 64 * 1024 * 1024 {
            break false;
        }
        match s.write_all(&frame) {
            Ok(()) => sent += frame.len(),
            Err(_) => break true,
        }
    };
    let mut rest = Vec::new();
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.read_to_end(&mut rest);
    assert!(
        closed || !rest.is_empty(),
        "ringx took {sent} bytes of one header block"
    );
    assert!(
        sent < 8 * 1024 * 1024,
        "ringx read {sent} bytes of one header block before closing"
    );
    let grown = peak_rss_kb(r.pid()).saturating_sub(before);
    assert!(grown < 16 * 1024, "ringx grew by {grown} kB");
}

/// The same HTTP/2 requests (prior knowledge, the h2 crate's client) through ringx and
/// through Debian's nginx on the same http block: the same statuses, and the same
/// HTTP/1 request at the backend (method, target, version, headers; bodies compared
/// whole, framing aside).
#[test]
fn differential_with_nginx() {
    let block = |port: u16, backend: SocketAddr| {
        format!(
            r#"access_log off;
    upstream be {{ server {backend}; }}
    server {{
        listen 127.0.0.1:{port} http2;
        server_name diff.test;
        location / {{
            proxy_pass http://be;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Host $host;
        }}
        location /v11/ {{ proxy_pass http://be/api/; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }}
        location = /health {{ return 200 "ok\n"; }}
        location /r {{ return 301 https://$host$request_uri; }}
        location /limited {{ client_max_body_size 10; proxy_pass http://be; }}
    }}"#
        )
    };
    let (rb, nb) = (Backend::start("r"), Backend::start("n"));
    let (rp, np) = (free_port(), free_port());
    let dir = tempdir("h2-diff");
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}} http {{ {} }}",
        block(rp, rb.addr),
        d = dir.display()
    );
    let _r = Ringx::start(&conf, &[], addr_of(rp));
    let _n = Nginx::start(&block(np, nb.addr), addr_of(np));
    type Req = (
        &'static str,
        &'static str,
        Option<&'static [u8]>,
        bool,
        Vec<(&'static str, &'static str)>,
    );
    let cases: Vec<Req> = vec![
        (
            "GET",
            "/p/a?x=1&y=%20",
            None,
            false,
            vec![("user-agent", "ua"), ("cookie", "a=1"), ("cookie", "b=2")],
        ),
        ("GET", "/", None, false, vec![("x-forwarded-for", "10.1.1.1")]),
        (
            "POST",
            "/echo",
            Some(b"hello world"),
            true,
            vec![("content-type", "text/plain")],
        ),
        ("POST", "/echo", Some(b"streamed body"), false, vec![]),
        ("HEAD", "/", None, false, vec![]),
        ("GET", "/v11/users/1?x=2", None, false, vec![]),
        ("GET", "/health", None, false, vec![]),
        ("GET", "/r?a=b", None, false, vec![]),
        ("POST", "/limited", Some(b"01234567890123456789"), true, vec![]),
        ("DELETE", "/items/7", None, false, vec![("accept", "*/*")]),
    ];
    rt().block_on(async {
        let (rs, ns) = (connect(addr_of(rp), 65535).await, connect(addr_of(np), 65535).await);
        for (m, path, body, len, extra) in &cases {
            let mut seen = Vec::new();
            for (send, backend) in [(&rs, &rb), (&ns, &nb)] {
                backend.clear();
                let g = fetch_with(send, m, path, *body, *len, extra).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
                let fwd = backend.requests().first().map(|r| {
                    let mut h: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .filter(|(k, _)| {
                            !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("transfer-encoding")
                        })
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect();
                    h.sort();
                    (r.method.clone(), r.target.clone(), r.version.clone(), h, r.body.clone())
                });
                let location = g.headers.get("location").map(|v| v.to_str().unwrap().to_string());
                seen.push((g.status, location, fwd));
            }
            assert_eq!(seen[0], seen[1], "{m} {path}: ringx (left) and nginx (right) differ");
        }
    });
}

/// `http2_chunk_size`: no DATA frame ringx sends is larger.
#[test]
fn chunk_size_bounds_data_frames() {
    let b = Backend::start("b1");
    let (_r, port) = h2c_ringx(
        "h2-chunk",
        b.addr,
        "http2_chunk_size 1k; location / { proxy_pass http://b; }",
    );
    rt().block_on(async {
        let send = connect(addr_of(port), 1 << 20).await;
        let mut s = send.ready().await.unwrap();
        let req = http::Request::get("http://localhost/big?n=20000").body(()).unwrap();
        let (resp, _) = s.send_request(req, true).unwrap();
        let mut body = resp.await.unwrap().into_body();
        let (mut frames, mut total) = (Vec::new(), 0);
        while let Some(d) = body.data().await {
            let d = d.unwrap();
            total += d.len();
            let _ = body.flow_control().release_capacity(d.len());
            frames.push(d.len());
        }
        assert_eq!(total, 20000);
        assert!(frames.iter().all(|&n| n <= 1024), "frames {frames:?}");
        assert!(frames.len() >= 20, "frames {frames:?}");
    });
}
