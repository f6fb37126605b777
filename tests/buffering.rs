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
