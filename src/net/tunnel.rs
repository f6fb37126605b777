//! The bidirectional copy: two connections joined byte for byte until both sides
//! are done. Under WebSocket (HTTP/1.1 `Upgrade`), CONNECT tunnels and `stream {}`.
//!
//! Each direction is a pump: read from one side, write that same buffer to the other,
//! no copy. A side's end of stream is passed on as a half close (`shutdown(Write)`
//! on the other side), so each peer sees the other finish; an error or a timeout in
//! either direction shuts both connections down, which also ends the other pump.

use std::net::Shutdown;
use std::time::Duration;

use super::{IoFail, Stream};

/// One direction's limits: how long a read from the source may wait for bytes, and
/// a write to the destination for room.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub read: Duration,
    pub write: Duration,
    /// Bytes per second read from the source (0: no limit): nginx's stream
    /// `proxy_upload_rate` / `proxy_download_rate`.
    pub rate: u64,
}

impl Limits {
    /// Timeouts without a rate.
    pub fn new(read: Duration, write: Duration) -> Limits {
        Limits { read, write, rate: 0 }
    }
}

/// What went through, and how it ended.
#[derive(Debug)]
pub struct Tunneled {
    /// Bytes copied from `a` to `b`, and from `b` to `a`.
    pub a_to_b: u64,
    pub b_to_a: u64,
    /// The first failure in either direction, if one ended it.
    pub failed: Option<IoFail>,
}

/// A pump's buffer to begin with, and what it grows to once a read fills it (bulk
/// traffic). Measured (docs/benchmarks.md, L4 relay of 1 MiB responses): 64 KiB
/// reads take ringx from 1.12x nginx's CPU per byte to 0.37x; a tunnel that only
/// carries small messages (WebSocket, interactive CONNECT) keeps 16 KiB a direction.
const PUMP_BUF: usize = 16 * 1024;
const PUMP_MAX: usize = 64 * 1024;

/// Copies both ways between `a` and `b` until both directions have ended.
pub async fn tunnel(a: &Stream, b: &Stream, a_to_b: Limits, b_to_a: Limits) -> Tunneled {
    join(a, b, a_to_b, b_to_a, true).await
}

/// [`tunnel`]; without `half_close`, the first end of stream (its bytes passed on)
/// ends both directions, as nginx's stream proxy without `proxy_half_close`.
pub async fn join(a: &Stream, b: &Stream, a_to_b: Limits, b_to_a: Limits, half_close: bool) -> Tunneled {
    let (ab, ba) = tokio::join!(pump(a, b, a_to_b, half_close), pump(b, a, b_to_a, half_close));
    let (a_to_b, e1) = ab;
    let (b_to_a, e2) = ba;
    Tunneled {
        a_to_b,
        b_to_a,
        failed: e1.or(e2),
    }
}

async fn pump(from: &Stream, to: &Stream, lim: Limits, half_close: bool) -> (u64, Option<IoFail>) {
    let mut buf = Vec::with_capacity(PUMP_BUF);
    let mut total = 0u64;
    let start = std::time::Instant::now();
    loop {
        buf.clear();
        let mut room = buf.capacity();
        if lim.rate > 0 {
            room = room.min(super::rate::allowance(lim.rate, start, total).await);
        }
        let step = match from.read_append(buf, room, lim.read).await {
            Ok((0, _)) => {
                if half_close {
                    to.shutdown(Shutdown::Write);
                } else {
                    from.shutdown(Shutdown::Both);
                    to.shutdown(Shutdown::Both);
                }
                return (total, None);
            }
            Ok((n, b)) => to.write_all(b, lim.write).await.map(|b| (n, b)),
            Err(e) => Err(e),
        };
        match step {
            Ok((n, mut b)) => {
                total += n as u64;
                if n == room && room < PUMP_MAX {
                    b.clear();
                    b.reserve_exact(PUMP_MAX);
                }
                buf = b;
            }
            Err(e) => {
                from.shutdown(Shutdown::Both);
                to.shutdown(Shutdown::Both);
                return (total, Some(e));
            }
        }
    }
}
