//! A server's TLS settings (`ssl_*`) → a rustls `ServerConfig`, built at `-t`, start-up
//! and reload, so that every certificate and key is loaded and checked before a worker
//! sees the configuration. One `Arc<ServerConfig>` serves every worker: its session
//! cache and ticket keys are the same whichever worker a resumed connection lands on.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::{ClientHello, NoServerSessionStorage, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use super::ConfError;

/// A path with the directive that named it, for errors at its line.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    pub file: Arc<str>,
    pub line: usize,
}

impl Located {
    fn err(&self, msg: String) -> ConfError {
        ConfError::at(msg, &self.file, self.line)
    }
}

/// `ssl_session_cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCache {
    /// `off`: no cache, and clients are told so.
    Off,
    /// `none` (nginx's default): no server-side cache.
    None,
    /// `builtin[:N]` and/or `shared:NAME:SIZE`: this many sessions, in the zone
    /// `name` (shared by the servers that name it) or the server's own.
    Sessions { name: Option<String>, count: usize },
}

/// A server's merged `ssl_*` settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub certificates: Vec<Located>,
    pub keys: Vec<Located>,
    /// Protocol versions, `TLSv1.2`/`TLSv1.3`.
    pub tls12: bool,
    pub tls13: bool,
    pub ciphers: String,
    pub prefer_server_ciphers: bool,
    pub ecdh_curve: String,
    pub session_cache: SessionCache,
    pub session_timeout: Duration,
    pub session_tickets: bool,
    pub buffer_size: usize,
    pub verify_client: VerifyClient,
    /// `ssl_client_certificate`: trusted, and named to clients as acceptable CAs.
    pub client_certificate: Option<Located>,
    /// `ssl_trusted_certificate`: trusted, not named.
    pub trusted_certificate: Option<Located>,
    pub verify_depth: usize,
    /// `ssl_session_ticket_key` files: the first encrypts, all decrypt.
    pub ticket_keys: Vec<Located>,
    /// `ssl_stapling on` with `ssl_stapling_file`: the OCSP response to staple.
    pub stapling_file: Option<Located>,
    /// `ssl_password_file`: passphrases for encrypted keys, tried in turn.
    pub passwords: Option<Located>,
}

/// `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    Off,
    On,
    Optional,
    OptionalNoCa,
}

/// A server's client-certificate checks (`ssl_verify_client` not off). As nginx, the
/// handshake asks for a certificate and completes whatever the client sends; the
/// certificate is verified once it is done ([`verify_client`]) and each request's
/// server decides (495, 496).
#[derive(Debug)]
pub struct ClientAuth {
    pub mode: VerifyClient,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    /// A CA file is loaded (`optional_no_ca` may have none).
    has_roots: bool,
    depth: usize,
    /// The acceptable CAs named in the CertificateRequest.
    hints: Vec<rustls::DistinguishedName>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

/// What a client's certificate is, for `$ssl_client_*` and the request check.
#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    /// `$ssl_client_verify`: `SUCCESS`, `FAILED:reason`, `NONE`.
    pub verify: String,
    /// The verification failed only for want of a trusted issuer (`optional_no_ca`
    /// takes such a certificate).
    pub untrusted_only: bool,
    /// OpenSSL's verify code when it failed (20, 10, ...; 0 for others).
    pub code: u16,
    /// `$ssl_client_s_dn`, `$ssl_client_i_dn` (RFC 2253), `$ssl_client_serial` (hex).
    pub s_dn: String,
    pub i_dn: String,
    pub serial: String,
}

