//! `proxy_ssl_*` (http, server, location): a location's merged settings for TLS to
//! its upstreams (`proxy_pass https://`) → [`UpstreamTls`], with nginx's defaults:
//! no SNI (`proxy_ssl_server_name off`), no verification (`proxy_ssl_verify off`),
//! verify depth 1, TLSv1.2 and TLSv1.3, `DEFAULT` ciphers, sessions reused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::settings::Settings;
use super::Builder;
use crate::config::model::UpstreamTls;
use crate::config::tls::{client_config, ProxyTlsSettings};
use crate::config::ConfError;

/// A new id for each location's TLS settings (the keep-alive pool keeps connections
/// made with different settings apart).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Builder<'_> {
    /// The TLS of `proxy_pass https://` at `at` (its file and line, for errors).
    pub(super) fn upstream_tls(
        &mut self,
        set: &Settings,
        at: &(Arc<str>, usize),
    ) -> Result<Arc<UpstreamTls>, ConfError> {
        let err = |m: &str| ConfError::at(m.to_string(), &at.0, at.1);
        let verify = set.proxy_ssl_verify.unwrap_or(false);
        let trusted = set
            .proxy_ssl_trusted_certificate
            .as_ref()
            .and_then(|v| v.last().cloned());
        if verify && trusted.is_none() {
            return Err(err("no proxy_ssl_trusted_certificate for proxy_ssl_verify"));
        }
        let certificate = set.proxy_ssl_certificate.as_ref().and_then(|v| v.last().cloned());
        let key = set.proxy_ssl_certificate_key.as_ref().and_then(|v| v.last().cloned());
        if let (Some(c), None) = (&certificate, &key) {
            return Err(ConfError::at(
                format!(
                    "no \"proxy_ssl_certificate_key\" is defined for certificate \"{}\"",
                    c.path.display()
                ),
                &c.file,
                c.line,
            ));
        }
        let (tls12, tls13) = set.proxy_ssl_protocols.unwrap_or((true, true));
        let s = ProxyTlsSettings {
            verify,
            depth: set.proxy_ssl_verify_depth.unwrap_or(1).min(100) as usize,
            trusted,
            tls12,
            tls13,
            ciphers: set.proxy_ssl_ciphers.clone().unwrap_or_else(|| "DEFAULT".into()),
            certificate,
            key,
            session_reuse: set.proxy_ssl_session_reuse.unwrap_or(true),
            send_sni: set.proxy_ssl_server_name.unwrap_or(false),
            passwords: set.proxy_ssl_password_file.as_ref().and_then(|v| v.last().cloned()),
            at: at.clone(),
        };
        let config = client_config(&s)?;
        Ok(Arc::new(UpstreamTls {
            config,
            name: set.proxy_ssl_name.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }))
    }
}
