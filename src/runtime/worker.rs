//! One worker: a pinned thread running its own tokio-uring runtime.
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

use crate::balance::Balancer;
use crate::config::model::ListenGroup;
use crate::config::Config;
use crate::net::pool::Pool;
use crate::observe::log::{self, AccessLogs};

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
        let logs = AccessLogs::open(cfg.access_log_paths())?;
        Ok(Snapshot {
            cfg,
            balancers,
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
    next_conn: Cell<u64>,
    /// Bumped on every snapshot swap (probe tasks of an old snapshot stop).
    generation: Cell<u64>,
    pub workers: usize,
}

impl Worker {
    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.snap.borrow().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub fn next_conn_id(&self) -> u64 {
        let n = self.next_conn.get() + 1;
        self.next_conn.set(n);
        n
    }
}

/// Counts a client connection for the worker while it lives.
pub struct ConnGuard(Rc<Worker>);

impl ConnGuard {
    pub fn new(w: Rc<Worker>) -> Self {
        w.active.set(w.active.get() + 1);
        ConnGuard(w)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
    }
}

/// Runs worker `id` on the current thread until it is told to quit or stop.
pub fn run(
    id: usize,
    cfg: Arc<Config>,
    listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    mut rx: mpsc::UnboundedReceiver<Control>,
) {
    // COOP_TASKRUN: completions are processed at the worker's next kernel entry
    // instead of interrupting it with an IPI each time (one thread per ring, so
    // nothing waits on another thread's submissions). Measured: about 20% less CPU
    // per small proxied request (docs/benchmarks.md).
    let mut ring = tokio_uring::uring_builder();
    ring.setup_coop_taskrun();
    tokio_uring::builder()
        .entries(1024)
        .uring_builder(&ring)
        .start(async move {
            let snap = match Snapshot::new(cfg.clone(), id) {
                Ok(s) => s,
                Err(e) => {
                    log::log(crate::config::model::LogLevel::Emerg, format_args!("{e}"));
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
                next_conn: Cell::new((id as u64) << 48),
                generation: Cell::new(0),
                workers: cfg.worker_processes,
            });
            crate::health::start(&w, &cfg.http.upstreams, w.workers);
            for (addr, l) in listeners {
                tokio_uring::spawn(accept_loop(w.clone(), addr, l));
            }
            tokio_uring::spawn(housekeeping(w.clone()));
            while let Some(msg) = rx.recv().await {
                match msg {
                    Control::Reload { cfg, listeners } => match Snapshot::new(cfg, id) {
                        Ok(s) => {
                            w.snapshot().logs.borrow_mut().flush();
                            let ups = s.cfg.http.upstreams.clone();
                            *w.snap.borrow_mut() = Rc::new(s);
                            w.generation.set(w.generation.get() + 1);
                            crate::health::start(&w, &ups, w.workers);
                            for (addr, l) in listeners {
                                tokio_uring::spawn(accept_loop(w.clone(), addr, l));
                            }
                        }
                        Err(e) => log::error(format_args!("worker {id}: reload failed: {e}")),
                    },
                    Control::Quit => {
                        w.quitting.set(true);
                        w.quit.notify_waiters();
                        let limit = w.snapshot().cfg.worker_shutdown_timeout;
                        let start = Instant::now();
                        while w.active.get() > 0 {
                            if limit.is_some_and(|l| start.elapsed() >= l) {
                                log::notice(format_args!(
                                    "worker {id}: shutdown timeout, {} connections closed",
                                    w.active.get()
                                ));
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        break;
                    }
                    Control::Stop => break,
                }
            }
            w.snapshot().logs.borrow_mut().flush();
        });
}

async fn housekeeping(w: Rc<Worker>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.snapshot().logs.borrow_mut().flush();
        w.pool.borrow_mut().sweep();
    }
}

async fn accept_loop(w: Rc<Worker>, addr: SocketAddr, l: std::net::TcpListener) {
    let listener = tokio_uring::net::TcpListener::from_std(l);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if w.quitting.get() {
                    break;
                }
                let snap = w.snapshot();
                if w.active.get() >= snap.cfg.worker_connections {
                    log::warn(format_args!(
                        "{} worker_connections are not enough",
                        snap.cfg.worker_connections
                    ));
                    continue;
                }
                if snap.group(addr).is_none() {
                    // The address was removed by a reload.
                    break;
                }
                let w2 = w.clone();
                tokio_uring::spawn(async move {
                    let _g = ConnGuard::new(w2.clone());
                    crate::http::proxy::serve(w2, stream, peer, addr).await;
                });
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
