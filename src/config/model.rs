//! The typed configuration: what the workers read.
//!
//! Built from the directive tree by [`super::build`], with nginx's defaults and
//! inheritance already applied, so the request path reads plain fields. A [`Config`] is
//! immutable; a reload builds a new one and workers swap their `Arc` to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::bytes::Regex;

use super::vars::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Crit,
    Alert,
    Emerg,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "crit" => LogLevel::Crit,
            "alert" => LogLevel::Alert,
            "emerg" => LogLevel::Emerg,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Crit => "crit",
            LogLevel::Alert => "alert",
            LogLevel::Emerg => "emerg",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ErrorLog {
    pub target: LogTarget,
    pub level: LogLevel,
}

#[derive(Debug, Clone)]
pub enum CpuAffinity {
    /// No pinning.
    None,
    /// Worker i on the i-th CPU of the process's allowed set.
    Auto,
    /// One CPU mask per worker (the last repeats), as nginx's bit strings.
    Masks(Vec<u64>),
}

/// The whole configuration.
#[derive(Debug)]
pub struct Config {
    pub worker_processes: usize,
    pub worker_cpu_affinity: CpuAffinity,
    pub worker_connections: usize,
    pub worker_rlimit_nofile: Option<u64>,
    pub worker_shutdown_timeout: Option<Duration>,
    /// `events { use ...; }`: the I/O driver.
    pub driver: crate::net::DriverChoice,
    pub daemon: bool,
    /// `user USER [GROUP]` when ringx runs as root (ignored with a `[warn]` otherwise).
    pub user: Option<crate::runtime::privileges::Credentials>,
    /// `worker_priority` (a nice value).
    pub worker_priority: Option<i32>,
    /// `working_directory`.
    pub working_directory: Option<PathBuf>,
    /// `env NAME=VALUE`s.
    pub env: Vec<(String, String)>,
    pub pid: Option<PathBuf>,
    pub error_log: ErrorLog,
    pub http: Http,
    /// `stream { … }`: the L4 proxy.
    pub stream: Stream,
    /// What the operator should hear about the configuration (`[warn]`).
    pub warnings: Vec<(LogLevel, super::ConfError)>,
}

/// `stream { … }` (ngx_stream_*): TCP servers joined to upstreams byte for byte.
#[derive(Debug, Default)]
pub struct Stream {
    pub servers: Vec<StreamServer>,
    /// The stream block's upstreams (named and implicit); `Upstream::index` is the
    /// position here (workers keep their stream balancers in this order).
    pub upstreams: Vec<Arc<Upstream>>,
}

/// One `server` of `stream`.
#[derive(Debug)]
pub struct StreamServer {
    /// `proxy_protocol on`: the upstream gets a v1 header first.
    pub proxy_protocol: bool,
    /// `proxy_protocol_timeout`: for the header of a `listen … proxy_protocol`.
    pub proxy_protocol_timeout: Duration,
    /// `proxy_pass UPSTREAM|ADDRESS`.
    pub upstream: Option<Arc<Upstream>>,
    /// `return VALUE`: sent, then the connection closes.
    pub ret: Option<Template>,
    pub connect_timeout: Duration,
    /// `proxy_timeout`: the longest wait for a read or a write on either side.
    pub timeout: Duration,
    pub next_upstream: bool,
    pub next_upstream_tries: u32,
    pub next_upstream_timeout: Duration,
    pub half_close: bool,
    pub allow: Vec<(Cidr, bool)>,
    pub access_logs: Vec<AccessLog>,
    /// `limit_conn` lines and their settings (closed at once when refused, `$status`
    /// 503).
    pub limit_conn: Vec<LimitConn>,
    pub limit_conn_log_level: LogLevel,
    pub limit_conn_dry_run: bool,
    /// `proxy_upload_rate`, `proxy_download_rate`: bytes per second read from the
    /// client / the upstream (0: no limit).
    pub upload_rate: u64,
    pub download_rate: u64,
    /// `proxy_socket_keepalive`: TCP keepalive probes on upstream connections.
    pub socket_keepalive: bool,
}

#[derive(Debug, Default)]
pub struct Http {
    pub servers: Vec<Server>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub listens: Vec<ListenGroup>,
    /// What requests must keep for variables the configuration uses
    /// ([`crate::config::vars::needs`] bits).
    pub needs: u8,
}

/// `map SOURCE $VAR { … }`: the value of `$VAR` for each value of SOURCE.
#[derive(Debug, Default)]
pub struct VarMap {
    pub source: Template,
    /// `hostnames`: wildcard keys, and a trailing `.` of the value ignored.
    pub hostnames: bool,
    /// Exact keys, lowercased (matching ignores case, as nginx's hash).
    pub exact: HashMap<Box<[u8]>, Template>,
    /// `*.example.com` (as `.example.com`, false) and `.example.com` (true).
    pub head: Vec<(Box<[u8]>, bool, Template)>,
    /// `www.example.*` (as `www.example.`).
    pub tail: Vec<(Box<[u8]>, Template)>,
    pub regex: Vec<(Regex, Template)>,
    /// `default` (an empty string when absent).
    pub default: Template,
    /// A `geo` block: networks, most specific first (the source is an address).
    pub geo: Option<Vec<(Cidr, Template)>>,
}

