//! The thin per-core I/O layer: everything that touches a socket goes through here,
//! so protocol code stays sans-io and the runtime underneath (tokio-uring today) can
//! be measured against, or replaced by, a leaner io_uring loop.
//!
//! - [`listener`]: one `SO_REUSEPORT` socket per worker per address (socket2).
//! - [`Stream`]: a TCP stream with owned-buffer reads that append into a `Vec`'s
//!   spare capacity and writes of a range, each bounded by a timeout. tokio-uring does
//!   not cancel an operation whose future is dropped, so after a timeout the stream
//!   is shut down (the pending operation then completes and frees its buffer).
//! - [`pool`]: idle upstream connections kept per worker (`keepalive N`).

pub mod listener;
pub mod pool;

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use tokio_uring::buf::BoundedBuf;

/// Why an I/O operation did not complete.
#[derive(Debug)]
pub enum IoFail {
    Timeout,
    Io(io::Error),
}

impl std::fmt::Display for IoFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoFail::Timeout => f.write_str("timed out"),
            IoFail::Io(e) => write!(f, "{e}"),
        }
    }
}

pub struct Stream {
    inner: tokio_uring::net::TcpStream,
}

impl Stream {
    pub fn new(inner: tokio_uring::net::TcpStream) -> Self {
        let _ = inner.set_nodelay(true);
        Stream { inner }
    }

    /// Connects to `addr` within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Stream, IoFail> {
        match tokio::time::timeout(timeout, tokio_uring::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => Ok(Stream::new(s)),
            Ok(Err(e)) => Err(IoFail::Io(e)),
            Err(_) => Err(IoFail::Timeout),
        }
    }

    /// Reads at most `max` bytes, appending them after `buf.len()` (growing the
    /// capacity by `grow` first when it is full). `Ok(0)` is end of stream. On a
    /// timeout or error the buffer is gone and the caller must drop the connection.
    pub async fn read_append(
        &self,
        mut buf: Vec<u8>,
        max: usize,
        timeout: Duration,
    ) -> Result<(usize, Vec<u8>), IoFail> {
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let start = buf.len();
        let end = buf.capacity().min(start.saturating_add(max.max(1)));
        let fut = self.inner.read(buf.slice(start..end));
        match tokio::time::timeout(timeout, fut).await {
            Ok((Ok(n), slice)) => Ok((n, slice.into_inner())),
            Ok((Err(e), _)) => Err(IoFail::Io(e)),
            Err(_) => {
                let _ = self.inner.shutdown(Shutdown::Both);
                Err(IoFail::Timeout)
            }
        }
    }

    /// Writes `buf[range]` fully and gives the buffer back.
    pub async fn write_range(
        &self,
        buf: Vec<u8>,
        start: usize,
        end: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, IoFail> {
        if start == end {
            return Ok(buf);
        }
        let fut = self.inner.write_all(buf.slice(start..end));
        match tokio::time::timeout(timeout, fut).await {
            Ok((Ok(()), slice)) => Ok(slice.into_inner()),
            Ok((Err(e), _)) => Err(IoFail::Io(e)),
            Err(_) => {
                let _ = self.inner.shutdown(Shutdown::Both);
                Err(IoFail::Timeout)
            }
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, IoFail> {
        let n = buf.len();
        self.write_range(buf, 0, n, timeout).await
    }

    pub fn shutdown(&self, how: Shutdown) {
        let _ = self.inner.shutdown(how);
    }
}
