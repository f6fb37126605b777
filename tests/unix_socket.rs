//! Upstreams on Unix-domain sockets (issue 10), as app servers are run behind nginx
//! (GitLab's workhorse, Puma, Gunicorn): `server unix:/path` in an upstream and
//! `proxy_pass http://unix:/path:/uri`, side by side with Debian's nginx.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;

/// An HTTP backend on a Unix socket at `path`: answers `unix <target>` and records
/// each request head.
fn unix_backend(path: &Path) -> Arc<Mutex<Vec<String>>> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).unwrap();
    // ringx's workers run as nobody when started as root (nginx's `user` default).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let log = log.clone();
            std::thread::spawn(move || loop {
                let mut buf = Vec::new();
                let mut b = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(head);
                let body = format!("unix {target}\n");
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                if s.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            });
        }
    });
    seen
}

fn block(port: u16, sock: &Path, missing: &Path) -> String {
    format!(
        r#"access_log off;
    upstream app {{ server unix:{s} max_fails=0; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        add_header X-Up $upstream_addr always;
        location /up/ {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
        location /direct/ {{ proxy_pass http://unix:{s}:/base/; }}
        location /whole/ {{ proxy_pass http://unix:{s}; }}
        location /missing/ {{ proxy_pass http://unix:{m}:/; }}
    }}"#,
        s = sock.display(),
        m = missing.display()
    )
}

#[test]
fn unix_upstreams_match_nginx() {
    let dir: PathBuf = tempdir("unix");
    let sock = dir.join("app.sock");
    let seen = unix_backend(&sock);
    let missing = dir.join("missing.sock");
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| block(p, &sock, &missing)) else {
        return;
    };
    let mut diffs = Vec::new();
    let mut ringx_got = Vec::new();
    for path in ["/up/a?x=1", "/direct/b", "/whole/c", "/missing/d"] {
        let mut got = Vec::new();
        for a in [ra, na] {
            seen.lock().unwrap().clear();
            let r = get(a, path, "front.test").unwrap();
            let host = seen
                .lock()
                .unwrap()
                .first()
                .and_then(|h| h.lines().find_map(|l| l.strip_prefix("Host: ").map(str::to_owned)));
            // Error pages name their server: only the successful bodies compare.
            let body = if r.status == 200 { r.text() } else { String::new() };
            got.push((r.status, body, r.header("x-up").map(str::to_owned), host));
        }
        if got[0] != got[1] {
            diffs.push(format!("{path}:\n  ringx {:?}\n  nginx {:?}", got[0], got[1]));
        }
        ringx_got.push(got.swap_remove(0));
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    let up = format!("unix:{}", sock.display());
    assert_eq!(
        ringx_got[0],
        (200, "unix /up/a?x=1\n".into(), Some(up.clone()), Some("app".into()))
    );
    assert_eq!(
        ringx_got[1],
        (200, "unix /base/b\n".into(), Some(up), Some("localhost".into()))
    );
    assert_eq!(ringx_got[3].0, 502);
}

#[test]
fn unix_socket_config_errors() {
    for (bad, why) in [
        (
            "upstream u { server unix:; } server { }",
            "no path in the unix domain socket",
        ),
        (
            "server { location / { proxy_pass http://unix:; } }",
            "no path in the unix domain socket",
        ),
    ] {
        assert_config_error(bad, why);
    }
}
