//! Differential tests: the same configuration and the same raw requests through ringx
//! and through Debian's nginx, comparing what a user observes: the status code, and
//! what the backend received (method, target, version, headers, body).
//!
//! Framing headers (Content-Length / Transfer-Encoding) are compared by the decoded
//! body instead: nginx buffers request bodies and always sends a length, ringx streams
//! chunked bodies through. Where ringx deliberately differs, the table says what each
//! one answers, so the difference stays checked (see docs/config.md).

mod common;

use std::net::SocketAddr;

use common::*;

fn http_block(port: u16, backend: SocketAddr) -> String {
    format!(
        r#"access_log off;
    upstream be {{ server {backend}; }}
    server {{
        listen 127.0.0.1:{port};
        server_name diff.test;
        location / {{
            proxy_pass http://be;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
        location /v11/ {{
            proxy_pass http://be/api/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Drop "";
        }}
        location = /health {{ return 200 "ok\n"; }}
        location /r {{ return 301 https://$host$request_uri; }}
        location /limited {{ client_max_body_size 10; proxy_pass http://be; }}
    }}"#
    )
}

struct Target {
    addr: SocketAddr,
    backend: Backend,
}

/// What the backend received: method, target, version, headers (sorted), body.
type Forwarded = (String, String, String, Vec<(String, String)>, Vec<u8>);

/// One raw request, and what differs: `None` = identical, else (ringx, nginx) status.
type Case = (&'static str, Vec<u8>, Option<(u16, u16)>);

/// What one side did with one request.
#[derive(Debug, PartialEq)]
struct Seen {
    status: Option<u16>,
    forwarded: Option<Forwarded>,
}

fn observe(t: &Target, raw: &[u8]) -> Seen {
    t.backend.clear();
    let status = request(t.addr, raw).map(|r| r.status);
    // The backend may still be recording a request nginx passed on.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let reqs = t.backend.requests();
    let forwarded = reqs.first().map(|r| {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("transfer-encoding"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        (r.method.clone(), r.target.clone(), r.version.clone(), h, r.body.clone())
    });
    Seen { status, forwarded }
}

/// (request, what differs: None = identical, or Some((ringx status, nginx status)))
fn table() -> Vec<Case> {
    let mut t: Vec<Case> = vec![
        ("simple get", b"GET / HTTP/1.1\r\nHost: diff.test\r\nConnection: close\r\n\r\n".to_vec(), None),
        (
            "query and headers",
            b"GET /p/a?x=1&y=%20 HTTP/1.1\r\nHost: diff.test\r\nUser-Agent: ua\r\nAccept: */*\r\nCookie: a=1\r\nConnection: close\r\n\r\n".to_vec(),
            None,
        ),
        (
            "x-forwarded-for appended",
            b"GET / HTTP/1.1\r\nHost: diff.test\r\nX-Forwarded-For: 10.1.1.1\r\nX-Real-IP: 9.9.9.9\r\nConnection: close\r\n\r\n".to_vec(),
            None,
        ),
        ("http/1.0 without host", b"GET /old HTTP/1.0\r\n\r\n".to_vec(), None),
        (
            "post with length",
            b"POST /echo HTTP/1.1\r\nHost: diff.test\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world".to_vec(),
            None,
        ),
        (
            "post chunked",
            b"POST /echo HTTP/1.1\r\nHost: diff.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec(),
            None,
        ),
        (
            "expect 100-continue",
            b"POST /echo HTTP/1.1\r\nHost: diff.test\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhi".to_vec(),
            None,
        ),
        ("head", b"HEAD / HTTP/1.1\r\nHost: diff.test\r\nConnection: close\r\n\r\n".to_vec(), None),
        (
            "proxy_pass uri replaced, http/1.1, host, empty header dropped",
            b"GET /v11/users/1?x=2 HTTP/1.1\r\nHost: Diff.Test:99\r\nX-Drop: 1\r\nConnection: close\r\n\r\n".to_vec(),
            None,
        ),
        ("normalised uri", b"GET /v11//a/./b/../c HTTP/1.1\r\nHost: diff.test\r\nConnection: close\r\n\r\n".to_vec(), None),
        ("percent-encoded uri", b"GET /v11/%61%20b HTTP/1.1\r\nHost: diff.test\r\nConnection: close\r\n\r\n".to_vec(), None),
        ("return", b"GET /health HTTP/1.1\r\nHost: diff.test\r\nConnection: close\r\n\r\n".to_vec(), None),
        ("redirect", b"GET /r?a=b HTTP/1.1\r\nHost: diff.test\r\nConnection: close\r\n\r\n".to_vec(), None),
        (
            "body over limit",
            b"POST /limited HTTP/1.1\r\nHost: diff.test\r\nContent-Length: 20\r\nConnection: close\r\n\r\n01234567890123456789".to_vec(),
            None,
        ),
        (
            "absolute-form target",
            b"GET http://diff.test/abs?q HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n".to_vec(),
            None,
        ),
        (
            "underscore header dropped",
            b"GET / HTTP/1.1\r\nHost: diff.test\r\nX_Under: 1\r\nConnection: close\r\n\r\n".to_vec(),
            None,
        ),
        ("no host on 1.1", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(), None),
        (
            "two content-lengths",
            b"POST / HTTP/1.1\r\nHost: diff.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            None,
        ),
        (
            "content-length and chunked",
            b"POST / HTTP/1.1\r\nHost: diff.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            None,
        ),
        (
            "unknown coding before chunked",
            b"POST / HTTP/1.1\r\nHost: diff.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec(),
            None,
        ),
        (
            "chunked not last: RFC 9112 says 400, nginx 1.22 says 501",
            b"POST / HTTP/1.1\r\nHost: diff.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n".to_vec(),
            Some((400, 501)),
        ),
        (
            "bad chunk size",
            b"POST / HTTP/1.1\r\nHost: diff.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nab\r\n0\r\n\r\n".to_vec(),
            None,
        ),
        ("nul in header", b"GET / HTTP/1.1\r\nHost: diff.test\r\nX: a\x00b\r\n\r\n".to_vec(), None),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : diff.test\r\n\r\n".to_vec(), None),
        ("duplicate host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), None),
        ("trace", b"TRACE / HTTP/1.1\r\nHost: diff.test\r\n\r\n".to_vec(), None),
        ("dot-dot above root", b"GET /../x HTTP/1.1\r\nHost: diff.test\r\n\r\n".to_vec(), None),
        ("invalid host", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n".to_vec(), None),
    ];
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', 9000));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: diff.test\r\n\r\n");
    t.push(("uri over 8k", long, None));
    let mut big = b"GET / HTTP/1.1\r\nHost: diff.test\r\nCookie: ".to_vec();
    big.extend(std::iter::repeat_n(b'c', 9000));
    big.extend_from_slice(b"\r\n\r\n");
    t.push(("header line over 8k", big, None));
    t
}

#[test]
fn ringx_and_nginx_agree() {
    assert!(
        nginx_bin().is_some(),
        "nginx is not installed: .ci/run installs it (apt-get install nginx-light)"
    );
    let rb = Backend::start("diff");
    let nb = Backend::start("diff");
    let (rp, np) = (free_port(), free_port());
    let ra: SocketAddr = format!("127.0.0.1:{rp}").parse().unwrap();
    let na: SocketAddr = format!("127.0.0.1:{np}").parse().unwrap();
    let rconf = format!(
        "daemon off; pid off; events {{}}\nhttp {{\n{}\n}}\n",
        http_block(rp, rb.addr)
    );
    let _ringx = Ringx::start(&rconf, &[], ra);
    let _nginx = Nginx::start(&http_block(np, nb.addr), na);
    let ringx = Target { addr: ra, backend: rb };
    let nginx = Target { addr: na, backend: nb };
    let mut failures = Vec::new();
    for (name, raw, expect) in table() {
        let r = observe(&ringx, &raw);
        let n = observe(&nginx, &raw);
        match expect {
            None => {
                // Addresses in forwarded headers differ only by backend port, which
                // is not in any header; compare as is.
                if r != n {
                    failures.push(format!("{name}:\n  ringx: {r:?}\n  nginx: {n:?}"));
                }
            }
            Some((rs, ns)) => {
                if r.status != Some(rs) || n.status != Some(ns) {
                    failures.push(format!(
                        "{name}: expected ringx {rs} / nginx {ns}, got {:?} / {:?}",
                        r.status, n.status
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `underscores_in_headers` and `ignore_invalid_headers`: which request fields with
/// names nginx calls invalid reach the backend.
#[test]
fn invalid_header_names_are_dropped_or_kept_as_nginx() {
    let backend = Backend::start("names");
    let block = |port: u16| {
        format!(
            "access_log off;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{be}; }} }}\n\
             server {{ listen 127.0.0.1:{port}; server_name under; underscores_in_headers on; location / {{ proxy_pass http://{be}; }} }}\n\
             server {{ listen 127.0.0.1:{port}; server_name keep; ignore_invalid_headers off; location / {{ proxy_pass http://{be}; }} }}",
            be = backend.addr
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let mut seen = Vec::new();
    for a in [ra, na] {
        let mut got = Vec::new();
        for host in ["x", "under", "keep"] {
            backend.clear();
            let raw = format!(
                "GET / HTTP/1.1\r\nHost: {host}\r\nX_Under: 1\r\nX.Dot: 2\r\nX-Fine: 3\r\nConnection: close\r\n\r\n"
            );
            assert_eq!(request(a, raw.as_bytes()).unwrap().status, 200);
            let q = &backend.requests()[0];
            got.push(["x_under", "x.dot", "x-fine"].map(|n| q.header(n).is_some()));
        }
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "ringx, then nginx");
    assert_eq!(
        seen[0],
        [[false, false, true], [true, false, true], [true, true, true]],
        "default; underscores_in_headers on; ignore_invalid_headers off"
    );
}

/// `chunked_transfer_encoding off`: a response of unknown length goes to an HTTP/1.1
/// client close-delimited (no Transfer-Encoding, `Connection: close`), as nginx.
#[test]
fn chunked_transfer_encoding_off_matches_nginx() {
    let backend = Backend::start("chunks");
    let block = |port: u16| {
        format!(
            "access_log off;\n\
             server {{ listen 127.0.0.1:{port}; chunked_transfer_encoding off;\n\
               location / {{ proxy_pass http://{be}; proxy_http_version 1.1; }}\n\
               location /gz/ {{ proxy_pass http://{be}/; gzip on; gzip_types text/plain; gzip_min_length 1; }} }}",
            be = backend.addr
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let mut seen = Vec::new();
    for a in [ra, na] {
        for p in ["/chunked?n=3000", "/gz/big?n=3000"] {
            let raw = format!("GET {p} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
            let r = request(a, raw.as_bytes()).unwrap();
            let h = |n: &str| r.header(n).map(str::to_owned);
            seen.push((
                r.status,
                h("transfer-encoding"),
                h("content-length"),
                h("connection"),
                !r.body.is_empty(),
            ));
        }
    }
    assert_eq!(seen[..2], seen[2..], "ringx, then nginx");
    assert_eq!(seen[0], (200, None, None, Some("close".into()), true));
}
