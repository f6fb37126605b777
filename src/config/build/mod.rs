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

mod args;
mod health;
mod listen;
mod upstream;

pub use args::{parse_size_str, parse_time_str};
pub use listen::parse_listen_addr;

use args::{
    block, flag, nargs, no_block, one_arg, parse_num, parse_size, parse_time, split_host_port, time_arg, two_args,
};
use health::parse_match;
use listen::{listen, server_name, ListenSpec};

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
            let mut u = upstream::upstream(self.upstream_dirs[&n])?;
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
        http.listens = listen::group(listens)?;
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

#[cfg(test)]
mod tests;
