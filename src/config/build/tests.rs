use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::model::Balance;
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
