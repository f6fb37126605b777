//! Upstream keep-alive: idle connections kept by one worker, per server address and
//! TLS profile (a TLS connection is reused only for the same settings and name).
//!
//! A connection goes back only when its response was read to the end, the upstream
//! did not ask to close, and `keepalive_requests` is not reached; at most
//! `keepalive N` per upstream per worker are kept (the oldest is closed first), and
//! one idle longer than `keepalive_timeout` is closed instead of reused. An idle
//! connection the upstream closed is found on reuse (the request then goes to a
//! fresh connection, see `http::proxy`).

use super::Peer;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Stream;

pub struct UpConn {
    pub stream: Stream,
    pub addr: Peer,
    /// `(0, "")` for plain TCP; else the TLS settings' id and the name it was made with.
    pub key: TlsKey,
    pub buf: Vec<u8>,
    /// Requests sent on this connection.
    pub requests: u64,
    /// When it was made (`keepalive_time`).
    pub born: Instant,
    idle_until: Instant,
}

impl UpConn {
    pub fn new(stream: Stream, addr: Peer, key: TlsKey, buf_size: usize) -> Self {
        UpConn {
            stream,
            addr,
            key,
            buf: Vec::with_capacity(buf_size),
            requests: 0,
            born: Instant::now(),
            idle_until: Instant::now(),
        }
    }
}

#[derive(Default)]
pub struct Pool {
    /// Plain connections, by address only: the common case hashes and compares no more
    /// than the address (a key with the TLS name in it cost 1% CPU per request in
    /// memcmp alone on small responses).
    /// foldhash (seeded per process): SipHash's two lookups per proxied request were
    /// 1.4% of the request path's instructions (472 per request; about 100 now).
    plain: HashMap<Peer, VecDeque<UpConn>, foldhash::fast::RandomState>,
    tls: HashMap<(Peer, TlsKey), VecDeque<UpConn>, foldhash::fast::RandomState>,
}

/// What a TLS connection was made with: the location's TLS settings (their id) and
/// the name (SNI, verified). A connection is reused only for exactly these.
pub type TlsKey = (u64, Box<str>);

impl Pool {
    /// A reusable idle connection to `addr` made with `key`, if one is fresh enough.
    pub fn take(&mut self, addr: &Peer, key: &TlsKey) -> Option<UpConn> {
        let q = if key.0 == 0 {
            self.plain.get_mut(addr)?
        } else {
            self.tls.get_mut(&(addr.clone(), key.clone()))?
        };
        let now = Instant::now();
        while let Some(c) = q.pop_back() {
            if now <= c.idle_until {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `c` idle; `limit` is the upstream's `keepalive N`, counted per address
    /// group of the upstream (ringx counts per server address, which is at most N per
    /// server rather than N for the whole upstream).
    pub fn put(&mut self, mut c: UpConn, limit: usize, max_idle: Duration) {
        if limit == 0 {
            return;
        }
        c.idle_until = Instant::now() + max_idle;
        c.buf.clear();
        let q = if c.key.0 == 0 {
            self.plain.entry(c.addr.clone()).or_default()
        } else {
            self.tls.entry((c.addr.clone(), c.key.clone())).or_default()
        };
        if q.len() >= limit {
            q.pop_front();
        }
        q.push_back(c);
    }

    /// Closes connections idle for longer than their upstream's `keepalive_timeout`.
    pub fn sweep(&mut self) {
        let now = Instant::now();
        for q in self.plain.values_mut().chain(self.tls.values_mut()) {
            q.retain(|c| now <= c.idle_until);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.plain.values().chain(self.tls.values()).map(VecDeque::len).sum()
    }
}
