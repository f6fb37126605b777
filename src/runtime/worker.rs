//! One worker: a pinned thread running its own runtime on the process's driver
//! (tokio-uring for io_uring, tokio's current-thread runtime for epoll; see
//! [`crate::net::io`]). Connection tasks are `spawn_local`, the same under both.
//!
//! A worker owns everything its connections touch: its `SO_REUSEPORT` listeners, the
//! current configuration [`Snapshot`] (config, one [`Balancer`] per upstream, the
//! access-log buffers), and the upstream keep-alive [`Pool`]. Nothing on the request
//! path is shared with another thread, so nothing takes a lock. The master talks to a
//! worker only through its [`Control`] channel: a new snapshot on reload (new requests
//! use it, requests in flight finish on the one they hold), graceful quit, stop.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio::task::spawn_local;

use crate::balance::Balancer;
use crate::config::model::ListenGroup;
use crate::config::Config;
use crate::net::pool::Pool;
use crate::net::{Driver, Listener};
use crate::observe::log::{self, AccessLogs};
use crate::runtime::idle::IdleSet;

/// Messages from the master.
pub enum Control {
    /// Switch to a new configuration; start accepting on these new listeners.
    Reload {
        cfg: Arc<Config>,
        listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    },
    /// Stop accepting, finish in-flight requests, exit.
    Quit,
    /// Exit now (after flushing logs).
    Stop,
}

/// A configuration as one worker uses it.
pub struct Snapshot {
    pub cfg: Arc<Config>,
    pub balancers: Vec<Balancer>,
    /// The stream block's upstreams' balancers, in `Stream::upstreams` order.
    pub stream_balancers: Vec<Balancer>,
    pub logs: RefCell<AccessLogs>,
}

impl Snapshot {
    pub fn new(cfg: Arc<Config>, worker: usize) -> std::io::Result<Snapshot> {
        let balancers = cfg
            .http
            .upstreams
            .iter()
            .map(|u| Balancer::for_worker(u.clone(), worker))
            .collect();
        let stream_balancers = cfg
            .stream
            .upstreams
            .iter()
            .map(|u| Balancer::for_worker(u.clone(), worker))
            .collect();
        let logs = AccessLogs::open(cfg.access_log_paths())?;
        Ok(Snapshot {
            cfg,
            balancers,
            stream_balancers,
            logs: RefCell::new(logs),
        })
    }

    pub fn group(&self, addr: SocketAddr) -> Option<&ListenGroup> {
        self.cfg.http.listens.iter().find(|g| g.addr == addr)
    }
}

pub struct Worker {
    pub id: usize,
    snap: RefCell<Rc<Snapshot>>,
    pub pool: RefCell<Pool>,
    pub quitting: Cell<bool>,
    pub quit: Notify,
    pub active: Cell<usize>,
    /// Idle client connections (closed first when connections run out).
    pub idle: RefCell<IdleSet>,
    /// Receive buffers not in use by any connection.
    bufs: RefCell<Vec<Vec<u8>>>,
    next_conn: Cell<u64>,
    /// Bumped on every snapshot swap (probe tasks of an old snapshot stop).
    generation: Cell<u64>,
    pub workers: usize,
    /// When "worker_connections are not enough" was last logged, and how many
    /// refusals since.
    refused: Cell<(Option<Instant>, u64)>,
    /// Per-request allocations of idle connections (see `http::proxy::Scratch`).
    scratch: RefCell<Vec<crate::http::proxy::Scratch>>,
    /// Fault injection (debug builds only, see [`crate::runtime::fault`]): wakes the
    /// worker's loop to panic.
    pub fault: Notify,
}

impl Worker {
    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snap.borrow().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// A receive buffer of at least `cap` bytes from the worker's pool (idle
    /// connections give theirs back, so 10,000 idle clients do not pin 10,000 buffers).
    pub fn take_buf(&self, cap: usize) -> Vec<u8> {
        match self.bufs.borrow_mut().pop() {
            Some(b) => b,
            None => Vec::with_capacity(cap),
        }
    }

    /// Gives an emptied receive buffer back to the pool (kept up to 256 of at most
    /// 64 KiB; others are freed).
    /// A connection's per-request allocations, from the pool when one is there.
    pub fn take_scratch(&self) -> crate::http::proxy::Scratch {
        self.scratch.borrow_mut().pop().unwrap_or_default()
    }