/// The crypto provider every TLS configuration uses.
/// aws-lc-rs, chosen by measurement (docs/benchmarks.md): 1.4× ring's ECDSA
/// handshakes, 2× its RSA ones, 1.5× its AES-GCM throughput on this machine.
pub fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Builds the rustls configuration of a server with certificates.
/// `cache`: the session cache `ssl_session_cache` names, if any.
pub fn server_config(
    s: &TlsSettings,
    alpn: &[&[u8]],
    cache: Option<Arc<Cache>>,
    auth: Option<&ClientAuth>,
) -> Result<Arc<ServerConfig>, ConfError> {
    let first = &s.certificates[0];
    let mut p = provider();
    let tls12 = super::ciphers::select(&s.ciphers, &p.cipher_suites).map_err(|e| first.err(e))?;
    let tls13: Vec<_> = p
        .cipher_suites
        .iter()
        .copied()
        .filter(|c| c.tls13().is_some())
        .collect();
    p.cipher_suites = tls13.into_iter().chain(tls12).collect();
    p.kx_groups = curves(&s.ecdh_curve, &p).map_err(|e| first.err(e))?;
    let keys = load_pairs(s, &p)?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if s.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if s.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&versions)
        .map_err(|e| first.err(format!("ssl_protocols: {e}")))?
        .with_client_cert_verifier(match auth {
            Some(a) => Arc::new(Ask {
                hints: a.hints.clone(),
                algs: a.algs,
            }),
            None => rustls::server::WebPkiClientVerifier::no_client_auth(),
        })
        .with_cert_resolver(Arc::new(Certificates(keys)));
    cfg.ignore_client_order = s.prefer_server_ciphers;
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    // nginx's size is the plaintext of one record; rustls's counts the 5-byte header.
    cfg.max_fragment_size = (s.buffer_size < 16384).then(|| (s.buffer_size + 5).max(32));
    // TLS 1.3 resumes through NewSessionTicket either way: an encrypted ticket
    // (`ssl_session_tickets`), or a cache key (`ssl_session_cache`), as OpenSSL.
    if !s.session_tickets && cache.is_none() {
        cfg.send_tls13_tickets = 0;
    }
    cfg.session_storage = match cache {
        None => Arc::new(NoServerSessionStorage {}),
        Some(inner) => Arc::new(Expiring {
            inner,
            timeout: s.session_timeout,
        }),
    };
    if s.session_tickets {
        cfg.ticketer = Arc::new(Tickets {
            inner: if s.ticket_keys.is_empty() {
                ticket_keys(first)?
            } else {
                Arc::new(FileTickets::load(&s.ticket_keys)?)
            },
            timeout: s.session_timeout,
        });
    }
    Ok(Arc::new(cfg))
}

/// `ssl_ecdh_curve`: `auto` (the provider's list) or OpenSSL names joined by `:`.
pub fn curves(spec: &str, p: &CryptoProvider) -> Result<Vec<&'static dyn rustls::crypto::SupportedKxGroup>, String> {
    if spec == "auto" {
        return Ok(p.kx_groups.clone());
    }
    let mut out = Vec::new();
    for name in spec.split(':') {
        let group = match name {
            "X25519" | "x25519" => rustls::NamedGroup::X25519,
            "prime256v1" | "secp256r1" | "P-256" => rustls::NamedGroup::secp256r1,
            "secp384r1" | "P-384" => rustls::NamedGroup::secp384r1,
            "X25519MLKEM768" => rustls::NamedGroup::X25519MLKEM768,
            "secp521r1" | "P-521" | "X448" | "x448" => continue,
            _ => return Err(format!("Unknown curve name \"{name}\" in \"ssl_ecdh_curve\"")),
        };
        if let Some(g) = p.kx_groups.iter().find(|g| g.name() == group) {
            out.push(*g);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "\"ssl_ecdh_curve\" \"{spec}\" names no curve ringx offers (X25519, prime256v1, secp384r1)"
        ));
    }
    Ok(out)
}

