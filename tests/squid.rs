//! The story's squid.conf run by ringx (issue 11): Squid's format recognised by
//! content, translated into nginx's (`ringx -T` prints it), used through curl as the
//! story uses it; Squid's access rules (first match, the opposite of the last line,
//! `!`, several ACLs on a line) and its native access-log format, field by field.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The story's squid.conf, with a loopback network and port, and a log file.
fn story(port: u16, dir: &std::path::Path) -> String {
    format!(
        "# The team's forward proxy\n\
         http_port 127.0.0.1:{port}\n\
         acl localnet src 127.0.0.1/32\n\
         http_access allow localnet\n\
         http_access deny all\n\
         cache_dir ufs /var/spool/squid 1000 16 256\n\
         access_log daemon:{d}/access.log squid\n",
        d = dir.display()
    )
}

fn start(conf: &str, port: u16) -> (Ringx, std::path::PathBuf) {
    let r = Ringx::start(conf, &["-g", "daemon off; pid off;"], addr_of(port));
    let dir = r.dir.clone();
    (r, dir)
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .output()
        .expect("curl is installed by .ci/run");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn log_lines(dir: &std::path::Path, n: usize) -> Vec<String> {
    let path = dir.join("access.log");
    wait_for("access-log lines", Duration::from_secs(5), || {
        std::fs::read_to_string(&path).unwrap_or_default().lines().count() >= n
    });
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_story_squid_conf_proxies_tunnels_and_denies_like_squid() {
    let port = free_port();
    let logs = tempdir("squid-logs");
    let b = Backend::start("external-api");
    let (r, _) = start(&story(port, &logs), port);
    // The cache line is accepted with a warning, at start-up.
    assert!(
        r.stderr()
            .contains("[warn] \"cache_dir\" is accepted, but ringx has no response cache yet"),
        "{}",
        r.stderr()
    );
    let proxy = format!("http://127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{}/data", b.addr.port());
    assert!(curl(&["-x", &proxy, &url]).contains("external-api"));
    assert!(curl(&["-p", "-x", &proxy, &format!("{url}?tunnel")]).contains("external-api"));
    assert_eq!(b.count(), 2);
    // Squid forwards the client's address and says it was there.
    let first = &b.requests()[0];
    assert_eq!(first.header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(
        first.header("via").is_some_and(|v| v.starts_with("1.1 ")),
        "{:?}",
        first.headers
    );
    // Outside localnet: 403 before anything is connected, for GET and CONNECT.
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let get = format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(request_from(other, addr_of(port), get.as_bytes()).unwrap().status, 403);
    let bp = b.addr.port();
    let connect = format!("CONNECT 127.0.0.1:{bp} HTTP/1.1\r\nHost: 127.0.0.1:{bp}\r\n\r\n");
    assert_eq!(
        request_from(other, addr_of(port), connect.as_bytes()).unwrap().status,
        403
    );
    assert_eq!(b.count(), 2);
    // A request that is not a proxy request (origin-form) is refused, as Squid does.
    assert_eq!(get_status(addr_of(port), "/"), 400);

    // Squid's native log format, field by field.
    let lines = log_lines(&logs, 5);
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split_whitespace().collect()).collect();
    let want = [
        (
            "TCP_MISS/200",
            "GET",
            url.clone(),
            "HIER_DIRECT/127.0.0.1",
            "text/plain",
        ),
        (
            "TCP_TUNNEL/200",
            "CONNECT",
            format!("127.0.0.1:{bp}"),
            "HIER_DIRECT/127.0.0.1",
            "-",
        ),
        ("TCP_DENIED/403", "GET", url.clone(), "HIER_NONE/-", "text/html"),
        (
            "TCP_DENIED/403",
            "CONNECT",
            format!("127.0.0.1:{bp}"),
            "HIER_NONE/-",
            "text/html",
        ),
        ("NONE_NONE/400", "GET", "/".into(), "HIER_NONE/-", "text/html"),
    ];
    // The tunnel's line is written when it closes, so lines may come in any order.
    for (code, method, u, hier, mime) in want {
        let f = fields
            .iter()
            .find(|f| f.len() == 10 && f[3] == code && f[5] == method && f[6] == u)
            .unwrap_or_else(|| panic!("no {code} {method} {u} line in {lines:?}"));
        assert_eq!(f.len(), 10, "{f:?}");
        let (secs, ms) = f[0].split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_700_000_000 && ms.len() == 3, "{f:?}");
        assert!(f[1].parse::<u64>().is_ok(), "{f:?}");
        let client = if code.starts_with("TCP_DENIED") {
            "127.0.0.2"
        } else {
            "127.0.0.1"
        };
        assert_eq!(
            (f[2], f[3], f[5], f[6], f[7], f[8], f[9]),
            (client, code, method, &*u, "-", hier, mime),
            "{f:?}"
        );
        assert!(f[4].parse::<u64>().unwrap() > 0, "{f:?}");
    }
    // The elapsed time is right-aligned in six columns, as Squid prints it.
    assert_eq!(lines[0].split(' ').nth(1), Some(""), "{}", lines[0]);
}

fn get_status(addr: SocketAddr, path: &str) -> u16 {
    get(addr, path, "proxy").unwrap().status
}

/// Debian's squid.conf rules: Safe_ports, SSL_ports, `!`, two ACLs on a line,
/// several lines of one ACL, and the default of the opposite of the last line.
#[test]
fn squid_access_rules_first_match_negation_and_the_last_line() {
    let port = free_port();
    let b = Backend::start("api");
    let (ok_port, tls_port) = (b.addr.port(), free_port());
    let conf = format!(
        "http_port 127.0.0.1:{port}\n\
         acl SSL_ports port {tls_port}\n\
         acl Safe_ports port 80\n\
         acl Safe_ports port {ok_port} {tls_port}\n\
         acl CONNECT method CONNECT\n\
         acl badguy src 127.0.0.3\n\
         http_access deny !Safe_ports\n\
         http_access deny CONNECT !SSL_ports\n\
         http_access deny badguy\n"
    );
    let (_r, _) = start(&conf, port);
    let p = addr_of(port);
    let send = |src: &str, raw: String| request_from(src.parse().unwrap(), p, raw.as_bytes()).unwrap().status;
    // Not a safe port: denied by the first line.
    let closed = free_port();
    assert_eq!(
        send(
            "127.0.0.1",
            format!("GET http://127.0.0.1:{closed}/ HTTP/1.1\r\nHost: x\r\n\r\n")
        ),
        403
    );
    // Safe, and the last line (deny badguy) does not match: allowed (its opposite).
    assert_eq!(
        send(
            "127.0.0.1",
            format!("GET http://127.0.0.1:{ok_port}/ HTTP/1.1\r\nHost: x\r\n\r\n")
        ),
        200
    );
    // CONNECT to a port that is safe but not an SSL port: denied by the second line.
    assert_eq!(
        send(
            "127.0.0.1",
            format!("CONNECT 127.0.0.1:{ok_port} HTTP/1.1\r\nHost: x\r\n\r\n")
        ),
        403
    );
    // badguy: denied by the third line.
    assert_eq!(
        send(
            "127.0.0.3",
            format!("GET http://127.0.0.1:{ok_port}/ HTTP/1.1\r\nHost: x\r\n\r\n")
        ),
        403
    );
    assert_eq!(b.count(), 1);
}

/// `ringx -T` prints the nginx form; that text, run as an nginx configuration,
/// gives the same answers.
#[test]
fn the_translation_runs_as_the_nginx_form() {
    let port = free_port();
    let logs = tempdir("squid-t");
    let dir = tempdir("squid-conf");
    let path = dir.join("squid.conf");
    std::fs::write(&path, story(port, &logs)).unwrap();
    let (code, out, err) = ringx_cmd(&["-T", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("translated from Squid's format"), "{out}");
    assert!(
        out.contains("geo $squid_acl_localnet { default 0; 127.0.0.1/32 1; }"),
        "{out}"
    );
    assert!(out.contains("if ($request_method = CONNECT) { tunnel_pass; }"), "{out}");
    let nginx_form: String = out
        .lines()
        .filter(|l| !l.starts_with("# configuration file"))
        .collect::<Vec<_>>()
        .join("\n");
    let b = Backend::start("api");
    let _r = Ringx::start(&nginx_form, &["-g", "daemon off; pid off;"], addr_of(port));
    let raw = format!("GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: x\r\n\r\n", b.addr.port());
    assert_eq!(request(addr_of(port), raw.as_bytes()).unwrap().status, 200);
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(request_from(other, addr_of(port), raw.as_bytes()).unwrap().status, 403);
}

#[test]
fn what_ringx_cannot_do_of_squid_is_an_error_naming_the_line() {
    let dir = tempdir("squid-bad");
    for (conf, want) in [
        ("http_port 3128\nssl_bump peek all\n", "unknown directive \"ssl_bump\""),
        (
            "http_port 3128\nacl ads dstdom_regex ads\n",
            "acl type \"dstdom_regex\" is not supported yet",
        ),
        (
            "http_port 3128\nauth_param digest program /usr/lib/squid/digest_file_auth /etc/squid/passwd\n",
            "auth_param scheme \"digest\" is not supported (only basic)",
        ),
        (
            "http_port 3128\nauth_param basic program /usr/lib/squid/basic_ldap_auth -b dc=x\n",
            "only \"auth_param basic program …/basic_ncsa_auth FILE\" is supported (an htpasswd file)",
        ),
        (
            "http_port 3128\nacl authed proxy_auth REQUIRED\n",
            "a \"proxy_auth\" ACL needs \"auth_param basic program\"",
        ),
    ] {
        let path = dir.join("squid.conf");
        std::fs::write(&path, conf).unwrap();
        let (code, _, err) = ringx_cmd(&["-t", "-c", path.to_str().unwrap()]);
        assert_ne!(code, 0);
        assert!(
            err.contains(&format!("[emerg] {want} in {}:2", path.display())),
            "{err}"
        );
    }
}

/// Squid's proxy authentication: `auth_param basic program basic_ncsa_auth FILE`,
/// `acl NAME proxy_auth REQUIRED` (and one naming users): clients in localnet go
/// without credentials, others get 407 until they give good ones, a named-user rule
/// admits only those users, and the log line names the user.
#[test]
fn proxy_auth_asks_where_the_rules_need_it() {
    let port = free_port();
    let admin = free_port();
    let dir = tempdir("squid-auth");
    std::fs::write(
        dir.join("passwd"),
        "dev:{PLAIN}pw\nops:$apr1$s4lt$Yggrn4c.dyHLd2kGtCAoi.\n",
    )
    .unwrap();
    let conf = format!(
        "http_port 127.0.0.1:{port}\n\
         auth_param basic program /usr/lib/squid/basic_ncsa_auth {d}/passwd\n\
         auth_param basic children 5\n\
         auth_param basic realm Team proxy\n\
         acl localnet src 127.0.0.2\n\
         acl authed proxy_auth REQUIRED\n\
         acl admins proxy_auth ops\n\
         acl adminport port {admin}\n\
         http_access deny adminport !admins\n\
         http_access allow localnet\n\
         http_access allow authed\n\
         http_access deny all\n\
         access_log {d}/access.log squid\n",
        d = dir.display()
    );
    let b = Backend::start("origin");
    let (_r, _) = start(&conf, port);
    let proxy = format!("http://127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{}/data", b.addr.port());
    let get = |src: &str, auth: Option<&str>| {
        let mut raw = format!("GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(a) = auth {
            raw.push_str(&format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, a)
            ));
        }
        raw.push_str("Connection: close\r\n\r\n");
        request_from(src.parse().unwrap(), addr_of(port), raw.as_bytes()).unwrap()
    };
    assert_eq!(get("127.0.0.2", None).status, 200, "localnet needs no credentials");
    let r = get("127.0.0.1", None);
    assert_eq!(r.status, 407);
    assert_eq!(r.header("proxy-authenticate"), Some("Basic realm=\"Team proxy\""));
    assert_eq!(get("127.0.0.1", Some("dev:bad")).status, 407);
    assert_eq!(get("127.0.0.1", Some("dev:pw")).status, 200);
    assert!(curl(&["-x", &proxy, "--proxy-user", "ops:pw1", &url]).contains("origin"));
    // The admin port is for admins only: dev is refused, ops admitted (nothing
    // listens there, so ops gets as far as the connect: 502).
    let admin_url = format!("http://127.0.0.1:{admin}/");
    let raw = |auth: &str| {
        format!(
            "GET {admin_url} HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nProxy-Authorization: Basic {}\r\nConnection: close\r\n\r\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, auth)
        )
    };
    assert_eq!(request(addr_of(port), raw("dev:pw").as_bytes()).unwrap().status, 403);
    assert_eq!(request(addr_of(port), raw("ops:pw1").as_bytes()).unwrap().status, 502);
    let lines = log_lines(&dir, 7);
    assert!(lines.iter().any(|l| l.contains(" TCP_DENIED/407 ")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!(" GET {url} dev HIER_DIRECT/127.0.0.1 "))),
        "{lines:?}"
    );
    // -T prints the nginx form of it.
    let (_, out, _) = ringx_cmd(&["-T", "-c", &_r.conf.display().to_string()]);
    assert!(out.contains("auth_basic $squid_auth_realm;"), "{out}");
}
