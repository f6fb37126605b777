//! HTTP Basic authentication (nginx's ngx_http_auth_basic_module): the credentials
//! a request carries, and whether a password file accepts them.
//!
//! Where it sits: the access phase of the content loop (after `allow`/`deny`, as
//! `satisfy` combines them), and `$remote_user`. A request that names its own
//! target on a forward-proxy server (CONNECT, as nginx 1.31; and, ringx's addition,
//! absolute-form) authenticates with `Proxy-Authorization` and is asked with 407 and
//! `Proxy-Authenticate`; any other with `Authorization`, 401 and `WWW-Authenticate`.
//!
//! Password files are read per request, as nginx does (so a changed file applies at
//! once). The schemes are nginx's `ngx_crypt`: `$apr1$` (Apache's MD5), `{PLAIN}`,
//! `{SHA}`, `{SSHA}`, and anything else through the system's `crypt_r(3)` (DES,
//! `$1$`, `$5$`, `$6$`, `$y$`, `$2b$` as libxcrypt has them).

use std::ffi::{CStr, CString};
use std::io::Read;
use std::path::Path;

use base64::Engine;

use crate::proto::h1::request::{Method, RequestHead};

/// The user and password of a `Basic` header value; `None` when it is not one
/// (nginx's `ngx_http_auth_basic_user`).
pub fn basic(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"Basic ") {
        return None;
    }
    let mut enc = &value[6..];
    while let [b' ', rest @ ..] = enc {
        enc = rest;
    }
    // ngx_decode_base64: up to the first '=', the padding optional.
    let enc = &enc[..enc.iter().position(|&c| c == b'=').unwrap_or(enc.len())];
    if enc.is_empty() {
        return None;
    }
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let raw = LENIENT.decode(enc).ok()?;
    let colon = raw.iter().position(|&c| c == b':')?;
    if colon == 0 {
        return None;
    }
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// Whether this request authenticates to the proxy itself: a CONNECT, or an
/// absolute-form request to a server with `tunnel_pass` (a forward proxy).
pub fn proxy_auth(head: &RequestHead, forward_proxy: bool) -> bool {
    head.method() == Method::Connect || (forward_proxy && head.target.start != head.path.start)
}

/// The credentials header this request uses, decoded.
pub fn credentials(head: &RequestHead, buf: &[u8], proxy: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let name = if proxy { "proxy-authorization" } else { "authorization" };
    basic(head.header(buf, name)?)
}

/// What checking a password file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// The user is not in the file, or the password does not match: ask again.
    Refused(String),
    /// The file is missing (403, logged at error) or unreadable (500, crit).
    NoFile(u16, String),
}

/// Looks `user` up in the htpasswd-style `file` (`user:hash[:comment]`, `#`
/// comments) and checks `pass` against its hash.
pub fn check(file: &Path, user: &[u8], pass: &[u8]) -> Check {
    let mut text = Vec::new();
    if let Err(e) = std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut text)) {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            403
        } else {
            500
        };
        return Check::NoFile(
            code,
            format!(
                "open() \"{}\" failed ({})",
                file.display(),
                crate::config::parser::os_err(&e)
            ),
        );
    }
    for line in text.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(user).and_then(|r| r.strip_prefix(b":")) else {
            continue;
        };
        let hash = rest.split(|&c| c == b':').next().unwrap_or(b"");
        return if matches(hash, pass) {
            Check::Ok
        } else {
            Check::Refused(format!("user \"{}\": password mismatch", String::from_utf8_lossy(user)))
        };
    }
    Check::Refused(format!(
        "user \"{}\" was not found in \"{}\"",
        String::from_utf8_lossy(user),
        file.display()
    ))
}

/// Whether `pass` hashes to `hash` (nginx's `ngx_crypt` schemes).
pub fn matches(hash: &[u8], pass: &[u8]) -> bool {
    let eq = |a: &[u8], b: &[u8]| a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0;
    if let Some(h) = hash.strip_prefix(b"{PLAIN}") {
        return eq(h, pass);
    }
    if let Some(h) = hash.strip_prefix(b"{SHA}") {
        return eq(h, b64(&sha1(&[pass])).as_bytes());
    }
    if let Some(h) = hash.strip_prefix(b"{SSHA}") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(h) else {
            return false;
        };
        if raw.len() < 20 {
            return false;
        }
        let (digest, salt) = raw.split_at(20);
        return eq(digest, &sha1(&[pass, salt]));
    }
    if hash.starts_with(b"$apr1$") {
        return apr1(pass, hash).is_some_and(|h| eq(h.as_bytes(), hash));
    }
    system_crypt(pass, hash).is_some_and(|h| eq(&h, hash))
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut c = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        c.update(p);
    }
    c.finish().as_ref().to_vec()
}

