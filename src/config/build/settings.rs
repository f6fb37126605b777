//! The inheritable settings (http → server → location), each declared once.
//!
//! One line of the `settings!` table below declares a directive: its name (which is also
//! its field in [`Settings`]), its value type, the contexts that accept it, its parser,
//! and, when it is one [`LocConf`] field of the same name, nginx's default after `=>`.
//! From that line the macro makes the `Option` each level collects, the merge (nginx's
//! `merge_loc_conf`: a level that does not set a directive takes its parent's value), the
//! lookup that parses it and, with a default, the `LocConf` field. A list-valued setting
//! (`proxy_set_header`, `add_header`, `access_log`, …) merges as a whole: a level that
//! sets one entry replaces the inherited list, as in nginx.
//!
//! A setting without a default is finished by hand below the table: the headers sent
//! upstream (nginx's `Host` and `Connection` added), the hidden headers, the access logs
//! (their files are numbered here) and the server-level header limits.
//!
//! A parser takes this level's value so far (`None` at its first occurrence) and returns
//! the new one: list parsers append, the others replace.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::args::{block, flag, nargs, one_arg, parse_num, parse_size, parse_time, time_arg, two_args};
use super::ssl::{
    cipher_list, conf_path_list, curve_list, dhparam, only_off, session_cache, ssl_protocols, verify_client,
};
use super::table::Ctx;
use super::Builder;
use crate::config::model::{
    AccessLog, AddHeader, Cidr, DocRoot, ErrorPage, HttpVersion, IgnoredFields, LimitConn, LimitReq, Lingering,
    LocConf, LogLevel, NextUpstream, ProxyPass, RealIp, Resolver, RwOp, SizeValue, TryFiles, UserFile,
};
use crate::config::parser::Directive;
use crate::config::tls::{Located, SessionCache, VerifyClient};
use crate::config::vars::Template;
use crate::config::ConfError;
use crate::proto::conditional::{Expires, Ims};
use crate::proto::gzip::GzipConf;

/// http, server and location.
const HSL: &[Ctx] = &[Ctx::Http, Ctx::Server, Ctx::Location];
/// http and server.
const HS: &[Ctx] = &[Ctx::Http, Ctx::Server];
/// http, server, location and an `if` in a location (nginx's LIF directives).
const HSLI: &[Ctx] = &[Ctx::Http, Ctx::Server, Ctx::Location, Ctx::LocationIf];
/// All of those and an `if` in a server (the rewrite module's SIF).
const ALL_IF: &[Ctx] = &[Ctx::Http, Ctx::Server, Ctx::ServerIf, Ctx::Location, Ctx::LocationIf];

macro_rules! settings {
    (
        computed { $($computed:ident),* $(,)? }
        $( $name:ident: $ty:ty, $ctx:ident, $parse:ident $(=> $default:expr)?; )*
    ) => {
        /// One level's inheritable settings; `None`: not set at this level.
        #[derive(Debug, Clone, Default)]
        pub(super) struct Settings {
            $( pub(super) $name: Option<$ty>, )*
        }

        /// Each setting's directive name and the contexts that accept it.
        pub(super) const SETTINGS: &[(&str, &[Ctx])] = &[ $( (stringify!($name), $ctx) ),* ];

        impl Settings {
            /// nginx's merge: what this level does not set, it takes from `parent`.
            pub(super) fn inherit(&mut self, parent: &Settings) {
                $( if self.$name.is_none() { self.$name = parent.$name.clone(); } )*
            }

            /// Parses `d` into this level when it is a setting that `ctx` accepts; false
            /// when it is not.
            pub(super) fn parse(&mut self, b: &mut Builder<'_>, d: &Directive, ctx: Ctx) -> Result<bool, ConfError> {
                // `allow` and `deny` are one ordered list (the `allow` field).
                if d.name == "deny" && HSLI.contains(&ctx) {
                    self.allow = Some(access_rule(d, self.allow.take(), true)?);
                    return Ok(true);
                }
                $(
                    if d.name == stringify!($name) && $ctx.contains(&ctx) {
                        self.$name = Some($parse(b, d, self.$name.take())?);
                        return Ok(true);
                    }
                )*
                Ok(false)
            }

            /// The [`LocConf`] of a merged level: each setting with a default fills the
            /// field of its name; `c` brings the other fields.
            fn loc_conf(&self, c: Computed) -> LocConf {
                let Computed { $($computed),* } = c;
                LocConf {
                    $( $( $name: self.$name.clone().unwrap_or_else(|| $default), )? )*
                    $( $computed, )*
                }
            }
        }
    };
}

