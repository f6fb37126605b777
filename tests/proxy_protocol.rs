//! The PROXY protocol (issue 11): `listen … proxy_protocol` on http (side by side
//! with nginx: v1, v2, UNKNOWN, broken headers, `$proxy_protocol_*`, realip from the
//! header) and on stream, and `proxy_protocol on` towards a stream upstream.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;

/// Sends `pre` then a GET; the response, or `None` when the connection closed
/// without one.
fn send(addr: SocketAddr, pre: &[u8]) -> Option<Response> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = pre.to_vec();
    raw.extend_from_slice(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    s.write_all(&raw).ok()?;
    read_response(&mut s, &mut Vec::new(), false)
}

fn v2(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.extend_from_slice(&[0x21, 0x11, 0, 12]);
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b
}

#[test]
fn http_listen_proxy_protocol_matches_nginx() {
    let block = |p: u16| {
        format!(
            "server {{ listen 127.0.0.1:{p} proxy_protocol;\n\
               location / {{ return 200 \"$proxy_protocol_addr|$proxy_protocol_port|$proxy_protocol_server_addr|$proxy_protocol_server_port|$remote_addr\\n\"; }}\n\
               location /real/ {{ set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol; return 200 \"$remote_addr|$realip_remote_addr\\n\"; }}\n\
             }}"
        )
    };
    let Some((_r, _n, ra, na)) = side_by_side(block) else {
        return;
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("v1", b"PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\n".to_vec()),
        ("v1 tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 6666 80\r\n".to_vec()),
        ("unknown", b"PROXY UNKNOWN\r\n".to_vec()),
        ("v2", v2([10, 1, 2, 3], [10, 0, 0, 1], 4242, 8443)),
        ("none", Vec::new()),
        ("broken", b"PROXY TCP4 1.2.3.4\r\n".to_vec()),
        ("garbage", b"HELLO\r\n".to_vec()),
    ];
    let mut diffs = Vec::new();
    for (what, pre) in &cases {
        for path in ["/x", "/real/x"] {
            let one = |addr| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut raw = pre.clone();
                raw.extend_from_slice(
                    format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
                );
                let _ = s.write_all(&raw);
                read_response(&mut s, &mut Vec::new(), false).map(|r| (r.status, r.text()))
            };
            let (r, n) = (one(ra), one(na));
            if r != n {
                diffs.push(format!("{what} {path}: ringx {r:?} nginx {n:?}"));
            }
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // What the cases mean, seen once on ringx.
    assert_eq!(
        send(ra, &cases[0].1).unwrap().text(),
        "192.0.2.7|5555|198.51.100.1|443|127.0.0.1\n"
    );
    assert!(send(ra, b"").is_none(), "a request without the header is closed");
}

#[test]
fn stream_takes_a_header_and_sends_one_upstream() {
    // The upstream records what it receives first.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                read_until(&mut c, &mut got, b"ping");
                let _ = c.write_all(b"pong");
                let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
            });
        }
    });
    let (p1, p2) = (free_port(), free_port());
    let conf = format!(
        "daemon off; pid off; events {{}} stream {{\n\
           server {{ listen 127.0.0.1:{p1}; proxy_pass {up}; proxy_protocol on; }}\n\
           server {{ listen 127.0.0.1:{p2} proxy_protocol; proxy_pass {up}; proxy_protocol on; proxy_protocol_timeout 1s; }}\n\
         }}"
    );
    let _r = Ringx::start(&conf, &[], addr_of(p1));
    // Out: the client's own addresses.
    let mut c = TcpStream::connect(addr_of(p1)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cport = c.local_addr().unwrap().port();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.read_exact(&mut b).unwrap();
    // Ringx::start's probe connection is the first the upstream sees (it sends nothing).
    let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let seen = if first.ends_with("ping") {
        first
    } else {
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    };
    assert_eq!(seen, format!("PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {p1}\r\nping"));
    // In and out: the header's client goes on.
    let mut c = TcpStream::connect(addr_of(p2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"PROXY TCP4 203.0.113.9 192.0.2.1 40000 443\r\nping")
        .unwrap();
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");
    let seen = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(seen, "PROXY TCP4 203.0.113.9 192.0.2.1 40000 443\r\nping");
    // No header within proxy_protocol_timeout: closed, nothing connected.
    let mut c = TcpStream::connect(addr_of(p2)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(900), "{:?}", t0.elapsed());
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}
