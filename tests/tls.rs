//! TLS termination (`listen ... ssl`) seen by real TLS clients: a rustls client
//! (certificates and keys made by rcgen at test time), and curl and openssl. The backends are plain HTTP, as behind nginx.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// A certificate for `names`, self-signed with a new ECDSA P-256 or RSA 2048 key;
/// written as `NAME.crt` and `NAME.key` in `dir`. Returns the certificate's DER.
fn make_cert(dir: &Path, file: &str, names: &[&str], rsa: bool) -> Vec<u8> {
    let key = if rsa {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap()
    } else {
        rcgen::KeyPair::generate().unwrap()
    };
    let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    cert.der().to_vec()
}

fn sig_algs() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// Accepts any certificate (the tests compare the one they got with the one they
/// expect), checks signatures for real, and offers only `schemes` to the server.
#[derive(Debug)]
struct AnyCert {
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &sig_algs())
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &sig_algs())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

const ECDSA_ONLY: &[SignatureScheme] = &[SignatureScheme::ECDSA_NISTP256_SHA256];
const RSA_ONLY: &[SignatureScheme] = &[SignatureScheme::RSA_PSS_SHA256, SignatureScheme::RSA_PKCS1_SHA256];

fn all_schemes() -> Vec<SignatureScheme> {
    let mut v = ECDSA_ONLY.to_vec();
    v.extend_from_slice(RSA_ONLY);
    v
}

/// A client config: these protocol versions and signature schemes, its own session
/// cache (so a second connection with the same config may resume).
fn client(versions: &[&'static rustls::SupportedProtocolVersion], schemes: Vec<SignatureScheme>) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert { schemes }))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn tls13() -> Arc<ClientConfig> {
    client(&[&rustls::version::TLS13], all_schemes())
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake; `sni` None sends none (an IP address).
fn connect(addr: SocketAddr, sni: Option<&str>, cfg: &Arc<ClientConfig>) -> Result<Tls, String> {
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).unwrap(),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// One request over a new TLS connection: the response and the leaf certificate.
fn fetch(
    addr: SocketAddr,
    sni: Option<&str>,
    cfg: &Arc<ClientConfig>,
    raw: &[u8],
) -> Result<(Response, Vec<u8>), String> {
    let mut s = connect(addr, sni, cfg)?;
    let leaf = s.conn.peer_certificates().unwrap()[0].to_vec();
    s.write_all(raw).map_err(|e| e.to_string())?;
    let r = read_response(&mut s, &mut Vec::new(), false).ok_or("no response")?;
    Ok((r, leaf))
}

fn get_tls(
    addr: SocketAddr,
    sni: Option<&str>,
    cfg: &Arc<ClientConfig>,
    path: &str,
) -> Result<(Response, Vec<u8>), String> {
    let host = sni.unwrap_or("localhost");
    fetch(
        addr,
        sni,
        cfg,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A config with one TLS server on `port` using the certificate `s` that make_cert
/// wrote in `dir`: `events`, `http` and `server` go into their blocks.
fn one_server(dir: &Path, port: u16, events: &str, http: &str, server: &str) -> String {
    format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{ {events} }}
         http {{ {http}
           server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/s.crt; ssl_certificate_key {d}/s.key;
                     {server} }} }}",
        d = dir.display()
    )
}

/// Starts ringx on [`one_server`] with a new certificate `s` (RSA or ECDSA) in a new
/// directory: (ringx, that directory, the TLS port).
fn one_tls_ringx(tag: &str, rsa: bool, events: &str, http: &str, server: &str) -> (Ringx, std::path::PathBuf, u16) {
    let dir = tempdir(tag);
    make_cert(&dir, "s", &["localhost"], rsa);
    let port = free_port();
    let r = Ringx::start(&one_server(&dir, port, events, http, server), &[], addr_of(port));
    (r, dir, port)
}

fn error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