/// Each `ssl_certificate` with its `ssl_certificate_key`, loaded and checked.
fn load_pairs(s: &TlsSettings, p: &CryptoProvider) -> Result<Vec<Arc<CertifiedKey>>, ConfError> {
    let mut out = Vec::new();
    for (i, cert) in s.certificates.iter().enumerate() {
        let Some(key) = s.keys.get(i) else {
            return Err(cert.err(format!(
                "no \"ssl_certificate_key\" is defined for certificate \"{}\"",
                cert.path.display()
            )));
        };
        let chain = load_chain(cert)?;
        let der = load_key(key, s.passwords.as_ref())?;
        let mut ck = CertifiedKey::from_der(chain, der, p).map_err(|e| {
            key.err(format!(
                "cannot use certificate key \"{}\" with certificate \"{}\": {e}",
                key.path.display(),
                cert.path.display()
            ))
        })?;
        if let Some(f) = &s.stapling_file {
            let ocsp = std::fs::read(&f.path).map_err(|e| {
                f.err(format!(
                    "open() \"{}\" failed ({})",
                    f.path.display(),
                    super::parser::os_err(&e)
                ))
            })?;
            // An OCSP response is one DER SEQUENCE (nginx: d2i_OCSP_RESPONSE_bio()).
            let der = x509_parser::der_parser::parse_der(&ocsp);
            if !matches!(&der, Ok((rest, o)) if rest.is_empty() && o.header.tag() == x509_parser::der_parser::asn1_rs::Tag::Sequence)
            {
                return Err(f.err(format!("d2i_OCSP_RESPONSE_bio(\"{}\") failed", f.path.display())));
            }
            ck.ocsp = Some(ocsp);
        }
        out.push(Arc::new(ck));
    }
    Ok(out)
}

fn load_chain(cert: &Located) -> Result<Vec<CertificateDer<'static>>, ConfError> {
    let bad = |e: String| cert.err(format!("cannot load certificate \"{}\": {e}", cert.path.display()));
    let chain = CertificateDer::pem_file_iter(&cert.path)
        .map_err(|e| bad(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_error(e)))?;
    let Some(leaf) = chain.first() else {
        return Err(bad("no certificate in the file".into()));
    };
    // The leaf must be a certificate one can use: parsed here, not at the first handshake.
    rustls::server::ParsedCertificate::try_from(leaf).map_err(|e| bad(e.to_string()))?;
    Ok(chain)
}

/// A private key from a PEM file. An encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`,
/// what `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write) is decrypted with
/// the passphrases of `passwords`, one per line, tried in order, as nginx does.
fn load_key(key: &Located, passwords: Option<&Located>) -> Result<PrivateKeyDer<'static>, ConfError> {
    let cannot = |why: String| key.err(format!("cannot load certificate key \"{}\": {why}", key.path.display()));
    let text = std::fs::read_to_string(&key.path).map_err(|e| cannot(super::parser::os_err(&e)))?;
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(cannot(
            "a key encrypted in OpenSSL's traditional format is not supported: convert it with \"openssl pkcs8 -topk8\"".into(),
        ));
    }
    if !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| cannot(pem_error(e)));
    }
    let Some(pw) = passwords else {
        return Err(cannot(
            "the key is encrypted and no \"ssl_password_file\" is set".into(),
        ));
    };
    let list = std::fs::read_to_string(&pw.path).map_err(|e| {
        pw.err(format!(
            "open() \"{}\" failed ({})",
            pw.path.display(),
            super::parser::os_err(&e)
        ))
    })?;
    let (_, doc) = pkcs8::der::SecretDocument::from_pem(&text).map_err(|e| cannot(e.to_string()))?;
    let enc = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| cannot(e.to_string()))?;
    for line in list.lines() {
        if let Ok(plain) = enc.decrypt(line) {
            return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
        }
    }
    Err(cannot(format!(
        "no passphrase of \"{}\" decrypts it (bad decrypt)",
        pw.path.display()
    )))
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM data of this kind in the file".into(),
        e => format!("{e:?}"),
    }
}

