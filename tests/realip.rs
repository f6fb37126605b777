//! nginx's realip module against Debian's nginx: which address `$remote_addr` (and
//! `$remote_port`, `$realip_remote_addr`, `X-Forwarded-For` upstream) becomes for
//! X-Real-IP, X-Forwarded-For with and without `real_ip_recursive`, a custom
//! header, trusted and untrusted peers, several headers and bad values.

mod common;

use std::net::SocketAddr;

use common::*;

fn http_block(port: u16, backend: SocketAddr) -> String {
    format!(
        r#"access_log off;
    server {{
        listen 127.0.0.1:{port};
        set_real_ip_from 127.0.0.0/8;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr\n"; }}
        # A location's own settings apply after its rewrite phase (a `return` still
        # sees the connection's address, as nginx): seen through what goes upstream.
        location /xff/ {{ real_ip_header X-Forwarded-For; proxy_pass http://{backend}; {addr} }}
        location /rec/ {{ real_ip_header X-Forwarded-For; real_ip_recursive on;
                          set_real_ip_from 127.0.0.0/8; set_real_ip_from 10.0.0.0/8;
                          proxy_pass http://{backend}; {addr} }}
        location /custom/ {{ real_ip_header CF-Connecting-IP; proxy_pass http://{backend}; {addr} }}
        location /untrusted/ {{ set_real_ip_from 10.0.0.0/8; proxy_pass http://{backend}; {addr} }}
        location /ret/ {{ real_ip_header X-Forwarded-For; return 200 "$remote_addr\n"; }}
        location /up/ {{ real_ip_header X-Forwarded-For; proxy_pass http://{backend};
                        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }}
    }}"#,
        addr = r#"proxy_set_header X-Addr "$remote_addr|$remote_port|$realip_remote_addr";"#
    )
}

#[test]
fn realip_matches_nginx() {
    let backend = Backend::start("be");
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| http_block(p, backend.addr)) else {
        return;
    };
    let req = |p: &str, h: &str| format!("GET {p} HTTP/1.1\r\nHost: x\r\n{h}Connection: close\r\n\r\n");
    let cases = [
        req("/", "X-Real-IP: 1.2.3.4\r\n"),
        req("/", "X-Real-IP: 2001:db8::1\r\n"),
        req("/", "X-Real-IP: garbage\r\n"),
        req("/", ""),
        req("/xff/", "X-Forwarded-For: 1.2.3.4\r\n"),
        req("/xff/", "X-Forwarded-For: 9.9.9.9, 1.2.3.4\r\n"),
        req("/xff/", "X-Forwarded-For: 1.2.3.4:5678\r\n"),
        req("/xff/", "X-Forwarded-For: [2001:db8::2]:80\r\n"),
        req("/xff/", "X-Forwarded-For: 1.2.3.4,  \r\n"),
        req("/rec/", "X-Forwarded-For: 9.9.9.9, 10.1.1.1, 127.0.0.5\r\n"),
        req("/rec/", "X-Forwarded-For: 10.1.1.1, 127.0.0.5\r\n"),
        req("/rec/", "X-Forwarded-For: 8.8.8.8\r\nX-Forwarded-For: 10.2.2.2\r\n"),
        req("/rec/", "X-Forwarded-For: bad, 10.2.2.2\r\n"),
        req("/custom/", "CF-Connecting-IP: 5.6.7.8\r\nX-Real-IP: 1.1.1.1\r\n"),
        req("/untrusted/", "X-Real-IP: 1.2.3.4\r\n"),
        req("/ret/", "X-Forwarded-For: 1.2.3.4\r\n"),
    ];
    let mut diffs = Vec::new();
    for raw in &cases {
        let seen = |addr| {
            backend.clear();
            let r = request(addr, raw.as_bytes()).unwrap();
            let up = backend
                .requests()
                .first()
                .and_then(|q| q.header("x-addr").map(str::to_string));
            (r.status, up.unwrap_or_else(|| r.text()))
        };
        let ((rs, rt), (ns, nt)) = (seen(ra), seen(na));
        // The connection's own port differs between the two; only its presence counts.
        let norm = |t: String| {
            let parts: Vec<String> = t
                .trim_end()
                .split('|')
                .enumerate()
                .map(|(i, p)| {
                    if i == 1 && p.parse::<u16>().is_ok_and(|v| v > 1024 && v != 5678) {
                        "PORT".into()
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            parts.join("|")
        };
        let (a, b) = (norm(rt), norm(nt));
        if (rs, &a) != (ns, &b) {
            diffs.push(format!("{raw:?}:\n  ringx {rs} {a}\n  nginx {ns} {b}"));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // The walk itself: the rightmost untrusted address, over several headers.
    backend.clear();
    request(ra, cases[9].as_bytes()).unwrap();
    assert_eq!(backend.requests()[0].header("x-addr"), Some("9.9.9.9||127.0.0.1"));
    backend.clear();
    request(ra, cases[11].as_bytes()).unwrap();
    assert!(backend.requests()[0].header("x-addr").unwrap().starts_with("8.8.8.8|"));
    // Upstream: X-Forwarded-For keeps the header and adds the real address.
    for addr in [ra, na] {
        backend.clear();
        request(addr, req("/up/x", "X-Forwarded-For: 1.2.3.4\r\n").as_bytes()).unwrap();
        let q = backend.requests();
        assert_eq!(q[0].header("x-forwarded-for"), Some("1.2.3.4, 1.2.3.4"), "{addr}");
    }
}

/// `allow` / `deny` (nginx's access module, first match decides, after the
/// rewrite phase so a `return` still answers) against nginx, from two loopback
/// addresses and through realip.
#[test]
fn access_rules_match_nginx() {
    let backend = Backend::start("be");
    let block = |port: u16| {
        format!(
            r#"access_log off;
    server {{
        listen 127.0.0.1:{port};
        location /acl/ {{ deny 127.0.0.2; allow 127.0.0.0/8; deny all; proxy_pass http://{be}; }}
        location /only10/ {{ allow 10.0.0.0/8; deny all; proxy_pass http://{be}; }}
        location /ret/ {{ deny all; return 200 "returned first\n"; }}
        location /real/ {{ set_real_ip_from 127.0.0.0/8; real_ip_header X-Forwarded-For; deny 1.2.3.4;
                          proxy_pass http://{be}; }}
        location /inherit/ {{ deny 127.0.0.3; location /inherit/in/ {{ proxy_pass http://{be}; }} }}
    }}"#,
            be = backend.addr
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let req = |p: &str, h: &str| format!("GET {p} HTTP/1.1\r\nHost: x\r\n{h}Connection: close\r\n\r\n");
    let cases = [
        ("127.0.0.1", req("/acl/x", "")),
        ("127.0.0.2", req("/acl/x", "")),
        ("127.0.0.1", req("/only10/x", "")),
        ("127.0.0.1", req("/ret/x", "")),
        ("127.0.0.1", req("/real/x", "X-Forwarded-For: 1.2.3.4\r\n")),
        ("127.0.0.1", req("/real/x", "X-Forwarded-For: 5.6.7.8\r\n")),
        ("127.0.0.3", req("/inherit/in/x", "")),
        ("127.0.0.4", req("/inherit/in/x", "")),
    ];
    let mut diffs = Vec::new();
    for (src, raw) in &cases {
        let src: std::net::IpAddr = src.parse().unwrap();
        let r = request_from(src, ra, raw.as_bytes()).unwrap();
        let n = request_from(src, na, raw.as_bytes()).unwrap();
        if r.status != n.status {
            diffs.push(format!("{src} {raw:?}: ringx {} nginx {}", r.status, n.status));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    let r = request_from("127.0.0.2".parse().unwrap(), ra, cases[1].1.as_bytes()).unwrap();
    assert_eq!(r.status, 403);
}
