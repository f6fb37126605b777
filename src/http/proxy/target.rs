//! Targets evaluated per request: `proxy_pass` with variables and `tunnel_pass`
//! (a forward proxy's `http://$host$request_uri`, `$host:$request_port`).
//!
//! Where it sits: in the content phase, between the rendered URL and the attempts.
//! nginx's order (ngx_http_upstream_init_request): a host that names an `upstream`
//! block (when the URL has no port) or an implicit upstream (same host and port) uses
//! that upstream and its balancer; an address literal is dialled as it is; any other
//! name goes to the location's `resolver`, and its addresses are tried in order.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{Client, Req};
use crate::config::model::Upstream;
use crate::net::resolver;
use crate::observe::log;
use crate::runtime::worker::Snapshot;

/// A rendered `proxy_pass` URL, split.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Url<'a> {
    pub https: bool,
    /// `$proxy_host`: the host, with its port unless that is the scheme's.
    pub hostport: &'a str,
    pub host: &'a str,
    /// The port written, else the scheme's.
    pub port: u16,
    pub port_given: bool,
    /// The URI part, from its `/` (or `?`: nginx puts a `/` before it); `None` when
    /// the URL has none.
    pub uri: Option<&'a str>,
}

/// Why a URL was refused: nginx's words (logged at `[error]`, answered 500).
pub(super) fn parse_url(s: &str) -> Result<Url<'_>, String> {
    let (rest, https) = if let Some(r) = strip_prefix_ci(s, "http://") {
        (r, false)
    } else if let Some(r) = strip_prefix_ci(s, "https://") {
        (r, true)
    } else {
        return Err(format!("invalid URL prefix in \"{s}\""));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (hostport, uri) = (&rest[..end], (end < rest.len()).then(|| &rest[end..]));
    let (host, port) = authority(hostport).ok_or_else(|| format!("invalid host in upstream \"{s}\""))?;
    let default = if https { 443 } else { 80 };
    Ok(Url {
        https,
        hostport: if port.is_some_and(|p| p != default) {
            hostport
        } else {
            host
        },
        host,
        port: port.unwrap_or(default),
        port_given: port.is_some(),
        uri,
    })
}

/// `host[:port]` or `[v6][:port]`: the host (brackets kept) and the port if any.
pub(super) fn authority(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        match &s[close + 1..] {
            "" => (&s[..=close], None),
            p => (&s[..=close], Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => None,
    };
    Some((host, port))
}

fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    (s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())).then(|| &s[p.len()..])
}

/// Where a target's attempts go.
pub(super) enum Found {
    /// An `upstream` block, or an implicit upstream of a `proxy_pass` without
    /// variables: its balancer.
    Upstream(Arc<Upstream>),
    /// Addresses to try in order.
    Addrs(Vec<SocketAddr>),
}

/// Why a target found no address: the status the client gets (the reason is logged).
pub(super) struct Unresolved(pub u16);

/// The upstream or the addresses for `host`/`port` (nginx's lookup order).
pub(super) async fn find(
    snap: &Snapshot,
    c: &Client,
    r: &Req<'_>,
    host: &str,
    port: u16,
    port_given: bool,
) -> Result<Found, Unresolved> {
    if let Some(u) = upstream_named(snap, host, port, port_given) {
        return Ok(Found::Upstream(u));
    }
    if port == 0 {
        log::error(format_args!(
            "no port in upstream \"{host}\", client: {}, server: {}",
            c.peer.ip(),
            r.server.primary_name
        ));
        return Err(Unresolved(500));
    }
    if let Some(ip) = resolver::literal(host) {
        return guard(c, r, Found::Addrs(vec![SocketAddr::new(ip, port)]));
    }
    let Some(res) = &r.conf.resolver else {
        log::error(format_args!(
            "no resolver defined to resolve {host}, client: {}, server: {}",
            c.peer.ip(),
            r.server.primary_name
        ));
        return Err(Unresolved(502));
    };
    let found = match resolver::resolve(res, r.conf.resolver_timeout, host).await {
        Ok((ips, cached)) => {
            // nginx rotates a cached answer by a random offset, so that requests
            // spread over a name's addresses; a fresh one goes in answer order.
            let start = if cached { resolver::random(ips.len()) } else { 0 };
            let n = ips.len();
            Ok(Found::Addrs(
                (0..n).map(|i| SocketAddr::new(ips[(start + i) % n], port)).collect(),
            ))
        }
        Err(e) => {
            log::error(format_args!(
                "{host} could not be resolved ({e}), client: {}, server: {}",
                c.peer.ip(),
                r.server.primary_name
            ));
            // A timeout too is 502 in nginx (the resolver's, not the upstream's).
            Err(Unresolved(502))
        }
    }?;
    guard(c, r, found)
}

