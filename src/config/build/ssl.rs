//! The `ssl_*` directives (http and server): their parsers, nginx's defaults, and the
//! server's TLS configuration built from them (`config::tls`), with one session cache
//! per `shared:NAME` zone as in nginx.

use std::sync::Arc;
use std::time::Duration;

use super::args::{flag, nargs, one_arg, parse_size_str};
use super::settings::Settings;
use super::Builder;
use crate::config::model::LogLevel;
use crate::config::parser::Directive;
use crate::config::tls::{self, Located, SessionCache, TlsSettings, VerifyClient};
use crate::config::ConfError;

type Parsed<T> = Result<T, ConfError>;

/// `ssl_certificate FILE`, `ssl_certificate_key FILE`: one more of the list (nginx
/// pairs them in order), relative to the conf prefix.
pub(super) fn conf_path_list(b: &mut Builder<'_>, d: &Directive, prev: Option<Vec<Located>>) -> Parsed<Vec<Located>> {
    one_arg(d)?;
    let a = &d.args[0];
    if a.contains('$') {
        return Err(d.err(format!("variables in \"{}\" are not supported", d.name)));
    }
    if a.starts_with("data:") || a.starts_with("engine:") || a.starts_with("store:") {
        return Err(d.err(format!("\"{}\" from \"{a}\" is not supported: use a PEM file", d.name)));
    }
    let mut v = prev.unwrap_or_default();
    v.push(located(b, d, a));
    Ok(v)
}

fn located(b: &Builder<'_>, d: &Directive, a: &str) -> Located {
    Located {
        path: b.env.conf_path(a),
        file: d.file.clone(),
        line: d.line,
    }
}

/// `ssl_protocols VERSION…`: (TLSv1.2, TLSv1.3). The older versions nginx accepts are
/// accepted with a `[warn]`: rustls does not implement them, so clients that ask for
/// them are refused.
pub(super) fn ssl_protocols(b: &mut Builder<'_>, d: &Directive, _: Option<(bool, bool)>) -> Parsed<(bool, bool)> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let (mut v12, mut v13) = (false, false);
    for a in &d.args {
        match a.as_str() {
            "TLSv1.2" => v12 = true,
            "TLSv1.3" => v13 = true,
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => b.warnings.push((
                LogLevel::Warn,
                d.err(format!(
                    "\"{a}\" in \"ssl_protocols\" is not offered: ringx (rustls) implements TLSv1.2 and TLSv1.3 only"
                )),
            )),
            _ => return Err(d.err(format!("invalid value \"{a}\" in \"ssl_protocols\" directive"))),
        }
    }
    if !v12 && !v13 {
        return Err(d.err("\"ssl_protocols\" leaves no protocol ringx offers (TLSv1.2, TLSv1.3)"));
    }
    Ok((v12, v13))
}

/// `ssl_ciphers STRING`: checked here, so that a string naming no suite ringx offers
/// is an error at its line.
pub(super) fn cipher_list(_: &mut Builder<'_>, d: &Directive, _: Option<String>) -> Parsed<String> {
    one_arg(d)?;
    crate::config::ciphers::select(&d.args[0], &tls::provider().cipher_suites).map_err(|e| d.err(e))?;
    Ok(d.args[0].clone())
}

/// `ssl_ecdh_curve auto | NAME[:NAME…]`, checked here.
pub(super) fn curve_list(_: &mut Builder<'_>, d: &Directive, _: Option<String>) -> Parsed<String> {
    one_arg(d)?;
    tls::curves(&d.args[0], &tls::provider()).map_err(|e| d.err(e))?;
    Ok(d.args[0].clone())
}

/// `ssl_session_cache off | none | [builtin[:N]] [shared:NAME:SIZE]`.
pub(super) fn session_cache(_: &mut Builder<'_>, d: &Directive, _: Option<SessionCache>) -> Parsed<SessionCache> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let invalid = |a: &str| d.err(format!("invalid session cache \"{a}\""));
    let (mut count, mut name) = (0usize, None);
    for a in &d.args {
        match a.as_str() {
            "off" | "none" if d.args.len() == 1 => {
                return Ok(if a == "off" {
                    SessionCache::Off
                } else {
                    SessionCache::None
                });
            }
            "builtin" => count += 20480,
            _ if a.starts_with("builtin:") => {
                count += a[8..].parse::<usize>().map_err(|_| invalid(a))?;
            }
            _ if a.starts_with("shared:") => {
                let (n, size) = a[7..].split_once(':').ok_or_else(|| invalid(a))?;
                let bytes = parse_size_str(size)
                    .filter(|_| !n.is_empty())
                    .ok_or_else(|| invalid(a))?;
                // nginx: "one megabyte can store about 4000 sessions".
                count += (bytes as usize).saturating_mul(4000) / (1024 * 1024);
                name = Some(n.to_string());
            }
            _ => return Err(invalid(a)),
        }
    }
    Ok(SessionCache::Sessions { name, count })
}

