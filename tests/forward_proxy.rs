//! The forward proxy, nginx form (issue 11): absolute-form requests through
//! `proxy_pass http://$host…` with `resolver`, CONNECT through `tunnel_pass`, and
//! source ACLs, driven by curl as a team's developers use it (`curl -x`,
//! `http_proxy`, `https_proxy`), against backends and a DNS server the tests start
//! on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The forward-proxy server, on `port`, resolving through `dns`; `extra`
/// goes into it (a `}` in it ends it, for a server after it).
fn proxy_conf(dir: &std::path::Path, port: u16, dns: SocketAddr, extra: &str) -> String {
    format!(
        "daemon off; error_log {d}/error.log info; pid {d}/ringx.pid; events {{}}\n\
         http {{ access_log {d}/access.log; resolver {dns} valid=30s ipv6=off; resolver_timeout 2s;\n\
           server {{ listen 127.0.0.1:{port};\n\
             allow 127.0.0.1; deny all;\n\
             ringx_forward_allow 127.0.0.0/8;\n\
             tunnel_connect_timeout 2s; tunnel_read_timeout 60s;\n\
             location / {{\n\
               if ($request_method = CONNECT) {{ tunnel_pass; }}\n\
               proxy_pass http://$host$is_request_port$request_port$request_uri;\n\
             }}\n\
             {extra}\n\
           }}\n\
         }}\n",
        d = dir.display()
    )
}

