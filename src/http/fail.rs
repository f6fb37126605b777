//! The proxy's one error type, and the one place it is mapped.
//!
//! Where it sits: every phase of a proxied request (connect, send, response,
//! relay) ends in `Ok` or a [`Fail`]: what went wrong ([`FailKind`], which says whose
//! fault it was), in which [`Phase`], whether the request had reached the upstream,
//! and the OS error. From that alone, here: the status the client gets
//! ([`Fail::status`]), whether it counts against the upstream server
//! ([`Fail::counts_against_peer`]), whether `proxy_next_upstream` lets another server
//! be tried ([`Fail::next_upstream_allows`]), and the cause nginx writes in its error
//! line ([`Fail::cause`]).

use crate::config::model::NextUpstream;
use crate::net::IoFail;

/// What went wrong, and so whose fault it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The upstream failed: refused, reset, closed early (no OS error: a close).
    Error,
    /// The upstream timed out.
    Timeout,
    /// The upstream's response head is malformed.
    InvalidHeader,
    /// The upstream's response head is larger than ringx takes.
    TooBigHeader,
    /// A malformed chunked response body (after the head went to the client).
    InvalidBody,
    /// The upstream answered with a status `proxy_next_upstream` names.
    Status(u16),
    /// The client's fault (it went away: 499; sent a bad body: 400; too large: 413),
    /// logged at info where it happened, naming the client. Never counted against
    /// the upstream server.
    Client(u16),
    /// ringx's own fault (a temporary file failed), logged where it happened: never
    /// counted against the upstream server, never retried.
    Internal,
}

/// Where in the exchange it went wrong, for the error line's "while ..." and the
/// failing call's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    /// The TLS handshake with an upstream (`proxy_pass https://`).
    TlsHandshake,
    SendRequest,
    SendBody,
    ReadHead,
    ReadBody,
    /// Reading the client's body (for the upstream request).
    ClientBody,
    /// Writing the response to the client.
    SendToClient,
}

impl Phase {
    /// nginx's words for what ringx was doing, before "upstream".
    pub fn doing(self) -> &'static str {
        match self {
            Phase::Connect => "connecting to",
            Phase::TlsHandshake => "SSL handshaking to",
            Phase::SendRequest => "sending request to",
            Phase::SendBody => "sending request body to",
            Phase::ReadHead => "reading response header from",
            Phase::ReadBody => "reading",
            Phase::ClientBody => "reading client body for",
            Phase::SendToClient => "sending to client",
        }
    }

    /// The system call that failed in this phase, as nginx names it.
    fn call(self) -> &'static str {
        match self {
            Phase::Connect => "connect()",
            Phase::TlsHandshake => "SSL_do_handshake()",
            Phase::SendRequest | Phase::SendBody | Phase::SendToClient => "writev()",
            Phase::ReadHead | Phase::ReadBody | Phase::ClientBody => "recv()",
        }
    }
}

/// One failed attempt (or the end of the request).
#[derive(Debug)]
pub struct Fail {
    pub kind: FailKind,
    pub phase: Phase,
    /// The request (head) reached the upstream.
    pub sent: bool,
    /// Another attempt is impossible (body partly streamed, client gone, response
    /// started).
    pub fatal: bool,
    /// The client connection is unusable: no error page, nothing more to send.
    pub client_gone: bool,
    /// The OS error, for the log line (`connect() failed (111: Connection refused)`).
    pub os: Option<std::io::Error>,
}

impl Fail {
    pub fn new(kind: FailKind, phase: Phase, sent: bool) -> Fail {
        Fail {
            kind,
            phase,
            sent,
            fatal: false,
            client_gone: false,
            os: None,
        }
    }

    /// A failed socket operation with the upstream.
    pub fn io(e: IoFail, phase: Phase, sent: bool) -> Fail {
        match e {
            IoFail::Timeout => Fail::new(FailKind::Timeout, phase, sent),
            IoFail::Io(e) => Fail {
                os: Some(e),
                ..Fail::new(FailKind::Error, phase, sent)
            },
        }
    }

    /// The exchange cannot go on and nothing else may be tried; the client
    /// connection is closed (a body half sent, the client gone, a response begun).
    pub fn fatal(kind: FailKind, phase: Phase) -> Fail {
        Fail {
            fatal: true,
            client_gone: true,
            ..Fail::new(kind, phase, true)
        }
    }