/// `ssl_dhparam FILE`: the file must exist, as for nginx; rustls offers no
/// finite-field Diffie-Hellman suites, so it is not used (a `[notice]`).
pub(super) fn dhparam(b: &mut Builder<'_>, d: &Directive, _: Option<Located>) -> Parsed<Located> {
    one_arg(d)?;
    let l = located(b, d, &d.args[0]);
    std::fs::metadata(&l.path).map_err(|e| d.err(format!("BIO_new_file(\"{}\") failed ({e})", l.path.display())))?;
    b.warnings.push((
        LogLevel::Notice,
        d.err("\"ssl_dhparam\" is not used: rustls has no DHE cipher suites (ECDHE is used)"),
    ));
    Ok(l)
}

/// `ssl_early_data`: `off` only, for now.
pub(super) fn only_off(_: &mut Builder<'_>, d: &Directive, _: Option<bool>) -> Parsed<bool> {
    if flag(d)? {
        return Err(d.err(format!("\"{} on\" is not supported yet", d.name)));
    }
    Ok(false)
}

/// `ssl_verify_client on|off|optional|optional_no_ca`.
pub(super) fn verify_client(_: &mut Builder<'_>, d: &Directive, _: Option<VerifyClient>) -> Parsed<VerifyClient> {
    one_arg(d)?;
    Ok(match d.args[0].as_str() {
        "off" => VerifyClient::Off,
        "on" => VerifyClient::On,
        "optional" => VerifyClient::Optional,
        "optional_no_ca" => VerifyClient::OptionalNoCa,
        a => return Err(d.err(format!("invalid value \"{a}\" in \"{}\" directive", d.name))),
    })
}

impl Settings {
    /// The merged level's TLS settings with nginx's defaults, when it has certificates.
    fn tls(&self) -> Option<TlsSettings> {
        let certificates = self.ssl_certificate.clone().filter(|c| !c.is_empty())?;
        let (tls12, tls13) = self.ssl_protocols.unwrap_or((true, true));
        Some(TlsSettings {
            certificates,
            keys: self.ssl_certificate_key.clone().unwrap_or_default(),
            tls12,
            tls13,
            ciphers: self.ssl_ciphers.clone().unwrap_or_else(|| "HIGH:!aNULL:!MD5".into()),
            prefer_server_ciphers: self.ssl_prefer_server_ciphers.unwrap_or(false),
            ecdh_curve: self.ssl_ecdh_curve.clone().unwrap_or_else(|| "auto".into()),
            session_cache: self.ssl_session_cache.clone().unwrap_or(SessionCache::None),
            session_timeout: self.ssl_session_timeout.unwrap_or(Duration::from_secs(300)),
            session_tickets: self.ssl_session_tickets.unwrap_or(true),
            buffer_size: self.ssl_buffer_size.unwrap_or(16384) as usize,
            verify_client: self.ssl_verify_client.unwrap_or(VerifyClient::Off),
            client_certificate: self.ssl_client_certificate.as_ref().and_then(|v| v.last().cloned()),
            trusted_certificate: self.ssl_trusted_certificate.as_ref().and_then(|v| v.last().cloned()),
            verify_depth: self.ssl_verify_depth.unwrap_or(1).min(100) as usize,
            ticket_keys: self.ssl_session_ticket_key.clone().unwrap_or_default(),
            passwords: self.ssl_password_file.as_ref().and_then(|v| v.last().cloned()),
            stapling_file: self
                .ssl_stapling_file
                .as_ref()
                .filter(|_| self.ssl_stapling == Some(true))
                .and_then(|v| v.last().cloned()),
        })
    }
}

/// A server's TLS: its rustls configuration (`None` without `ssl_certificate`), its
/// `ssl_reject_handshake`, and its client-certificate checks.
pub(super) type ServerTls = (Option<Arc<rustls::ServerConfig>>, bool, Option<Arc<tls::ClientAuth>>);

impl Builder<'_> {
    /// A merged server level's TLS configuration (`None` without `ssl_certificate`)
    /// and its `ssl_reject_handshake`.
    pub(super) fn server_tls(&mut self, set: &Settings) -> Result<ServerTls, ConfError> {
        let reject = set.ssl_reject_handshake.unwrap_or(false);
        let Some(t) = set.tls() else {
            return Ok((None, reject, None));
        };
        let auth = tls::client_auth(&t)?;
        if set.ssl_stapling == Some(true) && t.stapling_file.is_none() {
            // nginx fetches responses from the certificate's OCSP responder; ringx
            // does not yet, so nothing is stapled: what nginx does while a responder
            // cannot be reached.
            let first = &t.certificates[0];
            self.warnings.push((
                LogLevel::Warn,
                ConfError::at(
                    "\"ssl_stapling\" ignored, ringx does not fetch OCSP responses: use \"ssl_stapling_file\"",
                    &first.file,
                    first.line,
                ),
            ));
        }
        let cache = match &t.session_cache {
            SessionCache::Sessions { name: Some(n), count } => Some(
                self.session_caches
                    .entry(n.clone())
                    .or_insert_with(|| rustls::server::ServerSessionMemoryCache::new((*count).max(1)))
                    .clone(),
            ),
            SessionCache::Sessions { name: None, count } => {
                Some(rustls::server::ServerSessionMemoryCache::new((*count).max(1)))
            }
            SessionCache::Off | SessionCache::None => None,
        };
        Ok((
            Some(tls::server_config(
                &t,
                &[b"http/1.1", b"http/1.0"],
                cache,
                auth.as_deref(),
            )?),
            reject,
            auth,
        ))
    }
}
