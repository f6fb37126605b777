//! `auth_request` and `auth_request_set` (issue 10), the way SSO front ends
//! (oauth2-proxy, Authelia) are put before an app, side by side with Debian's nginx.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;

/// An auth service: the verdict comes from the `Cookie` the client sent (passed on
/// in the subrequest): `ok` → 200 with `X-Auth-User: alice`, `none` → 401 with
/// `WWW-Authenticate`, `bad` → 403, `boom` → 500. It records each subrequest's head.
fn auth_service() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = serve_each(move |mut s| {
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let head = String::from_utf8_lossy(&buf).into_owned();
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("Cookie: ").or_else(|| l.strip_prefix("cookie: ")))
            .unwrap_or("")
            .to_string();
        log.lock().unwrap().push(head);
        let resp = match cookie.as_str() {
            "ok" => "HTTP/1.1 200 OK\r\nX-Auth-User: alice\r\nContent-Length: 0\r\n",
            "bad" => "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n",
            "boom" => "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n",
            _ => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"sso\"\r\nContent-Length: 0\r\n",
        };
        let _ = s.write_all(format!("{resp}Connection: close\r\n\r\n").as_bytes());
    });
    (addr, seen)
}

fn block(port: u16, auth: SocketAddr, app: SocketAddr) -> String {
    format!(
        r#"access_log off;
    upstream authsvc {{ server {auth}; }}
    server {{
        listen 127.0.0.1:{port};
        location = /auth {{
            internal;
            proxy_pass http://authsvc/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
        location = /auth-ok {{ internal; return 204; }}
        location = /auth-gone {{ internal; proxy_pass http://127.0.0.1:1/; }}
        location /app/ {{
            auth_request /auth;
            auth_request_set $user $upstream_http_x_auth_user;
            proxy_set_header X-User $user;
            add_header X-Seen-User "$user" always;
            proxy_pass http://{app};
        }}
        location /free/ {{ auth_request /auth-ok; proxy_pass http://{app}; }}
        location /gone/ {{ auth_request /auth-gone; proxy_pass http://{app}; }}
        location /any/ {{ satisfy any; allow 127.0.0.2; deny all; auth_request /auth; proxy_pass http://{app}; }}
        location /off/ {{ auth_request /auth; location /off/in/ {{ auth_request off; proxy_pass http://{app}; }} }}
        location ~ ^/re/(.+)$ {{ auth_request /auth-re; proxy_pass http://{app}/got/$1; }}
        location ~ ^/auth-(re)$ {{ internal; return 204; }}
    }}"#
    )
}

#[test]
fn auth_request_matches_nginx() {
    let (auth, seen) = auth_service();
    let app = Backend::start("app");
    let Some((ringx, _nginx, ra, na)) = side_by_side(|p| block(p, auth, app.addr)) else {
        return;
    };
    let req = |p: &str, cookie: &str| {
        format!("POST {p}?a=1 HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody")
    };
    let cases = [
        ("127.0.0.1", req("/app/x", "ok")),
        ("127.0.0.1", req("/app/x", "none")),
        ("127.0.0.1", req("/app/x", "bad")),
        ("127.0.0.1", req("/app/x", "boom")),
        ("127.0.0.1", req("/free/x", "none")),
        ("127.0.0.1", req("/gone/x", "ok")),
        ("127.0.0.2", req("/any/x", "none")),
        ("127.0.0.1", req("/any/x", "none")),
        ("127.0.0.1", req("/any/x", "ok")),
        ("127.0.0.1", req("/off/in/x", "none")),
        ("127.0.0.1", req("/auth", "ok")),
        ("127.0.0.1", req("/re/kept", "ok")),
    ];
    let mut diffs = Vec::new();
    let mut ringx_seen = Vec::new();
    for (src, raw) in &cases {
        let src: std::net::IpAddr = src.parse().unwrap();
        let mut got = Vec::new();
        for a in [ra, na] {
            app.clear();
            let r = request_from(src, a, raw.as_bytes()).unwrap();
            let up = app.requests();
            got.push((
                r.status,
                r.header("www-authenticate").map(str::to_owned),
                r.header("x-seen-user").map(str::to_owned),
                up.first().and_then(|q| q.header("x-user").map(str::to_owned)),
                up.first().map(|q| q.body.len()),
                up.first().map(|q| q.target.clone()),
            ));
        }
        if got[0] != got[1] {
            diffs.push(format!("{src} {raw:?}:\n  ringx {:?}\n  nginx {:?}", got[0], got[1]));
        }
        ringx_seen.push(got[0].clone());
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    assert_eq!(
        ringx_seen[0],
        (
            200,
            None,
            Some("alice".into()),
            Some("alice".into()),
            Some(4),
            Some("/app/x?a=1".into())
        )
    );
    assert_eq!(ringx_seen[1].0, 401);
    assert_eq!(ringx_seen[1].1.as_deref(), Some("Bearer realm=\"sso\""));
    assert_eq!((ringx_seen[2].0, ringx_seen[3].0, ringx_seen[5].0), (403, 500, 500));
    // An auth server that cannot be reached: the proxy's error line (naming it),
    // then nginx's line for the status.
    let err = ringx.stderr();
    assert!(
        err.contains("connect() failed (111: Connection refused) while connecting to upstream")
            && err.contains("upstream: \"127.0.0.1:1\"")
            && err.contains("auth request unexpected status: 502"),
        "{err}"
    );
    // The request's own `$1` survives the subrequest's regex location.
    assert_eq!(ringx_seen[11].5.as_deref(), Some("/got/kept"));
    // The subrequests: GET for the auth URI, the client's fields, no body.
    let heads = seen.lock().unwrap();
    let first = &heads[0];
    assert!(first.starts_with("GET /check HTTP/1.0\r\n"), "{first}");
    assert!(first.contains("X-Original-URI: /app/x?a=1\r\n"), "{first}");
    assert!(first.contains("Host: authsvc\r\n"), "{first}");
    assert!(!first.to_ascii_lowercase().contains("content-length"), "{first}");
}
