//! The `location [=|^~|~|~*] PATH { … }` block: its matcher, `proxy_pass` (a named
//! upstream, or an address resolved at load time into an implicit one), `return`,
//! `health_check`, `ringx_status`, and its settings merged over the server's into the
//! [`LocConf`](crate::config::model::LocConf) the request path reads.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use super::args::{block, nargs, one_arg, split_host_port};
use super::main_ctx::check_error_log;
use super::rewrite;
use super::settings::Settings;
use super::table::{walk, Cmd, Ctx, Done};
use super::Builder;
use crate::config::model::{
    Balance, DocRoot, DynPass, LocMatch, Location, ProxyPass, RwOp, TryFiles, TryLast, TunnelPass, Upstream,
    UpstreamServer,
};
use crate::config::parser::Directive;
use crate::config::vars::Template;
use crate::config::ConfError;

/// The location block's own directives (its settings are in settings.rs).
pub(super) const LOCATION: &[Cmd<LocLevel>] = &[
    Cmd::later("health_check").unknown_elsewhere(),
    Cmd::run("ringx_status", ringx_status).unknown_elsewhere(),
    Cmd::run("stub_status", stub_status).unknown_elsewhere(),
    Cmd::run("proxy_pass", |b, l, d| {
        let regex = matches!(l.matcher, LocMatch::Regex { .. });
        b.proxy_pass_into(&mut l.handlers, d, regex, false)
    }),
    Cmd::run("tunnel_pass", |b, l, d| b.tunnel_pass_into(&mut l.handlers, d)),
    Cmd::run("return", |_, l, d| rewrite::ret(d).map(|o| l.ops.push(o))),
    Cmd::run("rewrite", |_, l, d| rewrite::rewrite(d).map(|o| l.ops.push(o))),
    Cmd::run("set", |_, l, d| rewrite::set(d).map(|o| l.ops.push(o))),
    Cmd::run("break", |_, l, d| rewrite::brk(d).map(|o| l.ops.push(o))),
    Cmd::run("if", location_if),
    Cmd::later("location"),
    Cmd::run("error_log", check_error_log),
    Cmd::run("alias", alias),
    Cmd::run("try_files", |_, l, d| try_files(d).map(|t| l.try_files = Some(t))),
    Cmd::run("internal", internal),
];

/// Nested locations: (exact and prefix, longest first; regex, in order).
type Nested = (Vec<Arc<Location>>, Vec<Arc<Location>>);

/// What a location block collects besides its settings.
pub(super) struct LocLevel {
    matcher: LocMatch,
    handlers: Handlers,
    /// The rewrite module's directives in order; an `if`'s op is a placeholder
    /// until the location's settings are merged (`ifs`: where, and the block).
    ops: Vec<RwOp>,
    ifs: Vec<(usize, Directive)>,
    status: bool,
    stub_status: bool,
    alias: Option<DocRoot>,
    try_files: Option<TryFiles>,
    internal: bool,
}

