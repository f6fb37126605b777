//! Variables real configs and log formats use, as a user sees them: in an access-log
//! line and in what a backend receives.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn response_head_request_id_and_connection_variables() {
    let backend = Backend::start("be");
    let port = free_port();
    let dir = tempdir("vars");
    let log = dir.join("access.log");
    let conf = format!(
        "daemon off; pid off; events {{}} http {{
           log_format v '$request_id|$upstream_http_x_backend|$sent_http_x_added|$sent_http_content_type|$connection_time|$upstream_http_nope';
           access_log {} v;
           server {{ listen 127.0.0.1:{port};
             location / {{ proxy_pass http://{}; proxy_set_header X-Request-ID $request_id; add_header X-Added yes; }}
             location = /own {{ return 200 ok; }} }} }}",
        log.display(),
        backend.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    let r = get(addr_of(port), "/x", "v.test").unwrap();
    assert_eq!(r.status, 200);
    get(addr_of(port), "/own", "v.test").unwrap();
    let sent_id = backend.requests()[0].header("x-request-id").unwrap().to_string();
    assert!(
        sent_id.len() == 32 && sent_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sent_id}"
    );
    let mut lines = Vec::new();
    wait_for("the log lines", Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        lines.len() == 2
    });
    let f: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(f[0], sent_id, "the logged id is the one sent upstream");
    assert_eq!(f[1], "be");
    assert_eq!(f[2], "yes");
    assert_eq!(f[3], "text/plain");
    assert!(f[4].parse::<f64>().is_ok_and(|t| t < 5.0), "{}", f[4]);
    assert_eq!(f[5], "-");
    let g: Vec<&str> = lines[1].split('|').collect();
    assert_ne!(g[0], f[0], "a new id per request");
    assert_eq!((g[1], g[2]), ("-", "-"), "no upstream; add_header not on this location");
    assert_eq!(g[3], "text/plain");
}

/// `$document_root`, `$realpath_root` (through a symbolic link), `$request_filename`,
/// and `include` inside a `map` block.
#[test]
fn file_variables_and_map_include() {
    let dir = tempdir("filevars");
    std::fs::create_dir_all(dir.join("real")).unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
    std::fs::write(dir.join("map.inc"), "a \"from include\";\n").unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off;
           map $arg_k $v {{ include {d}/map.inc; default d; }}
           server {{ listen 127.0.0.1:{port}; root {d}/link;
             location / {{ return 200 \"$v|$document_root|$realpath_root|$request_filename\"; }} }} }}"
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    let real = dir.join("real").canonicalize().unwrap();
    let r = get(addr_of(port), "/x/y?k=a", "v.test").unwrap();
    assert_eq!(
        r.text(),
        format!("from include|{d}/link|{}|{d}/link/x/y", real.display())
    );
    assert!(get(addr_of(port), "/?k=b", "v.test").unwrap().text().starts_with("d|"));
}

/// `geo`, side by side with nginx: the most specific network of the client's
/// address (and of a variable's), `delete`, `ranges`, a value that is no address.
#[test]
fn geo_matches_nginx() {
    let block = |p: u16| {
        format!(
            "geo $g {{ default other; 127.0.0.0/8 lo; 127.0.0.2/31 pair; 127.0.0.3 three; 127.0.0.9 nine; delete 127.0.0.9; }}\n\
             geo $arg_ip $r {{ ranges; default -; 10.0.0.5-10.0.0.9 mid; }}\n\
             server {{ listen 127.0.0.1:{p}; location / {{ return 200 \"$g|$r\\n\"; }} }}"
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let mut diffs = Vec::new();
    for (src, q) in [
        ("127.0.0.1", "ip=10.0.0.5"),
        ("127.0.0.2", "ip=10.0.0.9"),
        ("127.0.0.3", "ip=10.0.0.10"),
        ("127.0.0.9", "ip=junk"),
        ("127.0.0.4", "ip=10.0.0.4"),
    ] {
        let src: std::net::IpAddr = src.parse().unwrap();
        let raw = format!("GET /?{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (r, n) = (
            request_from(src, ra, raw.as_bytes()).unwrap(),
            request_from(src, na, raw.as_bytes()).unwrap(),
        );
        if (r.status, r.text()) != (n.status, n.text()) {
            diffs.push(format!(
                "{src} {q}: ringx {} {:?} nginx {} {:?}",
                r.status,
                r.text(),
                n.status,
                n.text()
            ));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
}
