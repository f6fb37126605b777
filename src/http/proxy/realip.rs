//! nginx's realip module: behind a trusted proxy, the client's address is the one a
//! header names (`set_real_ip_from`, `real_ip_header`, `real_ip_recursive`).
//!
//! Where it sits: [`super::handle`] applies it with the server's settings once the
//! server is chosen (nginx's post-read phase) and again with a location's own if it
//! was not applied yet; from then on the request's `$remote_addr`, its log lines,
//! `ip_hash` and `X-Forwarded-For` see the new address, and the connection's own
//! is back for the next request.

use std::net::{IpAddr, SocketAddr};

use super::{Client, Req};
use crate::config::model::RealIp;
use crate::proto::h1::request::HeaderKind;

/// Replaces the request's client address when the settings allow.
pub(super) fn apply(c: &mut Client, r: &Req<'_>) {
    let Some(ri) = r.conf.realip.as_deref() else {
        return;
    };
    if c.realip_orig.is_some() {
        return;
    }
    if let Some(addr) = real_peer(c, ri) {
        c.realip_orig = Some(c.peer);
        c.peer = addr;
    }
}

/// The connection's own address again (after the request).
pub(super) fn restore(c: &mut Client) {
    if let Some(p) = c.realip_orig.take() {
        c.peer = p;
    }
}

/// nginx's `ngx_http_get_forwarded_addr`: the header's address when the peer is
/// trusted; with `real_ip_recursive`, the rightmost address not trusted itself
/// (walking every X-Forwarded-For header, last first).
fn real_peer(c: &Client, ri: &RealIp) -> Option<SocketAddr> {
    let trusted = |a: &SocketAddr| ri.from.iter().any(|n| n.contains(a.ip()));
    let mut addr = c.peer;
    // `real_ip_header proxy_protocol`: the PROXY header's client, from a trusted peer.
    if ri.header == "proxy_protocol" {
        let src = c.stream.proxy_header()?.src?;
        return trusted(&addr).then_some(src);
    }
    if ri.header == "x-forwarded-for" {
        let values: Vec<&[u8]> = c
            .head
            .headers
            .iter()
            .filter(|h| h.kind == HeaderKind::XForwardedFor)
            .map(|h| h.value.get(&c.buf))
            .collect();
        let mut found = false;
        for v in values.iter().rev() {
            match walk(v, &mut addr, &trusted, ri.recursive) {
                Walk::Ok => found = true,
                Walk::Done => return Some(addr),
                Walk::Declined if found => return Some(addr),
                Walk::Declined => return None,
            }
            if !ri.recursive {
                break;
            }
        }
        return found.then_some(addr);
    }
    let v = c.head.header(&c.buf, &ri.header)?;
    match walk(v, &mut addr, &trusted, ri.recursive) {
        Walk::Declined => None,
        _ => Some(addr),
    }
}

enum Walk {
    /// Every address of the value was taken.
    Ok,
    /// Stopped at an untrusted address after taking some.
    Done,
    Declined,
}

/// `ngx_http_get_forwarded_addr_internal` over one header value.
fn walk(v: &[u8], addr: &mut SocketAddr, trusted: &dyn Fn(&SocketAddr) -> bool, recursive: bool) -> Walk {
    let mut rest = v;
    let mut found = false;
    loop {
        if !trusted(addr) {
            return if found { Walk::Done } else { Walk::Declined };
        }
        while let Some((&b, head)) = rest.split_last() {
            if b != b' ' && b != b',' {
                break;
            }
            rest = head;
        }
        let start = rest.iter().rposition(|&b| b == b' ' || b == b',').map_or(0, |i| i + 1);
        let Some(a) = parse_addr(&rest[start..]) else {
            return if found { Walk::Done } else { Walk::Declined };
        };
        *addr = a;
        found = true;
        rest = &rest[..start.saturating_sub(1)];
        if !recursive || start == 0 {
            return Walk::Ok;
        }
    }
}

/// `ADDRESS`, `ADDRESS:PORT`, `[V6]:PORT` (no port: 0, so `$remote_port` is empty).
fn parse_addr(s: &[u8]) -> Option<SocketAddr> {
    let s = std::str::from_utf8(s).ok()?;
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let ip: IpAddr = s.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    Some(SocketAddr::new(ip, 0))
}
