//! The `upstream NAME { … }` block: `server` lines with their parameters, the balancing
//! method (`least_conn`, `ip_hash`, `hash`, `random`), `keepalive*`, and the checks nginx
//! makes at the end of the block (no servers; `backup` with a hashing method).

use std::net::{SocketAddr, ToSocketAddrs};

use super::args::{block, nargs, one_arg, parse_num, parse_time, split_host_port, time_arg};
use super::table::{walk, Cmd, Ctx, Done};
use super::Builder;
use crate::config::model::{Balance, Upstream, UpstreamServer};
use crate::config::parser::Directive;
use crate::config::vars::Template;
use crate::config::ConfError;

/// The upstream block's directives.
pub(super) const UPSTREAM: &[Cmd<UpstreamLevel>] = &[
    Cmd::run("server", server),
    Cmd::run("least_conn", method),
    Cmd::run("ip_hash", method),
    Cmd::run("hash", method).unknown_elsewhere(),
    Cmd::run("random", method).unknown_elsewhere(),
    Cmd::run("keepalive", |_, up, d| {
        one_arg(d)?;
        up.u.keepalive = parse_num(d, &d.args[0])? as usize;
        Ok(())
    }),
    Cmd::run("keepalive_timeout", |_, up, d| {
        time_arg(d).map(|t| up.u.keepalive_timeout = t)
    }),
    Cmd::run("keepalive_time", |_, up, d| {
        time_arg(d).map(|t| up.u.keepalive_time = t)
    }),
    Cmd::run("keepalive_requests", |_, up, d| {
        one_arg(d)?;
        up.u.keepalive_requests = parse_num(d, &d.args[0])?;
        Ok(())
    }),
];

/// The balancing methods (one per upstream).
const METHODS: [&str; 4] = ["least_conn", "ip_hash", "hash", "random"];

/// An upstream being read.
pub(super) struct UpstreamLevel {
    u: Upstream,
    /// A balancing method was given (a second one is an error).
    method_set: bool,
}

impl Builder<'_> {
    /// The upstream block `d` (its index is set by the caller).
    pub(super) fn upstream(&mut self, d: &Directive) -> Result<Upstream, ConfError> {
        let mut up = UpstreamLevel {
            u: Upstream::new(d.args[0].clone(), 0, Balance::RoundRobin, Vec::new(), false),
            method_set: false,
        };
        let items = block(d)?;
        walk(self, items, Ctx::Upstream, UPSTREAM, &mut up, None)?;
        let mut u = up.u;
        if u.servers.is_empty() {
            return Err(d.err(format!("no servers are inside upstream \"{}\"", u.name)));
        }
        if !matches!(u.balance, Balance::RoundRobin | Balance::LeastConn) && u.servers.iter().any(|s| s.backup) {
            let bal_dir = items.iter().find(|e| METHODS.contains(&e.name.as_str()));
            let name = bal_dir.map(|b| b.name.as_str()).unwrap_or("");
            return Err(bal_dir
                .unwrap_or(d)
                .err(format!("\"backup\" cannot be used with \"{name}\"")));
        }
        if u.balance == (Balance::Hash { consistent: true }) {
            crate::balance::hash::build_points(&mut u);
        }
        Ok(u)
    }
}

/// `server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down]
/// [slow_start=T]`: one server per address the name resolves to.
fn server(_: &mut Builder<'_>, up: &mut UpstreamLevel, d: &Directive) -> Done {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let hp = &d.args[0];
    if let Some(path) = hp.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(d.err(format!("no path in the unix domain socket \"{hp}\"")));
        }
        let peer = crate::net::Peer::Unix(std::path::Path::new(path).into());
        return server_params(up, d, UpstreamServer::new(peer, hp.clone()));
    }
    let (host, port) = split_host_port(hp).ok_or_else(|| d.err(format!("invalid port in upstream \"{hp}\"")))?;
    let addrs: Vec<SocketAddr> = (host.trim_matches(|c| c == '[' || c == ']'), port.unwrap_or(80))
        .to_socket_addrs()
        .map_err(|_| d.err(format!("host not found in upstream \"{hp}\"")))?
        .collect();
    let Some(&first) = addrs.first() else {
        return Err(d.err(format!("host not found in upstream \"{hp}\"")));
    };
    let s = params(d, UpstreamServer::new(first, hp.clone()))?;
    for a in addrs {
        up.u.servers.push(UpstreamServer {
            addr: a.into(),
            ..s.clone()
        });
    }
    Ok(())
}

/// One `unix:` server with its parameters.
fn server_params(up: &mut UpstreamLevel, d: &Directive, s: UpstreamServer) -> Done {
    let s = params(d, s)?;
    up.u.servers.push(s);
    Ok(())
}

/// A server's parameters after its address.
fn params(d: &Directive, mut s: UpstreamServer) -> Result<UpstreamServer, ConfError> {
    for p in &d.args[1..] {
        let bad = || d.err(format!("invalid parameter \"{p}\""));
        if let Some(v) = p.strip_prefix("weight=") {
            s.weight = v.parse().ok().filter(|w| *w > 0).ok_or_else(bad)?;
        } else if let Some(v) = p.strip_prefix("max_fails=") {
            s.max_fails = v.parse().map_err(|_| bad())?;
        } else if let Some(v) = p.strip_prefix("fail_timeout=") {
            s.fail_timeout = parse_time(d, v)?;
        } else if let Some(v) = p.strip_prefix("max_conns=") {
            s.max_conns = v.parse().map_err(|_| bad())?;
        } else if p == "backup" {
            s.backup = true;
        } else if p == "down" {
            s.down = true;
        } else if let Some(v) = p.strip_prefix("slow_start=") {
            s.slow_start = parse_time(d, v)?;
        } else if p == "resolve" || p.starts_with("service=") {
            return Err(d.err(format!("the \"{p}\" parameter of \"server\" is not supported yet")));
        } else {
            return Err(bad());
        }
    }
    Ok(s)
}

/// `least_conn`, `ip_hash`, `hash KEY [consistent]`, `random [two [least_conn]]`.
fn method(_: &mut Builder<'_>, up: &mut UpstreamLevel, d: &Directive) -> Done {
    if up.method_set {
        return Err(d.err("load balancing method redefined"));
    }
    up.method_set = true;
    up.u.balance = match (d.name.as_str(), d.args.as_slice()) {
        ("least_conn", []) => Balance::LeastConn,
        ("ip_hash", []) => Balance::IpHash,
        ("hash", [key]) | ("hash", [key, _]) => {
            let consistent = match d.args.get(1).map(String::as_str) {
                None => false,
                Some("consistent") => true,
                Some(x) => return Err(d.err(format!("invalid parameter \"{x}\""))),
            };
            up.u.hash_key = Some(Template::compile(key).map_err(|x| x.at_dir(d))?);
            Balance::Hash { consistent }
        }
        ("random", []) => Balance::Random { two: false },
        ("random", [t]) | ("random", [t, _]) if t == "two" => {
            if let Some(m) = d.args.get(1) {
                if m != "least_conn" {
                    return Err(d.err(format!("invalid parameter \"{m}\"")));
                }
            }
            Balance::Random { two: true }
        }
        _ => return Err(nargs(d)),
    };
    Ok(())
}
