//! Upstream state shared by all workers, without a lock on the request path.
//!
//! One [`SharedUpstream`] per `upstream` per configuration, created once and read by
//! every worker:
//!
//! - **Load** (`least_conn`, status): per server, one cache-padded [`Slot`] per worker
//!   holding that worker's in-flight count and requests served. Only the owning worker
//!   writes its slot, with a plain `Relaxed` store of its exact local value each time it
//!   changes (no read-modify-write, no shared write line). A reader adds its own exact
//!   count to the others' published ones. The view of another worker is stale by at most
//!   the time a store takes to become visible (nanoseconds to a few microseconds), far
//!   below a request's duration; see docs/balancing.md.
//! - **Passive health**: `max_fails` failures on any worker within `fail_timeout` trip
//!   the server for every worker until `fail_timeout` has passed; then one probe
//!   request, claimed by one worker with a compare-and-swap, decides: success clears the
//!   trip, failure renews it. Failures are rare, so these atomics are off the hot path.
//! - **max_conns**: a global counter (read-modify-write) used only for servers that set
//!   `max_conns`, so the limit holds exactly across workers.
//! - **Active health checks**: `unhealthy` is written by the one worker that probes
//!   the upstream, read by all; `recovered_at` drives `slow_start`: for that long
//!   after a server comes back, each pick skips it with probability 1 − elapsed /
//!   slow_start, so its share of new requests grows linearly from zero.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

use crossbeam_utils::CachePadded;

/// Milliseconds since the process started (a shared monotonic clock for atomics).
pub fn now_ms_at(t: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    t.saturating_duration_since(base).as_millis() as u64 + 1
}

/// One worker's published figures for one server.
#[derive(Debug, Default)]
pub struct Slot {
    pub conns: AtomicU32,
    pub requests: AtomicU64,
}

#[derive(Debug, Default)]
pub struct SharedPeer {
    pub slots: Box<[CachePadded<Slot>]>,
    /// In-flight requests across workers (kept only when `max_conns` is set).
    pub global_conns: AtomicU32,
    fails: AtomicU32,
    window_start: AtomicU64,
    /// 0: not tripped; else the time until which the server is skipped.
    down_until: AtomicU64,
    probing: AtomicBool,
    pub unhealthy: AtomicBool,
    /// When the server last came back (for slow_start); 0 = never went away.
    pub recovered_at: AtomicU64,
}

/// Whether a pick may use a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Avail {
    Yes,
    No,
    /// Tripped and its window is over: one request may probe it.
    Probe,
}

impl SharedPeer {
    fn new(workers: usize) -> Self {
        SharedPeer {
            slots: (0..workers.max(1)).map(|_| CachePadded::new(Slot::default())).collect(),
            ..Default::default()
        }
    }

    /// In-flight requests on this server across workers: `mine` is the caller's exact
    /// count, the others come from their slots.
    pub fn conns_view(&self, me: usize, mine: u32) -> u32 {
        let mut n = mine;
        for (w, s) in self.slots.iter().enumerate() {
            if w != me {
                n += s.conns.load(Relaxed);
            }
        }
        n
    }

    pub fn requests(&self) -> u64 {
        self.slots.iter().map(|s| s.requests.load(Relaxed)).sum()
    }

    pub fn conns(&self) -> u32 {
        self.slots.iter().map(|s| s.conns.load(Relaxed)).sum()
    }

    pub fn fails(&self) -> u32 {
        self.fails.load(Relaxed)
    }

    /// Publishes worker `me`'s exact figures.
    #[inline]
    pub fn publish(&self, me: usize, conns: u32, requests: u64) {
        if let Some(s) = self.slots.get(me) {
            s.conns.store(conns, Relaxed);
            s.requests.store(requests, Relaxed);
        }
    }

    pub fn avail(&self, now: u64) -> Avail {
        if self.unhealthy.load(Relaxed) {
            return Avail::No;
        }
        let until = self.down_until.load(Relaxed);
        if until == 0 {
            Avail::Yes
        } else if now < until {
            Avail::No
        } else {
            Avail::Probe
        }
    }

    pub fn tripped(&self, now: u64) -> bool {
        let until = self.down_until.load(Relaxed);
        until != 0 && now < until
    }

    /// Claims the single probe of a tripped server whose window ended; the server
    /// stays skipped by everyone else meanwhile.
    pub fn claim_probe(&self, now: u64, fail_timeout_ms: u64) -> bool {
        let until = self.down_until.load(Relaxed);
        if until == 0 || now < until {
            return false;
        }
        if self
            .down_until
            .compare_exchange(until, now + fail_timeout_ms.max(1), Relaxed, Relaxed)
            .is_ok()
        {
            self.probing.store(true, Relaxed);
            true
        } else {
            false
        }
    }

