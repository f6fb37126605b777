//! The master thread: binds every listener, starts the workers, writes the pid file,
//! then waits for signals.
//!
//! - SIGHUP: re-read and validate the config; if it is valid, bind any new `listen`
//!   addresses, hand every worker the new snapshot (new requests use it, requests in
//!   flight finish on the old one), and stop listeners whose address is gone. If it is
//!   invalid, log `[emerg]` and keep running on the old one. `worker_processes`
//!   changes need a restart (ringx keeps its threads).
//! - SIGQUIT: stop accepting, let in-flight requests finish (bounded by
//!   `worker_shutdown_timeout`), exit. SIGTERM/SIGINT: exit at once.
//! - SIGUSR1: reopen log files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
use tokio::sync::mpsc;

use crate::config::model::{Config, CpuAffinity, LogLevel};
use crate::config::{self, LoadOptions};
use crate::net::listener;
use crate::observe::log;

use super::privileges;
use super::worker::{self, Control};

struct WorkerHandle {
    tx: mpsc::UnboundedSender<Control>,
    thread: JoinHandle<()>,
}

/// Set by a worker thread that ended without being told to (a panic): the master
/// then logs `[alert]` and starts a new one on the same listeners.
static WORKER_DIED: AtomicBool = AtomicBool::new(false);

/// What the master runs with.
pub struct Master {
    opts: LoadOptions,
    cfg: Arc<Config>,
    workers: Vec<WorkerHandle>,
    /// The master's duplicate of every worker's listener, per address (to stop them).
    listeners: HashMap<SocketAddr, Vec<std::net::TcpListener>>,
    pid_file: Option<PathBuf>,
    error_log_override: Option<crate::config::model::LogTarget>,
    /// Installed first thing in [`Master::start`], so a signal sent while ringx
    /// starts (a reload right after the port opens) waits for [`Master::run`]
    /// instead of killing the process.
    signals: Option<signal_hook::iterator::Signals>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("bind() to {0} failed ({1})")]
    Bind(SocketAddr, String),
    #[error("{0}")]
    Other(String),
    /// Already written to the error log as `[emerg]`.
    #[error("{0}")]
    Logged(String),
}

fn bind_all(
    cfg: &Config,
    addrs: &[SocketAddr],
    n: usize,
) -> Result<HashMap<SocketAddr, Vec<std::net::TcpListener>>, StartError> {
    let mut out = HashMap::new();
    for g in cfg.http.listens.iter().filter(|g| addrs.contains(&g.addr)) {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let l = listener::bind(g.addr, g.backlog, g.ipv6only)
                .map_err(|e| StartError::Bind(g.addr, config::parser::os_err(&e)))?;
            if g.deferred {
                set_deferred(&l, g, true);
            }
            v.push(l);
        }
        out.insert(g.addr, v);
    }
    Ok(out)
}

/// `listen … deferred` on one socket; a failure is nginx's `[alert]`, and the
/// address serves without it.
fn set_deferred(l: &std::net::TcpListener, g: &config::model::ListenGroup, on: bool) {
    if let Err(e) = listener::set_deferred(l, on) {
        log::log(
            LogLevel::Alert,
            format_args!(
                "setsockopt(TCP_DEFER_ACCEPT, {}) for {} failed ({}), ignored",
                i32::from(on),
                g.addr,
                config::parser::os_err(&e)
            ),
        );
    }
}

fn core_for(aff: &CpuAffinity, i: usize) -> Option<core_affinity::CoreId> {
    let cores = core_affinity::get_core_ids()?;
    match aff {
        CpuAffinity::None => None,
        CpuAffinity::Auto => cores.get(i % cores.len().max(1)).copied(),
        CpuAffinity::Masks(m) => {
            let mask = *m.get(i).or(m.last())?;
            (0..64)
                .find(|b| mask & (1 << b) != 0)
                .map(|id| core_affinity::CoreId { id })
        }
    }
}