/// Several certificates (RSA and ECDSA, as nginx allows): the first whose key can sign
/// with a scheme the client offers.
#[derive(Debug)]
struct Certificates(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .or_else(|| self.0.first())
            .cloned()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A value stamped with the time it was made, so that `ssl_session_timeout` holds:
/// `stamp ‖ value`.
fn stamp(value: &[u8]) -> Vec<u8> {
    let mut v = now_secs().to_be_bytes().to_vec();
    v.extend_from_slice(value);
    v
}

fn unstamp(v: Vec<u8>, timeout: Duration) -> Option<Vec<u8>> {
    let made = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    (now_secs().saturating_sub(made) <= timeout.as_secs()).then(|| v[8..].to_vec())
}

/// A session cache (`ssl_session_cache`), shared by the servers that name its zone.
pub type Cache = rustls::server::ServerSessionMemoryCache;

/// The session cache with nginx's `ssl_session_timeout`.
#[derive(Debug)]
struct Expiring {
    inner: Arc<Cache>,
    timeout: Duration,
}

impl StoresServerSessions for Expiring {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, stamp(&value))
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.get(key)?, self.timeout)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.take(key)?, self.timeout)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

/// The process's ticket keys (random, rotated every 6 hours by rustls, tickets of
/// the previous key still accepted): made once, so that tickets outlive a reload.
fn ticket_keys(at: &Located) -> Result<Arc<dyn ProducesTickets>, ConfError> {
    static KEYS: OnceLock<Arc<dyn ProducesTickets>> = OnceLock::new();
    if let Some(k) = KEYS.get() {
        return Ok(k.clone());
    }
    let k = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| at.err(format!("session ticket keys: {e}")))?;
    Ok(KEYS.get_or_init(|| k).clone())
}

/// Tickets under the keys of `ssl_session_ticket_key` files, which servers (and ringx
/// instances) that share the files accept from each other. A file is nginx's: 48
/// bytes (a 16-byte name, 16 of AES key, 16 of HMAC key) or 80 (name, 32 of HMAC key,
/// 32 of AES key: nginx's order differs between the two); ringx
/// seals tickets with AES-GCM under the file's AES key (128 or 256 bits), the name
/// in front: `name ‖ nonce ‖ ciphertext ‖ tag`. The ticket format is ringx's own:
/// the files, not the tickets, are what carries over from nginx.
struct FileTickets(Vec<([u8; 16], aws_lc_rs::aead::LessSafeKey)>);

impl std::fmt::Debug for FileTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileTickets({} keys)", self.0.len())
    }
}

impl FileTickets {
    fn load(files: &[Located]) -> Result<FileTickets, ConfError> {
        use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_128_GCM, AES_256_GCM};
        let mut keys = Vec::new();
        for f in files {
            let b = std::fs::read(&f.path).map_err(|e| {
                f.err(format!(
                    "open() \"{}\" failed ({})",
                    f.path.display(),
                    super::parser::os_err(&e)
                ))
            })?;
            let (alg, aes) = match b.len() {
                48 => (&AES_128_GCM, &b[16..32]),
                80 => (&AES_256_GCM, &b[48..80]),
                _ => return Err(f.err(format!("\"{}\" must be 48 or 80 bytes", f.path.display()))),
            };
            let key = UnboundKey::new(alg, aes).map_err(|e| f.err(format!("ssl_session_ticket_key: {e}")))?;
            keys.push((b[..16].try_into().expect("16 bytes"), LessSafeKey::new(key)));
        }
        Ok(FileTickets(keys))
    }
}

impl ProducesTickets for FileTickets {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        12 * 3600
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, Nonce, NONCE_LEN};
        let (name, key) = self.0.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name), &mut sealed)
            .ok()?;
        let mut out = Vec::with_capacity(16 + NONCE_LEN + sealed.len());
        out.extend_from_slice(name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{Aad, Nonce, NONCE_LEN};
        let (name, rest) = cipher.split_at_checked(16)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let (_, key) = self.0.iter().find(|(n, _)| n == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(name), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// Session tickets that expire after `ssl_session_timeout`: the issue time travels
/// inside the encrypted ticket.
#[derive(Debug)]
struct Tickets {
    inner: Arc<dyn ProducesTickets>,
    timeout: Duration,
}

impl ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        self.timeout.as_secs().min(u32::MAX as u64) as u32
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamp(plain))
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.decrypt(cipher)?, self.timeout)
    }
}

