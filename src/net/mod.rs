//! The thin per-core I/O layer: everything that touches a socket goes through here,
//! so protocol code stays sans-io and the driver underneath can change.
//!
//! - [`io`]: the seam itself: [`io::Tcp`] and [`io::Listener`] over io_uring
//!   (tokio-uring) or epoll (tokio), chosen once at start-up.
//! - [`Stream`]: a connection with **deadlines**: every read and write is bounded
//!   either per operation ([`Deadline::After`], nginx's `send_timeout`,
//!   `client_body_timeout`, `proxy_read_timeout`: between two operations) or by an
//!   absolute instant ([`Deadline::At`], `client_header_timeout`: the whole head).
//!   Timeout handling lives here only: io_uring does not cancel an operation whose
//!   future is dropped, so after a timeout the socket is shut down (the pending
//!   operation then completes and frees its buffer, and the peer sees FIN).
//! - [`listener`]: one `SO_REUSEPORT` socket per worker per address (socket2).
//! - [`pool`]: idle upstream connections kept per worker (`keepalive N`).
//! - [`tunnel`]: the bidirectional copy (WebSocket upgrades; later CONNECT, `stream`).

pub mod io;
pub mod listener;
pub mod poll;
pub mod pool;
pub mod rate;
pub mod resolver;
pub mod tls;
pub mod tunnel;

use std::cell::Cell;
use std::future::Future;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use io::{Driver, DriverChoice, Listener, Peek, Soon, Tcp};

/// An upstream's address: TCP, or a Unix-domain socket (`server unix:/path`,
/// `proxy_pass http://unix:/path:`), shown as nginx shows it (`unix:/path`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Ip(SocketAddr),
    Unix(std::sync::Arc<std::path::Path>),
}

impl Peer {
    /// The TCP address, if it is one.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Peer::Ip(a) => Some(*a),
            Peer::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        Peer::Ip(a)
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(a) => a.fmt(f),
            Peer::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why an I/O operation did not complete.
#[derive(Debug)]
pub enum IoFail {
    Timeout,
    Io(std::io::Error),
}

impl IoFail {
    /// As a `std::io::Error` (a timeout is `TimedOut`).
    pub fn into_io(self) -> std::io::Error {
        match self {
            IoFail::Timeout => std::io::ErrorKind::TimedOut.into(),
            IoFail::Io(e) => e,
        }
    }
}

impl std::fmt::Display for IoFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoFail::Timeout => f.write_str("timed out"),
            IoFail::Io(e) => write!(f, "{e}"),
        }
    }
}

/// When an operation must have completed.
#[derive(Debug, Clone, Copy)]
pub enum Deadline {
    /// Within this long of starting the operation.
    After(Duration),
    /// By this instant, however many operations it takes.
    At(Instant),
}

impl From<Duration> for Deadline {
    fn from(d: Duration) -> Self {
        Deadline::After(d)
    }
}

impl Deadline {
    fn passed(self) -> bool {
        matches!(self, Deadline::At(i) if Instant::now() >= i)
    }

    pub fn at(self) -> tokio::time::Instant {
        match self {
            Deadline::After(d) => tokio::time::Instant::now() + d,
            Deadline::At(i) => i.into(),
        }
    }
}

pub struct Stream {
    inner: Tcp,
    /// TLS between the socket and the caller's plaintext (`listen ... ssl`).
    tls: Option<Box<tls::Tls>>,
    /// Bytes written so far (nginx's `c->sent`): what a peer received, whatever
    /// ended the exchange, is the difference of two readings.
    written: Cell<u64>,
    /// An operation's future was dropped before it completed (see [`Stream::track`]).
    abandoned: Cell<bool>,
    /// A timeout or an I/O error ended the connection: no `close_notify` (nginx's quiet
    /// shutdown).
    quiet: Cell<bool>,
    /// The next wait for input is the first on this socket, or the first after the
    /// TLS handshake: epoll's readiness may be stale (see [`Tcp::readable_confirmed`]).
    fresh: Cell<bool>,
    /// The PROXY protocol header the connection began with (`listen … proxy_protocol`).
    proxy: Option<Box<crate::proto::proxy_protocol::Header>>,
}

