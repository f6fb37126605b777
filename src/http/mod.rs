//! HTTP/1.1: sans-io parsing and framing ([`parse`], [`body`], [`response`], [`uri`],
//! [`status`]), request routing ([`route`]), variables ([`ctx`]), the upstream request
//! head ([`forward`]), and the per-connection driver that does the I/O ([`proxy`]).

pub mod body;
pub mod ctx;
pub mod forward;
pub mod parse;
pub mod proxy;
pub mod response;
pub mod route;
pub mod spool;
pub mod status;
pub mod uri;

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