struct Setup {
    _ringx: Ringx,
    dns: Dns,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

fn setup(extra: &str) -> Setup {
    let dns = Dns::start();
    let port = free_port();
    let addr = addr_of(port);
    let dir = tempdir("fwd");
    let ringx = Ringx::start(&proxy_conf(&dir, port, dns.addr, extra), &[], addr);
    Setup {
        _ringx: ringx,
        dns,
        addr,
        dir,
    }
}

fn access_log(s: &Setup) -> String {
    std::fs::read_to_string(s.dir.join("access.log")).unwrap_or_default()
}

fn curl(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("no_proxy")
        .envs(env.iter().copied())
        .output()
        .expect("curl is installed by .ci/run");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn error_log(s: &Setup) -> String {
    std::fs::read_to_string(s.dir.join("error.log")).unwrap_or_default()
}

#[test]
fn absolute_form_through_curl_x_and_http_proxy_resolves_and_strips_proxy_headers() {
    let s = setup("");
    let b = Backend::start("api");
    s.dns.set("external-api.test", &["127.0.0.1"], 300);
    let url = format!("http://external-api.test:{}/data?x=1", b.addr.port());
    let proxy = format!("http://{}", s.addr);
    let (out, err) = curl(&["-x", &proxy, &url], &[]);
    assert!(out.contains("api"), "curl -x: {out} {err}");
    let (out, err) = curl(&[&url], &[("http_proxy", &proxy)]);
    assert!(out.contains("api"), "http_proxy: {out} {err}");
    let seen = b.requests();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        // Origin-form upstream, Host from the target, no proxy hop-by-hop fields.
        assert_eq!(r.target, "/data?x=1");
        assert_eq!(r.header("host"), Some(&*format!("external-api.test:{}", b.addr.port())));
        assert!(r.header("proxy-connection").is_none(), "{:?}", r.headers);
    }
    // The answer was cached (TTL 300, valid=30s): one question for two requests.
    assert_eq!(s.dns.asked("external-api.test"), 1);
}

#[test]
fn request_line_host_wins_over_host_header() {
    let s = setup("");
    let b = Backend::start("origin");
    let raw = format!(
        "GET http://127.0.0.1:{}/p HTTP/1.1\r\nHost: elsewhere.test\r\nConnection: close\r\n\r\n",
        b.addr.port()
    );
    let r = request(s.addr, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 200);
    let seen = b.requests();
    assert_eq!(seen[0].header("host"), Some(&*format!("127.0.0.1:{}", b.addr.port())));
}

/// A TLS origin for `https_proxy`: ringx itself, on its own port, with a
/// certificate for `secure.test` from a test CA.
#[test]
fn connect_tunnel_carries_https_through_https_proxy() {
    let dir = tempdir("fwd-tls");
    let pki = Pki::new(&dir, "ca");
    pki.leaf(&dir, "leaf", &["secure.test"]);
    let tls_port = free_port();
    let extra = format!(
        "}} server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {d}/leaf.crt; ssl_certificate_key {d}/leaf.key;\n\
         location / {{ return 200 \"secret over $scheme\\n\"; }}",
        d = dir.display()
    );
    let s = setup(&extra);
    s.dns.set("secure.test", &["127.0.0.1"], 60);
    let ca = format!("{}/ca.crt", dir.display());
    let url = format!("https://secure.test:{tls_port}/x");
    let proxy = format!("http://{}", s.addr);
    let (out, err) = curl(&["--cacert", &ca, &url], &[("https_proxy", &proxy)]);
    assert_eq!(out, "secret over https\n", "{err}");
    let (out, err) = curl(&["--cacert", &ca, "-x", &proxy, &url], &[]);
    assert_eq!(out, "secret over https\n", "{err}");
    // The tunnel's access-log line is written when it closes, with status 200.
    wait_for("the tunnel's log line", Duration::from_secs(5), || {
        let log = access_log(&s);
        log.lines()
            .filter(|l| l.contains(&format!("\"CONNECT secure.test:{tls_port} HTTP/1.1\" 200")))
            .count()
            == 2
    });
}

#[test]
fn outside_the_acl_gets_403_and_no_upstream_connection() {
    let s = setup("");
    let b = Backend::start("origin");
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let get = format!("GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: x\r\n\r\n", b.addr.port());
    assert_eq!(request_from(other, s.addr, get.as_bytes()).unwrap().status, 403);
    let connect = format!(
        "CONNECT 127.0.0.1:{0} HTTP/1.1\r\nHost: 127.0.0.1:{0}\r\n\r\n",
        b.addr.port()
    );
    let r = request_from(other, s.addr, connect.as_bytes()).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(error_log(&s).contains("access forbidden by rule, client: 127.0.0.2"));
}

#[test]
fn unreachable_and_unknown_targets_get_502_with_nginx_log_lines() {
    let s = setup("");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let raw = format!("CONNECT 127.0.0.1:{closed} HTTP/1.1\r\nHost: 127.0.0.1:{closed}\r\n\r\n");
    assert_eq!(request(s.addr, raw.as_bytes()).unwrap().status, 502);
    let raw = "GET http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\n\r\n";
    assert_eq!(request(s.addr, raw.as_bytes()).unwrap().status, 502);
    let raw = "CONNECT nowhere.test:443 HTTP/1.1\r\nHost: nowhere.test:443\r\n\r\n";
    assert_eq!(request(s.addr, raw.as_bytes()).unwrap().status, 502);
    let log = error_log(&s);
    assert!(
        log.contains(&format!(
            "connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: \"CONNECT 127.0.0.1:{closed} HTTP/1.1\", upstream: \"127.0.0.1:{closed}\""
        )),
        "{log}"
    );
    assert!(
        log.contains("nowhere.test could not be resolved (3: Host not found)"),
        "{log}"
    );
}

#[test]
fn a_silent_resolver_times_out_within_resolver_timeout() {
    let s = setup("");
    s.dns.silent.store(true, std::sync::atomic::Ordering::SeqCst);
    let t0 = Instant::now();
    let r = request(s.addr, b"GET http://quiet.test/ HTTP/1.1\r\nHost: quiet.test\r\n\r\n").unwrap();
    // 502, as nginx: the resolver timed out, not an upstream.
    assert_eq!(r.status, 502);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(error_log(&s).contains("quiet.test could not be resolved (110: Operation timed out)"));
}

#[test]
fn truncated_answers_are_asked_again_over_tcp() {
    let s = setup("");
    let b = Backend::start("big");
    s.dns.set("big.test", &["127.0.0.1"], 60);
    s.dns.truncate.store(true, std::sync::atomic::Ordering::SeqCst);
    let raw = format!(
        "GET http://big.test:{}/ HTTP/1.1\r\nHost: big.test\r\n\r\n",
        b.addr.port()
    );
    assert_eq!(request(s.addr, raw.as_bytes()).unwrap().status, 200);
    assert_eq!(b.count(), 1);
}

#[test]
fn answers_expire_with_their_ttl_when_valid_is_not_set() {
    let dns = Dns::start();
    let port = free_port();
    let dir = tempdir("fwd-ttl");
    let conf = proxy_conf(&dir, port, dns.addr, "").replace(" valid=30s", "");
    let _ringx = Ringx::start(&conf, &[], addr_of(port));
    let (b1, b2) = (Backend::start("one"), Backend::start("two"));
    dns.set("moving.test", &["127.0.0.1"], 1);
    let get = |p: u16| {
        let raw = format!("GET http://moving.test:{p}/ HTTP/1.1\r\nHost: moving.test\r\n\r\n");
        request(addr_of(port), raw.as_bytes()).unwrap().status
    };
    assert_eq!(get(b1.addr.port()), 200);
    assert_eq!(get(b1.addr.port()), 200);
    assert_eq!(dns.asked("moving.test"), 1);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(b2.addr.port()), 200);
    assert_eq!(dns.asked("moving.test"), 2);
}