settings! {
    // The LocConf fields that are not one setting with a default (see `Computed`).
    computed {
        proxy_pass, proxy_dyn, tunnel, rewrites, proxy_set_headers, set_header_names, proxy_hide_headers,
        proxy_next_upstream_timeout, add_headers, access_logs, status,
        doc_root, try_files, internal, stub_status, gzip, realip, proxy_redirect,
    }
    // directive = field           value type                      contexts parser       => default
    proxy_set_header:              Vec<(String, Template)>,        HSL, set_header;
    proxy_hide_header:             Vec<String>,                    HSL, header_name;
    proxy_pass_header:             Vec<String>,                    HSL, header_name;
    proxy_pass_request_headers:    bool,                           HSL, on_off        => true;
    proxy_pass_request_body:       bool,                           HSL, on_off        => true;
    proxy_http_version:            HttpVersion,                    HSL, http_version  => HttpVersion::Http10;
    proxy_connect_timeout:         Duration,                       HSL, time          => Duration::from_secs(60);
    proxy_send_timeout:            Duration,                       HSL, time          => Duration::from_secs(60);
    proxy_read_timeout:            Duration,                       HSL, time          => Duration::from_secs(60);
    proxy_next_upstream:           NextUpstream,                   HSL, next_upstream => NextUpstream::nginx_default();
    proxy_next_upstream_tries:     u32,                            HSL, tries         => 0;
    proxy_next_upstream_timeout:   Duration,                       HSL, time;
    add_header:                    Vec<AddHeader>,                 HSLI, add_header;
    default_type:                  String,                         HSL, word          => "text/plain".into();
    types:                         Arc<HashMap<String, String>>,   HSL, types         => Arc::new(default_types());
    access_log:                    Vec<AccessLog>,                 HSLI, access_log;
    client_max_body_size:          u64,                            HSL, size          => 1024 * 1024;
    client_body_timeout:           Duration,                       HSL, time          => Duration::from_secs(60);
    client_header_timeout:         Duration,                       HS,  time;
    large_client_header_buffers:   (usize, usize),                 HS,  header_buffers;
    underscores_in_headers:        bool,                           HS,  on_off;
    ignore_invalid_headers:        bool,                           HS,  on_off;
    send_timeout:                  Duration,                       HSL, time          => Duration::from_secs(60);
    keepalive_timeout:             Duration,                       HSL, keepalive     => Duration::from_secs(75);
    keepalive_requests:            u64,                            HSL, count         => 1000;
    server_tokens:                 bool,                           HSL, on_off        => true;
    lingering_close:               Lingering,                      HSL, lingering     => Lingering::On;
    lingering_time:                Duration,                       HSL, time          => Duration::from_secs(30);
    lingering_timeout:             Duration,                       HSL, time          => Duration::from_secs(5);
    // TLS (http and server; finished into TlsSettings in ssl.rs)
    ssl_certificate:               Vec<Located>,                   HS,  conf_path_list;
    ssl_certificate_key:           Vec<Located>,                   HS,  conf_path_list;
    ssl_protocols:                 (bool, bool),                   HS,  ssl_protocols;
    ssl_ciphers:                   String,                         HS,  cipher_list;
    ssl_prefer_server_ciphers:     bool,                           HS,  on_off;
    ssl_ecdh_curve:                String,                         HS,  curve_list;
    ssl_session_cache:             SessionCache,                   HS,  session_cache;
    ssl_session_timeout:           Duration,                       HS,  time;
    ssl_session_tickets:           bool,                           HS,  on_off;
    ssl_session_ticket_key:        Vec<Located>,                   HS,  conf_path_list;
    ssl_password_file:             Vec<Located>,                   HS,  conf_path_list;
    ssl_buffer_size:               u64,                            HS,  size;
    ssl_reject_handshake:          bool,                           HS,  on_off;
    ssl_dhparam:                   Located,                        HS,  dhparam;
    ssl_early_data:                bool,                           HS,  only_off;
    ssl_stapling:                  bool,                           HS,  on_off;
    ssl_stapling_file:             Vec<Located>,                   HS,  conf_path_list;
    ssl_stapling_verify:           bool,                           HS,  on_off;
    ssl_stapling_responder:        String,                         HS,  responder;
    ssl_verify_client:             VerifyClient,                   HS,  verify_client;
    ssl_client_certificate:        Vec<Located>,                   HS,  conf_path_list;
    ssl_trusted_certificate:       Vec<Located>,                   HS,  conf_path_list;
    ssl_verify_depth:              u64,                            HS,  count;
    // Runtime name resolution (src/net/resolver.rs): targets with variables.
    resolver:                      Option<Arc<Resolver>>,          HSL, resolver      => None;
    resolver_timeout:              Duration,                       HSL, time          => Duration::from_secs(30);
    // CONNECT tunnels (ngx_http_tunnel_module; `tunnel_pass` itself is a location's)
    tunnel_connect_timeout:        Duration,                       HSL, time          => Duration::from_secs(60);
    tunnel_read_timeout:           Duration,                       HSL, time          => Duration::from_secs(60);
    tunnel_send_timeout:           Duration,                       HSL, time          => Duration::from_secs(60);
    tunnel_buffer_size:            u64,                            HSL, size          => 4096;
    tunnel_next_upstream:          NextUpstream,                   HSL, tunnel_next   => NextUpstream::nginx_default();
    tunnel_next_upstream_tries:    u32,                            HSL, tries         => 0;
    tunnel_next_upstream_timeout:  Duration,                       HSL, time          => Duration::ZERO;
    // ringx's own: internal destinations a forward-proxy server may reach anyway
    ringx_forward_allow:           Vec<Cidr>,                      HSL, cidr_list     => Vec::new();
    // TLS to upstreams (finished in proxy_ssl.rs)
    proxy_ssl_server_name:         bool,                           HSL, on_off;
    proxy_ssl_name:                Template,                       HSL, template;
    proxy_ssl_verify:              bool,                           HSL, on_off;
    proxy_ssl_verify_depth:        u64,                            HSL, count;
    proxy_ssl_trusted_certificate: Vec<Located>,                   HSL, conf_path_list;
    proxy_ssl_protocols:           (bool, bool),                   HSL, ssl_protocols;
    proxy_ssl_ciphers:             String,                         HSL, cipher_list;
    proxy_ssl_certificate:         Vec<Located>,                   HSL, conf_path_list;
    proxy_ssl_certificate_key:     Vec<Located>,                   HSL, conf_path_list;
    proxy_ssl_session_reuse:       bool,                           HSL, on_off;
    proxy_ssl_password_file:       Vec<Located>,                   HSL, conf_path_list;
    // HTTP/2 (server level as nginx 1.25.1+; finished in server.rs)
    http2:                         bool,                           HS,  on_off;
    http2_max_concurrent_streams:  u64,                            HS,  count;
    http2_chunk_size:              u64,                            HSL, size          => 8 * 1024;
    // Static files (src/http/proxy/files.rs)
    root:                          DocRoot,                        HSLI, root_dir;
    index:                         Vec<String>,                    HSL, index_names   => vec!["index.html".into()];
    log_not_found:                 bool,                           HSL, on_off        => true;
    etag:                          bool,                           HSL, on_off        => true;
    if_modified_since:             Ims,                            HSL, ims           => Ims::Exact;
    absolute_redirect:             bool,                           HSL, on_off        => true;
    port_in_redirect:              bool,                           HSL, on_off        => true;
    server_name_in_redirect:       bool,                           HSL, on_off        => false;
    autoindex:                     bool,                           HSL, on_off        => false;
    autoindex_format:              bool,                           HSL, autoindex_fmt => false;
    autoindex_exact_size:          bool,                           HSL, on_off        => true;
    autoindex_localtime:           bool,                           HSL, on_off        => false;
    disable_symlinks:              bool,                           HSL, only_off;
    // Compression (finished into GzipConf below; src/proto/gzip.rs)
    gzip:                          bool,                           HSLI, on_off;
    gzip_types:                    Vec<String>,                    HSL, gzip_types;
    gzip_min_length:               u64,                            HSL, size;
    gzip_comp_level:               u32,                            HSL, comp_level;
    gzip_vary:                     bool,                           HSL, on_off;
    gzip_proxied:                  bool,                           HSL, gzip_proxied;
    gzip_http_version:             bool,                           HSL, gzip_http_version;
    gzip_disable:                  (bool, Vec<regex::bytes::Regex>), HSL, gzip_disable;
    gzip_static:                   crate::proto::gzip::Static,     HSL, gzip_static_mode;
    expires:                       Expires,                        HSLI, expires_dir   => Expires::Off;
    rewrite_log:                   bool,                           ALL_IF, on_off     => false;
    // access (allow, deny: one list, first match decides)
    allow:                         Vec<(Cidr, bool)>,              HSLI, allow_rule   => Vec::new();
    // auth_basic (src/http/proxy/access.rs; `satisfy` combines it with allow/deny)
    auth_basic:                    Option<Template>,               HSL, auth_realm    => None;
    auth_basic_user_file:          Option<UserFile>,               HSL, user_file     => None;
    satisfy:                       bool,                           HSL, satisfy_any   => false;
    auth_request:                  Option<String>,                 HSL, auth_uri      => None;
    auth_request_set:              Vec<(usize, Template)>,         HSL, auth_set      => Vec::new();
    proxy_redirect:                RedirectSet,                    HSL, redirect_rule;
    proxy_cookie_domain:           Vec<crate::config::model::Redirect>, HSL, cookie_domain => Vec::new();
    proxy_cookie_path:             Vec<crate::config::model::Redirect>, HSL, cookie_path   => Vec::new();
    proxy_cookie_flags:            Vec<crate::config::model::CookieFlags>, HSL, cookie_flags => Vec::new();
    proxy_method:                  Option<Template>,               HSL, opt_template  => None;
    proxy_ignore_client_abort:     bool,                           HSL, on_off        => false;
    chunked_transfer_encoding:     bool,                           HSL, on_off        => true;
    proxy_socket_keepalive:        bool,                           HSL, on_off        => false;
    proxy_set_body:                Option<Template>,               HSL, opt_template  => None;
    proxy_ignore_headers:          IgnoredFields,                  HSL, ignore_headers => IgnoredFields::default();
    // ringx has no response cache: `proxy_cache off` (nginx's default) only
    proxy_cache:                   bool,                           HSL, cache_off;
    // timed-out connections close with a FIN (nginx's default); `on` (RST) not yet
    reset_timedout_connection:     bool,                           HSL, only_off;
    client_body_temp_path:         Option<Arc<std::path::Path>>,   HSL, temp_path     => None;
    // Buffering (request bodies read whole first, responses read ahead of the client:
    // src/http/spool.rs, src/http/proxy/backlog.rs)
    proxy_request_buffering:       bool,                           HSL, on_off        => true;
    client_body_buffer_size:       u64,                            HSL, size          => 16 * 1024;
    proxy_buffering:               bool,                           HSL, on_off        => true;
    proxy_buffers:                 (u64, u64),                     HSL, buffers       => (8, 4096);
    proxy_buffer_size:             u64,                            HSL, size          => 4096;
    proxy_max_temp_file_size:      u64,                            HSL, size          => 1024 * 1024 * 1024;
    proxy_temp_path:               Option<Arc<std::path::Path>>,   HSL, temp_path     => None;
    // limit_rate (src/http/proxy/pace.rs)
    limit_rate:                    SizeValue,                      HSLI, size_value   => SizeValue::Fixed(0);
    limit_rate_after:              SizeValue,                      HSLI, size_value   => SizeValue::Fixed(0);
    // proxy_limit_rate (src/http/proxy/backlog.rs: reads of a buffered response)
    proxy_limit_rate:              u64,                            HSL, size          => 0;
    // limit_req, limit_conn (zones in src/limit.rs; src/http/proxy/limits.rs)
    limit_req:                     Vec<LimitReq>,                  HSL, limit_req     => Vec::new();
    limit_req_status:              u16,                            HSL, limit_status  => 503;
    limit_req_log_level:           LogLevel,                       HSL, limit_level   => LogLevel::Error;
    limit_req_dry_run:             bool,                           HSL, on_off        => false;
    limit_conn:                    Vec<LimitConn>,                 HSL, limit_conn    => Vec::new();
    limit_conn_status:             u16,                            HSL, limit_status  => 503;
    limit_conn_log_level:          LogLevel,                       HSL, limit_level   => LogLevel::Error;
    limit_conn_dry_run:            bool,                           HSL, on_off        => false;
    // realip (src/http/proxy/realip.rs)
    set_real_ip_from:              Vec<Cidr>,                      HSL, real_ip_from;
    real_ip_header:                String,                         HSL, real_ip_header;
    real_ip_recursive:             bool,                           HSL, on_off;
    // Error pages (the content loop in src/http/proxy.rs)
    error_page:                    Vec<ErrorPage>,                 HSLI, error_page    => Vec::new();
    recursive_error_pages:         bool,                           HSL, on_off        => false;
    proxy_intercept_errors:        bool,                           HSL, on_off        => false;
}