/// A location's merged `proxy_ssl_*` settings.
#[derive(Debug, Clone)]
pub struct ProxyTlsSettings {
    pub verify: bool,
    /// `proxy_ssl_verify_depth`: certificates above the upstream's, up to the trusted one.
    pub depth: usize,
    pub trusted: Option<Located>,
    pub tls12: bool,
    pub tls13: bool,
    pub ciphers: String,
    pub certificate: Option<Located>,
    pub key: Option<Located>,
    pub session_reuse: bool,
    pub send_sni: bool,
    /// `proxy_ssl_password_file`.
    pub passwords: Option<Located>,
    /// The `proxy_pass` line, for errors that belong to no file.
    pub at: (Arc<str>, usize),
}

/// The rustls client configuration of a location's upstream TLS, every file loaded
/// and checked now.
pub fn client_config(s: &ProxyTlsSettings) -> Result<Arc<ClientConfig>, ConfError> {
    let at = |m: String| ConfError::at(m, &s.at.0, s.at.1);
    let mut p = provider();
    let tls12 = super::ciphers::select(&s.ciphers, &p.cipher_suites).map_err(at)?;
    let tls13: Vec<_> = p
        .cipher_suites
        .iter()
        .copied()
        .filter(|c| c.tls13().is_some())
        .collect();
    p.cipher_suites = tls13.into_iter().chain(tls12).collect();
    let p = Arc::new(p);
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if s.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if s.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let verifier: Arc<dyn ServerCertVerifier> = match (&s.trusted, s.verify) {
        (Some(t), true) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(t)? {
                roots
                    .add(c)
                    .map_err(|e| t.err(format!("cannot use certificate \"{}\": {e}", t.path.display())))?;
            }
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), p.clone())
                .build()
                .map_err(|e| t.err(format!("proxy_ssl_trusted_certificate: {e}")))?;
            Arc::new(Depth { inner, depth: s.depth })
        }
        _ => Arc::new(NoVerify(p.signature_verification_algorithms)),
    };
    let b = ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| at(format!("proxy_ssl_protocols: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match (&s.certificate, &s.key) {
        (Some(c), Some(k)) => {
            let chain = load_chain(c)?;
            let der = load_key(k, s.passwords.as_ref())?;
            b.with_client_auth_cert(chain, der).map_err(|e| {
                k.err(format!(
                    "cannot use certificate key \"{}\" with certificate \"{}\": {e}",
                    k.path.display(),
                    c.path.display()
                ))
            })?
        }
        _ => b.with_no_client_auth(),
    };
    cfg.enable_sni = s.send_sni;
    if !s.session_reuse {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(cfg))
}

/// Every certificate of a PEM file (a CA bundle).
fn load_certs(f: &Located) -> Result<Vec<CertificateDer<'static>>, ConfError> {
    let bad = |e: String| f.err(format!("cannot load certificate \"{}\": {e}", f.path.display()));
    let certs = CertificateDer::pem_file_iter(&f.path)
        .map_err(|e| bad(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_error(e)))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs)
}

