//! End-to-end: the real ringx binary, real backends, real sockets on 127.0.0.1.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// The issue's nginx.conf, addresses moved to loopback ports.
fn issue_conf(redirect: u16, api: u16, b: [&Backend; 3]) -> String {
    format!(
        r#"worker_processes auto;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream ml_api_backend {{
        least_conn;
        server {} max_fails=3 fail_timeout=30s;
        server {} max_fails=3 fail_timeout=30s;
        server {} max_fails=3 fail_timeout=30s;
    }}
    server {{
        listen 127.0.0.1:{redirect};
        server_name api.company.com;
        return 301 https://$server_name$request_uri;
    }}
    server {{
        listen 127.0.0.1:{api};                      # TLS comes in a later issue
        server_name api.company.com;
        location /classify {{
            proxy_pass http://ml_api_backend;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 60s;
            proxy_send_timeout 60s;
            proxy_read_timeout 60s;
            client_max_body_size 10M;
        }}
        location /health {{
            access_log off;
            return 200 "healthy\n";
            add_header Content-Type text/plain;
        }}
    }}
}}
"#,
        b[0].addr, b[1].addr, b[2].addr
    )
}

struct IssueSetup {
    backends: Vec<Backend>,
    redirect: SocketAddr,
    api: SocketAddr,
    ringx: Ringx,
}

fn issue_setup() -> IssueSetup {
    let backends = vec![Backend::start("a"), Backend::start("b"), Backend::start("c")];
    let (rp, ap) = (free_port(), free_port());
    let conf = issue_conf(rp, ap, [&backends[0], &backends[1], &backends[2]]);
    let api: SocketAddr = format!("127.0.0.1:{ap}").parse().unwrap();
    let ringx = Ringx::start(&conf, &["-g", "daemon off; pid off;"], api);
    IssueSetup {
        backends,
        redirect: format!("127.0.0.1:{rp}").parse().unwrap(),
        api,
        ringx,
    }
}

#[test]
fn issue_config_health_redirect_and_spread() {
    let s = issue_setup();
    let r = get(s.api, "/health", "api.company.com").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "healthy\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("server"), Some("ringx"));

    let r = get(s.redirect, "/classify/x?id=7&y=%20z", "api.company.com").unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://api.company.com/classify/x?id=7&y=%20z")
    );

    for i in 0..30 {
        let r = get(s.api, &format!("/classify/item{i}"), "api.company.com").unwrap();
        assert_eq!(r.status, 200, "request {i}");
        assert!(r.text().starts_with("backend "));
    }
    let counts: Vec<usize> = s.backends.iter().map(Backend::count).collect();
    // Sequential requests with least_conn: ties go round robin, so each gets a third.
    assert!(counts.iter().all(|&c| c >= 8), "spread {counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 30);
    // The path reached the backend unchanged.
    assert!(s
        .backends
        .iter()
        .flat_map(|b| b.requests())
        .any(|r| r.target == "/classify/item7"));
    drop(s.ringx);
}