/// The [`LocConf`] fields that are not one setting with a default.
struct Computed {
    proxy_pass: Option<ProxyPass>,
    proxy_dyn: Option<Arc<crate::config::model::DynPass>>,
    tunnel: Option<Arc<crate::config::model::TunnelPass>>,
    rewrites: Arc<Vec<RwOp>>,
    proxy_set_headers: Vec<(String, Template)>,
    set_header_names: Vec<String>,
    proxy_hide_headers: Vec<String>,
    proxy_next_upstream_timeout: Option<Duration>,
    add_headers: Vec<AddHeader>,
    access_logs: Vec<AccessLog>,
    status: bool,
    doc_root: DocRoot,
    try_files: Option<Arc<TryFiles>>,
    internal: bool,
    stub_status: bool,
    gzip: Arc<GzipConf>,
    realip: Option<Arc<RealIp>>,
    proxy_redirect: Vec<crate::config::model::Redirect>,
}

impl Builder<'_> {
    /// The [`LocConf`] of a level whose settings are merged (`inherit` done): the table's
    /// defaults, and the settings finished by hand. `rewrites` and `status` are the
    /// location's to set.
    pub(super) fn resolve(&mut self, s: &Settings, proxy_pass: Option<ProxyPass>) -> LocConf {
        let proxy_set_headers = upstream_headers(s);
        let set_header_names = proxy_set_headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
        let access_logs = self.access_logs(s);
        s.loc_conf(Computed {
            proxy_pass,
            proxy_dyn: None,
            tunnel: None,
            rewrites: Arc::default(),
            proxy_set_headers,
            set_header_names,
            proxy_hide_headers: hidden_headers(s),
            proxy_next_upstream_timeout: s.proxy_next_upstream_timeout.filter(|d| !d.is_zero()),
            add_headers: s.add_header.clone().unwrap_or_default(),
            access_logs,
            status: false,
            doc_root: s.root.clone().unwrap_or_else(|| DocRoot {
                path: self.env.path("html").to_string_lossy().into_owned(),
                ..DocRoot::default()
            }),
            try_files: None,
            internal: false,
            stub_status: false,
            proxy_redirect: Vec::new(),
            gzip: Arc::new(gzip_conf(s)),
            realip: s.set_real_ip_from.clone().map(|from| {
                Arc::new(RealIp {
                    from,
                    header: s.real_ip_header.clone().unwrap_or_else(|| "x-real-ip".into()),
                    recursive: s.real_ip_recursive.unwrap_or(false),
                })
            }),
        })
    }

    /// The level's access logs; unset at every level: `logs/access.log combined`.
    fn access_logs(&mut self, s: &Settings) -> Vec<AccessLog> {
        if let Some(l) = &s.access_log {
            return l.clone();
        }
        let path = self.env.path("logs/access.log");
        let file_id = self.log_file(&path);
        vec![AccessLog {
            path,
            format: self.log_formats["combined"].clone(),
            file_id,
            cond: None,
        }]
    }

    /// The index of `path` among the access-log files, numbering it if new.
    fn log_file(&mut self, path: &PathBuf) -> usize {
        match self.log_files.iter().position(|p| p == path) {
            Some(i) => i,
            None => {
                self.log_files.push(path.clone());
                self.log_files.len() - 1
            }
        }
    }
}

impl Settings {
    /// `client_header_timeout` of a merged server level (default 60s).
    pub(super) fn header_timeout(&self) -> Duration {
        self.client_header_timeout.unwrap_or(Duration::from_secs(60))
    }

    /// `large_client_header_buffers` of a merged server level: (count, size), default
    /// `4 8k`.
    pub(super) fn header_buffers(&self) -> (usize, usize) {
        self.large_client_header_buffers.unwrap_or((4, 8192))
    }
}