pin_project_lite::pin_project! {
    /// One operation of a stream ([`Stream::track`]): marks the stream when dropped
    /// before the operation completed. A future of its own, not an `async fn`, so
    /// the operation's state is held once, not twice (an idle connection's task is
    /// mostly such state).
    struct Tracked<'a, F> {
        #[pin]
        op: F,
        abandoned: &'a Cell<bool>,
        done: bool,
    }

    impl<F> PinnedDrop for Tracked<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            if !this.done {
                this.abandoned.set(true);
            }
        }
    }
}

impl<F: Future> Future for Tracked<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.op.poll(cx));
        *this.done = true;
        std::task::Poll::Ready(out)
    }
}

/// io_uring cannot withdraw an operation whose future is dropped (a select that
/// took another branch, a request given up): the operation stays in flight and
/// keeps the socket open until the peer sends or closes. A stream that abandoned
/// one shuts its socket down when it is dropped, which ends the operation and lets
/// the socket go; one place, whatever path abandoned it.
impl Drop for Stream {
    fn drop(&mut self) {
        if let (Some(t), false) = (&self.tls, self.quiet.get()) {
            t.close_notify(&self.inner);
        }
        if self.abandoned.get() {
            self.inner.shutdown(Shutdown::Both);
        }
    }
}