impl Master {
    /// Binds, daemonizes if configured, starts workers and writes the pid file.
    pub fn start(
        opts: LoadOptions,
        cfg: Config,
        error_log_override: Option<crate::config::model::LogTarget>,
    ) -> Result<Master, StartError> {
        let target = error_log_override
            .clone()
            .unwrap_or_else(|| cfg.error_log.target.clone());
        log::init_error_log(&target, cfg.error_log.level)
            .map_err(|e| StartError::Other(format!("open() error log failed ({e})")))?;
        std::panic::set_hook(Box::new(log_panic));
        let signals = signal_hook::iterator::Signals::new([SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGCHLD])
            .map_err(|e| StartError::Other(format!("installing signal handlers failed ({e})")))?;
        if let Some(n) = cfg.worker_rlimit_nofile {
            set_nofile(n);
        }
        let addrs: Vec<SocketAddr> = cfg.http.listens.iter().map(|g| g.addr).collect();
        let mut bound = bind_all(&cfg, &addrs, cfg.worker_processes)?;
        // Access logs must open before we detach, so errors reach the terminal.
        crate::observe::log::AccessLogs::open(cfg.access_log_paths()).map_err(|e| StartError::Other(e.to_string()))?;
        if cfg.daemon {
            daemonize()?;
        }
        // The pid file is created now, while ringx is root (it stays root's, as
        // nginx's), and written once every worker serves.
        let pid_file = cfg.pid.clone();
        // Until ringx serves, a failure removes the pid file if this start made it.
        let mut unwritten = PidGuard(pid_file.clone().filter(|p| !p.exists()));
        let pid_out = match &pid_file {
            Some(p) => Some(open_pid(p)?),
            None => None,
        };
        process_settings(&cfg)?;
        make_temp_paths(&cfg, cfg.user.as_ref()).map_err(StartError::Other)?;
        if let Some(u) = &cfg.user {
            give_logs(&cfg, u);
            privileges::drop_to(u).map_err(|e| StartError::Other(e.to_string()))?;
        }
        cfg.init_shared(cfg.worker_processes);
        let cfg = Arc::new(cfg);
        let driver = choose_driver(&cfg)?;
        let mut workers = Vec::new();
        let mut master_dups: HashMap<SocketAddr, Vec<std::net::TcpListener>> = HashMap::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for i in 0..cfg.worker_processes {
            let mut mine = Vec::new();
            for (addr, ls) in bound.iter_mut() {
                let l = ls.remove(0);
                let dup = l.try_clone().map_err(|e| StartError::Other(e.to_string()))?;
                master_dups.entry(*addr).or_default().push(dup);
                mine.push((*addr, l));
            }
            workers.push(spawn_worker(i, cfg.clone(), mine, ready_tx.clone())?);
        }
        drop(ready_tx);
        if let Err(e) = wait_ready(&ready_rx, workers.len()) {
            log::log(LogLevel::Emerg, format_args!("{e}"));
            for w in &workers {
                let _ = w.tx.send(Control::Stop);
            }
            return Err(StartError::Logged(e));
        }
        if let (Some(p), Some(mut f)) = (&pid_file, pid_out) {
            use std::io::Write;
            let written = f
                .set_len(0)
                .and_then(|_| f.write_all(format!("{}\n", std::process::id()).as_bytes()));
            written.map_err(|e| pid_error(p, &e))?;
        }
        unwritten.0 = None;
        log::notice(format_args!(
            "ringx/{} started, {} worker(s) on {}, listening on {}",
            env!("CARGO_PKG_VERSION"),
            cfg.worker_processes,
            driver.name(),
            addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        ));
        Ok(Master {
            opts,
            cfg,
            workers,
            listeners: master_dups,
            pid_file,
            error_log_override,
            signals: Some(signals),
        })
    }

