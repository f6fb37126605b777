//! Static files (`root`, `alias`, `index`, `try_files`, named locations, `internal`)
//! against Debian's nginx over the same document root: status, the headers a cache
//! or browser acts on, and the body, for every conditional and range case; then
//! what only ringx's side shows (its error log, what a backend receives after
//! `try_files`, big files, HTTP/2, keep-alive).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::*;

/// The document root both servers serve.
fn docroot(dir: &Path) {
    let w = |p: &str, b: &[u8]| {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b).unwrap();
    };
    w("html/index.html", b"hello\n");
    w("html/a.html", b"<b>a</b>\n");
    w("html/ten.txt", b"0123456789");
    w("html/noext", b"x\n");
    w("html/empty.txt", b"");
    w("html/dir/index.html", b"sub\n");
    w("html/other/alt.htm", b"alt\n");
    w("html/CAPS.HTML", b"caps\n");
    w("html/sp ace.txt", b"space\n");
    w("al/x.txt", b"alias\n");
    w("html/sp ace dir/index.html", b"spaced\n");
    w("hosts/files.test/byhost/h.txt", b"by host\n");
    w("ai/a.txt", b"x");
    w("ai/b.bin", &[b'0'; 1000]);
    w("ai/big.bin", &vec![0u8; 123_456]);
    w("ai/<&>.txt", b"");
    w(
        "ai/a long name that is definitely longer than fifty characters.txt",
        b"",
    );
    w("ai/.hidden", b"");
    w("ai/sub/empty/.keep", b"");
    w("html/ci/UP.txt", b"upper\n");
    std::fs::create_dir_all(dir.join("html/noidx")).unwrap();
    let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    w("html/big.bin", &big);
}

