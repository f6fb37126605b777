//! The one I/O seam: a TCP connection and a listener over one of two drivers.
//!
//! - **io_uring** (tokio-uring): owned-buffer reads and writes submitted to the
//!   worker's ring. The default where the kernel allows it.
//! - **epoll** (tokio's current-thread reactor): readiness, then a non-blocking
//!   `read`/`write` into the same owned buffers. Used where io_uring is refused
//!   (Docker's and containerd's default seccomp profiles, `kernel.io_uring_disabled`,
//!   RHEL 9's default) or forced by `events { use epoll; }`.
//!
//! Both drivers give the same owned-buffer interface ([`Tcp::read`] appends into a
//! `Vec`'s spare capacity and hands the buffer back, [`Tcp::write`] writes a range),
//! so the protocol code above does not know which one runs. The driver is chosen
//! once per process at start-up ([`choose`]) and every worker uses it.
//!
//! A connect that times out is stopped and its socket closed at once under both
//! drivers (on io_uring through ringx's own connect operation, `uring_connect`:
//! tokio-uring's cannot be reached once in flight).
//!
//! Readiness without a buffer ([`Tcp::readable`]: `IORING_OP_POLL_ADD`, or epoll),
//! then a non-blocking read in the same turn ([`Tcp::try_read`]), is how a
//! connection waits for its next request holding no memory for it, and how ringx
//! watches a second socket (an early upstream response, a client that left) without
//! taking its bytes ([`Tcp::peek`]).

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::BufMut;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio_uring::buf::BoundedBuf;

/// Which event mechanism the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Epoll,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Uring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// What `events { use ...; }` (or `RINGX_EVENTS`) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll with a notice.
    #[default]
    Auto,
    /// io_uring or `[emerg]`.
    Uring,
    /// epoll.
    Epoll,
}

static DRIVER: AtomicU8 = AtomicU8::new(0);

/// The driver the process runs on (io_uring until [`choose`] picked another).
pub fn driver() -> Driver {
    match DRIVER.load(Ordering::Relaxed) {
        1 => Driver::Epoll,
        _ => Driver::Uring,
    }
}

/// Whether this kernel lets the process create an io_uring; the error says why not.
pub fn probe_uring() -> io::Result<()> {
    io_uring::IoUring::new(8).map(drop)
}

/// Chooses the process's driver. `Err` carries the message for `[emerg]` (io_uring
/// forced but refused); `Ok((driver, Some(note)))` carries a `[notice]` to log.
pub fn choose(want: DriverChoice) -> Result<(Driver, Option<String>), String> {
    let (d, note) = match want {
        DriverChoice::Epoll => (Driver::Epoll, None),
        DriverChoice::Uring => match probe_uring() {
            Ok(()) => (Driver::Uring, None),
            Err(e) => return Err(format!("io_uring is not available ({e}), but \"use io_uring\" is set")),
        },
        DriverChoice::Auto => match probe_uring() {
            Ok(()) => (Driver::Uring, None),
            Err(e) => (
                Driver::Epoll,
                Some(format!("io_uring is not available ({e}), using the epoll driver")),
            ),
        },
    };
    DRIVER.store(if d == Driver::Epoll { 1 } else { 0 }, Ordering::Relaxed);
    Ok((d, note))
}

/// What [`Tcp::peek`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Bytes wait to be read.
    Bytes,
    /// Nothing yet; the connection is open.
    Nothing,
    /// The peer closed its side, or the connection failed.
    Closed,
}

/// What [`Tcp::read_now`] did.
pub enum Soon {
    /// A read completed (as [`Tcp::read`]).
    Read(io::Result<usize>, Vec<u8>),
    /// Nothing was there; the buffer comes back unused.
    Idle(Vec<u8>),
}

/// A connection on the process's driver: TCP, or a Unix-domain stream socket
/// (`server unix:/path` upstreams), which both drivers read and write alike.
pub enum Tcp {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
    UringUnix(tokio_uring::net::UnixStream),
    EpollUnix(tokio::net::UnixStream),
}

/// `$body` for whichever socket `$tcp` holds: `$u` bound to an io_uring one, or
/// `$e` to an epoll one (TCP and Unix alike: they have the same methods).
macro_rules! each {
    ($tcp:expr, $u:ident => $ub:expr, $e:ident => $eb:expr) => {
        match $tcp {
            Tcp::Uring($u) => $ub,
            Tcp::UringUnix($u) => $ub,
            Tcp::Epoll($e) => $eb,
            Tcp::EpollUnix($e) => $eb,
        }
    };
}

