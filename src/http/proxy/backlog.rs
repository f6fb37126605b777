//! `proxy_buffering on` (nginx's default): an upstream response read ahead of a
//! slow client, so that the upstream is done with as soon as it has answered.
//!
//! Where it sits: between the upstream reads and the client writes of the relay
//! ([`super::relay`]), which hands each piece for the client to [`send`] and reads
//! the upstream through [`read`]. Without a backlog (buffering off, an HTTP/2
//! client, a compressed response) a send waits for the client, as before. With one,
//! what the client's socket does not take at once is kept: up to `proxy_buffers` in
//! memory, then in an unnamed temporary file (`proxy_temp_path`) up to
//! `proxy_max_temp_file_size`; only past both does reading the upstream wait for the
//! client. While the upstream is read, the backlog goes out as the client's socket
//! takes it (readiness waits: no buffer is held by the kernel, and a wait given up
//! costs nothing). When the upstream has sent everything, the rest is [`drain`]ed
//! after the upstream connection went back to its pool and its balancer slot was
//! given back: nginx too finalizes the upstream before the client has it all
//! (`$upstream_response_time` then ends where the upstream did).
//!
//! Each write of the backlog is one non-blocking `send` (TLS: into rustls, records
//! out as the socket takes them), paced by `limit_rate` as every response write.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{pace, Client};
use crate::config::model::LocConf;
use crate::net::{Deadline, IoFail, Stream};
use crate::observe::log;

/// Largest piece read back from the file at a time.
const CHUNK: usize = 64 * 1024;

/// What the client has not taken yet of one response, oldest first: memory, then
/// the file (once the file holds anything, new bytes go there, so order is kept).
pub(super) struct Backlog {
    mem: Vec<u8>,
    /// Sent prefix of `mem`.
    pos: usize,
    mem_max: usize,
    file: Option<File>,
    /// Read and write offsets in the file.
    fread: u64,
    fwrite: u64,
    file_max: u64,
    dir: Option<Arc<Path>>,
    /// Read back from the file, not yet sent from `chunk_pos`.
    chunk: Vec<u8>,
    chunk_pos: usize,
    /// `proxy_limit_rate` (0: none), from when the response head came, and the body
    /// bytes read from the upstream since.
    up_rate: u64,
    up_start: std::time::Instant,
    up_read: u64,
}

impl Backlog {
    fn new(conf: &LocConf) -> Backlog {
        let (n, size) = conf.proxy_buffers;
        let mem_max = usize::try_from(n.saturating_mul(size)).unwrap_or(usize::MAX);
        Backlog {
            up_rate: conf.proxy_limit_rate,
            ..Backlog::bounded(mem_max, conf.proxy_max_temp_file_size, conf.proxy_temp_path.clone())
        }
    }

    fn bounded(mem_max: usize, file_max: u64, dir: Option<Arc<Path>>) -> Backlog {
        Backlog {
            mem: Vec::new(),
            pos: 0,
            mem_max,
            file: None,
            fread: 0,
            fwrite: 0,
            file_max,
            dir,
            chunk: Vec::new(),
            chunk_pos: 0,
            up_rate: 0,
            up_start: std::time::Instant::now(),
            up_read: 0,
        }
    }

    fn mem_len(&self) -> usize {
        self.mem.len() - self.pos
    }

    /// Bytes kept in the file (read back or not).
    fn file_len(&self) -> u64 {
        self.fwrite - self.fread + (self.chunk.len() - self.chunk_pos) as u64
    }

    fn is_empty(&self) -> bool {
        self.mem_len() == 0 && self.file_len() == 0
    }

    /// No room for more where more would go (the file, once it holds anything;
    /// memory, then the file, while it holds nothing): reading the upstream waits.
    fn full(&self) -> bool {
        if self.file_len() > 0 {
            self.file_len() >= self.file_max
        } else {
            self.mem_len() >= self.mem_max && self.file_max == 0
        }
    }

