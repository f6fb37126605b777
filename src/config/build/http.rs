//! The `http { … }` block, read in two passes because a server may name an upstream,
//! a `match` or a log format declared after it: first those declarations (the upstream
//! blocks are built in line order once every name is known), then the http-level
//! settings and the servers, whose listen addresses are then grouped.

use std::collections::HashMap;
use std::sync::Arc;

use super::args::{block, nargs};
use super::listen;
use super::main_ctx::check_error_log;
use super::map;
use super::settings::Settings;
use super::table::{walk, Cmd, Ctx, Done};
use super::Builder;
use crate::config::model::Http;
use crate::config::parser::Directive;
use crate::config::vars::Template;
use crate::config::ConfError;

/// The http block's own directives (its settings are in settings.rs).
pub(super) const HTTP: &[Cmd<()>] = &[
    Cmd::early("upstream"),
    Cmd::early("match").unknown_elsewhere(),
    Cmd::early("log_format"),
    Cmd::early("limit_req_zone"),
    Cmd::early("limit_conn_zone"),
    Cmd::early("map"),
    Cmd::early("geo"),
    Cmd::later("server"),
    Cmd::run("error_log", check_error_log),
];

impl Builder<'_> {
    pub(super) fn http(&mut self, d: &Directive) -> Result<Http, ConfError> {
        let items = block(d)?;
        // The variables `map` defines are known to everything the block compiles.
        let maps = map::map_names(items)?;
        let mut sets = Vec::new();
        super::rewrite::set_names(items, &maps, &mut sets)?;
        let names = crate::config::vars::UserVars {
            maps,
            sets,
            named: Vec::new(),
        };
        crate::config::vars::needs::take();
        let mut http = crate::config::vars::with_user_vars(names, || self.http_block(items))?;
        http.needs = crate::config::vars::needs::take();
        Ok(http)
    }

    fn http_block(&mut self, items: &[Directive]) -> Result<Http, ConfError> {
        let maps: Vec<_> = items
            .iter()
            .filter(|d| d.name == "map" || d.name == "geo")
            .map(|d| {
                if d.name == "geo" {
                    map::geo_block(d)
                } else {
                    map::map_block(d)
                }
            })
            .collect::<Result<_, _>>()?;
        self.maps = Arc::new(maps);
        let upstream_dirs = self.declarations(items)?;
        self.upstream_blocks(&upstream_dirs)?;
        let mut set = Settings::default();
        let server_dirs = walk(self, items, Ctx::Http, HTTP, &mut (), Some(&mut set))?;
        let mut http = Http::default();
        let mut listens = Vec::new();
        let mut ssl_listens = Vec::new();
        for sd in server_dirs {
            let idx = http.servers.len();
            let (server, ls) = self.server(sd, &set)?;
            for l in ls {
                if l.ssl {
                    ssl_listens.push((l.addr, l.at.clone()));
                }
                listens.push((l, idx, sd));
            }
            http.servers.push(server);
        }
        http.listens = listen::group(listens)?;
        check_ssl_defaults(&http, &ssl_listens)?;
        // Duplicate exact names on one address: nginx warns; ringx keeps the first too.
        http.upstreams = std::mem::take(&mut self.upstreams);
        Ok(http)
    }

    /// The first pass: `match` and `log_format` are read, `upstream` blocks kept by
    /// name (a name used twice is an error).
    fn declarations<'d>(&mut self, items: &'d [Directive]) -> Result<HashMap<String, &'d Directive>, ConfError> {
        let mut upstreams = HashMap::new();
        for e in items {
            match e.name.as_str() {
                "upstream" => {
                    if e.args.len() != 1 {
                        return Err(nargs(e));
                    }
                    let name = e.args[0].clone();
                    if upstreams.contains_key(&name) {
                        return Err(e.err(format!("duplicate upstream \"{name}\"")));
                    }
                    upstreams.insert(name, e);
                }
                "match" => self.match_block(e)?,
                "log_format" => self.log_format(e)?,
                "limit_req_zone" | "limit_conn_zone" => self.limit_zone(e)?,
                _ => {}
            }
        }
        Ok(upstreams)
    }

    /// `limit_req_zone KEY zone=NAME:SIZE rate=Nr/s|Nr/m` and
    /// `limit_conn_zone KEY zone=NAME:SIZE`.
    pub(super) fn limit_zone(&mut self, e: &Directive) -> Done {
        let req = e.name == "limit_req_zone";
        if e.args.len() != if req { 3 } else { 2 } {
            return Err(nargs(e));
        }
        let key = Arc::new(crate::config::model::ZoneKey {
            value: Template::compile(&e.args[0]).map_err(|x| x.at_dir(e))?,
            source: e.args[0].clone(),
        });
        let (mut zone, mut rate) = (None, 1000);
        for a in &e.args[1..] {
            if let Some(z) = a.strip_prefix("zone=") {
                let bad = || e.err(format!("invalid zone size \"{a}\""));
                let (name, size) = z.split_once(':').ok_or_else(bad)?;
                let size = super::args::parse_size_str(size).ok_or_else(bad)?;
                if size < 8 * 4096 {
                    return Err(e.err(format!("zone \"{a}\" is too small")));
                }
                zone = Some((name, size));
            } else if let Some(r) = a.strip_prefix("rate=").filter(|_| req) {
                let (n, scale) = match (r.strip_suffix("r/s"), r.strip_suffix("r/m")) {
                    (Some(n), _) => (n, 1),
                    (_, Some(n)) => (n, 60),
                    _ => (r, 1),
                };
                rate = match n.parse::<u64>() {
                    Ok(n) if n > 0 => n * 1000 / scale,
                    _ => return Err(e.err(format!("invalid rate \"{a}\""))),
                };
            } else {
                return Err(e.err(format!("invalid parameter \"{a}\"")));
            }
        }
        let Some((name, size)) = zone else {
            return Err(e.err(format!("\"{}\" must have \"zone\" parameter", e.name)));
        };
        if let Some((was_req, k)) = self.zone_keys.get(name) {
            return Err(e.err(if *was_req == req {
                format!("{} \"{name}\" is already bound to key \"{k}\"", e.name)
            } else {
                format!("the shared memory zone \"{name}\" is already declared for a different use")
            }));
        }
        self.zone_keys.insert(name.into(), (req, e.args[0].clone()));
        if req {
            let z = crate::limit::req_zone(name, size);
            self.req_zones.insert(name.into(), (z, key, rate));
        } else {
            let z = crate::limit::conn_zone(name, size);
            self.conn_zones.insert(name.into(), (z, key));
        }
        Ok(())
    }

    /// Builds the upstream blocks in line order, each numbered by its place.
    fn upstream_blocks(&mut self, dirs: &HashMap<String, &Directive>) -> Done {
        let mut names: Vec<_> = dirs.keys().cloned().collect();
        names.sort_by_key(|n| dirs[n].line);
        for n in names {
            let mut u = self.upstream(dirs[&n])?;
            u.index = self.upstreams.len();
            self.upstreams.push(Arc::new(u));
        }
        Ok(())
    }

    /// `log_format NAME [escape=default] STRING…` (`combined` may not be redefined).
    pub(super) fn log_format(&mut self, e: &Directive) -> Done {
        if e.args.len() < 2 {
            return Err(nargs(e));
        }
        use crate::config::vars::{Escape, LogFormat};
        let mut rest = &e.args[1..];
        let mut escape = Escape::Default;
        if let Some(esc) = rest[0].strip_prefix("escape=") {
            escape = match esc {
                "default" => Escape::Default,
                "json" => Escape::Json,
                "none" => Escape::None,
                _ => return Err(e.err(format!("unknown log format escaping \"{esc}\""))),
            };
            rest = &rest[1..];
            if rest.is_empty() {
                return Err(nargs(e));
            }
        }
        let t = LogFormat::new(Template::compile(&rest.concat()).map_err(|x| x.at_dir(e))?, escape);
        if self.log_formats.insert(e.args[0].clone(), Arc::new(t)).is_some() && e.args[0] == "combined" {
            return Err(e.err("duplicate \"log_format\" name \"combined\""));
        }
        Ok(())
    }
}

/// nginx's rule: the default server of a TLS address needs a certificate (or
/// `ssl_reject_handshake on`), reported at the `listen ... ssl` line.
fn check_ssl_defaults(http: &Http, ssl_listens: &[(std::net::SocketAddr, (Arc<str>, usize))]) -> Done {
    for (addr, (file, line)) in ssl_listens {
        let Some(g) = http.listens.iter().find(|g| g.addr == *addr) else {
            continue;
        };
        let def = &http.servers[g.default_server];
        // With a default server that refuses handshakes, nginx checks every server
        // of the address (none can fall back on the default's certificate).
        let checked: &[usize] = if def.tls.is_none() && def.reject_handshake {
            &g.servers
        } else {
            std::slice::from_ref(&g.default_server)
        };
        if checked
            .iter()
            .any(|&i| http.servers[i].tls.is_none() && !http.servers[i].reject_handshake)
        {
            return Err(ConfError::at(
                "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
                file,
                *line,
            ));
        }
    }
    Ok(())
}
