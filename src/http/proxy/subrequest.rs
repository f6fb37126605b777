//! nginx's `auth_request`: before a request is served, a subrequest to another URI
//! decides whether it may be (2xx: yes; 401 and 403: answered so, a 401 with the
//! subrequest's `WWW-Authenticate`; anything else: 500), and `auth_request_set`
//! keeps values of the subrequest (its `$upstream_http_*`) in variables.
//!
//! Where it sits: the last check of the access phase (see [`super::access`]). The
//! subrequest is a GET for the URI with the client's header fields and no body, as
//! nginx's; it finds its location and runs that location's rewrite directives
//! (`return 204;` answers it) and then its `proxy_pass`, reading the upstream's
//! response head only, on a connection of its own (not pooled). A location whose
//! content is something else (static files, `proxy_pass` with variables) is a 500
//! with an `[error]` line saying so.

use std::time::Instant;

use super::{bare_req, enter_location, files, rewrite, Client, Peers, Req};
use crate::config::model::ProxyPass;
use crate::http::fail::{Fail, FailKind, Phase};
use crate::http::forward::{write_request_head, UpBody};
use crate::net::Stream;
use crate::observe::log;
use crate::proto::h1::response::{parse_response, ResponseHead};
use crate::runtime::worker::Snapshot;

/// The main request's `$uri`, `$args`, kept upstream head and regex captures while
/// a subrequest has its own.
struct Saved {
    uri_norm: Vec<u8>,
    args_buf: Vec<u8>,
    upstream_head: Vec<u8>,
    subject: Vec<u8>,
    groups: Vec<Option<(usize, usize)>>,
    named: Vec<Option<Vec<u8>>>,
}

/// The subrequest's status (and, for a proxied one, the upstream's response head,
/// kept in `c.heads.upstream` for `auth_request_set`).
pub(super) async fn auth(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>) -> Option<u16> {
    let uri = r.conf.auth_request.as_deref()?;
    // Moved out, and back when the subrequest is done (no copies).
    let saved = Saved {
        uri_norm: std::mem::take(&mut c.uri_norm),
        args_buf: std::mem::take(&mut c.args_buf),
        upstream_head: std::mem::take(&mut c.heads.upstream),
        subject: std::mem::take(&mut c.rw.subject),
        groups: std::mem::take(&mut c.rw.groups),
        named: std::mem::take(&mut c.rw.named),
    };
    let mut sr = bare_req(r.server);
    sr.start = r.start;
    files::set_uri(c, &mut sr, uri.as_bytes(), Some(b""));
    sr.as_get = true;
    enter_location(c, &mut sr);
    let (status, www) = run(snap, c, &mut sr, uri).await;
    // auth_request_set: evaluated in the subrequest, stored for the request.
    for (i, value) in &r.conf.auth_request_set {
        let mut v = Vec::new();
        value.render(&c.ctx(&sr), &mut v);
        if c.rw.vars.len() <= *i {
            c.rw.vars.resize(*i + 1, None);
        }
        c.rw.vars[*i] = Some(v);
    }
    if status == 401 {
        r.authenticate = www;
    }
    c.uri_norm = saved.uri_norm;
    c.args_buf = saved.args_buf;
    c.heads.upstream = saved.upstream_head;
    (c.rw.subject, c.rw.groups, c.rw.named) = (saved.subject, saved.groups, saved.named);
    Some(status)
}

/// The subrequest through its location: the rewrite directives, then `proxy_pass`;
/// its status, and the `WWW-Authenticate` lines of an upstream's answer.
async fn run(snap: &Snapshot, c: &mut Client, sr: &mut Req<'_>, uri: &str) -> (u16, Option<Vec<u8>>) {
    let conf = sr.conf;
    match rewrite::run(c, sr, &conf.rewrites) {
        rewrite::Flow::Return(ret) => return (ret.code, None),
        rewrite::Flow::Fail(code) => return (code, None),
        rewrite::Flow::Next { .. } | rewrite::Flow::Stay => {}
        _ => {
            log::error(format_args!(
                "auth_request \"{uri}\" rewrites or redirects, which ringx does not follow in a subrequest{}",
                files::Why(c, sr)
            ));
            return (500, None);
        }
    }
    let Some(pp) = conf.proxy_pass.as_ref() else {
        log::error(format_args!(
            "auth_request \"{uri}\" reaches no \"proxy_pass\" without variables, the only subrequest content ringx runs{}",
            files::Why(c, sr)
        ));
        return (500, None);
    };
    ask(snap, c, sr, pp).await.unwrap_or((502, None))
}