#[test]
fn forwards_the_four_headers() {
    let s = issue_setup();
    let raw = b"GET /classify?q=1 HTTP/1.1\r\nHost: API.Company.com:8443\r\nX-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 6.6.6.6\r\nUser-Agent: t\r\nConnection: close\r\n\r\n";
    let r = request(s.api, raw).unwrap();
    assert_eq!(r.status, 200);
    let got: Vec<Recorded> = s.backends.iter().flat_map(|b| b.requests()).collect();
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!(g.target, "/classify?q=1");
    assert_eq!(g.version, "HTTP/1.0", "nginx's default proxy_http_version");
    assert_eq!(
        g.header("host"),
        Some("api.company.com"),
        "$host is lowercased, without port"
    );
    assert_eq!(g.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(g.header("x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(g.header("x-forwarded-proto"), Some("http"));
    assert_eq!(g.header("connection"), Some("close"));
    assert_eq!(g.header("user-agent"), Some("t"));
    assert_eq!(g.header_count("x-real-ip"), 1);
    assert_eq!(g.header_count("x-forwarded-for"), 1);
    // Without an incoming X-Forwarded-For, it is the client address alone.
    request(
        s.api,
        b"GET /classify HTTP/1.1\r\nHost: api.company.com\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let all: Vec<Recorded> = s.backends.iter().flat_map(|b| b.requests()).collect();
    assert!(all.iter().any(|r| r.header("x-forwarded-for") == Some("127.0.0.1")));
}

fn simple_conf(port: u16, backends: &[&Backend], loc_extra: &str, http_extra: &str) -> String {
    let servers: String = backends.iter().map(|b| format!("server {};\n", b.addr)).collect();
    format!(
        "daemon off; pid off; worker_processes 2; events {{}}\nhttp {{ access_log off; {http_extra}\n upstream be {{ {servers} keepalive 8; }}\n server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; {loc_extra} }} }} }}\n"
    )
}

fn start_simple(backends: &[&Backend], loc_extra: &str) -> (Ringx, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    (
        Ringx::start(&simple_conf(port, backends, loc_extra, ""), &[], addr),
        addr,
    )
}

#[test]
fn large_and_chunked_bodies_both_ways() {
    let b = Backend::start("a");
    let (_r, addr) = start_simple(&[&b], "client_max_body_size 20m;");
    // 5 MiB request body with Content-Length, echoed back.
    let body: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = request(addr, &raw).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "5 MiB echo differs");
    assert!(b.requests().last().unwrap().body == body);

    // Chunked request body: read whole first (proxy_request_buffering on, nginx's
    // default) and sent de-chunked with a Content-Length.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let mut want = Vec::new();
    for i in 0..200 {
        let chunk = vec![b'a' + (i % 26) as u8; 1000 + i * 37];
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
        want.extend_from_slice(&chunk);
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = request(addr, &raw).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == want, "chunked upload differs");
    let rec = b.requests().last().unwrap().clone();
    assert_eq!(rec.header("transfer-encoding"), None);
    assert_eq!(rec.header("content-length"), Some(want.len().to_string().as_str()));
    assert!(rec.body == want);

    // Chunked response relayed to an HTTP/1.1 client intact.
    let r = get(addr, "/chunked?n=300000", "x").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 300000);
    assert!(r.body.iter().enumerate().all(|(i, &c)| c == b'a' + (i % 26) as u8));
    // ... and de-chunked for an HTTP/1.0 client.
    let r = request(addr, b"GET /chunked?n=70000 HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.body.len(), 70000);
    assert!(r.header("transfer-encoding").is_none());
    // Close-delimited response becomes chunked for HTTP/1.1.
    let r = get(addr, "/close?n=123456", "x").unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 123456);
    // 5 MiB with Content-Length.
    let r = get(addr, "/big?n=5242880", "x").unwrap();
    assert_eq!(r.header("content-length"), Some("5242880"));
    assert_eq!(r.body.len(), 5242880);
    assert!(r.body.iter().enumerate().all(|(i, &c)| c == b'a' + (i % 26) as u8));
}

#[test]
fn chunked_body_to_http10_upstream_is_sent_with_length() {
    let b = Backend::start("a");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; }} }} }}",
        b.addr
    );
    let _r = Ringx::start(&conf, &[], addr);
    let raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let r = request(addr, raw).unwrap();
    assert_eq!(r.text(), "hello world");
    let rec = b.requests()[0].clone();
    assert_eq!(rec.header("content-length"), Some("11"));
    assert!(rec.header("transfer-encoding").is_none());
}