    /// The addresses ringx listens on (for the demo and tests).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.cfg.http.listens.iter().map(|g| g.addr).collect()
    }

    /// Waits for signals until told to stop; returns the exit code.
    pub fn run(mut self) -> i32 {
        let Some(mut signals) = self.signals.take() else {
            return 1;
        };
        // A worker that died before the handlers were installed signalled no one.
        self.respawn_dead();
        loop {
            for sig in signals.wait() {
                match sig {
                    SIGCHLD => self.respawn_dead(),
                    SIGHUP => {
                        log::notice(format_args!("signal {sig} (SIGHUP) received, reconfiguring"));
                        self.reload();
                    }
                    SIGUSR1 => {
                        log::notice(format_args!("signal {sig} (SIGUSR1) received, reopening logs"));
                        log::reopen_error_log();
                        if let Some(u) = privileges::dropped() {
                            give_logs(&self.cfg, u);
                        }
                        log::REOPEN_GEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    SIGQUIT => {
                        log::notice(format_args!(
                            "signal {sig} (SIGQUIT) received, shutting down gracefully"
                        ));
                        self.quit();
                        return 0;
                    }
                    _ => {
                        log::notice(format_args!("signal {sig} received, exiting"));
                        self.stop();
                        return 0;
                    }
                }
            }
        }
    }

    /// Replaces every worker thread that has ended (nginx restarts a worker process
    /// that died). The new one serves on the dead one's listeners.
    fn respawn_dead(&mut self) {
        if !WORKER_DIED.swap(false, Ordering::SeqCst) {
            return;
        }
        // The dying thread signals before it has quite ended: give it a moment.
        let start = std::time::Instant::now();
        while !self.workers.iter().any(|w| w.thread.is_finished()) && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 0..self.workers.len() {
            if !self.workers[i].thread.is_finished() {
                continue;
            }
            let mut mine = Vec::new();
            for (addr, ls) in &self.listeners {
                if let Some(Ok(l)) = ls.get(i).map(|l| l.try_clone()) {
                    mine.push((*addr, l));
                }
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let started = spawn_worker(i, self.cfg.clone(), mine, tx)
                .map_err(|e| e.to_string())
                .and_then(|h| wait_ready(&rx, 1).map(|()| h));
            match started {
                Ok(h) => {
                    log::notice(format_args!("worker {i} restarted"));
                    let old = std::mem::replace(&mut self.workers[i], h);
                    let _ = old.thread.join();
                }
                Err(e) => log::log(LogLevel::Alert, format_args!("restarting worker {i} failed: {e}")),
            }
        }
    }

    fn stop_listeners(&mut self, addrs: &[SocketAddr]) {
        for a in addrs {
            if let Some(ls) = self.listeners.remove(a) {
                for l in &ls {
                    listener::stop(l);
                }
            }
        }
    }

    fn quit(mut self) {
        let all: Vec<SocketAddr> = self.listeners.keys().copied().collect();
        for w in &self.workers {
            let _ = w.tx.send(Control::Quit);
        }
        self.stop_listeners(&all);
        for w in self.workers.drain(..) {
            let _ = w.thread.join();
        }
        self.remove_pid();
    }

    fn stop(mut self) {
        for w in &self.workers {
            let _ = w.tx.send(Control::Stop);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && self.workers.iter().any(|w| !w.thread.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let all: Vec<SocketAddr> = self.listeners.keys().copied().collect();
        self.stop_listeners(&all);
        self.remove_pid();
    }

    fn remove_pid(&self) {
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }

    fn reload(&mut self) {
        let loaded = match config::load(&self.opts) {
            Ok(l) => l,
            Err(e) => {
                log::log(LogLevel::Emerg, format_args!("{e}"));
                return;
            }
        };
        let new = loaded.config;
        for (level, w) in &new.warnings {
            log::log(*level, format_args!("{w}"));
        }
        if new.worker_processes != self.cfg.worker_processes {
            log::warn(format_args!(
                "\"worker_processes\" changed from {} to {}: a reload keeps {}, restart to apply",
                self.cfg.worker_processes, new.worker_processes, self.cfg.worker_processes
            ));
        }
        if let Err(e) = crate::observe::log::AccessLogs::open(new.access_log_paths()) {
            log::log(LogLevel::Emerg, format_args!("{e}"));
            return;
        }
        if new.user != self.cfg.user {
            log::warn(format_args!(
                "\"user\" changed: a reload keeps the workers' user, restart to apply"
            ));
        }
        if let Err(e) = make_temp_paths(&new, privileges::dropped()) {
            log::log(LogLevel::Emerg, format_args!("{e}"));
            return;
        }
        if let Some(u) = privileges::dropped() {
            give_logs(&new, u);
        }
        let n = self.workers.len();
        let new_addrs: Vec<SocketAddr> = new
            .http
            .listens
            .iter()
            .map(|g| g.addr)
            .filter(|a| !self.listeners.contains_key(a))
            .collect();
        let mut bound = match bind_all(&new, &new_addrs, n) {
            Ok(b) => b,
            Err(e) => {
                log::log(LogLevel::Emerg, format_args!("{e}"));
                return;
            }
        };
        // A kept address whose `deferred` changed takes the new one (its sockets are
        // the master's dups: one setting covers every worker's), as nginx's
        // add_deferred/delete_deferred.
        for g in &new.http.listens {
            if let Some(old) = self
                .cfg
                .http
                .listens
                .iter()
                .find(|o| o.addr == g.addr && o.deferred != g.deferred)
            {
                for l in self.listeners.get(&old.addr).into_iter().flatten() {
                    set_deferred(l, g, g.deferred);
                }
            }
        }
        let gone: Vec<SocketAddr> = self
            .listeners
            .keys()
            .copied()
            .filter(|a| !new.http.listens.iter().any(|g| g.addr == *a))
            .collect();
        let mut new_cfg = new;
        new_cfg.worker_processes = n;
        new_cfg.init_shared(n);
        let cfg = Arc::new(new_cfg);
        for w in &self.workers {
            let mut mine = Vec::new();
            for (addr, ls) in bound.iter_mut() {
                let l = ls.remove(0);
                if let Ok(dup) = l.try_clone() {
                    self.listeners.entry(*addr).or_default().push(dup);
                }
                mine.push((*addr, l));
            }
            let _ = w.tx.send(Control::Reload {
                cfg: cfg.clone(),
                listeners: mine,
            });
        }
        self.stop_listeners(&gone);
        if self.error_log_override.is_none() {
            let _ = log::init_error_log(&cfg.error_log.target, cfg.error_log.level);
        }
        self.cfg = cfg;
        log::notice(format_args!("reconfigured"));
    }
}

/// The I/O driver for every worker: `use` from the config, else `RINGX_EVENTS`
/// from the environment, else io_uring when the kernel allows it (epoll with a
/// `[notice]` when it does not).
fn choose_driver(cfg: &Config) -> Result<crate::net::Driver, StartError> {
    use crate::net::DriverChoice;
    let want = match (cfg.driver, std::env::var("RINGX_EVENTS").as_deref()) {
        (DriverChoice::Auto, Ok("epoll")) => DriverChoice::Epoll,
        (DriverChoice::Auto, Ok("io_uring")) => DriverChoice::Uring,
        (DriverChoice::Auto, Ok(other)) => {
            log::warn(format_args!(
                "RINGX_EVENTS=\"{other}\" is neither \"epoll\" nor \"io_uring\", ignored"
            ));
            DriverChoice::Auto
        }
        (d, _) => d,
    };
    match crate::net::io::choose(want) {
        Ok((d, note)) => {
            if let Some(n) = note {
                log::notice(format_args!("{n}"));
            }
            Ok(d)
        }
        Err(e) => {
            log::log(LogLevel::Emerg, format_args!("{e}"));
            Err(StartError::Logged(e))
        }
    }
}

/// Every panic goes to the error log as `[alert]`, with where it happened. A panic
/// in a connection's task ends that task only (the runtime catches it; the
/// connection is closed, its balancer slot given back); one in a worker's own loop
/// ends the worker, which the master then replaces.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let msg = match (
        info.payload().downcast_ref::<&str>(),
        info.payload().downcast_ref::<String>(),
    ) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "unknown cause".into(),
    };
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    log::log(
        LogLevel::Alert,
        format_args!("{} panicked{at}: {msg}", thread.name().unwrap_or("a thread")),
    );
}