/// A location's configuration, its `if` blocks' and its nested locations'.
fn location_confs<'a>(l: &'a Location, out: &mut Vec<&'a LocConf>) {
    out.push(&l.conf);
    if_confs(&l.conf.rewrites, out);
    for n in l.nested_prefix.iter().chain(&l.nested_regex) {
        location_confs(n, out);
    }
}

/// The configurations of the `if` blocks among `ops`.
fn if_confs<'a>(ops: &'a [RwOp], out: &mut Vec<&'a LocConf>) {
    for op in ops {
        if let RwOp::If(b) = op {
            if let Some(c) = &b.conf {
                out.push(c);
            }
            if_confs(&b.ops, out);
        }
    }
}

impl VarMap {
    /// Which value a source value picks (nginx: exact, then the wildcards, the most
    /// specific first, then the regexes in order, then `default`).
    pub fn lookup(&self, val: &[u8]) -> &Template {
        if let Some(nets) = &self.geo {
            // nginx: a value that is no address counts as 255.255.255.255.
            let ip = std::str::from_utf8(val)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(std::net::IpAddr::from([255, 255, 255, 255]));
            return nets
                .iter()
                .find(|(n, _)| n.contains(ip))
                .map_or(&self.default, |(_, t)| t);
        }
        let val = match val.strip_suffix(b".") {
            Some(v) if self.hostnames => v,
            _ => val,
        };
        let low = val.to_ascii_lowercase();
        if let Some(t) = self.exact.get(&low[..]) {
            return t;
        }
        if val.is_empty() {
            return &self.default;
        }
        for (suffix, dot_form, t) in &self.head {
            if (low.len() > suffix.len() && low.ends_with(suffix)) || (*dot_form && low == suffix[1..]) {
                return t;
            }
        }
        for (prefix, t) in &self.tail {
            if low.len() > prefix.len() && low.starts_with(prefix) {
                return t;
            }
        }
        self.regex
            .iter()
            .find(|(re, _)| re.is_match(val))
            .map_or(&self.default, |(_, t)| t)
    }
}

/// All servers listening on one address.
#[derive(Debug, Clone)]
pub struct ListenGroup {
    pub addr: SocketAddr,
    pub backlog: i32,
    pub ipv6only: bool,
    /// `listen ... ssl` on any server of this address: TLS on every connection.
    pub ssl: bool,
    /// `listen ... http2` on any server of this address: HTTP/2 for every server.
    pub http2: bool,
    /// Indices into [`Http::servers`], in config order.
    pub servers: Vec<usize>,
    pub default_server: usize,
    /// A `stream` server's address (its index in [`Stream::servers`]): no HTTP here.
    pub stream: Option<usize>,
    /// `listen … proxy_protocol`: every connection begins with a PROXY header.
    pub proxy_protocol: bool,
    /// `listen … deferred`: TCP_DEFER_ACCEPT (a connection is accepted once its
    /// first bytes came, or after a second), as nginx sets it.
    pub deferred: bool,
}

#[derive(Debug, Clone)]
pub enum ServerName {
    Exact(String),
    /// `*.example.com` or `.example.com` (stored as the suffix `.example.com`;
    /// `dot_form` also matches `example.com` itself).
    Front {
        suffix: String,
        dot_form: bool,
    },
    /// `www.example.*` (stored as the prefix `www.example.`).
    Back(String),
    Regex(Regex),
}

#[derive(Debug)]
pub struct Server {
    /// Some level of the server has `tunnel_pass`: CONNECT is accepted (nginx's
    /// `allow_connect`; else 405).
    pub allow_connect: bool,
    pub names: Vec<ServerName>,
    /// `$server_name`: the first name.
    pub primary_name: String,
    /// Exact and prefix locations, longest first.
    pub prefix_locations: Vec<Arc<Location>>,
    /// Regex locations in config order.
    pub regex_locations: Vec<Arc<Location>>,
    /// Named locations (`location @name`).
    pub named_locations: Vec<Arc<Location>>,
    /// The http block's `map`s (for `$VAR`s they define).
    pub maps: Arc<Vec<VarMap>>,
    /// The server-level settings, used for requests that match no location and for
    /// server-level `return`.
    pub conf: Arc<LocConf>,
    /// The server's rewrite-module directives (`rewrite`, `return`, `set`, `if`,
    /// `break`), run before a location is chosen.
    pub rewrites: Vec<RwOp>,
    pub client_header_timeout: Duration,
    pub large_header_size: usize,
    pub large_header_count: usize,
    /// `underscores_in_headers`, `ignore_invalid_headers`.
    pub underscores_in_headers: bool,
    pub ignore_invalid_headers: bool,
    /// The TLS configuration (`ssl_certificate` set at this level or inherited).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `ssl_reject_handshake on`: handshakes that choose this server are refused.
    pub reject_handshake: bool,
    /// `http2 on` (or inherited from http).
    pub http2: bool,
    /// [`Server::tls`] offering `h2` first in ALPN (for `http2 on` or `listen ... http2`).
    pub tls_h2: Option<Arc<rustls::ServerConfig>>,
    /// `http2_max_concurrent_streams` (128).
    pub h2_max_streams: u32,
    /// `ssl_verify_client` (not off): how client certificates are judged.
    pub client_auth: Option<Arc<crate::config::tls::ClientAuth>>,
}