    /// Gives per-request allocations back (kept up to 256, if not oversized).
    pub fn put_scratch(&self, s: crate::http::proxy::Scratch) {
        let mut pool = self.scratch.borrow_mut();
        if pool.len() < 256 && s.reusable() {
            pool.push(s);
        }
    }

    pub fn put_buf(&self, mut b: Vec<u8>) {
        let mut pool = self.bufs.borrow_mut();
        if b.capacity() != 0 && b.capacity() <= 64 * 1024 && pool.len() < 256 {
            b.clear();
            pool.push(b);
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        let n = self.next_conn.get() + 1;
        self.next_conn.set(n);
        n
    }
}

/// Counts a client connection for the worker (and for `stub_status`) while it
/// lives.
pub struct ConnGuard(Rc<Worker>);

impl ConnGuard {
    pub fn new(w: Rc<Worker>) -> Self {
        w.active.set(w.active.get() + 1);
        crate::observe::counters::active(1);
        ConnGuard(w)
    }

    pub fn worker(&self) -> &Rc<Worker> {
        &self.0
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
        crate::observe::counters::active(-1);
    }
}

/// How a worker's start went, reported once to the master before it writes the
/// pid file: `Err` is the `[emerg]` text.
pub type Ready = std::sync::mpsc::Sender<Result<(), String>>;

/// Runs worker `id` on the current thread until it is told to quit or stop.
pub fn run(
    id: usize,
    cfg: Arc<Config>,
    listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    rx: mpsc::UnboundedReceiver<Control>,
    ready: Ready,
) {
    let main = worker_main(id, cfg, listeners, rx, ready.clone());
    match crate::net::io::driver() {
        Driver::Uring => {
            // COOP_TASKRUN: completions are processed at the worker's next kernel entry
            // instead of interrupting it with an IPI each time (one thread per ring, so
            // nothing waits on another thread's submissions). Measured: about 20% less
            // CPU per small proxied request (docs/benchmarks.md).
            let mut ring = tokio_uring::uring_builder();
            ring.setup_coop_taskrun();
            let mut b = tokio_uring::builder();
            b.entries(1024).uring_builder(&ring);
            match tokio_uring::Runtime::new(&b) {
                Ok(rt) => rt.block_on(main),
                Err(e) => {
                    let _ = ready.send(Err(format!("io_uring_setup() failed ({e}) in worker {id}")));
                }
            }
        }
        Driver::Epoll => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => tokio::task::LocalSet::new().block_on(&rt, main),
            Err(e) => {
                let _ = ready.send(Err(format!("epoll runtime failed ({e}) in worker {id}")));
            }
        },
    }
}

async fn worker_main(
    id: usize,
    cfg: Arc<Config>,
    listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    mut rx: mpsc::UnboundedReceiver<Control>,
    ready: Ready,
) {
    let snap = match Snapshot::new(cfg.clone(), id) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let w = Rc::new(Worker {
        id,
        snap: RefCell::new(Rc::new(snap)),
        pool: RefCell::new(Pool::default()),
        quitting: Cell::new(false),
        quit: Notify::new(),
        active: Cell::new(0),
        idle: RefCell::new(IdleSet::default()),
        bufs: RefCell::new(Vec::new()),
        next_conn: Cell::new((id as u64) << 48),
        generation: Cell::new(0),
        workers: cfg.worker_processes,
        refused: Cell::new((None, 0)),
        fault: Notify::new(),
        scratch: RefCell::new(Vec::new()),
    });
    let mut accepting = Vec::new();
    for (addr, l) in listeners {
        match Listener::from_std(l) {
            Ok(l) => accepting.push((addr, l)),
            Err(e) => {
                let _ = ready.send(Err(format!("listener {addr} in worker {id} failed ({e})")));
                return;
            }
        }
    }
    let _ = ready.send(Ok(()));
    crate::health::start(&w, &cfg.http.upstreams, w.workers);
    for (addr, l) in accepting {
        spawn_local(accept_loop(w.clone(), addr, l));
    }
    spawn_local(housekeeping(w.clone()));
    let w2 = w.clone();
    spawn_local(async move { crate::runtime::idle::timer(&w2.idle).await });
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = w.fault.notified() => panic!("injected fault: worker {id}'s loop"),
        };
        let Some(msg) = msg else { break };
        match msg {
            Control::Reload { cfg, listeners } => reload(&w, cfg, listeners),
            Control::Quit => {
                graceful_quit(&w).await;
                break;
            }
            Control::Stop => break,
        }
    }
    w.snapshot().logs.borrow_mut().flush();
}

