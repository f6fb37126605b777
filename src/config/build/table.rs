//! Which directives ringx knows, where, and what a block does with each.
//!
//! Every context has one table of [`Cmd`]s, kept beside its handlers: [`MAIN`] and
//! [`EVENTS`] in main_ctx.rs, [`HTTP`] in http.rs, [`SERVER`] in server.rs,
//! [`LOCATION`] in location.rs, [`UPSTREAM`] in upstream.rs, [`MATCH`] in health.rs. The
//! inheritable settings have theirs in settings.rs ([`SETTINGS`], with their contexts),
//! and the directives accepted to no effect are [`NO_OP`] here. [`walk`] runs a block
//! through its context's table, then the no-ops, then (http, server, location) the
//! settings; [`reject`] answers a directive that none of them takes, from all the same
//! tables: `"X" directive is not allowed here` when some context accepts it, else
//! `unknown directive "X"`, as nginx.
//!
//! [`MAIN`]: super::main_ctx::MAIN
//! [`EVENTS`]: super::main_ctx::EVENTS
//! [`HTTP`]: super::http::HTTP
//! [`SERVER`]: super::server::SERVER
//! [`LOCATION`]: super::location::LOCATION
//! [`UPSTREAM`]: super::upstream::UPSTREAM
//! [`MATCH`]: super::health::MATCH
//! [`SETTINGS`]: super::settings::SETTINGS

use super::settings::{Settings, SETTINGS};
use super::{health, http, location, main_ctx, server, stream, upstream, Builder};
use crate::config::parser::Directive;
use crate::config::ConfError;

/// A block's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
    Main,
    Events,
    Http,
    Upstream,
    Server,
    Location,
    /// `match NAME { … }` (health checks).
    Match,
    /// `if (…) { … }` in a server.
    ServerIf,
    /// `if (…) { … }` in a location.
    LocationIf,
    Stream,
    /// `server { … }` in `stream`.
    StreamServer,
}

/// What a handler returns: the directive went into the context's state, or an error.
pub(super) type Done = Result<(), ConfError>;

