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