#[test]
fn connect_is_405_where_no_tunnel_is_configured_and_400_with_a_body() {
    let s = setup("");
    let port = free_port();
    let dir = tempdir("fwd-405");
    let conf = format!(
        "daemon off; error_log {d}/error.log info; events {{}} http {{ server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }} }}",
        d = dir.display()
    );
    let _plain = Ringx::start(&conf, &[], addr_of(port));
    let connect = b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n";
    assert_eq!(request(addr_of(port), connect).unwrap().status, 405);
    let v10 = b"CONNECT a.test:443 HTTP/1.0\r\n\r\n";
    assert_eq!(request(s.addr, v10).unwrap().status, 405);
    let body = b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nContent-Length: 2\r\n\r\nhi";
    assert_eq!(request(s.addr, body).unwrap().status, 400);
    let no_port = b"CONNECT a.test HTTP/1.1\r\nHost: a.test\r\n\r\n";
    assert_eq!(request(s.addr, no_port).unwrap().status, 400);
    // GET to the tunnel handler itself: 405 (tunnel_pass answers CONNECT only).
    let dir2 = tempdir("fwd-get");
    let p2 = free_port();
    let conf2 = format!("daemon off; pid off; events {{}} http {{ server {{ listen 127.0.0.1:{p2}; tunnel_pass; }} }}");
    let _ = dir2;
    let _t = Ringx::start(&conf2, &[], addr_of(p2));
    assert_eq!(get(addr_of(p2), "/", "x").unwrap().status, 405);
}

#[test]
fn a_silent_tunnel_closes_after_tunnel_read_timeout_and_bytes_flow_both_ways() {
    let s = setup("tunnel_read_timeout 1s;");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut up, _) = l.accept().unwrap();
        let mut b = [0u8; 5];
        up.read_exact(&mut b).unwrap();
        up.write_all(b"pong:").unwrap();
        up.write_all(&b).unwrap();
        // Then silence, connection held open.
        std::thread::sleep(Duration::from_secs(10));
    });
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    // The first tunnel bytes come with the CONNECT (a client that does not wait).
    write!(
        c,
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\nping!"
    )
    .unwrap();
    let mut got = Vec::new();
    read_until(&mut c, &mut got, b"pong:ping!");
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("content-length"), "{text}");
    let t0 = Instant::now();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    wait_for("the tunnel's log line", Duration::from_secs(5), || {
        let log = access_log(&s);
        log.contains(&format!("\"CONNECT 127.0.0.1:{port} HTTP/1.1\" 200"))
    });
}

