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

use regex::bytes::RegexBuilder;

use super::model::*;
use super::parser::Directive;
use super::vars::Template;
use super::ConfError;

mod args;
mod health;
mod listen;
mod settings;
mod upstream;

pub use args::{parse_size_str, parse_time_str};
pub use listen::parse_listen_addr;

use args::{block, flag, nargs, no_block, one_arg, parse_num, parse_time, split_host_port};
use health::parse_match;
use listen::{listen, server_name, ListenSpec};
use settings::Settings;

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
    if known_anywhere(&d.name).is_some()
        || (settings::SETTINGS.iter().any(|(n, _)| *n == d.name) || d.name == "return" || d.name == "error_log")
        || NO_OP.iter().any(|(n, _)| *n == d.name)
    {
        d.err(format!("\"{}\" directive is not allowed here", d.name))
    } else {
        d.err(format!("unknown directive \"{}\"", d.name))
    }
}

fn no_op(name: &str, ctx: Ctx) -> bool {
    NO_OP.iter().any(|(n, ctxs)| *n == name && ctxs.contains(&ctx))
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
                    if !http_set.parse(self, e, Ctx::Http)? {
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
                    if !set.parse(self, e, Ctx::Server)? {
                        return Err(unknown(e, Ctx::Server));
                    }
                }
            }
        }
        if listens.is_empty() {
            listens.push(ListenSpec::default_for(SocketAddr::from(([0, 0, 0, 0], 80))));
        }
        set.inherit(http_set);
        let (hbuf_n, hbuf_size) = set.header_buffers();
        let client_header_timeout = set.header_timeout();
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
                    if !set.parse(self, e, Ctx::Location)? {
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