fn http_block(port: u16, root: &Path, backend: SocketAddr) -> String {
    let root = root.display();
    format!(
        r#"access_log off;
    types {{ text/html html htm; text/plain txt; }}
    default_type application/octet-stream;
    upstream be {{ server {backend}; }}
    server {{
        listen 127.0.0.1:{port};
        server_name files.test;
        root {root}/html;
        location / {{ try_files $uri $uri/ =404; }}
        location /plain/ {{ root {root}/html; }}
        location /t {{ try_files $uri /a.html; }}
        location /img/ {{ alias {root}/al/; }}
        location = /exact {{ alias {root}/al/x.txt; }}
        location /other/ {{ index alt.htm; }}
        location /n/ {{ try_files $uri @back; }}
        location @back {{ proxy_pass http://be; }}
        location /fb/ {{ try_files $uri /app/fallback?from=$uri&$args; }}
        location /app/ {{ proxy_pass http://be; }}
        location /loop {{ try_files $uri /loop2; }}
        location /loop2 {{ try_files $uri /loop; }}
        location /in {{ internal; }}
        location /toin {{ try_files $uri /in; }}
        location /quiet/ {{ log_not_found off; }}
        location /noetag/ {{ etag off; alias {root}/html/; }}
        location /before/ {{ if_modified_since before; alias {root}/html/; }}
        location /noims/ {{ if_modified_since off; alias {root}/html/; }}
        location /rel/ {{ absolute_redirect off; alias {root}/html/; }}
        location /noport/ {{ port_in_redirect off; alias {root}/html/; }}
        location /name/ {{ server_name_in_redirect on; alias {root}/html/; }}
        location /exp/ {{ expires 1h; alias {root}/html/; }}
        location /expm/ {{ expires modified +2h; alias {root}/html/; }}
        location /expmax/ {{ expires max; alias {root}/html/; }}
        location /expepoch/ {{ expires epoch; alias {root}/html/; }}
        location /expneg/ {{ expires -1; alias {root}/html/; }}
        location /expzero/ {{ expires 0; alias {root}/html/; }}
        location /expback/ {{ expires 30d; proxy_pass http://be/; }}
        location = /expret {{ expires 1d; return 301 /x; }}
        location /alt/ {{ alias {root}/al/; try_files /x.txt $uri =404; }}
        location ~ ^/cdn/(\w+)/(.*)$ {{ alias {root}/html/$2; }}
        location ~ ^/lre/([a-z]+)-(\d+)$ {{ return 200 "$2 $1\n"; }}
        location ~* ^/ci/.*\.TXT$ {{ root {root}/html; }}
        location /byhost/ {{ root {root}/hosts/$host; }}
        location ~ ^/la/(?!secret) {{ return 200 "look-ahead\n"; }}
        location /alv/ {{ alias {root}/al/; try_files $uri =404; }}
        location /absidx/ {{ index /a.html; }}
        location /ai/ {{ alias {root}/ai/; autoindex on; }}
        location /aij/ {{ alias {root}/ai/; autoindex on; autoindex_format json; }}
        location /aih/ {{ alias {root}/ai/; autoindex on; autoindex_exact_size off; }}
        location /gz/ {{ gzip on; gzip_vary on; gzip_min_length 8; gzip_types text/plain application/octet-stream; alias {root}/html/; }}
    }}"#
    )
}

/// Status, the headers compared (sorted), the body.
type Seen = (u16, Vec<(String, String)>, Vec<u8>);

/// What a client acts on in one response, the port in a Location made neutral.
fn seen(addr: SocketAddr, raw: &str) -> Option<Seen> {
    let r = request(addr, raw.as_bytes())?;
    let keep = [
        "content-type",
        "last-modified",
        "etag",
        "accept-ranges",
        "content-range",
        "location",
        "content-encoding",
        "vary",
    ];
    let mut h: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| keep.contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, v)| {
            let v = v.replace(&format!(":{}", addr.port()), ":PORT");
            // multipart boundaries are counters of each server's own.
            let v = v.split("boundary=").next().unwrap().to_string();
            (k.to_ascii_lowercase(), v)
        })
        .collect();
    h.sort();
    // Error pages name the server; compare bodies of answers with content only.
    let body = if r.header("content-encoding") == Some("gzip") {
        let mut d = flate2::read::GzDecoder::new(&r.body[..]);
        let mut plain = Vec::new();
        match d.read_to_end(&mut plain) {
            Ok(_) => plain,
            Err(_) if r.body.is_empty() => Vec::new(),
            Err(e) => format!("not gzip ({e}): {:?}", r.body).into_bytes(),
        }
    } else {
        r.body.clone()
    };
    let body = if r.status < 300 || r.status == 304 {
        strip_boundaries(&body)
    } else {
        Vec::new()
    };
    // A listing ringx makes whole goes with its length, nginx's chunked.
    let listing = r.body.starts_with(b"<html>\r\n<head><title>Index of") || r.body.starts_with(b"[");
    if r.status < 300 && !listing {
        h.push((
            "content-length".into(),
            r.header("content-length").unwrap_or("-").into(),
        ));
    }
    Some((r.status, h, body))
}

fn strip_boundaries(b: &[u8]) -> Vec<u8> {
    let t = String::from_utf8_lossy(b);
    t.lines()
        .map(|l| if l.starts_with("--0") { "--BOUNDARY" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

fn get_with(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: files.test\r\n{extra}Connection: close\r\n\r\n")
}

#[test]
fn static_files_match_nginx() {
    let dir = tempdir("static");
    docroot(&dir);
    let backend = Backend::start("be");
    let Some((ringx, _nginx, ra, na)) = side_by_side(|p| http_block(p, &dir, backend.addr)) else {
        return;
    };

    let mtime = std::fs::metadata(dir.join("html/ten.txt")).unwrap().modified().unwrap();
    let date = httpdate(mtime);
    let older = httpdate(mtime - Duration::from_secs(100));
    let newer = httpdate(mtime + Duration::from_secs(100));
    // (A CI run once found no ETag here: the whole response says why if it recurs.)
    // (A CI run once got no response at all: its stderr is what could say why.)
    let first = request(ra, get_with("/ten.txt", "").as_bytes())
        .unwrap_or_else(|| panic!("no response from ringx; its stderr:\n{}", ringx.stderr()));
    let etag = first
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag: {} {:?} {:?}", first.status, first.headers, first.text()))
        .to_string();
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut case = |name: &str, raw: String| cases.push((name.to_string(), raw));
    for p in [
        "/",
        "/a.html",
        "/ten.txt",
        "/noext",
        "/empty.txt",
        "/CAPS.HTML",
        "/sp%20ace.txt",
        "/dir",
        "/dir/",
        "/dir?x=1&y=2",
        "/noidx",
        "/noidx/",
        "/missing",
        "/missing/",
        "/plain/",
        "/plain/missing",
        "/plain/dir",
        "/plain/a.html/",
        "/tzz",
        "/img/x.txt",
        "/img/",
        "/img",
        "/exact",
        "/other/",
        "/loop",
        "/in",
        "/toin",
        "/quiet/x",
        "/noetag/ten.txt",
        "/rel/dir",
        "/noport/dir",
        "/name/dir",
        "/a%2ehtml",
        "/big.bin",
        "/sp%20ace%20dir",
        "/alt/anything",
        "/alv/x.txt",
        "/alv/none",
        "/absidx/",
        "/cdn/v1/a.html",
        "/cdn/v1/missing",
        "/lre/abc-42",
        "/ci/up.txt",
        "/byhost/h.txt",
        "/la/public",
        "/la/secret",
        "/ai/",
        "/aij/",
        "/aih/",
        "/ai/sub/",
        "/aij/sub/empty/",
        "/ai/sub",
    ] {
        case(p, get_with(p, ""));
    }
    case(
        "asterisk",
        "GET * HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n".into(),
    );
    case(
        "HEAD file",
        "HEAD /ten.txt HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n".into(),
    );
    case(
        "HEAD dir",
        "HEAD /dir HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n".into(),
    );
    case(
        "POST file",
        "POST /ten.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx".into(),
    );
    case(
        "POST missing",
        "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    );
    case(
        "DELETE",
        "DELETE /plain/ten.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
    );
    case(
        "HTTP/1.0 range",
        "GET /ten.txt HTTP/1.0\r\nRange: bytes=1-2\r\n\r\n".into(),
    );
    let conds: Vec<(&str, String)> = vec![
        ("ims equal", format!("If-Modified-Since: {date}\r\n")),
        ("ims older", format!("If-Modified-Since: {older}\r\n")),
        ("ims newer", format!("If-Modified-Since: {newer}\r\n")),
        ("ims garbage", "If-Modified-Since: yesterday\r\n".into()),
        ("ims trailing", format!("If-Modified-Since: {date}; length=10\r\n")),
        (
            "ius other weekday",
            format!("If-Unmodified-Since: Xyz,{}\r\n", &date[4..]),
        ),
        ("inm match", format!("If-None-Match: {etag}\r\n")),
        ("inm weak", format!("If-None-Match: \"x\", W/{etag}\r\n")),
        ("inm star", "If-None-Match: *\r\n".into()),
        ("inm other", "If-None-Match: \"other\"\r\n".into()),
        (
            "inm other + ims",
            format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {date}\r\n"),
        ),
        ("im match", format!("If-Match: {etag}\r\n")),
        ("im other", "If-Match: \"other\"\r\n".into()),
        ("ius older", format!("If-Unmodified-Since: {older}\r\n")),
        ("ius equal", format!("If-Unmodified-Since: {date}\r\n")),
        ("range", "Range: bytes=2-4\r\n".into()),
        ("range open", "Range: bytes=7-\r\n".into()),
        ("range suffix", "Range: bytes=-3\r\n".into()),
        ("range over", "Range: bytes=5-100\r\n".into()),
        ("range multi", "Range: bytes=0-0,2-3\r\n".into()),
        ("range overlap", "Range: bytes=0-9,0-9\r\n".into()),
        ("range outside", "Range: bytes=20-30\r\n".into()),
        ("range reversed", "Range: bytes=5-2\r\n".into()),
        ("range junk", "Range: bytes=1-2;\r\n".into()),
        ("range other unit", "Range: items=1-2\r\n".into()),
        ("if-range etag", format!("Range: bytes=1-2\r\nIf-Range: {etag}\r\n")),
        ("if-range stale", "Range: bytes=1-2\r\nIf-Range: \"old\"\r\n".into()),
        ("if-range date", format!("Range: bytes=1-2\r\nIf-Range: {date}\r\n")),
        ("range + inm", format!("Range: bytes=1-2\r\nIf-None-Match: {etag}\r\n")),
    ];
    for (name, h) in &conds {
        case(name, get_with("/ten.txt", h));
    }
    case(
        "before newer",
        get_with("/before/ten.txt", &format!("If-Modified-Since: {newer}\r\n")),
    );
    case(
        "off equal",
        get_with("/noims/ten.txt", &format!("If-Modified-Since: {date}\r\n")),
    );
    case("empty range", get_with("/empty.txt", "Range: bytes=0-\r\n"));
    case(
        "big ranges",
        get_with("/big.bin", "Range: bytes=10-20,300000-300010\r\n"),
    );
    let gz = "Accept-Encoding: gzip\r\n";
    for p in [
        "/gz/index.html",
        "/gz/ten.txt",
        "/gz/a.html",
        "/gz/missing",
        "/gz/big.bin",
        "/gz/noext",
    ] {
        case(&format!("gzip {p}"), get_with(p, gz));
        case(&format!("no gzip {p}"), get_with(p, ""));
    }
    case(
        "gzip range",
        get_with("/gz/ten.txt", "Accept-Encoding: gzip\r\nRange: bytes=1-2\r\n"),
    );
    case("gzip q=0", get_with("/gz/ten.txt", "Accept-Encoding: gzip;q=0\r\n"));
    case(
        "gzip via",
        get_with("/gz/ten.txt", "Accept-Encoding: gzip\r\nVia: 1.1 proxy\r\n"),
    );
    case(
        "gzip 304",
        get_with(
            "/gz/ten.txt",
            &format!("Accept-Encoding: gzip\r\nIf-None-Match: W/{etag}\r\n"),
        ),
    );
    case(
        "gzip HTTP/1.0",
        "GET /gz/ten.txt HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n".into(),
    );
    case(
        "gzip HEAD",
        "HEAD /gz/ten.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n".into(),
    );

    let mut diffs = Vec::new();
    let mut compressed = 0;
    for (name, raw) in &cases {
        let r = seen(ra, raw);
        let n = seen(na, raw);
        let gz = ("content-encoding".to_string(), "gzip".to_string());
        compressed += r.as_ref().is_some_and(|r| r.1.contains(&gz)) as usize;
        if r != n {
            diffs.push(format!("{name}:\n  ringx {r:?}\n  nginx {n:?}"));
        }
    }
    assert!(compressed >= 5, "only {compressed} compressed responses");
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
}

/// `expires` against nginx: Cache-Control (max-age within 2 s: it counts from
/// "now") and Expires (within 2 s), on files, 404s, proxied responses, redirects.
#[test]
fn expires_matches_nginx() {
    let dir = tempdir("expires");
    docroot(&dir);
    let backend = Backend::start("be");
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| http_block(p, &dir, backend.addr)) else {
        return;
    };
    let date = |v: Option<&str>| {
        v.and_then(|v| {
            let out = std::process::Command::new("date")
                .args(["-u", "-d", v, "+%s"])
                .output()
                .ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse::<i64>().ok()
        })
    };
    let max_age = |v: &str| v.strip_prefix("max-age=").and_then(|n| n.parse::<i64>().ok());
    let r = get(ra, "/exp/ten.txt", "files.test").unwrap();
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    assert_eq!(
        get(ra, "/expback/x", "files.test").unwrap().header("cache-control"),
        Some("max-age=2592000")
    );
    for p in [
        "/exp/ten.txt",
        "/exp/missing",
        "/expm/ten.txt",
        "/expmax/ten.txt",
        "/expepoch/ten.txt",
        "/expneg/ten.txt",
        "/expzero/ten.txt",
        "/expback/x",
        "/expret",
        "/ten.txt",
    ] {
        let (r, n) = (get(ra, p, "files.test").unwrap(), get(na, p, "files.test").unwrap());
        assert_eq!(r.status, n.status, "{p}");
        let (rc, nc) = (r.header("cache-control"), n.header("cache-control"));
        match (rc.and_then(max_age), nc.and_then(max_age)) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 2, "{p}: max-age {a} vs {b}"),
            _ => assert_eq!(rc, nc, "{p}"),
        }
        let (re, ne) = (date(r.header("expires")), date(n.header("expires")));
        match (re, ne) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 2, "{p}: expires {a} vs {b}"),
            (a, b) => assert_eq!(
                a,
                b,
                "{p}: Expires {:?} vs {:?}",
                r.header("expires"),
                n.header("expires")
            ),
        }
    }
}

fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%a, %d %b %Y %H:%M:%S GMT"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// ringx alone: its error-log lines, what the backend receives after `try_files`,
/// a big file intact over one keep-alive connection.
#[test]
fn try_files_logs_and_keepalive() {
    let dir = tempdir("static1");
    docroot(&dir);
    let backend = Backend::start("be");
    let port = free_port();
    let addr = addr_of(port);
    let conf = format!(
        "daemon off; pid off; error_log {}/logs/error.log info; events {{}}\nhttp {{\n{}\n}}\n",
        dir.display(),
        http_block(port, &dir, backend.addr)
    );
    let _ringx = Ringx::start(&conf, &[], addr);

    // Named location: the backend sees the client's URI unchanged.
    let r = get(addr, "/n/missing?q=1", "files.test").unwrap();
    assert_eq!(r.status, 200);
    // A URI fallback: the new URI and arguments go upstream.
    let r = get(addr, "/fb/gone.css?v=3", "files.test").unwrap();
    assert_eq!(r.status, 200);
    let seen: Vec<String> = backend.requests().iter().map(|q| q.target.clone()).collect();
    assert_eq!(seen, ["/n/missing?q=1", "/app/fallback?from=/fb/gone.css&v=3"]);
    // A file that exists is served by try_files without the backend.
    let r = get(addr, "/n/../a.html", "files.test").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "<b>a</b>\n"));
    assert_eq!(backend.count(), 2);

    // A FIFO is not opened for good (nginx's O_NONBLOCK): 404 at once.
    std::fs::create_dir_all(dir.join("html/plain")).unwrap();
    let fifo = dir.join("html/plain/fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    assert_eq!(get(addr, "/plain/fifo", "files.test").unwrap().status, 404);
    assert!(started.elapsed() < Duration::from_secs(2));
    for p in ["/plain/missing", "/noidx/", "/quiet/x", "/loop", "/missing/"] {
        get(addr, p, "files.test").unwrap();
    }
    let log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap();
    let html = dir.join("html").display().to_string();
    for line in [
        format!("[error] {{}} open() \"{html}/plain/missing\" failed (2: No such file or directory), client: 127.0.0.1, server: files.test, request: \"GET /plain/missing HTTP/1.1\", host: \"files.test\""),
        format!("directory index of \"{html}/noidx/\" is forbidden, client: 127.0.0.1"),
        "rewrite or internal redirection cycle while internally redirecting to \"/loop".into(),
        format!("\"{html}/plain/fifo\" is not a regular file, client: 127.0.0.1"),
    ] {
        let want = line.replace("{} ", "");
        let want = want.split("[error] ").last().unwrap();
        assert!(log.contains(want), "no {want:?} in\n{log}");
    }
    assert!(!log.contains("/quiet/x"), "log_not_found off still logged:\n{log}");
    // try_files's own misses are not logged (nginx).
    assert!(!log.contains("/missing/\""), "{log}");

    // Several files, big and small, over one connection.
    let big = std::fs::read(dir.join("html/big.bin")).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(
            b"GET /big.bin HTTP/1.1\r\nHost: files.test\r\n\r\nGET /ten.txt HTTP/1.1\r\nHost: files.test\r\n\r\n",
        )
        .unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body == big, "big file corrupted ({} bytes)", r.body.len());
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.text(), "0123456789");
    }
    s.write_all(b"HEAD /big.bin HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(r.header("content-length"), Some("600000"));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty() && buf.is_empty(), "HEAD sent a body");
}

