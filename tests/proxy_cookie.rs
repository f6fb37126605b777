//! `proxy_cookie_domain`, `proxy_cookie_path`, `proxy_cookie_flags` (issue 10): the
//! upstream's `Set-Cookie` fields as the client gets them, side by side with
//! Debian's nginx.

mod common;

use std::io::Write;

use common::*;

/// A backend that answers with the `Set-Cookie` fields the request asks for in
/// `X-Cookie` (one per such field).
fn cookie_backend() -> std::net::SocketAddr {
    serve_each(|mut s| {
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut out = String::from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n");
        for line in head.lines() {
            if let Some(v) = line.strip_prefix("X-Cookie: ") {
                out.push_str(&format!("Set-Cookie: {v}\r\n"));
            }
        }
        out.push_str("\r\n");
        let _ = s.write_all(out.as_bytes());
    })
}

fn block(port: u16, be: std::net::SocketAddr) -> String {
    format!(
        r#"access_log off;
    server {{
        listen 127.0.0.1:{port};
        location /p/ {{
            proxy_pass http://{be};
            proxy_cookie_domain inner.test outer.test;
            proxy_cookie_domain ~^(.+)\.svc\.local$ $1.example.com;
            proxy_cookie_path /app/ /;
            proxy_cookie_path ~*^/SHOP(.*)$ /store$1;
            proxy_cookie_flags session secure httponly samesite=lax;
            proxy_cookie_flags ~^track nosecure nohttponly nosamesite;
        }}
        location /off/ {{ proxy_pass http://{be}; proxy_cookie_path off; proxy_cookie_domain off; proxy_cookie_flags off; }}
    }}"#
    )
}

#[test]
fn set_cookie_rewrites_match_nginx() {
    let be = cookie_backend();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| block(p, be)) else {
        return;
    };
    let cookies = [
        "a=1; Domain=inner.test; Path=/app/x",
        "a=1; domain=.INNER.test",
        "b=2; Domain=api.svc.local; path=/shop/cart",
        "c=3;path=/app/;  Secure ;HttpOnly",
        "session=abc; Path=/app/; SameSite=Strict",
        "session=abc; secure",
        "SESSION=x",
        "tracker=1; Secure; HttpOnly; SameSite=None; Path=/other",
        "plain=1; Path=/other",
        "novalue",
        "d=4; Domain=other.test",
    ];
    let mut diffs = Vec::new();
    let mut seen = Vec::new();
    for path in ["/p/x", "/off/x"] {
        for ck in cookies {
            let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Cookie: {ck}\r\nConnection: close\r\n\r\n");
            let (r, n) = (
                request(ra, raw.as_bytes()).unwrap(),
                request(na, raw.as_bytes()).unwrap(),
            );
            let (rv, nv) = (
                r.header("set-cookie").map(str::to_owned),
                n.header("set-cookie").map(str::to_owned),
            );
            if rv != nv {
                diffs.push(format!("{path} {ck:?}: ringx {rv:?}, nginx {nv:?}"));
            }
            seen.push(rv);
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    assert_eq!(seen[0].as_deref(), Some("a=1; Domain=outer.test; Path=/x"));
    assert_eq!(
        seen[4].as_deref(),
        Some("session=abc; Path=/; SameSite=Lax; Secure; HttpOnly")
    );
    assert_eq!(seen[11].as_deref(), Some("a=1; Domain=inner.test; Path=/app/x"), "off");
}

#[test]
fn cookie_directive_errors_as_nginx() {
    for (bad, why) in [
        (
            "server { location / { proxy_cookie_path off; proxy_cookie_path / /x; } }",
            "is duplicate",
        ),
        (
            "server { location / { proxy_cookie_domain a; } }",
            "invalid parameter \"a\"",
        ),
        (
            "server { location / { proxy_cookie_flags s bogus; } }",
            "invalid parameter \"bogus\"",
        ),
        (
            "server { location / { proxy_cookie_flags ~(x secure; } }",
            "pcre2_compile() failed",
        ),
    ] {
        assert_config_error(bad, why);
    }
}