#[derive(Debug)]
pub enum LocMatch {
    Exact(String),
    Prefix {
        path: String,
        no_regex: bool,
    },
    /// `~` / `~*` (PCRE2); `groups`: it has capture groups, so a match sets `$1`…
    Regex {
        re: Pcre,
        caseless: bool,
        groups: bool,
    },
    /// `location @name`: reached only by name (`try_files`, `error_page`).
    Named(String),
}

#[derive(Debug)]
pub struct Location {
    pub matcher: LocMatch,
    pub conf: Arc<LocConf>,
    /// Nested locations: exact and prefix ones (longest first), and regex ones.
    pub nested_prefix: Vec<Arc<Location>>,
    pub nested_regex: Vec<Arc<Location>>,
}

impl Location {
    pub fn prefix(&self) -> Option<&str> {
        match &self.matcher {
            LocMatch::Exact(p) => Some(p),
            LocMatch::Prefix { path, .. } => Some(path),
            LocMatch::Regex { .. } | LocMatch::Named(_) => None,
        }
    }
}

/// `lingering_close`: whether ringx reads and drops what a client still sends
/// before closing after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lingering {
    Off,
    /// When the client may still be sending (nginx's default heuristic).
    On,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http10,
    Http11,
}

#[derive(Debug, Clone)]
pub struct ProxyPass {
    pub upstream: Arc<Upstream>,
    /// `$proxy_host`: the upstream name, or `host[:port]` as written.
    pub proxy_host: String,
    pub proxy_port: u16,
    /// The URI part of `proxy_pass`, if any (`proxy_pass http://b/v1/;` → `/v1/`).
    pub uri: Option<String>,
    /// `proxy_pass https://`: TLS to the upstream, with the location's `proxy_ssl_*`.
    pub tls: Option<Arc<UpstreamTls>>,
    /// `uri` is sent as it is (a URL with variables: nginx replaces no prefix).
    pub uri_exact: bool,
}

/// TLS to upstreams (`proxy_pass https://`, `proxy_ssl_*`), built at load time.
#[derive(Debug)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    /// `proxy_ssl_name`; `None`: `$proxy_host` (either without its port).
    pub name: Option<crate::config::vars::Template>,
    /// Tells this location's TLS settings apart in the keep-alive pool.
    pub id: u64,
}

#[derive(Debug, Clone)]
pub struct Return {
    pub code: u16,
    /// Text for non-redirect codes, URL for 301, 302, 303, 307 and 308.
    pub text: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct AddHeader {
    pub name: String,
    pub value: Template,
    pub always: bool,
}

#[derive(Debug, Clone)]
pub struct AccessLog {
    pub path: PathBuf,
    pub format: Arc<crate::config::vars::LogFormat>,
    /// Index into the worker's table of open log files.
    pub file_id: usize,
    /// `if=COND`: not logged when it renders empty or "0".
    pub cond: Option<Template>,
}

impl AccessLog {
    /// Whether this request or session is logged here (`if=`).
    pub fn wanted(&self, src: &dyn crate::config::vars::VarSource, scratch: &mut Vec<u8>) -> bool {
        let Some(c) = &self.cond else {
            return true;
        };
        scratch.clear();
        c.render(src, scratch);
        !(scratch.is_empty() || scratch == b"0")
    }
}

/// Conditions of `proxy_next_upstream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextUpstream {
    pub error: bool,
    pub timeout: bool,
    pub invalid_header: bool,
    pub non_idempotent: bool,
    /// Statuses (500, 502, 503, 504, 403, 404, 429) that count as a failure.
    pub statuses: [bool; 7],
}

impl NextUpstream {
    pub const STATUSES: [u16; 7] = [500, 502, 503, 504, 403, 404, 429];
    pub fn nginx_default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            non_idempotent: false,
            statuses: [false; 7],
        }
    }
    pub fn off() -> Self {
        NextUpstream {
            error: false,
            timeout: false,
            invalid_header: false,
            non_idempotent: false,
            statuses: [false; 7],
        }
    }
    pub fn status(&self, code: u16) -> bool {
        Self::STATUSES.iter().zip(self.statuses).any(|(&c, on)| on && c == code)
    }
}

