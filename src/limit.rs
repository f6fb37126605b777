//! `limit_req_zone` and `limit_conn_zone` state: one table per zone, shared by every
//! worker, updated lock-free.
//!
//! Where it sits: the configuration holds each zone (`Arc`), and the preaccess
//! phase of a request (src/http/proxy/limits.rs) asks it. nginx keeps these in a
//! shared-memory rbtree under a mutex; here a zone is a fixed table of atomic slots
//! in the process's memory, which every worker thread reads and updates with
//! compare-and-swap. So the limits are global across workers and exact: no
//! per-worker view, no staleness bound to state, no lock on the request path.
//! Contention is per key (the same client from several workers), one cache line.
//!
//! A key is found by its 64-bit hash (a per-zone random seed, so clients cannot aim
//! collisions), probing [`PROBE`] slots. Two keys whose hashes are equal share a
//! state (odds about 2^-64 per pair). When the probed slots all hold live keys, the
//! one with the oldest state is taken over, as nginx removes the least recently
//! used state of a full zone; a connection zone never takes over a slot with
//! connections open, and a request refused for lack of room is answered with the
//! zone's status, as nginx's "could not allocate node".
//!
//! Memory is bounded by the zone's size: one slot per 128 bytes of it (nginx's state
//! for a short key takes a 128-byte slab), rounded down to a power of two.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

/// The zones of the configurations loaded, by name and size: a reload that keeps a
/// zone's name and size keeps its state, as nginx keeps such a shared-memory zone.
static REQ_ZONES: Mutex<Vec<(String, u64, Weak<ReqZone>)>> = Mutex::new(Vec::new());
static CONN_ZONES: Mutex<Vec<(String, u64, Weak<ConnZone>)>> = Mutex::new(Vec::new());

/// The `limit_req_zone` of this name and size: the live one, else a new one.
pub fn req_zone(name: &str, size: u64) -> Arc<ReqZone> {
    reuse(&REQ_ZONES, name, size, || ReqZone::new(name, size))
}

/// The `limit_conn_zone` of this name and size: the live one, else a new one.
pub fn conn_zone(name: &str, size: u64) -> Arc<ConnZone> {
    reuse(&CONN_ZONES, name, size, || ConnZone::new(name, size))
}

fn reuse<T>(all: &Mutex<Vec<(String, u64, Weak<T>)>>, name: &str, size: u64, make: impl FnOnce() -> Arc<T>) -> Arc<T> {
    // Configuration loading only, never the request path.
    let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(_, _, w)| w.strong_count() > 0);
    if let Some(z) = all
        .iter()
        .find(|(n, s, _)| n == name && *s == size)
        .and_then(|(_, _, w)| w.upgrade())
    {
        return z;
    }
    let z = make();
    all.push((name.into(), size, Arc::downgrade(&z)));
    z
}

/// What `limit_req` decided for a request (`$limit_req_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqStatus {
    Passed,
    Delayed,
    Rejected,
    DelayedDryRun,
    RejectedDryRun,
}

/// What `limit_conn` decided for a request (`$limit_conn_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStatus {
    Passed,
    Rejected,
    RejectedDryRun,
}

impl ReqStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReqStatus::Passed => "PASSED",
            ReqStatus::Delayed => "DELAYED",
            ReqStatus::Rejected => "REJECTED",
            ReqStatus::DelayedDryRun => "DELAYED_DRY_RUN",
            ReqStatus::RejectedDryRun => "REJECTED_DRY_RUN",
        }
    }
}

impl ConnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnStatus::Passed => "PASSED",
            ConnStatus::Rejected => "REJECTED",
            ConnStatus::RejectedDryRun => "REJECTED_DRY_RUN",
        }
    }
}

/// Both decisions of a request; `None`: not decided (no limit applied).
#[derive(Debug, Clone, Copy, Default)]
pub struct Decided {
    pub req: Option<ReqStatus>,
    pub conn: Option<ConnStatus>,
}

/// Slots probed for a key.
pub const PROBE: usize = 8;

fn slots_for(size: u64) -> usize {
    let n = (size / 128).max(PROBE as u64) as usize;
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// The hash of a key, never 0 (an empty slot).
fn hash(seed: &std::collections::hash_map::RandomState, key: &[u8]) -> u64 {
    seed.hash_one(key).max(1)
}

/// A `limit_req_zone`: per key, nginx's leaky bucket (`excess` in thousandths of a
/// request, the time of the last accounted request).
#[derive(Debug)]
pub struct ReqZone {
    pub name: String,
    seed: std::collections::hash_map::RandomState,
    keys: Box<[AtomicU64]>,
    /// `last_ms << 32 | excess`; 0 is no state yet.
    states: Box<[AtomicU64]>,
    epoch: Instant,
}

/// What a request's key finds in a [`ReqZone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Within the burst; the excess after this request (thousandths).
    Ok(u64),
    /// Over the burst: refused; the excess it would have had.
    Busy(u64),
}

