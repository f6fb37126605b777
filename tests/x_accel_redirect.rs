//! `X-Accel-Redirect` (issue 10): an upstream hands the request to an internal
//! location (protected downloads, as Rails, Django and Discourse do it); the final
//! response keeps the upstream's Content-Type, Content-Disposition, Set-Cookie,
//! Cache-Control and Expires. Side by side with Debian's nginx.

mod common;

use std::io::Write;

use common::*;

/// Answers `GET /app/NAME` with X-Accel-Redirect to what NAME says.
fn accel_backend() -> std::net::SocketAddr {
    serve_each(|mut s| {
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let head = String::from_utf8_lossy(&buf).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let to = match path.as_str() {
            "/app/file" => "/protected/secret.txt",
            "/app/args" => "/protected/secret.txt?x=1",
            "/app/named" => "@named",
            "/app/climb" => "/protected/../secret.txt",
            "/app/missing" => "/protected/nope.txt",
            _ => "",
        };
        let mut out = String::from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n");
        if !to.is_empty() {
            out.push_str(&format!("X-Accel-Redirect: {to}\r\n"));
        }
        out.push_str(
            "Content-Type: application/x-secret\r\nContent-Disposition: attachment; filename=\"s.txt\"\r\n\
             Set-Cookie: dl=1; Path=/app/\r\nCache-Control: private\r\nX-Other: not kept\r\n\r\nbody!",
        );
        let _ = s.write_all(out.as_bytes());
    })
}

fn block(port: u16, root: &str, be: std::net::SocketAddr) -> String {
    format!(
        r#"access_log off;
    server {{
        listen 127.0.0.1:{port};
        location /app/ {{ proxy_pass http://{be}; proxy_cookie_path /app/ /; }}
        location /raw/ {{ proxy_pass http://{be}/app/; proxy_ignore_headers X-Accel-Redirect Expires; }}
        location /protected/ {{ internal; root {root}; }}
        location @named {{ return 200 "named $uri $request_method\n"; }}
    }}"#
    )
}

#[test]
fn x_accel_redirect_matches_nginx() {
    let root = tempdir("accel");
    std::fs::create_dir_all(root.join("protected")).unwrap();
    std::fs::write(root.join("protected/secret.txt"), "the secret\n").unwrap();
    let be = accel_backend();
    let r = root.display().to_string();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| block(p, &r, be)) else {
        return;
    };
    let mut diffs = Vec::new();
    let mut got = Vec::new();
    for (method, path) in [
        ("GET", "/app/file"),
        ("POST", "/app/file"),
        ("GET", "/app/args"),
        ("POST", "/app/named"),
        ("GET", "/app/climb"),
        ("GET", "/app/missing"),
        ("GET", "/app/plain"),
        ("GET", "/protected/secret.txt"),
        ("GET", "/raw/file"),
    ] {
        let raw = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let seen = |a| {
            let x = request(a, raw.as_bytes()).unwrap();
            let h = |n: &str| x.header(n).map(str::to_owned);
            let body = if x.status == 200 { x.text() } else { String::new() };
            (
                x.status,
                h("content-type"),
                h("content-disposition"),
                h("set-cookie"),
                h("cache-control"),
                h("x-other"),
                body,
            )
        };
        let (rs, ns) = (seen(ra), seen(na));
        if rs != ns {
            diffs.push(format!("{method} {path}:\n  ringx {rs:?}\n  nginx {ns:?}"));
        }
        got.push(rs);
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    assert_eq!(got[0].0, 200);
    assert_eq!(got[0].6, "the secret\n");
    assert_eq!(got[0].1.as_deref(), Some("application/x-secret"));
    assert_eq!(got[0].3.as_deref(), Some("dl=1; Path=/"));
    // A named location keeps the method (nginx changes it only for a URI).
    assert_eq!(got[3].6, "named /app/named POST\n");
}

/// `proxy_method`: the method sent upstream, variables allowed, whatever the client's.
#[test]
fn proxy_method_matches_nginx() {
    let be = Backend::start("m");
    let block = |port: u16| {
        format!(
            "access_log off; server {{ listen 127.0.0.1:{port};\n\
             location /fixed/ {{ proxy_method PROPFIND; proxy_pass http://{a}; }}\n\
             location /var/ {{ proxy_method $arg_m; proxy_pass http://{a}; }} }}",
            a = be.addr
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let mut seen = Vec::new();
    for a in [ra, na] {
        for p in ["/fixed/x", "/var/x?m=DELETE"] {
            be.clear();
            assert_eq!(get(a, p, "x").unwrap().status, 200);
            seen.push(be.requests()[0].method.clone());
        }
    }
    assert_eq!(seen, ["PROPFIND", "DELETE", "PROPFIND", "DELETE"]);
}

/// `proxy_set_body`: the upstream gets that body (variables rendered, its length
/// as Content-Length) instead of the client's, which is read and dropped.
#[test]
fn proxy_set_body_matches_nginx() {
    let be = Backend::start("b");
    let block = |port: u16| {
        format!(
            "access_log off; server {{ listen 127.0.0.1:{port};\n\
             location = /sb {{ proxy_set_body \"user=$arg_u&via=set\"; proxy_pass http://{a}/echo; }} }}",
            a = be.addr
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let mut seen = Vec::new();
    for a in [ra, na] {
        be.clear();
        let raw = b"POST /sb?u=bob HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nclient body";
        let r = request(a, raw).unwrap();
        let q = &be.requests()[0];
        seen.push((r.status, r.text(), q.header("content-length").map(str::to_owned)));
    }
    assert_eq!(seen[0], seen[1], "ringx, then nginx");
    assert_eq!(seen[0].1, "user=bob&via=set");
}
