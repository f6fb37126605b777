//! nginx's `stub_status` counters: connections accepted, handled, active, and
//! requests, reading and writing, for the whole process.
//!
//! Where it sits: the accept loop (accepted, handled, active), the HTTP/1 and
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

/// Which gauge a [`Gauge`] holds up.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Active,
    Reading,
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
        Kind::Active => &c.active,
        Kind::Reading => &c.reading,
        Kind::Writing => &c.writing,
    }
}

/// The process's totals: (active, accepted, handled, requests, reading, writing,
/// waiting).
pub fn totals() -> [u64; 7] {
    let all = ALL.lock().unwrap_or_else(|e| e.into_inner());
    let mut t = [0i64; 6];
    for c in all.iter() {
        t[0] += c.active.load(Ordering::Relaxed);
        t[1] += c.accepted.load(Ordering::Relaxed) as i64;
        t[2] += c.handled.load(Ordering::Relaxed) as i64;
        t[3] += c.requests.load(Ordering::Relaxed) as i64;
        t[4] += c.reading.load(Ordering::Relaxed);
        t[5] += c.writing.load(Ordering::Relaxed);
    }
    let waiting = (t[0] - t[4] - t[5]).max(0);
    let u = |v: i64| v.max(0) as u64;
    [u(t[0]), u(t[1]), u(t[2]), u(t[3]), u(t[4]), u(t[5]), waiting as u64]
}

/// `stub_status`'s page, in nginx's words and spacing.
pub fn stub_status() -> String {
    let [active, accepted, handled, requests, reading, writing, waiting] = totals();
    format!(
        "Active connections: {active} \nserver accepts handled requests\n {accepted} {handled} {requests} \nReading: {reading} Writing: {writing} Waiting: {waiting} \n"
    )
}
