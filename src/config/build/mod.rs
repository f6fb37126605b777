//! Directive tree → typed [`Config`]: contexts, arguments, defaults, inheritance,
//! validation.
//!
//! The second stage of the config pipeline ([`super::parser`] → `build` →
//! [`super::model`]), run at start-up and on reload. [`build`] walks the tree context by
//! context; a directive that is unknown, or known but in the wrong context, or has a bad
//! value is an `[emerg]` [`ConfError`] with its file:line, in nginx's wording.
//!
//! A directive is declared once, with its context:
//! - table.rs: `Ctx`, the walk of one block through its context's table of
//!   directives, the no-ops, and the "unknown directive" / "not allowed here" answer
//!   drawn from every table;
//! - a context's own directives sit in its file's table, beside their handlers:
//!   main_ctx.rs (main and `events`), http.rs, server.rs, location.rs, upstream.rs,
//!   health.rs (`match`, `health_check`), with listen.rs for `listen`, `server_name` and
//!   the grouping of servers by address;
//! - settings.rs: the settings nginx inherits http → server → location, one line each
//!   (contexts, parser, default); each level collects them as `Option`s, merges over its
//!   parent's, and resolves into the [`LocConf`](super::model::LocConf) the request path
//!   reads. Like nginx, a level that sets any `proxy_set_header` (or `add_header`,
//!   `access_log`, …) replaces the whole inherited list;
//! - args.rs: argument counts, `on|off`, numbers, times, sizes, `host:port`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::model::{Config, Match, Upstream};
use super::parser::Directive;
use super::vars::Template;
use super::ConfError;

mod args;
mod health;
mod http;
mod listen;
mod location;
mod main_ctx;
mod map;
mod proxy_ssl;
mod rewrite;
mod server;
mod settings;
mod ssl;
mod stream;
mod table;
mod upstream;

pub use args::{parse_size_str, parse_time_str};
pub use listen::parse_listen_addr;

pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// Paths and defaults the build needs from the command line.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// `-p`: relative log, pid and include paths resolve against it.
    pub prefix: PathBuf,
    /// The directory of the main configuration file (nginx's conf prefix): relative
    /// `ssl_certificate` and `ssl_certificate_key` paths resolve against it.
    pub conf_prefix: PathBuf,
}

impl BuildEnv {
    /// Both prefixes at `dir` (tests and benches).
    pub fn at(dir: &str) -> Self {
        BuildEnv {
            prefix: dir.into(),
            conf_prefix: dir.into(),
        }
    }

    /// `p` relative to the conf prefix.
    fn conf_path(&self, p: &str) -> PathBuf {
        self.conf_prefix.join(p)
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.prefix.join(p)
        }
    }
}

/// What the walk keeps across contexts: what http declares for its servers to name, and
/// the access-log files numbered so far.
struct Builder<'e> {
    env: &'e BuildEnv,
    log_formats: HashMap<String, Arc<crate::config::vars::LogFormat>>,
    log_files: Vec<PathBuf>,
    upstreams: Vec<Arc<Upstream>>,
    matches: HashMap<String, Arc<Match>>,
    /// `ssl_session_cache shared:NAME:SIZE` zones by name.
    session_caches: HashMap<String, Arc<crate::config::tls::Cache>>,
    /// `[warn]` lines for the operator (printed at start-up and `-t`, logged at reload).
    warnings: Vec<(super::model::LogLevel, ConfError)>,
    /// The http block's `map`s.
    maps: Arc<Vec<super::model::VarMap>>,
    /// A `tunnel_pass` was seen in the server being built (its `allow_connect`).
    saw_tunnel: bool,
    /// `limit_req_zone`s by name: the zone, its key, its rate.
    req_zones: HashMap<String, (Arc<crate::limit::ReqZone>, Arc<super::model::ZoneKey>, u64)>,
    /// `limit_conn_zone`s by name: the zone and its key.
    conn_zones: HashMap<String, (Arc<crate::limit::ConnZone>, Arc<super::model::ZoneKey>)>,
    /// Every zone's name: whether it is a `limit_req_zone`, and its key as written.
    zone_keys: HashMap<String, (bool, String)>,
}

/// Builds the typed configuration from a parsed tree.
pub fn build(tree: &[Directive], env: &BuildEnv) -> Result<Config, ConfError> {
    let mut b = Builder {
        env,
        log_formats: HashMap::new(),
        log_files: Vec::new(),
        upstreams: Vec::new(),
        matches: HashMap::new(),
        session_caches: HashMap::new(),
        warnings: Vec::new(),
        maps: Arc::default(),
        saw_tunnel: false,
        req_zones: HashMap::new(),
        conn_zones: HashMap::new(),
        zone_keys: HashMap::new(),
    };
    use crate::config::vars::{Escape, LogFormat};
    let combined = LogFormat::new(Template::compile(COMBINED)?, Escape::Default);
    b.log_formats.insert("combined".into(), Arc::new(combined));
    // ringx's own: Squid's native format, for the Squid translation and its users.
    let squid = LogFormat::new(crate::config::vars::squid_log_format(), Escape::Default);
    b.log_formats.insert("squid".into(), Arc::new(squid));
    let mut main = main_ctx::Main::new(env);
    table::walk(&mut b, tree, table::Ctx::Main, main_ctx::MAIN, &mut main, None)?;
    let mut cfg = main.finish()?;
    cfg.warnings = b.warnings;
    Ok(cfg)
}

#[cfg(test)]
mod tests;
