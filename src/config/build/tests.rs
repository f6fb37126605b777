use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::model::{Balance, LogLevel};
use crate::config::parser::parse_str;

fn cfg(s: &str) -> Result<Config, ConfError> {
    let t = parse_str(s, "t.conf", Path::new("/tmp"))?;
    build(&t, &BuildEnv::at("/tmp/"))
}

const BASE: &str = "events {} http { access_log off; upstream be { least_conn; server 127.0.0.1:9001 max_fails=3 fail_timeout=30s; server 127.0.0.1:9002 weight=2 backup; keepalive 8; }\n";

#[test]
fn upstream_and_inheritance() {
    let c = cfg(&format!(
        "{BASE} proxy_set_header X-A a; client_max_body_size 2m;\n server {{ listen 127.0.0.1:8080; server_name a.com *.b.com;\n location /x {{ proxy_pass http://be; proxy_set_header X-B b; }}\n location /y {{ proxy_pass http://be/v1/; client_max_body_size 10M; }} }} }}"
    ))
    .unwrap();
    let u = &c.http.upstreams[0];
    assert_eq!(u.balance, Balance::LeastConn);
    assert_eq!(u.servers[0].max_fails, 3);
    assert_eq!(u.servers[0].fail_timeout, Duration::from_secs(30));
    assert!(u.servers[1].backup);
    assert_eq!(u.servers[1].weight, 2);
    assert_eq!(u.keepalive, 8);
    let s = &c.http.servers[0];
    let x = s.prefix_locations.iter().find(|l| l.prefix() == Some("/x")).unwrap();
    let names: Vec<_> = x.conf.proxy_set_headers.iter().map(|(k, _)| k.as_str()).collect();
    // proxy_set_header at the location replaces the inherited X-A.
    assert_eq!(names, vec!["X-B", "Host", "Connection"]);
    assert_eq!(x.conf.client_max_body_size, 2 * 1024 * 1024);
    let y = s.prefix_locations.iter().find(|l| l.prefix() == Some("/y")).unwrap();
    assert_eq!(y.conf.client_max_body_size, 10 * 1024 * 1024);
    assert_eq!(y.conf.proxy_pass.as_ref().unwrap().uri.as_deref(), Some("/v1/"));
    let ya: Vec<_> = y.conf.proxy_set_headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ya, vec!["X-A", "Host", "Connection"]);
    assert_eq!(c.http.listens.len(), 1);
}

#[test]
fn errors_name_directive_and_line() {
    let e = cfg("events {}\nhttp {\n server {\n  lissten 80;\n }\n}").unwrap_err();
    assert_eq!(e.to_string(), "unknown directive \"lissten\" in t.conf:4");
    let e = cfg("events {}\nhttp {\n proxy_pass http://x;\n}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"proxy_pass\" directive is not allowed here in t.conf:3"
    );
    let e = cfg("events {}\nhttp {\n server {\n location / { proxy_pass http://nope_upstream; }\n }\n}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "host not found in upstream \"nope_upstream\" in t.conf:4"
    );
    let e = cfg("events {}\nhttp {\n client_max_body_size 10Q;\n}").unwrap_err();
    assert!(e.to_string().contains("t.conf:3"), "{e}");
    let e = cfg("events {}\nhttp {\n server {\n return 200 $nope;\n }\n}").unwrap_err();
    assert_eq!(e.to_string(), "unknown \"nope\" variable in t.conf:4");
    let e = cfg("http {}").unwrap_err();
    assert_eq!(e.to_string(), "no \"events\" section in configuration");
}

#[test]
fn default_server_and_groups() {
    let c = cfg("events {} http { access_log off; server { listen 127.0.0.1:81; server_name a; } server { listen 127.0.0.1:81 default_server; server_name b; } server { listen 127.0.0.1:82; } }").unwrap();
    assert_eq!(c.http.listens.len(), 2);
    assert_eq!(c.http.listens[0].servers, vec![0, 1]);
    assert_eq!(c.http.listens[0].default_server, 1);
    assert_eq!(c.http.listens[1].default_server, 2);
}

