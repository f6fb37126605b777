//! `stream { … }` (nginx's ngx_stream_* modules): upstream blocks, log formats, and
//! TCP servers that join a client to an upstream server byte for byte.
//!
//! Upstream blocks are read first (a server may name one above its block), with the
//! http block's `upstream` reader and so the same balancers. Settings at the stream
//! level are inherited by its servers, as nginx's. Log formats are the stream
//! block's own (no predefined `combined`), as nginx keeps them apart from http's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::args::{block, flag, nargs, one_arg, parse_num, time_arg};
use super::listen::parse_listen_addr;
use super::table::{walk, Cmd, Ctx, Done};
use super::Builder;
use crate::config::model::{AccessLog, Cidr, ListenGroup, Stream, StreamServer, Upstream};
use crate::config::parser::Directive;
use crate::config::vars::Template;
use crate::config::ConfError;

/// The settings both levels take (a server inherits what it does not set).
#[derive(Default, Clone)]
struct Settings {
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    next_upstream: Option<bool>,
    next_upstream_tries: Option<u32>,
    next_upstream_timeout: Option<Duration>,
    half_close: Option<bool>,
    pp_timeout: Option<Duration>,
    allow: Option<Vec<(Cidr, bool)>>,
    access_log: Option<Vec<AccessLog>>,
    limit_conn: Option<Vec<crate::config::model::LimitConn>>,
    limit_conn_log_level: Option<crate::config::model::LogLevel>,
    limit_conn_dry_run: Option<bool>,
    upload_rate: Option<u64>,
    download_rate: Option<u64>,
    socket_keepalive: Option<bool>,
}

impl Settings {
    fn inherit(&mut self, p: &Settings) {
        macro_rules! take {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = p.$f.clone(); } )* };
        }
        take!(
            connect_timeout,
            timeout,
            next_upstream,
            next_upstream_tries,
            next_upstream_timeout,
            half_close,
            pp_timeout,
            allow,
            access_log,
            limit_conn,
            limit_conn_log_level,
            limit_conn_dry_run,
            upload_rate,
            download_rate,
            socket_keepalive
        );
    }
}

/// A `listen`: (address, backlog, `proxy_protocol`, where).
type Listen = (SocketAddr, i32, bool, (Arc<str>, usize));

/// A stream block or a server in it.
#[derive(Default)]
pub(super) struct Level {
    set: Settings,
    listens: Vec<Listen>,
    /// `proxy_protocol on`: a v1 header to the upstream.
    pp_out: Option<bool>,
    pass: Option<Arc<Upstream>>,
    ret: Option<Template>,
}