/// The `proxy_set_header`s, then nginx's `Host: $proxy_host` and `Connection: close`
/// unless set.
fn upstream_headers(s: &Settings) -> Vec<(String, Template)> {
    let mut headers: Vec<(String, Template)> = s.proxy_set_header.clone().unwrap_or_default();
    let has = |h: &[(String, Template)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has(&headers, "host") {
        headers.push(("Host".into(), Template::compile("$proxy_host").expect("builtin")));
    }
    if !has(&headers, "connection") {
        headers.push(("Connection".into(), Template::compile("close").expect("builtin")));
    }
    headers
}

/// Upstream response headers not passed on: nginx's list less `proxy_pass_header`,
/// then `proxy_hide_header`.
fn hidden_headers(s: &Settings) -> Vec<String> {
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
    hide
}

/// The merged gzip directives (nginx's defaults where unset).
fn gzip_conf(s: &Settings) -> GzipConf {
    let d = GzipConf::default();
    let mut types = s.gzip_types.clone().unwrap_or_else(|| d.types.clone());
    if !types.iter().any(|t| t == "text/html" || t == "*") {
        types.push("text/html".into());
    }
    let (disable_msie6, disable) = s.gzip_disable.clone().unwrap_or_default();
    GzipConf {
        on: s.gzip.unwrap_or(false),
        types,
        min_length: s.gzip_min_length.unwrap_or(d.min_length),
        level: s.gzip_comp_level.unwrap_or(d.level),
        vary: s.gzip_vary.unwrap_or(false),
        proxied_any: s.gzip_proxied.unwrap_or(false),
        http10: s.gzip_http_version.unwrap_or(false),
        disable_msie6,
        disable,
        static_mode: s.gzip_static.unwrap_or(crate::proto::gzip::Static::Off),
    }
}

fn gzip_static_mode(
    _: &mut Builder<'_>,
    d: &Directive,
    _: Option<crate::proto::gzip::Static>,
) -> Parsed<crate::proto::gzip::Static> {
    use crate::proto::gzip::Static;
    one_arg(d)?;
    match d.args[0].as_str() {
        "off" => Ok(Static::Off),
        "on" => Ok(Static::On),
        "always" => Ok(Static::Always),
        v => Err(d.err(format!(
            "invalid value \"{v}\" in \"gzip_static\" directive, it must be \"on\", \"off\" or \"always\""
        ))),
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

// The parsers. Each returns the level's new value from `prev`, its value so far.

type Parsed<T> = Result<T, ConfError>;

/// Appends `x` to this level's list (a level starts its own list: nginx's replace).
fn push<T>(prev: Option<Vec<T>>, x: T) -> Vec<T> {
    let mut list = prev.unwrap_or_default();
    list.push(x);
    list
}

fn time(_: &mut Builder<'_>, d: &Directive, _: Option<Duration>) -> Parsed<Duration> {
    time_arg(d)
}

fn on_off(_: &mut Builder<'_>, d: &Directive, _: Option<bool>) -> Parsed<bool> {
    flag(d)
}

fn size(_: &mut Builder<'_>, d: &Directive, _: Option<u64>) -> Parsed<u64> {
    one_arg(d)?;
    parse_size(d, &d.args[0])
}

fn count(_: &mut Builder<'_>, d: &Directive, _: Option<u64>) -> Parsed<u64> {
    one_arg(d)?;
    parse_num(d, &d.args[0])
}

fn tries(_: &mut Builder<'_>, d: &Directive, _: Option<u32>) -> Parsed<u32> {
    one_arg(d)?;
    Ok(parse_num(d, &d.args[0])? as u32)
}

fn word(_: &mut Builder<'_>, d: &Directive, _: Option<String>) -> Parsed<String> {
    one_arg(d)?;
    Ok(d.args[0].clone())
}

/// `root PATH`: relative to the prefix; a trailing `/` trimmed, as nginx; with
/// variables, rendered per request.
fn root_dir(b: &mut Builder<'_>, d: &Directive, _: Option<DocRoot>) -> Parsed<DocRoot> {
    one_arg(d)?;
    let a = &d.args[0];
    let p = b.env.path(a).to_string_lossy().into_owned();
    let p = match p.strip_suffix('/') {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => p,
    };
    let dynamic = if a.contains('$') {
        Some(Template::compile(&p).map_err(|e| e.at_dir(d))?)
    } else {
        None
    };
    Ok(DocRoot {
        path: p,
        alias: false,
        dynamic,
    })
}

/// `index FILE...` (several `index` lines at one level add up, as nginx).
fn index_names(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<String>>) -> Parsed<Vec<String>> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let mut list = prev.unwrap_or_default();
    for a in &d.args {
        if a.is_empty() {
            return Err(d.err("index \"\" in \"index\" directive is invalid"));
        }
        if a.contains('$') {
            return Err(d.err("variables in \"index\" are not supported yet"));
        }
        list.push(a.clone());
    }
    Ok(list)
}

/// `gzip_types TYPE…` (several lines at one level add up; `*` for any).
fn gzip_types(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<String>>) -> Parsed<Vec<String>> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let mut list = prev.unwrap_or_default();
    list.extend(d.args.iter().map(|a| a.to_ascii_lowercase()));
    Ok(list)
}

/// `gzip_comp_level 1..9`.
fn comp_level(_: &mut Builder<'_>, d: &Directive, _: Option<u32>) -> Parsed<u32> {
    one_arg(d)?;
    match d.args[0].parse::<u32>() {
        Ok(n) if (1..=9).contains(&n) => Ok(n),
        _ => Err(d.err("value must be between 1 and 9")),
    }
}

/// `gzip_proxied off | any` (true: any). The conditions between (`expired`,
/// `no-cache`, `auth`, …) are rejected for now.
fn gzip_proxied(_: &mut Builder<'_>, d: &Directive, _: Option<bool>) -> Parsed<bool> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let mut any = false;
    for a in &d.args {
        match a.as_str() {
            "off" => {}
            "any" => any = true,
            "expired" | "no-cache" | "no-store" | "private" | "no_last_modified" | "no_etag" | "auth" => {
                return Err(d.err(format!("\"gzip_proxied {a}\" is not supported yet (off and any are)")))
            }
            _ => return Err(d.err(format!("invalid value \"{a}\" in \"gzip_proxied\" directive"))),
        }
    }
    Ok(any)
}

/// `gzip_http_version 1.0 | 1.1` (true: 1.0).
fn gzip_http_version(_: &mut Builder<'_>, d: &Directive, _: Option<bool>) -> Parsed<bool> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "1.0" => Ok(true),
        "1.1" => Ok(false),
        v => Err(d.err(format!("invalid value \"{v}\" in \"gzip_http_version\" directive"))),
    }
}

/// `gzip_disable msie6 | REGEX…` (regexes case-insensitive, as nginx compiles them).
fn gzip_disable(
    _: &mut Builder<'_>,
    d: &Directive,
    prev: Option<(bool, Vec<regex::bytes::Regex>)>,
) -> Parsed<(bool, Vec<regex::bytes::Regex>)> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let (mut msie6, mut list) = prev.unwrap_or_default();
    for a in &d.args {
        if a == "msie6" {
            msie6 = true;
            continue;
        }
        let re = regex::bytes::RegexBuilder::new(a)
            .case_insensitive(true)
            .build()
            .map_err(|e| d.err(format!("invalid regex \"{a}\": {e}")))?;
        list.push(re);
    }
    Ok((msie6, list))
}

