//! nginx's rewrite module (`rewrite` with every flag, `return`, `set`, `if` with
//! every operator, `break`, server-level and location-level, "if in location")
//! against Debian's nginx: for each request, the status, Location, the body, and
//! what the backend received (method and target).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;

fn http_block(port: u16, root: &Path, backend: SocketAddr) -> String {
    let root = root.display();
    format!(
        r#"access_log off;
    upstream be {{ server {backend}; }}
    server {{
        listen 127.0.0.1:{port};
        server_name rw.test;
        root {root};
        rewrite ^/old/(.*)$ /new/$1 permanent;
        rewrite ^/srv/(\w+)$ /be/from-server/$1;
        rewrite ^/dl/(.*)$ /protected/$1 last;
        if ($http_x_block) {{ return 403; }}
        if ($request_method = OPTIONS) {{ return 204; }}
        set $srv_var "server-$host";
        location /new/ {{ return 200 "new $uri $args\n"; }}
        location /be/ {{ proxy_pass http://be/; }}
        location /last/ {{ rewrite ^/last/(.*)$ /be/last/$1 last; return 500; }}
        location /brk/ {{ rewrite ^/brk/(.*)$ /be/brk/$1 break; proxy_pass http://be; }}
        location /chain/ {{ rewrite ^/chain/a$ /chain/b; rewrite ^/chain/b$ /be/chain-c; }}
        location /args/ {{ rewrite ^/args/keep$ /be/k?x=1; rewrite ^/args/drop$ /be/d? last; rewrite ^/args/set$ /be/s?y=2? last; }}
        location /redir/ {{ rewrite ^/redir/(.*) http://example.com/$1 redirect; }}
        location /rel/ {{ rewrite ^/rel/(.*) /target/$1 redirect; }}
        location /perm/ {{ rewrite ^ https://example.com/p?q=1 permanent; }}
        location /set/ {{ set $a "A-$arg_v"; set $b "$a+$a"; return 200 "$b $srv_var\n"; }}
        location /if/ {{
            if ($arg_x = yes) {{ return 200 "eq\n"; }}
            if ($arg_x != "") {{ return 200 "ne $arg_x\n"; }}
            if ($http_user_agent ~ (curl|wget)/(\d+)) {{ return 200 "re $1 $2\n"; }}
            if ($http_user_agent ~* MOZILLA) {{ return 200 "re-i\n"; }}
            if ($http_user_agent !~ ^x) {{ return 200 "not-re\n"; }}
            return 200 "none\n";
        }}
        location /file/ {{
            if (-f $request_filename) {{ return 200 "file\n"; }}
            if (-d $request_filename) {{ return 200 "dir\n"; }}
            if (!-e $request_filename) {{ return 200 "missing\n"; }}
            return 200 "other\n";
        }}
        location /lif/ {{
            proxy_pass http://be;
            if ($arg_h) {{ add_header X-If yes; }}
            if ($arg_r) {{ rewrite ^ /be/from-if break; }}
        }}
        location /cap/ {{ rewrite "^/cap/(?<word>[a-z]+)-(\d{{2,}})$" /be/$2/$1 last; }}
        location /loop/ {{ rewrite ^ /loop/again last; }}
        location = /stop {{ set $x 1; break; return 500; }}
        location /protected/ {{ internal; return 200 "protected $uri\n"; }}
        location /n/ {{
            location /n/a/ {{ return 200 "n-a\n"; }}
            location ~ \.jpg$ {{ return 200 "n-jpg\n"; }}
            location /n/b/ {{ location ~ \.gif$ {{ return 200 "n-b-gif\n"; }} return 200 "n-b\n"; }}
            location = /n/exact {{ return 200 "n-exact\n"; }}
            return 200 "n\n";
        }}
        location ~ \.png$ {{ return 200 "png\n"; }}
        location ^~ /nr/ {{ location ~ \.png$ {{ return 200 "nr-png\n"; }} return 200 "nr\n"; }}
        location ~ ^/rx/ {{ location ~ \.css$ {{ return 200 "rx-css\n"; }} return 200 "rx\n"; }}
        location ~ "^/nc/(?<lang>[a-z]{{2}})/(?P<page>.+)$" {{ return 200 "$lang $page\n"; }}
        location /ncr/ {{ rewrite ^/ncr/(?<id>\d+)$ /be/item?id=$id last; }}
        location ~ (?<=/lb/)x$ {{ return 200 "look-behind\n"; }}
        location /esc/ {{ rewrite ^/esc/(.*)$ /be/search?q=$1 last; }}
        location /qv/ {{ rewrite ^/qv/(.*)$ /be/app/$1 last; }}
        location /redesc/ {{ rewrite ^/redesc/(.*)$ http://example.com/$1 redirect; }}
        location /empty/ {{ rewrite ^/empty(.*)$ $1 last; }}
        location /gone/ {{ rewrite ^ /x/ break; alias {root}/file/; }}
        location /ep/ {{ error_page 404 /eptarget; }}
        location = /eptarget {{ return 301 /home; }}
        location /epm/ {{ error_page 405 = /be/method; }}
        location /inh/ {{ proxy_set_header X-Inh yes; location /inh/x/ {{ proxy_pass http://be; }} }}
    }}"#
    )
}

/// Status, Location, body, and the method and target the backend got (if any).
fn seen(addr: SocketAddr, raw: &str, backend: &Backend) -> (u16, Option<String>, String, Option<(String, String)>) {
    backend.clear();
    let r = request(addr, raw.as_bytes()).unwrap();
    let body = r.text();
    let body = if body.contains("<center>") {
        "<server page>".to_string()
    } else {
        body
    };
    let up = backend.requests().first().map(|q| (q.method.clone(), q.target.clone()));
    let location = r
        .header("location")
        .map(|l| l.replace(&format!(":{}", addr.port()), ":PORT"));
    (r.status, location, body, up)
}

#[test]
fn rewrite_module_matches_nginx() {
    let dir = tempdir("rewrite");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("file/sub")).unwrap();
    std::fs::write(root.join("file/f.txt"), "f").unwrap();
    let backend = Backend::start("be");
    let Some((_ringx, _nginx, ra, na)) = side_by_side(|p| http_block(p, &root, backend.addr)) else {
        return;
    };
    let get = |p: &str, h: &str| format!("GET {p} HTTP/1.1\r\nHost: rw.test\r\n{h}Connection: close\r\n\r\n");
    let mut cases = vec![
        get("/old/x/y?z=1", ""),
        get("/srv/abc?k=v", ""),
        get("/srv/a-b", ""),
        get("/anything", "X-Block: 1\r\n"),
        "OPTIONS /x HTTP/1.1\r\nHost: rw.test\r\nConnection: close\r\n\r\n".to_string(),
        get("/last/p?a=1", ""),
        get("/brk/p?a=1", ""),
        get("/chain/a?c=3", ""),
        get("/args/keep?o=1", ""),
        get("/args/drop?o=1", ""),
        get("/args/set?o=1", ""),
        get("/redir/x?o=1", ""),
        get("/rel/x", ""),
        get("/perm/x?o=1", ""),
        get("/set/?v=7", ""),
        get("/if/?x=yes", ""),
        get("/if/?x=no", ""),
        get("/if/", "User-Agent: curl/8.1\r\n"),
        get("/if/", "User-Agent: Mozilla/5.0\r\n"),
        get("/if/", "User-Agent: other\r\n"),
        get("/if/", "User-Agent: xyz\r\n"),
        get("/file/f.txt", ""),
        get("/file/sub", ""),
        get("/file/nope", ""),
        get("/lif/x?h=1", ""),
        get("/lif/x?r=1", ""),
        get("/lif/x", ""),
        get("/cap/abc-123", ""),
        get("/cap/abc-1", ""),
        get("/loop/", ""),
        get("/stop", ""),
    ];
    cases.push(get("/new/x?q", ""));
    cases.push("POST /epm/f.txt HTTP/1.1\r\nHost: rw.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".into());
    for p in [
        "/n/",
        "/n/a/",
        "/n/a/p.jpg",
        "/n/x.png",
        "/n/a/x.png",
        "/n/b/x.gif",
        "/n/b/",
        "/n/exact",
        "/n/q.jpg",
        "/nr/x.png",
        "/nr/",
        "/rx/a.css",
        "/rx/a",
        "/inh/x/y",
        "/esc/x%20HTTP/1.1%0d%0aHost:%20evil%0d%0a%0d%0aGET%20/admin",
        "/esc/a+b",
        "/esc/a%26b=c",
        "/qv/a%3Fadmin=1",
        "/redesc/a%23b",
        "/empty/",
        "/gone/f.txt",
        "/ep/x",
        "/dl/file.zip",
        "/nc/en/about/us",
        "/ncr/42",
        "/ncr/x",
        "/lb/x",
    ] {
        cases.push(get(p, ""));
    }
    let mut diffs = Vec::new();
    for raw in &cases {
        let (r, n) = (seen(ra, raw, &backend), seen(na, raw, &backend));
        if r != n {
            diffs.push(format!(
                "{:?}:\n  ringx {r:?}\n  nginx {n:?}",
                raw.lines().next().unwrap()
            ));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
    // A nested location inherits its parent's settings.
    backend.clear();
    request(ra, get("/inh/x/y", "").as_bytes()).unwrap();
    assert_eq!(backend.requests()[0].header("x-inh"), Some("yes"));
    // `add_header` inside an if that holds reaches the client.
    let r = request(ra, get("/lif/x?h=1", "").as_bytes()).unwrap();
    assert_eq!(r.header("x-if"), Some("yes"));
}

/// `rewrite_log on`: nginx's `[notice]` lines, compared with nginx's own error log
/// (each message up to its client part, where the servers' ports differ).
#[test]
fn rewrite_log_lines_match_nginx() {
    if nginx_bin().is_none() {
        eprintln!("skipped: nginx is not installed (run .ci/run)");
        return;
    }
    let block = |port: u16| {
        format!(
            r#"access_log off; rewrite_log on;
    server {{
        listen 127.0.0.1:{port};
        location /a/ {{ rewrite ^/nomatch$ /z; rewrite ^/a/(.*)$ /b/$1?k=v last; }}
        location /b/ {{ rewrite ^/b/x$ http://example.com/r redirect; return 200 ok; }}
    }}"#
        )
    };
    let (rp, np) = (free_port(), free_port());
    let dir = tempdir("rwlog");
    let rlog = dir.join("error.log");
    let conf = format!(
        "daemon off; pid off; error_log {} notice; events {{}}\nhttp {{\n{}\n}}\n",
        rlog.display(),
        block(rp)
    );
    let _ringx = Ringx::start(&conf, &[], addr_of(rp));
    let nginx = Nginx::start(&block(np), addr_of(np));
    for addr in [addr_of(rp), addr_of(np)] {
        get(addr, "/a/x?q=1", "rw.test").unwrap();
    }
    let lines = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("[notice]") && (l.contains("match") || l.contains("rewritten")))
            .map(|l| {
                let msg = l.split_once(": ").map_or(l, |(_, m)| m);
                // nginx numbers connections (`*2 `); ringx's lines do not.
                let msg = match msg.split_once(' ') {
                    Some((n, rest)) if n.starts_with('*') => rest,
                    _ => msg,
                };
                msg.split(", client:").next().unwrap().to_string()
            })
            .collect::<Vec<_>>()
    };
    let want = lines(&nginx.dir.join("logs/error.log"));
    let mut got = Vec::new();
    wait_for("ringx's lines", Duration::from_secs(5), || {
        got = lines(&rlog);
        got.len() >= want.len()
    });
    assert!(want.len() >= 4, "{want:?}");
    assert_eq!(got, want);
}
