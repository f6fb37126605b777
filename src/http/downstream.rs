//! The client side of one request, whichever protocol carries it: an HTTP/1
//! connection ([`Stream`]), or one HTTP/2 stream ([`super::h2::Pipe`]) that reads and
//! writes the same HTTP/1.1 bytes. The request phases in [`super::proxy`] see only
//! this.

use std::net::Shutdown;

use crate::net::{tls, Deadline, IoFail, Peek, Soon, Stream};

use super::h2::Pipe;

pub enum Downstream {
    H1(Stream),
    H2(Box<Pipe>),
}

impl Downstream {
    pub fn is_h2(&self) -> bool {
        matches!(self, Downstream::H2(_))
    }

    /// The HTTP/1 connection (`None` on HTTP/2: no tunnel, no lingering close there).
    pub fn h1(&self) -> Option<&Stream> {
        match self {
            Downstream::H1(s) => Some(s),
            Downstream::H2(_) => None,
        }
    }

    /// The PROXY protocol header of the connection (HTTP/2 streams: their connection's).
    pub fn proxy_header(&self) -> Option<&crate::proto::proxy_protocol::Header> {
        match self {
            Downstream::H1(s) => s.proxy_header(),
            Downstream::H2(p) => p.proxy_header(),
        }
    }

    pub fn tls_info(&self) -> Option<&tls::Info> {
        match self {
            Downstream::H1(s) => s.tls_info(),
            Downstream::H2(p) => p.tls_info(),
        }
    }

    pub fn written(&self) -> u64 {
        match self {
            Downstream::H1(s) => s.written(),
            Downstream::H2(p) => p.written(),
        }
    }

    pub async fn read_append(
        &self,
        buf: Vec<u8>,
        max: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, Vec<u8>), IoFail> {
        match self {
            Downstream::H1(s) => s.read_append(buf, max, deadline).await,
            Downstream::H2(p) => p.read_append(buf, max, deadline).await,
        }
    }

    pub async fn read_ready(
        &self,
        buf: Vec<u8>,
        max: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, Vec<u8>), IoFail> {
        match self {
            Downstream::H1(s) => s.read_ready(buf, max, deadline).await,
            Downstream::H2(p) => p.read_append(buf, max, deadline).await,
        }
    }

    pub fn read_now(&self, buf: Vec<u8>, max: usize) -> Soon {
        match self {
            Downstream::H1(s) => s.read_now(buf, max),
            Downstream::H2(_) => Soon::Idle(buf),
        }
    }

    pub fn peek(&self) -> Peek {
        match self {
            Downstream::H1(s) => s.peek(),
            Downstream::H2(_) => Peek::Nothing,
        }
    }

    pub async fn closed(&self) {
        match self {
            Downstream::H1(s) => s.closed().await,
            Downstream::H2(p) => p.closed().await,
        }
    }

    pub async fn write_range(
        &self,
        buf: Vec<u8>,
        start: usize,
        end: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<Vec<u8>, IoFail> {
        match self {
            Downstream::H1(s) => s.write_range(buf, start, end, deadline).await,
            Downstream::H2(p) => p.write_range(buf, start, end, deadline).await,
        }
    }

    pub async fn write_all(&self, buf: Vec<u8>, deadline: impl Into<Deadline>) -> Result<Vec<u8>, IoFail> {
        match self {
            Downstream::H1(s) => s.write_all(buf, deadline).await,
            Downstream::H2(p) => p.write_all(buf, deadline).await,
        }
    }

    /// HTTP/1: shuts the socket down. HTTP/2: nothing (the stream ends with its
    /// response, or is reset when the pipe is dropped).
    pub fn shutdown(&self, how: Shutdown) {
        if let Downstream::H1(s) = self {
            s.shutdown(how);
        }
    }
}
