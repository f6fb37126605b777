//! `limit_rate` / `limit_rate_after` (and an upstream's `X-Accel-Limit-Rate`): a
//! response to the client goes no faster than the rate, as nginx's write filter
//! paces it.
//!
//! Where it sits: set when a response's head is about to go (the relay of an
//! upstream response, the static handler), then asked before each write of its body.
//! nginx's rule (`net::rate`): by the time `t` whole seconds have passed since the
//! request began, `rate × (t + 1)` bytes past `limit_rate_after` may have been sent;
//! a write that would go past that waits until it may.

use std::time::Instant;

use super::{Client, Req};
use crate::config::model::SizeValue;

/// One response's pacing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    rate: u64,
    after: u64,
    start: Instant,
    /// What the connection had written when the response began.
    base: u64,
}

/// A `SizeValue` for this request (0 when a rendered one is not a size).
fn size(c: &Client, r: &Req<'_>, v: &SizeValue) -> u64 {
    match v {
        SizeValue::Fixed(n) => *n,
        SizeValue::Var(t) => {
            let mut out = Vec::new();
            t.render(&c.ctx(r), &mut out);
            std::str::from_utf8(&out)
                .ok()
                .and_then(crate::config::build::parse_size_str)
                .unwrap_or(0)
        }
    }
}

/// Paces the response that starts now: the location's `limit_rate`, or the rate an
/// upstream's `X-Accel-Limit-Rate` named (bytes per second).
pub(super) fn start(c: &mut Client, r: &Req<'_>, upstream: Option<u64>) {
    let rate = upstream.unwrap_or_else(|| size(c, r, &r.conf.limit_rate));
    c.pace = (rate > 0).then(|| Pace {
        rate,
        after: size(c, r, &r.conf.limit_rate_after),
        start: r.start,
        base: c.stream.written(),
    });
}

/// Waits until the response may send more.
pub(super) async fn wait(c: &Client) {
    if let Some(p) = c.pace {
        let sent = c.stream.written() - p.base;
        crate::net::rate::allowance(p.rate, p.start, sent.saturating_sub(p.after)).await;
    }
}

/// How many bytes the response may send now without waiting (`u64::MAX` unpaced).
pub(super) fn allowed_now(c: &Client) -> u64 {
    match c.pace {
        Some(p) => {
            let sent = c.stream.written() - p.base;
            crate::net::rate::allowance_now(p.rate, p.start, sent.saturating_sub(p.after))
        }
        None => u64::MAX,
    }
}