/// Starts worker thread `i`. A panic that ends it is logged `[alert]` and the master
/// is woken (SIGCHLD) to start a new one.
fn spawn_worker(
    i: usize,
    cfg: Arc<Config>,
    listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    ready: worker::Ready,
) -> Result<WorkerHandle, StartError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let core = core_for(&cfg.worker_cpu_affinity, i);
    let thread = std::thread::Builder::new()
        .name(format!("ringx-worker-{i}"))
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            if privileges::dropped().is_some() {
                if let Err(e) = privileges::drop_thread_caps() {
                    let _ = ready.send(Err(format!("worker {i}: {e}")));
                    return;
                }
            }
            let run = std::panic::AssertUnwindSafe(|| worker::run(i, cfg, listeners, rx, ready));
            if std::panic::catch_unwind(run).is_err() {
                log::log(LogLevel::Alert, format_args!("worker {i} exited on panic"));
                WORKER_DIED.store(true, Ordering::SeqCst);
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(libc::getpid(), libc::SIGCHLD) };
            }
        })
        .map_err(|e| StartError::Other(format!("spawning worker failed ({e})")))?;
    Ok(WorkerHandle { tx, thread })
}

/// `env NAME=VALUE`, `worker_priority`, `working_directory`: set once, while ringx
/// is still root and one thread (every worker inherits them).
fn process_settings(cfg: &Config) -> Result<(), StartError> {
    for (k, v) in &cfg.env {
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var(k, v) };
    }
    if let Some(n) = cfg.worker_priority {
        // SAFETY: setpriority has no memory-safety preconditions.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } == -1 {
            let e = std::io::Error::last_os_error();
            log::log(
                LogLevel::Alert,
                format_args!("setpriority({n}) failed ({})", config::parser::os_err(&e)),
            );
        }
    }
    if let Some(dir) = &cfg.working_directory {
        std::env::set_current_dir(dir).map_err(|e| {
            StartError::Other(format!(
                "chdir(\"{}\") failed ({})",
                dir.display(),
                config::parser::os_err(&e)
            ))
        })?;
    }
    Ok(())
}

