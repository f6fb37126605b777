//! `auth_basic`, `auth_basic_user_file` and `satisfy` (issue 10), side by side with
//! Debian's nginx: the password schemes nginx reads, the 401 and its
//! `WWW-Authenticate`, a missing file, `satisfy any|all` with `allow`/`deny`,
//! `$remote_user`, and the file read again when it changes.

mod common;

use base64::Engine;
use common::*;

/// One user per scheme, made with `openssl passwd` (`-apr1`, `-6`, `-5`, `-1`) and
/// by hand for `{SHA}` / `{SSHA}` (base64 of SHA-1 of password, then salt).
const HTPASSWD: &str = "# users\n\
plain:{PLAIN}pw0\n\
apr:$apr1$s4lt$Yggrn4c.dyHLd2kGtCAoi.\n\
sha512:$6$s4lt$8/a8/eSx7HegwG.FLaTjHeb8E9qtGcy27HERSPXBmUlEYsfSxLBUMbYOnbcqADivkwmpjyXvfTujB2dLJe2RY.:a comment\n\
sha256:$5$s4lt$QEWqfjcEy9z.sepk4o3TMU8SLsSTNGKsXinCRmz4Pq5\n\
md5:$1$s4lt$hEs9GpAVYup0YRZp/DRQD1\r\n\
sha:{SHA}DQOu4namYhecwmcVgM50lrKXyAs=\n\
ssha:{SSHA}gORjKGrNyrXkGWud5JKtIJj7hRJhYjEy\n";

fn block(port: u16, dir: &str, backend: std::net::SocketAddr) -> String {
    format!(
        r#"access_log off;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        auth_basic_user_file {dir}/htpasswd;
        add_header X-User "$remote_user" always;
        location /open/ {{ }}
        location /p/ {{ auth_basic "Area 51"; }}
        location /p/off/ {{ auth_basic off; }}
        location /noreturn/ {{ auth_basic "r"; return 200 "rewrite phase first\n"; }}
        location /missing/ {{ auth_basic "m"; auth_basic_user_file {dir}/nope; }}
        location /var/ {{ auth_basic $arg_realm; }}
        location /any/ {{ satisfy any; allow 127.0.0.2; deny all; auth_basic "any"; }}
        location /anydeny/ {{ satisfy any; deny all; }}
        location /all/ {{ allow 127.0.0.2; deny all; auth_basic "all"; }}
        location /ep/ {{ auth_basic "ep"; error_page 401 /err/401.html; }}
        location /err/ {{ }}
        location /up/ {{ auth_basic "up"; proxy_pass http://{backend}; }}
    }}"#
    )
}

fn basic(user: &str, pass: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Authorization: Basic {b}\r\n")
}

fn site(dir: &std::path::Path) {
    std::fs::write(dir.join("htpasswd"), HTPASSWD).unwrap();
    for d in [
        "open", "p", "p/off", "missing", "var", "any", "anydeny", "all", "ep", "err", "up",
    ] {
        std::fs::create_dir_all(dir.join("www").join(d)).unwrap();
        std::fs::write(dir.join("www").join(d).join("index.html"), format!("page {d}\n")).unwrap();
    }
    std::fs::write(dir.join("www/err/401.html"), "who are you?\n").unwrap();
}