/// `error_page CODE… [=[RESPONSE]] URI` (nginx's checks and words).
fn error_page(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<ErrorPage>>) -> Parsed<Vec<ErrorPage>> {
    if d.args.len() < 2 {
        return Err(nargs(d));
    }
    let n = d.args.len();
    let (overwrite, codes) = match d.args[n - 2].strip_prefix('=') {
        Some(_) if n == 2 => return Err(d.err(format!("invalid value \"{}\"", d.args[n - 2]))),
        Some("") => (Some(0), &d.args[..n - 2]),
        Some(o) => match o.parse::<u16>() {
            Ok(v) => (Some(v), &d.args[..n - 2]),
            Err(_) => return Err(d.err(format!("invalid value \"{}\"", d.args[n - 2]))),
        },
        None => (None, &d.args[..n - 1]),
    };
    let uri = &d.args[n - 1];
    let (target, args) = match uri.split_once('?') {
        Some((u, a)) if !uri.contains('$') && uri.starts_with('/') => (u, Some(a.to_string())),
        _ => (uri.as_str(), None),
    };
    let target = Template::compile(target).map_err(|e| e.at_dir(d))?;
    let mut list = prev.unwrap_or_default();
    for c in codes {
        let code = match c.parse::<u16>() {
            Ok(v) if v != 499 => v,
            _ => return Err(d.err(format!("invalid value \"{c}\""))),
        };
        if !(300..=599).contains(&code) {
            return Err(d.err(format!("value \"{c}\" must be between 300 and 599")));
        }
        let overwrite = match overwrite {
            None if (494..=497).contains(&code) => Some(400),
            o => o,
        };
        list.push(ErrorPage {
            code,
            overwrite,
            target: target.clone(),
            args: args.clone(),
        });
    }
    Ok(list)
}

/// `expires [modified] [+|-]TIME | @TIME | epoch | max | off` (nginx's parser and
/// errors; a value with variables is rejected for now).
fn expires_dir(_: &mut Builder<'_>, d: &Directive, _: Option<Expires>) -> Parsed<Expires> {
    let (modified, v) = match d.args.as_slice() {
        [v] => (false, v.as_str()),
        [m, v] if m == "modified" => (true, v.as_str()),
        [_, _] => return Err(d.err(format!("invalid value \"{}\"", d.args[0]))),
        _ => return Err(nargs(d)),
    };
    if v.contains('$') {
        return Err(d.err("variables in \"expires\" are not supported yet"));
    }
    match v {
        "epoch" if !modified => return Ok(Expires::Epoch),
        "max" if !modified => return Ok(Expires::Max),
        "off" if !modified => return Ok(Expires::Off),
        _ => {}
    }
    let (daily, minus, t) = match v.as_bytes().first() {
        Some(b'@') if modified => {
            return Err(d.err("daily time cannot be used with \"modified\" parameter"));
        }
        Some(b'@') => (true, false, &v[1..]),
        Some(b'+') => (false, false, &v[1..]),
        Some(b'-') => (false, true, &v[1..]),
        _ => (false, false, v),
    };
    let secs = match super::args::parse_time_str(t) {
        Some(t) if !v.contains("ms") => t.as_secs() as i64,
        _ => return Err(d.err("invalid value")),
    };
    if daily && secs > 24 * 60 * 60 {
        return Err(d.err("daily time value must be less than 24 hours"));
    }
    let secs = if minus { -secs } else { secs };
    Ok(if daily {
        Expires::Daily(secs)
    } else if modified {
        Expires::Modified(secs)
    } else {
        Expires::Access(secs)
    })
}

/// `allow ADDRESS|CIDR|all`.
fn allow_rule(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<(Cidr, bool)>>) -> Parsed<Vec<(Cidr, bool)>> {
    access_rule(d, prev, false)
}

/// One `allow` or `deny` rule (`deny`: true) appended to the level's list.
fn access_rule(d: &Directive, prev: Option<Vec<(Cidr, bool)>>, deny: bool) -> Parsed<Vec<(Cidr, bool)>> {
    one_arg(d)?;
    let a = &d.args[0];
    if a.starts_with("unix:") {
        return Err(d.err(format!("\"{} unix:\" is not supported yet", d.name)));
    }
    let c = parse_cidr(a).ok_or_else(|| d.err(format!("invalid parameter \"{a}\"")))?;
    Ok(push(prev, (c, deny)))
}

/// `set_real_ip_from ADDRESS|CIDR` (appends; `unix:` is rejected: ringx has no
/// unix-domain listeners yet).
fn real_ip_from(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<Cidr>>) -> Parsed<Vec<Cidr>> {
    one_arg(d)?;
    let a = &d.args[0];
    if a.starts_with("unix:") {
        return Err(d.err("\"set_real_ip_from unix:\" is not supported yet"));
    }
    let c = parse_cidr(a).ok_or_else(|| d.err(format!("invalid parameter \"{a}\"")))?;
    Ok(push(prev, c))
}

/// `CIDR…|all` (one directive, several networks).
/// A level's `proxy_redirect` lines: `off`, or rules (`default` is made into one
/// where the location's `proxy_pass` is known).
#[derive(Debug, Clone)]
pub(super) enum RedirectSet {
    Off,
    /// `Err`: `default`, where it was written.
    Rules(Vec<Result<crate::config::model::Redirect, (Arc<str>, usize)>>),
}

/// `proxy_redirect default | off | REDIRECT REPLACEMENT` (`~`/`~*` for a regex).
fn redirect_rule(_: &mut Builder<'_>, d: &Directive, prev: Option<RedirectSet>) -> Parsed<RedirectSet> {
    let mut rules = match (prev, d.args.as_slice()) {
        (Some(_), [a]) if a == "off" => return Err(d.err("\"proxy_redirect\" directive is duplicate")),
        (None, [a]) if a == "off" => return Ok(RedirectSet::Off),
        (Some(RedirectSet::Off), _) => return Err(d.err("\"proxy_redirect\" directive is duplicate")),
        (Some(RedirectSet::Rules(v)), _) => v,
        (None, _) => Vec::new(),
    };
    match d.args.as_slice() {
        [a] if a == "default" => rules.push(Err((d.file.clone(), d.line))),
        [a] => return Err(d.err(format!("invalid parameter \"{a}\""))),
        [from, to] => rules.push(Ok(rewrite_rule(d, from, to, false)?)),
        _ => return Err(nargs(d)),
    }
    Ok(RedirectSet::Rules(rules))
}

/// `proxy_cookie_domain off | DOMAIN REPLACEMENT` (`~REGEX`: caseless).
fn cookie_domain(
    _: &mut Builder<'_>,
    d: &Directive,
    prev: Option<Vec<crate::config::model::Redirect>>,
) -> Parsed<Vec<crate::config::model::Redirect>> {
    cookie_rule(d, prev, true)
}

/// `proxy_cookie_path off | PATH REPLACEMENT` (`~REGEX`, `~*REGEX`).
fn cookie_path(
    _: &mut Builder<'_>,
    d: &Directive,
    prev: Option<Vec<crate::config::model::Redirect>>,
) -> Parsed<Vec<crate::config::model::Redirect>> {
    cookie_rule(d, prev, false)
}

fn cookie_rule(
    d: &Directive,
    prev: Option<Vec<crate::config::model::Redirect>>,
    domain: bool,
) -> Parsed<Vec<crate::config::model::Redirect>> {
    // `off` is an empty list: nothing may come before or after it.
    let dup = || d.err(format!("\"{}\" directive is duplicate", d.name));
    match (d.args.as_slice(), &prev) {
        ([off], None) if off == "off" => return Ok(Vec::new()),
        ([off], Some(_)) if off == "off" => return Err(dup()),
        ([_, _], Some(v)) if v.is_empty() => return Err(dup()),
        ([a], _) => return Err(d.err(format!("invalid parameter \"{a}\""))),
        ([_, _], _) => {}
        _ => return Err(nargs(d)),
    }
    Ok(push(prev, rewrite_rule(d, &d.args[0], &d.args[1], domain)?))
}