/// `resolver ADDRESS… [valid=] [ipv4=] [ipv6=]`: the servers asked for names in
/// targets with variables ([`crate::net::resolver`]).
#[derive(Debug)]
pub struct Resolver {
    /// Tells resolvers apart in a worker's cache.
    pub id: usize,
    pub servers: Vec<std::net::SocketAddr>,
    /// `valid=`: how long answers are kept, whatever their TTL.
    pub valid: Option<Duration>,
    pub ipv4: bool,
    pub ipv6: bool,
}

/// A target evaluated per request: `proxy_pass` with variables, or `tunnel_pass`.
#[derive(Debug)]
pub struct DynPass {
    /// `proxy_pass http://$host$request_uri` as written; for `tunnel_pass`,
    /// `host:port` (nginx's default `$host:$request_port`).
    pub url: Template,
    /// `proxy_pass https://…`: TLS with the location's `proxy_ssl_*`.
    pub tls: Option<Arc<UpstreamTls>>,
}

/// `tunnel_pass [ADDRESS|UPSTREAM]` (ngx_http_tunnel_module): CONNECT requests are
/// joined to that address.
#[derive(Debug)]
pub enum TunnelPass {
    /// An `upstream` block or an address given without variables.
    Static(ProxyPass),
    Dynamic(DynPass),
}