impl Builder<'_> {
    pub(super) fn location(&mut self, d: &Directive, server_set: &Settings) -> Result<Location, ConfError> {
        let mut l = LocLevel {
            matcher: matcher(d)?,
            handlers: Handlers::default(),
            ops: Vec::new(),
            ifs: Vec::new(),
            status: false,
            stub_status: false,
            alias: None,
            try_files: None,
            internal: false,
        };
        let mut set = Settings::default();
        let later = walk(self, block(d)?, Ctx::Location, LOCATION, &mut l, Some(&mut set))?;
        let (nested, health): (Vec<&Directive>, Vec<&Directive>) =
            later.into_iter().partition(|x| x.name == "location");
        if l.alias.is_some() && set.root.is_some() {
            return Err(d.err("\"alias\" and \"root\" directives are both set in this location"));
        }
        // Of several `health_check`s in one location, the last counts.
        if let Some(h) = health.last() {
            if l.handlers.https_at.is_some() {
                return Err(h.err("\"health_check\" for \"proxy_pass https://\" is not supported yet"));
            }
            self.attach_health_check(h, l.handlers.proxy.as_ref())?;
        }
        set.inherit(server_set);
        self.finish_handlers(&mut l.handlers, &set)?;
        let mut conf = self.resolve(&set, l.handlers.proxy.clone());
        l.handlers.apply(&mut conf);
        // nginx's location name (a regex or named location's is never used).
        let name = match &l.matcher {
            LocMatch::Exact(p) | LocMatch::Prefix { path: p, .. } => p.as_str(),
            _ => "",
        };
        conf.proxy_redirect = redirects(&set, &l.handlers, name)?;
        conf.status = l.status;
        conf.stub_status = l.stub_status;
        conf.try_files = l.try_files.map(Arc::new);
        conf.internal = l.internal;
        if let Some(a) = l.alias {
            if a.dynamic.is_some() && conf.try_files.is_some() {
                return Err(d.err("\"try_files\" with an \"alias\" that has variables is not supported yet"));
            }
            conf.doc_root = a;
        }
        for (i, d) in std::mem::take(&mut l.ifs) {
            l.ops[i] = self.location_if(&d, &set, &l.handlers, (&conf.doc_root, name))?;
        }
        conf.rewrites = Arc::new(l.ops);
        let (nested_prefix, nested_regex) = self.nested(&l.matcher, nested, &set)?;
        Ok(Location {
            matcher: l.matcher,
            conf: Arc::new(conf),
            nested_prefix,
            nested_regex,
        })
    }

    /// A location's nested locations, inheriting its settings (`set`), with nginx's
    /// checks: not in an exact or named location, a nested prefix inside its parent's,
    /// no named ones.
    fn nested(&mut self, m: &LocMatch, dirs: Vec<&Directive>, set: &Settings) -> Result<Nested, ConfError> {
        let Some(first) = dirs.first() else {
            return Ok((Vec::new(), Vec::new()));
        };
        match m {
            LocMatch::Exact(p) => {
                return Err(first.err(format!(
                    "location \"{}\" cannot be inside the exact location \"{p}\"",
                    first.args.last().map_or("", |a| a)
                )))
            }
            LocMatch::Named(n) => {
                return Err(first.err(format!(
                    "location \"{}\" cannot be inside the named location \"{n}\"",
                    first.args.last().map_or("", |a| a)
                )))
            }
            _ => {}
        }
        for nd in &dirs {
            let inner = matcher(nd)?;
            if let (LocMatch::Prefix { path: outer, .. }, LocMatch::Prefix { path, .. } | LocMatch::Exact(path)) =
                (m, &inner)
            {
                if !path.starts_with(outer.as_str()) {
                    return Err(nd.err(format!("location \"{path}\" is outside location \"{outer}\"")));
                }
            }
            if let LocMatch::Named(n) = inner {
                return Err(nd.err(format!("named location \"{n}\" can be on the server level only")));
            }
        }
        let (prefix, regex, _) = self.locations(dirs, set)?;
        Ok((prefix, regex))
    }

    /// `proxy_pass http://HOST[:PORT][/URI]`: an `upstream` of that name, else the
    /// address resolved now (one implicit upstream per distinct `host:port`).
    pub(super) fn proxy_pass(&mut self, d: &Directive) -> Result<(ProxyPass, bool), ConfError> {
        let (hostport, uri, https) = proxy_url(d)?;
        if let Some(u) = self.upstreams.iter().find(|u| u.name == hostport && !u.implicit) {
            let pp = ProxyPass {
                upstream: u.clone(),
                proxy_host: hostport.to_string(),
                proxy_port: if https { 443 } else { 80 },
                uri,
                tls: None,
                uri_exact: false,
            };
            return Ok((pp, https));
        }
        if let Some(path) = hostport.strip_prefix("unix:") {
            let peer = crate::net::Peer::Unix(std::path::Path::new(path).into());
            let pp = ProxyPass {
                upstream: self.implicit_upstream(hostport, vec![peer]),
                // nginx's host for a Unix-domain socket.
                proxy_host: "localhost".into(),
                proxy_port: 80,
                uri,
                tls: None,
                uri_exact: false,
            };
            return Ok((pp, https));
        }
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| d.err(format!("invalid port in upstream \"{hostport}\"")))?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<SocketAddr> = (host.trim_matches(|c| c == '[' || c == ']'), port)
            .to_socket_addrs()
            .map_err(|_| d.err(format!("host not found in upstream \"{hostport}\"")))?
            .collect();
        if addrs.is_empty() {
            return Err(d.err(format!("host not found in upstream \"{hostport}\"")));
        }
        let pp = ProxyPass {
            upstream: self.implicit_upstream(hostport, addrs.into_iter().map(Into::into).collect()),
            proxy_host: hostport.to_string(),
            proxy_port: port,
            uri,
            tls: None,
            uri_exact: false,
        };
        Ok((pp, https))
    }

    /// The implicit upstream for `name` (made on its first `proxy_pass`).
    fn implicit_upstream(&mut self, name: &str, addrs: Vec<crate::net::Peer>) -> Arc<Upstream> {
        if let Some(u) = self.upstreams.iter().find(|u| u.implicit && u.name == name) {
            return u.clone();
        }
        let servers = addrs
            .into_iter()
            .map(|a| UpstreamServer::new(a, name.to_string()))
            .collect();
        let index = self.upstreams.len();
        let u = Arc::new(Upstream::new(
            name.to_string(),
            index,
            Balance::RoundRobin,
            servers,
            true,
        ));
        self.upstreams.push(u.clone());
        u
    }
}