#[test]
fn body_limit_413_before_anything_reaches_the_backend() {
    let b = Backend::start("a");
    let (_r, addr) = start_simple(&[&b], "client_max_body_size 1k;");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    // Chunked over the limit.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(b"800\r\n");
    raw.extend_from_slice(&[b'x'; 2048]);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = request(addr, &raw).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(b.count(), 0, "nothing may reach the backend");
    // At the limit is fine.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n".to_vec();
    raw.extend_from_slice(&[b'y'; 1024]);
    assert_eq!(request(addr, &raw).unwrap().status, 200);
}

#[test]
fn upstream_errors_502_and_504() {
    // Nothing listens on this port: 502.
    let dead = free_port();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let slow = Backend::start("slow");
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off;
         server {{ listen 127.0.0.1:{port};
           location /dead {{ proxy_pass http://127.0.0.1:{dead}; }}
           location /slow {{ proxy_pass http://{}; proxy_read_timeout 300ms; }} }} }}",
        slow.addr
    );
    let _r = Ringx::start(&conf, &[], addr);
    let r = get(addr, "/dead", "x").unwrap();
    assert_eq!(r.status, 502);
    assert!(r.text().contains("502 Bad Gateway"));
    let r = get(addr, "/slow?ms=1500", "x").unwrap();
    assert_eq!(r.status, 504);
    // A keep-alive client gets its 502 and can go on.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET /dead HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 502);
    }
}

#[test]
fn connect_timeout_is_504_and_next_server_is_tried() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so a
    // connect to it hangs (on loopback, without any outside address).
    let full = FullListener::bind();
    let full_addr = full.addr;
    let good = Backend::start("good");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off;
         upstream one {{ server {full_addr}; }}
         upstream two {{ server {full_addr}; server {}; }}
         server {{ listen 127.0.0.1:{port};
           location /one {{ proxy_pass http://one; proxy_connect_timeout 300ms; }}
           location /two {{ proxy_pass http://two; proxy_connect_timeout 300ms; }} }} }}",
        good.addr
    );
    let r = Ringx::start(&conf, &[], addr);
    let t0 = std::time::Instant::now();
    assert_eq!(get(addr, "/one", "x").unwrap().status, 504);
    assert!(t0.elapsed() < Duration::from_secs(5));
    for _ in 0..4 {
        assert_eq!(get(addr, "/two", "x").unwrap().status, 200);
    }
    assert!(r.stderr().contains("upstream timed out"), "{}", r.stderr());
}

#[test]
fn ipv6_listen_and_types() {
    let port = free_port();
    let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    if std::net::TcpListener::bind(addr).is_err() {
        panic!("no IPv6 loopback on this machine");
    }
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off; types {{ application/json json; text/html html; }} default_type application/octet-stream;
         server {{ listen [::1]:{port}; location / {{ return 200 \"x\"; }} }} }}"
    );
    let _r = Ringx::start(&conf, &[], addr);
    assert_eq!(
        get(addr, "/a.json", "x").unwrap().header("content-type"),
        Some("application/json")
    );
    assert_eq!(
        get(addr, "/a.HTML", "x").unwrap().header("content-type"),
        Some("text/html")
    );
    assert_eq!(
        get(addr, "/a", "x").unwrap().header("content-type"),
        Some("application/octet-stream")
    );
}

#[test]
fn interim_responses_in_one_read_are_skipped() {
    // 100 and 103 and the final response arrive in one write; the upstream keeps the
    // connection open, so waiting for more bytes would end in a 504.
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = up.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in up.incoming().flatten() {
            let mut s = s;
            let mut b = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut b);
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            held.push(s);
        }
    });
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{up_addr}; proxy_read_timeout 3s; }} }} }}"
    );
    let _r = Ringx::start(&conf, &[], addr);
    let t0 = std::time::Instant::now();
    let r = get(addr, "/", "x").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(t0.elapsed() < Duration::from_secs(2), "waited {:?}", t0.elapsed());
}

#[test]
fn invalid_upstream_response_is_502() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bad = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bad_addr = bad.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in bad.incoming().flatten() {
            let mut s = s;
            let mut b = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut b);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde");
        }
    });
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{bad_addr}; }} }} }}"
    );
    let _r = Ringx::start(&conf, &[], addr);
    assert_eq!(get(addr, "/", "x").unwrap().status, 502);
}