macro_rules! settings_cmds {
    ($($extra:expr),* $(,)?) => {
        &[
            $($extra,)*
            Cmd::run("proxy_connect_timeout", |_, l, d| time_arg(d).map(|t| l.set.connect_timeout = Some(t))),
            Cmd::run("proxy_timeout", |_, l, d| time_arg(d).map(|t| l.set.timeout = Some(t))),
            Cmd::run("proxy_next_upstream", |_, l, d| flag(d).map(|f| l.set.next_upstream = Some(f))),
            Cmd::run("proxy_next_upstream_tries", |_, l, d| {
                one_arg(d)?;
                l.set.next_upstream_tries = Some(parse_num(d, &d.args[0])? as u32);
                Ok(())
            }),
            Cmd::run("proxy_next_upstream_timeout", |_, l, d| {
                time_arg(d).map(|t| l.set.next_upstream_timeout = Some(t))
            }),
            Cmd::run("proxy_half_close", |_, l, d| flag(d).map(|f| l.set.half_close = Some(f))),
            Cmd::run("proxy_protocol_timeout", |_, l, d| time_arg(d).map(|t| l.set.pp_timeout = Some(t))),
            Cmd::run("allow", |_, l, d| access(l, d, false)),
            Cmd::run("deny", |_, l, d| access(l, d, true)),
            Cmd::run("access_log", access_log),
            Cmd::run("limit_conn", |b, l, d| {
                let prev = l.set.limit_conn.take();
                l.set.limit_conn = Some(super::settings::limit_conn(b, d, prev)?);
                Ok(())
            }),
            Cmd::run("limit_conn_log_level", |b, l, d| {
                l.set.limit_conn_log_level = Some(super::settings::limit_level(b, d, None)?);
                Ok(())
            }),
            Cmd::run("limit_conn_dry_run", |_, l, d| flag(d).map(|f| l.set.limit_conn_dry_run = Some(f))),
            Cmd::run("proxy_socket_keepalive", |_, l, d| flag(d).map(|f| l.set.socket_keepalive = Some(f))),
            Cmd::run("proxy_upload_rate", |_, l, d| {
                one_arg(d)?;
                l.set.upload_rate = Some(super::args::parse_size(d, &d.args[0])?);
                Ok(())
            }),
            Cmd::run("proxy_download_rate", |_, l, d| {
                one_arg(d)?;
                l.set.download_rate = Some(super::args::parse_size(d, &d.args[0])?);
                Ok(())
            }),
            Cmd::run("error_log", super::main_ctx::check_error_log),
            // Tuning knobs with no effect a client or upstream can observe.
            Cmd::run("tcp_nodelay", |_, _, d| flag(d).map(drop)),
            Cmd::run("proxy_buffer_size", |_, _, d| one_arg(d)),
            Cmd::run("preread_buffer_size", |_, _, d| one_arg(d)),
            Cmd::run("preread_timeout", |_, _, d| time_arg(d).map(drop)),

        ]
    };
}

/// The stream block's directives.
pub(super) const STREAM: &[Cmd<Level>] = settings_cmds![
    Cmd::early("upstream"),
    Cmd::early("log_format"),
    Cmd::early("limit_conn_zone"),
    Cmd::later("server"),
];

/// A stream server's directives.
pub(super) const SERVER: &[Cmd<Level>] = settings_cmds![
    Cmd::run("listen", listen),
    Cmd::run("proxy_pass", proxy_pass),
    Cmd::run("proxy_protocol", |_, l, d| flag(d).map(|f| l.pp_out = Some(f))),
    Cmd::run("return", |_, l, d| {
        one_arg(d)?;
        l.ret = Some(Template::compile(&d.args[0]).map_err(|e| e.at_dir(d))?);
        Ok(())
    }),
];

