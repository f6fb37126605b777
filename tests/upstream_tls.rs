//! TLS to upstreams (`proxy_pass https://`, `proxy_ssl_*`) against a real TLS upstream:
//! a rustls server in the test, with a certificate for `backend.test` signed by a CA
//! made by rcgen, which answers each request with what it saw (the SNI name, whether
//! the client presented a certificate, the Host field) and keeps connections alive.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// The TLS upstream: answers `sni=NAME client-cert=yes|no host=HOST conn=N`.
struct TlsUpstream {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
}

fn tls_upstream(cert: Vec<u8>, key: &rcgen::KeyPair, client_ca: Option<&rcgen::Certificate>) -> TlsUpstream {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der().clone()).unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let cfg = Arc::new(b.with_single_cert(vec![cert.into()], key).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let n = conns.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let id = n.fetch_add(1, Ordering::SeqCst) + 1;
            let cfg = cfg.clone();
            std::thread::spawn(move || serve_tls(s, cfg, id));
        }
    });
    TlsUpstream { addr, conns }
}

fn serve_tls(s: std::net::TcpStream, cfg: Arc<rustls::ServerConfig>, id: usize) {
    let conn = rustls::ServerConnection::new(cfg).unwrap();
    let mut t = rustls::StreamOwned::new(conn, s);
    let mut buf = Vec::new();
    loop {
        let mut tmp = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match t.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let host = head
            .lines()
            .find_map(|l| l.strip_prefix("Host: ").or_else(|| l.strip_prefix("host: ")))
            .unwrap_or("-")
            .to_string();
        let body = format!(
            "sni={} client-cert={} host={host} conn={id}",
            t.conn.server_name().unwrap_or("-"),
            if t.conn.peer_certificates().is_some() {
                "yes"
            } else {
                "no"
            },
        );
        let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        if t.write_all(r.as_bytes()).is_err() {
            return;
        }
    }
}

fn ringx_for(tag: &str, up: SocketAddr, location: &str) -> (Ringx, std::path::PathBuf, u16) {
    let dir = tempdir(tag);
    let port = free_port();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off;
           upstream tls_backend {{ server {up}; keepalive 4; }}
           server {{ listen 127.0.0.1:{port}; location / {{ {location} }} }} }}",
        d = dir.display()
    );
    (Ringx::start(&conf, &[], addr_of(port)), dir, port)
}

fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

/// nginx's defaults: TLS to the upstream without SNI and without verification; with
/// `proxy_ssl_server_name on` and `proxy_ssl_name` the name is sent; keep-alive
/// connections to the upstream are reused over TLS.
#[test]
fn https_upstream_defaults_sni_and_keepalive() {
    let dir = tempdir("utls-pki");
    let pki = Pki::new(&dir, "ca");
    let (cert, key) = pki.leaf(&dir, "backend", &["backend.test"]);
    let up = tls_upstream(cert, &key, None);
    let (_r, _d, port) = ringx_for("utls-default", up.addr, "proxy_pass https://tls_backend;");
    let r = get(addr_of(port), "/", "front.test").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "sni=- client-cert=no host=tls_backend conn=1");

    let (_r2, _d2, port2) = ringx_for(
        "utls-sni",
        up.addr,
        "proxy_pass https://tls_backend; proxy_ssl_server_name on; proxy_ssl_name backend.test;
         proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host;",
    );
    for _ in 0..3 {
        let r = get(addr_of(port2), "/", "front.test").unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.text()
                .starts_with("sni=backend.test client-cert=no host=front.test conn="),
            "{}",
            r.text()
        );
    }
    // One TLS connection for the three requests (plus the first ringx's).
    assert_eq!(up.conns.load(Ordering::SeqCst), 2);
    // A name that is not one fails the request with 500 (the configuration's fault, as
    // nginx), never falls back to the address and never reaches or blames the upstream.
    let before = up.conns.load(Ordering::SeqCst);
    let (_r3, d3, port3) = ringx_for(
        "utls-badname",
        up.addr,
        "proxy_pass https://tls_backend; proxy_ssl_server_name on; proxy_ssl_name \"bad name!\";",
    );
    assert_eq!(get(addr_of(port3), "/", "x").unwrap().status, 500);
    wait_for("the name error", Duration::from_secs(5), || {
        error_log(&d3).contains("[error]")
            && error_log(&d3).contains("invalid proxy_ssl_name \"bad name!\", client: 127.0.0.1")
    });
    assert_eq!(up.conns.load(Ordering::SeqCst), before, "no connection for a bad name");
}