/// One `proxy_redirect` / `proxy_cookie_*` rule, as nginx compiles it: `~REGEX`
/// (`~*` caseless; a cookie domain's regex is caseless either way), else a prefix,
/// or for `proxy_cookie_domain` a domain (a leading `.` dropped).
fn rewrite_rule(d: &Directive, from: &str, to: &str, domain: bool) -> Parsed<crate::config::model::Redirect> {
    use crate::config::model::Redirect;
    let to = Template::compile(to).map_err(|e| e.at_dir(d))?;
    if let Some(re) = from.strip_prefix('~') {
        let (re, caseless) = re.strip_prefix('*').map_or((re, domain), |r| (r, true));
        return Ok(Redirect::Regex(Arc::new(super::rewrite::pcre(d, re, caseless)?), to));
    }
    if domain {
        let from = Template::compile(from.strip_prefix('.').unwrap_or(from)).map_err(|e| e.at_dir(d))?;
        return Ok(Redirect::Domain(from, to));
    }
    Ok(Redirect::Prefix(Template::compile(from).map_err(|e| e.at_dir(d))?, to))
}

/// `proxy_cookie_flags off | COOKIE|~REGEX FLAG…`.
fn cookie_flags(
    _: &mut Builder<'_>,
    d: &Directive,
    prev: Option<Vec<crate::config::model::CookieFlags>>,
) -> Parsed<Vec<crate::config::model::CookieFlags>> {
    const FLAGS: [&str; 8] = [
        "secure",
        "nosecure",
        "httponly",
        "nohttponly",
        "samesite=strict",
        "samesite=lax",
        "samesite=none",
        "nosamesite",
    ];
    let dup = || d.err("\"proxy_cookie_flags\" directive is duplicate");
    match (d.args.as_slice(), &prev) {
        ([off], None) if off == "off" => return Ok(Vec::new()),
        ([off], Some(_)) if off == "off" => return Err(dup()),
        ([a], _) => return Err(d.err(format!("invalid parameter \"{a}\""))),
        ([], _) => return Err(nargs(d)),
        (_, Some(v)) if v.is_empty() => return Err(dup()),
        _ => {}
    }
    let name = match d.args[0].strip_prefix('~') {
        Some(re) => Err(Arc::new(super::rewrite::pcre(d, re, true)?)),
        None => Ok(Template::compile(&d.args[0]).map_err(|e| e.at_dir(d))?),
    };
    let mut flags = Vec::new();
    for f in &d.args[1..] {
        let t = Template::compile(f).map_err(|e| e.at_dir(d))?;
        if t.as_literal().is_some() && !FLAGS.contains(&f.to_ascii_lowercase().as_str()) {
            return Err(d.err(format!("invalid parameter \"{f}\"")));
        }
        flags.push(t);
    }
    Ok(push(prev, crate::config::model::CookieFlags { name, flags }))
}

/// A value with variables (`proxy_method`, `proxy_set_body`).
fn opt_template(_: &mut Builder<'_>, d: &Directive, _: Option<Option<Template>>) -> Parsed<Option<Template>> {
    one_arg(d)?;
    Template::compile(&d.args[0]).map(Some).map_err(|e| e.at_dir(d))
}

/// `proxy_ignore_headers FIELD…`.
fn ignore_headers(_: &mut Builder<'_>, d: &Directive, _: Option<IgnoredFields>) -> Parsed<IgnoredFields> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let mut v = IgnoredFields::default();
    for a in &d.args {
        match a.to_ascii_lowercase().as_str() {
            "x-accel-redirect" => v.accel_redirect = true,
            "x-accel-limit-rate" => v.accel_limit_rate = true,
            "x-accel-buffering" => v.accel_buffering = true,
            "x-accel-expires" | "x-accel-charset" | "expires" | "cache-control" | "set-cookie" | "vary" => {}
            _ => return Err(d.err(format!("invalid value \"{a}\""))),
        }
    }
    Ok(v)
}

/// `proxy_cache off` (what ringx does); a zone is not supported yet.
fn cache_off(_: &mut Builder<'_>, d: &Directive, _: Option<bool>) -> Parsed<bool> {
    one_arg(d)?;
    if d.args[0] != "off" {
        return Err(d.err("\"proxy_cache\" with a zone is not supported yet (ringx has no response cache)"));
    }
    Ok(false)
}

/// `client_body_temp_path PATH [L1 [L2 [L3]]]` (relative to the prefix).
fn temp_path(
    b: &mut Builder<'_>,
    d: &Directive,
    _: Option<Option<Arc<std::path::Path>>>,
) -> Parsed<Option<Arc<std::path::Path>>> {
    if d.args.is_empty() || d.args.len() > 4 {
        return Err(nargs(d));
    }
    for l in &d.args[1..] {
        if !matches!(l.parse::<u8>(), Ok(1..=2)) {
            return Err(d.err(format!("invalid value \"{l}\"")));
        }
    }
    Ok(Some(b.env.path(&d.args[0]).into()))
}

/// `proxy_buffers NUMBER SIZE` (nginx: both above zero, at least two buffers).
fn buffers(_: &mut Builder<'_>, d: &Directive, _: Option<(u64, u64)>) -> Parsed<(u64, u64)> {
    two_args(d)?;
    let n = parse_num(d, &d.args[0])?;
    let size = parse_size(d, &d.args[1])?;
    if n < 2 || size == 0 {
        return Err(d.err("there must be at least 2 \"proxy_buffers\""));
    }
    Ok((n, size))
}

/// A size (`100k`) or a value with variables rendered when used.
fn size_value(_: &mut Builder<'_>, d: &Directive, _: Option<SizeValue>) -> Parsed<SizeValue> {
    one_arg(d)?;
    if d.args[0].contains('$') {
        return Template::compile(&d.args[0])
            .map(SizeValue::Var)
            .map_err(|e| e.at_dir(d));
    }
    parse_size(d, &d.args[0]).map(SizeValue::Fixed)
}

/// `auth_basic REALM|off` (the realm may have variables; one that renders as "off"
/// turns it off too, as nginx).
fn auth_realm(_: &mut Builder<'_>, d: &Directive, _: Option<Option<Template>>) -> Parsed<Option<Template>> {
    one_arg(d)?;
    if d.args[0] == "off" {
        return Ok(None);
    }
    Template::compile(&d.args[0]).map(Some).map_err(|e| e.at_dir(d))
}

fn user_file(b: &mut Builder<'_>, d: &Directive, _: Option<Option<UserFile>>) -> Parsed<Option<UserFile>> {
    one_arg(d)?;
    let path = Template::compile(&d.args[0]).map_err(|e| e.at_dir(d))?;
    Ok(Some(UserFile {
        path,
        base: b.env.conf_prefix.clone(),
    }))
}