impl Builder<'_> {
    /// The stream block: its upstreams, formats and servers, and the listen groups
    /// of those servers (for the master to bind).
    pub(super) fn stream(&mut self, d: &Directive) -> Result<(Stream, Vec<ListenGroup>), ConfError> {
        let items = block(d)?;
        // nginx keeps stream's log formats and upstreams apart from http's.
        let http_formats = std::mem::take(&mut self.log_formats);
        let http_upstreams = std::mem::take(&mut self.upstreams);
        let r = self.stream_block(items);
        self.log_formats = http_formats;
        self.upstreams = http_upstreams;
        r
    }

    fn stream_block(&mut self, items: &[Directive]) -> Result<(Stream, Vec<ListenGroup>), ConfError> {
        for f in items.iter().filter(|d| d.name == "log_format") {
            self.log_format(f)?;
        }
        for z in items.iter().filter(|d| d.name == "limit_conn_zone") {
            self.limit_zone(z)?;
        }
        for u in items.iter().filter(|d| d.name == "upstream") {
            if d_arg(u).is_some_and(|n| self.upstreams.iter().any(|x| x.name == n)) {
                return Err(u.err(format!("duplicate upstream \"{}\"", u.args[0])));
            }
            if u.args.len() != 1 {
                return Err(nargs(u));
            }
            if let Some(x) = block(u)?.iter().find(|x| {
                matches!(
                    x.name.as_str(),
                    "ip_hash" | "keepalive" | "keepalive_timeout" | "keepalive_requests"
                )
            }) {
                return Err(x.err(format!("\"{}\" directive is not allowed here", x.name)));
            }
            let mut up = self.upstream(u)?;
            up.index = self.upstreams.len();
            self.upstreams.push(Arc::new(up));
        }
        let mut top = Level::default();
        let server_dirs = walk(self, items, Ctx::Stream, STREAM, &mut top, None)?;
        let mut stream = Stream::default();
        let mut groups: Vec<ListenGroup> = Vec::new();
        for sd in server_dirs {
            let mut l = Level::default();
            walk(self, block(sd)?, Ctx::StreamServer, SERVER, &mut l, None)?;
            l.set.inherit(&top.set);
            let idx = stream.servers.len();
            if l.listens.is_empty() {
                return Err(sd.err("no \"listen\" is defined for server"));
            }
            if l.pass.is_none() && l.ret.is_none() {
                return Err(sd.err("no handler for server"));
            }
            for (addr, backlog, pp, (file, line)) in l.listens.drain(..) {
                if groups.iter().any(|g| g.addr == addr) {
                    return Err(ConfError::at(
                        format!("duplicate \"{addr}\" address and port pair"),
                        &file,
                        line,
                    ));
                }
                groups.push(ListenGroup {
                    addr,
                    backlog,
                    ipv6only: true,
                    ssl: false,
                    http2: false,
                    servers: Vec::new(),
                    default_server: 0,
                    stream: Some(idx),
                    proxy_protocol: pp,
                    deferred: false,
                });
            }
            stream.servers.push(server(l));
        }
        stream.upstreams = std::mem::take(&mut self.upstreams);
        Ok((stream, groups))
    }
}

fn d_arg(d: &Directive) -> Option<&str> {
    d.args.first().map(String::as_str)
}

fn server(l: Level) -> StreamServer {
    let s = l.set;
    StreamServer {
        proxy_protocol: l.pp_out.unwrap_or(false),
        proxy_protocol_timeout: s.pp_timeout.unwrap_or(Duration::from_secs(30)),
        upstream: l.pass,
        ret: l.ret,
        connect_timeout: s.connect_timeout.unwrap_or(Duration::from_secs(60)),
        timeout: s.timeout.unwrap_or(Duration::from_secs(600)),
        next_upstream: s.next_upstream.unwrap_or(true),
        next_upstream_tries: s.next_upstream_tries.unwrap_or(0),
        next_upstream_timeout: s.next_upstream_timeout.unwrap_or(Duration::ZERO),
        half_close: s.half_close.unwrap_or(false),
        allow: s.allow.unwrap_or_default(),
        access_logs: s.access_log.unwrap_or_default(),
        limit_conn: s.limit_conn.unwrap_or_default(),
        limit_conn_log_level: s.limit_conn_log_level.unwrap_or(crate::config::model::LogLevel::Error),
        limit_conn_dry_run: s.limit_conn_dry_run.unwrap_or(false),
        upload_rate: s.upload_rate.unwrap_or(0),
        download_rate: s.download_rate.unwrap_or(0),
        socket_keepalive: s.socket_keepalive.unwrap_or(false),
    }
}