#[test]
fn load_module_and_foreign_directives() {
    let c = cfg("load_module modules/ngx_http_echo_module.so; events {} http { access_log off; }").unwrap();
    let notice = c
        .warnings
        .iter()
        .find(|(l, _)| *l == LogLevel::Notice)
        .expect("a notice");
    assert!(
        notice
            .1
            .to_string()
            .contains("module \"ngx_http_echo_module\" is not loaded"),
        "{}",
        notice.1
    );
    for (d, module) in [
        ("echo hi;", "ngx_http_echo_module"),
        ("more_set_headers \"X: y\";", "ngx_http_headers_more_filter_module"),
        ("content_by_lua_block { }", "ngx_http_lua_module"),
        ("geoip_country /x.dat;", "ngx_http_geoip_module"),
    ] {
        let e = cfg(&format!("events {{}} http {{ server {{ location / {{ {d} }} }} }}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(module) && e.contains("t.conf:1"), "{d}: {e}");
    }
    let e = cfg("events {} http { server { frobnicate on; } }")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("unknown directive \"frobnicate\" in"), "{e}");
}

#[test]
fn static_file_directives() {
    let c = cfg(
        "events {} http { access_log off; root /srv/www/; index a.html b.html; gzip on; gzip_types text/css; \
        server { try_files $uri /x; location /img/ { alias /data/img/; etag off; } location @app { internal; } \
        location / { try_files $uri $uri/ =404; index c.html; } } }",
    )
    .unwrap();
    let s = &c.http.servers[0];
    assert_eq!(s.conf.doc_root.path, "/srv/www", "root's trailing / is trimmed");
    assert_eq!(s.conf.index, ["a.html", "b.html"]);
    assert!(s.conf.try_files.is_some());
    assert_eq!(s.conf.gzip.types, ["text/css", "text/html"]);
    let img = s.prefix_locations.iter().find(|l| l.prefix() == Some("/img/")).unwrap();
    assert_eq!(
        (img.conf.doc_root.path.as_str(), img.conf.doc_root.alias),
        ("/data/img/", true)
    );
    assert!(
        !img.conf.etag && img.conf.try_files.is_none(),
        "try_files is not inherited"
    );
    let root = s.prefix_locations.iter().find(|l| l.prefix() == Some("/")).unwrap();
    assert_eq!(root.conf.index, ["c.html"]);
    assert!(root.conf.gzip.on);
    let tf = root.conf.try_files.as_ref().unwrap();
    assert_eq!(tf.files.iter().map(|(_, d)| *d).collect::<Vec<_>>(), [false, true]);
    assert!(matches!(tf.last, crate::config::model::TryLast::Code(404)));
    assert_eq!(s.named_locations.len(), 1);
    assert!(s.named_locations[0].conf.internal);
    let d = cfg("events {} http { server { } }").unwrap();
    assert_eq!(
        d.http.servers[0].conf.doc_root.path, "/tmp/html",
        "nginx's default root"
    );
    for (bad, why) in [
        ("location / { alias /a; root /b; }", "both set"),
        (
            "location ~ ^/(x) { alias /a/$1; try_files $uri =404; }",
            "not supported yet",
        ),
        ("location ~ (x { }", "pcre2_compile() failed"),
        ("location / { try_files $uri; }", "invalid number of arguments"),
        ("location / { try_files $uri =abc; }", "invalid code"),
        ("location / { autoindex_format xml; }", "not supported"),
        ("location / { gzip_comp_level 10; }", "between 1 and 9"),
        ("location / { gzip_proxied auth; }", "not supported"),
        ("location @a { } location @a { }", "duplicate location"),
        (
            "location /a/ { location /b/ { } }",
            "location \"/b/\" is outside location \"/a/\"",
        ),
        (
            "location = /a { location /a/b { } }",
            "cannot be inside the exact location",
        ),
        ("location /a/ { location @n { } }", "can be on the server level only"),
    ] {
        let e = cfg(&format!("events {{}} http {{ server {{ {bad} }} }}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn map_blocks() {
    let c = cfg("events {} http { access_log off; log_format m '$mapped'; \
        map $http_x $mapped { hostnames; default d; A.com exact; *.b.com wild; .c.com dot; www.d.* tail; ~^z re; \\~tilde esc; } \
        server { } }")
    .unwrap();
    let m = &c.http.servers[0].maps[0];
    let pick = |v: &str| String::from_utf8_lossy(m.lookup(v.as_bytes()).as_literal().unwrap()).into_owned();
    for (v, want) in [
        ("a.com", "exact"),
        ("A.COM.", "exact"),
        ("x.b.com", "wild"),
        ("b.com", "d"),
        ("c.com", "dot"),
        ("x.c.com", "dot"),
        ("www.d.org", "tail"),
        ("zz", "re"),
        ("~tilde", "esc"),
        ("", "d"),
        ("other", "d"),
    ] {
        assert_eq!(pick(v), want, "{v}");
    }
    for (bad, why) in [
        ("map $uri $host { }", "the duplicate \"host\" variable"),
        ("map $uri $x { } map $args $X { }", "the duplicate \"X\" variable"),
        ("map $uri $x { k 1; k 2; }", "conflicting parameter \"k\""),
        (
            "map $uri $x { default 1; default 2; }",
            "duplicate default map parameter",
        ),
        ("map $uri $x { ~(a) $1; }", "captures"),
        ("map $uri $x { k; }", "invalid number of the map parameters"),
        ("map $a x { }", "invalid variable name"),
    ] {
        let e = cfg(&format!("events {{}} http {{ {bad} }}")).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    // A map's variable is unknown outside the configuration that defines it.
    assert!(cfg("events {} http { log_format m '$mapped'; }").is_err());
}

#[test]
fn geo_blocks() {
    let c = cfg("events {} http { access_log off; \
        geo $g { default none; 10.0.0.0/8 ten; 10.1.0.0/16 ten-one; 10.1.2.3 host; 127.0.0.0/8 lo; delete 127.0.0.0/8; ::1 six; } \
        geo $arg_ip $r { ranges; default -; 192.168.1.10-192.168.1.20 mid; 0.0.0.0-0.0.0.255 zero; } \
        server { } }")
    .unwrap();
    let pick = |m: usize, v: &str| {
        let m = &c.http.servers[0].maps[m];
        String::from_utf8_lossy(m.lookup(v.as_bytes()).as_literal().unwrap()).into_owned()
    };
    for (v, want) in [
        ("10.9.9.9", "ten"),
        ("10.1.9.9", "ten-one"),
        ("10.1.2.3", "host"),
        ("127.0.0.1", "none"),
        ("::1", "six"),
        ("garbage", "none"),
    ] {
        assert_eq!(pick(0, v), want, "{v}");
    }
    for (v, want) in [
        ("192.168.1.9", "-"),
        ("192.168.1.10", "mid"),
        ("192.168.1.17", "mid"),
        ("192.168.1.20", "mid"),
        ("192.168.1.21", "-"),
        ("0.0.0.7", "zero"),
    ] {
        assert_eq!(pick(1, v), want, "{v}");
    }
    for bad in [
        "geo $x { 10.0.0.0/33 a; }",
        "geo $x { ranges; 10.0.0.9-10.0.0.1 a; }",
        "geo $x { proxy 10.0.0.0/8; }",
    ] {
        assert!(
            cfg(&format!("events {{}} http {{ {bad} server {{ }} }}")).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn limit_and_auth_directives() {
    let c = cfg(
        "events {} http { limit_req_zone $binary_remote_addr zone=one:1m rate=30r/m; \
        limit_conn_zone $server_name zone=srv:64k; \
        server { limit_req zone=one burst=5 nodelay; limit_conn srv 10; auth_basic \"x\"; proxy_cache off; proxy_cache_bypass $http_upgrade; \
        location /a/ { limit_req zone=one delay=2; satisfy any; auth_basic off; } location /b/ { } } }",
    )
    .unwrap();
    let s = &c.http.servers[0];
    let a = s.prefix_locations.iter().find(|l| l.prefix() == Some("/a/")).unwrap();
    let b = s.prefix_locations.iter().find(|l| l.prefix() == Some("/b/")).unwrap();
    let (la, lb) = (&a.conf.limit_req[0], &b.conf.limit_req[0]);
    assert_eq!((la.rate, la.burst, la.delay), (500, 0, 2000));
    assert_eq!((lb.burst, lb.delay), (5000, i64::MAX as u64 / 1000 * 1000));
    assert!(b.conf.auth_basic.is_some() && a.conf.auth_basic.is_none() && a.conf.satisfy);
    assert_eq!(b.conf.limit_conn[0].max, 10);
    for (bad, why) in [
        (
            "server { limit_req zone=nope; }",
            "zero size shared memory zone \"nope\"",
        ),
        (
            "limit_req_zone $uri zone=z:1m rate=x; server { }",
            "invalid rate \"rate=x\"",
        ),
        (
            "limit_req_zone $uri zone=z:1k rate=1r/s; server { }",
            "zone \"zone=z:1k\" is too small",
        ),
        ("limit_req_zone $uri zone=z rate=1r/s; server { }", "invalid zone size"),
        ("limit_req_zone $uri rate=1r/s x; server { }", "invalid parameter \"x\""),
        (
            "limit_req_zone $uri zone=z:1m rate=1r/s; limit_conn_zone $uri zone=z:1m; server { }",
            "already declared for a different use",
        ),
        (
            "limit_req_zone $uri zone=z:1m rate=1r/s; server { limit_req zone=z burst=0; }",
            "invalid burst value \"burst=0\"",
        ),
        (
            "limit_req_zone $uri zone=z:1m rate=1r/s; server { limit_req zone=z; limit_req zone=z; }",
            "is duplicate",
        ),
        (
            "limit_conn_zone $uri zone=c:1m; server { limit_conn c 0; }",
            "invalid number of connections",
        ),
        ("server { limit_req_status 200; }", "between 400 and 599"),
        ("server { satisfy some; }", "invalid value \"some\""),
        ("server { proxy_cache one; }", "ringx has no response cache"),
        ("server { reset_timedout_connection on; }", "not supported yet"),
        (
            "server { location / { if ($uri) { auth_basic x; } } }",
            "not allowed here",
        ),
    ] {
        let e = cfg(&format!("events {{}} http {{ {bad} }}")).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}