/// The story's front: TLS on one port for a backend pool, a plain port that redirects.
#[test]
fn terminates_tls_for_a_backend_pool_with_the_redirect_server() {
    let be = Backend::start("b1");
    let dir = tempdir("tls");
    let cert = make_cert(&dir, "api", &["api.example.test"], false);
    let (tls_port, plain_port) = (free_port(), free_port());
    let conf = format!(
        "daemon off; worker_processes 2; error_log {d}/error.log info; pid {d}/pid;
         events {{}}
         http {{ access_log {d}/access.log; client_max_body_size 10m;
           upstream api {{ server {be}; }}
           server {{ listen 127.0.0.1:{plain_port}; server_name api.example.test;
                     return 301 https://$server_name$request_uri; }}
           server {{ listen 127.0.0.1:{tls_port} ssl; server_name api.example.test;
                     ssl_certificate {d}/api.crt; ssl_certificate_key {d}/api.key;
                     ssl_protocols TLSv1.2 TLSv1.3;
                     location /info {{ return 200 \"$scheme $https $ssl_protocol $ssl_cipher $ssl_server_name $ssl_alpn_protocol\"; }}
                     location / {{ proxy_pass http://api;
                                   proxy_set_header Host $host;
                                   proxy_set_header X-Forwarded-Proto $scheme; }} }} }}",
        d = dir.display(),
        be = be.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(tls_port));
    let addr = addr_of(tls_port);
    let sni = Some("api.example.test");

    let (r, leaf) = get_tls(addr, sni, &tls13(), "/info").unwrap();
    assert_eq!(leaf, cert);
    assert_eq!(
        r.text(),
        "https on TLSv1.3 TLS_AES_256_GCM_SHA384 api.example.test http/1.1"
    );
    let tls12 = client(&[&rustls::version::TLS12], all_schemes());
    let (r, _) = get_tls(addr, sni, &tls12, "/info").unwrap();
    assert_eq!(
        r.text(),
        "https on TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384 api.example.test http/1.1"
    );

    // Proxied: the backend hears $scheme https; 5 MiB up and 8 MiB down are intact.
    let body: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let (r, _) = fetch(addr, sni, &tls13(), &req).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.body == body,
        "the 5 MiB body came back changed ({} bytes)",
        r.body.len()
    );
    let rec = be.requests().pop().unwrap();
    assert_eq!(rec.header("x-forwarded-proto"), Some("https"));
    let n = 8 * 1024 * 1024;
    let (r, _) = get_tls(addr, sni, &tls13(), &format!("/big?n={n}")).unwrap();
    assert_eq!(r.body.len(), n);
    assert!(r.body.iter().enumerate().all(|(i, &b)| b == b'a' + (i % 26) as u8));

    // Keep-alive: several requests on one TLS connection.
    let mut s = connect(addr, sni, &tls13()).unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET /info HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
            .unwrap();
        assert!(read_response(&mut s, &mut buf, false)
            .unwrap()
            .text()
            .starts_with("https on"));
    }

    let r = get(addr_of(plain_port), "/v1/x?y=1", "api.example.test").unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://api.example.test/v1/x?y=1"));
}

/// Plain HTTP sent to the TLS port: nginx's 400 page, the connection closed, an
/// [info] line, and the port still serving TLS.
#[test]
fn plain_http_on_the_tls_port_gets_nginx_400() {
    let (rx, dir, port) = one_tls_ringx(
        "tls-plain",
        false,
        "",
        "access_log logs/access.log;",
        "location / { return 200 ok; }",
    );
    let r = get(addr_of(port), "/", "localhost").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r
        .text()
        .contains("<title>400 The plain HTTP request was sent to HTTPS port</title>"));
    assert!(r.text().contains("<center><h1>400 Bad Request</h1></center>"));
    let (ok, _) = get_tls(addr_of(port), Some("localhost"), &tls13(), "/").unwrap();
    assert_eq!(ok.text(), "ok");
    wait_for("the access log", Duration::from_secs(5), || {
        std::fs::read_to_string(rx.dir.join("logs/access.log")).is_ok_and(|l| l.contains("\"GET / HTTP/1.1\" 400 "))
    });
    let log = error_log(&dir);
    assert!(
        log.contains("[info]") && log.contains("client sent plain HTTP request to HTTPS port"),
        "{log}"
    );
    assert!(!log.contains("[crit]") && !log.contains("[alert]"), "{log}");
}

/// SNI picks the server block and its certificate; no SNI, an unknown name, or a
/// server without a certificate get the default server's (nginx); a server with
/// RSA and ECDSA certificates gives each client the one it can verify.
#[test]
fn sni_chooses_certificate_and_server() {
    let dir = tempdir("tls-sni");
    let a = make_cert(&dir, "a", &["a.test"], false);
    let b_rsa = make_cert(&dir, "b-rsa", &["b.test"], true);
    let b_ec = make_cert(&dir, "b-ec", &["b.test"], false);
    let port = free_port();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off;
           server {{ listen 127.0.0.1:{port} ssl; server_name a.test; ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;
                     location / {{ return 200 \"a $ssl_server_name\"; }} }}
           server {{ listen 127.0.0.1:{port}; server_name b.test;
                     ssl_certificate {d}/b-rsa.crt; ssl_certificate_key {d}/b-rsa.key;
                     ssl_certificate {d}/b-ec.crt; ssl_certificate_key {d}/b-ec.key;
                     location / {{ return 200 b; }} }}
           server {{ listen 127.0.0.1:{port}; server_name nocert.test; location / {{ return 200 nocert; }} }} }}",
        d = dir.display()
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    let addr = addr_of(port);
    let (r, leaf) = get_tls(addr, Some("a.test"), &tls13(), "/").unwrap();
    assert_eq!((r.text().as_str(), leaf == a), ("a a.test", true));
    let ec_client = client(&[&rustls::version::TLS13], ECDSA_ONLY.to_vec());
    let rsa_client = client(&[&rustls::version::TLS13], RSA_ONLY.to_vec());
    let (r, leaf) = get_tls(addr, Some("b.test"), &ec_client, "/").unwrap();
    assert_eq!((r.text().as_str(), leaf == b_ec), ("b", true));
    let (r, leaf) = get_tls(addr, Some("B.TEST"), &rsa_client, "/").unwrap();
    assert_eq!((r.text().as_str(), leaf == b_rsa), ("b", true));
    let (_, leaf) = get_tls(addr, None, &tls13(), "/").unwrap();
    assert!(leaf == a, "no SNI: the default server's certificate");
    let (_, leaf) = get_tls(addr, Some("other.test"), &tls13(), "/").unwrap();
    assert!(leaf == a, "an unknown name: the default server's certificate");
    let (r, leaf) = get_tls(addr, Some("nocert.test"), &tls13(), "/").unwrap();
    assert_eq!((r.text().as_str(), leaf == a), ("nocert", true));
}

/// `ssl_reject_handshake on` in the default server refuses names it does not know.
#[test]
fn reject_handshake_refuses_unknown_names() {
    let dir = tempdir("tls-reject");
    make_cert(&dir, "a", &["a.test"], false);
    let port = free_port();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off;
           server {{ listen 127.0.0.1:{port} ssl default_server; ssl_reject_handshake on; }}
           server {{ listen 127.0.0.1:{port} ssl; server_name a.test; ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;
                     location / {{ return 200 a; }} }} }}",
        d = dir.display()
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    assert_eq!(
        get_tls(addr_of(port), Some("a.test"), &tls13(), "/").unwrap().0.text(),
        "a"
    );
    let e = get_tls(addr_of(port), Some("x.test"), &tls13(), "/").unwrap_err();
    assert!(e.contains("UnrecognisedName") || e.contains("unrecognised"), "{e}");
    assert!(get_tls(addr_of(port), None, &tls13(), "/").is_err());
    wait_for("the handshake line", Duration::from_secs(5), || {
        error_log(&dir).contains("handshake rejected while SSL handshaking")
    });
    assert!(!error_log(&dir).contains("[crit]"));
}

/// `ssl_protocols`, `ssl_ciphers` and `ssl_prefer_server_ciphers` decide what is
/// agreed; a client that asks for what is not offered fails with an [info] line.
#[test]
fn protocols_and_ciphers_are_honoured() {
    let dir = tempdir("tls-proto");
    make_cert(&dir, "r", &["localhost"], true);
    let (p13, p12) = (free_port(), free_port());
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off; ssl_certificate {d}/r.crt; ssl_certificate_key {d}/r.key;
           server {{ listen 127.0.0.1:{p13} ssl; ssl_protocols TLSv1.3; location / {{ return 200 $ssl_protocol; }} }}
           server {{ listen 127.0.0.1:{p12} ssl; ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
                     ssl_ciphers ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256; ssl_prefer_server_ciphers on;
                     location / {{ return 200 \"$ssl_protocol $ssl_cipher\"; }} }} }}",
        d = dir.display()
    );
    let r = Ringx::start(&conf, &[], addr_of(p13));
    assert!(
        r.stderr()
            .contains("[warn] \"TLSv1\" in \"ssl_protocols\" is not offered"),
        "{}",
        r.stderr()
    );
    let only12 = client(&[&rustls::version::TLS12], all_schemes());
    assert_eq!(
        get_tls(addr_of(p13), Some("localhost"), &tls13(), "/")
            .unwrap()
            .0
            .text(),
        "TLSv1.3"
    );
    assert!(get_tls(addr_of(p13), Some("localhost"), &only12, "/").is_err());
    assert!(get_tls(addr_of(p12), Some("localhost"), &tls13(), "/").is_err());
    // The server's order wins: CHACHA20 first although the client prefers AES.
    assert_eq!(
        get_tls(addr_of(p12), Some("localhost"), &only12, "/").unwrap().0.text(),
        "TLSv1.2 ECDHE-RSA-CHACHA20-POLY1305"
    );
    wait_for("two handshake lines", Duration::from_secs(5), || {
        error_log(&dir).matches("while SSL handshaking").count() >= 2
    });
    let log = error_log(&dir);
    assert!(
        !log.contains("[crit]") && !log.contains("[alert]") && !log.contains("[error]"),
        "{log}"
    );
}

/// Sessions resume whichever of two workers the next connection lands on (one
/// ticket key and one cache for all), and not after `ssl_session_timeout`.
#[test]
fn sessions_resume_across_workers_until_the_timeout() {
    let dir = tempdir("tls-resume");
    make_cert(&dir, "s", &["localhost"], false);
    let (tickets, cache) = (free_port(), free_port());
    let conf = format!(
        "daemon off; worker_processes 2; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off; ssl_certificate {d}/s.crt; ssl_certificate_key {d}/s.key;
           server {{ listen 127.0.0.1:{tickets} ssl; ssl_session_timeout 2s; location / {{ return 200 $ssl_session_reused; }} }}
           server {{ listen 127.0.0.1:{cache} ssl; ssl_session_tickets off; ssl_session_cache shared:SSL:1m;
                     location / {{ return 200 $ssl_session_reused; }} }} }}",
        d = dir.display()
    );
    let _r = Ringx::start(&conf, &[], addr_of(tickets));
    for (port, versions) in [
        (tickets, &[&rustls::version::TLS13][..]),
        (tickets, &[&rustls::version::TLS12][..]),
        (cache, &[&rustls::version::TLS13][..]),
        (cache, &[&rustls::version::TLS12][..]),
    ] {
        let cfg = client(versions, all_schemes());
        let got: Vec<String> = (0..8)
            .map(|_| get_tls(addr_of(port), Some("localhost"), &cfg, "/").unwrap().0.text())
            .collect();
        assert_eq!(got[0], ".", "{port} {versions:?}");
        assert!(got[1..].iter().all(|g| g == "r"), "{port} {versions:?}: {got:?}");
    }
    let cfg = tls13();
    assert_eq!(
        get_tls(addr_of(tickets), Some("localhost"), &cfg, "/")
            .unwrap()
            .0
            .text(),
        "."
    );
    assert_eq!(
        get_tls(addr_of(tickets), Some("localhost"), &cfg, "/")
            .unwrap()
            .0
            .text(),
        "r"
    );
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        get_tls(addr_of(tickets), Some("localhost"), &cfg, "/")
            .unwrap()
            .0
            .text(),
        "."
    );
}

/// The handshake is bounded by client_header_timeout, logged at [info].
#[test]
fn a_silent_client_is_closed_at_client_header_timeout() {
    let (_r, dir, port) = one_tls_ringx(
        "tls-timeout",
        false,
        "",
        "access_log off; client_header_timeout 1s;",
        "",
    );
    let mut s = TcpStream::connect(addr_of(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = std::time::Instant::now();
    assert_eq!(s.read(&mut [0u8; 16]).unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    wait_for("the timeout line", Duration::from_secs(5), || {
        error_log(&dir).contains("[info]")
            && error_log(&dir).contains("client timed out (110: Connection timed out) while SSL handshaking")
    });
}

/// `-t` loads every certificate: what is wrong is an [emerg] at its line.
#[test]
fn config_test_checks_certificates_and_keys() {
    let dir = tempdir("tls-t");
    make_cert(&dir, "a", &["a.test"], false);
    make_cert(&dir, "b", &["b.test"], false);
    std::fs::write(
        dir.join("junk.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let d = dir.display();
    let cases = [
        (
            format!("ssl_certificate {d}/missing.crt; ssl_certificate_key {d}/a.key;"),
            "cannot load certificate",
            4,
        ),
        (
            format!("ssl_certificate {d}/a.crt; ssl_certificate_key {d}/b.key;"),
            "cannot use certificate key",
            4,
        ),
        (
            format!("ssl_certificate {d}/junk.crt; ssl_certificate_key {d}/a.key;"),
            "cannot load certificate",
            4,
        ),
        (
            format!("ssl_certificate {d}/a.crt;"),
            "no \"ssl_certificate_key\" is defined",
            4,
        ),
        (
            String::new(),
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
            3,
        ),
        (
            format!("ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;\n ssl_ciphers DHE-RSA-AES128-SHA;"),
            "ssl_ciphers",
            5,
        ),
        (
            format!("ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;\n ssl_protocols SSLv3;"),
            "leaves no protocol",
            5,
        ),
        (
            format!("ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;\n ssl_ecdh_curve brainpoolP256r1;"),
            "Unknown curve",
            5,
        ),
        (
            format!("ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;\n ssl_early_data on;"),
            "not supported",
            5,
        ),
        (
            format!("ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;\n ssl_stapling on; ssl_stapling_file {d}/none.der;"),
            "none.der\" failed (2: No such file or directory)",
            5,
        ),
        // A default server that refuses handshakes: every server of the address needs a
        // certificate (nginx's rule); the second server here has none.
        (
            "ssl_reject_handshake on; }\n server { listen 127.0.0.1:1 ssl; server_name b.test;".to_string(),
            "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
            3,
        ),
    ];
    for (i, (directives, want, line)) in cases.iter().enumerate() {
        let path = dir.join(format!("t{i}.conf"));
        std::fs::write(
            &path,
            format!("events {{}} http {{\n server {{\n listen 127.0.0.1:1 ssl;\n {directives}\n }} }}\n"),
        )
        .unwrap();
        let (code, _, err) = ringx_cmd(&["-t", "-c", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{directives}: {err}");
        assert!(err.contains("[emerg]") && err.contains(want), "{directives}: {err}");
        assert!(
            err.contains(&format!("{}:{line}", path.display())),
            "{directives}: {err}"
        );
    }
}

/// SIGHUP loads new certificates; a broken one is an [emerg] and the old ones stay.
#[test]
fn reload_swaps_certificates_and_keeps_them_when_broken() {
    let dir = tempdir("tls-reload");
    let first = make_cert(&dir, "s", &["localhost"], false);
    let port = free_port();
    let conf = one_server(&dir, port, "", "access_log off;", "location / { return 200 ok; }");
    let r = Ringx::start(&conf, &[], addr_of(port));
    let leaf = || get_tls(addr_of(port), Some("localhost"), &tls13(), "/").unwrap().1;
    assert!(leaf() == first);
    let second = make_cert(&dir, "s", &["localhost"], false);
    r.signal(libc::SIGHUP);
    wait_for("the new certificate", Duration::from_secs(10), || leaf() == second);
    std::fs::write(dir.join("s.crt"), "garbage").unwrap();
    r.signal(libc::SIGHUP);
    wait_for("the [emerg] line", Duration::from_secs(10), || {
        error_log(&dir).contains("[emerg]") && error_log(&dir).contains("cannot load certificate")
    });
    assert!(leaf() == second, "a broken certificate at reload keeps the old one");
}

/// curl and openssl s_client, as users try it (scripts/install-test-deps.sh
/// installs both).
#[test]
fn curl_and_openssl_clients() {
    let have = |c: &str| {
        let ok = std::process::Command::new(c).arg("--version").output().is_ok();
        assert!(ok, "{c} is missing: run scripts/install-test-deps.sh");
        ok
    };
    let (_r, dir, port) = one_tls_ringx(
        "tls-cli",
        true,
        "",
        "access_log off;",
        "location / { return 200 \"$ssl_protocol $ssl_session_reused\"; }",
    );
    if have("curl") {
        let out = std::process::Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(dir.join("s.crt"))
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "TLSv1.3 .");
    }
    if have("openssl") {
        let s_client = |extra: &[&str]| {
            let mut c = std::process::Command::new("openssl")
                .args([
                    "s_client",
                    "-quiet",
                    "-connect",
                    &format!("127.0.0.1:{port}"),
                    "-servername",
                    "localhost",
                ])
                .args(extra)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).to_string()
        };
        let sess = dir.join("sess.pem");
        let sess = sess.to_str().unwrap();
        assert!(s_client(&["-tls1_2", "-sess_out", sess]).ends_with("TLSv1.2 ."));
        assert!(s_client(&["-tls1_2", "-sess_in", sess]).ends_with("TLSv1.2 r"));
        assert!(!s_client(&["-tls1_1"]).contains("TLSv1"), "TLS 1.1 is refused");
    }
}

/// A WebSocket through a TLS front: the 101, then bytes both ways through the
/// tunnel, reads and writes running at once on the one TLS connection.
#[test]
fn websocket_over_tls() {
    let (up, _) = ws_upstream();
    let (_r, _dir, port) = one_tls_ringx("tls-ws", false, "", "access_log off;", &format!("location / {{ proxy_pass http://{up}; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; }}"));
    let mut s = connect(addr_of(port), Some("localhost"), &tls13()).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"hello-from-up");
    assert!(buf.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&buf));
    // 1 MiB each way in 64 KiB pieces: the echo comes back while more is sent.
    let piece: Vec<u8> = (0..65536).map(|i| (i % 253) as u8).collect();
    let mut back = Vec::new();
    for _ in 0..16 {
        s.write_all(&piece).unwrap();
        let mut b = vec![0u8; 65536];
        let mut got = 0;
        while got < piece.len() {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0);
            back.extend_from_slice(&b[..n]);
            got += n;
        }
    }
    assert_eq!(back.len(), 16 * piece.len());
    assert!(back.chunks(65536).all(|c| c == &piece[..]));
}

/// The same TLS server blocks on Debian's nginx and on ringx, asked the same things
/// by the same clients: what each agreed and answered must match (the error page's
/// footer names the server and is left out). `ssl_protocols` is spelled out: Debian's
/// nginx 1.22 predates TLSv1.3 in the default (1.23.4).
#[test]
fn ringx_and_nginx_agree_on_tls_basics() {
    let dir = tempdir("tls-diff");
    let a = make_cert(&dir, "a", &["a.test"], false);
    let b = make_cert(&dir, "b", &["b.test"], true);
    let block = |port: u16| {
        format!(
            "access_log off; ssl_protocols TLSv1.2 TLSv1.3;
             ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;
             server {{ listen 127.0.0.1:{port} ssl; server_name a.test;
                       location / {{ return 200 \"a $scheme $https $ssl_protocol $ssl_cipher $ssl_server_name $ssl_alpn_protocol\"; }} }}
             server {{ listen 127.0.0.1:{port}; server_name b.test; ssl_certificate {d}/b.crt; ssl_certificate_key {d}/b.key;
                       ssl_protocols TLSv1.2; ssl_prefer_server_ciphers on;
                       ssl_ciphers ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256;
                       location / {{ return 200 \"b $ssl_protocol $ssl_cipher $ssl_server_name\"; }} }}
             server {{ listen 127.0.0.1:{port}; server_name c.test; location / {{ return 200 c; }} }}",
            d = dir.display()
        )
    };
    let (np, rp) = (free_port(), free_port());
    let _n = Nginx::start(&block(np), addr_of(np));
    let rconf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}} http {{ {} }}",
        block(rp),
        d = dir.display()
    );
    let _r = Ringx::start(&rconf, &[], addr_of(rp));
    let tls12 = client(&[&rustls::version::TLS12], all_schemes());
    let cases: Vec<(Option<&str>, &Arc<ClientConfig>)> = vec![
        (Some("a.test"), &tls12),
        (Some("b.test"), &tls12),
        (Some("c.test"), &tls12),
        (Some("other.test"), &tls12),
        (None, &tls12),
    ];
    let tls13 = tls13();
    let mut cases = cases;
    // Not (b.test, TLS 1.3): current nginx applies the SNI server's ssl_protocols (its
    // client-hello callback), as ringx; Debian's 1.22 still negotiated the default
    // server's versions.
    cases.extend([(Some("a.test"), &tls13), (Some("c.test"), &tls13), (None, &tls13)]);
    let seen = |port: u16, sni: Option<&str>, cfg: &Arc<ClientConfig>| match get_tls(addr_of(port), sni, cfg, "/") {
        Ok((r, leaf)) => format!(
            "{} {} cert {}",
            r.status,
            r.text(),
            if leaf == a {
                "a"
            } else if leaf == b {
                "b"
            } else {
                "?"
            }
        ),
        Err(e) => format!("handshake failed {e}"),
    };
    for (sni, cfg) in &cases {
        let (n, r) = (seen(np, *sni, cfg), seen(rp, *sni, cfg));
        assert_eq!(r, n, "SNI {sni:?}: ringx said {r:?}, nginx {n:?}");
    }
    // Plain HTTP on the TLS port: the same status, headers that matter and page.
    let page = |port: u16| {
        let r = get(addr_of(port), "/", "a.test").unwrap();
        let body = r.text();
        let upto = body.find("<hr>").unwrap_or(body.len());
        (
            r.status,
            r.header("connection").map(str::to_string),
            body[..upto].to_string(),
        )
    };
    assert_eq!(page(rp), page(np));
}

/// Connections that sent nothing yet, or only finished a handshake, wait parked: when
/// worker_connections are all taken they make room for a new client (nginx reuses a
/// connection until its first byte) instead of refusing it until client_header_timeout.
#[test]
fn idle_tls_connections_make_room_for_new_clients() {
    let (_r, _dir, port) = one_tls_ringx(
        "tls-room",
        false,
        "worker_connections 4;",
        "access_log off; client_header_timeout 60s;",
        "location / { return 200 ok; }",
    );
    let served = |what: &str| {
        std::thread::sleep(Duration::from_millis(200));
        let t = std::time::Instant::now();
        for _ in 0..3 {
            let r = get_tls(addr_of(port), Some("localhost"), &tls13(), "/");
            assert_eq!(
                r.map(|(r, _)| r.text()),
                Ok("ok".to_string()),
                "with {what} holding the slots"
            );
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{what}: {:?}", t.elapsed());
    };
    let silent: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr_of(port)).unwrap()).collect();
    served("connections that sent nothing");
    drop(silent);
    let shaken: Vec<Tls> = (0..4)
        .map(|_| connect(addr_of(port), Some("localhost"), &tls13()).unwrap())
        .collect();
    served("connections that only did the handshake");
    drop(shaken);
}

/// A keep-alive connection closed at keepalive_timeout ends with close_notify (a clean
/// TLS end for the client), as nginx.
#[test]
fn keepalive_timeout_sends_close_notify() {
    let (_r, _dir, port) = one_tls_ringx(
        "tls-ka",
        false,
        "",
        "access_log off; keepalive_timeout 1s;",
        "location / { return 200 ok; }",
    );
    let mut s = connect(addr_of(port), Some("localhost"), &tls13()).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().text(), "ok");
    // rustls reports a close without close_notify as UnexpectedEof.
    let mut rest = Vec::new();
    let r = s.read_to_end(&mut rest);
    assert!(r.is_ok(), "no close_notify at keepalive_timeout: {r:?}");
    assert!(rest.is_empty() && buf.is_empty());
}

/// Bad TLS input (a garbage ClientHello, garbage records after the handshake, a
/// handshake cut halfway) ends that connection only: [info] lines at most, never
/// [crit], [alert] or a panic, and the next client is served.
#[test]
fn bad_tls_input_ends_only_that_connection() {
    let (_r, dir, port) = one_tls_ringx("tls-bad", false, "", "access_log off;", "location / { return 200 ok; }");
    let read_all = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut v = Vec::new();
        let _ = s.read_to_end(&mut v);
        v
    };
    // A handshake record full of noise, and one cut after its header.
    let mut s = TcpStream::connect(addr_of(port)).unwrap();
    let mut noise = vec![0x16, 0x03, 0x01, 0x01, 0x00];
    noise.extend((0..256).map(|i| (i * 37 % 256) as u8));
    s.write_all(&noise).unwrap();
    let answer = read_all(&mut s);
    assert!(answer.len() < 64, "an alert at most, got {} bytes", answer.len());
    let mut s = TcpStream::connect(addr_of(port)).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    read_all(&mut s);
    // Garbage application records after a good handshake.
    let mut t = connect(addr_of(port), Some("localhost"), &tls13()).unwrap();
    t.sock.write_all(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    t.sock.write_all(&[0xab; 32]).unwrap();
    let mut v = Vec::new();
    assert!(t.read_to_end(&mut v).is_err() || v.is_empty());
    // The worker is fine.
    assert_eq!(
        get_tls(addr_of(port), Some("localhost"), &tls13(), "/")
            .unwrap()
            .0
            .text(),
        "ok"
    );
    // A connection closed before its first byte (a load balancer's TCP check).
    drop(TcpStream::connect(addr_of(port)).unwrap());
    wait_for("the early-close line", Duration::from_secs(5), || {
        error_log(&dir).matches("[info]").count() >= 2
            && error_log(&dir).contains("client closed connection while SSL handshaking")
    });
    wait_for("the SSL_read line", Duration::from_secs(5), || {
        error_log(&dir).contains("[info]") && error_log(&dir).contains("SSL_read() failed")
    });
    let log = error_log(&dir);
    assert!(
        !log.contains("[crit]") && !log.contains("[alert]") && !log.contains("panicked"),
        "{log}"
    );
}

/// Bytes read from a socket, kept: the TLS records as they came.
struct Tap(TcpStream, Vec<u8>);

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The largest application-data record (its length on the wire) and how many came,
/// for a 20,000-byte response from `port`.
fn app_records(port: u16) -> (usize, usize) {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(tls13(), name).unwrap();
    let sock = TcpStream::connect(addr_of(port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, Tap(sock, Vec::new()));
    s.write_all(b"GET /big?n=20000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
    assert_eq!(r.body.len(), 20000);
    let raw = &s.sock.1;
    let (mut pos, mut max, mut count) = (0, 0, 0);
    while pos + 5 <= raw.len() {
        let len = u16::from_be_bytes([raw[pos + 3], raw[pos + 4]]) as usize;
        if raw[pos] == 0x17 {
            max = max.max(len);
            count += 1;
        }
        pos += 5 + len;
    }
    (max, count)
}

/// `ssl_buffer_size` bounds the plaintext of each record ringx sends, as nginx's
/// buffer does; `ssl_ecdh_curve` restricts the key exchange groups.
#[test]
fn buffer_size_and_curves_are_honoured() {
    let be = Backend::start("b");
    let dir = tempdir("tls-bufsize");
    make_cert(&dir, "s", &["localhost"], false);
    let (small, full) = (free_port(), free_port());
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
         http {{ access_log off; ssl_certificate {d}/s.crt; ssl_certificate_key {d}/s.key;
           server {{ listen 127.0.0.1:{small} ssl; ssl_buffer_size 1k; ssl_ecdh_curve secp384r1;
                     location / {{ proxy_pass http://{be}; }} }}
           server {{ listen 127.0.0.1:{full} ssl; location / {{ proxy_pass http://{be}; }} }} }}",
        d = dir.display(),
        be = be.addr
    );
    let _r = Ringx::start(&conf, &[], addr_of(small));
    // A TLS 1.3 record: the plaintext, its content type (1) and the AEAD tag (16).
    let (max, count) = app_records(small);
    assert!(
        max == 1024 + 17 && count >= 20,
        "ssl_buffer_size 1k: largest record {max}, {count} records"
    );
    let (max, _) = app_records(full);
    // By default records are as large as the writes (up to 16 KiB).
    assert!(max > 4096 && max <= 16384 + 17, "default 16k: largest record {max}");
    let group = |port| {
        let s = connect(addr_of(port), Some("localhost"), &tls13()).unwrap();
        s.conn.negotiated_key_exchange_group().map(|g| g.name())
    };
    assert_eq!(group(small), Some(rustls::NamedGroup::secp384r1));
    assert_eq!(group(full), Some(rustls::NamedGroup::X25519));
}

/// ALPN chooses the protocol on TLS: `h2` offered where `http2 on`, and a client
/// that agreed on HTTP/1.1 and then sends the HTTP/2 preface is answered as
/// HTTP/1 (400), as nginx (prior knowledge is for plaintext only).
#[test]
fn alpn_h2_and_no_prior_knowledge_on_tls() {
    let (_r, _dir, port) = one_tls_ringx(
        "tls-alpn",
        false,
        "",
        "access_log off;",
        "http2 on; location / { return 200 ok; }",
    );
    let mut h1 = (*client(&[&rustls::version::TLS13], all_schemes())).clone();
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let h1 = Arc::new(h1);
    let (r, _) = fetch(
        addr_of(port),
        Some("localhost"),
        &h1,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let mut h2 = (*client(&[&rustls::version::TLS13], all_schemes())).clone();
    h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let s = connect(addr_of(port), Some("localhost"), &Arc::new(h2)).unwrap();
    assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]));
}

/// A TLS 1.3 client that presents `cert`/`key` (DER) when asked.
fn client_with_cert(cert: Vec<u8>, key: &rcgen::KeyPair) -> Arc<ClientConfig> {
    client_with_chain(vec![cert], key)
}

/// [`client_with_cert`] sending a chain (leaf first).
fn client_with_chain(chain: Vec<Vec<u8>>, key: &rcgen::KeyPair) -> Arc<ClientConfig> {
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let mut c = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert { schemes: all_schemes() }))
        .with_client_auth_cert(chain.into_iter().map(Into::into).collect(), key)
        .unwrap();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// Client certificates as nginx judges them: the handshake completes whatever the
/// client sends; `ssl_verify_client on` answers 496 without a certificate and 495
/// with one that does not verify (nginx's 400 pages, `[info]` lines); `optional`
/// takes none; `optional_no_ca` takes one from an unknown CA; the variables say what
/// came.
#[test]
fn client_certificates() {
    let dir = tempdir("tls-mtls");
    make_cert(&dir, "s", &["localhost"], false);
    let pki = Pki::new(&dir, "ca");
    let stranger = Pki::new(&dir, "stranger");
    let (good, good_key) = pki.leaf(&dir, "client", &["client.test"]);
    let (bad, bad_key) = stranger.leaf(&dir, "other", &["other.test"]);
    let show = "location / { return 200 \"$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn\"; }";
    let start = |mode: &str| {
        let port = free_port();
        let server = format!(
            "ssl_verify_client {mode}; ssl_client_certificate {}/ca.crt; {show}",
            dir.display()
        );
        let r = Ringx::start(
            &one_server(&dir, port, "", "access_log off;", &server),
            &[],
            addr_of(port),
        );
        (r, port)
    };
    let good_cfg = client_with_cert(good, &good_key);
    let bad_cfg = client_with_cert(bad, &bad_key);
    let (_on, on) = start("on");
    let get = |port: u16, cfg: &Arc<ClientConfig>| get_tls(addr_of(port), Some("localhost"), cfg, "/").unwrap().0;
    let r = get(on, &good_cfg);
    assert_eq!(
        (r.status, r.text()),
        (200, "SUCCESS|CN=client.test|CN=test CA ca".to_string())
    );
    let r = get(on, &tls13());
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("No required SSL certificate was sent"),
        "{}",
        r.text()
    );
    let r = get(on, &bad_cfg);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("The SSL certificate error"), "{}", r.text());
    wait_for("the [info] lines", Duration::from_secs(5), || {
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        log.contains("[info]")
            && log.contains("client sent no required SSL certificate while reading client request headers")
            && log.contains("client SSL certificate verify error: (20:unable to get local issuer certificate) while reading client request headers")
    });
    let (_opt, opt) = start("optional");
    assert_eq!(get(opt, &tls13()).text(), "NONE||");
    assert_eq!(get(opt, &bad_cfg).status, 400);
    let (_noca, noca) = start("optional_no_ca");
    assert_eq!(
        get(noca, &bad_cfg).text(),
        "FAILED:unable to get local issuer certificate|CN=other.test|CN=test CA stranger"
    );
    // `on` needs a CA to verify against (nginx's -t rule).
    let err = refused_at_t(&dir, "ssl_verify_client on; location / { return 200; }");
    assert!(err.contains("no ssl_client_certificate for ssl_verify_client"), "{err}");
}

/// `ssl_session_ticket_key`: two ringx instances given the same key file resume
/// each other's sessions (a fleet behind one name); without it they cannot. A file
/// of the wrong size is `[emerg]`.
#[test]
fn shared_ticket_key_files() {
    let dir = tempdir("tls-ticketkey");
    make_cert(&dir, "s", &["localhost"], false);
    std::fs::write(dir.join("ticket.key"), (0..80u8).collect::<Vec<_>>()).unwrap();
    let show = "location / { return 200 \"$ssl_session_reused\"; }";
    let start = |extra: &str| {
        let port = free_port();
        let conf = one_server(&dir, port, "", "access_log off;", &format!("{extra} {show}"));
        (Ringx::start(&conf, &[], addr_of(port)), port)
    };
    let key = format!("ssl_session_ticket_key {}/ticket.key;", dir.display());
    let (_a, a) = start(&key);
    let (_b, b) = start(&key);
    let (_c, c) = start("");
    let resumed = |first: u16, second: u16| {
        let cfg = tls13();
        assert_eq!(
            get_tls(addr_of(first), Some("localhost"), &cfg, "/").unwrap().0.text(),
            "."
        );
        get_tls(addr_of(second), Some("localhost"), &cfg, "/").unwrap().0.text()
    };
    assert_eq!(resumed(a, b), "r", "a ticket from one instance resumes on the other");
    assert_eq!(resumed(a, c), ".", "an instance without the key file cannot resume it");
    std::fs::write(dir.join("short.key"), [1u8; 32]).unwrap();
    let err = refused_at_t(
        &dir,
        &format!("ssl_session_ticket_key {}/short.key; {show}", dir.display()),
    );
    assert!(err.contains("must be 48 or 80 bytes"), "{err}");
}

/// `ringx -t` on [`one_server`] with `server` in its server block: must fail; its stderr.
fn refused_at_t(dir: &Path, server: &str) -> String {
    let t = dir.join("t.conf");
    std::fs::write(&t, one_server(dir, free_port(), "", "", server)).unwrap();
    let (rc, _, err) = ringx_cmd(&["-t", "-c", t.to_str().unwrap()]);
    assert_ne!(rc, 0, "-t accepted: {server}");
    err
}

/// Records the OCSP response the server staples (and accepts any certificate).
#[derive(Debug)]
struct Staple(std::sync::Mutex<Option<Vec<u8>>>);

impl ServerCertVerifier for Staple {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        ocsp: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(ocsp.to_vec());
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &sig_algs())
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &sig_algs())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        all_schemes()
    }
}

/// `ssl_stapling on` with `ssl_stapling_file`: the file's OCSP response is stapled
/// to the handshake; without a file nothing is (ringx does not fetch responses: a
/// `[warn]` at start-up says so).
#[test]
fn ocsp_stapling_from_file() {
    let dir = tempdir("tls-staple");
    make_cert(&dir, "s", &["localhost"], false);
    std::fs::write(dir.join("ocsp.der"), b"\x30\x03\x0a\x01\x00").unwrap();
    let stapled = |server: &str| {
        let port = free_port();
        let conf = one_server(
            &dir,
            port,
            "",
            "access_log off;",
            &format!("{server} location / {{ return 200; }}"),
        );
        let r = Ringx::start(&conf, &[], addr_of(port));
        let v = Arc::new(Staple(std::sync::Mutex::new(None)));
        let mut cfg = (*tls13()).clone();
        cfg.dangerous().set_certificate_verifier(v.clone());
        let (resp, _) = get_tls(addr_of(port), Some("localhost"), &Arc::new(cfg), "/").unwrap();
        assert_eq!(resp.status, 200);
        let got = v.0.lock().unwrap().clone().unwrap_or_default();
        (got, r.stderr())
    };
    let file = format!(
        "ssl_stapling on; ssl_stapling_verify on; ssl_stapling_file {}/ocsp.der;",
        dir.display()
    );
    assert_eq!(stapled(&file).0, b"\x30\x03\x0a\x01\x00");
    let (none, stderr) = stapled("ssl_stapling on; resolver 127.0.0.1 valid=300s;");
    assert!(none.is_empty());
    assert!(stderr.contains("\"ssl_stapling\" ignored"), "{stderr}");
    std::fs::write(dir.join("junk.der"), b"not an OCSP response").unwrap();
    let err = refused_at_t(
        &dir,
        &format!(
            "ssl_stapling on; ssl_stapling_file {}/junk.der; location / {{ return 200; }}",
            dir.display()
        ),
    );
    assert!(err.contains("d2i_OCSP_RESPONSE_bio("), "{err}");
}

/// Mozilla's SSL configuration generator, "intermediate" profile for nginx (its
/// text, with this test's paths and ports, and a location to answer): `-t` accepts
/// it, HTTP/2 and HSTS are served, the port-80 server redirects.
#[test]
fn mozilla_intermediate_config() {
    let dir = tempdir("tls-mozilla");
    make_cert(&dir, "s", &["localhost"], false);
    let dh = dir.join("dhparam");
    std::fs::write(&dh, "-----BEGIN DH PARAMETERS-----\nMIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n-----END DH PARAMETERS-----\n").unwrap();
    let (tls, plain) = (free_port(), free_port());
    let d = dir.display();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid; events {{}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{plain} default_server;
        location / {{
            return 301 https://$host$request_uri;
        }}
    }}
    server {{
        listen 127.0.0.1:{tls} ssl;
        http2 on;
        ssl_certificate {d}/s.crt;
        ssl_certificate_key {d}/s.key;
        # HSTS (ngx_http_headers_module is required) (63072000 seconds)
        add_header Strict-Transport-Security \"max-age=63072000\" always;
        location / {{ return 200 \"secure\\n\"; }}
    }}
    # intermediate configuration
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    # see also ssl_session_ticket_key alternative to stateful session cache
    ssl_session_timeout 1d;
    ssl_session_cache shared:MozSSL:10m;  # about 40000 sessions
    # curl https://ssl-config.mozilla.org/ffdhe2048.txt > /path/to/dhparam
    ssl_dhparam \"{dh}\";
    # OCSP stapling
    ssl_stapling on;
    ssl_stapling_verify on;
    # verify chain of trust of OCSP response using Root CA and Intermediate certs
    ssl_trusted_certificate {d}/s.crt;
    # replace with the IP address of your resolver;
    # async 'resolver' is important for proper operation of OCSP stapling
    resolver 127.0.0.1;
}}",
        dh = dh.display()
    );
    let t = dir.join("t.conf");
    std::fs::write(&t, &conf).unwrap();
    let (rc, _, err) = ringx_cmd(&["-t", "-c", t.to_str().unwrap()]);
    assert_eq!(rc, 0, "{err}");
    let _r = Ringx::start(&conf, &[], addr_of(tls));
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--http2", "--cacert"])
        .arg(dir.join("s.crt"))
        .args(["--resolve", &format!("localhost:{tls}:127.0.0.1")])
        .arg(format!("https://localhost:{tls}/"))
        .output()
        .expect("curl is missing: run scripts/install-test-deps.sh");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(text.contains("strict-transport-security: max-age=63072000"), "{text}");
    assert!(text.ends_with("secure\n"), "{text}");
    let red = get(addr_of(plain), "/x?y", "localhost").unwrap();
    assert_eq!(
        (red.status, red.header("location")),
        (301, Some("https://localhost/x?y"))
    );
}

/// The finer points of client certificates, as nginx: a chain through one
/// intermediate verifies at the default depth 1 (OpenSSL counts intermediates); a
/// subject with control and non-ASCII characters is escaped as RFC 2253 flags do
/// (it cannot break a header or log line); a serial is printed without DER's
/// leading zero; `optional_no_ca` without a CA file never says SUCCESS; a request
/// whose Host names another server than the handshake's SNI, where that server
/// verifies clients, gets 421.
#[test]
fn client_certificate_details() {
    let dir = tempdir("tls-mtls2");
    make_cert(&dir, "s", &["localhost", "a.test", "b.test"], false);
    let pki = Pki::new(&dir, "ca");
    let (mid, mid_der) = pki.intermediate(&dir, "mid");
    let (via_mid, via_key) = mid.leaf(&dir, "c1", &["chained.test"]);
    let (odd, odd_key) = pki.leaf_with(&dir, "c2", &["odd.test"], |p| {
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "x\r\nX-Admin: 1,é");
        p.serial_number = Some(rcgen::SerialNumber::from(vec![0x8f, 0x01]));
    });
    let show = "location / { return 200 \"$ssl_client_verify|$ssl_client_s_dn|$ssl_client_serial\"; }";
    let ca = format!("ssl_client_certificate {}/ca.crt;", dir.display());
    let start = |server: &str| {
        let port = free_port();
        let conf = one_server(&dir, port, "", "access_log off;", server);
        (Ringx::start(&conf, &[], addr_of(port)), port)
    };
    let (_on, on) = start(&format!("ssl_verify_client on; {ca} {show}"));
    let chained = client_with_chain(vec![via_mid, mid_der], &via_key);
    let r = get_tls(addr_of(on), Some("localhost"), &chained, "/").unwrap().0;
    assert_eq!(r.text().split('|').next(), Some("SUCCESS"), "{}", r.text());
    let r = get_tls(
        addr_of(on),
        Some("localhost"),
        &client_with_cert(odd.clone(), &odd_key),
        "/",
    )
    .unwrap()
    .0;
    assert_eq!(r.text(), "SUCCESS|CN=x\\0D\\0AX-Admin: 1\\,\\C3\\A9|8F01");
    let (_d0, d0) = start(&format!("ssl_verify_client on; ssl_verify_depth 0; {ca} {show}"));
    let r = get_tls(addr_of(d0), Some("localhost"), &chained, "/").unwrap().0;
    assert_eq!(r.status, 400, "a chain deeper than ssl_verify_depth");
    let (_noca, noca) = start(&format!("ssl_verify_client optional_no_ca; {show}"));
    let r = get_tls(addr_of(noca), Some("localhost"), &client_with_cert(odd, &odd_key), "/")
        .unwrap()
        .0;
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("FAILED:unable to get local issuer certificate|"),
        "{}",
        r.text()
    );
    // Two servers on one address: SNI a.test (no verification), Host b.test (verifies).
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "daemon off; error_log {d}/error.log info; pid {d}/pid2; events {{}}
         http {{ access_log off;
           server {{ listen 127.0.0.1:{port} ssl; server_name a.test; ssl_certificate {d}/s.crt; ssl_certificate_key {d}/s.key;
                     location / {{ return 200 a; }} }}
           server {{ listen 127.0.0.1:{port} ssl; server_name b.test; ssl_certificate {d}/s.crt; ssl_certificate_key {d}/s.key;
                     ssl_verify_client optional; {ca} location / {{ return 200 b; }} }} }}"
    );
    let _two = Ringx::start(&conf, &[], addr_of(port));
    let raw = b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n";
    let (r, _) = fetch(addr_of(port), Some("a.test"), &tls13(), raw).unwrap();
    assert_eq!(r.status, 421);
    let (r, _) = fetch(addr_of(port), Some("b.test"), &tls13(), raw).unwrap();
    assert_eq!((r.status, r.text()), (200, "b".to_string()));
}

/// `ssl_password_file`: an encrypted PKCS#8 key (as `openssl genpkey -aes-256-cbc`
/// writes it) is decrypted with the file's passphrases, tried line by line; without
/// the file, or with only wrong passphrases, `-t` fails at the key's line.
#[test]
fn encrypted_key_with_password_file() {
    let dir = tempdir("tls-pass");
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl is missing: run scripts/install-test-deps.sh")
            .status
            .success();
        assert!(ok, "openssl {args:?}");
    };
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-aes-256-cbc",
        "-pass",
        "pass:secret",
        "-out",
        "s.key",
    ]);
    run(&[
        "req",
        "-x509",
        "-key",
        "s.key",
        "-passin",
        "pass:secret",
        "-subj",
        "/CN=localhost",
        "-days",
        "2",
        "-out",
        "s.crt",
    ]);
    std::fs::write(dir.join("pw"), "wrong\nsecret\n").unwrap();
    std::fs::write(dir.join("badpw"), "wrong\n").unwrap();
    let d = dir.display();
    let port = free_port();
    let conf = one_server(
        &dir,
        port,
        "",
        "access_log off;",
        &format!("ssl_password_file {d}/pw; location / {{ return 200 unlocked; }}"),
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    let (r, _) = get_tls(addr_of(port), Some("localhost"), &tls13(), "/").unwrap();
    assert_eq!(r.text(), "unlocked");
    let err = refused_at_t(&dir, "location / { return 200; }");
    assert!(
        err.contains("the key is encrypted and no \"ssl_password_file\" is set"),
        "{err}"
    );
    let err = refused_at_t(
        &dir,
        &format!("ssl_password_file {d}/badpw; location / {{ return 200; }}"),
    );
    assert!(err.contains("bad decrypt"), "{err}");
}