/// `proxy_ssl_verify off` (nginx's default): any certificate is taken; the
/// handshake's signatures are still checked (they prove the key, not the name).
#[derive(Debug)]
struct NoVerify(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
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
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `proxy_ssl_verify on`: webpki's verification against `proxy_ssl_trusted_certificate`,
/// and nginx's depth: the certificates the upstream sends above its own, plus the
/// trusted one, at most `proxy_ssl_verify_depth` (OpenSSL counts the built chain;
/// this counts what the upstream sent, which is the same for a server that sends its
/// chain without the root).
#[derive(Debug)]
struct Depth {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    depth: usize,
}

impl ServerCertVerifier for Depth {
    fn verify_server_cert(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(leaf, intermediates, name, ocsp, now)?;
        if self::intermediates(intermediates) > self.depth {
            return Err(rustls::Error::General("certificate chain too long".into()));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server's [`ClientAuth`], `None` with `ssl_verify_client off`; the CA files are
/// loaded now (`on` and `optional` need one, as nginx).
pub fn client_auth(s: &TlsSettings) -> Result<Option<Arc<ClientAuth>>, ConfError> {
    if s.verify_client == VerifyClient::Off {
        return Ok(None);
    }
    let first = &s.certificates[0];
    let mut roots = rustls::RootCertStore::empty();
    let mut hints = Vec::new();
    for (f, named) in [(&s.client_certificate, true), (&s.trusted_certificate, false)] {
        let Some(f) = f else { continue };
        for c in load_certs(f)? {
            if named {
                if let Ok(a) = webpki_anchor(&c) {
                    hints.push(a);
                }
            }
            roots
                .add(c)
                .map_err(|e| f.err(format!("cannot use certificate \"{}\": {e}", f.path.display())))?;
        }
    }
    if roots.is_empty() && s.verify_client != VerifyClient::OptionalNoCa {
        return Err(first.err("no ssl_client_certificate for ssl_verify_client".into()));
    }
    let p = Arc::new(provider());
    let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = if roots.is_empty() {
        Arc::new(Ask {
            hints: Vec::new(),
            algs: p.signature_verification_algorithms,
        })
    } else {
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), p.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| first.err(format!("ssl_client_certificate: {e}")))?
    };
    Ok(Some(Arc::new(ClientAuth {
        mode: s.verify_client,
        has_roots: !hints.is_empty() || s.trusted_certificate.is_some(),
        verifier,
        depth: s.verify_depth,
        hints,
        algs: p.signature_verification_algorithms,
    })))
}

/// The subject of a CA certificate, as a CertificateRequest names it.
fn webpki_anchor(c: &CertificateDer<'_>) -> Result<rustls::DistinguishedName, ()> {
    let (_, x) = x509_parser::parse_x509_certificate(c.as_ref()).map_err(drop)?;
    Ok(rustls::DistinguishedName::from(
        x.tbs_certificate.subject.as_raw().to_vec(),
    ))
}

/// Verifies a client's chain (leaf first) after the handshake, with the server's
/// CAs and `ssl_verify_depth`; reads what the variables show.
pub fn verify_client(auth: &ClientAuth, chain: &[CertificateDer<'_>]) -> ClientCert {
    let Some(leaf) = chain.first() else {
        return ClientCert {
            verify: "NONE".into(),
            ..ClientCert::default()
        };
    };
    let mut out = ClientCert::default();
    if let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf.as_ref()) {
        out.s_dn = rfc2253(&x.tbs_certificate.subject);
        out.i_dn = rfc2253(&x.tbs_certificate.issuer);
        out.serial = serial_hex(x.tbs_certificate.raw_serial());
    }
    let res = if auth.has_roots {
        auth.verifier.verify_client_cert(leaf, &chain[1..], UnixTime::now())
    } else {
        // `optional_no_ca` without a CA file: nothing can vouch for it.
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    };
    let failed = match res {
        Ok(_) if intermediates(&chain[1..]) > auth.depth => Some(22),
        Ok(_) => None,
        Err(rustls::Error::InvalidCertificate(e)) => {
            out.untrusted_only = matches!(e, rustls::CertificateError::UnknownIssuer);
            Some(openssl_code(&e))
        }
        Err(_) => Some(0),
    };
    (out.verify, out.code) = match failed {
        None => ("SUCCESS".into(), 0),
        Some(code) => (format!("FAILED:{}", openssl_reason(code)), code),
    };
    out
}

/// The intermediates a chain's path has (its self-issued certificates, a root the
/// peer sent along, do not count): OpenSSL's depth, which allows N of them.
pub fn intermediates(sent: &[CertificateDer<'_>]) -> usize {
    sent.iter()
        .filter(|c| {
            x509_parser::parse_x509_certificate(c.as_ref()).map_or(true, |(_, x)| {
                x.tbs_certificate.subject.as_raw() != x.tbs_certificate.issuer.as_raw()
            })
        })
        .count()
}

/// A serial number as OpenSSL prints it: hex, uppercase, no leading zero bytes.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02X}")).collect()
}

/// OpenSSL's verify code for a certificate error (0: another error).
pub fn openssl_code(e: &rustls::CertificateError) -> u16 {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => 20,
        C::Expired | C::ExpiredContext { .. } => 10,
        C::NotValidYet | C::NotValidYetContext { .. } => 9,
        C::Revoked => 23,
        C::BadSignature => 7,
        _ => 0,
    }
}

/// OpenSSL's words for a verify code.
pub fn openssl_reason(code: u16) -> &'static str {
    match code {
        20 => "unable to get local issuer certificate",
        10 => "certificate has expired",
        9 => "certificate is not yet valid",
        23 => "certificate revoked",
        7 => "certificate signature failure",
        22 => "certificate chain too long",
        _ => "certificate verify failed",
    }
}