/// Everything a request needs from its location, after inheritance.
#[derive(Debug)]
pub struct LocConf {
    pub proxy_pass: Option<ProxyPass>,
    /// `proxy_pass` with variables (then `proxy_pass` is `None`).
    pub proxy_dyn: Option<Arc<DynPass>>,
    /// `tunnel_pass`: this level's content handler for CONNECT.
    pub tunnel: Option<Arc<TunnelPass>>,
    pub resolver: Option<Arc<Resolver>>,
    pub resolver_timeout: Duration,
    pub tunnel_connect_timeout: Duration,
    pub tunnel_read_timeout: Duration,
    pub tunnel_send_timeout: Duration,
    pub tunnel_buffer_size: u64,
    pub tunnel_next_upstream: NextUpstream,
    pub tunnel_next_upstream_tries: u32,
    pub tunnel_next_upstream_timeout: Duration,
    /// `ringx_forward_allow`: internal destinations that requests naming their own
    /// target may reach on a forward-proxy server.
    pub ringx_forward_allow: Vec<Cidr>,
    /// The location's rewrite-module directives, in order (not inherited).
    pub rewrites: Arc<Vec<RwOp>>,
    /// Headers sent upstream, in order: the user's `proxy_set_header`s, then nginx's
    /// defaults (`Host: $proxy_host`, `Connection: close`) when not overridden. Names
    /// are as written; an empty value removes the header.
    pub proxy_set_headers: Vec<(String, Template)>,
    /// Lowercased names of `proxy_set_headers` (client headers with these names are
    /// not passed).
    pub set_header_names: Vec<String>,
    pub proxy_hide_headers: Vec<String>,
    pub proxy_pass_request_headers: bool,
    pub proxy_pass_request_body: bool,
    pub proxy_http_version: HttpVersion,
    pub proxy_connect_timeout: Duration,
    pub proxy_send_timeout: Duration,
    pub proxy_read_timeout: Duration,
    pub proxy_next_upstream: NextUpstream,
    pub proxy_next_upstream_tries: u32,
    pub proxy_next_upstream_timeout: Option<Duration>,
    pub add_headers: Vec<AddHeader>,
    pub default_type: String,
    pub types: Arc<HashMap<String, String>>,
    pub access_logs: Vec<AccessLog>,
    pub client_max_body_size: u64,
    pub client_body_timeout: Duration,
    pub send_timeout: Duration,
    /// `http2_chunk_size`: the largest DATA frame ringx sends on HTTP/2 (8k).
    pub http2_chunk_size: u64,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: u64,
    pub server_tokens: bool,
    pub lingering_close: Lingering,
    pub lingering_time: Duration,
    pub lingering_timeout: Duration,
    /// `ringx_status`: this location answers with the upstreams' state as JSON.
    pub status: bool,
    /// `root` (prefix-relative, nginx's default `html`) or the location's `alias`.
    pub doc_root: DocRoot,
    /// `index` names, in order (`index.html`).
    pub index: Vec<String>,
    /// `try_files` of this level (not inherited, as nginx: a server's applies only to
    /// requests that match no location).
    pub try_files: Option<Arc<TryFiles>>,
    /// `internal`: only internal redirects reach this location.
    pub internal: bool,
    pub log_not_found: bool,
    pub etag: bool,
    pub if_modified_since: crate::proto::conditional::Ims,
    /// `autoindex`, `autoindex_format json` (else html), `autoindex_exact_size`,
    /// `autoindex_localtime`.
    pub autoindex: bool,
    pub autoindex_format: bool,
    pub autoindex_exact_size: bool,
    pub autoindex_localtime: bool,
    pub absolute_redirect: bool,
    pub port_in_redirect: bool,
    pub server_name_in_redirect: bool,
    /// `gzip*`.
    pub gzip: Arc<crate::proto::gzip::GzipConf>,
    pub error_page: Vec<ErrorPage>,
    pub recursive_error_pages: bool,
    /// `proxy_intercept_errors`: an upstream's status ≥ 300 that `error_page` names
    /// is answered by the error page instead.
    pub proxy_intercept_errors: bool,
    pub expires: crate::proto::conditional::Expires,
    /// `rewrite_log`: each matching `rewrite` logged at `[notice]`.
    pub rewrite_log: bool,
    /// `set_real_ip_from` (when set), `real_ip_header`, `real_ip_recursive`.
    pub realip: Option<Arc<RealIp>>,
    /// `allow` / `deny` rules in order (`true`: deny); the first that matches decides.
    pub allow: Vec<(Cidr, bool)>,
    /// `auth_basic`: the realm (`None`: off); it works with `auth_basic_user_file`.
    pub auth_basic: Option<Template>,
    pub auth_basic_user_file: Option<UserFile>,
    /// `satisfy any` (else all): one access check that allows is enough.
    pub satisfy: bool,
    /// `auth_request URI` (`None`: off) and its `auth_request_set` variables.
    pub auth_request: Option<String>,
    pub auth_request_set: Vec<(usize, Template)>,
    /// `client_body_temp_path` (its levels do not matter: the files have no names).
    pub client_body_temp_path: Option<Arc<std::path::Path>>,
    /// `proxy_request_buffering`: a request body is read whole before it goes
    /// upstream (with a Content-Length), so the request can go to another server.
    pub proxy_request_buffering: bool,
    /// `client_body_buffer_size`: what of a request body read whole stays in memory.
    pub client_body_buffer_size: u64,
    /// `proxy_buffering`: a response is read ahead of a slow client (memory up to
    /// `proxy_buffers`, then a temporary file up to `proxy_max_temp_file_size`), so
    /// the upstream connection is done with as soon as the upstream is.
    pub proxy_buffering: bool,
    pub proxy_buffers: (u64, u64),
    /// `proxy_buffer_size`: the largest response head an upstream may send.
    pub proxy_buffer_size: u64,
    pub proxy_max_temp_file_size: u64,
    /// `proxy_temp_path`: where a buffered response's temporary file is made.
    pub proxy_temp_path: Option<Arc<std::path::Path>>,
    /// `limit_rate` and `limit_rate_after` (bytes; variables rendered per request).
    pub limit_rate: SizeValue,
    pub limit_rate_after: SizeValue,
    /// `proxy_limit_rate`: bytes per second read from the upstream (buffered
    /// responses only, as nginx).
    pub proxy_limit_rate: u64,
    /// `chunked_transfer_encoding` (off: a body of unknown length to an HTTP/1.1
    /// client ends with the connection instead).
    pub chunked_transfer_encoding: bool,
    /// `proxy_socket_keepalive`: TCP keepalive probes on upstream connections.
    pub proxy_socket_keepalive: bool,
    /// `proxy_ignore_client_abort`: a client that leaves does not abort the upstream.
    pub proxy_ignore_client_abort: bool,
    /// `proxy_set_body` (variables allowed): the body sent upstream instead of the
    /// client's.
    pub proxy_set_body: Option<Template>,
    /// `proxy_method` (variables allowed): the method sent upstream.
    pub proxy_method: Option<Template>,
    /// `proxy_ignore_headers`: the upstream fields not acted on.
    pub proxy_ignore_headers: IgnoredFields,
    /// `proxy_cookie_domain`, `proxy_cookie_path` (empty: off), `proxy_cookie_flags`.
    pub proxy_cookie_domain: Vec<Redirect>,
    pub proxy_cookie_path: Vec<Redirect>,
    pub proxy_cookie_flags: Vec<CookieFlags>,
    /// `proxy_redirect` rules in order (nginx's default rule made from `proxy_pass`
    /// when none is set; empty: off).
    pub proxy_redirect: Vec<Redirect>,
    /// `stub_status`: this location answers with the connection counters.
    pub stub_status: bool,
    /// `limit_req` lines in order, and their settings.
    pub limit_req: Vec<LimitReq>,
    pub limit_req_status: u16,
    pub limit_req_log_level: LogLevel,
    pub limit_req_dry_run: bool,
    /// `limit_conn` lines in order, and their settings.
    pub limit_conn: Vec<LimitConn>,
    pub limit_conn_status: u16,
    pub limit_conn_log_level: LogLevel,
    pub limit_conn_dry_run: bool,
}

/// `proxy_ignore_headers`: of the fields it names, those that do something in
/// ringx (the others only change what nginx caches, and ringx caches nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoredFields {
    pub accel_redirect: bool,
    pub accel_limit_rate: bool,
    pub accel_buffering: bool,
}