#[test]
fn failover_when_a_backend_dies() {
    let a = Backend::start("a");
    let mut b = Backend::start("b");
    let c = Backend::start("c");
    let (_r, addr) = start_simple(&[&a, &b, &c], "");
    for _ in 0..9 {
        assert_eq!(get(addr, "/", "x").unwrap().status, 200);
    }
    b.kill();
    let before = (a.count(), c.count());
    for i in 0..30 {
        let r = get(addr, "/", "x").unwrap();
        assert_eq!(r.status, 200, "request {i} after kill");
    }
    assert_eq!(a.count() + c.count() - before.0 - before.1, 30);
}

#[test]
fn keepalive_pipelining_and_upstream_reuse() {
    let b = Backend::start("a");
    let (_r, addr) = start_simple(&[&b], "");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Three pipelined requests in one write, one with a body.
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /three HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let r1 = read_response(&mut s, &mut buf, false).unwrap();
    let r2 = read_response(&mut s, &mut buf, false).unwrap();
    let r3 = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((r1.status, r2.status, r3.status), (200, 200, 200));
    assert_eq!(r2.text(), "hello");
    assert_eq!(r1.header("connection"), Some("keep-alive"));
    let targets: Vec<String> = b.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, vec!["/one", "/echo", "/three"]);
    // 20 sequential requests over one client connection use few upstream connections
    // (one per worker at most, since upstream keepalive is on).
    for _ in 0..20 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    }
    assert!(
        b.conns.load(std::sync::atomic::Ordering::SeqCst) <= 2,
        "upstream connections were not reused"
    );
    // HEAD has no body even with Content-Length.
    s.write_all(b"HEAD /big?n=100 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let h = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(h.header("content-length"), Some("100"));
    s.write_all(b"GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 204);
    s.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
}

#[test]
fn malformed_requests_get_400_and_reach_nobody() {
    let b = Backend::start("a");
    let (_r, addr) = start_simple(&[&b], "");
    let cases: &[(&[u8], u16)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ];
    for (raw, want) in cases {
        let r = request(addr, raw).unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(raw)));
        assert_eq!(r.status, *want, "for {:?}", String::from_utf8_lossy(raw));
    }
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', 10000));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(request(addr, &long).unwrap().status, 414);
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: ".to_vec();
    big.extend(std::iter::repeat_n(b'c', 9000));
    big.extend_from_slice(b"\r\n\r\n");
    let r = request(addr, &big).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Request Header Or Cookie Too Large"));
    assert_eq!(b.count(), 0, "malformed requests must not reach the backend");
}

#[test]
fn routing_by_host_location_and_proxy_pass_uri() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off;
         server {{ listen 127.0.0.1:{port} default_server; server_name _; location / {{ return 404; }} }}
         server {{ listen 127.0.0.1:{port}; server_name *.example.com;
            location /api/ {{ proxy_pass http://{a}/v2/; }}
            location = /exact {{ proxy_pass http://{b}; }}
            location ~ \\.php$ {{ return 403; }}
            location ^~ /static/ {{ return 200 \"static $uri\"; }}
            location / {{ return 302 /login; }} }} }}",
        a = a.addr,
        b = b.addr
    );
    let _r = Ringx::start(&conf, &[], addr);
    assert_eq!(get(addr, "/api/x", "unknown.org").unwrap().status, 404);
    let r = get(addr, "/api/users/1?x=2", "www.example.com").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(a.requests()[0].target, "/v2/users/1?x=2");
    assert_eq!(get(addr, "/exact", "www.example.com").unwrap().status, 200);
    assert_eq!(b.requests()[0].target, "/exact");
    assert_eq!(get(addr, "/x/a.php", "www.example.com").unwrap().status, 403);
    let r = get(addr, "/static/a.php", "www.example.com").unwrap();
    assert_eq!(r.text(), "static /static/a.php");
    let r = get(addr, "/other", "a.example.com").unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("http://a.example.com:{port}/login").as_str())
    );
    // $uri is normalised for matching; the raw URI goes upstream without a URI part.
    let r = get(addr, "/api//users/../users/2", "www.example.com").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(a.requests()[1].target, "/v2/users/2");
}

