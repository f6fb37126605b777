//! nginx's `stub_status` counters: connections accepted, handled, active, and
//! requests, reading and writing, for the whole process.
//!
//! Where it sits: the accept loop (accepted, handled), a worker's connection guard
//! (active), the HTTP/1 and
//! HTTP/2 request paths (requests, reading, writing) and the `stub_status` handler
//! and `$connections_*` variables that read them. Each worker thread has its own set,
//! written only by it (a load and a store, no locked instruction, no shared cache
//! line on the request path); a reader sums every worker's, as nginx reads its
//! shared-memory counters. Sets outlive their workers, so totals survive a worker's
//! replacement.

use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One worker's counters.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    handled: AtomicU64,
    requests: AtomicU64,
    active: AtomicI64,
    reading: AtomicI64,
    writing: AtomicI64,
}

static ALL: Mutex<Vec<Arc<Counters>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: RefCell<Option<Arc<Counters>>> = const { RefCell::new(None) };
}

/// This thread's counters (made and registered at its first use).
fn mine<R>(f: impl FnOnce(&Counters) -> R) -> R {
    MINE.with(|m| {
        let mut m = m.borrow_mut();
        let c = m.get_or_insert_with(|| {
            let c = Arc::new(Counters::default());
            ALL.lock().unwrap_or_else(|e| e.into_inner()).push(c.clone());
            c
        });
        f(c)
    })
}

/// Single-writer increments: only this thread writes its counters.
fn add(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn add_i(a: &AtomicI64, n: i64) {
    a.store(a.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// A connection accepted; `handled`: not closed at once for want of
/// `worker_connections`.
pub fn accepted(handled: bool) {
    mine(|c| {
        add(&c.accepted, 1);
        if handled {
            add(&c.handled, 1);
        }
    });
}

/// A connection opened (1) or closed (-1) (`runtime::worker::ConnGuard`).
pub fn active(n: i64) {
    mine(|c| add_i(&c.active, n));
}

/// Which gauge a [`Gauge`] holds up.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Reading,
    /// Serving a request (counts the request too).
    Writing,
}

/// One unit of a gauge while it lives.
pub struct Gauge(Kind);

impl Gauge {
    pub fn new(k: Kind) -> Gauge {
        mine(|c| {
            if let Kind::Writing = k {
                add(&c.requests, 1);
            }
            add_i(gauge(c, k), 1)
        });
        Gauge(k)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        mine(|c| add_i(gauge(c, self.0), -1));
    }
}

fn gauge(c: &Counters, k: Kind) -> &AtomicI64 {
    match k {
        Kind::Reading => &c.reading,
        Kind::Writing => &c.writing,
    }
}

/// The process's counts, as `stub_status` shows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub active: u64,
    pub accepted: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    /// Active connections neither reading a head nor serving a request.
    pub waiting: u64,
}

/// Every worker's counters summed.
pub fn totals() -> Totals {
    let all = ALL.lock().unwrap_or_else(|e| e.into_inner());
    let sum = |f: &dyn Fn(&Counters) -> i64| all.iter().map(|c| f(c)).sum::<i64>().max(0) as u64;
    let u = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
    let i = |a: &AtomicI64| a.load(Ordering::Relaxed);
    let mut t = Totals {
        active: sum(&|c| i(&c.active)),
        accepted: sum(&|c| u(&c.accepted)),
        handled: sum(&|c| u(&c.handled)),
        requests: sum(&|c| u(&c.requests)),
        reading: sum(&|c| i(&c.reading)),
        writing: sum(&|c| i(&c.writing)),
        waiting: 0,
    };
    t.waiting = t.active.saturating_sub(t.reading + t.writing);
    t
}

/// `stub_status`'s page, in nginx's words and spacing.
pub fn stub_status() -> String {
    let t = totals();
    format!(
        "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
        t.active, t.accepted, t.handled, t.requests, t.reading, t.writing, t.waiting
    )
}