/// A size written as it is, or with variables (rendered when used; `0` then when it
/// is not a size, as nginx's `ngx_http_complex_value_size`).
#[derive(Debug, Clone)]
pub enum SizeValue {
    Fixed(u64),
    Var(Template),
}

/// One `proxy_redirect` rule for `Location` and `Refresh` from upstreams.
#[derive(Debug, Clone)]
pub enum Redirect {
    /// A prefix of the value (variables allowed), replaced by the replacement.
    Prefix(Template, Template),
    /// `~` / `~*`: a regex over the whole value, which the replacement (`$1`…)
    /// replaces.
    Regex(Arc<Pcre>, Template),
    /// `proxy_cookie_domain`'s: the whole value less a leading `.`, either case.
    Domain(Template, Template),
}

/// One `proxy_cookie_flags COOKIE FLAG…` line.
#[derive(Debug, Clone)]
pub struct CookieFlags {
    /// The cookie's name (either case), or `~REGEX` (caseless).
    pub name: Result<Template, Arc<Pcre>>,
    pub flags: Vec<Template>,
}

impl CookieFlags {
    pub fn matches(&self, src: &dyn crate::config::vars::VarSource, cookie: &[u8]) -> bool {
        match &self.name {
            Ok(t) => {
                let mut n = Vec::new();
                t.render(src, &mut n);
                n.eq_ignore_ascii_case(cookie)
            }
            Err(re) => re.0.is_match(cookie).unwrap_or(false),
        }
    }
}

/// `limit_req zone=NAME [burst=N] [nodelay|delay=N]` with its zone's key and rate.
#[derive(Debug, Clone)]
pub struct LimitReq {
    pub zone: Arc<crate::limit::ReqZone>,
    pub key: Arc<ZoneKey>,
    /// Requests per second, in thousandths (nginx's `ctx->rate`).
    pub rate: u64,
    /// In thousandths of a request, as nginx keeps them.
    pub burst: u64,
    pub delay: u64,
}

/// A zone's key: the template, and as written (for log lines).
#[derive(Debug)]
pub struct ZoneKey {
    pub value: Template,
    pub source: String,
}

/// `limit_conn ZONE NUMBER` with its zone's key.
#[derive(Debug, Clone)]
pub struct LimitConn {
    pub zone: Arc<crate::limit::ConnZone>,
    pub key: Arc<ZoneKey>,
    pub max: u64,
}

/// `auth_basic_user_file`: a path with variables, relative ones against the
/// configuration's directory (nginx's conf prefix), joined when it is rendered.
#[derive(Debug, Clone)]
pub struct UserFile {
    pub path: Template,
    pub base: PathBuf,
}

/// An address range (`set_real_ip_from 10.0.0.0/8`, `2001:db8::/32`, one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub bits: u8,
}

impl Cidr {
    /// The IPv4 networks that cover `lo..=hi` exactly, largest aligned blocks first
    /// (`geo`'s `ranges`, Squid's `A-B`).
    pub fn cover_v4(lo: std::net::Ipv4Addr, hi: std::net::Ipv4Addr) -> Vec<Cidr> {
        let (mut lo, hi) = (u64::from(u32::from(lo)), u64::from(u32::from(hi)));
        let mut out = Vec::new();
        while lo <= hi {
            let mut size = if lo == 0 { 1u64 << 32 } else { lo & lo.wrapping_neg() };
            while lo + size - 1 > hi {
                size >>= 1;
            }
            out.push(Cidr {
                addr: std::net::Ipv4Addr::from(lo as u32).into(),
                bits: 32 - size.trailing_zeros() as u8,
            });
            lo += size;
        }
        out
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        if self.bits == 0 {
            return true;
        }
        // An IPv4-mapped IPv6 peer matches IPv4 ranges (nginx's ngx_cidr_match).
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(a)) => mask_eq(&net.octets(), &a.octets(), self.bits),
            (V6(net), V6(a)) => mask_eq(&net.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn mask_eq(net: &[u8], a: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    net[..full] == a[..full] && (rest == 0 || (net[full] ^ a[full]) & (0xffu8 << (8 - rest)) == 0)
}

/// nginx's realip module for a location: whom to believe, and which header.
#[derive(Debug, Clone)]
pub struct RealIp {
    pub from: Vec<Cidr>,
    /// `real_ip_header` lowercased (`x-real-ip` by default; `x-forwarded-for` walks
    /// the list).
    pub header: String,
    pub recursive: bool,
}

/// A regex in nginx's dialect (PCRE2, as nginx uses it), matched on bytes.
/// Its named groups, as (group, index among the configuration's named captures):
/// a match sets `$name` (nginx makes each name a variable).
pub struct Pcre(pub pcre2::bytes::Regex, pub Vec<(usize, usize)>);

impl std::fmt::Debug for Pcre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pcre({:?})", self.0.as_str())
    }
}

