//! `gzip_static on|always` (issue 10): `FILE.gz` served beside a static file with
//! its own length and validators, side by side with Debian's nginx.

mod common;

use std::io::Write;

use common::*;

fn block(port: u16, root: &str) -> String {
    format!(
        r#"access_log off;
    types {{ application/javascript js; text/css css; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /on/ {{ gzip_static on; gzip_vary on; }}
        location /always/ {{ gzip_static always; }}
        location /both/ {{ gzip_static on; gzip on; gzip_types text/css; gzip_min_length 1; }}
        location /off/ {{ }}
    }}"#
    )
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_static_matches_nginx() {
    let root = tempdir("gzstatic");
    let body = b"function hello() { return 'hello, world'; }\n".repeat(50);
    for d in ["on", "always", "both", "off"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::write(root.join(d).join("app.js"), &body).unwrap();
        std::fs::write(root.join(d).join("app.js.gz"), gz(&body)).unwrap();
        std::fs::write(root.join(d).join("plain.css"), &body).unwrap();
    }
    let r = root.display().to_string();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| block(p, &r)) else {
        return;
    };
    let mut diffs = Vec::new();
    let mut got_ringx = Vec::new();
    for path in [
        "/on/app.js",
        "/always/app.js",
        "/both/app.js",
        "/both/plain.css",
        "/off/app.js",
        "/on/plain.css",
    ] {
        for extra in [
            "",
            "Accept-Encoding: gzip\r\n",
            "Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n",
        ] {
            for method in ["GET", "HEAD"] {
                let raw = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
                let seen = |a| {
                    let x = if method == "HEAD" {
                        head_request(a, raw.as_bytes())
                    } else {
                        request(a, raw.as_bytes()).unwrap()
                    };
                    let h = |n: &str| x.header(n).map(str::to_owned);
                    // Bodies compressed on the fly differ by zlib: compare them inflated.
                    let body = if h("content-encoding").is_some() && h("content-length").is_none() && !x.body.is_empty()
                    {
                        inflate(&x.body)
                    } else {
                        x.body.clone()
                    };
                    (
                        x.status,
                        h("content-encoding"),
                        h("content-length"),
                        h("vary"),
                        h("etag"),
                        h("content-range"),
                        body,
                    )
                };
                let (rs, ns) = (seen(ra), seen(na));
                if rs != ns {
                    diffs.push(format!(
                        "{method} {path} {extra:?}:\n  ringx {:?}\n  nginx {:?}",
                        (rs.0, &rs.1, &rs.2, &rs.3, &rs.4, &rs.5),
                        (ns.0, &ns.1, &ns.2, &ns.3, &ns.4, &ns.5)
                    ));
                }
                got_ringx.push(rs);
            }
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // /on/app.js with gzip: the .gz as it is.
    let x = &got_ringx[2];
    assert_eq!((x.0, x.1.as_deref()), (200, Some("gzip")));
    assert_eq!(x.6, gz(&body));
    // Without: the file, and Vary.
    assert_eq!(
        (got_ringx[0].1.as_deref(), got_ringx[0].3.as_deref()),
        (None, Some("Accept-Encoding"))
    );
}

fn inflate(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

/// A HEAD request's response (no body follows its head).
fn head_request(a: std::net::SocketAddr, raw: &[u8]) -> Response {
    let mut s = std::net::TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    read_response(&mut s, &mut buf, true).unwrap()
}
