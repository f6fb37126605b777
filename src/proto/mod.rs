//! Protocols, sans-io: bytes in, decisions and bytes out, no sockets and no async.
//!
//! Where it sits: between the I/O seam ([`crate::net`]) and the proxy phases
//! ([`crate::http::proxy`]). The driver reads into a buffer, hands the bytes to a
//! parser or decoder here, and acts on what comes back; everything here is tested
//! without a socket. [`h1`] is HTTP/1.x; HTTP/2 will be a sibling.

pub mod conditional;
pub mod dns;
pub mod gzip;
pub mod h1;
pub mod proxy_protocol;

/// Who failed, for logs and for the retry decision (see pingora-error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Internal,
}

/// An HTTP-level error: the status ringx answers with and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
    pub side: Side,
}

impl HttpError {
    pub fn client(status: u16, reason: &'static str) -> Self {
        HttpError {
            status,
            reason,
            side: Side::Client,
        }
    }
    pub fn upstream(status: u16, reason: &'static str) -> Self {
        HttpError {
            status,
            reason,
            side: Side::Upstream,
        }
    }
}
