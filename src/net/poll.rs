//! A [`Stream`] as tokio's `AsyncRead`/`AsyncWrite`, for a protocol library that
//! drives its own I/O by polling (the h2 crate: [`crate::http::h2`]).
//!
//! Reads and writes are the non-blocking ones TLS already uses (`recv`/`send` with
//! `MSG_DONTWAIT`, through rustls on a TLS connection); when the socket has nothing
//! (or no room) the adapter waits on the driver's readiness: tokio's reactor on
//! epoll, an `IORING_OP_POLL_ADD` kept across polls on io_uring. No buffer of the
//! adapter's is ever in flight: the caller's buffer is filled in the turn it is
//! given.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::io::FdIo;
use super::{Stream, Tcp};

/// A readiness wait in flight on io_uring (epoll keeps its own in the reactor).
type Wait = Option<Pin<Box<dyn Future<Output = io::Result<()>>>>>;

pub struct PollIo {
    s: std::rc::Rc<Stream>,
    /// Bytes already read from the socket, given to the reader first.
    pre: bytes::Bytes,
    rd: Wait,
    wr: Wait,
}

impl PollIo {
    /// `pre`: what was read before the protocol was known (an HTTP/2 preface).
    /// `s` is shared with the connection's owner, which lingers on it once the
    /// protocol is done with it.
    pub fn new(s: std::rc::Rc<Stream>, pre: Vec<u8>) -> PollIo {
        PollIo {
            s,
            pre: pre.into(),
            rd: None,
            wr: None,
        }
    }
}

impl Drop for PollIo {
    fn drop(&mut self) {
        // An io_uring poll still in flight keeps the socket open: shut it down so
        // that the poll completes and the socket goes (as Stream does for an
        // abandoned operation).
        if self.rd.is_some() || self.wr.is_some() {
            self.s.abandoned.set(true);
        }
    }
}

/// Waits for readiness (`out`: room to write; else bytes to read or a close).
fn poll_ready(tcp: &Tcp, cx: &mut Context<'_>, out: bool, slot: &mut Wait) -> Poll<io::Result<()>> {
    match tcp {
        Tcp::Epoll(s) if out => s.poll_write_ready(cx),
        Tcp::Epoll(s) => s.poll_read_ready(cx),
        Tcp::EpollUnix(s) if out => s.poll_write_ready(cx),
        Tcp::EpollUnix(s) => s.poll_read_ready(cx),
        Tcp::Uring(_) | Tcp::UringUnix(_) => {
            let fd = tcp.fd();
            let wait = slot.get_or_insert_with(|| {
                let mask = if out {
                    libc::POLLOUT as u32
                } else {
                    (libc::POLLIN | libc::POLLRDHUP) as u32
                };
                Box::pin(super::io::uring_poll(fd, mask))
            });
            let r = ready!(wait.as_mut().poll(cx));
            *slot = None;
            Poll::Ready(r)
        }
    }
}

impl Stream {
    /// Reads what has arrived into `buf`'s unfilled part, without waiting.
    fn try_read_buf(&self, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
        match &self.tls {
            Some(t) => {
                let n = t.try_read_slice(&self.inner, buf.initialize_unfilled())?;
                buf.advance(n);
                Ok(n)
            }
            None => {
                let n = self
                    .inner
                    .try_io_read(|| super::io::recv_now(self.inner.fd(), unsafe_unfilled(buf), 0))?;
                // SAFETY: recv wrote the first `n` bytes of the unfilled part.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Ok(n)
            }
        }
    }

    /// Writes what the socket can take of `bufs` now, in one `sendmsg`; on TLS,
    /// encrypts what rustls's buffer takes (sent at the flush, so that the frames of
    /// one flush leave in few records and few syscalls).
    fn try_write_now(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = match &self.tls {
            Some(t) => t.try_write_vectored(&self.inner, bufs)?,
            None => {
                let fd = self.inner.fd();
                self.inner
                    .try_io_write(|| io::Write::write_vectored(&mut FdIo(fd), bufs))?
            }
        };
        self.written.set(self.written.get() + n as u64);
        Ok(n)
    }

    /// Whether a read may find bytes without asking the socket: TLS records already
    /// decrypted, or the peer's end.
    fn has_buffered(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.has_plain())
    }

    /// Sends what TLS holds encrypted, without waiting.
    fn try_flush(&self) -> io::Result<()> {
        match &self.tls {
            Some(t) => t.flush_now(&self.inner),
            None => Ok(()),
        }
    }
}

/// The unfilled part of `buf`, for a `recv` that writes initialized bytes only.
fn unsafe_unfilled<'a>(buf: &'a mut ReadBuf<'_>) -> &'a mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: the slice is only written by recv, which never de-initializes bytes.
    unsafe { buf.unfilled_mut() }
}

impl AsyncRead for PollIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.pre.is_empty() {
            let n = me.pre.len().min(buf.remaining());
            buf.put_slice(&me.pre.split_to(n));
            return Poll::Ready(Ok(()));
        }
        loop {
            // Readiness first while a wait is known to be needed (a poll in flight
            // on io_uring; epoll's cached readiness costs nothing): no recv that can
            // only say EAGAIN each time the connection is polled.
            let waiting = !me.s.inner.is_uring() || me.rd.is_some();
            if waiting && !me.s.has_buffered() {
                ready!(poll_ready(&me.s.inner, cx, false, &mut me.rd))?;
            }
            match me.s.try_read_buf(buf) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(me.s.failed(e).into_io())),
            }
            if !waiting {
                ready!(poll_ready(&me.s.inner, cx, false, &mut me.rd))?;
            }
        }
    }
}

impl AsyncWrite for PollIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        loop {
            match me.s.try_write_now(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(me.s.failed(e).into_io())),
            }
            ready!(poll_ready(&me.s.inner, cx, true, &mut me.wr))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            match me.s.try_flush() {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(me.s.failed(e).into_io())),
            }
            ready!(poll_ready(&me.s.inner, cx, true, &mut me.wr))?;
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        self.s.shutdown(Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}