/// The upstream's answer to the subrequest: its status and `WWW-Authenticate`
/// lines, the head kept in `c.heads.upstream`; `None` when no server answered
/// (logged as the proxy logs an attempt, counted against the server as it is).
async fn ask<'s>(
    snap: &Snapshot,
    c: &mut Client,
    sr: &mut Req<'s>,
    pp: &'s ProxyPass,
) -> Option<(u16, Option<Vec<u8>>)> {
    sr.proxy = Some(super::PassRef::Conf(pp));
    let conf = sr.conf;
    let peers = Peers::of(snap, &pp.upstream, None);
    let mut tried = crate::balance::Tried::new(peers.len());
    let budget = crate::balance::Budget::new(
        conf.proxy_next_upstream_tries,
        conf.proxy_next_upstream_timeout,
        sr.start,
    );
    let mut key = Vec::new();
    if let Some(k) = &pp.upstream.hash_key {
        k.render(&c.ctx(sr), &mut key);
    }
    for n in 1.. {
        let (held, addr) = peers.pick(&pp.upstream, c.peer.ip(), &key, &mut tried)?;
        match exchange(c, sr, pp, &addr).await {
            Ok(answer) => {
                held.release(false);
                return Some(answer);
            }
            Err(f) => {
                held.release(f.counts_against_peer());
                if let Some(cause) = f.cause() {
                    log::error(format_args!("{cause}{}, upstream: \"{addr}\"", files::Why(c, sr)));
                }
                if !budget.more(n, &tried, peers.len()) {
                    return None;
                }
            }
        }
    }
    None
}

/// One connection: the head out, the response head in (the proxy's [`Fail`] for
/// what goes wrong: its status, whose fault, nginx's words).
async fn exchange(
    c: &mut Client,
    sr: &Req<'_>,
    pp: &ProxyPass,
    addr: &crate::net::Peer,
) -> Result<(u16, Option<Vec<u8>>), Fail> {
    let conf = sr.conf;
    let mut s = Stream::connect_peer(addr, conf.proxy_connect_timeout)
        .await
        .map_err(|e| Fail::io(e, Phase::Connect, false))?;
    if let Some(t) = pp.tls.as_deref() {
        let name = super::upstream_name(c, sr, pp, t);
        s = super::upstream_handshake(s, t, &name, conf).await?;
    }
    let mut out = Vec::new();
    write_request_head(&mut out, &c.ctx(sr), conf, pp, sr.loc_prefix, UpBody::None);
    s.write_all(out, conf.proxy_send_timeout)
        .await
        .map_err(|e| Fail::io(e, Phase::SendRequest, false))?;
    let deadline = crate::net::Deadline::At(Instant::now() + conf.proxy_read_timeout);
    let mut buf = Vec::with_capacity(4096);
    let mut head = ResponseHead::default();
    loop {
        let (n, b) = s
            .read_append(buf, 65536, deadline)
            .await
            .map_err(|e| Fail::io(e, Phase::ReadHead, true))?;
        buf = b;
        if n == 0 {
            return Err(Fail::new(FailKind::Error, Phase::ReadHead, true));
        }
        match parse_response(&buf, &mut head) {
            // An interim response (100) goes by: the final one follows.
            Ok(Some(())) if head.code < 200 => {
                buf.drain(..head.head_len);
            }
            Ok(Some(())) => {
                c.heads.upstream.clear();
                c.heads.upstream.extend_from_slice(&buf[..head.head_len]);
                return Ok((head.code, www_authenticate(&head, &buf)));
            }
            Ok(None) if buf.len() > 65536 => return Err(Fail::new(FailKind::TooBigHeader, Phase::ReadHead, true)),
            Ok(None) => {}
            Err(_) => return Err(Fail::new(FailKind::InvalidHeader, Phase::ReadHead, true)),
        }
    }
}

/// The response's `WWW-Authenticate` fields, as they go to the client.
fn www_authenticate(head: &ResponseHead, buf: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for h in head
        .headers
        .iter()
        .filter(|h| h.name.get(buf).eq_ignore_ascii_case(b"www-authenticate"))
    {
        out.extend_from_slice(b"WWW-Authenticate: ");
        out.extend_from_slice(h.value.get(buf));
        out.extend_from_slice(b"\r\n");
    }
    Some(out).filter(|o| !o.is_empty())
}