#[test]
fn auth_basic_matches_nginx() {
    let dir = tempdir("auth");
    site(&dir);
    let backend = Backend::start("be");
    let d = dir.display().to_string();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| block(p, &d, backend.addr)) else {
        return;
    };
    let req = |p: &str, h: &str| format!("GET {p} HTTP/1.1\r\nHost: x\r\n{h}Connection: close\r\n\r\n");
    let users = [
        ("plain", "pw0"),
        ("apr", "pw1"),
        ("sha512", "pw2"),
        ("sha256", "pw3"),
        ("md5", "pw4"),
        ("sha", "pw5"),
        ("ssha", "pw6"),
    ];
    let mut cases = vec![
        ("127.0.0.1", req("/open/", "")),
        ("127.0.0.1", req("/open/", &basic("anyone", "x"))),
        ("127.0.0.1", req("/p/", "")),
        ("127.0.0.1", req("/p/", "Authorization: Bearer abc\r\n")),
        ("127.0.0.1", req("/p/", &basic("plain", "wrong"))),
        ("127.0.0.1", req("/p/", &basic("nobody", "pw0"))),
        ("127.0.0.1", req("/p/", &basic("plai", "pw0"))),
        ("127.0.0.1", req("/p/off/", "")),
        ("127.0.0.1", req("/noreturn/", "")),
        ("127.0.0.1", req("/missing/", &basic("plain", "pw0"))),
        ("127.0.0.1", req("/var/?realm=off", "")),
        ("127.0.0.1", req("/var/?realm=Zone", "")),
        ("127.0.0.1", req("/var/", "")),
        ("127.0.0.2", req("/any/", "")),
        ("127.0.0.1", req("/any/", "")),
        ("127.0.0.1", req("/any/", &basic("plain", "pw0"))),
        ("127.0.0.1", req("/anydeny/", "")),
        ("127.0.0.2", req("/all/", "")),
        ("127.0.0.2", req("/all/", &basic("plain", "pw0"))),
        ("127.0.0.1", req("/all/", &basic("plain", "pw0"))),
        ("127.0.0.1", req("/ep/", "")),
        ("127.0.0.1", req("/up/", "")),
        ("127.0.0.1", req("/up/", &basic("apr", "pw1"))),
    ];
    for (u, p) in users {
        cases.push(("127.0.0.1", req("/p/", &basic(u, p))));
        cases.push(("127.0.0.1", req("/p/", &basic(u, "not-it"))));
    }
    let mut diffs = Vec::new();
    for (src, raw) in &cases {
        let src: std::net::IpAddr = src.parse().unwrap();
        let r = request_from(src, ra, raw.as_bytes()).unwrap();
        let n = request_from(src, na, raw.as_bytes()).unwrap();
        let seen = |x: &Response| {
            let body = if x.status == 200 { x.text() } else { String::new() };
            (
                x.status,
                x.header("www-authenticate").map(str::to_owned),
                x.header("x-user").map(str::to_owned),
                body,
            )
        };
        if seen(&r) != seen(&n) {
            diffs.push(format!(
                "{src} {raw:?}:\n  ringx {:?}\n  nginx {:?}",
                seen(&r),
                seen(&n)
            ));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // And what that agreement is, so that it cannot pass by both failing alike.
    let r = request_from("127.0.0.1".parse().unwrap(), ra, req("/p/", "").as_bytes()).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"Area 51\""));
    let r = request(ra, req("/p/", &basic("sha512", "pw2")).as_bytes()).unwrap();
    assert_eq!((r.status, r.header("x-user")), (200, Some("sha512")));
    // The backend gets the client's Authorization (nginx passes it on).
    assert!(backend.requests().iter().any(|q| q.header("authorization").is_some()));
}

/// The log lines nginx writes for each refusal, and a changed file applying at
/// once (nginx reads it per request).
#[test]
fn refusals_are_logged_and_a_changed_file_applies_at_once() {
    let dir = tempdir("auth-log");
    site(&dir);
    let port = free_port();
    let addr = addr_of(port);
    let conf = format!(
        "daemon off; pid off; error_log {d}/error.log info; events {{}}\n\
         http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {d}/www;\n\
           location /p/ {{ auth_basic \"x\"; auth_basic_user_file htpasswd; }}\n\
           location /missing/ {{ auth_basic \"x\"; auth_basic_user_file {d}/nope; }} }} }}\n",
        d = dir.display()
    );
    // A relative user file is found beside the configuration (nginx's conf prefix).
    let ringx = Ringx::start(&conf, &[], addr);
    let users = ringx.dir.join("htpasswd");
    std::fs::write(&users, HTPASSWD).unwrap();
    let get = |p: &str, h: &str| {
        request(
            addr,
            format!("GET {p} HTTP/1.1\r\nHost: x\r\n{h}Connection: close\r\n\r\n").as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(get("/p/", &basic("plain", "pw0")).status, 200);
    assert_eq!(get("/p/", "").status, 401);
    assert_eq!(get("/p/", &basic("plain", "bad")).status, 401);
    assert_eq!(get("/p/", &basic("ghost", "pw0")).status, 401);
    assert_eq!(get("/missing/", &basic("plain", "pw0")).status, 403);
    std::fs::write(&users, "plain:{PLAIN}new\n").unwrap();
    assert_eq!(get("/p/", &basic("plain", "pw0")).status, 401);
    assert_eq!(get("/p/", &basic("plain", "new")).status, 200);
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap();
    for line in [
        "[info]",
        "no user/password was provided for basic authentication, client: 127.0.0.1",
        "user \"plain\": password mismatch, client: 127.0.0.1",
        &format!("user \"ghost\" was not found in \"{}\"", users.display()),
        &format!(
            "open() \"{}/nope\" failed (2: No such file or directory)",
            dir.display()
        ),
    ] {
        assert!(log.contains(line), "{line:?} not in:\n{log}");
    }
}