/// Removes the pid file on drop, unless emptied (start-up failed before it was written).
struct PidGuard(Option<PathBuf>);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Opens (creating) the pid file for writing, without truncating an old one yet.
fn open_pid(p: &Path) -> Result<std::fs::File, StartError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(|e| pid_error(p, &e))
}

fn pid_error(p: &Path, e: &std::io::Error) -> StartError {
    StartError::Other(format!(
        "open() \"{}\" failed ({})",
        p.display(),
        config::parser::os_err(e)
    ))
}

/// With `user`: creates the log files that do not exist yet (the master thread may
/// write where USER may not) and gives them all to USER, so workers, which open
/// their access logs themselves, can. Failures are logged; the open that follows
/// reports what still cannot be opened.
fn give_logs(cfg: &Config, u: &privileges::Credentials) {
    let mut paths = cfg.access_log_paths();
    if let crate::config::model::LogTarget::File(p) = &cfg.error_log.target {
        paths.push(p.clone());
    }
    for p in paths.into_iter().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(e) = privileges::give(&p, u) {
            log::log(
                LogLevel::Alert,
                format_args!(
                    "chown(\"{}\", {}) failed ({})",
                    p.display(),
                    u.uid,
                    config::parser::os_err(&e)
                ),
            );
        }
    }
}