/// A distinguished name as RFC 2253 writes it (nginx's `$ssl_client_s_dn`): the last
/// RDN first, `,` between them, `+` inside one, `\` before the special characters.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let reg = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter_rdn() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|a| {
                let key = reg
                    .get(a.attr_type())
                    .map(|e| match e.sn() {
                        "commonName" => "CN".to_string(),
                        "countryName" => "C".to_string(),
                        "localityName" => "L".to_string(),
                        "stateOrProvinceName" => "ST".to_string(),
                        "organizationName" => "O".to_string(),
                        "organizationalUnitName" => "OU".to_string(),
                        "domainComponent" => "DC".to_string(),
                        "emailAddress" => "emailAddress".to_string(),
                        "givenName" => "GN".to_string(),
                        "surname" => "SN".to_string(),
                        "streetAddress" => "street".to_string(),
                        "userId" => "UID".to_string(),
                        sn => sn.to_string(),
                    })
                    .unwrap_or_else(|| a.attr_type().to_id_string());
                let v = dn_value(a);
                format!("{key}={v}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

/// An attribute's value as OpenSSL's RFC 2253 flags write it: strings as UTF-8
/// (BMPString converted), then escaped ([`escape_dn`]); another type as `#` and the
/// hex of its DER.
fn dn_value(a: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    let v = a.attr_value();
    if v.header.tag() == x509_parser::der_parser::asn1_rs::Tag::BmpString {
        let units: Vec<u16> = v
            .data
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return escape_dn(&String::from_utf16_lossy(&units));
    }
    match a.as_str() {
        Ok(s) => escape_dn(s),
        Err(_) => {
            let mut out = String::from("#");
            for b in v.header.raw_tag().unwrap_or(&[]).iter().chain(v.data.iter()) {
                out.push_str(&format!("{b:02X}"));
            }
            out
        }
    }
}

/// RFC 2253 escaping as OpenSSL does it (`ASN1_STRFLGS_RFC2253`): `\` before
/// `, + " \ < > ;`, a leading space or `#` and a trailing space; control bytes and
/// bytes of non-ASCII characters as `\XX`. A value cannot break a header line or a
/// log line.
fn escape_dn(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = String::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        let edge = (i == 0 && (c == b' ' || c == b'#')) || (i + 1 == b.len() && c == b' ');
        if !(0x20..0x7f).contains(&c) {
            out.push_str(&format!("\\{c:02X}"));
        } else {
            if edge || matches!(c, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';') {
                out.push('\\');
            }
            out.push(c as char);
        }
    }
    out
}

/// The handshake's side of client certificates: asks for one (naming the CAs of
/// `ssl_client_certificate`), takes whatever comes or nothing, and checks the
/// signature that proves the client holds the key; the chain is judged after the
/// handshake ([`verify_client`]), so that a bad certificate gets nginx's 495 page
/// instead of a failed handshake.
#[derive(Debug)]
struct Ask {
    hints: Vec<rustls::DistinguishedName>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for Ask {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