impl Tcp {
    /// Connects to the Unix-domain socket at `path`.
    pub async fn connect_unix(path: &std::path::Path) -> io::Result<Tcp> {
        match driver() {
            Driver::Uring => Ok(Tcp::UringUnix(tokio_uring::net::UnixStream::connect(path).await?)),
            Driver::Epoll => Ok(Tcp::EpollUnix(tokio::net::UnixStream::connect(path).await?)),
        }
    }

    /// The driver this connection is on is io_uring.
    pub fn is_uring(&self) -> bool {
        matches!(self, Tcp::Uring(_) | Tcp::UringUnix(_))
    }

    /// Connects to `addr`. Dropping the future (a timeout) stops the connect and
    /// closes its socket at once.
    pub async fn connect(addr: SocketAddr) -> io::Result<Tcp> {
        match driver() {
            Driver::Uring => {
                let s = uring_connect(addr).await?;
                let _ = s.set_nodelay(true);
                Ok(Tcp::Uring(tokio_uring::net::TcpStream::from_std(s)))
            }
            Driver::Epoll => {
                let s = tokio::net::TcpStream::connect(addr).await?;
                let _ = s.set_nodelay(true);
                Ok(Tcp::Epoll(s))
            }
        }
    }

    /// Reads at most `max` bytes (at least one) after `buf.len()`, into the spare
    /// capacity. `Ok(0)` is end of stream. The buffer comes back in every case.
    pub async fn read(&self, buf: Vec<u8>, max: usize) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        let end = buf.capacity().min(start.saturating_add(max.max(1)));
        each!(self,
            s => {
                let (r, slice) = s.read(buf.slice(start..end)).await;
                (r, slice.into_inner())
            },
            s => {
                let mut buf = buf;
                loop {
                    if let Err(e) = s.readable().await {
                        return (Err(e), buf);
                    }
                    let mut lim = (&mut buf).limit(end - start);
                    match s.try_read_buf(&mut lim) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        r => return (r, buf),
                    }
                }
            }
        )
    }

    /// Reads what has already arrived if the driver has it for free, else gives the
    /// buffer back unused (`Soon::Idle`), so that a connection waiting for its next
    /// request holds none: the caller then waits with [`Tcp::readable`]. epoll: a
    /// non-blocking read, nginx's keep-alive rule (it also clears tokio's cached
    /// readiness, so the wait that follows really waits). io_uring: `Idle` at once; a
    /// read submitted with its buffer would hold it for the whole wait, and
    /// withdrawing it (`ASYNC_CANCEL` by fd) makes the kernel walk the operations in
    /// flight (read in its source, not measured here).
    pub fn read_now(&self, mut buf: Vec<u8>, max: usize) -> Soon {
        if self.is_uring() {
            return Soon::Idle(buf);
        }
        match self.try_read(&mut buf, max) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Soon::Idle(buf),
            r => Soon::Read(r, buf),
        }
    }

    /// Reads what has already arrived (at most `max` bytes, appended) without
    /// waiting: `WouldBlock` if nothing has. After [`Tcp::readable`] this takes the
    /// bytes in the same turn, so a buffer is held only while it is filled.
    pub fn try_read(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let room = (buf.capacity() - buf.len()).min(max.max(1));
        each!(self,
            s => {
                // tokio-uring's sockets are blocking: recv_now adds MSG_DONTWAIT.
                // Measured need: a read submitted to the ring holds its buffer until
                // the next loop turn; when 10,000 idle clients closed at once, RSS
                // grew by 26 MB that way (bench-harness --idle).
                let n = recv_now(s.as_raw_fd(), &mut buf.spare_capacity_mut()[..room], 0)?;
                // SAFETY: recv wrote the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                Ok(n)
            },
            s => s.try_read_buf(&mut (&mut *buf).limit(room))
        )
    }

    /// What the peer's side holds, seen without taking any of its bytes: a
    /// `recv(MSG_PEEK)` of one byte.
    pub fn peek(&self) -> Peek {
        match recv_now(self.fd(), &mut [std::mem::MaybeUninit::uninit()], libc::MSG_PEEK) {
            Ok(0) => Peek::Closed,
            Ok(_) => Peek::Bytes,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Peek::Nothing,
            Err(_) => Peek::Closed,
        }
    }

    /// Waits until the connection has something to read (or is closed) without
    /// holding a buffer: epoll readiness, or `IORING_OP_POLL_ADD` on io_uring (an
    /// io_uring read would need its buffer in flight for the whole wait).
    ///
    /// io_uring cannot withdraw a poll whose future is dropped: [`super::Stream`]
    /// notes that and shuts the socket down when it is dropped, which completes it.
    pub async fn readable(&self) -> io::Result<()> {
        // Epoll: the task's waker in the socket's reader slot (`poll_read_ready`), no
        // waiter node held in the future (it is most of an idle connection's task).
        // One task waits to read a socket at a time, which that slot needs.
        each!(self, s => uring_poll_in(s.as_raw_fd()).await, s => poll_fn(|cx| s.poll_read_ready(cx)).await)
    }

    /// [`Tcp::readable`], confirmed: on epoll a new socket's readiness can be stale
    /// (tokio reports it readable before any byte came), so it is checked with a peek,
    /// which clears it when nothing is there: an idle new connection really waits, and
    /// stays where worker_connections can reclaim it. io_uring's poll is exact.
    pub async fn readable_confirmed(&self) -> io::Result<()> {
        each!(self,
            s => uring_poll_in(s.as_raw_fd()).await,
            s => poll_fn(|cx| loop {
                std::task::ready!(s.poll_read_ready(cx))?;
                match self.try_io_read(|| self.peek_byte()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    _ => return std::task::Poll::Ready(Ok(())),
                }
            })
            .await
        )
    }

    /// Writes `buf[start..end]` fully. The buffer comes back in every case.
    pub async fn write(&self, buf: Vec<u8>, start: usize, end: usize) -> (io::Result<()>, Vec<u8>) {
        each!(self,
            s => {
                let (r, slice) = s.write_all(buf.slice(start..end)).await;
                (r, slice.into_inner())
            },
            s => {
                let mut pos = start;
                while pos < end {
                    if let Err(e) = poll_fn(|cx| s.poll_write_ready(cx)).await {
                        return (Err(e), buf);
                    }
                    match s.try_write(&buf[pos..end]) {
                        Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                        Ok(n) => pos += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return (Err(e), buf),
                    }
                }
                (Ok(()), buf)
            }
        )
    }

    /// The socket's descriptor (for readiness-driven protocols above, such as TLS).
    pub fn fd(&self) -> std::os::fd::RawFd {
        each!(self, s => s.as_raw_fd(), s => s.as_raw_fd())
    }

    /// Runs a non-blocking read `f` on the socket (one that uses [`FdIo`]): on epoll
    /// through tokio's `try_io`, so that a `WouldBlock` clears the cached readiness
    /// and the next [`Tcp::readable`] really waits.
    pub fn try_io_read<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        each!(self, _s => f(), s => s.try_io(tokio::io::Interest::READABLE, f))
    }

    /// As [`Tcp::try_io_read`], for a non-blocking write.
    pub fn try_io_write<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        each!(self, _s => f(), s => s.try_io(tokio::io::Interest::WRITABLE, f))
    }

    /// Waits until the socket can take more bytes: epoll readiness, or
    /// `IORING_OP_POLL_ADD` for output on io_uring.
    pub async fn writable(&self) -> io::Result<()> {
        each!(self, s => uring_poll(s.as_raw_fd(), libc::POLLOUT as u32).await, s => poll_fn(|cx| s.poll_write_ready(cx)).await)
    }

    /// The first byte waiting on the socket, left where it is; `None`: closed.
    /// `WouldBlock` when nothing has arrived.
    pub fn peek_byte(&self) -> io::Result<Option<u8>> {
        let mut b = [std::mem::MaybeUninit::uninit()];
        match recv_now(self.fd(), &mut b, libc::MSG_PEEK)? {
            0 => Ok(None),
            // SAFETY: recv wrote the one byte it reports.
            _ => Ok(Some(unsafe { b[0].assume_init() })),
        }
    }

    pub fn shutdown(&self, how: Shutdown) {
        let _ = each!(self, s => s.shutdown(how), s => socket2::SockRef::from(s).shutdown(how));
    }
}