/// The location's matcher from its arguments.
pub(super) fn matcher(d: &Directive) -> Result<LocMatch, ConfError> {
    Ok(match d.args.as_slice() {
        [p] if p.starts_with('@') => LocMatch::Named(p.clone()),
        [p] if p.starts_with('=') && p.len() > 1 => LocMatch::Exact(p[1..].to_string()),
        [p] => LocMatch::Prefix {
            path: p.clone(),
            no_regex: false,
        },
        [m, p] if m == "=" => LocMatch::Exact(p.clone()),
        [m, p] if m == "^~" => LocMatch::Prefix {
            path: p.clone(),
            no_regex: true,
        },
        [m, p] if m == "~" || m == "~*" => {
            let caseless = m == "~*";
            let re = rewrite::pcre(d, p, caseless)?;
            let groups = re.0.captures_len() > 1;
            LocMatch::Regex { re, caseless, groups }
        }
        [m, _] => return Err(d.err(format!("invalid location modifier \"{m}\""))),
        _ => return Err(nargs(d)),
    })
}

/// `proxy_pass`'s URL: (`host[:port]`, the URI part if any, `https://`).
fn proxy_url(d: &Directive) -> Result<(&str, Option<String>, bool), ConfError> {
    one_arg(d)?;
    let url = &d.args[0];
    let (rest, https) = if let Some(r) = url.strip_prefix("http://") {
        (r, false)
    } else if let Some(r) = url.strip_prefix("https://") {
        (r, true)
    } else {
        return Err(d.err(format!("invalid URL prefix in \"{url}\"")));
    };
    // `unix:/path/to.sock[:/uri]`: the path ends at the first ':' (nginx's
    // ngx_parse_unix_domain_url).
    let split = match rest.strip_prefix("unix:") {
        Some(path) => path.find(':').map(|i| (5 + i, 5 + i + 1)),
        None => rest.find('/').map(|i| (i, i)),
    };
    let (hostport, uri) = match split {
        Some((end, from)) => (&rest[..end], Some(rest[from..].to_string()).filter(|u| !u.is_empty())),
        None => (rest, None),
    };
    if hostport == "unix:" {
        return Err(d.err(format!("no path in the unix domain socket \"{url}\"")));
    }
    if hostport.is_empty() {
        return Err(d.err(format!("no host in upstream \"{url}\"")));
    }
    Ok((hostport, uri, https))
}

/// `if (…) { … }`: a placeholder op now, built once the location's settings merge.
fn location_if(_: &mut Builder<'_>, l: &mut LocLevel, d: &Directive) -> Done {
    rewrite::condition(d)?;
    l.ifs.push((l.ops.len(), d.clone()));
    l.ops.push(RwOp::Break);
    Ok(())
}

/// `alias PATH` (relative to the prefix; in a regex location, the whole path, usually
/// with the regex's captures: `alias /data/$1;`).
fn alias(b: &mut Builder<'_>, l: &mut LocLevel, d: &Directive) -> Done {
    one_arg(d)?;
    if l.alias.is_some() {
        return Err(d.err("\"alias\" directive is duplicate"));
    }
    if let LocMatch::Named(_) = l.matcher {
        return Err(d.err("\"alias\" directive is not allowed here"));
    }
    let a = &d.args[0];
    let path = b.env.path(a).to_string_lossy().into_owned();
    let dynamic = if a.contains('$') {
        Some(Template::compile(&path).map_err(|e| e.at_dir(d))?)
    } else {
        None
    };
    l.alias = Some(DocRoot {
        path,
        alias: true,
        dynamic,
    });
    Ok(())
}

