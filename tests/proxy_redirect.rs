//! `proxy_redirect` (issue 10): nginx's default rule made from `proxy_pass`, `off`,
//! explicit rules with variables, regex rules with captures, `Refresh`, and the
//! rewritten relative `Location` made absolute, side by side with Debian's nginx.

mod common;

use std::io::Write;
use std::net::SocketAddr;

use common::*;

/// A backend that answers 302 with the `Location` and `Refresh` the request asks
/// for in `X-Loc` / `X-Refresh`.
fn redirecting_backend() -> SocketAddr {
    serve_each(|mut s| {
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut out = String::from("HTTP/1.1 302 Found\r\nContent-Length: 0\r\nConnection: close\r\n");
        for line in head.lines() {
            if let Some((n, v)) = line.split_once(": ") {
                match n.to_ascii_lowercase().as_str() {
                    "x-loc" => out.push_str(&format!("Location: {v}\r\n")),
                    "x-refresh" => out.push_str(&format!("Refresh: {v}\r\n")),
                    _ => {}
                }
            }
        }
        out.push_str("\r\n");
        let _ = s.write_all(out.as_bytes());
    })
}

fn block(port: u16, be: SocketAddr) -> String {
    format!(
        r#"access_log off;
    upstream be {{ server {be}; }}
    server {{
        listen 127.0.0.1:{port};
        server_name site.test;
        location /d/ {{ proxy_pass http://be; }}
        location /u/ {{ proxy_pass http://be/app/; }}
        location = /exact {{ proxy_pass http://be/app/x; }}
        location /off/ {{ proxy_pass http://be; proxy_redirect off; }}
        location /x/ {{
            proxy_pass http://be;
            proxy_redirect http://inner:8080/ https://$host/;
            proxy_redirect ~^http://([^/.]+)\.internal/(.*)$ /ext/$1/$2;
            proxy_redirect ~*^HTTP://shout/ http://quiet/;
            proxy_redirect default;
        }}
        location /addr/ {{ proxy_pass http://{be}; }}
        location /nip/ {{ proxy_pass http://be; port_in_redirect off; }}
        location /abs/ {{ proxy_pass http://be; absolute_redirect off; }}
        location /sn/ {{ proxy_pass http://be; server_name_in_redirect on; }}
        location /var/ {{ proxy_pass http://be; proxy_redirect http://$proxy_host/ /via-var/; }}
    }}"#
    )
}

#[test]
fn proxy_redirect_matches_nginx() {
    let be = redirecting_backend();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| block(p, be)) else {
        return;
    };
    let locs = [
        ("/d/1", "http://be/p?q=1"),
        ("/d/2", "http://be"),
        ("/d/3", "http://other/p"),
        ("/d/4", "/already/relative"),
        ("/d/5", "HTTP://BE/case"),
        ("/u/1", "http://be/app/p"),
        ("/u/2", "http://be/p"),
        ("/exact", "http://be/app/x/y"),
        ("/off/1", "http://be/p"),
        ("/x/1", "http://inner:8080/z"),
        ("/x/2", "http://svc.internal/a/b"),
        ("/x/3", "http://shout/loud"),
        ("/x/4", "http://be/last"),
        ("/x/5", "http://nothing/matches"),
        ("/addr/1", &format!("http://{be}/q")),
        ("/nip/1", "http://be/p"),
        ("/abs/1", "http://be/p"),
        ("/sn/1", "http://be/p"),
        ("/var/1", "http://be/p"),
    ];
    let mut diffs = Vec::new();
    let mut seen_ringx = Vec::new();
    for (path, loc) in locs {
        for refresh in [false, true] {
            let (name, field) = if refresh {
                ("refresh", format!("X-Refresh: 3; URL={loc}\r\n"))
            } else {
                ("location", format!("X-Loc: {loc}\r\n"))
            };
            let raw = format!("GET {path} HTTP/1.1\r\nHost: front.test:8443\r\n{field}Connection: close\r\n\r\n");
            let (r, n) = (
                request(ra, raw.as_bytes()).unwrap(),
                request(na, raw.as_bytes()).unwrap(),
            );
            // The ports differ (each server has its own): compare with them out.
            let norm = |x: &Response, port: u16| {
                x.header(name)
                    .map(|v| v.replace(&format!(":{port}/"), ":PORT/"))
                    .unwrap_or_default()
            };
            let (rv, nv) = (norm(&r, ra.port()), norm(&n, na.port()));
            if (r.status, &rv) != (n.status, &nv) {
                diffs.push(format!(
                    "{path} {name} {loc}: ringx {} {rv:?}, nginx {} {nv:?}",
                    r.status, n.status
                ));
            }
            seen_ringx.push(rv);
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // And what they agree on, for a few of them (two entries a case).
    assert_eq!(seen_ringx[0], "http://front.test:PORT/p?q=1");
    assert_eq!(seen_ringx[1], "3; URL=/p?q=1");
    assert_eq!(seen_ringx[16], "http://be/p", "off");
    assert_eq!(seen_ringx[18], "https://front.test/z");
    assert_eq!(seen_ringx[20], "http://front.test:PORT/ext/svc/a/b");
}

#[test]
fn proxy_redirect_config_errors_as_nginx() {
    for (bad, why) in [
        (
            "server { proxy_redirect default; }",
            "should be placed after the \"proxy_pass\" directive",
        ),
        (
            "server { location / { proxy_pass http://$host; proxy_redirect default; } }",
            "cannot be used with \"proxy_pass\" directive with variables",
        ),
        (
            "server { location / { proxy_redirect off; proxy_redirect off; } }",
            "is duplicate",
        ),
        (
            "server { location / { proxy_redirect on; } }",
            "invalid parameter \"on\"",
        ),
        (
            "server { location / { proxy_redirect ~(x /; } }",
            "pcre2_compile() failed",
        ),
    ] {
        assert_config_error(bad, why);
    }
}