/// Side by side with Debian's nginx (1.22, which has `resolver` and `proxy_pass`
/// with variables but not yet `$request_port`): what the backend receives for
/// absolute-form requests, and the statuses of targets that do not resolve.
#[test]
fn absolute_form_matches_nginx() {
    let dns = Dns::start();
    let b = Backend::start("origin");
    dns.set("api.test", &["127.0.0.1"], 60);
    let block = |p: u16| {
        format!(
            "resolver {dns} ipv6=off; upstream pool {{ server {b}; }}\n\
             server {{ listen 127.0.0.1:{p}; location / {{ proxy_pass http://$http_host$request_uri; }}\n\
             location /named/ {{ proxy_pass http://$arg_to; }} }}",
            dns = dns.addr,
            b = b.addr
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let bp = b.addr.port();
    let req = |t: &str, h: &str| {
        format!("GET {t} HTTP/1.1\r\nHost: {h}\r\nProxy-Connection: keep-alive\r\nConnection: close\r\n\r\n")
    };
    let cases = [
        req(&format!("http://api.test:{bp}/p?q=1"), &format!("api.test:{bp}")),
        req(&format!("http://API.test:{bp}"), &format!("api.test:{bp}")),
        req("/rel?x", &format!("api.test:{bp}")),
        req("http://nowhere.test/", "nowhere.test"),
        req("/named/x?to=pool", "x"),
        req("/named/x?to=ftp://pool", "x"),
        req(&format!("/named/x?to=127.0.0.1:{bp}/fixed%3Fa"), "x"),
    ];
    let mut diffs = Vec::new();
    for raw in &cases {
        let seen = |addr| {
            b.clear();
            let r = request(addr, raw.as_bytes()).unwrap();
            let up = b.requests().first().map(|q| {
                // nginx passes Proxy-Connection on; ringx drops it, as every
                // hop-by-hop field (docs/config.md): only it may differ.
                let mut h: Vec<String> = q
                    .headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("proxy-connection"))
                    .map(|(k, v)| format!("{}: {v}", k.to_ascii_lowercase()))
                    .collect();
                h.sort();
                format!("{} {} {} [{}]", q.method, q.target, q.version, h.join(", "))
            });
            (r.status, up)
        };
        let (rr, nr) = (seen(ra), seen(na));
        if rr != nr {
            diffs.push(format!("{raw:?}:\n  ringx {rr:?}\n  nginx {nr:?}"));
        }
    }
    assert!(diffs.is_empty(), "ringx differs from nginx:\n{}", diffs.join("\n"));
}

/// Without `ringx_forward_allow`, a forward-proxy server does not dial the inside:
/// loopback (also through a name that resolves there), the cloud metadata address,
/// the proxy itself. An `upstream` named explicitly is the operator's choice and is
/// not checked; nor is an origin-form request to a variable `proxy_pass`.
#[test]
fn the_inside_is_refused_unless_allowed() {
    let dns = Dns::start();
    dns.set("rebind.test", &["127.0.0.1"], 60);
    let b = Backend::start("inside");
    let port = free_port();
    let dir = tempdir("fwd-inside");
    let conf = proxy_conf(&dir, port, dns.addr, &format!("location /up/ {{ proxy_pass http://$arg_u; }} }} upstream pool {{ server {}; }} server {{ listen 127.0.0.1:{}; ", b.addr, free_port()))
        .replace("ringx_forward_allow 127.0.0.0/8;", "");
    let _r = Ringx::start(&conf, &[], addr_of(port));
    let bp = b.addr.port();
    let send = |raw: String| request(addr_of(port), raw.as_bytes()).unwrap().status;
    assert_eq!(send(format!("CONNECT 127.0.0.1:{bp} HTTP/1.1\r\nHost: x\r\n\r\n")), 403);
    assert_eq!(
        send(format!("GET http://127.0.0.1:{bp}/ HTTP/1.1\r\nHost: x\r\n\r\n")),
        403
    );
    assert_eq!(
        send(format!("GET http://rebind.test:{bp}/ HTTP/1.1\r\nHost: x\r\n\r\n")),
        403
    );
    assert_eq!(
        send("GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        403
    );
    assert_eq!(send(format!("CONNECT [::1]:{bp} HTTP/1.1\r\nHost: x\r\n\r\n")), 403);
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::SeqCst), 0);
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap();
    assert!(
        log.contains(
            "proxy request to internal address 169.254.169.254:80 refused (ringx_forward_allow), client: 127.0.0.1"
        ),
        "{log}"
    );
    // The operator's own targets are not the client's.
    assert_eq!(send("GET http://pool/x HTTP/1.1\r\nHost: pool\r\n\r\n".into()), 200);
    assert_eq!(
        send(format!("GET /up/?u=127.0.0.1:{bp} HTTP/1.1\r\nHost: x\r\n\r\n")),
        200
    );
}

