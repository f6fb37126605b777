//! OpenSSL cipher strings (`ssl_ciphers`) over the TLS 1.2 suites rustls offers, and
//! the OpenSSL names nginx logs (`$ssl_cipher`).
//!
//! As in OpenSSL, the string governs TLS 1.2 only (TLS 1.3's suites are always
//! offered) and is a list of elements separated by `:`, `,` or spaces: `NAME` adds
//! the suites it names (elements may also be separated by `;`), `!NAME` removes them for good, `-NAME` removes them (a later
//! element may add them back), `+NAME` moves them to the end, `A+B` names the suites
//! both name, `@STRENGTH` sorts by key length, `@SECLEVEL=n` is ignored. Names are
//! suite names (`ECDHE-RSA-AES128-GCM-SHA256`) and OpenSSL's aliases (`HIGH`,
//! `ECDHE`, `aRSA`, `AESGCM`, `CHACHA20`, ...). An alias for what rustls does not
//! have (`DHE`, `kRSA`, `3DES`, `MD5`, `aNULL`, ...) names no suite, so `!MD5` and
//! `DHE-RSA-...` entries change nothing, as they change nothing for these suites
//! in OpenSSL; a string that leaves no suite at all is an error.

use rustls::{CipherSuite, SupportedCipherSuite};

/// The OpenSSL name of a suite (TLS 1.3 suites keep their IANA names, as OpenSSL).
pub fn openssl_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "",
    }
}

/// OpenSSL's default order for these suites (strongest first, ECDSA before RSA).
const BASE_ORDER: &[CipherSuite] = &[
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// Whether OpenSSL's alias or suite name `name` covers the suite named `suite` (an
/// OpenSSL TLS 1.2 name: `ECDHE-{ECDSA|RSA}-{cipher}`).
fn covers(name: &str, suite: &str) -> bool {
    let ecdsa = suite.starts_with("ECDHE-ECDSA-");
    let cipher = suite
        .trim_start_matches("ECDHE-ECDSA-")
        .trim_start_matches("ECDHE-RSA-");
    let aes128 = cipher.starts_with("AES128");
    let aes256 = cipher.starts_with("AES256");
    let chacha = cipher.starts_with("CHACHA20");
    match name {
        n if n.eq_ignore_ascii_case(suite) => true,
        "ALL" | "DEFAULT" | "HIGH" | "TLSv1.2" | "ECDHE" | "EECDH" | "ECDH" | "kECDHE" | "kEECDH" => true,
        "aECDSA" | "ECDSA" => ecdsa,
        "aRSA" => !ecdsa,
        "AES" => aes128 || aes256,
        "AESGCM" => aes128 || aes256,
        "AES128" => aes128,
        "AES256" => aes256,
        "CHACHA20" => chacha,
        // SHA256, SHA384, SHA1/SHA are MAC aliases: these AEAD suites have none.
        _ => false,
    }
}

/// The TLS 1.2 suites of `available` that the cipher string `spec` selects, in its
/// order; `Err` when it selects none.
pub fn select(spec: &str, available: &[SupportedCipherSuite]) -> Result<Vec<SupportedCipherSuite>, String> {
    let base: Vec<&'static str> = BASE_ORDER
        .iter()
        .filter(|s| available.iter().any(|a| a.suite() == **s))
        .map(|s| openssl_name(*s))
        .collect();
    let mut list: Vec<&'static str> = Vec::new();
    let mut banned: Vec<&'static str> = Vec::new();
    for el in spec.split([':', ',', ' ', ';']).filter(|e| !e.is_empty()) {
        if el == "@STRENGTH" {
            // Key length, longest first; a stable sort keeps the rest of the order.
            list.sort_by_key(|s| if s.contains("AES128") { 1 } else { 0 });
            continue;
        }
        if el.starts_with('@') {
            continue;
        }
        let (op, names) = match el.as_bytes()[0] {
            b'!' | b'-' | b'+' => (el.as_bytes()[0], &el[1..]),
            _ => (b' ', el),
        };
        let named: Vec<&'static str> = base
            .iter()
            .copied()
            .filter(|s| names.split('+').all(|n| covers(n, s)))
            .collect();
        match op {
            b'!' => {
                list.retain(|s| !named.contains(s));
                banned.extend(named);
            }
            b'-' => list.retain(|s| !named.contains(s)),
            b'+' => {
                let (moved, kept): (Vec<_>, Vec<_>) = list.iter().partition(|s| named.contains(s));
                list = kept;
                list.extend(moved);
            }
            _ => {
                for s in named {
                    if !list.contains(&s) && !banned.contains(&s) {
                        list.push(s);
                    }
                }
            }
        }
    }
    if list.is_empty() {
        return Err(format!(
            "\"ssl_ciphers\" \"{spec}\" selects none of the TLS 1.2 cipher suites ringx offers ({})",
            base.join(":")
        ));
    }
    Ok(list
        .iter()
        .filter_map(|n| available.iter().find(|a| openssl_name(a.suite()) == *n).copied())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Result<String, String> {
        let all = rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES;
        select(spec, all).map(|v| v.iter().map(|s| openssl_name(s.suite())).collect::<Vec<_>>().join(":"))
    }

    #[test]
    fn openssl_strings() {
        // nginx's default selects every ECDHE suite, strongest first.
        assert_eq!(
            names("HIGH:!aNULL:!MD5").unwrap(),
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
             ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
        );
        // Mozilla's intermediate list: its order, the DHE entries name nothing here.
        assert_eq!(
            names(
                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
                 ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"
            )
            .unwrap(),
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
             ECDHE-RSA-AES256-GCM-SHA384"
        );
        assert_eq!(names("EECDH+AESGCM:EDH+AESGCM").unwrap().matches("GCM").count(), 4);
        assert_eq!(names("ECDHE+aRSA+AES128").unwrap(), "ECDHE-RSA-AES128-GCM-SHA256");
        // `!` is for good, `-` may be added back, `+` moves to the end.
        assert_eq!(names("ALL:!CHACHA20:CHACHA20").unwrap().matches("CHACHA").count(), 0);
        assert_eq!(names("ALL:-CHACHA20:CHACHA20").unwrap().matches("CHACHA").count(), 2);
        assert!(names("ALL:+AES256").unwrap().ends_with("ECDHE-RSA-AES256-GCM-SHA384"));
        // MAC aliases name none of the AEAD suites (checked with `openssl ciphers -v`).
        assert_eq!(
            names("HIGH:!aNULL:!MD5:!SHA1:!SHA256:!SHA384")
                .unwrap()
                .matches(':')
                .count(),
            5
        );
        assert_eq!(
            names("ECDH+AESGCM:DH+AESGCM:ECDH+AES256:DH+AES256:RSA+AESGCM:RSA+AES:!aNULL:!MD5:!DSS")
                .unwrap()
                .matches("GCM")
                .count(),
            4
        );
        assert!(names("SHA256").is_err() && names("AEAD").is_err());
        assert!(names("DHE-RSA-AES128-GCM-SHA256:AES128-SHA").is_err());
        assert!(names("ALL:!ECDHE").is_err());
    }
}
