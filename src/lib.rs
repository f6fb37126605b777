//! ringx: an io_uring HTTP/1.1 reverse proxy that runs nginx configurations.
//!
//! The data path, one pinned worker per core, each with its own listeners, runtime,
//! balancers and upstream pools (see docs/architecture.md):
//!
//! ```text
//! accept (net::listener, SO_REUSEPORT) → http::proxy::serve
//!   → http::parse (httparse, spans into the receive buffer)
//!   → http::route (server by Host, location by $uri)
//!   → return / error page (http::status)
//!   | balance (pick) → net::pool or connect → http::forward (upstream head)
//!     → body (stream, chunked checked) → http::response → relay → observe::log
//! ```
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod balance;
pub mod cli;
pub mod config;
pub mod demo;
pub mod health;
pub mod http;
pub mod limit;
pub mod net;
pub mod observe;
pub mod proto;
pub mod runtime;
pub mod stream;

/// This machine's host name (for `$hostname`).
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}