/// A tunnel survives a reload that changes the ACL; new clients get the new rule.
#[test]
fn a_tunnel_survives_reload_and_the_new_acl_applies_to_new_clients() {
    let dns = Dns::start();
    let port = free_port();
    let dir = tempdir("fwd-reload");
    let conf = proxy_conf(&dir, port, dns.addr, "");
    let r = Ringx::start(&conf, &[], addr_of(port));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 || c.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut t = TcpStream::connect(addr_of(port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(t, "CONNECT 127.0.0.1:{up} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    read_until(&mut t, &mut got, b"\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
    // The new configuration lets only 127.0.0.2 in.
    r.rewrite(&conf.replace("allow 127.0.0.1;", "allow 127.0.0.2;"));
    r.signal(libc::SIGHUP);
    let connect = format!("CONNECT 127.0.0.1:{up} HTTP/1.1\r\nHost: x\r\n\r\n");
    // Probed with a request that ends (a CONNECT allowed before the reload would
    // stay open as a tunnel).
    let probe = "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n";
    wait_for("the new ACL", Duration::from_secs(5), || {
        request(addr_of(port), probe.as_bytes()).is_some_and(|r| r.status == 403)
    });
    let mut c = TcpStream::connect(addr_of(port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(connect.as_bytes()).unwrap();
    let mut head = Vec::new();
    read_until(&mut c, &mut head, b"\r\n\r\n");
    assert!(head.starts_with(b"HTTP/1.1 403"), "{}", String::from_utf8_lossy(&head));
    // The old tunnel still carries bytes both ways.
    t.write_all(b"still here").unwrap();
    let mut echo = Vec::new();
    read_until(&mut t, &mut echo, b"still here");
    // From 127.0.0.2 a new tunnel opens (its head read alone: a tunnel has no end).
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    sock.connect(&addr_of(port).into()).unwrap();
    let mut c: TcpStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(connect.as_bytes()).unwrap();
    let mut head = Vec::new();
    read_until(&mut c, &mut head, b"\r\n\r\n");
    assert!(
        head.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// `auth_basic` on the forward proxy: proxy requests (CONNECT, as nginx 1.31, and
/// absolute-form, ringx's addition) are asked with 407 and `Proxy-Authenticate`,
/// answer to `Proxy-Authorization` (curl's `--proxy-user`, or credentials in the
/// proxy URL), and the origin never sees the proxy's credentials.
#[test]
fn proxy_auth_asks_with_407_and_keeps_credentials_from_the_origin() {
    let dir = tempdir("fwd-auth");
    std::fs::write(dir.join("users"), "dev:{PLAIN}s3cret\n").unwrap();
    let s = setup(&format!(
        "auth_basic \"outbound\"; auth_basic_user_file {}/users;",
        dir.display()
    ));
    let b = Backend::start("origin");
    s.dns.set("api.test", &["127.0.0.1"], 60);
    let url = format!("http://api.test:{}/data", b.addr.port());
    let proxy = format!("http://{}", s.addr);
    let (out, err) = curl(&["-i", "-x", &proxy, &url], &[]);
    assert!(
        out.starts_with("HTTP/1.1 407 Proxy Authentication Required"),
        "{out} {err}"
    );
    assert!(out.contains("Proxy-Authenticate: Basic realm=\"outbound\""), "{out}");
    assert_eq!(b.count(), 0);
    let (out, err) = curl(&["-x", &proxy, "--proxy-user", "dev:s3cret", &url], &[]);
    assert!(out.contains("origin"), "{out} {err}");
    let creds = format!("http://dev:s3cret@{}", s.addr);
    let (out, err) = curl(&[&url], &[("http_proxy", &creds)]);
    assert!(out.contains("origin"), "{out} {err}");
    let (out, _) = curl(&["-i", "-x", &proxy, "--proxy-user", "dev:wrong", &url], &[]);
    assert!(out.starts_with("HTTP/1.1 407"), "{out}");
    for r in b.requests() {
        assert!(r.header("proxy-authorization").is_none(), "{:?}", r.headers);
    }
    assert_eq!(b.count(), 2);
    // CONNECT: 407 first, then a tunnel with the credentials.
    let connect = |auth: &str| {
        format!(
            "CONNECT 127.0.0.1:{0} HTTP/1.1\r\nHost: 127.0.0.1:{0}\r\n{auth}\r\n",
            b.addr.port()
        )
    };
    let r = request(s.addr, connect("").as_bytes()).unwrap();
    assert_eq!(r.status, 407);
    assert_eq!(r.header("proxy-authenticate"), Some("Basic realm=\"outbound\""));
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // dev:s3cret
    let ok = connect("Proxy-Authorization: Basic ZGV2OnMzY3JldA==\r\n");
    write!(c, "{ok}GET /t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("origin"), "{text}");
    let log = error_log(&s);
    assert!(
        log.contains("no user/password was provided for basic authentication"),
        "{log}"
    );
    assert!(log.contains("user \"dev\": password mismatch"), "{log}");
}
