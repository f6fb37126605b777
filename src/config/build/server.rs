//! The `server { … }` block: its addresses and names, `return`, its settings (merged
//! over http's), and its locations, read after the server's other directives and sorted
//! for matching (prefixes longest first, regexes in config order).

use std::net::SocketAddr;
use std::sync::Arc;

use super::args::{block, nargs};
use super::listen::{listen, server_name, ListenSpec};
use super::location::{try_files, Handlers};
use super::main_ctx::check_error_log;
use super::rewrite;
use super::settings::Settings;
use super::table::{walk, Cmd, Ctx, Done};
use super::Builder;
use crate::config::model::{LocMatch, Location, Return, RwOp, Server, ServerName, TryFiles};
use crate::config::parser::Directive;
use crate::config::vars::Template;
use crate::config::ConfError;

/// The server block's own directives (its settings are in settings.rs).
pub(super) const SERVER: &[Cmd<ServerLevel>] = &[
    Cmd::run("listen", |b, s, d| listen(b, d).map(|l| s.listens.push(l))),
    Cmd::run("server_name", server_names),
    Cmd::later("location"),
    Cmd::run("return", |_, s, d| rewrite::ret(d).map(|o| s.ops.push(o))),
    Cmd::run("rewrite", |_, s, d| rewrite::rewrite(d).map(|o| s.ops.push(o))),
    Cmd::run("set", |_, s, d| rewrite::set(d).map(|o| s.ops.push(o))),
    Cmd::run("break", |_, s, d| rewrite::brk(d).map(|o| s.ops.push(o))),
    Cmd::run("if", |b, s, d| b.server_if(d).map(|o| s.ops.push(o))),
    Cmd::run("error_log", check_error_log),
    Cmd::run("try_files", |_, s, d| try_files(d).map(|t| s.try_files = Some(t))),
    Cmd::run("tunnel_pass", |b, s, d| b.tunnel_pass_into(&mut s.handlers, d)),
];

/// What a server block collects besides its settings.
#[derive(Default)]
pub(super) struct ServerLevel {
    listens: Vec<ListenSpec>,
    names: Vec<ServerName>,
    /// `$server_name`: the first name.
    primary: String,
    /// The rewrite module's directives, in order.
    ops: Vec<RwOp>,
    try_files: Option<TryFiles>,
    /// `tunnel_pass` at server level (for requests that match no location).
    handlers: Handlers,
}

/// (exact and prefix, longest first; regex, in order; named).
type Locations = (Vec<Arc<Location>>, Vec<Arc<Location>>, Vec<Arc<Location>>);