#[test]
fn access_log_combined_format() {
    let b = Backend::start("a");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempdir("alog");
    let log = dir.join("access.log");
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log {};
         log_format up '$remote_addr $status $upstream_addr $upstream_status $request_uri';
         log_format times '$upstream_connect_time $upstream_header_time $upstream_response_time';
         server {{ listen 127.0.0.1:{port}; location /up {{ access_log {}/up.log up; proxy_pass http://{}; }} location /slow {{ access_log {}/times.log times; proxy_pass http://{}; }} location / {{ return 204; }} }} }}",
        log.display(),
        dir.display(),
        b.addr,
        dir.display(),
        b.addr
    );
    let mut r = Ringx::start(&conf, &[], addr);
    request(
        addr,
        b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: UA/1\r\nReferer: http://r/\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    get(addr, "/up/z", "h").unwrap();
    get(addr, "/slow?ms=300", "h").unwrap();
    // A request rejected before its head parses still gets a line (nginx logs it too).
    assert_eq!(
        request(addr, b"GET / HTTP/1.1\r\nHost : bad\r\n\r\n").unwrap().status,
        400
    );
    r.signal(libc::SIGQUIT);
    assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().next().unwrap();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("] \"GET /x?y=1 HTTP/1.1\" 204 0 \"http://r/\" \"UA/1\""),
        "{line}"
    );
    let bad = text.lines().nth(1).unwrap_or_default();
    assert!(
        bad.starts_with("127.0.0.1 - - [") && bad.ends_with("] \"-\" 400 150 \"-\" \"-\""),
        "{bad}"
    );
    // The header time is when the response head arrived, not the connect time.
    let times = std::fs::read_to_string(dir.join("times.log")).unwrap();
    let t: Vec<f64> = times.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(t[0] < 0.1 && t[1] >= 0.3 && t[2] >= t[1], "{times}");
    let up = std::fs::read_to_string(dir.join("up.log")).unwrap();
    assert_eq!(up.trim(), format!("127.0.0.1 200 {} 200 /up/z", b.addr));
}

#[test]
fn response_headers_hide_pass_and_add() {
    let b = Backend::start("a");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off; add_header X-Http h;
         server {{ listen 127.0.0.1:{port};
           location /plain {{ proxy_pass http://{a}; }}
           location /pass/ {{ proxy_pass http://{a}/; proxy_pass_header Server; proxy_hide_header X-Backend; add_header X-Loc \"$uri\"; add_header X-Always yes always; }} }} }}",
        a = b.addr
    );
    let _r = Ringx::start(&conf, &[], addr);
    let r = get(addr, "/plain", "x").unwrap();
    assert_eq!(
        r.header("server"),
        Some("ringx"),
        "upstream Server is hidden by default"
    );
    assert_eq!(r.header("x-backend"), Some("a"));
    assert_eq!(r.header("x-http"), Some("h"), "add_header inherited from http");
    assert!(r.header("date").is_some());
    let r = get(addr, "/pass/x", "x").unwrap();
    assert_eq!(r.header("server"), Some("testbe"), "proxy_pass_header Server");
    assert!(r.header("x-backend").is_none(), "proxy_hide_header");
    assert_eq!(r.header("x-loc"), Some("/pass/x"));
    assert!(
        r.header("x-http").is_none(),
        "a level with add_header replaces the inherited list"
    );
    let r = get(addr, "/pass/status?code=404", "x").unwrap();
    assert_eq!(r.status, 404);
    assert!(r.header("x-loc").is_none(), "add_header without always skips 404");
    assert_eq!(r.header("x-always"), Some("yes"));
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn timeouts_close_connections_and_leak_no_fds() {
    let slow = Backend::start("slow");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off; keepalive_timeout 1s; client_header_timeout 1s;
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; proxy_read_timeout 200ms; }} }} }}",
        slow.addr
    );
    let r = Ringx::start(&conf, &[], addr);
    get(addr, "/warm", "x").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let base = fd_count(r.child.id());
    // keepalive_timeout: an idle client connection is closed by ringx.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut idle, &mut buf, false).unwrap().status, 200);
    let t0 = std::time::Instant::now();
    let mut one = [0u8; 1];
    let n = std::io::Read::read(&mut idle, &mut one).unwrap_or(0);
    assert_eq!(n, 0, "expected FIN from ringx");
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "closed after {:?}",
        t0.elapsed()
    );
    // client_header_timeout: a half-sent head is dropped.
    let mut half = TcpStream::connect(addr).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    assert_eq!(std::io::Read::read(&mut half, &mut one).unwrap_or(0), 0);
    // proxy_read_timeout, repeatedly: each 504 must release both sockets.
    for _ in 0..10 {
        assert_eq!(get(addr, "/slow?ms=600", "x").unwrap().status, 504);
    }
    drop(idle);
    drop(half);
    // The slow backend answers late; ringx's sockets to it are shut down and go away.
    std::thread::sleep(Duration::from_millis(1200));
    let after = fd_count(r.child.id());
    assert!(after <= base + 2, "fds before {base}, after {after}");
}

/// Garbage and mutated requests from many clients: every connection gets a response or
/// a close, never a hang; the workers survive and answer normal requests afterwards.
#[test]
fn hostile_input_never_kills_a_worker() {
    let b = Backend::start("a");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = format!(
        "daemon off; pid off; worker_processes 2; events {{}} http {{ access_log off; client_header_timeout 2s; client_body_timeout 2s;
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}",
        b.addr
    );
    let mut r = Ringx::start(&conf, &[], addr);
    let base: &[u8] = b"POST /echo?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let mut seed: u64 = 42;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for i in 0..300 {
        let mut v = base.to_vec();
        for _ in 0..(1 + rnd() % 6) {
            if v.is_empty() {
                v.push(b'G');
            }
            let pos = (rnd() as usize) % v.len();
            match rnd() % 4 {
                0 => v[pos] = (rnd() % 256) as u8,
                1 => {
                    v.remove(pos);
                }
                2 => v.insert(pos, b"\r\n\x00:; \t"[(rnd() % 7) as usize]),
                _ => v.truncate(pos.max(1)),
            }
        }
        if i % 50 == 0 {
            v = (0..(rnd() % 3000)).map(|_| (rnd() % 256) as u8).collect();
        }
        cases.push(v);
    }
    let handles: Vec<_> = cases
        .chunks(30)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                for raw in chunk {
                    let Ok(mut s) = TcpStream::connect(addr) else { continue };
                    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
                    let _ = s.write_all(&raw);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let mut out = Vec::new();
                    let t0 = std::time::Instant::now();
                    let _ = std::io::Read::read_to_end(&mut s, &mut out);
                    assert!(t0.elapsed() < Duration::from_secs(6), "a connection hung");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(r.child.try_wait().unwrap().is_none(), "ringx exited");
    for i in 0..20 {
        assert_eq!(
            get(addr, &format!("/after/{i}"), "x").unwrap().status,
            200,
            "ringx stopped answering"
        );
    }
    assert!(!r.stderr().contains("panicked"), "{}", r.stderr());
}

