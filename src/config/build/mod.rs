//! Directive tree → typed [`Config`]: contexts, arguments, defaults, inheritance,
//! validation.
//!
//! Each context (main, events, http, upstream, server, location) has its own table of
//! directives below; a directive that is unknown, or known but in the wrong context, is
//! an `[emerg]` naming it with its file:line, as nginx does. Settings that nginx inherits
//! (http → server → location) are collected per level as `Option`s in [`Settings`] and
//! merged once, here, so the request path only reads resolved [`LocConf`]s. Like nginx,
//! a level that sets any `proxy_set_header` (or `add_header`, `access_log`) replaces the
//! whole inherited list.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::bytes::RegexBuilder;

use super::model::*;
use super::parser::Directive;
use super::vars::Template;
use super::ConfError;

pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// Directives accepted for compatibility that change nothing in ringx (see
/// docs/config.md for why each is safe to accept).
const NO_OP: &[(&str, &[Ctx])] = &[
    ("sendfile", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("tcp_nopush", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("tcp_nodelay", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("types_hash_max_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("types_hash_bucket_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("server_names_hash_bucket_size", &[Ctx::Http]),
    ("server_names_hash_max_size", &[Ctx::Http]),
    ("proxy_buffering", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_request_buffering", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_buffer_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_buffers", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_busy_buffers_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("client_body_buffer_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("client_header_buffer_size", &[Ctx::Http, Ctx::Server]),
    ("accept_mutex", &[Ctx::Events]),
    ("accept_mutex_delay", &[Ctx::Events]),
    ("multi_accept", &[Ctx::Events]),
    ("zone", &[Ctx::Upstream]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Main,
    Events,
    Http,
    Upstream,
    Server,
    Location,
}

/// Settings inherited http → server → location; `None` means "not set at this level".
#[derive(Debug, Clone, Default)]
struct Settings {
    proxy_set_header: Option<Vec<(String, Template)>>,
    proxy_hide_header: Option<Vec<String>>,
    proxy_pass_header: Option<Vec<String>>,
    proxy_pass_request_headers: Option<bool>,
    proxy_pass_request_body: Option<bool>,
    proxy_http_version: Option<HttpVersion>,
    proxy_connect_timeout: Option<Duration>,
    proxy_send_timeout: Option<Duration>,
    proxy_read_timeout: Option<Duration>,
    proxy_next_upstream: Option<NextUpstream>,
    proxy_next_upstream_tries: Option<u32>,
    proxy_next_upstream_timeout: Option<Duration>,
    add_header: Option<Vec<AddHeader>>,
    default_type: Option<String>,
    types: Option<Arc<HashMap<String, String>>>,
    access_log: Option<Vec<AccessLog>>,
    client_max_body_size: Option<u64>,
    client_body_timeout: Option<Duration>,
    client_header_timeout: Option<Duration>,
    large_client_header_buffers: Option<(usize, usize)>,
    send_timeout: Option<Duration>,
    keepalive_timeout: Option<Duration>,
    keepalive_requests: Option<u64>,
    server_tokens: Option<bool>,
}

macro_rules! inherit {
    ($child:expr, $parent:expr, $($f:ident),*) => {
        $( if $child.$f.is_none() { $child.$f = $parent.$f.clone(); } )*
    };
}

impl Settings {
    fn inherit(&mut self, p: &Settings) {
        inherit!(
            self,
            p,
            proxy_set_header,
            proxy_hide_header,
            proxy_pass_header,
            proxy_pass_request_headers,
            proxy_pass_request_body,
            proxy_http_version,
            proxy_connect_timeout,
            proxy_send_timeout,
            proxy_read_timeout,
            proxy_next_upstream,
            proxy_next_upstream_tries,
            proxy_next_upstream_timeout,
            add_header,
            default_type,
            types,
            access_log,
            client_max_body_size,
            client_body_timeout,
            client_header_timeout,
            large_client_header_buffers,
            send_timeout,
            keepalive_timeout,
            keepalive_requests,
            server_tokens
        );
    }
}

/// Paths and defaults the build needs from the command line.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// `-p`: relative log, pid and include paths resolve against it.
    pub prefix: PathBuf,
}

impl BuildEnv {
    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.prefix.join(p)
        }
    }
}

struct Builder<'a> {
    env: &'a BuildEnv,
    log_formats: HashMap<String, Arc<Template>>,
    log_files: Vec<PathBuf>,
    upstreams: Vec<Arc<Upstream>>,
    upstream_dirs: HashMap<String, &'a Directive>,
    matches: HashMap<String, Arc<Match>>,
}

/// Builds the typed configuration from a parsed tree.
pub fn build(tree: &[Directive], env: &BuildEnv) -> Result<Config, ConfError> {
    let mut b = Builder {
        env,
        log_formats: HashMap::new(),
        log_files: Vec::new(),
        upstreams: Vec::new(),
        upstream_dirs: HashMap::new(),
        matches: HashMap::new(),
    };
    b.log_formats
        .insert("combined".into(), Arc::new(Template::compile(COMBINED)?));
    let mut cfg = Config {
        worker_processes: 1,
        worker_cpu_affinity: CpuAffinity::None,
        worker_connections: 512,
        worker_rlimit_nofile: None,
        worker_shutdown_timeout: None,
        driver: crate::net::DriverChoice::Auto,
        daemon: true,
        pid: Some(env.path("logs/ringx.pid")),
        error_log: ErrorLog {
            target: LogTarget::Stderr,
            level: LogLevel::Error,
        },
        http: Http::default(),
    };
    let mut seen_http = false;
    let mut seen_events = false;
    for d in tree {
        match d.name.as_str() {
            "worker_processes" => {
                one_arg(d)?;
                cfg.worker_processes = if d.args[0] == "auto" {
                    core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1).max(1)
                } else {
                    parse_num(d, &d.args[0])? as usize
                };
                if cfg.worker_processes == 0 {
                    return Err(d.err("invalid value \"0\" in \"worker_processes\" directive"));
                }
            }
            "worker_cpu_affinity" => {
                no_block(d)?;
                if d.args.is_empty() {
                    return Err(nargs(d));
                }
                cfg.worker_cpu_affinity = if d.args[0] == "auto" {
                    CpuAffinity::Auto
                } else {
                    let mut masks = Vec::new();
                    for a in &d.args {
                        if a.is_empty() || a.len() > 64 || !a.bytes().all(|c| c == b'0' || c == b'1') {
                            return Err(d.err(format!("invalid character \"{a}\" in \"worker_cpu_affinity\"")));
                        }
                        masks.push(u64::from_str_radix(a, 2).unwrap_or(0));
                    }
                    CpuAffinity::Masks(masks)
                };
            }
            "daemon" => cfg.daemon = flag(d)?,
            "master_process" => {
                flag(d)?;
            }
            "pid" => {
                one_arg(d)?;
                cfg.pid = if d.args[0] == "off" {
                    None
                } else {
                    Some(env.path(&d.args[0]))
                };
            }
            "error_log" => cfg.error_log = error_log(d, env)?,
            "worker_rlimit_nofile" => {
                one_arg(d)?;
                cfg.worker_rlimit_nofile = Some(parse_num(d, &d.args[0])?);
            }
            "worker_shutdown_timeout" => {
                one_arg(d)?;
                cfg.worker_shutdown_timeout = Some(parse_time(d, &d.args[0])?);
            }
            "events" => {
                if seen_events {
                    return Err(d.err("\"events\" directive is duplicate"));
                }
                seen_events = true;
                for e in block(d)? {
                    match e.name.as_str() {
                        "worker_connections" => {
                            one_arg(e)?;
                            cfg.worker_connections = parse_num(e, &e.args[0])? as usize;
                        }
                        "use" => {
                            one_arg(e)?;
                            cfg.driver = parse_driver(e)?;
                        }
                        n if no_op(n, Ctx::Events) => {}
                        _ => return Err(unknown(e, Ctx::Events)),
                    }
                }
            }
            "http" => {
                if seen_http {
                    return Err(d.err("\"http\" directive is duplicate"));
                }
                seen_http = true;
                cfg.http = b.http(d)?;
            }
            _ => return Err(unknown(d, Ctx::Main)),
        }
    }
    if !seen_events {
        return Err(ConfError::plain("no \"events\" section in configuration"));
    }
    Ok(cfg)
}

/// `use io_uring|epoll;` (nginx's event-method names; `io_uring` is ringx's).
fn parse_driver(d: &Directive) -> Result<crate::net::DriverChoice, ConfError> {
    match d.args[0].as_str() {
        "io_uring" => Ok(crate::net::DriverChoice::Uring),
        "epoll" => Ok(crate::net::DriverChoice::Epoll),
        other => Err(d.err(format!("invalid event type \"{other}\""))),
    }
}

fn known_anywhere(name: &str) -> Option<Ctx> {
    const MAIN: &[&str] = &[
        "worker_processes",
        "worker_cpu_affinity",
        "daemon",
        "master_process",
        "pid",
        "worker_rlimit_nofile",
        "worker_shutdown_timeout",
        "events",
        "http",
    ];
    const HTTP: &[&str] = &["upstream", "server", "log_format"];
    const UPS: &[&str] = &["least_conn", "ip_hash", "keepalive"];
    const SERVER: &[&str] = &[
        "listen",
        "server_name",
        "location",
        "large_client_header_buffers",
        "client_header_timeout",
    ];
    const LOC: &[&str] = &["proxy_pass"];
    if MAIN.contains(&name) {
        Some(Ctx::Main)
    } else if name == "worker_connections" {
        Some(Ctx::Events)
    } else if HTTP.contains(&name) {
        Some(Ctx::Http)
    } else if UPS.contains(&name) {
        Some(Ctx::Upstream)
    } else if SERVER.contains(&name) {
        Some(Ctx::Server)
    } else if LOC.contains(&name) {
        Some(Ctx::Location)
    } else {
        None
    }
}

fn unknown(d: &Directive, _ctx: Ctx) -> ConfError {
    if known_anywhere(&d.name).is_some() || is_setting(&d.name) || NO_OP.iter().any(|(n, _)| *n == d.name) {
        d.err(format!("\"{}\" directive is not allowed here", d.name))
    } else {
        d.err(format!("unknown directive \"{}\"", d.name))
    }
}

fn no_op(name: &str, ctx: Ctx) -> bool {
    NO_OP.iter().any(|(n, ctxs)| *n == name && ctxs.contains(&ctx))
}

fn is_setting(name: &str) -> bool {
    matches!(
        name,
        "proxy_set_header"
            | "proxy_hide_header"
            | "proxy_pass_header"
            | "proxy_pass_request_headers"
            | "proxy_pass_request_body"
            | "proxy_http_version"
            | "proxy_connect_timeout"
            | "proxy_send_timeout"
            | "proxy_read_timeout"
            | "proxy_next_upstream"
            | "proxy_next_upstream_tries"
            | "proxy_next_upstream_timeout"
            | "add_header"
            | "default_type"
            | "types"
            | "access_log"
            | "client_max_body_size"
            | "client_body_timeout"
            | "send_timeout"
            | "keepalive_timeout"
            | "keepalive_requests"
            | "server_tokens"
            | "return"
            | "error_log"
    )
}

impl<'a> Builder<'a> {
    fn http(&mut self, d: &'a Directive) -> Result<Http, ConfError> {
        let items = block(d)?;
        // Upstreams and log formats first: servers refer to them wherever they appear.
        for e in items {
            match e.name.as_str() {
                "upstream" => {
                    if e.args.len() != 1 {
                        return Err(nargs(e));
                    }
                    let name = e.args[0].clone();
                    if self.upstream_dirs.contains_key(&name) {
                        return Err(e.err(format!("duplicate upstream \"{name}\"")));
                    }
                    self.upstream_dirs.insert(name, e);
                }
                "match" => {
                    if e.args.len() != 1 {
                        return Err(nargs(e));
                    }
                    let m = parse_match(e)?;
                    if self.matches.insert(e.args[0].clone(), Arc::new(m)).is_some() {
                        return Err(e.err(format!("duplicate match \"{}\"", e.args[0])));
                    }
                }
                "log_format" => {
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
                }
                _ => {}
            }
        }
        let mut names: Vec<_> = self.upstream_dirs.keys().cloned().collect();
        names.sort_by_key(|n| self.upstream_dirs[n].line);
        for n in names {
            let mut u = upstream(self.upstream_dirs[&n])?;
            u.index = self.upstreams.len();
            self.upstreams.push(Arc::new(u));
        }
        let mut http_set = Settings::default();
        let mut server_dirs = Vec::new();
        for e in items {
            match e.name.as_str() {
                "upstream" | "log_format" | "match" => {}
                "server" => server_dirs.push(e),
                "error_log" => {
                    error_log(e, self.env)?;
                }
                n if no_op(n, Ctx::Http) => {}
                _ => {
                    if !self.setting(e, &mut http_set, Ctx::Http)? {
                        return Err(unknown(e, Ctx::Http));
                    }
                }
            }
        }
        let mut http = Http::default();
        let mut listens: Vec<(ListenSpec, usize, &Directive)> = Vec::new();
        for sd in server_dirs {
            let idx = http.servers.len();
            let (server, ls) = self.server(sd, &http_set)?;
            for l in ls {
                listens.push((l, idx, sd));
            }
            http.servers.push(server);
        }
        // Group servers by listen address; the default server is the one marked
        // `default_server`, else the first.
        for (spec, idx, d) in listens {
            match http.listens.iter_mut().find(|g| g.addr == spec.addr) {
                Some(g) => {
                    if spec.default_server {
                        if g_default_marked(g) && g.default_server & !DEFAULT_MARK != idx {
                            return Err(d.err(format!("a duplicate default server for {}", spec.addr)));
                        }
                        g.default_server = idx | DEFAULT_MARK;
                        g.backlog = g.backlog.max(spec.backlog);
                    }
                    if !g.servers.contains(&idx) {
                        g.servers.push(idx);
                    }
                }
                None => http.listens.push(ListenGroup {
                    addr: spec.addr,
                    backlog: spec.backlog,
                    ipv6only: spec.ipv6only,
                    servers: vec![idx],
                    default_server: if spec.default_server { idx | DEFAULT_MARK } else { idx },
                }),
            }
        }
        for g in &mut http.listens {
            g.default_server &= !DEFAULT_MARK;
        }
        // Duplicate exact names on one address: nginx warns; ringx keeps the first too.
        http.upstreams = std::mem::take(&mut self.upstreams);
        Ok(http)
    }

    fn server(&mut self, d: &'a Directive, http_set: &Settings) -> Result<(Server, Vec<ListenSpec>), ConfError> {
        let mut set = Settings::default();
        let mut listens = Vec::new();
        let mut names: Vec<ServerName> = Vec::new();
        let mut primary = String::new();
        let mut loc_dirs = Vec::new();
        let mut ret = None;
        for e in block(d)? {
            match e.name.as_str() {
                "listen" => listens.push(listen(e)?),
                "server_name" => {
                    if e.args.is_empty() {
                        return Err(nargs(e));
                    }
                    for a in &e.args {
                        if primary.is_empty() && names.is_empty() {
                            primary = a.clone();
                        }
                        names.push(server_name(e, a)?);
                    }
                }
                "location" => loc_dirs.push(e),
                "return" => ret = Some(parse_return(e)?),
                "error_log" => {
                    error_log(e, self.env)?;
                }
                n if no_op(n, Ctx::Server) => {}
                _ => {
                    if !self.setting(e, &mut set, Ctx::Server)? {
                        return Err(unknown(e, Ctx::Server));
                    }
                }
            }
        }
        if listens.is_empty() {
            listens.push(ListenSpec::default_for(SocketAddr::from(([0, 0, 0, 0], 80))));
        }
        set.inherit(http_set);
        let (hbuf_n, hbuf_size) = set.large_client_header_buffers.unwrap_or((4, 8192));
        let client_header_timeout = set.client_header_timeout.unwrap_or(Duration::from_secs(60));
        let server_conf = Arc::new(self.resolve(&set, None));
        let mut prefix_locations = Vec::new();
        let mut regex_locations = Vec::new();
        for ld in loc_dirs {
            let loc = self.location(ld, &set)?;
            match loc.matcher {
                LocMatch::Regex { .. } => regex_locations.push(Arc::new(loc)),
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
        Ok((
            Server {
                names,
                primary_name: primary,
                prefix_locations,
                regex_locations,
                conf: server_conf,
                server_return: ret,
                client_header_timeout,
                large_header_size: hbuf_size,
                large_header_count: hbuf_n,
            },
            listens,
        ))
    }

    fn location(&mut self, d: &'a Directive, server_set: &Settings) -> Result<Location, ConfError> {
        let matcher = match d.args.as_slice() {
            [p] if p.starts_with('@') => {
                return Err(d.err("named locations are not supported"));
            }
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
                let re = RegexBuilder::new(p)
                    .case_insensitive(caseless)
                    .build()
                    .map_err(|e| d.err(format!("invalid regex \"{p}\": {e}")))?;
                LocMatch::Regex { re, caseless }
            }
            [m, _] => return Err(d.err(format!("invalid location modifier \"{m}\""))),
            _ => return Err(nargs(d)),
        };
        let mut set = Settings::default();
        let mut proxy_pass = None;
        let mut ret = None;
        let mut health: Option<&Directive> = None;
        let mut status = false;
        for e in block(d)? {
            match e.name.as_str() {
                "health_check" => health = Some(e),
                "ringx_status" => {
                    if !e.args.is_empty() {
                        return Err(nargs(e));
                    }
                    status = true;
                }
                "proxy_pass" => {
                    if proxy_pass.is_some() {
                        return Err(e.err("\"proxy_pass\" directive is duplicate"));
                    }
                    let pp = self.proxy_pass(e)?;
                    if pp.uri.is_some() && matches!(matcher, LocMatch::Regex { .. }) {
                        return Err(
                            e.err("\"proxy_pass\" cannot have URI part in location given by regular expression")
                        );
                    }
                    proxy_pass = Some(pp);
                }
                "return" => ret = Some(parse_return(e)?),
                "location" => return Err(e.err("nested locations are not supported")),
                "error_log" => {
                    error_log(e, self.env)?;
                }
                n if no_op(n, Ctx::Location) => {}
                _ => {
                    if !self.setting(e, &mut set, Ctx::Location)? {
                        return Err(unknown(e, Ctx::Location));
                    }
                }
            }
        }
        if let Some(h) = health {
            let Some(pp) = &proxy_pass else {
                return Err(h.err("\"health_check\" needs \"proxy_pass\" in the same location"));
            };
            let hc = self.health_check(h, pp)?;
            if pp.upstream.health_check.set(hc).is_err() {
                return Err(h.err(format!(
                    "duplicate \"health_check\" for upstream \"{}\"",
                    pp.upstream.name
                )));
            }
        }
        set.inherit(server_set);
        let mut conf = self.resolve(&set, proxy_pass);
        conf.ret = ret;
        conf.status = status;
        Ok(Location {
            matcher,
            conf: Arc::new(conf),
        })
    }

    fn proxy_pass(&mut self, d: &Directive) -> Result<ProxyPass, ConfError> {
        one_arg(d)?;
        let url = &d.args[0];
        if url.contains('$') {
            return Err(d.err("variables in \"proxy_pass\" are not supported"));
        }
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(d.err("\"proxy_pass\" to https:// is not supported yet"));
        } else {
            return Err(d.err(format!("invalid URL prefix in \"{url}\"")));
        };
        let (hostport, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        if hostport.is_empty() {
            return Err(d.err(format!("no host in upstream \"{url}\"")));
        }
        if let Some(u) = self.upstreams.iter().find(|u| u.name == hostport && !u.implicit) {
            return Ok(ProxyPass {
                upstream: u.clone(),
                proxy_host: hostport.to_string(),
                proxy_port: 80,
                uri,
            });
        }
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| d.err(format!("invalid port in upstream \"{hostport}\"")))?;
        let port = port.unwrap_or(80);
        let addrs: Vec<SocketAddr> = (host.trim_matches(|c| c == '[' || c == ']'), port)
            .to_socket_addrs()
            .map_err(|_| d.err(format!("host not found in upstream \"{hostport}\"")))?
            .collect();
        if addrs.is_empty() {
            return Err(d.err(format!("host not found in upstream \"{hostport}\"")));
        }
        let name = hostport.to_string();
        let existing = self.upstreams.iter().find(|u| u.implicit && u.name == name).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let servers = addrs.iter().map(|a| UpstreamServer::new(*a, name.clone())).collect();
                let u = Arc::new(Upstream::new(
                    name.clone(),
                    self.upstreams.len(),
                    Balance::RoundRobin,
                    servers,
                    true,
                ));
                self.upstreams.push(u.clone());
                u
            }
        };
        Ok(ProxyPass {
            upstream,
            proxy_host: hostport.to_string(),
            proxy_port: port,
            uri,
        })
    }

    fn health_check(&self, d: &Directive, pp: &ProxyPass) -> Result<HealthCheck, ConfError> {
        let mut hc = HealthCheck {
            interval: Duration::from_secs(5),
            fails: 1,
            passes: 1,
            uri: "/".into(),
            port: None,
            matcher: None,
            host: pp.proxy_host.clone(),
        };
        for a in &d.args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| d.err(format!("invalid parameter \"{a}\"")))?;
            let positive = |v: &str| {
                v.parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| d.err(format!("invalid parameter \"{a}\"")))
            };
            match k {
                "interval" => hc.interval = parse_time(d, v)?.max(Duration::from_millis(10)),
                "fails" => hc.fails = positive(v)?,
                "passes" => hc.passes = positive(v)?,
                "uri" => hc.uri = v.to_string(),
                "port" => hc.port = Some(v.parse().map_err(|_| d.err(format!("invalid parameter \"{a}\"")))?),
                "match" => {
                    hc.matcher = Some(
                        self.matches
                            .get(v)
                            .cloned()
                            .ok_or_else(|| d.err(format!("match \"{v}\" not found")))?,
                    )
                }
                _ => return Err(d.err(format!("invalid parameter \"{a}\""))),
            }
        }
        if !hc.uri.starts_with('/') {
            return Err(d.err(format!("invalid uri \"{}\"", hc.uri)));
        }
        Ok(hc)
    }

    /// Parses an inheritable setting into `s`; false when `d` is not one.
    fn setting(&mut self, d: &Directive, s: &mut Settings, ctx: Ctx) -> Result<bool, ConfError> {
        match d.name.as_str() {
            "proxy_set_header" => {
                two_args(d)?;
                let t = Template::compile(&d.args[1]).map_err(|e| e.at_dir(d))?;
                s.proxy_set_header
                    .get_or_insert_with(Vec::new)
                    .push((d.args[0].clone(), t));
            }
            "proxy_hide_header" => {
                one_arg(d)?;
                s.proxy_hide_header
                    .get_or_insert_with(Vec::new)
                    .push(d.args[0].to_ascii_lowercase());
            }
            "proxy_pass_header" => {
                one_arg(d)?;
                s.proxy_pass_header
                    .get_or_insert_with(Vec::new)
                    .push(d.args[0].to_ascii_lowercase());
            }
            "proxy_pass_request_headers" => s.proxy_pass_request_headers = Some(flag(d)?),
            "proxy_pass_request_body" => s.proxy_pass_request_body = Some(flag(d)?),
            "proxy_http_version" => {
                one_arg(d)?;
                s.proxy_http_version = Some(match d.args[0].as_str() {
                    "1.0" => HttpVersion::Http10,
                    "1.1" => HttpVersion::Http11,
                    v => {
                        return Err(d.err(format!(
                            "invalid value \"{v}\" in \"proxy_http_version\" directive, it must be \"1.0\" or \"1.1\""
                        )))
                    }
                });
            }
            "proxy_connect_timeout" => s.proxy_connect_timeout = Some(time_arg(d)?),
            "proxy_send_timeout" => s.proxy_send_timeout = Some(time_arg(d)?),
            "proxy_read_timeout" => s.proxy_read_timeout = Some(time_arg(d)?),
            "proxy_next_upstream" => {
                if d.args.is_empty() {
                    return Err(nargs(d));
                }
                let mut n = NextUpstream::off();
                for a in &d.args {
                    match a.as_str() {
                        "off" if d.args.len() == 1 => {}
                        "error" => n.error = true,
                        "timeout" => n.timeout = true,
                        "invalid_header" => n.invalid_header = true,
                        "non_idempotent" => n.non_idempotent = true,
                        "http_500" | "http_502" | "http_503" | "http_504" | "http_403" | "http_404" | "http_429" => {
                            let code: u16 = a[5..].parse().unwrap_or(0);
                            if let Some(i) = NextUpstream::STATUSES.iter().position(|&c| c == code) {
                                n.statuses[i] = true;
                            }
                        }
                        _ => return Err(d.err(format!("invalid value \"{a}\" in \"proxy_next_upstream\" directive"))),
                    }
                }
                s.proxy_next_upstream = Some(n);
            }
            "proxy_next_upstream_tries" => {
                one_arg(d)?;
                s.proxy_next_upstream_tries = Some(parse_num(d, &d.args[0])? as u32);
            }
            "proxy_next_upstream_timeout" => s.proxy_next_upstream_timeout = Some(time_arg(d)?),
            "add_header" => {
                let always = match d.args.len() {
                    2 => false,
                    3 if d.args[2] == "always" => true,
                    3 => return Err(d.err(format!("invalid parameter \"{}\"", d.args[2]))),
                    _ => return Err(nargs(d)),
                };
                let value = Template::compile(&d.args[1]).map_err(|e| e.at_dir(d))?;
                s.add_header.get_or_insert_with(Vec::new).push(AddHeader {
                    name: d.args[0].clone(),
                    value,
                    always,
                });
            }
            "default_type" => {
                one_arg(d)?;
                s.default_type = Some(d.args[0].clone());
            }
            "types" => {
                let mut m = HashMap::new();
                for t in block(d)? {
                    for ext in &t.args {
                        m.insert(ext.to_ascii_lowercase(), t.name.clone());
                    }
                }
                s.types = Some(Arc::new(m));
            }
            "access_log" => {
                if d.args.is_empty() {
                    return Err(nargs(d));
                }
                let list = s.access_log.get_or_insert_with(Vec::new);
                if d.args[0] == "off" {
                    list.clear();
                    // An explicit `off` at this level: keep an empty list (not None).
                    return Ok(true);
                }
                let fmt_name = d.args.get(1).map(String::as_str).unwrap_or("combined");
                let format = self
                    .log_formats
                    .get(fmt_name)
                    .cloned()
                    .ok_or_else(|| d.err(format!("unknown log format \"{fmt_name}\"")))?;
                for a in d.args.iter().skip(2) {
                    if !(a.starts_with("buffer=") || a.starts_with("flush=")) {
                        return Err(d.err(format!("unsupported parameter \"{a}\" in \"access_log\"")));
                    }
                }
                if d.args[0].contains('$') {
                    return Err(d.err("variables in \"access_log\" paths are not supported"));
                }
                let path = if d.args[0] == "stderr" {
                    PathBuf::from("/dev/stderr")
                } else {
                    self.env.path(&d.args[0])
                };
                let file_id = match self.log_files.iter().position(|p| *p == path) {
                    Some(i) => i,
                    None => {
                        self.log_files.push(path.clone());
                        self.log_files.len() - 1
                    }
                };
                list.push(AccessLog { path, format, file_id });
            }
            "client_max_body_size" => {
                one_arg(d)?;
                s.client_max_body_size = Some(parse_size(d, &d.args[0])?);
            }
            "client_body_timeout" => s.client_body_timeout = Some(time_arg(d)?),
            "client_header_timeout" if ctx != Ctx::Location => s.client_header_timeout = Some(time_arg(d)?),
            "large_client_header_buffers" if ctx != Ctx::Location => {
                two_args(d)?;
                let n = parse_num(d, &d.args[0])? as usize;
                let size = parse_size(d, &d.args[1])? as usize;
                if n == 0 || size < 16 {
                    return Err(d.err("invalid value in \"large_client_header_buffers\""));
                }
                s.large_client_header_buffers = Some((n, size));
            }
            "send_timeout" => s.send_timeout = Some(time_arg(d)?),
            "keepalive_timeout" => {
                if d.args.is_empty() || d.args.len() > 2 {
                    return Err(nargs(d));
                }
                s.keepalive_timeout = Some(parse_time(d, &d.args[0])?);
            }
            "keepalive_requests" => {
                one_arg(d)?;
                s.keepalive_requests = Some(parse_num(d, &d.args[0])?);
            }
            "server_tokens" => s.server_tokens = Some(flag(d)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn resolve(&mut self, s: &Settings, proxy_pass: Option<ProxyPass>) -> LocConf {
        let mut headers: Vec<(String, Template)> = s.proxy_set_header.clone().unwrap_or_default();
        let has = |h: &[(String, Template)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if !has(&headers, "host") {
            headers.push(("Host".into(), Template::compile("$proxy_host").expect("builtin")));
        }
        if !has(&headers, "connection") {
            headers.push(("Connection".into(), Template::compile("close").expect("builtin")));
        }
        let set_header_names = headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
        let pass = s.proxy_pass_header.clone().unwrap_or_default();
        let mut hide: Vec<String> = [
            "date",
            "server",
            "x-pad",
            "x-accel-expires",
            "x-accel-redirect",
            "x-accel-limit-rate",
            "x-accel-buffering",
            "x-accel-charset",
        ]
        .iter()
        .map(|h| h.to_string())
        .filter(|h| !pass.contains(h))
        .collect();
        hide.extend(s.proxy_hide_header.clone().unwrap_or_default());
        let access_logs = match &s.access_log {
            Some(l) => l.clone(),
            None => {
                let path = self.env.path("logs/access.log");
                let file_id = match self.log_files.iter().position(|p| *p == path) {
                    Some(i) => i,
                    None => {
                        self.log_files.push(path.clone());
                        self.log_files.len() - 1
                    }
                };
                vec![AccessLog {
                    path,
                    format: self.log_formats["combined"].clone(),
                    file_id,
                }]
            }
        };
        LocConf {
            proxy_pass,
            ret: None,
            proxy_set_headers: headers,
            set_header_names,
            proxy_hide_headers: hide,
            proxy_pass_request_headers: s.proxy_pass_request_headers.unwrap_or(true),
            proxy_pass_request_body: s.proxy_pass_request_body.unwrap_or(true),
            proxy_http_version: s.proxy_http_version.unwrap_or(HttpVersion::Http10),
            proxy_connect_timeout: s.proxy_connect_timeout.unwrap_or(Duration::from_secs(60)),
            proxy_send_timeout: s.proxy_send_timeout.unwrap_or(Duration::from_secs(60)),
            proxy_read_timeout: s.proxy_read_timeout.unwrap_or(Duration::from_secs(60)),
            proxy_next_upstream: s.proxy_next_upstream.unwrap_or_else(NextUpstream::nginx_default),
            proxy_next_upstream_tries: s.proxy_next_upstream_tries.unwrap_or(0),
            proxy_next_upstream_timeout: s.proxy_next_upstream_timeout.filter(|d| !d.is_zero()),
            add_headers: s.add_header.clone().unwrap_or_default(),
            default_type: s.default_type.clone().unwrap_or_else(|| "text/plain".into()),
            types: s.types.clone().unwrap_or_else(|| Arc::new(default_types())),
            access_logs,
            client_max_body_size: s.client_max_body_size.unwrap_or(1024 * 1024),
            client_body_timeout: s.client_body_timeout.unwrap_or(Duration::from_secs(60)),
            send_timeout: s.send_timeout.unwrap_or(Duration::from_secs(60)),
            keepalive_timeout: s.keepalive_timeout.unwrap_or(Duration::from_secs(75)),
            keepalive_requests: s.keepalive_requests.unwrap_or(1000),
            server_tokens: s.server_tokens.unwrap_or(true),
            status: false,
        }
    }
}

const DEFAULT_MARK: usize = 1 << (usize::BITS - 1);

fn g_default_marked(g: &ListenGroup) -> bool {
    g.default_server & DEFAULT_MARK != 0
}

fn default_types() -> HashMap<String, String> {
    [
        ("html", "text/html"),
        ("htm", "text/html"),
        ("gif", "image/gif"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

#[derive(Debug, Clone)]
struct ListenSpec {
    addr: SocketAddr,
    default_server: bool,
    backlog: i32,
    ipv6only: bool,
}

impl ListenSpec {
    fn default_for(addr: SocketAddr) -> Self {
        ListenSpec {
            addr,
            default_server: false,
            backlog: 511,
            ipv6only: true,
        }
    }
}

fn listen(d: &Directive) -> Result<ListenSpec, ConfError> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let a = &d.args[0];
    let addr = parse_listen_addr(a).ok_or_else(|| d.err(format!("invalid listen address \"{a}\"")))?;
    let mut spec = ListenSpec::default_for(addr);
    for p in &d.args[1..] {
        match p.as_str() {
            "default_server" | "default" => spec.default_server = true,
            "reuseport" | "deferred" | "bind" => {}
            "ipv6only=on" => spec.ipv6only = true,
            "ipv6only=off" => spec.ipv6only = false,
            "ssl" | "http2" | "quic" | "proxy_protocol" => {
                return Err(d.err(format!("the \"{p}\" parameter of \"listen\" is not supported yet")))
            }
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

/// Splits `host:port` (`[v6]:port`); the port is optional.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

fn server_name(d: &Directive, a: &str) -> Result<ServerName, ConfError> {
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

fn upstream(d: &Directive) -> Result<Upstream, ConfError> {
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

/// `match NAME { status …; header …; body ~ "…"; }` (nginx Plus syntax).
fn parse_match(d: &Directive) -> Result<Match, ConfError> {
    let mut m = Match::default();
    for e in block(d)? {
        match e.name.as_str() {
            "status" => {
                let mut neg = false;
                for a in &e.args {
                    if a == "!" {
                        neg = true;
                        continue;
                    }
                    let bad = || e.err(format!("invalid status \"{a}\""));
                    let (lo, hi) = match a.split_once('-') {
                        Some((l, h)) => (l.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?),
                        None => {
                            let v: u16 = a.parse().map_err(|_| bad())?;
                            (v, v)
                        }
                    };
                    m.status.push((lo, hi, neg));
                }
            }
            "header" => {
                let cond = match e.args.as_slice() {
                    [n] if n.starts_with('!') => (n[1..].to_ascii_lowercase(), HeaderCond::Absent),
                    [n] => (n.to_ascii_lowercase(), HeaderCond::Present),
                    [n, op, v] => {
                        let re = |v: &str| {
                            RegexBuilder::new(v)
                                .build()
                                .map_err(|x| e.err(format!("invalid regex \"{v}\": {x}")))
                        };
                        let c = match op.as_str() {
                            "=" => HeaderCond::Eq(v.clone()),
                            "!=" => HeaderCond::Ne(v.clone()),
                            "~" => HeaderCond::Re(re(v)?),
                            "!~" => HeaderCond::NotRe(re(v)?),
                            _ => return Err(e.err(format!("invalid operator \"{op}\""))),
                        };
                        (n.to_ascii_lowercase(), c)
                    }
                    _ => return Err(nargs(e)),
                };
                m.headers.push(cond);
            }
            "body" => match e.args.as_slice() {
                [op, v] if op == "~" || op == "!~" => {
                    let r = RegexBuilder::new(v)
                        .build()
                        .map_err(|x| e.err(format!("invalid regex \"{v}\": {x}")))?;
                    m.body.push((r, op == "!~"));
                }
                _ => return Err(nargs(e)),
            },
            _ => return Err(unknown(e, Ctx::Http)),
        }
    }
    Ok(m)
}

fn build_chash(u: &mut Upstream) {
    crate::balance::hash::build_points(u);
}

fn parse_return(d: &Directive) -> Result<Return, ConfError> {
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

fn error_log(d: &Directive, env: &BuildEnv) -> Result<ErrorLog, ConfError> {
    if d.args.is_empty() || d.args.len() > 2 {
        return Err(nargs(d));
    }
    let target = if d.args[0] == "stderr" {
        LogTarget::Stderr
    } else if d.args[0].starts_with("syslog:") || d.args[0].starts_with("memory:") {
        return Err(d.err(format!("\"{}\" error logs are not supported", d.args[0])));
    } else {
        LogTarget::File(env.path(&d.args[0]))
    };
    let level = match d.args.get(1) {
        Some(l) => LogLevel::parse(l).ok_or_else(|| d.err(format!("invalid log level \"{l}\"")))?,
        None => LogLevel::Error,
    };
    Ok(ErrorLog { target, level })
}

fn block(d: &Directive) -> Result<&[Directive], ConfError> {
    d.block
        .as_deref()
        .ok_or_else(|| d.err(format!("directive \"{}\" has no opening \"{{\"", d.name)))
}

fn no_block(d: &Directive) -> Result<(), ConfError> {
    if d.block.is_some() {
        return Err(d.err(format!("directive \"{}\" is not terminated by \";\"", d.name)));
    }
    Ok(())
}

fn nargs(d: &Directive) -> ConfError {
    d.err(format!("invalid number of arguments in \"{}\" directive", d.name))
}

fn one_arg(d: &Directive) -> Result<(), ConfError> {
    no_block(d)?;
    if d.args.len() != 1 {
        return Err(nargs(d));
    }
    Ok(())
}

fn two_args(d: &Directive) -> Result<(), ConfError> {
    no_block(d)?;
    if d.args.len() != 2 {
        return Err(nargs(d));
    }
    Ok(())
}

fn flag(d: &Directive) -> Result<bool, ConfError> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(d.err(format!(
            "invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"",
            d.name
        ))),
    }
}

fn parse_num(d: &Directive, v: &str) -> Result<u64, ConfError> {
    v.parse()
        .map_err(|_| d.err(format!("invalid value \"{v}\" in \"{}\" directive", d.name)))
}

fn time_arg(d: &Directive) -> Result<Duration, ConfError> {
    one_arg(d)?;
    parse_time(d, &d.args[0])
}

/// nginx time: `30`, `30s`, `500ms`, `1m30s`, `2h`, `1d`.
pub(crate) fn parse_time(d: &Directive, v: &str) -> Result<Duration, ConfError> {
    parse_time_str(v).ok_or_else(|| d.err(format!("invalid value \"{v}\" in \"{}\" directive", d.name)))
}

pub fn parse_time_str(v: &str) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: u64 = v[start..i].parse().ok()?;
        let unit_start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &v[unit_start..i] {
            "" | "s" => 1000,
            "ms" => 1,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "M" => 2_592_000_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(mult)?)?;
    }
    Some(Duration::from_millis(total_ms))
}

/// nginx size: `512`, `8k`, `10M`, `1g`.
pub(crate) fn parse_size(d: &Directive, v: &str) -> Result<u64, ConfError> {
    parse_size_str(v).ok_or_else(|| d.err(format!("\"{}\" directive invalid value", d.name)))
}

pub fn parse_size_str(v: &str) -> Option<u64> {
    let (num, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1024),
        b'm' | b'M' => (&v[..v.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parser::parse_str;

    fn cfg(s: &str) -> Result<Config, ConfError> {
        let t = parse_str(s, "t.conf", Path::new("/tmp"))?;
        build(
            &t,
            &BuildEnv {
                prefix: PathBuf::from("/tmp/"),
            },
        )
    }

    const BASE: &str = "events {} http { access_log off; upstream be { least_conn; server 127.0.0.1:9001 max_fails=3 fail_timeout=30s; server 127.0.0.1:9002 weight=2 backup; keepalive 8; }\n";

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size_str("10M"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size_str("8k"), Some(8192));
        assert_eq!(parse_size_str("0"), Some(0));
        assert_eq!(parse_size_str("x"), None);
        assert_eq!(parse_time_str("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_time_str("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time_str("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time_str("75"), Some(Duration::from_secs(75)));
        assert_eq!(parse_time_str("5x"), None);
    }

    #[test]
    fn upstream_and_inheritance() {
        let c = cfg(&format!(
            "{BASE} proxy_set_header X-A a; client_max_body_size 2m;\n server {{ listen 127.0.0.1:8080; server_name a.com *.b.com;\n location /x {{ proxy_pass http://be; proxy_set_header X-B b; }}\n location /y {{ proxy_pass http://be/v1/; client_max_body_size 10M; }} }} }}"
        ))
        .unwrap();
        let u = &c.http.upstreams[0];
        assert_eq!(u.balance, Balance::LeastConn);
        assert_eq!(u.servers[0].max_fails, 3);
        assert_eq!(u.servers[0].fail_timeout, Duration::from_secs(30));
        assert!(u.servers[1].backup);
        assert_eq!(u.servers[1].weight, 2);
        assert_eq!(u.keepalive, 8);
        let s = &c.http.servers[0];
        let x = s.prefix_locations.iter().find(|l| l.prefix() == Some("/x")).unwrap();
        let names: Vec<_> = x.conf.proxy_set_headers.iter().map(|(k, _)| k.as_str()).collect();
        // proxy_set_header at the location replaces the inherited X-A.
        assert_eq!(names, vec!["X-B", "Host", "Connection"]);
        assert_eq!(x.conf.client_max_body_size, 2 * 1024 * 1024);
        let y = s.prefix_locations.iter().find(|l| l.prefix() == Some("/y")).unwrap();
        assert_eq!(y.conf.client_max_body_size, 10 * 1024 * 1024);
        assert_eq!(y.conf.proxy_pass.as_ref().unwrap().uri.as_deref(), Some("/v1/"));
        let ya: Vec<_> = y.conf.proxy_set_headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(ya, vec!["X-A", "Host", "Connection"]);
        assert_eq!(c.http.listens.len(), 1);
    }

    #[test]
    fn errors_name_directive_and_line() {
        let e = cfg("events {}\nhttp {\n server {\n  lissten 80;\n }\n}").unwrap_err();
        assert_eq!(e.to_string(), "unknown directive \"lissten\" in t.conf:4");
        let e = cfg("events {}\nhttp {\n proxy_pass http://x;\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"proxy_pass\" directive is not allowed here in t.conf:3"
        );
        let e =
            cfg("events {}\nhttp {\n server {\n location / { proxy_pass http://nope_upstream; }\n }\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "host not found in upstream \"nope_upstream\" in t.conf:4"
        );
        let e = cfg("events {}\nhttp {\n client_max_body_size 10Q;\n}").unwrap_err();
        assert!(e.to_string().contains("t.conf:3"), "{e}");
        let e = cfg("events {}\nhttp {\n server {\n return 200 $nope;\n }\n}").unwrap_err();
        assert_eq!(e.to_string(), "unknown \"nope\" variable in t.conf:4");
        let e = cfg("http {}").unwrap_err();
        assert_eq!(e.to_string(), "no \"events\" section in configuration");
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen_addr("80"), Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(parse_listen_addr("[::]:8080"), Some("[::]:8080".parse().unwrap()));
        assert_eq!(parse_listen_addr("127.0.0.1"), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(parse_listen_addr("*:81"), Some("0.0.0.0:81".parse().unwrap()));
    }

    #[test]
    fn default_server_and_groups() {
        let c = cfg("events {} http { access_log off; server { listen 127.0.0.1:81; server_name a; } server { listen 127.0.0.1:81 default_server; server_name b; } server { listen 127.0.0.1:82; } }").unwrap();
        assert_eq!(c.http.listens.len(), 2);
        assert_eq!(c.http.listens[0].servers, vec![0, 1]);
        assert_eq!(c.http.listens[0].default_server, 1);
        assert_eq!(c.http.listens[1].default_server, 2);
    }
}