/// `proxy_ssl_verify on` with `proxy_ssl_trusted_certificate`: the right name
/// verifies; another name, or an untrusted CA, is a 502 with nginx's error line, and
/// the upstream is not reached by the request.
#[test]
fn verify_against_trusted_ca() {
    let dir = tempdir("utls-verify");
    let pki = Pki::new(&dir, "ca");
    let other = Pki::new(&dir, "other-ca");
    let (cert, key) = pki.leaf(&dir, "backend", &["backend.test"]);
    let up = tls_upstream(cert, &key, None);
    let verify = |name: &str, ca: &str| {
        format!(
            "proxy_pass https://tls_backend; proxy_ssl_verify on; proxy_ssl_name {name};
             proxy_ssl_trusted_certificate {}/{ca}.crt;",
            dir.display()
        )
    };
    let (_a, _da, ok) = ringx_for("utls-v-ok", up.addr, &verify("backend.test", "ca"));
    let r = get(addr_of(ok), "/", "x").unwrap();
    assert_eq!((r.status, r.text().starts_with("sni=- ")), (200, true));

    let (_b, db, wrong) = ringx_for("utls-v-name", up.addr, &verify("other.test", "ca"));
    assert_eq!(get(addr_of(wrong), "/", "x").unwrap().status, 502);
    wait_for("the verify error", Duration::from_secs(5), || {
        error_log(&db).contains("[error] ")
            && error_log(&db)
                .contains("upstream SSL certificate does not match \"other.test\" while SSL handshaking to upstream")
    });

    let (_c, dc, untrusted) = ringx_for("utls-v-ca", up.addr, &verify("backend.test", "other-ca"));
    assert_eq!(get(addr_of(untrusted), "/", "x").unwrap().status, 502);
    wait_for("the issuer error", Duration::from_secs(5), || {
        error_log(&dc).contains("upstream SSL certificate verify error: (20:unable to get local issuer certificate) while SSL handshaking to upstream")
    });
    drop(other);
}

/// `proxy_ssl_certificate` / `_key`: the client certificate an upstream that
/// requires one gets; without it the handshake fails (502).
#[test]
fn client_certificate_to_upstream() {
    let dir = tempdir("utls-client");
    let pki = Pki::new(&dir, "ca");
    let (cert, key) = pki.leaf(&dir, "backend", &["backend.test"]);
    pki.leaf(&dir, "client", &["client.test"]);
    let up = tls_upstream(cert, &key, Some(&pki.ca));
    let with = format!(
        "proxy_pass https://tls_backend; proxy_ssl_certificate {d}/client.crt;
         proxy_ssl_certificate_key {d}/client.key;",
        d = dir.display()
    );
    let (_a, _da, port) = ringx_for("utls-cc", up.addr, &with);
    let r = get(addr_of(port), "/", "x").unwrap();
    assert_eq!(
        (r.status, r.text().contains("client-cert=yes")),
        (200, true),
        "{}",
        r.text()
    );
    let (_b, _db, bare) = ringx_for("utls-nocc", up.addr, "proxy_pass https://tls_backend;");
    assert_eq!(get(addr_of(bare), "/", "x").unwrap().status, 502);
}

/// `-t` checks the upstream TLS files as nginx does.
#[test]
fn config_checks() {
    let dir = tempdir("utls-t");
    let conf = |loc: &str| {
        let p = dir.join("t.conf");
        std::fs::write(
            &p,
            format!("events {{}} http {{ server {{ listen 127.0.0.1:1; location / {{ {loc} }} }} }}"),
        )
        .unwrap();
        ringx_cmd(&["-t", "-c", p.to_str().unwrap()])
    };
    let (rc, _, err) = conf("proxy_pass https://127.0.0.1:9; proxy_ssl_verify on;");
    assert_ne!(rc, 0);
    assert!(
        err.contains("no proxy_ssl_trusted_certificate for proxy_ssl_verify"),
        "{err}"
    );
    let (rc, _, err) =
        conf("proxy_pass https://127.0.0.1:9; proxy_ssl_verify on; proxy_ssl_trusted_certificate /nonexistent/ca.pem;");
    assert_ne!(rc, 0);
    assert!(err.contains("cannot load certificate \"/nonexistent/ca.pem\""), "{err}");
    let (rc, _, err) = conf("proxy_pass https://127.0.0.1:9; proxy_ssl_server_name on; proxy_ssl_protocols TLSv1.3;");
    assert_eq!(rc, 0, "{err}");
}