fn reload(w: &Rc<Worker>, cfg: Arc<Config>, listeners: Vec<(SocketAddr, std::net::TcpListener)>) {
    let id = w.id;
    match Snapshot::new(cfg, id) {
        Ok(s) => {
            w.snapshot().logs.borrow_mut().flush();
            let ups = s.cfg.http.upstreams.clone();
            *w.snap.borrow_mut() = Rc::new(s);
            w.generation.set(w.generation.get() + 1);
            crate::health::start(w, &ups, w.workers);
            for (addr, l) in listeners {
                match Listener::from_std(l) {
                    Ok(l) => {
                        spawn_local(accept_loop(w.clone(), addr, l));
                    }
                    Err(e) => log::error(format_args!("worker {id}: listener {addr} failed ({e})")),
                }
            }
        }
        Err(e) => log::error(format_args!("worker {id}: reload failed: {e}")),
    }
}

async fn graceful_quit(w: &Worker) {
    w.quitting.set(true);
    w.quit.notify_waiters();
    w.idle.borrow_mut().drain(usize::MAX);
    let limit = w.snapshot().cfg.worker_shutdown_timeout;
    let start = Instant::now();
    while w.active.get() > 0 {
        if limit.is_some_and(|l| start.elapsed() >= l) {
            log::notice(format_args!(
                "worker {}: shutdown timeout, {} connections closed",
                w.id,
                w.active.get()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn housekeeping(w: Rc<Worker>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.snapshot().logs.borrow_mut().flush();
        w.pool.borrow_mut().sweep();
    }
}

async fn accept_loop(w: Rc<Worker>, addr: SocketAddr, listener: Listener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if w.quitting.get() {
                    break;
                }
                let snap = w.snapshot();
                let Some(group) = snap.group(addr) else {
                    // The address was removed by a reload.
                    break;
                };
                let stream_server = group.stream;
                if w.active.get() >= snap.cfg.worker_connections && !w.make_room(snap.cfg.worker_connections) {
                    crate::observe::counters::accepted(false);
                    continue;
                }
                crate::observe::counters::accepted(true);
                let guard = ConnGuard::new(w.clone());
                // The task holds a small future (stream's boxed, which its sessions
                // need anyway; HTTP's spawned as it is, not inside a block that would
                // hold its arguments twice): spawning and finishing a task copy it
                // whole, and its size is what every idle connection keeps.
                match stream_server {
                    Some(i) => {
                        let session = Box::pin(crate::stream::serve(w.clone(), stream, peer, addr, i));
                        spawn_local(async move {
                            let _g = guard;
                            session.await
                        });
                    }
                    None => {
                        spawn_local(crate::http::proxy::serve(guard, stream, peer, addr));
                    }
                }
            }
            Err(e) => {
                if w.quitting.get() || e.raw_os_error() == Some(libc::EINVAL) || w.snapshot().group(addr).is_none() {
                    break;
                }
                log::error(format_args!("accept() on {addr} failed ({e})"));
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Worker {
    /// All `worker_connections` are in use: closes up to 32 idle connections (their slots free as soon as their tasks run) and says whether the
    /// new connection may be served. Warns at most once a second.
    fn make_room(&self, limit: usize) -> bool {
        let drained = self.idle.borrow_mut().drain(32);
        let (last, suppressed) = self.refused.get();
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            let what = if drained > 0 { ", reusing connections" } else { "" };
            let more = if suppressed > 0 {
                format!(" ({suppressed} more since the last warning)")
            } else {
                String::new()
            };
            log::warn(format_args!("{limit} worker_connections are not enough{what}{more}"));
            self.refused.set((Some(now), 0));
        } else {
            self.refused.set((last, suppressed + 1));
        }
        drained > 0
    }
}
