//! The `upstream NAME { … }` block: `server` lines with their parameters, the balancing
//! method (`least_conn`, `ip_hash`, `hash`, `random`), `keepalive*`, and the checks nginx
//! makes at the end of the block (no servers; `backup` with a hashing method).

use std::net::{SocketAddr, ToSocketAddrs};

use super::args::{block, nargs, one_arg, parse_num, parse_time, split_host_port, time_arg};
use super::{no_op, unknown, Ctx};
use crate::config::model::{Balance, Upstream, UpstreamServer};
use crate::config::parser::Directive;
use crate::config::vars::Template;
use crate::config::ConfError;

pub(super) fn upstream(d: &Directive) -> Result<Upstream, ConfError> {
    let mut u = Upstream::new(d.args[0].clone(), 0, Balance::RoundRobin, Vec::new(), false);
    let mut bal_dir: Option<&Directive> = None;
    for e in block(d)? {
        match e.name.as_str() {
            "server" => {
                if e.args.is_empty() {
                    return Err(nargs(e));
                }
                let hp = &e.args[0];
                let (host, port) =
                    split_host_port(hp).ok_or_else(|| e.err(format!("invalid port in upstream \"{hp}\"")))?;
                let addrs: Vec<SocketAddr> = (host.trim_matches(|c| c == '[' || c == ']'), port.unwrap_or(80))
                    .to_socket_addrs()
                    .map_err(|_| e.err(format!("host not found in upstream \"{hp}\"")))?
                    .collect();
                let mut s = UpstreamServer::new(addrs[0], hp.clone());
                for p in &e.args[1..] {
                    let bad = || e.err(format!("invalid parameter \"{p}\""));
                    if let Some(v) = p.strip_prefix("weight=") {
                        s.weight = v.parse().ok().filter(|w| *w > 0).ok_or_else(bad)?;
                    } else if let Some(v) = p.strip_prefix("max_fails=") {
                        s.max_fails = v.parse().map_err(|_| bad())?;
                    } else if let Some(v) = p.strip_prefix("fail_timeout=") {
                        s.fail_timeout = parse_time(e, v)?;
                    } else if let Some(v) = p.strip_prefix("max_conns=") {
                        s.max_conns = v.parse().map_err(|_| bad())?;
                    } else if p == "backup" {
                        s.backup = true;
                    } else if p == "down" {
                        s.down = true;
                    } else if let Some(v) = p.strip_prefix("slow_start=") {
                        s.slow_start = parse_time(e, v)?;
                    } else if p == "resolve" || p.starts_with("service=") {
                        return Err(e.err(format!("the \"{p}\" parameter of \"server\" is not supported yet")));
                    } else {
                        return Err(bad());
                    }
                }
                for a in addrs {
                    u.servers.push(UpstreamServer { addr: a, ..s.clone() });
                }
            }
            "least_conn" | "ip_hash" | "hash" | "random" => {
                if bal_dir.is_some() {
                    return Err(e.err("load balancing method redefined"));
                }
                bal_dir = Some(e);
                u.balance = match (e.name.as_str(), e.args.as_slice()) {
                    ("least_conn", []) => Balance::LeastConn,
                    ("ip_hash", []) => Balance::IpHash,
                    ("hash", [key]) | ("hash", [key, _]) => {
                        let consistent = match e.args.get(1).map(String::as_str) {
                            None => false,
                            Some("consistent") => true,
                            Some(x) => return Err(e.err(format!("invalid parameter \"{x}\""))),
                        };
                        u.hash_key = Some(Template::compile(key).map_err(|x| x.at_dir(e))?);
                        Balance::Hash { consistent }
                    }
                    ("random", []) => Balance::Random { two: false },
                    ("random", [t]) | ("random", [t, _]) if t == "two" => {
                        if let Some(m) = e.args.get(1) {
                            if m != "least_conn" {
                                return Err(e.err(format!("invalid parameter \"{m}\"")));
                            }
                        }
                        Balance::Random { two: true }
                    }
                    _ => return Err(nargs(e)),
                };
            }
            "keepalive" => {
                one_arg(e)?;
                u.keepalive = parse_num(e, &e.args[0])? as usize;
            }
            "keepalive_timeout" => u.keepalive_timeout = time_arg(e)?,
            "keepalive_requests" => {
                one_arg(e)?;
                u.keepalive_requests = parse_num(e, &e.args[0])?;
            }
            n if no_op(n, Ctx::Upstream) => {}
            _ => return Err(unknown(e, Ctx::Upstream)),
        }
    }
    if u.servers.is_empty() {
        return Err(d.err(format!("no servers are inside upstream \"{}\"", u.name)));
    }
    if !matches!(u.balance, Balance::RoundRobin | Balance::LeastConn) && u.servers.iter().any(|s| s.backup) {
        let name = bal_dir.map(|b| b.name.as_str()).unwrap_or("");
        return Err(bal_dir
            .unwrap_or(d)
            .err(format!("\"backup\" cannot be used with \"{name}\"")));
    }
    if u.balance == (Balance::Hash { consistent: true }) {
        build_chash(&mut u);
    }
    Ok(u)
}

pub(super) fn build_chash(u: &mut Upstream) {
    crate::balance::hash::build_points(u);
}