/// `recv(2)` on `fd` with `flags` and `MSG_DONTWAIT`: never waits, whatever the
/// socket's mode. The caller's connection owns `fd` for the whole call.
pub(super) fn recv_now(
    fd: std::os::fd::RawFd,
    buf: &mut [std::mem::MaybeUninit<u8>],
    flags: libc::c_int,
) -> io::Result<usize> {
    // SAFETY: `fd` belongs to a connection the caller borrows, open for this call.
    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&sock).recv_with_flags(buf, flags | libc::MSG_DONTWAIT)
}

/// A socket's descriptor as `io::Read`/`io::Write` that never wait (`MSG_DONTWAIT`;
/// writes with `MSG_NOSIGNAL`): what a protocol library that reads and writes
/// through `std::io` (rustls) is given, inside [`Tcp::try_io_read`] or
/// [`Tcp::try_io_write`]. The connection it came from must outlive it.
pub struct FdIo(pub std::os::fd::RawFd);

impl io::Read for FdIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and recv only
        // writes initialized bytes into it.
        let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
        recv_now(self.0, uninit, 0)
    }
}

impl io::Write for FdIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `fd` belongs to a connection that outlives this `FdIo`.
        let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) };
        socket2::SockRef::from(&sock).send_with_flags(buf, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    }

    /// One `sendmsg` for all of `bufs` (rustls hands its queued records this way:
    /// they leave in one syscall, not one each).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: `fd` belongs to a connection that outlives this `FdIo`.
        let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) };
        socket2::SockRef::from(&sock).send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `IORING_OP_CONNECT` on a socket ringx owns. tokio-uring's own connect keeps its
