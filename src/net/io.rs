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
//! Connecting is done through tokio's reactor under both drivers, then the socket is
//! handed to the driver: a connect that times out is dropped, which closes its socket
//! at once (tokio-uring cannot cancel an in-flight connect: its socket lived until
//! the kernel gave up on SYN retries).

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::BufMut;
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

/// A TCP connection on the process's driver.
pub enum Tcp {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
}

impl Tcp {
    /// Connects to `addr`. Dropping the future closes the socket.
    pub async fn connect(addr: SocketAddr) -> io::Result<Tcp> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        match driver() {
            Driver::Epoll => Ok(Tcp::Epoll(s)),
            Driver::Uring => {
                // io_uring honours O_NONBLOCK with EAGAIN instead of waiting.
                let s = s.into_std()?;
                s.set_nonblocking(false)?;
                Ok(Tcp::Uring(tokio_uring::net::TcpStream::from_std(s)))
            }
        }
    }

    /// Reads at most `max` bytes (at least one) after `buf.len()`, into the spare
    /// capacity. `Ok(0)` is end of stream. The buffer comes back in every case.
    pub async fn read(&self, buf: Vec<u8>, max: usize) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        let end = buf.capacity().min(start.saturating_add(max.max(1)));
        match self {
            Tcp::Uring(s) => {
                let (r, slice) = s.read(buf.slice(start..end)).await;
                (r, slice.into_inner())
            }
            Tcp::Epoll(s) => {
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
        }
    }

    /// Waits until the connection has something to read (or is closed) without
    /// holding a buffer (epoll); io_uring reads need the buffer in flight, so there
    /// this returns at once.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Tcp::Uring(_) => Ok(()),
            Tcp::Epoll(s) => s.readable().await,
        }
    }

    /// Writes `buf[start..end]` fully. The buffer comes back in every case.
    pub async fn write(&self, buf: Vec<u8>, start: usize, end: usize) -> (io::Result<()>, Vec<u8>) {
        match self {
            Tcp::Uring(s) => {
                let (r, slice) = s.write_all(buf.slice(start..end)).await;
                (r, slice.into_inner())
            }
            Tcp::Epoll(s) => {
                let mut pos = start;
                while pos < end {
                    if let Err(e) = s.writable().await {
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
        }
    }

    pub fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Tcp::Uring(s) => s.shutdown(how),
            Tcp::Epoll(s) => socket2::SockRef::from(s).shutdown(how),
        };
    }
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
            Listener::Uring(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Tcp::Uring(s), peer))
            }
            Listener::Epoll(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Tcp::Epoll(s), peer))
            }
        }
    }
}