impl Stream {
    /// Runs one operation of this stream, noting it if its future is dropped first.
    fn track<F: Future>(&self, op: F) -> Tracked<'_, F> {
        Tracked {
            op,
            abandoned: &self.abandoned,
            done: false,
        }
    }

    pub fn new(inner: Tcp) -> Self {
        Stream {
            inner,
            tls: None,
            written: Cell::new(0),
            abandoned: Cell::new(false),
            quiet: Cell::new(false),
            fresh: Cell::new(true),
            proxy: None,
        }
    }

    /// The PROXY protocol header this connection began with, if its address takes one.
    pub fn proxy_header(&self) -> Option<&crate::proto::proxy_protocol::Header> {
        self.proxy.as_deref()
    }

    /// [`Stream::read_proxy_header`], with nginx's line when it fails: `[info]
    /// client timed out` or `[error] broken header: "…"`, naming the client.
    /// False: the connection is to be closed without an answer.
    pub async fn accept_proxy_header(&mut self, deadline: Instant, peer: SocketAddr, local: SocketAddr) -> bool {
        let got = match self.read_proxy_header(deadline).await {
            Ok(()) => return true,
            Err(got) => got,
        };
        let ip = peer.ip();
        if got.is_empty() {
            crate::observe::log::info(format_args!(
                "client timed out (110: Connection timed out) while reading PROXY protocol, client: {ip}, server: {local}"
            ));
        } else {
            let shown: String = String::from_utf8_lossy(&got[..got.len().min(107)])
                .escape_default()
                .collect();
            crate::observe::log::error(format_args!(
                "broken header: \"{shown}\" while reading PROXY protocol, client: {ip}, server: {local}"
            ));
        }
        false
    }

    /// Reads the PROXY protocol header the connection must begin with, by
    /// `deadline`, taking exactly its bytes (what follows, a TLS ClientHello or a
    /// request, stays in the socket). `Err`: what arrived instead, for nginx's
    /// `broken header` line (empty on a timeout or a close).
    pub async fn read_proxy_header(&mut self, deadline: Instant) -> Result<(), Vec<u8>> {
        use crate::proto::proxy_protocol::parse;
        let mut peeked = vec![std::mem::MaybeUninit::<u8>::uninit(); 16 + 4096];
        loop {
            let left = deadline.checked_duration_since(Instant::now()).ok_or_else(Vec::new)?;
            self.readable(left).await.map_err(|_| Vec::new())?;
            let n = match self
                .inner
                .try_io_read(|| io::recv_now(self.inner.fd(), &mut peeked, libc::MSG_PEEK))
            {
                Ok(0) | Err(_) => return Err(Vec::new()),
                Ok(n) => n,
            };
            // SAFETY: recv wrote the first `n` bytes it reports.
            let got: Vec<u8> = peeked[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
            match parse(&got) {
                Ok(Some((h, len))) => {
                    let mut sink = vec![std::mem::MaybeUninit::<u8>::uninit(); len];
                    let taken = self.inner.try_io_read(|| io::recv_now(self.inner.fd(), &mut sink, 0));
                    if taken.ok() != Some(len) {
                        return Err(got);
                    }
                    self.proxy = Some(Box::new(h));
                    return Ok(());
                }
                Err(_) => return Err(got),
                // Part of a header: the rest comes soon (readiness stays set while
                // bytes wait, so wait a little instead of spinning).
                Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// The handshake is done: from now on reads and writes are plaintext.
    pub fn start_tls(&mut self, tls: Box<tls::Tls>) {
        self.tls = Some(tls);
        // The handshake's last read leaves epoll's readiness set: confirm the next wait.
        self.fresh.set(true);
    }

    /// Turns on TCP keepalive probes (`proxy_socket_keepalive on`), with the
    /// system's timings, as nginx.
    pub fn set_keepalive(&self) {
        // SAFETY: the descriptor belongs to this stream, open for this call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.inner.fd()) };
        let _ = socket2::SockRef::from(&fd).set_keepalive(true);
    }

    /// The socket under the stream (the TLS handshake runs on it).
    pub fn tcp(&self) -> &Tcp {
        &self.inner
    }

    /// The connection is on the io_uring driver.
    pub fn is_uring(&self) -> bool {
        self.inner.is_uring()
    }

    /// What the TLS handshake agreed; `None` on a plain connection.
    pub fn tls_info(&self) -> Option<&tls::Info> {
        self.tls.as_deref().map(|t| &t.info)
    }

    /// Bytes written on this connection so far (complete writes).
    pub fn written(&self) -> u64 {
        self.written.get()
    }

    /// Connects to an upstream's address (TCP or Unix-domain) within `timeout`.
    pub async fn connect_peer(peer: &Peer, timeout: Duration) -> Result<Stream, IoFail> {
        match peer {
            Peer::Ip(a) => Stream::connect(*a, timeout).await,
            Peer::Unix(path) => match tokio::time::timeout(timeout, Tcp::connect_unix(path.as_ref())).await {
                Ok(Ok(s)) => Ok(Stream::new(s)),
                Ok(Err(e)) => Err(IoFail::Io(e)),
                Err(_) => Err(IoFail::Timeout),
            },
        }
    }

    /// Connects to `addr` within `timeout`; a connect that times out leaves no socket.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Stream, IoFail> {
        match tokio::time::timeout(timeout, Tcp::connect(addr)).await {
            Ok(Ok(s)) => Ok(Stream::new(s)),
            Ok(Err(e)) => Err(IoFail::Io(e)),
            Err(_) => Err(IoFail::Timeout),
        }
    }

    /// Reads at most `max` bytes, appending them after `buf.len()` (growing the
    /// capacity by 4 KiB first when it is full). `Ok(0)` is end of stream. On a
    /// timeout or error the buffer is gone and the caller must drop the connection.
    pub async fn read_append(
        &self,
        mut buf: Vec<u8>,
        max: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, Vec<u8>), IoFail> {
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let deadline = deadline.into();
        if deadline.passed() {
            // A peer that always has bytes ready completes every read at once, and a
            // timer is only looked at when the operation waits: an absolute deadline
            // is checked before each operation too.
            return Err(self.timed_out());
        }
        let op = async {
            match &self.tls {
                Some(t) => {
                    let r = t.read(&self.inner, &mut buf, max).await;
                    (r, buf)
                }
                None => self.inner.read(buf, max).await,
            }
        };
        match self.track(tokio::time::timeout_at(deadline.at(), op)).await {
            Ok((Ok(n), b)) => Ok((n, b)),
            Ok((Err(e), _)) => Err(self.failed(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Reads what has arrived if the driver has it for free (see [`Tcp::read_now`]).
    pub fn read_now(&self, mut buf: Vec<u8>, max: usize) -> Soon {
        match &self.tls {
            Some(t) => match t.try_read(&self.inner, &mut buf, max) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Soon::Idle(buf),
                r => Soon::Read(r, buf),
            },
            None => self.inner.read_now(buf, max),
        }
    }

    /// A read that does not wait, plaintext only (`WouldBlock` on TLS): bytes read
    /// now also settle what [`Stream::wait_readable`] would have confirmed.
    pub fn try_read_now(&self, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        if self.tls.is_some() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        // Read or not, the readiness epoll reports from here on is real (a
        // `WouldBlock` from the socket cleared tokio's stale one).
        let r = self.inner.try_read(buf, max);
        self.fresh.set(false);
        r
    }

    /// Reads what has arrived without waiting, else as [`Stream::read_append`]: after
    /// [`Stream::readable`], so that the buffer is filled in the turn it is taken.
    pub async fn read_ready(
        &self,
        mut buf: Vec<u8>,
        max: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, Vec<u8>), IoFail> {
        let now = match &self.tls {
            Some(t) => t.try_read(&self.inner, &mut buf, max),
            None => self.inner.try_read(&mut buf, max),
        };
        match now {
            Ok(n) => Ok((n, buf)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.read_append(buf, max, deadline).await,
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Waits, holding no buffer where the driver allows it, until the peer sent
    /// something or closed.
    pub async fn readable(&self, deadline: impl Into<Deadline>) -> Result<(), IoFail> {
        match tokio::time::timeout_at(deadline.into().at(), self.wait_readable()).await {
            Ok(r) => r,
            Err(_) => Err(self.timed_out()),
        }
    }

    /// [`Stream::readable`] without a deadline (for a caller whose own timer ends
    /// the wait: the idle park).
    pub async fn wait_readable(&self) -> Result<(), IoFail> {
        // On TLS, records already read may hold bytes (no syscall to know).
        if self.tls.as_ref().is_some_and(|t| t.has_plain()) {
            return Ok(());
        }
        let wait = async {
            if self.fresh.replace(false) {
                self.inner.readable_confirmed().await
            } else {
                self.inner.readable().await
            }
        };
        self.track(wait).await.map_err(IoFail::Io)
    }

    /// Resolves when the peer has closed its side (nginx's check for a client that
    /// went away while ringx waits on the upstream); pending forever if it sends
    /// bytes instead (a pipelined request), which are left where they are.
    pub async fn closed(&self) {
        loop {
            match self.peek() {
                Peek::Closed => return,
                Peek::Bytes => break,
                Peek::Nothing if self.tls.is_some() => {
                    // A TLS peer's close is a close_notify record first: read on.
                    if self.track(self.inner.readable()).await.is_err() {
                        return;
                    }
                }
                Peek::Nothing => {
                    if self.track(self.inner.readable()).await.is_ok() && self.inner.peek() == Peek::Closed {
                        return;
                    }
                    break;
                }
            }
        }
        std::future::pending::<()>().await
    }

    /// What the peer's side holds, without taking it (see [`Tcp::peek`]); on TLS,
    /// decrypted bytes (records that arrived are processed and kept for the next
    /// read).
    pub fn peek(&self) -> Peek {
        match &self.tls {
            Some(t) => t.peek(&self.inner),
            None => self.inner.peek(),
        }
    }

    /// Writes `buf[start..end]` fully and gives the buffer back.
    pub async fn write_range(
        &self,
        buf: Vec<u8>,
        start: usize,
        end: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<Vec<u8>, IoFail> {
        if start == end {
            return Ok(buf);
        }
        let op = async {
            match &self.tls {
                Some(t) => {
                    let r = t.write(&self.inner, &buf[start..end]).await;
                    (r, buf)
                }
                None => self.inner.write(buf, start, end).await,
            }
        };
        match self.track(tokio::time::timeout_at(deadline.into().at(), op)).await {
            Ok((Ok(()), b)) => {
                self.written.set(self.written.get() + (end - start) as u64);
                Ok(b)
            }
            Ok((Err(e), _)) => Err(self.failed(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Writes what the socket takes now of `data`, without waiting (TLS: what rustls
    /// takes, its records sent as far as the socket allows; see
    /// [`Stream::flush_now`]); counted as written. `WouldBlock` when it takes nothing.
    pub fn try_write(&self, data: &[u8]) -> std::io::Result<usize> {
        let n = match &self.tls {
            Some(t) => {
                let n = t.try_write_vectored(&self.inner, &[std::io::IoSlice::new(data)])?;
                match t.flush_now(&self.inner) {
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return Err(e),
                    _ => n,
                }
            }
            None => self
                .inner
                .try_io_write(|| std::io::Write::write(&mut io::FdIo(self.inner.fd()), data))?,
        };
        self.written.set(self.written.get() + n as u64);
        Ok(n)
    }

    /// Sends TLS records taken by [`Stream::try_write`] that the socket had no room
    /// for, without waiting: true when none are left (always, without TLS).
    pub fn flush_now(&self) -> std::io::Result<bool> {
        match &self.tls {
            Some(t) => match t.flush_now(&self.inner) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e),
            },
            None => Ok(true),
        }
    }

    /// Waits until the socket can take more bytes.
    pub async fn writable(&self) -> Result<(), IoFail> {
        self.track(self.inner.writable()).await.map_err(IoFail::Io)
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>, deadline: impl Into<Deadline>) -> Result<Vec<u8>, IoFail> {
        let n = buf.len();
        self.write_range(buf, 0, n, deadline).await
    }

    /// Shuts the socket down (`how`); on TLS a `close_notify` goes first when the
    /// write side closes, as nginx's `SSL_shutdown`.
    pub fn shutdown(&self, how: Shutdown) {
        if let (Some(t), Shutdown::Write | Shutdown::Both) = (&self.tls, how) {
            t.close_notify(&self.inner);
        }
        self.inner.shutdown(how);
    }

    /// nginx's lingering close: stops sending, then reads and drops what the peer
    /// still sends, so that closing does not reset the connection before the peer
    /// has read what was sent: for at most `time` in all, and no longer than
    /// `timeout` between reads. `buf` is reused for the reads.
    pub async fn linger(&self, mut buf: Vec<u8>, time: Duration, timeout: Duration) {
        self.shutdown(Shutdown::Write);
        let deadline = Instant::now() + time;
        while Instant::now() < deadline {
            buf.clear();
            if buf.capacity() < 16 * 1024 {
                buf.reserve(16 * 1024);
            }
            let wait = timeout.min(deadline.saturating_duration_since(Instant::now()));
            match self.read_append(buf, 16 * 1024, wait).await {
                Ok((0, _)) | Err(_) => return,
                Ok((_, b)) => buf = b,
            }
        }
    }

    /// A read or write failed: the connection ends without `close_notify`.
    fn failed(&self, e: std::io::Error) -> IoFail {
        self.quiet.set(true);
        IoFail::Io(e)
    }

    /// The one place a timeout becomes a closed connection.
    fn timed_out(&self) -> IoFail {
        // No close_notify after a timeout (nginx's quiet shutdown).
        self.quiet.set(true);
        self.inner.shutdown(Shutdown::Both);
        IoFail::Timeout
    }
}
