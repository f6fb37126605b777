//! `error_page` against Debian's nginx (every kind of target: a file, a named
//! location, a proxied location, a URL; `=CODE` and `=`; once unless
//! `recursive_error_pages`; errors from static files, `return`, a dead upstream),
//! and nginx's own distribution nginx.conf (conf/nginx.conf of nginx 1.29, with its
//! html/), run as Test::Nginx runs nginx: `-p DIR/ -c nginx.conf`.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::*;

fn files(root: &Path) {
    let w = |p: &str, b: &str| {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b).unwrap();
    };
    w("404.html", "custom not found\n");
    w("50x.html", "custom 50x\n");
    w("ok.txt", "ok\n");
    w("forbidden.txt", "custom forbidden\n");
    w("exists.txt", "exists\n");
    w("post/exists.txt", "post\n");
}

fn http_block(port: u16, root: &Path, dead: u16, backend: SocketAddr) -> String {
    let root = root.display();
    format!(
        r#"access_log off;
    types {{ text/html html; text/plain txt; }}
    upstream be {{ server {backend}; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        error_page 404 /404.html;
        location = /404.html {{ internal; }}
        location /dead/ {{ proxy_pass http://127.0.0.1:{dead}; error_page 502 503 504 /50x.html; }}
        location = /50x.html {{ }}
        location /eq/ {{ error_page 404 =200 /ok.txt; }}
        location /same/ {{ error_page 404 = /be/status?code=201; }}
        location /be/ {{ proxy_pass http://be/; }}
        location /twice/ {{ error_page 404 /missing_too; }}
        location /named/ {{ error_page 404 @fallback; }}
        location @fallback {{ proxy_pass http://be; }}
        location /url/ {{ error_page 404 http://example.com/notfound; }}
        location /url301/ {{ error_page 404 =301 http://example.com/moved; }}
        location /post/ {{ error_page 405 /ok.txt; }}
        location /ret/ {{ error_page 403 /forbidden.txt; return 403; }}
        location /rec/ {{ recursive_error_pages on; error_page 404 /rec2/x; }}
        location /rec2/ {{ error_page 404 =200 /ok.txt; }}
        location /norec/ {{ error_page 404 /rec2/x; }}
        location /args/ {{ error_page 404 /be/echo?from=page; }}
        location /icpt/ {{ proxy_pass http://be/; proxy_intercept_errors on; error_page 500 =503 /50x.html; }}
        location /noicpt/ {{ proxy_pass http://be/; }}
    }}"#
    )
}

/// Status, the headers a client acts on, and the body where it is not the server's
/// own page (those name the server).
fn seen(addr: SocketAddr, raw: &str) -> (u16, Option<String>, Option<String>, String) {
    let r = request(addr, raw.as_bytes()).unwrap();
    let body = r.text();
    let body = if body.contains("<center>") {
        "<server page>".to_string()
    } else {
        body
    };
    (
        r.status,
        r.header("content-type").map(str::to_string),
        r.header("location").map(str::to_string),
        body,
    )
}

#[test]
fn error_pages_match_nginx() {
    let dir = tempdir("errpage");
    let root = dir.join("root");
    files(&root);
    let backend = Backend::start("be");
    let dead = free_port();
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| http_block(p, &root, dead, backend.addr)) else {
        return;
    };
    let get = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: e.test\r\nConnection: close\r\n\r\n");
    let mut cases: Vec<String> = [
        "/missing",
        "/404.html",
        "/exists.txt",
        "/dead/x",
        "/eq/missing",
        "/same/missing",
        "/twice/missing",
        "/named/missing?a=1",
        "/url/missing",
        "/url301/missing",
        "/ret/x",
        "/rec/missing",
        "/norec/missing",
        "/args/missing",
        "/icpt/status?code=404",
        "/icpt/status?code=500",
        "/icpt/status?code=403",
        "/icpt/status?code=201",
        "/noicpt/status?code=404",
    ]
    .iter()
    .map(|p| get(p))
    .collect();
    cases.push("POST /post/exists.txt HTTP/1.1\r\nHost: e\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab".into());
    cases.push("HEAD /missing HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n".into());
    let mut diffs = Vec::new();
    for raw in &cases {
        let (r, n) = (seen(ra, raw), seen(na, raw));
        if r != n {
            diffs.push(format!("{raw:?}:\n  ringx {r:?}\n  nginx {n:?}"));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // What the backend saw: the named location keeps the client's URI; an error
    // page URI goes as GET with its own arguments.
    let targets: Vec<(String, String)> = backend
        .requests()
        .iter()
        .map(|q| (q.method.clone(), q.target.clone()))
        .collect();
    let both = |t: &str| targets.iter().filter(|(_, x)| x == t).count();
    assert_eq!(both("/named/missing?a=1"), 2, "{targets:?}");
    assert_eq!(both("/echo?from=page"), 2, "{targets:?}");
}

#[test]
fn nginx_distribution_config_serves() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nginx-dist");
    let dir = tempdir("dist");
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::create_dir_all(dir.join("html")).unwrap();
    let port = free_port();
    let conf = std::fs::read_to_string(dist.join("nginx.conf"))
        .unwrap()
        .replace("listen       80;", &format!("listen       127.0.0.1:{port};"));
    std::fs::write(dir.join("conf/nginx.conf"), conf).unwrap();
    std::fs::copy(dist.join("mime.types"), dir.join("conf/mime.types")).unwrap();
    for f in ["index.html", "50x.html"] {
        std::fs::copy(dist.join("html").join(f), dir.join("html").join(f)).unwrap();
    }
    let prefix = format!("{}/", dir.display());
    let (code, _, err) = ringx_cmd(&["-p", &prefix, "-c", "conf/nginx.conf", "-t"]);
    assert_eq!(code, 0, "{err}");
    let _r = Ringx::start(
        "",
        &["-p", &prefix, "-c", "conf/nginx.conf", "-g", "daemon off;"],
        addr_of(port),
    );
    let addr = addr_of(port);
    let index = std::fs::read(dist.join("html/index.html")).unwrap();
    let r = common::get(addr, "/", "localhost").unwrap();
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/html")));
    assert_eq!(r.body, index);
    let r = common::get(addr, "/50x.html", "localhost").unwrap();
    assert!(r.text().contains("An error occurred."), "{}", r.text());
    assert_eq!(common::get(addr, "/nope", "localhost").unwrap().status, 404);
    assert!(dir.join("logs/access.log").exists(), "logs/access.log under the prefix");
}
