//! `limit_rate` and `limit_rate_after` (issue 10): a response goes no faster than
//! the rate, as nginx paces it (`rate × (whole seconds + 1)` bytes past
//! `limit_rate_after` by each moment), for static files and proxied responses,
//! side by side with Debian's nginx. Lower bounds on time are what the directive
//! does; upper bounds are generous.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn block(port: u16, root: &str, be: std::net::SocketAddr) -> String {
    format!(
        r#"access_log off;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /slow/ {{ limit_rate 100k; }}
        location /after/ {{ limit_rate 100k; limit_rate_after 200k; }}
        location /var/ {{ limit_rate $arg_rate; }}
        location /up/ {{ limit_rate 100k; proxy_pass http://{be}/; }}
        location /free/ {{ }}
    }}"#
    )
}

fn fetch(addr: std::net::SocketAddr, path: &str) -> (u16, usize, Duration) {
    let t = Instant::now();
    let r = get(addr, path, "x").unwrap();
    (r.status, r.body.len(), t.elapsed())
}

#[test]
fn responses_are_paced_as_nginx_paces_them() {
    let root = tempdir("rate");
    for d in ["slow", "after", "var", "free"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::write(root.join(d).join("big"), vec![b'r'; 250 * 1024]).unwrap();
    }
    let be = Backend::start("paced");
    let r = root.display().to_string();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| block(p, &r, be.addr)) else {
        return;
    };
    let slow = Duration::from_millis(800);
    for (path, paced, len) in [
        ("/slow/big", true, 250 * 1024),
        ("/after/big", false, 250 * 1024),
        ("/var/big?rate=100k", true, 250 * 1024),
        ("/var/big?rate=", false, 250 * 1024),
        ("/free/big", false, 250 * 1024),
        ("/up/big?n=256000", true, 256000),
    ] {
        for (who, a) in [("ringx", ra), ("nginx", na)] {
            let (status, n, took) = fetch(a, path);
            assert_eq!((status, n), (200, len), "{who} {path}");
            if paced {
                assert!(took >= slow && took < Duration::from_secs(6), "{who} {path}: {took:?}");
            } else {
                assert!(took < slow, "{who} {path}: {took:?}");
            }
        }
    }
}

/// An upstream's `X-Accel-Limit-Rate` paces its response (not passed on), unless
/// `proxy_ignore_headers X-Accel-Limit-Rate`; as nginx.
#[test]
fn x_accel_limit_rate_paces_the_upstreams_response() {
    let be = serve_each(|mut s| {
        use std::io::Write;
        let mut buf = Vec::new();
        read_until(&mut s, &mut buf, b"\r\n\r\n");
        let body = vec![b'x'; 250 * 1024];
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Accel-Limit-Rate: 102400\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    });
    let block = |port: u16| {
        format!(
            "access_log off; server {{ listen 127.0.0.1:{port};\n\
             location /paced/ {{ proxy_pass http://{be}; }}\n\
             location /ignored/ {{ proxy_pass http://{be}; proxy_ignore_headers X-Accel-Limit-Rate; }} }}"
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    for (who, a) in [("ringx", ra), ("nginx", na)] {
        let t = Instant::now();
        let r = get(a, "/paced/x", "x").unwrap();
        let took = t.elapsed();
        assert_eq!((r.status, r.body.len()), (200, 250 * 1024), "{who}");
        assert!(r.header("x-accel-limit-rate").is_none(), "{who}");
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(6),
            "{who}: {took:?}"
        );
        let t = Instant::now();
        assert_eq!(get(a, "/ignored/x", "x").unwrap().body.len(), 250 * 1024);
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "{who} ignored: {:?}",
            t.elapsed()
        );
    }
}