impl ReqZone {
    pub fn new(name: &str, size: u64) -> Arc<ReqZone> {
        let n = slots_for(size);
        Arc::new(ReqZone {
            name: name.into(),
            seed: Default::default(),
            keys: (0..n).map(|_| AtomicU64::new(0)).collect(),
            states: (0..n).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    /// nginx's `ngx_http_limit_req_lookup`: the excess a request of `key` brings at
    /// `rate` (requests per second in thousandths, nginx's `ctx->rate`), refused past
    /// `burst` (thousandths); with `account`, the state is updated.
    pub fn lookup(&self, key: &[u8], rate: u64, burst: u64, account: bool) -> Bucket {
        let now = self.now_ms();
        let slot = self.slot(hash(&self.seed, key), now);
        let state = &self.states[slot];
        loop {
            let s = state.load(Ordering::Acquire);
            let (excess, next) = next(s, now, rate);
            if excess > burst {
                return Bucket::Busy(excess);
            }
            if !account
                || state
                    .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Bucket::Ok(excess);
            }
        }
    }

    /// Accounts a request that [`ReqZone::lookup`] let through without accounting
    /// (an earlier limit of several), whatever its excess; the excess.
    pub fn account(&self, key: &[u8], rate: u64) -> u64 {
        match self.lookup(key, rate, u64::MAX, true) {
            Bucket::Ok(e) | Bucket::Busy(e) => e,
        }
    }

    /// The slot of `h`: its own, an empty one, or the one with the oldest state.
    fn slot(&self, h: u64, now: u32) -> usize {
        let mask = self.keys.len() - 1;
        let mut oldest = (0, 0u32);
        for i in 0..PROBE {
            let at = (h as usize).wrapping_add(i) & mask;
            let k = self.keys[at].load(Ordering::Acquire);
            if k == h {
                return at;
            }
            // An empty slot is claimed (by us, or by another worker for this key).
            if k == 0 {
                match self.keys[at].compare_exchange(0, h, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return at,
                    Err(now_k) if now_k == h => return at,
                    Err(_) => {}
                }
            }
            let age = now.wrapping_sub((self.states[at].load(Ordering::Relaxed) >> 32) as u32);
            if i == 0 || age > oldest.1 {
                oldest = (at, age);
            }
        }
        let at = oldest.0;
        self.keys[at].store(h, Ordering::Release);
        self.states[at].store(0, Ordering::Release);
        at
    }
}

/// The state after one more request at `now`, and its excess. A new key starts at
/// excess 0, as nginx.
fn next(s: u64, now: u32, rate: u64) -> (u64, u64) {
    if s == 0 {
        return (0, pack(now, 0));
    }
    let (last, excess) = ((s >> 32) as u32, s as u32 as u64);
    let ms = now.wrapping_sub(last) as i32;
    // Far negative is a wrapped clock (over 24 days): the state is long spent.
    // Just below zero is a state stored at ms 1 for 0 (see `pack`).
    if ms < -60_000 {
        return (0, pack(now, 0));
    }
    let ms = ms.max(0) as u64;
    let e = (excess + 1000).saturating_sub(rate * ms / 1000);
    (e, pack(if ms == 0 { last } else { now }, e.min(u64::from(u32::MAX))))
}

fn pack(ms: u32, excess: u64) -> u64 {
    // 0 means "no state": a state at ms 0 with no excess is stored as excess 0 at 1.
    (u64::from(ms.max(1)) << 32) | excess
}

/// A `limit_conn_zone`: per key, the requests being served now.
#[derive(Debug)]
pub struct ConnZone {
    pub name: String,
    seed: std::collections::hash_map::RandomState,
    /// `tag << 32 | count`, the tag the key hash's high half (never 0); 0 is empty.
    slots: Box<[AtomicU64]>,
}

/// A request counted in a [`ConnZone`]; dropping it ends the count.
#[derive(Debug)]
pub struct ConnHeld {
    zone: Arc<ConnZone>,
    slot: usize,
}

impl Drop for ConnHeld {
    fn drop(&mut self) {
        self.zone.slots[self.slot].fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnZone {
    pub fn new(name: &str, size: u64) -> Arc<ConnZone> {
        let n = slots_for(size);
        Arc::new(ConnZone {
            name: name.into(),
            seed: Default::default(),
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Counts one more request of `key` unless `limit` are being served (or the
    /// zone has no room for the key): `None` then.
    pub fn acquire(self: &Arc<Self>, key: &[u8], limit: u64) -> Option<ConnHeld> {
        let h = hash(&self.seed, key);
        let tag = (h >> 32).max(1) << 32;
        let mask = self.slots.len() - 1;
        for i in 0..PROBE {
            let at = (h as usize).wrapping_add(i) & mask;
            let slot = &self.slots[at];
            loop {
                let s = slot.load(Ordering::Acquire);
                let count = s & 0xffff_ffff;
                // Its own slot, or a free one (no connections: empty or reusable).
                let next = if s & !0xffff_ffff == tag {
                    if count >= limit {
                        return None;
                    }
                    s + 1
                } else if count == 0 {
                    tag | 1
                } else {
                    break;
                };
                if slot
                    .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Some(ConnHeld {
                        zone: self.clone(),
                        slot: at,
                    });
                }
            }
        }
        None
    }

    /// Requests of `key` being served now.
    #[cfg(test)]
    pub fn count(&self, key: &[u8]) -> u64 {
        let h = hash(&self.seed, key);
        let tag = (h >> 32).max(1) << 32;
        let mask = self.slots.len() - 1;
        (0..PROBE)
            .map(|i| self.slots[(h as usize).wrapping_add(i) & mask].load(Ordering::Acquire))
            .find(|s| s & !0xffff_ffff == tag)
            .map_or(0, |s| s & 0xffff_ffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaky_bucket_as_nginx() {
        // 1r/s, burst 2: the first request starts the state, two more fit the burst.
        let z = ReqZone::new("one", 32 * 1024);
        assert_eq!(z.lookup(b"k", 1000, 2000, true), Bucket::Ok(0));
        assert_eq!(z.lookup(b"k", 1000, 2000, true), Bucket::Ok(1000));
        assert_eq!(z.lookup(b"k", 1000, 2000, true), Bucket::Ok(2000));
        assert_eq!(z.lookup(b"k", 1000, 2000, true), Bucket::Busy(3000));
        // A refused request is not accounted; another key has its own bucket.
        assert_eq!(z.lookup(b"k", 1000, 2000, false), Bucket::Busy(3000));
        assert_eq!(z.lookup(b"other", 1000, 0, true), Bucket::Ok(0));
        assert_eq!(z.lookup(b"other", 1000, 0, true), Bucket::Busy(1000));
    }

    #[test]
    fn the_bucket_leaks_with_time() {
        let z = ReqZone::new("one", 32 * 1024); // at 10r/s
        assert_eq!(z.lookup(b"k", 10_000, 0, true), Bucket::Ok(0));
        assert!(matches!(z.lookup(b"k", 10_000, 0, true), Bucket::Busy(_)));
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert_eq!(z.lookup(b"k", 10_000, 0, true), Bucket::Ok(0));
    }

    #[test]
    fn a_full_zone_takes_over_the_oldest_state() {
        let z = ReqZone::new("tiny", 0);
        assert_eq!(z.keys.len(), PROBE);
        for i in 0..100u32 {
            assert_eq!(z.lookup(&i.to_be_bytes(), 1000, 0, true), Bucket::Ok(0));
        }
    }

    #[test]
    fn connections_count_and_release() {
        let z = ConnZone::new("addr", 32 * 1024);
        let a = z.acquire(b"k", 2).unwrap();
        let b = z.acquire(b"k", 2).unwrap();
        assert!(z.acquire(b"k", 2).is_none());
        assert_eq!(z.count(b"k"), 2);
        drop(a);
        let _c = z.acquire(b"k", 2).unwrap();
        drop(b);
        assert_eq!(z.count(b"k"), 1);
        assert!(z.acquire(b"other", 1).is_some());
    }

    #[test]
    fn connection_counts_are_global_across_threads() {
        let z = ConnZone::new("addr", 32 * 1024);
        let held: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter_map(|_| z.acquire(b"k", 50)).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(held.len(), 50);
        drop(held);
        assert_eq!(z.count(b"k"), 0);
    }

    #[test]
    fn request_rates_are_global_across_threads() {
        // 1r/m with burst 99: 100 admitted in all, whatever the threads.
        let z = ReqZone::new("one", 32 * 1024);
        let ok: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..100)
                            .filter(|_| matches!(z.lookup(b"k", 1000 / 60, 99_000, true), Bucket::Ok(_)))
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(ok, 100);
    }
}
