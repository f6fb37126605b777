//! `gzip` on proxied responses: every upstream framing (length, chunked, close)
//! compressed and decompressing to the upstream's bytes, the requests and responses
//! the filter leaves alone, keep-alive across compressed responses, HTTP/2; and the
//! same requests through Debian's nginx for the headers a client acts on.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn http_block(port: u16, backend: SocketAddr) -> String {
    format!(
        r#"access_log off;
    upstream be {{ server {backend}; }}
    server {{
        listen 127.0.0.1:{port};
        http2 on;
        gzip on;
        gzip_vary on;
        gzip_types *;
        gzip_min_length 10;
        location / {{ proxy_pass http://be; }}
        location /v11/ {{ proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; }}
        location /plain/ {{ proxy_pass http://be/; gzip_types text/html; }}
        location /h10/ {{ proxy_pass http://be/; gzip_http_version 1.0; }}
        location /via/ {{ proxy_pass http://be/; gzip_proxied any; }}
        location /ua/ {{ proxy_pass http://be/; gzip_disable "^curl"; }}
    }}"#
    )
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

fn letters(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn req(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gz.test\r\n{extra}Connection: close\r\n\r\n")
}

#[test]
fn proxied_responses_are_compressed() {
    let backend = Backend::start("be");
    let port = free_port();
    let addr = addr_of(port);
    let conf = format!(
        "daemon off; pid off; events {{}}\nhttp {{\n{}\n}}\n",
        http_block(port, backend.addr)
    );
    let _ringx = Ringx::start(&conf, &[], addr);
    let gz = "Accept-Encoding: gzip, deflate\r\n";
    for (path, n) in [
        ("/big?n=50000", 50000),
        ("/chunked?n=100000", 100000),
        ("/close?n=70000", 70000),
        ("/v11/chunked?n=30000", 30000),
        ("/big?n=10", 10),
    ] {
        let r = request(addr, req(path, gz).as_bytes()).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(r.header("content-length"), None, "{path}");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{path}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{path}");
        assert_eq!(gunzip(&r.body), letters(n), "{path}");
    }
    // Left alone: no Accept-Encoding (but Vary), too short, a type not listed,
    // HTTP/1.0 (unless gzip_http_version 1.0), a proxied request (unless
    // gzip_proxied any), gzip_disable, q=0, an error status.
    let plain = |path: &str, extra: &str, vary: bool| {
        let r = request(addr, req(path, extra).as_bytes()).unwrap();
        assert_eq!(r.header("content-encoding"), None, "{path} {extra}");
        assert_eq!(r.header("vary").is_some(), vary, "{path} {extra}");
        r
    };
    assert_eq!(plain("/big?n=5000", "", true).body, letters(5000));
    plain("/big?n=9", gz, false);
    plain("/plain/big?n=5000", gz, false);
    plain("/via/status?code=500", gz, false);
    plain("/big?n=5000", "Accept-Encoding: gzip;q=0\r\n", true);
    plain("/big?n=5000", &format!("{gz}Via: 1.1 cache\r\n"), true);
    plain("/ua/big?n=5000", &format!("{gz}User-Agent: curl/8\r\n"), true);
    let r = request(addr, b"GET /big?n=5000 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n").unwrap();
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, 5000));
    // ...and compressed where the location allows.
    let r = request(
        addr,
        req("/via/big?n=5000", &format!("{gz}Via: 1.1 cache\r\n")).as_bytes(),
    )
    .unwrap();
    assert_eq!(gunzip(&r.body), letters(5000));
    let r = request(addr, b"GET /h10/big?n=5000 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n").unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.header("transfer-encoding"),
        None,
        "HTTP/1.0 gets a close-delimited body"
    );
    assert_eq!(gunzip(&r.body), letters(5000));
    // HEAD: a gzip head without a length, and no body.
    let r = request(
        addr,
        b"HEAD /big?n=5000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), None);

    // Compressed responses keep the connection open.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    for n in [20000, 100, 70000] {
        use std::io::Write;
        s.write_all(format!("GET /v11/chunked?n={n} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert_eq!(gunzip(&r.body), letters(n));
    }

    // HTTP/2 (curl decompresses).
    let out = std::process::Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "--compressed", "-D", "-"])
        .arg(format!("http://127.0.0.1:{port}/chunked?n=40000"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.contains("content-encoding: gzip"), "{text}");
    assert!(out.stdout.ends_with(&letters(40000)), "h2 body differs");
}

/// The headers nginx sends for the same proxied responses.
#[test]
fn proxied_gzip_headers_match_nginx() {
    if nginx_bin().is_none() {
        eprintln!("skipped: nginx is not installed (run .ci/run)");
        return;
    }
    let backend = Backend::start("be");
    let (rp, np) = (free_port(), free_port());
    let (ra, na) = (addr_of(rp), addr_of(np));
    let conf = format!(
        "daemon off; pid off; events {{}}\nhttp {{\n{}\n}}\n",
        http_block(rp, backend.addr)
    );
    let _ringx = Ringx::start(&conf, &[], ra);
    // nginx 1.22 has no `http2 on` (1.25.1+).
    let _nginx = Nginx::start(&http_block(np, backend.addr).replace("http2 on;", ""), na);
    let keep = [
        "content-encoding",
        "vary",
        "content-length",
        "transfer-encoding",
        "content-type",
    ];
    let seen = |addr: SocketAddr, raw: &str| {
        let r = request(addr, raw.as_bytes()).unwrap();
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(k, _)| keep.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        let body = if r.header("content-encoding").is_some() && !r.body.is_empty() {
            gunzip(&r.body)
        } else {
            r.body
        };
        (r.status, h, body)
    };
    let gz = "Accept-Encoding: gzip\r\n";
    let cases = [
        req("/big?n=50000", gz),
        req("/chunked?n=30000", gz),
        req("/close?n=30000", gz),
        req("/big?n=50000", ""),
        req("/big?n=9", gz),
        req("/", gz),
        req("/plain/big?n=500", gz),
        req("/big?n=500", &format!("{gz}Via: x\r\n")),
        req("/ua/big?n=500", &format!("{gz}User-Agent: curl/8\r\n")),
        "HEAD /big?n=500 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n".into(),
        "GET /big?n=500 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n".into(),
        "GET /h10/big?n=500 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n".into(),
    ];
    let mut diffs = Vec::new();
    for raw in &cases {
        let (r, n) = (seen(ra, raw), seen(na, raw));
        if r != n {
            diffs.push(format!(
                "{raw:?}:\n  ringx {:?}\n  nginx {:?}",
                (r.0, &r.1),
                (n.0, &n.1)
            ));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
}