/// `try_files FILE ... URI | =CODE | @NAME` (server and location).
pub(super) fn try_files(d: &Directive) -> Result<TryFiles, ConfError> {
    let [files @ .., last] = d.args.as_slice() else {
        return Err(nargs(d));
    };
    if files.is_empty() {
        return Err(nargs(d));
    }
    let compile = |a: &str| Template::compile(a).map_err(|e| e.at_dir(d));
    let last = if let Some(code) = last.strip_prefix('=') {
        match code.parse::<u16>() {
            Ok(c) if c <= 999 => TryLast::Code(c),
            _ => return Err(d.err(format!("invalid code \"{last}\""))),
        }
    } else if last.starts_with('@') {
        TryLast::Named(last.clone())
    } else {
        TryLast::Uri(compile(last)?)
    };
    Ok(TryFiles {
        files: files
            .iter()
            .map(|f| match f.strip_suffix('/') {
                Some(d) => Ok((compile(d)?, true)),
                None => Ok((compile(f)?, false)),
            })
            .collect::<Result<_, ConfError>>()?,
        last,
    })
}

/// `internal`.
fn internal(_: &mut Builder<'_>, l: &mut LocLevel, d: &Directive) -> Done {
    if !d.args.is_empty() {
        return Err(nargs(d));
    }
    l.internal = true;
    Ok(())
}

/// `stub_status` (an argument, as old configs write `stub_status on;`, is ignored,
/// as nginx): this location answers with nginx's connection counters.
fn stub_status(_: &mut Builder<'_>, l: &mut LocLevel, d: &Directive) -> Done {
    if d.args.len() > 1 {
        return Err(nargs(d));
    }
    l.stub_status = true;
    Ok(())
}

/// `ringx_status`: this location answers with the upstreams' state.
fn ringx_status(_: &mut Builder<'_>, l: &mut LocLevel, d: &Directive) -> Done {
    if !d.args.is_empty() {
        return Err(nargs(d));
    }
    l.status = true;
    Ok(())
}

/// The content handlers a location (or an `if` in one, or a server) sets:
/// `proxy_pass`, without or with variables, and `tunnel_pass`. As nginx, the one set
/// last is the level's handler; an `if` without one of its own keeps its location's.
#[derive(Default, Clone)]
pub(super) struct Handlers {
    pub(super) proxy: Option<ProxyPass>,
    proxy_dyn: Option<Template>,
    pub(super) tunnel: Option<Arc<TunnelPass>>,
    /// `tunnel_pass` came after any `proxy_pass`.
    tunnel_last: bool,
    /// Where `proxy_pass https://` is (its TLS is built once the settings merge).
    pub(super) https_at: Option<(Arc<str>, usize)>,
    /// `proxy_pass` without variables, as written (`proxy_redirect default`).
    proxy_url: Option<String>,
    built_dyn: Option<Arc<DynPass>>,
}

impl Handlers {
    pub(super) fn any(&self) -> bool {
        self.proxy.is_some() || self.proxy_dyn.is_some() || self.tunnel.is_some()
    }

    /// This level's handlers in its [`LocConf`](crate::config::model::LocConf).
    pub(super) fn apply(&self, conf: &mut crate::config::model::LocConf) {
        conf.proxy_dyn = self.built_dyn.clone();
        conf.tunnel = self.tunnel.clone().filter(|_| self.tunnel_last);
    }

    /// An `if`'s handlers: its own, else its location's.
    pub(super) fn or_from(self, loc: &Handlers) -> Handlers {
        if self.any() {
            self
        } else {
            loc.clone()
        }
    }
}

