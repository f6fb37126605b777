//! `listen` and `server_name` (server context): the address and its parameters, and the
//! name forms nginx matches (exact, `*.`/`.` front wildcard, `.*` back wildcard, `~regex`);
//! then, for the http block, the servers grouped by listen address with each address's
//! default server.

use std::net::{SocketAddr, ToSocketAddrs};

use regex::bytes::RegexBuilder;

use super::args::{nargs, split_host_port};
use super::Builder;
use crate::config::model::{ListenGroup, LogLevel, ServerName};
use crate::config::parser::Directive;
use crate::config::ConfError;

#[derive(Debug, Clone)]
pub(super) struct ListenSpec {
    pub(super) addr: SocketAddr,
    pub(super) default_server: bool,
    pub(super) backlog: i32,
    pub(super) ipv6only: bool,
    /// `ssl`: TLS on this address.
    pub(super) ssl: bool,
    /// `http2`: HTTP/2 on this address (the form before nginx 1.25.1).
    pub(super) http2: bool,
    pub(super) proxy_protocol: bool,
    /// `deferred`: TCP_DEFER_ACCEPT.
    pub(super) deferred: bool,
    /// Where the `listen` directive is.
    pub(super) at: (std::sync::Arc<str>, usize),
}

impl ListenSpec {
    pub(super) fn default_for(addr: SocketAddr) -> Self {
        ListenSpec {
            addr,
            default_server: false,
            backlog: 511,
            ipv6only: true,
            ssl: false,
            http2: false,
            proxy_protocol: false,
            deferred: false,
            at: (std::sync::Arc::from(""), 0),
        }
    }
}

pub(super) fn listen(b: &mut Builder<'_>, d: &Directive) -> Result<ListenSpec, ConfError> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let a = &d.args[0];
    let addr = parse_listen_addr(a).ok_or_else(|| d.err(format!("invalid listen address \"{a}\"")))?;
    let mut spec = ListenSpec::default_for(addr);
    spec.at = (d.file.clone(), d.line);
    for p in &d.args[1..] {
        match p.as_str() {
            "default_server" | "default" => spec.default_server = true,
            "reuseport" | "bind" => {}
            "deferred" => spec.deferred = true,
            "ipv6only=on" => spec.ipv6only = true,
            "ipv6only=off" => spec.ipv6only = false,
            "ssl" => spec.ssl = true,
            "http2" => {
                spec.http2 = true;
                b.warnings.push((
                    LogLevel::Warn,
                    d.err("the \"listen ... http2\" directive is deprecated, use the \"http2\" directive instead"),
                ));
            }
            "proxy_protocol" => spec.proxy_protocol = true,
            "quic" => return Err(d.err(format!("the \"{p}\" parameter of \"listen\" is not supported yet"))),
            _ => {
                if let Some(v) = p.strip_prefix("backlog=") {
                    spec.backlog = v.parse().map_err(|_| d.err(format!("invalid backlog \"{v}\"")))?;
                } else if p.starts_with("so_keepalive=")
                    || p.starts_with("rcvbuf=")
                    || p.starts_with("sndbuf=")
                    || p.starts_with("fastopen=")
                {
                    return Err(d.err(format!("the \"{p}\" parameter of \"listen\" is not supported")));
                } else {
                    return Err(d.err(format!("invalid parameter \"{p}\"")));
                }
            }
        }
    }
    Ok(spec)
}

/// `80`, `*:80`, `127.0.0.1:8080`, `[::]:80`, `localhost:80`, `127.0.0.1` (port 80).
pub fn parse_listen_addr(a: &str) -> Option<SocketAddr> {
    if let Ok(port) = a.parse::<u16>() {
        return Some(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Some(p) = a.strip_prefix("*:") {
        return Some(SocketAddr::from(([0, 0, 0, 0], p.parse().ok()?)));
    }
    if let Ok(s) = a.parse::<SocketAddr>() {
        return Some(s);
    }
    if let Ok(ip) = a.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, 80));
    }
    let (h, p) = split_host_port(a)?;
    (h, p.unwrap_or(80)).to_socket_addrs().ok()?.next()
}

pub(super) fn server_name(d: &Directive, a: &str) -> Result<ServerName, ConfError> {
    if let Some(re) = a.strip_prefix('~') {
        let r = RegexBuilder::new(re)
            .case_insensitive(true)
            .build()
            .map_err(|e| d.err(format!("invalid server_name regex \"{re}\": {e}")))?;
        return Ok(ServerName::Regex(r));
    }
    let a = a.to_ascii_lowercase();
    if let Some(s) = a.strip_prefix("*.") {
        return Ok(ServerName::Front {
            suffix: format!(".{s}"),
            dot_form: false,
        });
    }
    if a.starts_with('.') && a.len() > 1 {
        return Ok(ServerName::Front {
            suffix: a.clone(),
            dot_form: true,
        });
    }
    if let Some(p) = a.strip_suffix(".*") {
        return Ok(ServerName::Back(format!("{p}.")));
    }
    if a.contains('*') {
        return Err(d.err(format!("invalid server name or wildcard \"{a}\"")));
    }
    Ok(ServerName::Exact(a))
}

/// Groups servers by listen address (`listens`: each spec with its server's index and
/// `server` directive); the default server is the one marked `default_server`, else the
/// first.
pub(super) fn group(listens: Vec<(ListenSpec, usize, &Directive)>) -> Result<Vec<ListenGroup>, ConfError> {
    let mut groups: Vec<ListenGroup> = Vec::new();
    // Per group: its default server was marked `default_server` (a second mark is an error).
    let mut marked: Vec<bool> = Vec::new();
    for (spec, idx, d) in listens {
        let Some(i) = groups.iter().position(|g| g.addr == spec.addr) else {
            groups.push(ListenGroup {
                addr: spec.addr,
                backlog: spec.backlog,
                ipv6only: spec.ipv6only,
                ssl: spec.ssl,
                http2: spec.http2,
                servers: vec![idx],
                default_server: idx,
                stream: None,
                proxy_protocol: spec.proxy_protocol,
                deferred: spec.deferred,
            });
            marked.push(spec.default_server);
            continue;
        };
        let g = &mut groups[i];
        // nginx: `ssl` on any listen of an address makes the whole address TLS.
        g.ssl |= spec.ssl;
        g.http2 |= spec.http2;
        // As `ssl`: any server's `proxy_protocol` on an address is the address's.
        g.proxy_protocol |= spec.proxy_protocol;
        g.deferred |= spec.deferred;
        if spec.default_server {
            if marked[i] && g.default_server != idx {
                return Err(d.err(format!("a duplicate default server for {}", spec.addr)));
            }
            g.default_server = idx;
            marked[i] = true;
            g.backlog = g.backlog.max(spec.backlog);
        }
        if !g.servers.contains(&idx) {
            g.servers.push(idx);
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen_addr("80"), Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(parse_listen_addr("[::]:8080"), Some("[::]:8080".parse().unwrap()));
        assert_eq!(parse_listen_addr("127.0.0.1"), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(parse_listen_addr("*:81"), Some("0.0.0.0:81".parse().unwrap()));
    }
}