impl Builder<'_> {
    /// One server, and its listen addresses (`0.0.0.0:80` when it has none).
    pub(super) fn server(
        &mut self,
        d: &Directive,
        http_set: &Settings,
    ) -> Result<(Server, Vec<ListenSpec>), ConfError> {
        let mut s = ServerLevel::default();
        let mut set = Settings::default();
        self.saw_tunnel = false;
        let loc_dirs = walk(self, block(d)?, Ctx::Server, SERVER, &mut s, Some(&mut set))?;
        if s.listens.is_empty() {
            s.listens
                .push(ListenSpec::default_for(SocketAddr::from(([0, 0, 0, 0], 80))));
        }
        set.inherit(http_set);
        let (hbuf_n, hbuf_size) = set.header_buffers();
        let client_header_timeout = set.header_timeout();
        let mut server_conf = self.resolve(&set, None);
        server_conf.try_files = s.try_files.map(Arc::new);
        s.handlers.apply(&mut server_conf);
        // A server's own `proxy_redirect default` has no `proxy_pass` before it.
        server_conf.proxy_redirect = super::location::redirects(&set, &s.handlers, "")?;
        let server_conf = Arc::new(server_conf);
        let (tls, reject_handshake, client_auth) = self.server_tls(&set)?;
        let tls_h2 = tls.as_ref().map(with_h2);
        let (prefix_locations, regex_locations, named_locations) = self.locations(loc_dirs, &set)?;
        let server = Server {
            allow_connect: self.saw_tunnel,
            names: s.names,
            primary_name: s.primary,
            prefix_locations,
            regex_locations,
            named_locations,
            maps: self.maps.clone(),
            conf: server_conf,
            rewrites: s.ops,
            client_header_timeout,
            large_header_size: hbuf_size,
            large_header_count: hbuf_n,
            underscores_in_headers: set.underscores_in_headers.unwrap_or(false),
            ignore_invalid_headers: set.ignore_invalid_headers.unwrap_or(true),
            tls,
            reject_handshake,
            http2: set.http2.unwrap_or(false),
            tls_h2,
            client_auth,
            h2_max_streams: set.http2_max_concurrent_streams.unwrap_or(128).min(u32::MAX as u64) as u32,
        };
        Ok((server, s.listens))
    }

    /// The server's locations: (exact and prefix ones, longest first; regex ones).
    pub(super) fn locations(&mut self, dirs: Vec<&Directive>, server_set: &Settings) -> Result<Locations, ConfError> {
        let mut prefix_locations = Vec::new();
        let mut regex_locations = Vec::new();
        let mut named_locations: Vec<Arc<Location>> = Vec::new();
        for ld in dirs {
            let loc = self.location(ld, server_set)?;
            match &loc.matcher {
                LocMatch::Regex { .. } => regex_locations.push(Arc::new(loc)),
                LocMatch::Named(n) => {
                    if named_locations
                        .iter()
                        .any(|l| matches!(&l.matcher, LocMatch::Named(m) if m == n))
                    {
                        return Err(ld.err(format!("duplicate location \"{n}\"")));
                    }
                    named_locations.push(Arc::new(loc));
                }
                _ => {
                    let p = loc.prefix().unwrap_or_default();
                    let exact = matches!(loc.matcher, LocMatch::Exact(_));
                    if prefix_locations.iter().any(|l: &Arc<Location>| {
                        l.prefix() == Some(p) && matches!(l.matcher, LocMatch::Exact(_)) == exact
                    }) {
                        return Err(ld.err(format!("duplicate location \"{p}\"")));
                    }
                    prefix_locations.push(Arc::new(loc));
                }
            }
        }
        // Longest first, so the first prefix that matches is the longest.
        prefix_locations.sort_by(|a, b| b.prefix().map(str::len).cmp(&a.prefix().map(str::len)));
        Ok((prefix_locations, regex_locations, named_locations))
    }
}

/// `server_name NAME…`.
fn server_names(_: &mut Builder<'_>, s: &mut ServerLevel, d: &Directive) -> Done {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    for a in &d.args {
        if s.primary.is_empty() && s.names.is_empty() {
            s.primary = a.clone();
        }
        s.names.push(server_name(d, a)?);
    }
    Ok(())
}

/// `return CODE [TEXT|URL]` or `return URL` (server and location).
pub(super) fn parse_return(d: &Directive) -> Result<Return, ConfError> {
    match d.args.as_slice() {
        [one] => {
            if let Ok(code) = one.parse::<u16>() {
                check_code(d, code)?;
                Ok(Return { code, text: None })
            } else if one.starts_with("http://") || one.starts_with("https://") || one.starts_with('$') {
                Ok(Return {
                    code: 302,
                    text: Some(Template::compile(one).map_err(|e| e.at_dir(d))?),
                })
            } else {
                Err(d.err(format!("invalid return code \"{one}\"")))
            }
        }
        [c, t] => {
            let code: u16 = c.parse().map_err(|_| d.err(format!("invalid return code \"{c}\"")))?;
            check_code(d, code)?;
            Ok(Return {
                code,
                text: Some(Template::compile(t).map_err(|e| e.at_dir(d))?),
            })
        }
        _ => Err(nargs(d)),
    }
}

fn check_code(d: &Directive, code: u16) -> Result<(), ConfError> {
    if code > 999 {
        return Err(d.err(format!("invalid return code \"{code}\"")));
    }
    Ok(())
}

/// The same TLS configuration, offering `h2` before HTTP/1.1 in ALPN (it shares the
/// certificates, session cache and ticket keys).
fn with_h2(c: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut h2 = (**c).clone();
    h2.alpn_protocols.insert(0, b"h2".to_vec());
    Arc::new(h2)
}
