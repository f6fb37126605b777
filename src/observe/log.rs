//! Logs.
//!
//! The error log is process-wide (`YYYY/MM/DD HH:MM:SS [level] pid#tid: message`, as
//! nginx); it is written on errors and state changes only, never per successful
//! request, so a mutex around it stays off the request path.
//!
//! Access logs are per worker: each worker renders the line into its own buffer
//! ([`AccessLogs::buf`], then [`AccessLogs::line_done`]) and writes a buffer out when it passes 64 KiB, once a second,
//! and at shutdown, with one `write` to a file opened with `O_APPEND`; lines from
//! different workers therefore never interleave mid-line and no lock is taken.
//! `-s reopen` (SIGUSR1) bumps a generation counter; each worker reopens its files
//! before its next write.

use std::fmt::Arguments;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::config::model::{LogLevel, LogTarget};

struct ErrorLog {
    target: LogTarget,
    file: Option<File>,
}

static ERROR_LOG: Mutex<Option<ErrorLog>> = Mutex::new(None);
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Error as u8);
/// Bumped by `-s reopen`; workers compare it with the generation they opened.
pub static REOPEN_GEN: AtomicU64 = AtomicU64::new(0);

fn open_append(p: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
}

/// Opens (or reopens) the error log. Errors are returned so the CLI can report them.
pub fn init_error_log(target: &LogTarget, level: LogLevel) -> std::io::Result<()> {
    let file = match target {
        LogTarget::Stderr => None,
        LogTarget::File(p) => Some(open_append(p)?),
    };
    LEVEL.store(level as u8, Ordering::Relaxed);
    *ERROR_LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(ErrorLog {
        target: target.clone(),
        file,
    });
    Ok(())
}

/// Reopens the error log file (after logrotate moved it).
pub fn reopen_error_log() {
    let mut g = ERROR_LOG.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = g.as_mut() {
        if let LogTarget::File(p) = &l.target {
            if let Ok(f) = open_append(p) {
                l.file = Some(f);
            }
        }
    }
}

pub fn enabled(level: LogLevel) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

fn thread_no() -> u64 {
    thread_local!(static NO: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    });
    NO.with(|n| *n)
}

pub fn log(level: LogLevel, args: Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let now = chrono::Local::now();
    let line = format!(
        "{} [{}] {}#{}: {}\n",
        now.format("%Y/%m/%d %H:%M:%S"),
        level.as_str(),
        std::process::id(),
        thread_no(),
        args
    );
    let mut g = ERROR_LOG.lock().unwrap_or_else(|e| e.into_inner());
    match g.as_mut().and_then(|l| l.file.as_mut()) {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

pub fn crit(args: Arguments<'_>) {
    log(LogLevel::Crit, args)
}
pub fn error(args: Arguments<'_>) {
    log(LogLevel::Error, args)
}
pub fn warn(args: Arguments<'_>) {
    log(LogLevel::Warn, args)
}
pub fn notice(args: Arguments<'_>) {
    log(LogLevel::Notice, args)
}
pub fn info(args: Arguments<'_>) {
    log(LogLevel::Info, args)
}

const FLUSH_AT: usize = 64 * 1024;

/// One worker's access-log files and buffers, indexed by `AccessLog::file_id`.
pub struct AccessLogs {
    paths: Vec<PathBuf>,
    files: Vec<Option<File>>,
    bufs: Vec<Vec<u8>>,
    generation: u64,
    pub scratch: Vec<u8>,
}

impl AccessLogs {
    /// Opens every file; an error names the file (checked by the master before start).
    pub fn open(paths: Vec<PathBuf>) -> std::io::Result<AccessLogs> {
        let mut files = Vec::with_capacity(paths.len());
        for p in &paths {
            files.push(Some(open_append(p).map_err(|e| {
                std::io::Error::new(e.kind(), format!("open() \"{}\" failed ({e})", p.display()))
            })?));
        }
        Ok(AccessLogs {
            bufs: vec![Vec::new(); paths.len()],
            paths,
            files,
            generation: REOPEN_GEN.load(Ordering::Relaxed),
            scratch: Vec::new(),
        })
    }

    /// The buffer to render a line for file `id` into; call [`Self::line_done`] after.
    pub fn buf(&mut self, id: usize) -> (&mut Vec<u8>, &mut Vec<u8>) {
        (&mut self.bufs[id], &mut self.scratch)
    }

    pub fn line_done(&mut self, id: usize) {
        self.bufs[id].push(b'\n');
        if self.bufs[id].len() >= FLUSH_AT {
            self.flush_one(id);
        }
    }

    fn flush_one(&mut self, id: usize) {
        let gen = REOPEN_GEN.load(Ordering::Relaxed);
        if gen != self.generation {
            self.generation = gen;
            for (i, p) in self.paths.iter().enumerate() {
                self.files[i] = open_append(p).ok();
            }
        }
        if self.bufs[id].is_empty() {
            return;
        }
        if let Some(f) = self.files[id].as_mut() {
            if let Err(e) = f.write_all(&self.bufs[id]) {
                error(format_args!("write() to \"{}\" failed ({e})", self.paths[id].display()));
            }
        }
        self.bufs[id].clear();
    }

    pub fn flush(&mut self) {
        for i in 0..self.bufs.len() {
            self.flush_one(i);
        }
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl Drop for AccessLogs {
    fn drop(&mut self) {
        self.flush();
    }
}
