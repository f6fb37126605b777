//! Upstream response heads, sans-io: httparse over the upstream receive buffer, with
//! the framing facts the relay needs (length, chunked, close-delimited, reusable).
//! An invalid head (not HTTP, two different Content-Lengths, a bad Content-Length) is
//! an error: ringx answers 502 and does not reuse the connection.

use super::request::{trim, Span};
use crate::proto::HttpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespBody {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    Close,
}

#[derive(Debug, Clone, Copy)]
pub struct RespHeader {
    pub name: Span,
    pub value: Span,
    /// Framing or hop-by-hop: ringx writes its own or drops it.
    pub hop: bool,
}

#[derive(Debug, Default)]
pub struct ResponseHead {
    pub code: u16,
    pub reason: Span,
    pub minor: u8,
    pub headers: Vec<RespHeader>,
    pub head_len: usize,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// The upstream allows reusing the connection.
    pub keep_alive: bool,
    /// `X-Accel-Redirect`, `X-Accel-Limit-Rate` and `X-Accel-Buffering`, found in the
    /// one pass over the fields (nginx acts on them; they are not passed on).
    pub accel_redirect: Option<Span>,
    pub accel_limit_rate: Option<Span>,
    pub accel_buffering: Option<Span>,
}

impl ResponseHead {
    pub fn body(&self, head_request: bool) -> RespBody {
        if head_request || self.code < 200 || self.code == 204 || self.code == 304 {
            RespBody::None
        } else if self.chunked {
            RespBody::Chunked
        } else if let Some(n) = self.content_length {
            RespBody::Length(n)
        } else {
            RespBody::Close
        }
    }
}

const MAX_HEADERS: usize = 128;

/// Parses the response head at the start of `buf`; `Ok(None)` when incomplete.
pub fn parse_response(buf: &[u8], head: &mut ResponseHead) -> Result<Option<()>, HttpError> {
    parse_response_n::<MAX_HEADERS>(buf, head)
}

/// [`parse_response`] with room for `N` fields (a head ringx wrote itself holds the
/// upstream's fields and its own).
pub fn parse_response_n<const N: usize>(buf: &[u8], head: &mut ResponseHead) -> Result<Option<()>, HttpError> {
    let mut raw = [httparse::EMPTY_HEADER; N];
    let mut resp = httparse::Response::new(&mut raw);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::upstream(502, "upstream sent invalid header")),
    };
    head.code = resp.code.unwrap_or(0);
    head.minor = resp.version.unwrap_or(0);
    head.head_len = n;
    let reason = resp.reason.unwrap_or("");
    head.reason = span_of(buf, reason.as_bytes());
    head.headers.clear();
    head.content_length = None;
    head.chunked = false;
    head.accel_redirect = None;
    head.accel_limit_rate = None;
    head.accel_buffering = None;
    let mut close = head.minor == 0;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let v = trim(h.value);
        let mut hop = super::request::is_hop_by_hop(name);
        if name.eq_ignore_ascii_case(b"content-length") {
            hop = true;
            let parsed: Option<u64> = std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|s| s.parse().ok());
            match (parsed, head.content_length) {
                (None, _) => {
                    return Err(HttpError::upstream(
                        502,
                        "upstream sent invalid \"Content-Length\" header",
                    ))
                }
                (Some(a), Some(b)) if a != b => {
                    return Err(HttpError::upstream(
                        502,
                        "upstream sent duplicate header line: \"Content-Length\"",
                    ))
                }
                (Some(a), _) => head.content_length = Some(a),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            hop = true;
            if v.eq_ignore_ascii_case(b"chunked") {
                head.chunked = true;
            } else {
                return Err(HttpError::upstream(502, "upstream sent unknown \"Transfer-Encoding\""));
            }
        } else if name.len() > 8 && name[..8].eq_ignore_ascii_case(b"x-accel-") {
            let slot = match &name[8..] {
                n if n.eq_ignore_ascii_case(b"redirect") => &mut head.accel_redirect,
                n if n.eq_ignore_ascii_case(b"limit-rate") => &mut head.accel_limit_rate,
                n if n.eq_ignore_ascii_case(b"buffering") => &mut head.accel_buffering,
                _ => &mut None,
            };
            *slot = Some(span_of(buf, v));
        } else if name.eq_ignore_ascii_case(b"connection") {
            hop = true;
            for tok in v.split(|&c| c == b',').map(trim) {
                if tok.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") && head.minor == 0 {
                    close = false;
                }
            }
        }
        head.headers.push(RespHeader {
            name: span_of(buf, name),
            value: span_of(buf, h.value),
            hop,
        });
    }
    if head.chunked {
        // Chunked wins over Content-Length (RFC 9112 6.3); never reuse such a connection.
        if head.content_length.is_some() {
            close = true;
        }
        head.content_length = None;
    }
    head.keep_alive = !close;
    Ok(Some(()))
}

fn span_of(buf: &[u8], part: &[u8]) -> Span {
    if part.is_empty() {
        return Span::default();
    }
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    Span {
        start: start as u32,
        end: (start + part.len()) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
        let mut h = ResponseHead::default();
        parse_response(b, &mut h).map(|o| o.map(|_| h))
    }

    #[test]
    fn framing() {
        let h = p(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(h.body(false), RespBody::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.body(true), RespBody::None);
        let h = p(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body(false), RespBody::Chunked);
        let h = p(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body(false), RespBody::Close);
        assert!(!h.keep_alive);
        let h = p(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body(false), RespBody::None);
        let h = p(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        assert!(p(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
    }

    #[test]
    fn invalid() {
        assert_eq!(p(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err().status, 502);
        assert!(p(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err());
        assert!(p(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n").is_ok());
        assert!(p(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }
}