    /// Counts a failure; true when this failure trips the server.
    pub fn on_failure(&self, now: u64, max_fails: u32, fail_timeout_ms: u64) -> bool {
        if max_fails == 0 {
            return false;
        }
        let was_probe = self.probing.swap(false, Relaxed);
        let start = self.window_start.load(Relaxed);
        let n = if start == 0 || now.saturating_sub(start) > fail_timeout_ms {
            self.window_start.store(now, Relaxed);
            self.fails.store(1, Relaxed);
            1
        } else {
            self.fails.fetch_add(1, Relaxed) + 1
        };
        if n >= max_fails || was_probe {
            let prev = self.down_until.swap(now + fail_timeout_ms.max(1), Relaxed);
            return prev == 0;
        }
        false
    }

    /// Counts a success: a successful probe clears the trip; a success after the
    /// failure window ended clears the count.
    pub fn on_success(&self, now: u64, fail_timeout_ms: u64) -> bool {
        if self.probing.swap(false, Relaxed) {
            self.fails.store(0, Relaxed);
            self.down_until.store(0, Relaxed);
            self.recovered_at.store(now, Relaxed);
            return true;
        }
        if self.down_until.load(Relaxed) == 0 && self.fails.load(Relaxed) != 0 {
            let start = self.window_start.load(Relaxed);
            if now.saturating_sub(start) > fail_timeout_ms {
                self.fails.store(0, Relaxed);
            }
        }
        false
    }

    /// nginx's quick recovery when every server is out: forget the failures.
    pub fn reset(&self) {
        self.fails.store(0, Relaxed);
        self.down_until.store(0, Relaxed);
        self.probing.store(false, Relaxed);
    }

    /// How far through `slow_start` a recovered server is: `None` when it is not
    /// ramping, else the fraction in [0, 1) of its full share it should get now.
    pub fn ramp(&self, slow_start_ms: u64, now: u64) -> Option<f64> {
        if slow_start_ms == 0 {
            return None;
        }
        let at = self.recovered_at.load(Relaxed);
        if at == 0 || now >= at + slow_start_ms {
            return None;
        }
        Some((now - at) as f64 / slow_start_ms as f64)
    }
}

/// All servers of one upstream.
#[derive(Debug, Default)]
pub struct SharedUpstream {
    pub peers: Vec<SharedPeer>,
    pub workers: usize,
}

impl SharedUpstream {
    pub fn new(servers: usize, workers: usize) -> Self {
        SharedUpstream {
            peers: (0..servers).map(|_| SharedPeer::new(workers)).collect(),
            workers: workers.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_adds_other_workers() {
        let p = SharedPeer::new(3);
        p.publish(1, 4, 10);
        p.publish(2, 1, 5);
        assert_eq!(p.conns_view(0, 2), 7);
        assert_eq!(p.conns_view(1, 9), 10, "own slot replaced by the exact count");
        assert_eq!(p.requests(), 15);
    }

    #[test]
    fn trip_probe_recover() {
        let p = SharedPeer::new(2);
        assert_eq!(p.avail(100), Avail::Yes);
        assert!(!p.on_failure(100, 2, 1000));
        assert!(p.on_failure(200, 2, 1000), "second failure in the window trips");
        assert_eq!(p.avail(500), Avail::No);
        assert_eq!(p.avail(1300), Avail::Probe);
        assert!(p.claim_probe(1300, 1000));
        assert!(!p.claim_probe(1300, 1000), "only one probe");
        assert_eq!(p.avail(1400), Avail::No);
        // The probe fails: tripped again.
        p.on_failure(1400, 2, 1000);
        assert_eq!(p.avail(2000), Avail::No);
        assert!(p.claim_probe(2500, 1000));
        assert!(p.on_success(2600, 1000));
        assert_eq!(p.avail(2600), Avail::Yes);
        assert_eq!(p.fails(), 0);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let p = SharedPeer::new(1);
        assert!(!p.on_failure(100, 2, 1000));
        assert!(!p.on_failure(1200, 2, 1000));
        assert_eq!(p.avail(1300), Avail::Yes);
    }

    #[test]
    fn slow_start_ramp() {
        let p = SharedPeer::new(1);
        assert_eq!(p.ramp(1000, 50), None);
        p.recovered_at.store(1000, Relaxed);
        assert_eq!(p.ramp(1000, 1000), Some(0.0));
        assert_eq!(p.ramp(1000, 1500), Some(0.5));
        assert_eq!(p.ramp(1000, 2500), None);
        assert_eq!(p.ramp(0, 1500), None);
    }
}