/// The inside, protected on forward-proxy servers (those with `tunnel_pass`): a
/// request that names its own target (CONNECT, absolute-form) is not dialled to a
/// loopback, link-local or unspecified address, nor to the proxy's own address,
/// after DNS (so a name that resolves there is refused too), unless
/// `ringx_forward_allow` lists it. 403 when no address is left.
fn guard(c: &Client, r: &Req<'_>, found: Found) -> Result<Found, Unresolved> {
    let Found::Addrs(mut addrs) = found else {
        return Ok(found);
    };
    let names_target =
        c.head.method() == crate::proto::h1::request::Method::Connect || c.head.target.start != c.head.path.start;
    if !r.server.allow_connect || !names_target {
        return Ok(Found::Addrs(addrs));
    }
    let first = addrs[0];
    addrs.retain(|a| !internal(a, c.local) || r.conf.ringx_forward_allow.iter().any(|n| n.contains(a.ip())));
    if addrs.is_empty() {
        log::error(format_args!(
            "proxy request to internal address {first} refused (ringx_forward_allow), client: {}, server: {}",
            c.peer.ip(),
            r.server.primary_name
        ));
        return Err(Unresolved(403));
    }
    Ok(Found::Addrs(addrs))
}

/// Loopback, link-local, unspecified (IPv4-mapped too), or this connection's own
/// address.
fn internal(a: &SocketAddr, local: SocketAddr) -> bool {
    use std::net::IpAddr;
    let ip = match a.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let special = match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unspecified(),
    };
    special || ip == local.ip()
}

/// nginx's match of a resolved host against the configured upstreams: an `upstream`
/// block when the URL has no port; an implicit one with the same host and port.
fn upstream_named(snap: &Snapshot, host: &str, port: u16, port_given: bool) -> Option<Arc<Upstream>> {
    snap.cfg.http.upstreams.iter().find_map(|u| {
        let hit = if u.implicit {
            authority(&u.name).is_some_and(|(h, p)| h.eq_ignore_ascii_case(host) && p.unwrap_or(80) == port)
        } else {
            !port_given && u.name.eq_ignore_ascii_case(host)
        };
        hit.then(|| u.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://Example.org:8080/a?b").unwrap();
        assert_eq!(
            u,
            Url {
                https: false,
                hostport: "Example.org:8080",
                host: "Example.org",
                port: 8080,
                port_given: true,
                uri: Some("/a?b"),
            }
        );
        let u = parse_url("https://[::1]").unwrap();
        assert_eq!((u.host, u.port, u.port_given, u.uri), ("[::1]", 443, false, None));
        assert_eq!(parse_url("http://h:80/").unwrap().hostport, "h");
        assert_eq!(parse_url("https://h:80/").unwrap().hostport, "h:80");
        assert_eq!(parse_url("http://h?x").unwrap().uri, Some("?x"));
        assert!(parse_url("ftp://h/").unwrap_err().starts_with("invalid URL prefix"));
        assert!(parse_url("http://h:99999/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("a.b:443"), Some(("a.b", Some(443))));
        assert_eq!(authority("[::1]:8443"), Some(("[::1]", Some(8443))));
        assert_eq!(authority("a.b"), Some(("a.b", None)));
        assert_eq!(authority("a.b:0"), None);
        assert_eq!(authority("[::1]x"), None);
    }

    #[test]
    fn internal_addresses() {
        let local: SocketAddr = "10.0.0.5:3128".parse().unwrap();
        for a in [
            "127.0.0.1:80",
            "169.254.169.254:80",
            "0.0.0.0:1",
            "[::1]:443",
            "[fe80::1]:80",
            "[::ffff:127.0.0.1]:80",
            "10.0.0.5:9000",
        ] {
            assert!(internal(&a.parse().unwrap(), local), "{a}");
        }
        for a in ["10.0.0.6:80", "93.184.216.34:443", "[2001:db8::1]:80"] {
            assert!(!internal(&a.parse().unwrap(), local), "{a}");
        }
    }
}