/// nginx's merge of `proxy_redirect` for a level with handlers `h` in the location
/// named `name`: its rules (or its parent's), `default` made from its `proxy_pass`
/// (the URL → the location's name, or URL/ → / when it has no URI part); with none
/// set, that default where there is a `proxy_pass` without variables.
pub(super) fn redirects(
    set: &super::settings::Settings,
    h: &Handlers,
    name: &str,
) -> Result<Vec<crate::config::model::Redirect>, ConfError> {
    use super::settings::RedirectSet;
    let default = |at: Option<&(Arc<str>, usize)>| -> Result<_, ConfError> {
        let err = |m: &str| at.map_or_else(|| ConfError::plain(m), |(f, l)| ConfError::at(m, f, *l));
        let (Some(url), Some(pp)) = (&h.proxy_url, &h.proxy) else {
            return Err(if h.proxy_dyn.is_some() {
                err("\"proxy_redirect default\" cannot be used with \"proxy_pass\" directive with variables")
            } else {
                err("\"proxy_redirect default\" should be placed after the \"proxy_pass\" directive")
            });
        };
        let (from, to) = match pp.uri {
            Some(_) => (url.clone(), name.to_string()),
            None => (format!("{url}/"), "/".to_string()),
        };
        let lit = |s: &str| crate::config::vars::Template::literal(s);
        Ok(crate::config::model::Redirect::Prefix(lit(&from), lit(&to)))
    };
    match &set.proxy_redirect {
        Some(RedirectSet::Off) => Ok(Vec::new()),
        Some(RedirectSet::Rules(rules)) => rules
            .iter()
            .map(|r| match r {
                Ok(r) => Ok(r.clone()),
                Err(at) => default(Some(at)),
            })
            .collect(),
        None if h.proxy_url.is_some() => Ok(vec![default(None)?]),
        None => Ok(Vec::new()),
    }
}

impl Builder<'_> {
    /// `proxy_pass URL` into `h`: once per level; a URI part is refused in a regex
    /// location or an `if` unless the URL has variables (then it is evaluated per
    /// request).
    pub(super) fn proxy_pass_into(&mut self, h: &mut Handlers, d: &Directive, regex: bool, in_if: bool) -> Done {
        if h.proxy.is_some() || h.proxy_dyn.is_some() {
            return Err(d.err("\"proxy_pass\" directive is duplicate"));
        }
        h.tunnel_last = false;
        one_arg(d)?;
        let url = &d.args[0];
        if url.contains('$') {
            if url.starts_with("https://") {
                h.https_at = Some((d.file.clone(), d.line));
            }
            h.proxy_dyn = Some(Template::compile(url).map_err(|e| e.at_dir(d))?);
            return Ok(());
        }
        let (pp, https) = self.proxy_pass(d)?;
        if https {
            if in_if {
                return Err(d.err("\"proxy_pass https://\" inside \"if\" is not supported yet"));
            }
            h.https_at = Some((d.file.clone(), d.line));
        }
        if pp.uri.is_some() && in_if {
            return Err(d.err(
                "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
            ));
        }
        if pp.uri.is_some() && regex {
            return Err(d.err("\"proxy_pass\" cannot have URI part in location given by regular expression"));
        }
        h.proxy = Some(pp);
        h.proxy_url = Some(url.clone());
        Ok(())
    }

    /// `tunnel_pass [ADDRESS]` (default `$host:$request_port`): an `upstream` name or
    /// an address without variables is resolved now, as `proxy_pass`.
    pub(super) fn tunnel_pass_into(&mut self, h: &mut Handlers, d: &Directive) -> Done {
        if h.tunnel.is_some() {
            return Err(d.err("\"tunnel_pass\" directive is duplicate"));
        }
        let url = match d.args.as_slice() {
            [] => "$host:$request_port",
            [u] => u.as_str(),
            _ => return Err(nargs(d)),
        };
        self.saw_tunnel = true;
        h.tunnel_last = true;
        let pass = if url.contains('$') {
            TunnelPass::Dynamic(DynPass {
                url: Template::compile(url).map_err(|e| e.at_dir(d))?,
                tls: None,
            })
        } else {
            let mut as_url = d.clone();
            as_url.args = vec![format!("http://{url}")];
            let (mut pp, _) = self.proxy_pass(&as_url)?;
            if pp.uri.is_some() {
                return Err(d.err(format!("invalid URL \"{url}\"")));
            }
            pp.proxy_port = split_host_port(url).and_then(|(_, p)| p).unwrap_or(80);
            TunnelPass::Static(pp)
        };
        h.tunnel = Some(Arc::new(pass));
        Ok(())
    }

    /// What needs the merged settings: TLS for `proxy_pass https://`.
    pub(super) fn finish_handlers(&mut self, h: &mut Handlers, set: &Settings) -> Done {
        let tls = match h.https_at.take() {
            Some(at) => Some(self.upstream_tls(set, &at)?),
            None => None,
        };
        if let Some(pp) = h.proxy.as_mut() {
            pp.tls = tls.clone();
        }
        if let Some(url) = h.proxy_dyn.clone() {
            h.built_dyn = Some(Arc::new(DynPass { url, tls }));
        }
        Ok(())
    }
}
