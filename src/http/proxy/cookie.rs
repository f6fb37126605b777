//! `proxy_cookie_domain`, `proxy_cookie_path`, `proxy_cookie_flags`: the
//! `Set-Cookie` fields of an upstream's response, rewritten as nginx rewrites them.
//!
//! Where it sits: the upstream's response head on its way to the client (see
//! `pass_headers`). The field is split into `name=value` and attributes at `;` (spaces
//! around them trimmed); `domain=` and `path=` values go through their rules (the first
//! that matches), the first `proxy_cookie_flags` line whose cookie matches adds,
//! changes or removes `Secure`, `HttpOnly` and `SameSite`; when anything changed, the
//! field is written again as `a=b; c=d; e`, else it goes as it came.

use super::{Client, Req};
use crate::config::model::CookieFlags;
use crate::http::ctx::ReqCtx;

/// An attribute: its name, and its value when it has `=`.
type Attr = (Vec<u8>, Option<Vec<u8>>);

/// The rewritten `Set-Cookie` value, or `None` to send it as it is.
pub(super) fn rewrite(c: &Client, r: &Req<'_>, value: &[u8]) -> Option<Vec<u8>> {
    let conf = r.conf;
    if conf.proxy_cookie_domain.is_empty() && conf.proxy_cookie_path.is_empty() && conf.proxy_cookie_flags.is_empty() {
        return None;
    }
    let mut attrs = parse(value);
    attrs.first()?.1.as_ref()?;
    let ctx = c.ctx(r);
    let mut changed = false;
    for (key, val) in attrs.iter_mut().skip(1) {
        let Some(v) = val else { continue };
        let rules = if key.eq_ignore_ascii_case(b"domain") {
            &conf.proxy_cookie_domain
        } else if key.eq_ignore_ascii_case(b"path") {
            &conf.proxy_cookie_path
        } else {
            continue;
        };
        if let Some(new) = super::rules::apply(c, &ctx, rules, v) {
            *v = new;
            changed = true;
        }
    }
    changed |= flags(&ctx, &conf.proxy_cookie_flags, &mut attrs);
    changed.then(|| join(&attrs))
}

/// nginx's `ngx_http_proxy_parse_cookie`.
fn parse(value: &[u8]) -> Vec<Attr> {
    let trim = |s: &[u8]| {
        let s = &s[s.iter().position(|&b| b != b' ').unwrap_or(s.len())..];
        s[..s.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1)].to_vec()
    };
    value
        .split(|&b| b == b';')
        .map(|part| match part.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&part[..eq]), Some(trim(&part[eq + 1..]))),
            None => (trim(part), None),
        })
        .collect()
}

fn join(attrs: &[Attr]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(k);
        if let Some(v) = v {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
    out
}

const SECURE_ON: u8 = 1;
const SECURE_OFF: u8 = 2;
const HTTPONLY_ON: u8 = 4;
const HTTPONLY_OFF: u8 = 8;
const STRICT: u8 = 16;
const LAX: u8 = 32;
const NONE: u8 = 64;
const SAMESITE_OFF: u8 = 128;

/// nginx's `ngx_http_proxy_rewrite_cookie_flags`: the first line whose cookie (a
/// name, either case, or a caseless regex) matches; true when it changed anything.
fn flags(ctx: &ReqCtx<'_>, lines: &[CookieFlags], attrs: &mut Vec<Attr>) -> bool {
    let name = attrs[0].0.clone();
    let Some(line) = lines.iter().find(|l| l.matches(ctx, &name)) else {
        return false;
    };
    let mut f = 0u8;
    for t in &line.flags {
        let mut v = Vec::new();
        t.render(ctx, &mut v);
        f |= match v.to_ascii_lowercase().as_slice() {
            b"secure" => SECURE_ON,
            b"nosecure" => SECURE_OFF,
            b"httponly" => HTTPONLY_ON,
            b"nohttponly" => HTTPONLY_OFF,
            b"samesite=strict" => STRICT,
            b"samesite=lax" => LAX,
            b"samesite=none" => NONE,
            b"nosamesite" => SAMESITE_OFF,
            _ => 0,
        };
    }
    if f == 0 {
        return false;
    }
    edit(attrs, f);
    true
}

/// nginx's `ngx_http_proxy_edit_cookie_flags`.
fn edit(attrs: &mut Vec<Attr>, mut f: u8) {
    let mut i = 1;
    while i < attrs.len() {
        let key = attrs[i].0.to_ascii_lowercase();
        let remove = match key.as_slice() {
            b"secure" if f & SECURE_ON != 0 => {
                f &= !SECURE_ON;
                false
            }
            b"secure" => f & SECURE_OFF != 0,
            b"httponly" if f & HTTPONLY_ON != 0 => {
                f &= !HTTPONLY_ON;
                false
            }
            b"httponly" => f & HTTPONLY_OFF != 0,
            b"samesite" => match samesite(f) {
                Some(w) => {
                    f &= !(STRICT | LAX | NONE);
                    let same = attrs[i].1.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(w));
                    if !same {
                        attrs[i] = (b"SameSite".to_vec(), Some(w.to_vec()));
                    }
                    false
                }
                None => f & SAMESITE_OFF != 0,
            },
            _ => false,
        };
        if remove {
            attrs.remove(i);
        } else {
            i += 1;
        }
    }
    if f & SECURE_ON != 0 {
        attrs.push((b"Secure".to_vec(), None));
    }
    if f & HTTPONLY_ON != 0 {
        attrs.push((b"HttpOnly".to_vec(), None));
    }
    if let Some(s) = samesite(f) {
        attrs.push((b"SameSite".to_vec(), Some(s.to_vec())));
    }
}

/// The SameSite value the flags ask for, strict first (nginx's order).
fn samesite(f: u8) -> Option<&'static [u8]> {
    if f & STRICT != 0 {
        Some(b"Strict")
    } else if f & LAX != 0 {
        Some(b"Lax")
    } else if f & NONE != 0 {
        Some(b"None")
    } else {
        None
    }
}
