//! The main context (workers, daemon, pid, error log) and the `events { … }` block.
//!
//! [`Main`] is the state of the walk over the whole tree: the [`Config`] with nginx's
//! defaults, filled in as directives are met, and which of the blocks that may appear
//! once (`events`, `http`) were seen.

use super::args::{block, flag, nargs, no_block, one_arg, parse_num, parse_time};
use super::table::{walk, Cmd, Ctx, Done};
use super::{BuildEnv, Builder};
use crate::config::model::{Config, CpuAffinity, ErrorLog, Http, LogLevel, LogTarget};
use crate::config::parser::Directive;
use crate::config::ConfError;
use crate::net::DriverChoice;

/// The main context's directives.
pub(super) const MAIN: &[Cmd<Main>] = &[
    Cmd::run("worker_processes", worker_processes),
    Cmd::run("worker_cpu_affinity", worker_cpu_affinity),
    Cmd::run("daemon", |_, m, d| flag(d).map(|on| m.cfg.daemon = on)),
    Cmd::run("user", user),
    Cmd::run("load_module", load_module),
    Cmd::run("worker_priority", worker_priority),
    Cmd::run("working_directory", working_directory),
    Cmd::run("env", env),
    Cmd::run("master_process", |_, _, d| flag(d).map(drop)),
    Cmd::run("pid", pid),
    Cmd::run("error_log", |b, m, d| error_log(d, b.env).map(|l| m.cfg.error_log = l)),
    Cmd::run("worker_rlimit_nofile", worker_rlimit_nofile),
    Cmd::run("worker_shutdown_timeout", worker_shutdown_timeout),
    Cmd::run("events", events),
    Cmd::run("http", http),
    Cmd::run("stream", stream),
];

/// The `events` block's directives.
pub(super) const EVENTS: &[Cmd<Config>] = &[
    Cmd::run("worker_connections", worker_connections),
    Cmd::run("use", use_driver).unknown_elsewhere(),
];

/// The configuration being built, and which once-only blocks were seen.
pub(super) struct Main {
    cfg: Config,
    seen_events: bool,
    seen_http: bool,
    seen_user: bool,
    /// The stream block's listen groups (joined to http's at the end: either block
    /// may come first).
    stream_listens: Option<Vec<crate::config::model::ListenGroup>>,
}

impl Main {
    /// nginx's defaults (ringx's own `pid` path).
    pub(super) fn new(env: &BuildEnv) -> Main {
        let cfg = Config {
            worker_processes: 1,
            worker_cpu_affinity: CpuAffinity::None,
            worker_connections: 512,
            worker_rlimit_nofile: None,
            worker_shutdown_timeout: None,
            driver: DriverChoice::Auto,
            daemon: true,
            user: None,
            worker_priority: None,
            working_directory: None,
            env: Vec::new(),
            pid: Some(env.path("logs/ringx.pid")),
            error_log: ErrorLog {
                target: LogTarget::Stderr,
                level: LogLevel::Error,
            },
            http: Http::default(),
            stream: Default::default(),
            warnings: Vec::new(),
        };
        Main {
            cfg,
            seen_events: false,
            seen_http: false,
            stream_listens: None,
            seen_user: false,
        }
    }

    /// The configuration, once the whole tree is read (`events` is required, as nginx).
    pub(super) fn finish(mut self) -> Result<Config, ConfError> {
        if !self.seen_events {
            return Err(ConfError::plain("no \"events\" section in configuration"));
        }
        // Root without `user`: nginx's default user, never root.
        if !self.seen_user && crate::runtime::privileges::is_root() {
            self.cfg.user = Some(crate::runtime::privileges::default_user().map_err(ConfError::plain)?);
        }
        for g in self.stream_listens.take().unwrap_or_default() {
            if self.cfg.http.listens.iter().any(|h| h.addr == g.addr) {
                return Err(ConfError::plain(format!(
                    "duplicate \"{}\" address and port pair in \"http\" and \"stream\"",
                    g.addr
                )));
            }
            self.cfg.http.listens.push(g);
        }
        Ok(self.cfg)
    }
}

