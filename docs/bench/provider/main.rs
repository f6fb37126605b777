// In-memory rustls provider benchmark: ring vs aws-lc-rs.
// Build with exactly one of --features ring / --features aws.
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(all(feature = "ring", not(feature = "aws")))]
mod p {
    pub use rustls::crypto::ring::{cipher_suite, default_provider, kx_group, Ticketer};
    pub const NAME: &str = "ring";
}
#[cfg(all(feature = "aws", not(feature = "ring")))]
mod p {
    pub use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group, Ticketer};
    pub const NAME: &str = "aws-lc-rs";
}

fn provider(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    let mut pr = p::default_provider();
    pr.cipher_suites = vec![suite];
    pr.kx_groups = vec![p::kx_group::X25519];
    Arc::new(pr)
}

fn load(kind: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, RootCertStore) {
    let d = concat!(env!("CARGO_MANIFEST_DIR"), "/certs");
    let leaf = CertificateDer::from_pem_file(format!("{d}/{kind}-leaf.pem")).unwrap();
    let ca = CertificateDer::from_pem_file(format!("{d}/{kind}-ca.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{d}/{kind}-leaf.key")).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    (vec![leaf, ca], key, roots)
}

fn configs(kind: &str, suite: SupportedCipherSuite, resume: bool) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let (chain, key, roots) = load(kind);
    let pr = provider(suite);
    let mut sc = ServerConfig::builder_with_provider(pr.clone())
        .with_safe_default_protocol_versions().unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key).unwrap();
    let mut cc = ClientConfig::builder_with_provider(pr)
        .with_safe_default_protocol_versions().unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if resume {
        sc.ticketer = p::Ticketer::new().unwrap();
        sc.session_storage = Arc::new(NoServerSessionStorage {});
        sc.send_tls13_tickets = 1;
    } else {
        sc.session_storage = Arc::new(NoServerSessionStorage {});
        sc.send_tls13_tickets = 0;
        cc.resumption = Resumption::disabled();
    }
    (Arc::new(sc), Arc::new(cc))
}

fn feed_server(s: &mut ServerConnection, buf: &mut Vec<u8>) {
    let mut rd = &buf[..];
    while !rd.is_empty() {
        s.read_tls(&mut rd).unwrap();
        s.process_new_packets().unwrap();
    }
    buf.clear();
}
fn feed_client(c: &mut ClientConnection, buf: &mut Vec<u8>) {
    let mut rd = &buf[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
    }
    buf.clear();
}

/// One handshake; returns server-side CPU time (time inside server calls only).
fn handshake(sc: &Arc<ServerConfig>, cc: &Arc<ClientConfig>) -> (ServerConnection, ClientConnection, Duration) {
    let mut srv_t = Duration::ZERO;
    let t = Instant::now();
    let mut s = ServerConnection::new(sc.clone()).unwrap();
    srv_t += t.elapsed();
    let mut c = ClientConnection::new(cc.clone(), "localhost".try_into().unwrap()).unwrap();
    let mut buf = Vec::with_capacity(8192);
    loop {
        while c.wants_write() { c.write_tls(&mut buf).unwrap(); }
        let progressed_c = !buf.is_empty();
        let t = Instant::now();
        feed_server(&mut s, &mut buf);
        while s.wants_write() { s.write_tls(&mut buf).unwrap(); }
        srv_t += t.elapsed();
        let progressed_s = !buf.is_empty();
        feed_client(&mut c, &mut buf);
        if !progressed_c && !progressed_s && !c.is_handshaking() && !s.is_handshaking() { break; }
    }
    (s, c, srv_t)
}

fn bench_hs(label: &str, kind: &str, suite: SupportedCipherSuite, resume: bool, secs: f64) {
    let (sc, cc) = configs(kind, suite, resume);
    // warm-up (and prime the ticket cache)
    for _ in 0..20 {
        let (s, c, _) = handshake(&sc, &cc);
        let _ = &c;
        assert_eq!(s.negotiated_cipher_suite().unwrap().suite(), suite.suite());
    }
    let (_, c, _) = handshake(&sc, &cc);
    let want = if resume { rustls::HandshakeKind::Resumed } else { rustls::HandshakeKind::Full };
    assert_eq!(c.handshake_kind(), Some(want), "{label}");
    let mut n = 0u64;
    let mut srv = Duration::ZERO;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let (_, _c, st) = handshake(&sc, &cc);
        srv += st;
        n += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    println!("RESULT {} {} total_hs_per_s={:.1} server_hs_per_s={:.1} n={}", p::NAME, label, n as f64 / wall, n as f64 / srv.as_secs_f64(), n);
}

fn bench_bulk(label: &str, suite: SupportedCipherSuite, mib: usize) {
    let (sc, cc) = configs("ecdsa", suite, false);
    let (mut s, mut c, _) = handshake(&sc, &cc);
    assert_eq!(c.negotiated_cipher_suite().unwrap().suite(), suite.suite());
    let rec = vec![0x5au8; 16384];
    let mut out = vec![0u8; 16384];
    let mut tls = Vec::with_capacity(20000);
    let iters = mib * 64;
    let run = |iters: usize, s: &mut ServerConnection, c: &mut ClientConnection, tls: &mut Vec<u8>, out: &mut [u8]| {
        for _ in 0..iters {
            assert_eq!(s.writer().write(&rec).unwrap(), rec.len());
            while s.wants_write() { s.write_tls(tls).unwrap(); }
            feed_client(c, tls);
            let mut got = 0;
            while got < rec.len() { got += c.reader().read(&mut out[got..]).unwrap(); }
        }
    };
    run(256, &mut s, &mut c, &mut tls, &mut out); // warm-up 4 MiB
    let t = Instant::now();
    run(iters, &mut s, &mut c, &mut tls, &mut out);
    let el = t.elapsed().as_secs_f64();
    println!("RESULT {} {} MBps={:.1}", p::NAME, label, (iters * 16384) as f64 / 1e6 / el);
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    use p::cipher_suite as cs;
    let secs = 2.0;
    if what == "all" || what == "hs" {
        bench_hs("tls13_x25519_ecdsa_p256_full", "ecdsa", cs::TLS13_AES_128_GCM_SHA256, false, secs);
        bench_hs("tls13_x25519_rsa2048_full", "rsa", cs::TLS13_AES_128_GCM_SHA256, false, secs);
        bench_hs("tls12_ecdhe_rsa_aes128gcm_full", "rsa", cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, false, secs);
        bench_hs("tls13_x25519_ecdsa_resumed_ticket", "ecdsa", cs::TLS13_AES_128_GCM_SHA256, true, secs);
        bench_hs("tls13_x25519_rsa2048_resumed_ticket", "rsa", cs::TLS13_AES_128_GCM_SHA256, true, secs);
    }
    if what == "all" || what == "bulk" {
        bench_bulk("bulk_tls13_aes128gcm", cs::TLS13_AES_128_GCM_SHA256, 512);
        bench_bulk("bulk_tls13_aes256gcm", cs::TLS13_AES_256_GCM_SHA384, 512);
        bench_bulk("bulk_tls13_chacha20poly1305", cs::TLS13_CHACHA20_POLY1305_SHA256, 512);
    }
}