/// nginx's `ngx_create_paths`: each temporary-file directory is made (mode 0700, its
/// parent must exist) and, with `user`, given to the workers' user with owner
/// rwx; the first failure is the error, in nginx's words.
fn make_temp_paths(cfg: &Config, user: Option<&privileges::Credentials>) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let failed = |what: &str, p: &std::path::Path, e: &std::io::Error| {
        format!("{what} \"{}\" failed ({})", p.display(), config::parser::os_err(e))
    };
    for p in cfg.temp_paths() {
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(failed("mkdir()", &p, &e)),
            _ => {}
        }
        let Some(u) = user else { continue };
        let meta = std::fs::metadata(&p).map_err(|e| failed("stat()", &p, &e))?;
        if meta.uid() != u.uid {
            std::os::unix::fs::chown(&p, Some(u.uid), None).map_err(|e| failed("chown()", &p, &e))?;
        }
        if meta.mode() & 0o700 != 0o700 {
            let mode = std::fs::Permissions::from_mode((meta.mode() | 0o700) & 0o7777);
            std::fs::set_permissions(&p, mode).map_err(|e| failed("chmod()", &p, &e))?;
        }
    }
    Ok(())
}

/// Waits for `n` workers to report their start; the first failure is the error.
fn wait_ready(rx: &std::sync::mpsc::Receiver<Result<(), String>>, n: usize) -> Result<(), String> {
    for _ in 0..n {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a worker did not start".into()),
        }
    }
    Ok(())
}

fn set_nofile(n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    // SAFETY: setrlimit reads a valid, initialised rlimit struct that outlives the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc != 0 {
        log::warn(format_args!(
            "setrlimit(RLIMIT_NOFILE, {n}) failed ({})",
            std::io::Error::last_os_error()
        ));
    }
}

/// Detaches like nginx's `daemon on`: fork, the parent exits, the child starts a new
/// session with stdio on /dev/null. Called before any thread is spawned.
fn daemonize() -> Result<(), StartError> {
    // SAFETY: the process is single-threaded here (no worker or helper thread has been
    // spawned yet), so the child's copy of the address space is consistent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(StartError::Other(format!(
            "fork() failed ({})",
            std::io::Error::last_os_error()
        )));
    }
    if pid > 0 {
        std::process::exit(0);
    }
    // SAFETY: setsid has no memory-safety preconditions.
    unsafe { libc::setsid() };
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(Path::new("/dev/null"))
    {
        use std::os::fd::AsRawFd;
        let fd = null.as_raw_fd();
        for target in [0, 1, 2] {
            // Keep stderr when the error log is stderr? nginx sends it to /dev/null too.
            // SAFETY: dup2 on valid descriptors; `null` stays open for the call.
            unsafe { libc::dup2(fd, target) };
        }
    }
    Ok(())
}

/// Sends `sig` to the process in `pid_file` (`-s`).
pub fn signal_running(pid_file: &Path, sig: &str) -> Result<(), String> {
    let signo = match sig {
        "stop" => libc::SIGTERM,
        "quit" => libc::SIGQUIT,
        "reload" => libc::SIGHUP,
        "reopen" => libc::SIGUSR1,
        _ => return Err(format!("invalid option: \"-s {sig}\"")),
    };
    let text = std::fs::read_to_string(pid_file).map_err(|e| {
        format!(
            "open() \"{}\" failed ({})",
            pid_file.display(),
            config::parser::os_err(&e)
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid PID number \"{}\" in \"{}\"", text.trim(), pid_file.display()))?;
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signo) };
    if rc != 0 {
        return Err(format!(
            "kill({pid}, {signo}) failed ({})",
            config::parser::os_err(&std::io::Error::last_os_error())
        ));
    }
    Ok(())
}