/// `worker_processes N|auto` (`auto`: the CPUs this process may run on).
fn worker_processes(_: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    m.cfg.worker_processes = if d.args[0] == "auto" {
        core_affinity::get_core_ids().map(|c| c.len()).unwrap_or(1).max(1)
    } else {
        parse_num(d, &d.args[0])? as usize
    };
    if m.cfg.worker_processes == 0 {
        return Err(d.err("invalid value \"0\" in \"worker_processes\" directive"));
    }
    Ok(())
}

/// `worker_cpu_affinity auto|MASK…` (nginx's bit strings, one per worker).
fn worker_cpu_affinity(_: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    no_block(d)?;
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    m.cfg.worker_cpu_affinity = if d.args[0] == "auto" {
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
    Ok(())
}

/// `user USER [GROUP]`: looked up now (nginx's `getpwnam`/`getgrnam` errors); when
/// ringx is not root, nginx's `[warn]` and ignored.
fn user(b: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    use crate::runtime::privileges;
    if d.args.is_empty() || d.args.len() > 2 {
        return Err(nargs(d));
    }
    m.seen_user = true;
    if !privileges::is_root() {
        b.warnings.push((
            LogLevel::Warn,
            d.err("the \"user\" directive makes sense only if the master process runs with super-user privileges, ignored"),
        ));
        return Ok(());
    }
    let creds = privileges::lookup(&d.args[0], d.args.get(1).map(String::as_str)).map_err(|e| d.err(e))?;
    m.cfg.user = Some(creds);
    Ok(())
}

/// `worker_priority N` (-20..20): the nice value ringx runs at.
fn worker_priority(_: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    match d.args[0].parse::<i32>() {
        Ok(n) if (-20..=20).contains(&n) => {
            m.cfg.worker_priority = Some(n);
            Ok(())
        }
        _ => Err(d.err(format!("invalid number \"{}\"", d.args[0]))),
    }
}

/// `working_directory DIR`: ringx's current directory (where core files go).
fn working_directory(b: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    m.cfg.working_directory = Some(b.env.path(&d.args[0]));
    Ok(())
}

/// `env NAME[=VALUE]`: VALUE is set in ringx's environment; a bare NAME is kept,
/// as everything is (nginx clears what is not named; ringx runs no code that reads it).
fn env(_: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    if let Some((k, v)) = d.args[0].split_once('=') {
        m.cfg.env.push((k.to_string(), v.to_string()));
    }
    Ok(())
}

/// `load_module FILE`: ringx loads no modules (what it has is built in); a
/// `[notice]` names the module, and its directives stay unknown, their errors
/// naming it ([`module_of`]).
fn load_module(b: &mut Builder<'_>, _: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    let file = d.args[0].rsplit('/').next().unwrap_or_default();
    let name = file.strip_suffix(".so").unwrap_or(file);
    b.warnings.push((
        LogLevel::Notice,
        d.err(format!(
            "module \"{name}\" is not loaded (ringx has no dynamic modules; its own are built in)"
        )),
    ));
    Ok(())
}

/// Directives of nginx modules ringx does not implement (those Debian and nginx.org
/// package as dynamic modules, and the common third-party ones): a pattern (`*` at
/// either end) and the module.
const FOREIGN: &[(&str, &str)] = &[
    ("echo*", "ngx_http_echo_module"),
    ("more_*_headers", "ngx_http_headers_more_filter_module"),
    ("geoip2*", "ngx_http_geoip2_module"),
    ("geoip_*", "ngx_http_geoip_module"),
    ("image_filter*", "ngx_http_image_filter_module"),
    ("xslt_*", "ngx_http_xslt_filter_module"),
    ("xml_entities", "ngx_http_xslt_filter_module"),
    ("perl", "ngx_http_perl_module"),
    ("perl_*", "ngx_http_perl_module"),
    ("fancyindex*", "ngx_http_fancyindex_module"),
    ("auth_pam*", "ngx_http_auth_pam_module"),
    ("dav_ext_*", "ngx_http_dav_ext_module"),
    ("dav_methods", "ngx_http_dav_module"),
    ("subs_filter*", "ngx_http_subs_filter_module"),
    ("fair", "ngx_http_upstream_fair_module"),
    ("*_cache_purge", "ngx_http_cache_purge_module"),
    ("*_by_lua*", "ngx_http_lua_module"),
    ("lua_*", "ngx_http_lua_module"),
    ("js_*", "ngx_http_js_module"),
    ("brotli*", "ngx_http_brotli_filter_module"),
    ("mail", "ngx_mail_module"),
    ("nchan_*", "ngx_nchan_module"),
    ("rtmp", "ngx_rtmp_module"),
    ("upload_progress*", "ngx_http_uploadprogress_module"),
    ("modsecurity*", "ngx_http_modsecurity_module"),
    ("vhost_traffic_status*", "ngx_http_vhost_traffic_status_module"),
];

/// The module a directive ringx does not know belongs to, if it is one of [`FOREIGN`].
pub(super) fn module_of(name: &str) -> Option<&'static str> {
    FOREIGN.iter().find_map(|(pat, m)| {
        let hit = match (pat.strip_prefix('*'), pat.strip_suffix('*')) {
            (Some(mid), _) if mid.ends_with('*') => name.contains(&mid[..mid.len() - 1]),
            (Some(suffix), _) => name.ends_with(suffix),
            (_, Some(prefix)) => name.starts_with(prefix),
            _ => match pat.split_once('*') {
                Some((a, z)) => name.starts_with(a) && name.ends_with(z) && name.len() >= a.len() + z.len(),
                None => name == *pat,
            },
        };
        hit.then_some(*m)
    })
}