/// socket inside the operation, where a timed-out connect could not be reached: the
/// socket then lived until the kernel gave up on SYN retries (about two minutes).
/// Here, when the future is dropped before the connect completes, the socket is
/// shut down (which aborts a connect in progress) and closed.
async fn uring_connect(addr: SocketAddr) -> io::Result<std::net::TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // The address is the operation's data: it stays where it is until the kernel has
    // completed the operation, even if this future is dropped first.
    let sa = Box::new(SockAddr::from(addr));
    let sqe = io_uring::opcode::Connect::new(io_uring::types::Fd(sock.as_raw_fd()), sa.as_ptr(), sa.len()).build();
    let mut pending = Connecting(Some(sock));
    tokio_uring::UnsubmittedOneshot::new(sa, ResultCode::new(), sqe)
        .submit()
        .await?;
    Ok(pending.0.take().expect("set above").into())
}

/// A socket whose connect is in flight: shut down if it is dropped unfinished.
struct Connecting(Option<Socket>);

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A oneshot operation's completion: its result code as an `io::Result`, the
/// operation's data (`D`, kept alive until the kernel is done with it) dropped.
struct ResultCode<D>(std::marker::PhantomData<D>);

impl<D> ResultCode<D> {
    fn new() -> Self {
        ResultCode(std::marker::PhantomData)
    }
}

impl<D> tokio_uring::OneshotOutputTransform for ResultCode<D> {
    type Output = io::Result<()>;
    type StoredData = D;

    fn transform_oneshot_output(self, _data: D, cqe: io_uring::cqueue::Entry) -> io::Result<()> {
        match cqe.result() {
            r if r < 0 => Err(io::Error::from_raw_os_error(-r)),
            _ => Ok(()),
        }
    }
}

/// `IORING_OP_POLL_ADD` for input (or hang-up, or error) on `fd`: readiness on
/// io_uring, so that an idle connection holds no receive buffer.
async fn uring_poll_in(fd: std::os::fd::RawFd) -> io::Result<()> {
    uring_poll(fd, (libc::POLLIN | libc::POLLRDHUP) as u32).await
}

/// `IORING_OP_POLL_ADD` for the events in `mask` on `fd`.
pub(super) async fn uring_poll(fd: std::os::fd::RawFd, mask: u32) -> io::Result<()> {
    let sqe = io_uring::opcode::PollAdd::new(io_uring::types::Fd(fd), mask).build();
    tokio_uring::UnsubmittedOneshot::new((), ResultCode::<()>::new(), sqe)
        .submit()
        .await
}

/// A listening socket on the process's driver.
pub enum Listener {
    Uring(tokio_uring::net::TcpListener),
    Epoll(tokio::net::TcpListener),
}

impl Listener {
    pub fn from_std(l: std::net::TcpListener) -> io::Result<Listener> {
        match driver() {
            Driver::Uring => Ok(Listener::Uring(tokio_uring::net::TcpListener::from_std(l))),
            Driver::Epoll => {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l).map(Listener::Epoll)
            }
        }
    }

    pub async fn accept(&self) -> io::Result<(Tcp, SocketAddr)> {
        match self {
            // TCP_NODELAY is the listener's (`listener::bind`), which an accepted
            // socket inherits on Linux: no setsockopt per connection.
            Listener::Uring(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Tcp::Uring(s), peer))
            }
            Listener::Epoll(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Tcp::Epoll(s), peer))
            }
        }
    }
}
