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
                _ => {}
            }
        }
        Ok(upstreams)
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
        let mut rest = &e.args[1..];
        if let Some(esc) = rest[0].strip_prefix("escape=") {
            if esc != "default" {
                return Err(e.err(format!("unsupported \"escape={esc}\" in \"log_format\"")));
            }
            rest = &rest[1..];
        }
        let t = Template::compile(&rest.concat()).map_err(|x| x.at_dir(e))?;
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