/// `pid FILE|off` (`off` is ringx's).
fn pid(b: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    m.cfg.pid = if d.args[0] == "off" {
        None
    } else {
        Some(b.env.path(&d.args[0]))
    };
    Ok(())
}

fn worker_rlimit_nofile(_: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    m.cfg.worker_rlimit_nofile = Some(parse_num(d, &d.args[0])?);
    Ok(())
}

fn worker_shutdown_timeout(_: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    one_arg(d)?;
    m.cfg.worker_shutdown_timeout = Some(parse_time(d, &d.args[0])?);
    Ok(())
}

fn events(b: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    if m.seen_events {
        return Err(d.err("\"events\" directive is duplicate"));
    }
    m.seen_events = true;
    walk(b, block(d)?, Ctx::Events, EVENTS, &mut m.cfg, None).map(drop)
}

fn http(b: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    if m.seen_http {
        return Err(d.err("\"http\" directive is duplicate"));
    }
    m.seen_http = true;
    m.cfg.http = b.http(d)?;
    Ok(())
}

fn stream(b: &mut Builder<'_>, m: &mut Main, d: &Directive) -> Done {
    if m.stream_listens.is_some() {
        return Err(d.err("\"stream\" directive is duplicate"));
    }
    let (stream, listens) = b.stream(d)?;
    m.cfg.stream = stream;
    m.stream_listens = Some(listens);
    Ok(())
}

fn worker_connections(_: &mut Builder<'_>, c: &mut Config, d: &Directive) -> Done {
    one_arg(d)?;
    c.worker_connections = parse_num(d, &d.args[0])? as usize;
    Ok(())
}

/// `use io_uring|epoll;` (nginx's event-method names; `io_uring` is ringx's).
fn use_driver(_: &mut Builder<'_>, c: &mut Config, d: &Directive) -> Done {
    one_arg(d)?;
    c.driver = match d.args[0].as_str() {
        "io_uring" => DriverChoice::Uring,
        "epoll" => DriverChoice::Epoll,
        other => return Err(d.err(format!("invalid event type \"{other}\""))),
    };
    Ok(())
}

/// `error_log FILE|stderr [LEVEL]`; `syslog:` and `memory:` are refused.
pub(super) fn error_log(d: &Directive, env: &BuildEnv) -> Result<ErrorLog, ConfError> {
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

/// `error_log` in http, server or location: checked, not used (the process has one
/// error log, the main context's).
pub(super) fn check_error_log<S>(b: &mut Builder<'_>, _: &mut S, d: &Directive) -> Done {
    error_log(d, b.env).map(drop)
}