/// The same file over HTTP/2 (curl): whole, ranged, conditional.
#[test]
fn static_files_over_h2() {
    let dir = tempdir("static2");
    docroot(&dir);
    let port = free_port();
    let addr = addr_of(port);
    let conf = format!(
        "daemon off; pid off; events {{}}\nhttp {{ access_log off; http2 on; server {{ listen 127.0.0.1:{port}; root {}/html; }} }}\n",
        dir.display()
    );
    let _ringx = Ringx::start(&conf, &[], addr);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "--http2-prior-knowledge",
                "-o",
                "-",
                "-w",
                "|%{http_code} %{http_version}",
            ])
            .args(args)
            .arg(format!("http://127.0.0.1:{port}/big.bin"))
            .output()
            .unwrap();
        out.stdout
    };
    let big = std::fs::read(dir.join("html/big.bin")).unwrap();
    let mut want = big.clone();
    want.extend_from_slice(b"|200 2");
    assert!(curl(&[]) == want, "big file over h2 differs");
    let mut want = big[100..200].to_vec();
    want.extend_from_slice(b"|206 2");
    assert_eq!(curl(&["-r", "100-199"]), want);
    let etag = format!(
        "If-None-Match: \"{:x}-{:x}\"",
        std::fs::metadata(dir.join("html/big.bin"))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        big.len()
    );
    assert_eq!(curl(&["-H", &etag]), b"|304 2");
}