    /// Keeps `data` for the client; true when it made the temporary file.
    fn push(&mut self, data: &[u8]) -> io::Result<bool> {
        let file_room = self.file_max > 0 && self.file_len() < self.file_max;
        if self.file_len() == 0 && (self.mem_len() + data.len() <= self.mem_max || !file_room) {
            if self.pos == self.mem.len() {
                self.mem.clear();
                self.pos = 0;
            }
            self.mem.extend_from_slice(data);
            return Ok(false);
        }
        let made = self.file.is_none();
        if made {
            self.file = Some(temp_file(self.dir.as_deref())?);
        }
        let f = self.file.as_ref().expect("made above");
        f.write_all_at(data, self.fwrite)?;
        self.fwrite += data.len() as u64;
        Ok(made)
    }

    /// The oldest bytes not sent yet (read back from the file when memory has none);
    /// empty when there are none.
    fn front(&mut self) -> io::Result<&[u8]> {
        if self.mem_len() > 0 {
            return Ok(&self.mem[self.pos..]);
        }
        if self.chunk_pos == self.chunk.len() && self.fread < self.fwrite {
            let n = (self.fwrite - self.fread).min(CHUNK as u64) as usize;
            self.chunk.resize(n, 0);
            self.chunk_pos = 0;
            let f = self.file.as_ref().expect("bytes were written to it");
            f.read_exact_at(&mut self.chunk, self.fread)?;
            self.fread += n as u64;
            if self.fread == self.fwrite {
                // All read back: the file starts again from its beginning.
                self.fread = 0;
                self.fwrite = 0;
                f.set_len(0)?;
            }
        }
        Ok(&self.chunk[self.chunk_pos..])
    }

    fn advance(&mut self, n: usize) {
        if self.mem_len() > 0 {
            self.pos += n;
            if self.pos == self.mem.len() {
                self.mem.clear();
                self.pos = 0;
            }
        } else {
            self.chunk_pos += n;
        }
    }