/// `limit_req zone=NAME [burst=N] [nodelay | delay=N]` (one more for this level).
fn limit_req(b: &mut Builder<'_>, d: &Directive, prev: Option<Vec<LimitReq>>) -> Parsed<Vec<LimitReq>> {
    if d.args.is_empty() || d.args.len() > 3 {
        return Err(nargs(d));
    }
    let (mut zone, mut burst, mut delay) = (None, 0, 0);
    for a in &d.args {
        let positive = |v: &str, what: &str| match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(d.err(format!("invalid {what} value \"{a}\""))),
        };
        if let Some(name) = a.strip_prefix("zone=") {
            zone = Some(name);
        } else if let Some(v) = a.strip_prefix("burst=") {
            burst = positive(v, "burst")?;
        } else if let Some(v) = a.strip_prefix("delay=") {
            delay = positive(v, "delay")?;
        } else if a == "nodelay" {
            delay = i64::MAX as u64 / 1000;
        } else {
            return Err(d.err(format!("invalid parameter \"{a}\"")));
        }
    }
    let Some(name) = zone else {
        return Err(d.err("\"limit_req\" must have \"zone\" parameter"));
    };
    let Some(z) = b.req_zones.get(name) else {
        return Err(d.err(format!("zero size shared memory zone \"{name}\"")));
    };
    let mut v = prev.unwrap_or_default();
    if v.iter().any(|l| l.zone.name == name) {
        return Err(d.err("\"limit_req\" directive is duplicate"));
    }
    v.push(LimitReq {
        zone: z.0.clone(),
        key: z.1.clone(),
        rate: z.2,
        burst: burst * 1000,
        delay: delay.saturating_mul(1000),
    });
    Ok(v)
}

/// `limit_conn ZONE NUMBER` (one more for this level).
pub(super) fn limit_conn(b: &mut Builder<'_>, d: &Directive, prev: Option<Vec<LimitConn>>) -> Parsed<Vec<LimitConn>> {
    two_args(d)?;
    let name = d.args[0].as_str();
    let Some(z) = b.conn_zones.get(name) else {
        return Err(d.err(format!("zero size shared memory zone \"{name}\"")));
    };
    let max = match d.args[1].parse::<u64>() {
        Ok(n) if (1..=65535).contains(&n) => n,
        Ok(n) if n > 65535 => return Err(d.err("connection limit must be less 65536")),
        _ => return Err(d.err(format!("invalid number of connections \"{}\"", d.args[1]))),
    };
    let mut v = prev.unwrap_or_default();
    if v.iter().any(|l| l.zone.name == name) {
        return Err(d.err("\"limit_conn\" directive is duplicate"));
    }
    v.push(LimitConn {
        zone: z.0.clone(),
        key: z.1.clone(),
        max,
    });
    Ok(v)
}

/// `limit_req_status` / `limit_conn_status CODE`: 400 to 599.
fn limit_status(_: &mut Builder<'_>, d: &Directive, _: Option<u16>) -> Parsed<u16> {
    one_arg(d)?;
    match d.args[0].parse::<u16>() {
        Ok(c) if (400..=599).contains(&c) => Ok(c),
        Ok(_) => Err(d.err("value must be between 400 and 599")),
        Err(_) => Err(d.err(format!("invalid value \"{}\"", d.args[0]))),
    }
}

/// `limit_req_log_level` / `limit_conn_log_level info|notice|warn|error`.
pub(super) fn limit_level(_: &mut Builder<'_>, d: &Directive, _: Option<LogLevel>) -> Parsed<LogLevel> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "info" => Ok(LogLevel::Info),
        "notice" => Ok(LogLevel::Notice),
        "warn" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        v => Err(d.err(format!("invalid value \"{v}\""))),
    }
}

/// `auth_request URI|off`.
fn auth_uri(_: &mut Builder<'_>, d: &Directive, _: Option<Option<String>>) -> Parsed<Option<String>> {
    one_arg(d)?;
    Ok(Some(d.args[0].clone()).filter(|u| u != "off"))
}

/// `auth_request_set $VAR VALUE` (VALUE evaluated in the subrequest, so that
/// `$upstream_http_*` are its response's).
fn auth_set(
    _: &mut Builder<'_>,
    d: &Directive,
    prev: Option<Vec<(usize, Template)>>,
) -> Parsed<Vec<(usize, Template)>> {
    let crate::config::model::RwOp::Set(i, t) = super::rewrite::set(d)? else {
        unreachable!("set makes a Set");
    };
    Ok(push(prev, (i, t)))
}

fn satisfy_any(_: &mut Builder<'_>, d: &Directive, _: Option<bool>) -> Parsed<bool> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "any" => Ok(true),
        "all" => Ok(false),
        v => Err(d.err(format!("invalid value \"{v}\""))),
    }
}

fn cidr_list(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<Cidr>>) -> Parsed<Vec<Cidr>> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    let mut out = prev.unwrap_or_default();
    for a in &d.args {
        out.push(parse_cidr(a).ok_or_else(|| d.err(format!("invalid parameter \"{a}\"")))?);
    }
    Ok(out)
}

/// `ADDRESS[/BITS]` (`all` is every address).
pub(super) fn parse_cidr(a: &str) -> Option<Cidr> {
    if a == "all" {
        return Some(Cidr {
            addr: std::net::IpAddr::from([0u8; 16]),
            bits: 0,
        });
    }
    let (ip, bits) = match a.split_once('/') {
        Some((ip, b)) => (ip, Some(b.parse::<u8>().ok()?)),
        None => (a, None),
    };
    let addr: std::net::IpAddr = ip.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some(Cidr { addr, bits })
}

/// `real_ip_header X-Real-IP|X-Forwarded-For|proxy_protocol|NAME`.
fn real_ip_header(_: &mut Builder<'_>, d: &Directive, _: Option<String>) -> Parsed<String> {
    one_arg(d)?;
    Ok(d.args[0].to_ascii_lowercase())
}

/// `autoindex_format html | json` (true: json); `xml` and `jsonp` are rejected for now.
fn autoindex_fmt(_: &mut Builder<'_>, d: &Directive, _: Option<bool>) -> Parsed<bool> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "html" => Ok(false),
        "json" => Ok(true),
        "xml" | "jsonp" => Err(d.err(format!("\"autoindex_format {}\" is not supported yet", d.args[0]))),
        v => Err(d.err(format!("invalid value \"{v}\" in \"autoindex_format\" directive"))),
    }
}

/// `if_modified_since off | exact | before`.
fn ims(_: &mut Builder<'_>, d: &Directive, _: Option<Ims>) -> Parsed<Ims> {
    one_arg(d)?;
    Ok(match d.args[0].as_str() {
        "off" => Ims::Off,
        "exact" => Ims::Exact,
        "before" => Ims::Before,
        v => return Err(d.err(format!("invalid value \"{v}\" in \"if_modified_since\" directive"))),
    })
}

/// `proxy_hide_header NAME`, `proxy_pass_header NAME` (lowercased).
fn header_name(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<String>>) -> Parsed<Vec<String>> {
    one_arg(d)?;
    Ok(push(prev, d.args[0].to_ascii_lowercase()))
}

/// `proxy_set_header NAME VALUE`.
fn set_header(
    _: &mut Builder<'_>,
    d: &Directive,
    prev: Option<Vec<(String, Template)>>,
) -> Parsed<Vec<(String, Template)>> {
    two_args(d)?;
    let t = Template::compile(&d.args[1]).map_err(|e| e.at_dir(d))?;
    Ok(push(prev, (d.args[0].clone(), t)))
}