/// Apache's `$apr1$SALT$HASH` (the MD5-based crypt with its own magic), as
/// nginx's `ngx_crypt_apr1`.
fn apr1(pass: &[u8], setting: &[u8]) -> Option<String> {
    use md5::{Digest, Md5};
    let salt = setting.strip_prefix(b"$apr1$")?;
    let salt = &salt[..salt.iter().position(|&c| c == b'$').unwrap_or(salt.len()).min(8)];
    let mut alt = Md5::new();
    alt.update(pass);
    alt.update(salt);
    alt.update(pass);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(pass);
    ctx.update(b"$apr1$");
    ctx.update(salt);
    let mut n = pass.len();
    while n > 0 {
        ctx.update(&alt[..n.min(16)]);
        n = n.saturating_sub(16);
    }
    let mut i = pass.len();
    while i != 0 {
        if i & 1 != 0 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pass[..1.min(pass.len())]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 != 0 {
            c.update(pass);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pass);
        }
        if i & 1 != 0 {
            c.update(fin);
        } else {
            c.update(pass);
        }
        fin = c.finalize();
    }
    const ITOA: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = format!("$apr1${}$", String::from_utf8_lossy(salt));
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f = |a: usize, b: usize, c: usize| (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]);
    to64(f(0, 6, 12), 4);
    to64(f(1, 7, 13), 4);
    to64(f(2, 8, 14), 4);
    to64(f(3, 9, 15), 4);
    to64(f(4, 10, 5), 4);
    to64(u32::from(fin[11]), 2);
    Some(out)
}

#[repr(C)]
struct CryptData {
    // libxcrypt's `struct crypt_data` is 32768 bytes, opaque.
    opaque: [u8; 32768],
}

#[link(name = "crypt")]
extern "C" {
    fn crypt_r(phrase: *const libc::c_char, setting: *const libc::c_char, data: *mut CryptData) -> *mut libc::c_char;
}

/// The system's `crypt_r` (libxcrypt): DES, `$1$`, `$5$`, `$6$`, `$y$`, `$2b$`.
fn system_crypt(pass: &[u8], setting: &[u8]) -> Option<Vec<u8>> {
    let (p, s) = (CString::new(pass).ok()?, CString::new(setting).ok()?);
    let mut data = Box::new(CryptData { opaque: [0; 32768] });
    // SAFETY: `p` and `s` are NUL-terminated and outlive the call; `data` is a
    // zeroed crypt_data of libxcrypt's size, owned by this call, as crypt_r asks.
    let out = unsafe { crypt_r(p.as_ptr(), s.as_ptr(), &mut *data) };
    if out.is_null() {
        return None;
    }
    // SAFETY: crypt_r returns a NUL-terminated string inside `data`, alive here.
    let h = unsafe { CStr::from_ptr(out) }.to_bytes().to_vec();
    // libxcrypt's failure token starts with '*'.
    (!h.starts_with(b"*")).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_headers() {
        assert_eq!(
            basic(b"Basic dXNlcjpwYTpzcw=="),
            Some((b"user".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(basic(b"basic   dXNlcjo="), Some((b"user".to_vec(), b"".to_vec())));
        assert_eq!(basic(b"Basic OnBhc3M="), None);
        assert_eq!(basic(b"Bearer abc"), None);
        assert_eq!(basic(b"Basic !!!"), None);
        // As ngx_decode_base64: the padding may be left out, and stops the value.
        assert_eq!(
            basic(b"Basic dXNlcjpwYTpzcw"),
            Some((b"user".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            basic(b"Basic dXNlcjpwYTpzcw==junk"),
            Some((b"user".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(basic(b"Basic\tdXNlcjo="), None);
    }

    #[test]
    fn schemes_nginx_takes() {
        // Made with `openssl passwd` and `htpasswd`.
        assert!(matches(b"$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/", b"secret"));
        assert!(!matches(b"$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/", b"Secret"));
        assert!(matches(b"$1$saltsalt$9xy1btjgzLYfb7hivXtC//", b"secret"));
        assert!(matches(
            b"$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            b"secret"
        ));
        assert!(matches(b"{PLAIN}secret", b"secret"));
        assert!(matches(b"{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", b"secret"));
        let ssha = format!(
            "{{SSHA}}{}",
            b64(&[sha1(&[b"secret", b"salt"]), b"salt".to_vec()].concat())
        );
        assert!(matches(ssha.as_bytes(), b"secret"));
        assert!(!matches(b"", b""));
        assert!(!matches(b"*", b""));
    }
}