    /// Sends what the client's socket (and `limit_rate`) takes now.
    fn flush_now(&mut self, c: &Client, s: &Stream) -> io::Result<()> {
        if !s.flush_now()? {
            return Ok(());
        }
        while pace::allowed_now(c) > 0 {
            let front = self.front()?;
            if front.is_empty() {
                break;
            }
            match s.try_write(front) {
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// An unnamed file, readable and writable, gone when it is closed.
fn temp_file(dir: Option<&Path>) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir.map_or_else(std::env::temp_dir, Path::to_path_buf))
}

/// Starts buffering this response when more of it is to come from the upstream,
/// the location (or the upstream's `X-Accel-Buffering`) asks for it and the client
/// is an HTTP/1 connection.
pub(super) fn start(c: &Client, conf: &LocConf, upstream_says: Option<&[u8]>, more: bool) {
    let on = match upstream_says.filter(|_| !conf.proxy_ignore_headers.accel_buffering) {
        Some(v) if v.eq_ignore_ascii_case(b"yes") => true,
        Some(v) if v.eq_ignore_ascii_case(b"no") => false,
        _ => conf.proxy_buffering,
    };
    *c.backlog.borrow_mut() = (more && on && c.stream.h1().is_some()).then(|| Box::new(Backlog::new(conf)));
}

/// A failure on one side of the relay.
pub(super) enum Side {
    Upstream(IoFail),
    Client(IoFail),
}

/// Waits until the client may take more (`limit_rate`, then socket room), up to
/// `t` (`send_timeout`).
async fn client_ready(c: &Client, s: &Stream, t: Duration) -> Result<(), IoFail> {
    match tokio::time::timeout(t, async {
        pace::wait(c).await;
        s.writable().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(IoFail::Timeout),
    }
}

fn flush(c: &Client, s: &Stream) -> Result<(), IoFail> {
    let mut b = c.backlog.borrow_mut();
    match b.as_mut() {
        Some(b) => b.flush_now(c, s).map_err(IoFail::Io),
        None => Ok(()),
    }
}

/// Gives `buf[start..end]` to the client: written now, else kept in the backlog
/// (waiting for the client only while the backlog is full); without a backlog,
/// written (waiting as long as it takes).
pub(super) async fn send(c: &Client, buf: Vec<u8>, start: usize, end: usize, t: Duration) -> Result<Vec<u8>, IoFail> {
    let s = match c.stream.h1() {
        Some(s) if c.backlog.borrow().is_some() => s,
        _ => return c.send_range(buf, start, end, t).await,
    };
    flush(c, s)?;
    let mut from = start;
    let made = {
        let mut b = c.backlog.borrow_mut();
        let b = b.as_mut().expect("checked above");
        if b.is_empty() && pace::allowed_now(c) > 0 && from < end {
            match s.try_write(&buf[from..end]) {
                Ok(n) => from += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(IoFail::Io(e)),
            }
        }
        if from < end {
            b.push(&buf[from..end]).map_err(|e| {
                log::crit(format_args!(
                    "writing an upstream response to a temporary file failed ({e}), client: {}",
                    c.peer.ip()
                ));
                IoFail::Io(e)
            })?
        } else {
            false
        }
    };
    if made {
        log::warn(format_args!(
            "an upstream response is buffered to a temporary file {}/(unnamed) while reading upstream, client: {}",
            c.backlog
                .borrow()
                .as_ref()
                .and_then(|b| b.dir.as_deref().map(Path::to_path_buf))
                .unwrap_or_else(std::env::temp_dir)
                .display(),
            c.peer.ip()
        ));
    }
    while c.backlog.borrow().as_ref().is_some_and(|b| b.full()) {
        client_ready(c, s, t).await?;
        flush(c, s)?;
    }
    Ok(buf)
}

/// Reads the upstream (as [`Stream::read_append`], within `read_t`) while the
/// backlog goes out to the client as it takes it.
pub(super) async fn read(
    c: &Client,
    up: &Stream,
    buf: Vec<u8>,
    want: usize,
    read_t: Duration,
    send_t: Duration,
) -> Result<(usize, Vec<u8>), Side> {
    let Some(s) = c.stream.h1() else {
        let deadline = Deadline::At(std::time::Instant::now() + read_t);
        return up.read_append(buf, want, deadline).await.map_err(Side::Upstream);
    };
    // An upstream that always has bytes and a backlog that always takes them would
    // never make this task wait (the client's writes no longer do): the worker's
    // other connections get their turn through tokio's budget.
    tokio::task::coop::consume_budget().await;
    // As nginx, a read that `proxy_limit_rate` delays arms `proxy_read_timeout`
    // only when the delay ends, and reads no more than the second allows.
    let allowed = upstream_pace(c, s, send_t).await.map_err(Side::Client)?;
    let want = want.min(usize::try_from(allowed).unwrap_or(usize::MAX));
    let deadline = Deadline::At(std::time::Instant::now() + read_t);
    let res = read_flushing(c, s, up, buf, want, deadline, send_t).await;
    if let (Ok((n, _)), Some(b)) = (&res, c.backlog.borrow_mut().as_mut()) {
        b.up_read += *n as u64;
    }
    res
}

/// `proxy_limit_rate`: waits until the upstream may be read again (nginx's rule,
/// as `limit_rate`'s), sending the backlog to the client meanwhile; says how many
/// bytes may be read now.
async fn upstream_pace(c: &Client, s: &Stream, send_t: Duration) -> Result<u64, IoFail> {
    loop {
        let (rate, start, done) = match c.backlog.borrow().as_ref() {
            Some(b) if b.up_rate > 0 => (b.up_rate, b.up_start, b.up_read),
            _ => return Ok(u64::MAX),
        };
        let now = crate::net::rate::allowance_now(rate, start, done);
        if now > 0 {
            return Ok(now);
        }
        let idle = c.backlog.borrow().as_ref().is_none_or(|b| b.is_empty());
        tokio::select! {
            biased;
            n = crate::net::rate::allowance(rate, start, done) => return Ok(n as u64),
            r = client_ready(c, s, send_t), if !idle => {
                r?;
                flush(c, s)?;
            }
        }
    }
}

/// One read of the upstream while the backlog goes out as the client takes it.
async fn read_flushing(
    c: &Client,
    s: &Stream,
    up: &Stream,
    buf: Vec<u8>,
    want: usize,
    deadline: Deadline,
    send_t: Duration,
) -> Result<(usize, Vec<u8>), Side> {
    loop {
        if c.backlog.borrow().as_ref().is_none_or(|b| b.is_empty()) {
            return up.read_append(buf, want, deadline).await.map_err(Side::Upstream);
        }
        tokio::select! {
            biased;
            r = up.readable(deadline) => {
                r.map_err(Side::Upstream)?;
                return up.read_ready(buf, want, deadline).await.map_err(Side::Upstream);
            }
            r = client_ready(c, s, send_t) => {
                r.map_err(Side::Client)?;
                flush(c, s).map_err(Side::Client)?;
            }
        }
    }
}

/// Sends the rest of the backlog (the upstream is done with).
pub(super) async fn drain(c: &Client, t: Duration) -> Result<(), IoFail> {
    let Some(mut b) = c.backlog.borrow_mut().take() else {
        return Ok(());
    };
    let Some(s) = c.stream.h1() else { return Ok(()) };
    loop {
        if b.mem_len() > 0 {
            let from = std::mem::take(&mut b.pos);
            let mem = std::mem::take(&mut b.mem);
            let end = mem.len();
            c.send_range(mem, from, end, t).await?;
            continue;
        }
        if b.front().map_err(IoFail::Io)?.is_empty() {
            break;
        }
        let chunk = std::mem::take(&mut b.chunk);
        let end = chunk.len();
        b.chunk = c.send_range(chunk, b.chunk_pos, end, t).await?;
        b.chunk_pos = end;
    }
    // TLS records taken but not yet on the socket.
    while !s.flush_now().map_err(IoFail::Io)? {
        client_ready(c, s, t).await?;
    }
    Ok(())
}

/// [`send`] of the whole buffer.
pub(super) async fn send_all(c: &Client, buf: Vec<u8>, t: Duration) -> Result<Vec<u8>, IoFail> {
    let end = buf.len();
    send(c, buf, 0, end, t).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes kept across memory and the file, taken in odd pieces while more
    /// arrive, come out in order; the file is made once and reused once drained.
    #[test]
    fn a_backlog_keeps_order_across_memory_and_file() {
        let mut b = Backlog::bounded(1000, 1 << 20, None);
        let data: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        let mut made = 0;
        let mut pieces = data.chunks(777).peekable();
        let mut turn = 0usize;
        while pieces.peek().is_some() || !b.is_empty() {
            turn += 1;
            if let Some(p) = pieces.next() {
                made += usize::from(b.push(p).unwrap());
            }
            // Take a little on most turns, a lot on some.
            let mut take = if turn % 7 == 0 { 100_000 } else { 300 };
            while take > 0 {
                let f = b.front().unwrap();
                if f.is_empty() {
                    break;
                }
                let n = f.len().min(take);
                out.extend_from_slice(&f[..n]);
                b.advance(n);
                take -= n;
            }
        }
        assert_eq!(made, 1);
        assert!(b.file.is_some());
        assert!(out == data, "order kept ({} of {} bytes)", out.len(), data.len());
    }

    #[test]
    fn full_only_past_both_bounds() {
        let mut b = Backlog::bounded(100, 0, None);
        b.push(&[1; 99]).unwrap();
        assert!(!b.full());
        b.push(&[1; 50]).unwrap();
        assert!(b.full() && b.file.is_none(), "no file when it may not have one");
        let mut b = Backlog::bounded(100, 200, None);
        b.push(&[1; 150]).unwrap();
        assert!(!b.full(), "past memory, into the file");
        b.push(&[1; 100]).unwrap();
        b.push(&[1; 100]).unwrap();
        assert!(b.full());
    }
}