/// Reads one directive into the state `S` of the block it stands in.
pub(super) type Handler<S> = fn(&mut Builder<'_>, &mut S, &Directive) -> Done;

/// One directive of a context's table.
pub(super) struct Cmd<S> {
    pub(super) name: &'static str,
    pub(super) kind: Kind<S>,
    /// Outside its contexts this directive is reported as unknown, not as "not allowed
    /// here" (as before the tables: nginx would say "not allowed here" for `use`, `hash`
    /// and `random`).
    pub(super) unknown_elsewhere: bool,
}

pub(super) enum Kind<S> {
    /// Read when met.
    Run(Handler<S>),
    /// Kept, in order, for the block to read after its other directives (`server`,
    /// `location`, `health_check`).
    Later,
    /// Read by an earlier pass over the block (http's `upstream`, `match`, `log_format`).
    Early,
}

impl<S> Cmd<S> {
    pub(super) const fn run(name: &'static str, f: Handler<S>) -> Self {
        Cmd {
            name,
            kind: Kind::Run(f),
            unknown_elsewhere: false,
        }
    }

    pub(super) const fn later(name: &'static str) -> Self {
        Cmd {
            name,
            kind: Kind::Later,
            unknown_elsewhere: false,
        }
    }

    pub(super) const fn early(name: &'static str) -> Self {
        Cmd {
            name,
            kind: Kind::Early,
            unknown_elsewhere: false,
        }
    }

    pub(super) const fn unknown_elsewhere(self) -> Self {
        Cmd {
            unknown_elsewhere: true,
            ..self
        }
    }
}

/// Directives accepted for compatibility that change nothing in ringx (see
/// docs/config.md for why each is safe to accept).
const NO_OP: &[(&str, &[Ctx])] = &[
    ("sendfile", &[Ctx::Http, Ctx::Server, Ctx::Location, Ctx::LocationIf]),
    // ringx does not warn of variables used before `set` (a log line only).
    (
        "uninitialized_variable_warn",
        &[Ctx::Http, Ctx::Server, Ctx::ServerIf, Ctx::Location, Ctx::LocationIf],
    ),
    ("tcp_nopush", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("tcp_nodelay", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("types_hash_max_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("types_hash_bucket_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("server_names_hash_bucket_size", &[Ctx::Http]),
    ("proxy_headers_hash_max_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    (
        "proxy_headers_hash_bucket_size",
        &[Ctx::Http, Ctx::Server, Ctx::Location],
    ),
    ("variables_hash_max_size", &[Ctx::Http]),
    ("variables_hash_bucket_size", &[Ctx::Http]),
    ("map_hash_max_size", &[Ctx::Http]),
    ("map_hash_bucket_size", &[Ctx::Http]),
    ("server_names_hash_max_size", &[Ctx::Http]),
    ("proxy_busy_buffers_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    // Cache settings that do nothing while `proxy_cache` is off, the only value
    // ringx takes (it has no response cache): guides set them beside `proxy_cache off`.
    ("proxy_cache_bypass", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_no_cache", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_cache_valid", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_cache_key", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_cache_use_stale", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_cache_lock", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_cache_min_uses", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_cache_methods", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_cache_revalidate", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    (
        "proxy_cache_background_update",
        &[Ctx::Http, Ctx::Server, Ctx::Location],
    ),
    // Where responses of modules ringx does not write to temp files would go.
    ("fastcgi_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("uwsgi_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("scgi_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    // How a temporary file is written (ringx writes what it has, whatever its size).
    ("proxy_temp_file_write_size", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("client_header_buffer_size", &[Ctx::Http, Ctx::Server]),
    ("accept_mutex", &[Ctx::Events]),
    ("accept_mutex_delay", &[Ctx::Events]),
    ("multi_accept", &[Ctx::Events]),
    ("worker_aio_requests", &[Ctx::Events]),
    ("debug_connection", &[Ctx::Events]),
    // ringx JIT-compiles every regex PCRE2 can; it keeps no timers of a coarser
    // resolution, no aio thread pools and no accept lock.
    ("pcre_jit", &[Ctx::Main]),
    ("timer_resolution", &[Ctx::Main]),
    ("thread_pool", &[Ctx::Main]),
    ("lock_file", &[Ctx::Main]),
    ("zone", &[Ctx::Upstream]),
    ("gzip_buffers", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    // ringx opens and stats a file per request: always what is on disk now, which
    // nginx's cache also gives once `open_file_cache_valid` has passed.
    ("open_file_cache", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("open_file_cache_valid", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("open_file_cache_min_uses", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("open_file_cache_errors", &[Ctx::Http, Ctx::Server, Ctx::Location]),
];

/// Reads the directives of one block, in order, into `st` (and `set`, for the levels
/// that inherit settings); returns the ones its table marks [`Kind::Later`], in order.
pub(super) fn walk<'d, S>(
    b: &mut Builder<'_>,
    items: &'d [Directive],
    ctx: Ctx,
    table: &[Cmd<S>],
    st: &mut S,
    mut set: Option<&mut Settings>,
) -> Result<Vec<&'d Directive>, ConfError> {
    let mut later = Vec::new();
    for d in items {
        match table.iter().find(|c| c.name == d.name).map(|c| &c.kind) {
            Some(Kind::Run(f)) => f(b, st, d)?,
            Some(Kind::Later) => later.push(d),
            Some(Kind::Early) => {}
            None if NO_OP.iter().any(|(n, ctxs)| *n == d.name && ctxs.contains(&ctx)) => {}
            None => {
                let is_setting = match set.as_deref_mut() {
                    Some(s) => s.parse(b, d, ctx)?,
                    None => false,
                };
                if !is_setting {
                    return Err(reject(d));
                }
            }
        }
    }
    Ok(later)
}

/// The error for a directive its block does not take: "not allowed here" when another
/// context takes it, else "unknown directive".
pub(super) fn reject(d: &Directive) -> ConfError {
    let n = d.name.as_str();
    let known = listed(main_ctx::MAIN, n)
        || listed(main_ctx::EVENTS, n)
        || listed(http::HTTP, n)
        || listed(server::SERVER, n)
        || listed(location::LOCATION, n)
        || listed(upstream::UPSTREAM, n)
        || listed(health::MATCH, n)
        || listed(stream::STREAM, n)
        || listed(stream::SERVER, n)
        || NO_OP.iter().any(|(x, _)| *x == n)
        || SETTINGS.iter().any(|(x, _)| *x == n)
        || n == "deny";
    if known {
        d.err(format!("\"{n}\" directive is not allowed here"))
    } else if let Some(m) = main_ctx::module_of(n) {
        d.err(format!(
            "unknown directive \"{n}\" (a directive of {m}, which ringx does not implement)"
        ))
    } else {
        d.err(format!("unknown directive \"{n}\""))
    }
}

fn listed<S>(table: &[Cmd<S>], name: &str) -> bool {
    table.iter().any(|c| c.name == name && !c.unknown_elsewhere)
}