/// `resolver ADDRESS... [valid=TIME] [ipv4=on|off] [ipv6=on|off] [status_zone=NAME]`:
/// checked as nginx does (an address is an IP or a name, with an optional port).
/// `resolver ADDRESS[:PORT]… [valid=TIME] [ipv4=on|off] [ipv6=on|off]
/// [status_zone=NAME]`: names are resolved now (port 53 by default), as nginx.
fn resolver(_: &mut Builder<'_>, d: &Directive, _: Option<Option<Arc<Resolver>>>) -> Parsed<Option<Arc<Resolver>>> {
    static IDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut r = Resolver {
        id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        servers: Vec::new(),
        valid: None,
        ipv4: true,
        ipv6: true,
    };
    for a in &d.args {
        let on = |v: &str| match v {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(d.err(format!("invalid parameter: {a}"))),
        };
        if let Some(v) = a.strip_prefix("valid=") {
            r.valid = Some(parse_time(d, v)?);
        } else if let Some(v) = a.strip_prefix("ipv4=") {
            r.ipv4 = on(v)?;
        } else if let Some(v) = a.strip_prefix("ipv6=") {
            r.ipv6 = on(v)?;
        } else if a.starts_with("status_zone=") {
        } else {
            let (host, port) = super::args::split_host_port(a)
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| d.err(format!("invalid parameter: {a}")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let found = std::net::ToSocketAddrs::to_socket_addrs(&(host, port.unwrap_or(53)))
                .map_err(|_| d.err(format!("host not found in resolver \"{a}\"")))?;
            r.servers.extend(found);
        }
    }
    if !r.ipv4 && !r.ipv6 {
        return Err(d.err("\"ipv4\" and \"ipv6\" cannot both be \"off\""));
    }
    if r.servers.is_empty() {
        return Err(nargs(d));
    }
    Ok(Some(Arc::new(r)))
}

/// `tunnel_next_upstream`: `error`, `timeout` and `off` only (a tunnel has no
/// response to judge).
fn tunnel_next(b: &mut Builder<'_>, d: &Directive, prev: Option<NextUpstream>) -> Parsed<NextUpstream> {
    if let Some(a) = d
        .args
        .iter()
        .find(|a| !matches!(a.as_str(), "error" | "timeout" | "off"))
    {
        return Err(d.err(format!("invalid value \"{a}\"")));
    }
    next_upstream(b, d, prev)
}

/// `ssl_stapling_responder http://...` (only http, as nginx).
fn responder(_: &mut Builder<'_>, d: &Directive, _: Option<String>) -> Parsed<String> {
    one_arg(d)?;
    if !d.args[0].starts_with("http://") {
        return Err(d.err(format!("invalid URL prefix in \"{}\"", d.args[0])));
    }
    Ok(d.args[0].clone())
}

fn template(_: &mut Builder<'_>, d: &Directive, _: Option<Template>) -> Parsed<Template> {
    one_arg(d)?;
    Template::compile(&d.args[0]).map_err(|e| e.at_dir(d))
}

fn http_version(_: &mut Builder<'_>, d: &Directive, _: Option<HttpVersion>) -> Parsed<HttpVersion> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "1.0" => Ok(HttpVersion::Http10),
        "1.1" => Ok(HttpVersion::Http11),
        v => Err(d.err(format!(
            "invalid value \"{v}\" in \"proxy_http_version\" directive, it must be \"1.0\" or \"1.1\""
        ))),
    }
}

fn lingering(_: &mut Builder<'_>, d: &Directive, _: Option<Lingering>) -> Parsed<Lingering> {
    one_arg(d)?;
    match d.args[0].as_str() {
        "off" => Ok(Lingering::Off),
        "on" => Ok(Lingering::On),
        "always" => Ok(Lingering::Always),
        v => Err(d.err(format!("invalid value \"{v}\""))),
    }
}

/// `proxy_next_upstream error|timeout|invalid_header|non_idempotent|http_5xx…|off`.
fn next_upstream(_: &mut Builder<'_>, d: &Directive, _: Option<NextUpstream>) -> Parsed<NextUpstream> {
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
    Ok(n)
}

/// `add_header NAME VALUE [always]`.
fn add_header(_: &mut Builder<'_>, d: &Directive, prev: Option<Vec<AddHeader>>) -> Parsed<Vec<AddHeader>> {
    let always = match d.args.len() {
        2 => false,
        3 if d.args[2] == "always" => true,
        3 => return Err(d.err(format!("invalid parameter \"{}\"", d.args[2]))),
        _ => return Err(nargs(d)),
    };
    let value = Template::compile(&d.args[1]).map_err(|e| e.at_dir(d))?;
    let name = d.args[0].clone();
    Ok(push(prev, AddHeader { name, value, always }))
}

/// `types { TYPE EXT…; }`: extension (lowercased) → type.
fn types(
    _: &mut Builder<'_>,
    d: &Directive,
    _: Option<Arc<HashMap<String, String>>>,
) -> Parsed<Arc<HashMap<String, String>>> {
    let mut m = HashMap::new();
    for t in block(d)? {
        for ext in &t.args {
            m.insert(ext.to_ascii_lowercase(), t.name.clone());
        }
    }
    Ok(Arc::new(m))
}

/// `access_log PATH [FORMAT [buffer=…] [flush=…]] | off`.
fn access_log(b: &mut Builder<'_>, d: &Directive, prev: Option<Vec<AccessLog>>) -> Parsed<Vec<AccessLog>> {
    access_log_entry(b, d, prev)
}

/// One `access_log` appended to the level's list (`off`: an empty list).
pub(super) fn access_log_entry(
    b: &mut Builder<'_>,
    d: &Directive,
    prev: Option<Vec<AccessLog>>,
) -> Parsed<Vec<AccessLog>> {
    if d.args.is_empty() {
        return Err(nargs(d));
    }
    if d.args[0] == "off" {
        // An explicit `off` at this level: an empty list (not None), so nothing is inherited.
        return Ok(Vec::new());
    }
    let fmt_name = d.args.get(1).map(String::as_str).unwrap_or("combined");
    let format = b
        .log_formats
        .get(fmt_name)
        .cloned()
        .ok_or_else(|| d.err(format!("unknown log format \"{fmt_name}\"")))?;
    format.note_needs();
    let mut cond = None;
    for a in d.args.iter().skip(2) {
        if let Some(c) = a.strip_prefix("if=") {
            cond = Some(Template::compile(c).map_err(|e| e.at_dir(d))?);
        } else if !(a.starts_with("buffer=") || a.starts_with("flush=")) {
            return Err(d.err(format!("unsupported parameter \"{a}\" in \"access_log\"")));
        }
    }
    if d.args[0].contains('$') {
        return Err(d.err("variables in \"access_log\" paths are not supported"));
    }
    let path = if d.args[0] == "stderr" {
        PathBuf::from("/dev/stderr")
    } else {
        b.env.path(&d.args[0])
    };
    let file_id = b.log_file(&path);
    Ok(push(
        prev,
        AccessLog {
            path,
            format,
            file_id,
            cond,
        },
    ))
}

/// `large_client_header_buffers N SIZE`.
fn header_buffers(_: &mut Builder<'_>, d: &Directive, _: Option<(usize, usize)>) -> Parsed<(usize, usize)> {
    two_args(d)?;
    let n = parse_num(d, &d.args[0])? as usize;
    let size = parse_size(d, &d.args[1])? as usize;
    if n == 0 || size < 16 {
        return Err(d.err("invalid value in \"large_client_header_buffers\""));
    }
    Ok((n, size))
}

/// `keepalive_timeout T [HEADER_T]` (the header timeout is accepted and not used).
fn keepalive(_: &mut Builder<'_>, d: &Directive, _: Option<Duration>) -> Parsed<Duration> {
    if d.args.is_empty() || d.args.len() > 2 {
        return Err(nargs(d));
    }
    parse_time(d, &d.args[0])
}
