//! nginx's access phase: `allow` / `deny` (ngx_http_access_module), then `auth_basic`
//! (ngx_http_auth_basic_module), combined as `satisfy` says.
//!
//! Where it sits: in a location's phases after its rewrites and realip, before
//! `try_files` and the content handler. With `satisfy all` (the default) each check
//! that has something to say must allow; with `satisfy any` the first that allows
//! is enough, and a refusal is answered only when none allowed: 401/407 rather
//! than 403 when both refused, as nginx's `r->access_code`.
//!
//! A refusal to authenticate adds `WWW-Authenticate` (or `Proxy-Authenticate` to a
//! request that authenticates to the proxy, see [`auth::proxy_auth`]) to the
//! response through `Req::authenticate`; credentials the proxy took are not sent on.

use std::path::Path;

use super::{files, subrequest, Client, Req};
use crate::http::auth;
use crate::observe::log;
use crate::proto::h1::request::HeaderKind;
use crate::runtime::worker::Snapshot;

/// What one access check says (nginx's handler results).
enum Says {
    /// Nothing to check here (`NGX_DECLINED`).
    Declined,
    Allow,
    Refuse(u16),
}

/// The access phase: `Err(status)` when the request is refused.
pub(super) async fn check(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>) -> Result<(), u16> {
    let mut a = Satisfy {
        any: r.conf.satisfy,
        refused: 0,
    };
    // In nginx's order; a check is asked only while the ones before left it open
    // (an auth subrequest costs).
    if a.step(rules(c, r, a.any))? || a.step(basic(c, r))? || a.step(auth_request(snap, c, r).await)? {
        r.authenticate = None;
        return Ok(());
    }
    match a.refused {
        0 => Ok(()),
        403 => {
            log::error(format_args!("access forbidden by rule{}", files::Why(c, r)));
            Err(403)
        }
        code => Err(code),
    }
}

/// `satisfy`: how the checks' answers combine.
struct Satisfy {
    any: bool,
    /// nginx's `r->access_code`: the refusal answered when no check allows.
    refused: u16,
}

impl Satisfy {
    /// `Ok(true)`: allowed, no more checks (`satisfy any`); `Err`: refused now.
    fn step(&mut self, says: Says) -> Result<bool, u16> {
        match says {
            Says::Declined => Ok(false),
            Says::Allow => Ok(self.any),
            Says::Refuse(code @ (401 | 403 | 407)) if self.any => {
                if self.refused != 401 && self.refused != 407 {
                    self.refused = code;
                }
                Ok(false)
            }
            Says::Refuse(code) => Err(code),
        }
    }
}

/// `allow` / `deny`: the first rule that matches the client's address decides.
fn rules(c: &Client, r: &Req<'_>, any: bool) -> Says {
    let ip = c.peer.ip();
    match r.conf.allow.iter().find(|(net, _)| net.contains(ip)) {
        None => Says::Declined,
        Some((_, false)) => Says::Allow,
        Some((_, true)) => {
            // With `satisfy any` the refusal is logged only if it is the answer.
            if !any {
                log::error(format_args!("access forbidden by rule{}", files::Why(c, r)));
            }
            Says::Refuse(403)
        }
    }
}

/// `auth_basic` with `auth_basic_user_file`, both needed (nginx declines otherwise).
fn basic(c: &mut Client, r: &mut Req<'_>) -> Says {
    let conf = r.conf;
    let (Some(realm_t), Some(file)) = (&conf.auth_basic, &conf.auth_basic_user_file) else {
        return Says::Declined;
    };
    let mut realm = Vec::new();
    realm_t.render(&c.ctx(r), &mut realm);
    if realm == b"off" {
        return Says::Declined;
    }
    let proxy = auth::proxy_auth(&c.head, r.server.allow_connect);
    let Some((user, pass)) = auth::credentials(&c.head, &c.buf, proxy) else {
        log::info(format_args!(
            "no user/password was provided for basic authentication{}",
            files::Why(c, r)
        ));
        return ask(r, proxy, &realm);
    };
    let mut path = Vec::new();
    file.path.render(&c.ctx(r), &mut path);
    let path = file.base.join(Path::new(&*String::from_utf8_lossy(&path)));
    match auth::check(&path, &user, &pass) {
        auth::Check::Ok => {
            if proxy {
                hide_proxy_credentials(c);
            }
            Says::Allow
        }
        auth::Check::Refused(why) => {
            log::error(format_args!("{why}{}", files::Why(c, r)));
            ask(r, proxy, &realm)
        }
        auth::Check::NoFile(code, why) => {
            if code == 403 {
                log::error(format_args!("{why}{}", files::Why(c, r)));
            } else {
                log::crit(format_args!("{why}{}", files::Why(c, r)));
            }
            Says::Refuse(code)
        }
    }
}

/// `auth_request`: the subrequest's status decides (nginx's
/// ngx_http_auth_request_handler).
async fn auth_request(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>) -> Says {
    match subrequest::auth(snap, c, r).await {
        None => Says::Declined,
        Some(200..=299) => Says::Allow,
        Some(code @ (401 | 403)) => Says::Refuse(code),
        Some(code) => {
            log::error(format_args!(
                "auth request unexpected status: {code}{}",
                files::Why(c, r)
            ));
            Says::Refuse(500)
        }
    }
}

/// 401 with `WWW-Authenticate`, or 407 with `Proxy-Authenticate`, naming the realm.
fn ask(r: &mut Req<'_>, proxy: bool, realm: &[u8]) -> Says {
    let (name, code): (&[u8], u16) = if proxy {
        (b"Proxy-Authenticate", 407)
    } else {
        (b"WWW-Authenticate", 401)
    };
    let mut h = Vec::with_capacity(name.len() + realm.len() + 20);
    h.extend_from_slice(name);
    h.extend_from_slice(b": Basic realm=\"");
    h.extend_from_slice(realm);
    h.extend_from_slice(b"\"\r\n");
    r.authenticate = Some(h);
    Says::Refuse(code)
}

/// The proxy consumed `Proxy-Authorization`: the origin does not get it (nginx,
/// which asks for it only on CONNECT, sends it on; see docs/forward-proxy.md).
fn hide_proxy_credentials(c: &mut Client) {
    let buf = &c.buf;
    for h in c.head.headers.iter_mut() {
        if h.kind == HeaderKind::Other && h.name.get(buf).eq_ignore_ascii_case(b"proxy-authorization") {
            h.skip = true;
        }
    }
}