/// One directive of nginx's rewrite module, run in order.
#[derive(Debug)]
pub enum RwOp {
    Rewrite(Box<Rewrite>),
    Return(Return),
    /// `set $VAR VALUE` (the variable's index among those `set` defines).
    Set(usize, Template),
    If(Box<IfBlock>),
    Break,
}

/// `rewrite REGEX REPLACEMENT [FLAG]`.
#[derive(Debug)]
pub struct Rewrite {
    pub re: Pcre,
    pub replacement: Template,
    pub flag: RwFlag,
    /// The replacement is a URL (`http://`, `https://`, `$scheme`): a redirect.
    pub redirect: bool,
    /// The replacement has `?` (it sets the arguments).
    pub args: bool,
    /// The original arguments are kept (the replacement does not end in `?`).
    pub add_args: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RwFlag {
    None,
    Last,
    Break,
    Redirect,
    Permanent,
}

/// `if (CONDITION) { … }`: its directives, and in a location the configuration the
/// request goes on with when it holds (nginx's "if in location").
#[derive(Debug)]
pub struct IfBlock {
    pub cond: Cond,
    pub ops: Vec<RwOp>,
    pub conf: Option<Arc<LocConf>>,
}

#[derive(Debug)]
pub enum Cond {
    /// `$var`: false when empty or `0`.
    Truthy(Template),
    /// `$var = STRING`, `!=`.
    Eq(Template, Template, bool),
    /// `~`, `~*`, `!~`, `!~*`.
    Re(Template, Pcre, bool),
    /// `-f`, `-d`, `-e`, `-x` and `!`.
    File(Template, FileTest, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTest {
    File,
    Dir,
    Exists,
    Exec,
}

/// `error_page CODE… [=[RESPONSE]] URI|@NAME|URL`: one entry per code.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub code: u16,
    /// `=CODE`: the response's status; `=`: the target's own (`Some(0)`); none: the
    /// error's code (nginx's 494-497 answer 400).
    pub overwrite: Option<u16>,
    pub target: Template,
    /// `?args` of a literal URI target.
    pub args: Option<String>,
}

/// Where a location's files are: `root` + `$uri`, or `alias` + the part of `$uri`
/// after the location's prefix.
#[derive(Debug, Clone, Default)]
pub struct DocRoot {
    /// Without a trailing `/` for `root` (nginx trims it); as written for `alias`.
    pub path: String,
    pub alias: bool,
    /// A `root` or `alias` with variables (`root /srv/$host;`, `alias /data/$1;` in a
    /// regex location): rendered per request; an alias is then the whole path.
    pub dynamic: Option<Template>,
}

impl DocRoot {
    /// Appends the file for `uri`: root + `$uri`, or alias + what follows the
    /// location's `prefix` (a dynamic root or alias is rendered from `src`; a dynamic
    /// alias is the whole path).
    pub fn file_for(&self, src: &dyn super::vars::VarSource, prefix: Option<&str>, uri: &[u8], out: &mut Vec<u8>) {
        match &self.dynamic {
            Some(t) => t.render(src, out),
            None => out.extend_from_slice(self.path.as_bytes()),
        }
        let rest = match (self.alias, prefix) {
            (true, Some(p)) if uri.len() >= p.len() => &uri[p.len()..],
            // An alias in a regex location is the whole path (nginx).
            (true, None) => return,
            _ => uri,
        };
        out.extend_from_slice(rest);
    }
}

/// `try_files FILE ... LAST`.
#[derive(Debug)]
pub struct TryFiles {
    /// Each a URI-like path under the root, and whether it names a directory (it was
    /// written with a trailing `/`, which the template no longer has, as nginx).
    pub files: Vec<(Template, bool)>,
    pub last: TryLast,
}

/// What `try_files` does when no file exists.
#[derive(Debug)]
pub enum TryLast {
    /// `=CODE`.
    Code(u16),
    /// `@name`: that named location.
    Named(String),
    /// A URI (with `?args` if written): an internal redirect.
    Uri(Template),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConn,
    IpHash,
    /// `hash KEY [consistent]` (the key is `Upstream::hash_key`).
    Hash {
        consistent: bool,
    },
    /// `random [two [least_conn]]`.
    Random {
        two: bool,
    },
}

/// `match NAME { … }`: what a health-check response must look like.
#[derive(Debug, Default)]
pub struct Match {
    /// (low, high, negated) status ranges; empty means 200-399.
    pub status: Vec<(u16, u16, bool)>,
    /// (lowercase name, condition).
    pub headers: Vec<(String, HeaderCond)>,
    /// (regex, negated).
    pub body: Vec<(Regex, bool)>,
}

#[derive(Debug)]
pub enum HeaderCond {
    Present,
    Absent,
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

/// `health_check` (nginx Plus syntax) for one upstream.
#[derive(Debug)]
pub struct HealthCheck {
    pub interval: Duration,
    pub fails: u32,
    pub passes: u32,
    pub uri: String,
    pub port: Option<u16>,
    pub matcher: Option<Arc<Match>>,
    /// The Host header for probes (the proxy_pass host).
    pub host: String,
}

#[derive(Debug, Clone)]
pub struct UpstreamServer {
    pub addr: crate::net::Peer,
    /// The `server` argument as written (for logs and status).
    pub name: String,
    pub weight: u32,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub max_conns: u32,
    pub backup: bool,
    pub down: bool,
    pub slow_start: Duration,
}

impl UpstreamServer {
    /// A server with nginx's defaults (weight 1, max_fails 1, fail_timeout 10s).
    pub fn new(addr: impl Into<crate::net::Peer>, name: String) -> Self {
        UpstreamServer {
            addr: addr.into(),
            name,
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            max_conns: 0,
            backup: false,
            down: false,
            slow_start: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    /// Position in [`Http::upstreams`] (workers keep their balancers in that order).
    pub index: usize,
    pub balance: Balance,
    pub servers: Vec<UpstreamServer>,
    /// Idle connections each worker keeps (`keepalive N`); 0 disables reuse.
    pub keepalive: usize,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: u64,
    /// `keepalive_time`: a connection is not kept after a request once it is older.
    pub keepalive_time: Duration,
    /// Made from a `proxy_pass` address rather than an `upstream` block.
    pub implicit: bool,
    /// `hash KEY`.
    pub hash_key: Option<Template>,
    /// `hash … consistent`: the ketama ring, (point, index into `chash_names`),
    /// sorted and deduplicated as nginx builds it.
    pub chash_points: Vec<(u32, u32)>,
    /// Distinct `server` strings, and for each server its index in this list.
    pub chash_names: Vec<String>,
    pub chash_name_of: Vec<u32>,
    pub health_check: std::sync::OnceLock<HealthCheck>,
    shared: std::sync::OnceLock<crate::balance::shared::SharedUpstream>,
}

impl Upstream {
    pub fn new(name: String, index: usize, balance: Balance, servers: Vec<UpstreamServer>, implicit: bool) -> Upstream {
        Upstream {
            name,
            index,
            balance,
            servers,
            keepalive: 0,
            keepalive_timeout: Duration::from_secs(60),
            keepalive_requests: 1000,
            keepalive_time: Duration::from_secs(3600),
            implicit,
            hash_key: None,
            chash_points: Vec::new(),
            chash_names: Vec::new(),
            chash_name_of: Vec::new(),
            health_check: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// The state all workers share for this upstream (one slot per worker).
    pub fn shared(&self) -> &crate::balance::shared::SharedUpstream {
        self.shared
            .get_or_init(|| crate::balance::shared::SharedUpstream::new(self.servers.len(), 1))
    }

    /// Sizes the shared state for `workers` (before workers start).
    pub fn init_shared(&self, workers: usize) {
        let _ = self
            .shared
            .set(crate::balance::shared::SharedUpstream::new(self.servers.len(), workers));
    }
}

impl Config {
    /// Sizes every upstream's shared state for the number of workers that will run.
    pub fn init_shared(&self, workers: usize) {
        for u in self.http.upstreams.iter().chain(&self.stream.upstreams) {
            u.init_shared(workers);
        }
    }

    /// Every distinct access-log path, indexed by `AccessLog::file_id`.
    /// Every location-level configuration of the http servers: each server's, its
    /// locations' and their `if` blocks'.
    fn http_confs(&self) -> Vec<&LocConf> {
        let mut all: Vec<&LocConf> = Vec::new();
        for s in &self.http.servers {
            all.push(&s.conf);
            if_confs(&s.conf.rewrites, &mut all);
            if_confs(&s.rewrites, &mut all);
            let locs = s
                .prefix_locations
                .iter()
                .chain(&s.regex_locations)
                .chain(&s.named_locations);
            for l in locs {
                location_confs(l, &mut all);
            }
        }
        all
    }

    /// The temporary-file directories named (`client_body_temp_path`,
    /// `proxy_temp_path`), each once: made at start-up, as nginx's `ngx_create_paths`.
    pub fn temp_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for c in self.http_confs() {
            for p in [&c.client_body_temp_path, &c.proxy_temp_path].into_iter().flatten() {
                if !out.iter().any(|o| o.as_path() == &**p) {
                    out.push(p.to_path_buf());
                }
            }
        }
        out
    }

    pub fn access_log_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for c in self.http_confs() {
            for a in &c.access_logs {
                if out.len() <= a.file_id {
                    out.resize(a.file_id + 1, PathBuf::new());
                }
                out[a.file_id] = a.path.clone();
            }
        }
        for a in self.stream.servers.iter().flat_map(|s| &s.access_logs) {
            if out.len() <= a.file_id {
                out.resize(a.file_id + 1, PathBuf::new());
            }
            out[a.file_id] = a.path.clone();
        }
        out
    }
}