/// `keepalive_time`: an upstream connection older than it is closed after its
/// request instead of going back to the pool; younger ones are reused.
#[test]
fn keepalive_time_retires_old_upstream_connections() {
    let b = Backend::start("aged");
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; worker_processes 1; events {{}} http {{ access_log off;\n\
         upstream u {{ server {}; keepalive 4; keepalive_time 1s; }}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}",
        b.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    let conns = || b.conns.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(get(addr_of(port), "/", "x").unwrap().status, 200);
    }
    assert_eq!(conns(), 1, "reused while young");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(addr_of(port), "/", "x").unwrap().status, 200);
    assert_eq!(get(addr_of(port), "/", "x").unwrap().status, 200);
    assert_eq!(conns(), 2, "the old one went after its request, a new one serves");
}

/// `proxy_socket_keepalive on`: ringx's connections to the upstream run the kernel's
/// keepalive timer (`tr` 02 in /proc/net/tcp); without it they do not.
#[test]
fn proxy_socket_keepalive_sets_so_keepalive() {
    let (on, off) = (Backend::start("on"), Backend::start("off"));
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off;\n\
         upstream on {{ server {}; keepalive 4; }} upstream off {{ server {}; keepalive 4; }}\n\
         server {{ listen 127.0.0.1:{port}; proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
           location /on/ {{ proxy_socket_keepalive on; proxy_pass http://on; }}\n\
           location /off/ {{ proxy_pass http://off; }} }} }}",
        on.addr, off.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    for p in ["/on/x", "/off/x"] {
        assert_eq!(get(addr_of(port), p, "x").unwrap().status, 200);
    }
    let timer = tcp_timers;
    assert_eq!(timer(on.addr.port()), ["02"], "keepalive timer on");
    assert_eq!(timer(off.addr.port()), ["00"], "no timer");
}

/// `client_body_temp_path`: where a body read whole keeps what does not fit in
/// memory. ringx makes the directory at start-up, as nginx (mode 0700, given to the
/// workers' user); one whose parent is missing stops the start with nginx's words;
/// a directory that goes away later is ringx's 500 with a crit line, never the
/// upstream's fault.
#[test]
fn client_body_temp_path_is_where_a_spooled_body_goes() {
    use std::os::unix::fs::PermissionsExt;
    let b = Backend::start("spool");
    let dir = tempdir("bodytemp");
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; error_log {d}/error.log info; events {{}} http {{ access_log off;\n\
         server {{ listen 127.0.0.1:{port};\n\
           location = /ok {{ client_body_temp_path {d}/body 1 2; proxy_pass http://{be}/echo; }} }} }}",
        d = dir.display(),
        be = b.addr
    );
    let r = Ringx::start(&conf, &[], addr_of(port));
    let made = std::fs::metadata(dir.join("body")).expect("the directory was made");
    assert_eq!(made.permissions().mode() & 0o777, 0o700);
    let body = vec![b'z'; 200 * 1024];
    let chunked = |path: &str| {
        let mut raw =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .into_bytes();
        raw.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        raw.extend_from_slice(&body);
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        request(addr_of(port), &raw).unwrap()
    };
    let ok = chunked("/ok");
    assert_eq!((ok.status, ok.body.len()), (200, body.len()));
    std::fs::remove_dir(dir.join("body")).unwrap();
    assert_eq!(chunked("/ok").status, 500);
    assert_eq!(b.count(), 1, "the failed one reached no upstream");
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap();
    assert!(
        log.contains("[crit]") && log.contains("writing the request body to a temporary file failed"),
        "{log}"
    );
    drop(r);
    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        format!(
            "daemon off; pid off; events {{}} http {{ server {{ listen 127.0.0.1:{}; \
             location / {{ proxy_temp_path {}/missing/proxy; }} }} }}",
            free_port(),
            dir.display()
        ),
    )
    .unwrap();
    let (code, _, err) = ringx_cmd(&["-c", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "mkdir() \"{}/missing/proxy\" failed (2: No such file or directory)",
            dir.display()
        )),
        "{err}"
    );
}
