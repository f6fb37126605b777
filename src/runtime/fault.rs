//! Fault injection for the tests of what happens when ringx itself fails: compiled
//! into debug builds only (the integration tests run the debug binary), absent from
//! release builds.
//!
//! - `RINGX_FAULT_TASK_PANIC=/path`: a request for exactly `/path` panics inside its
//!   connection's task (after its upstream server was picked, when the location
//!   proxies), as a bug on the request path would.
//! - `RINGX_FAULT_WORKER_PANIC=/path`: a request for `/path` makes its worker's own
//!   loop panic, so the worker thread ends and the master must replace it.

use crate::runtime::worker::Worker;

/// Where a request may trip an injected fault; `uri` is the request's path.
#[cfg(debug_assertions)]
pub fn check(w: &Worker, uri: &[u8]) {
    use std::sync::OnceLock;
    static PATHS: OnceLock<(Option<String>, Option<String>)> = OnceLock::new();
    let (task, worker) = PATHS.get_or_init(|| {
        (
            std::env::var("RINGX_FAULT_TASK_PANIC").ok(),
            std::env::var("RINGX_FAULT_WORKER_PANIC").ok(),
        )
    });
    if worker.as_deref().is_some_and(|p| p.as_bytes() == uri) {
        w.fault.notify_one();
    }
    if task.as_deref().is_some_and(|p| p.as_bytes() == uri) {
        panic!("injected fault: a connection task");
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn check(_: &Worker, _: &[u8]) {}