    /// Marks a failure after which no other server may be tried.
    pub fn final_(self) -> Fail {
        Fail { fatal: true, ..self }
    }

    /// The status the client gets (and the access log records) if this ends the
    /// request.
    pub fn status(&self) -> u16 {
        match self.kind {
            FailKind::Timeout => 504,
            FailKind::Error | FailKind::InvalidHeader | FailKind::TooBigHeader | FailKind::InvalidBody => 502,
            FailKind::Status(s) | FailKind::Client(s) => s,
            FailKind::Internal => 500,
        }
    }

    /// Whether the upstream server is charged with it (`max_fails`): never for the
    /// client's or ringx's faults, nor for 403 and 404 (nginx's rule).
    pub fn counts_against_peer(&self) -> bool {
        !matches!(
            self.kind,
            FailKind::Status(403) | FailKind::Status(404) | FailKind::Client(_) | FailKind::Internal
        )
    }

    /// Whether `proxy_next_upstream` names this kind of failure. (Whether another
    /// server is then tried also depends on the body, the method and the tries left.)
    pub fn next_upstream_allows(&self, nu: &NextUpstream) -> bool {
        match self.kind {
            FailKind::Error => nu.error,
            FailKind::Timeout => nu.timeout,
            FailKind::InvalidHeader | FailKind::TooBigHeader | FailKind::InvalidBody => nu.invalid_header,
            FailKind::Status(s) => nu.status(s),
            FailKind::Client(_) | FailKind::Internal => false,
        }
    }

    /// The error line's cause and phase, as nginx words it:
    /// `connect() failed (111: Connection refused) while connecting to upstream`.
    /// `None` for the client's and ringx's faults, logged where they happened.
    pub fn cause(&self) -> Option<String> {
        let what = match (&self.kind, &self.os) {
            (FailKind::Client(_) | FailKind::Internal, _) => return None,
            (FailKind::Timeout, _) => "upstream timed out (110: Connection timed out)".to_string(),
            (FailKind::InvalidHeader, _) => "upstream sent invalid header".to_string(),
            (FailKind::TooBigHeader, _) => "upstream sent too big header".to_string(),
            (FailKind::InvalidBody, _) => "upstream sent invalid chunked response".to_string(),
            (FailKind::Status(s), _) => format!("upstream returned status {s}"),
            // The handshake's own words (a certificate that does not verify, ...).
            (FailKind::Error, Some(e))
                if self.phase == Phase::TlsHandshake && e.kind() == std::io::ErrorKind::Other =>
            {
                e.to_string()
            }
            (FailKind::Error, Some(e)) => {
                format!("{} failed ({})", self.phase.call(), crate::config::parser::os_err(e))
            }
            (FailKind::Error, None) => "upstream prematurely closed connection".to_string(),
        };
        Some(format!("{what} while {} upstream", self.phase.doing()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_blame_and_causes() {
        let refused = Fail::io(
            IoFail::Io(std::io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            Phase::Connect,
            false,
        );
        assert_eq!(refused.status(), 502);
        assert!(refused.counts_against_peer());
        assert_eq!(
            refused.cause().unwrap(),
            "connect() failed (111: Connection refused) while connecting to upstream"
        );
        let slow = Fail::io(IoFail::Timeout, Phase::ReadHead, true);
        assert_eq!(slow.status(), 504);
        assert_eq!(
            slow.cause().unwrap(),
            "upstream timed out (110: Connection timed out) while reading response header from upstream"
        );
        let big = Fail::new(FailKind::TooBigHeader, Phase::ReadHead, true);
        assert_eq!(
            big.cause().unwrap(),
            "upstream sent too big header while reading response header from upstream"
        );
        let closed = Fail::fatal(FailKind::Error, Phase::ReadBody);
        assert_eq!(
            closed.cause().unwrap(),
            "upstream prematurely closed connection while reading upstream"
        );
        for (kind, status) in [
            (FailKind::Client(499), 499),
            (FailKind::Client(413), 413),
            (FailKind::Internal, 500),
        ] {
            let f = Fail::fatal(kind, Phase::SendToClient);
            assert_eq!(f.status(), status);
            assert!(!f.counts_against_peer(), "{kind:?} is not the upstream's fault");
            assert!(f.cause().is_none());
        }
        assert!(!Fail::new(FailKind::Status(404), Phase::ReadHead, true).counts_against_peer());
        assert!(Fail::new(FailKind::Status(502), Phase::ReadHead, true).counts_against_peer());
    }
}