/// `listen ADDR:PORT|PORT [proxy_protocol] [backlog=N] [reuseport] [bind]
/// [ipv6only=on|off]`; `udp` and `ssl` are not supported yet.
fn listen(_: &mut Builder<'_>, l: &mut Level, d: &Directive) -> Done {
    let Some(a) = d.args.first() else {
        return Err(nargs(d));
    };
    let has_port = a.parse::<u16>().is_ok() || a.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    if !has_port {
        return Err(d.err(format!("no port in \"{a}\" of the \"listen\" directive")));
    }
    let addr = parse_listen_addr(a).ok_or_else(|| d.err(format!("invalid listen address \"{a}\"")))?;
    let mut backlog = 511;
    let mut pp = false;
    for p in &d.args[1..] {
        match p.as_str() {
            "reuseport" | "bind" | "ipv6only=on" | "ipv6only=off" => {}
            "proxy_protocol" => pp = true,
            "udp" | "ssl" => {
                return Err(d.err(format!(
                    "the \"{p}\" parameter of \"listen\" in \"stream\" is not supported yet"
                )))
            }
            _ => match p.strip_prefix("backlog=") {
                Some(v) => backlog = v.parse().map_err(|_| d.err(format!("invalid backlog \"{v}\"")))?,
                None => return Err(d.err(format!("invalid parameter \"{p}\""))),
            },
        }
    }
    l.listens.push((addr, backlog, pp, (d.file.clone(), d.line)));
    Ok(())
}

/// `proxy_pass UPSTREAM|HOST:PORT` (a host resolved now, into an implicit upstream).
fn proxy_pass(b: &mut Builder<'_>, l: &mut Level, d: &Directive) -> Done {
    one_arg(d)?;
    if l.pass.is_some() {
        return Err(d.err("\"proxy_pass\" directive is duplicate"));
    }
    let a = &d.args[0];
    if a.contains('$') {
        return Err(d.err("variables in \"proxy_pass\" of \"stream\" are not supported yet"));
    }
    if let Some(u) = b.upstreams.iter().find(|u| u.name == *a && !u.implicit) {
        l.pass = Some(u.clone());
        return Ok(());
    }
    if let Some(path) = a.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(d.err(format!("no path in the unix domain socket \"{a}\"")));
        }
        let peer = crate::net::Peer::Unix(std::path::Path::new(path).into());
        l.pass = Some(implicit(b, a, vec![peer]));
        return Ok(());
    }
    let (host, port) = match super::args::split_host_port(a) {
        Some((h, Some(p))) => (h, p),
        _ => return Err(d.err(format!("no port in upstream \"{a}\""))),
    };
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host.trim_matches(['[', ']']), port))
        .map_err(|_| d.err(format!("host not found in upstream \"{a}\"")))?
        .collect();
    l.pass = Some(implicit(b, a, addrs.into_iter().map(Into::into).collect()));
    Ok(())
}

/// The implicit upstream of `proxy_pass ADDRESS` (one per address as written).
fn implicit(b: &mut Builder<'_>, name: &str, peers: Vec<crate::net::Peer>) -> Arc<Upstream> {
    if let Some(u) = b.upstreams.iter().find(|u| u.implicit && u.name == name) {
        return u.clone();
    }
    let servers = peers
        .into_iter()
        .map(|p| crate::config::model::UpstreamServer::new(p, name.to_string()))
        .collect();
    let u = Arc::new(Upstream::new(
        name.to_string(),
        b.upstreams.len(),
        crate::config::model::Balance::RoundRobin,
        servers,
        true,
    ));
    b.upstreams.push(u.clone());
    u
}

fn access(l: &mut Level, d: &Directive, deny: bool) -> Done {
    one_arg(d)?;
    let c =
        super::settings::parse_cidr(&d.args[0]).ok_or_else(|| d.err(format!("invalid parameter \"{}\"", d.args[0])))?;
    l.set.allow.get_or_insert_with(Vec::new).push((c, deny));
    Ok(())
}

/// `access_log PATH FORMAT [buffer=] [flush=]` | `off` (stream has no default
/// format: FORMAT is required, as nginx).
fn access_log(b: &mut Builder<'_>, l: &mut Level, d: &Directive) -> Done {
    match d.args.as_slice() {
        [off] if off == "off" => {
            l.set.access_log = Some(Vec::new());
            Ok(())
        }
        [_] => Err(nargs(d)),
        _ => {
            let prev = l.set.access_log.take();
            l.set.access_log = Some(super::settings::access_log_entry(b, d, prev)?);
            Ok(())
        }
    }
}
