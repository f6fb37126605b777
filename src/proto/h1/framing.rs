//! HTTP/1.x framing and connection decisions, each a pure function of what the two
//! heads said: how a response body is framed towards the client, whether either
//! connection stays open, when `100 Continue` is due, where a pipelined request
//! starts. The proxy driver asks here and does the I/O; nothing here waits.

use super::request::RequestHead;
use super::response::RespBody;

/// How a response body is framed towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length: n`, passed on.
    Length(u64),
    /// Chunked from the upstream, chunked to an HTTP/1.1 client: chunks pass as
    /// they are (checked, not re-framed).
    ChunkedPass,
    /// Chunked from the upstream to an HTTP/1.0 client: data only, end by close.
    Dechunk,
    /// Close-delimited from the upstream to an HTTP/1.1 client: ringx's own chunks,
    /// so the connection can stay open.
    Encode,
    /// Close-delimited to an HTTP/1.0 client: as it comes, end by close.
    Raw,
}

impl ClientFraming {
    /// The framing for an upstream body `body` towards a client that spoke
    /// HTTP/1.`client_minor`.
    pub fn choose(body: RespBody, client_minor: u8) -> ClientFraming {
        let v11 = client_minor == 1;
        match body {
            RespBody::None => ClientFraming::None,
            RespBody::Length(n) => ClientFraming::Length(n),
            RespBody::Chunked if v11 => ClientFraming::ChunkedPass,
            RespBody::Chunked => ClientFraming::Dechunk,
            RespBody::Close if v11 => ClientFraming::Encode,
            RespBody::Close => ClientFraming::Raw,
        }
    }

    /// Whether the client can tell where the body ends without a close, so its
    /// connection may stay open.
    pub fn delimited(self) -> bool {
        !matches!(self, ClientFraming::Dechunk | ClientFraming::Raw)
    }

    /// Writes the framing header of the client head. A bodiless response keeps the
    /// upstream's Content-Length (a HEAD answer says how long the GET would be)
    /// except for 204 and 304, which must not carry one.
    pub fn write_header(self, code: u16, upstream_length: Option<u64>, out: &mut Vec<u8>) {
        let length = match (self, upstream_length) {
            (ClientFraming::Length(n), _) => Some(n),
            (ClientFraming::None, Some(n)) if code != 204 && code != 304 => Some(n),
            _ => None,
        };
        if let Some(n) = length {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        } else if matches!(self, ClientFraming::ChunkedPass | ClientFraming::Encode) {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
    }
}

/// The client connection's limits that bear on keep-alive (nginx's
/// `keepalive_requests`, `keepalive_timeout 0`).
#[derive(Debug, Clone, Copy)]
pub struct KeepAliveLimits {
    pub max_requests: u64,
    pub timeout_zero: bool,
}

/// Whether the client connection may stay open after the response to its
/// `served`-th request: the client asked for it (HTTP/1.1 without `close`, HTTP/1.0
/// with `keep-alive`), the connection has requests left, and keep-alive is on.
/// The response's framing must also be [`ClientFraming::delimited`].
pub fn client_keep_alive(head: &RequestHead, served: u64, limits: KeepAliveLimits) -> bool {
    head.keep_alive && served < limits.max_requests && !limits.timeout_zero
}

/// Whether ringx answers `100 Continue` before reading the body: the client asked
/// and speaks HTTP/1.1 (an HTTP/1.0 client does not expect interim responses). Sent
/// once, when ringx starts reading a body that has not arrived with the head.
pub fn wants_continue(head: &RequestHead) -> bool {
    head.expect_continue && head.minor == 1
}

/// Whether an upstream connection may go back to the keep-alive pool: the upstream
/// did not say `close`, ringx asked it to keep the connection (`proxy_http_version
/// 1.1` with no `Connection: close`), the body's end is known without a close, and
/// the whole request and response went through (`complete`).
pub fn upstream_reusable(upstream_keep_alive: bool, asked_keep_alive: bool, body: RespBody, complete: bool) -> bool {
    upstream_keep_alive && asked_keep_alive && body != RespBody::Close && complete
}

/// Whether the client asked to switch protocols (an HTTP/1.1 request with an
/// `Upgrade` header): only then is an upstream's `101` honoured (nginx's rule; the
/// `Upgrade` and `Connection` headers reach the upstream only through
/// `proxy_set_header`, as in nginx's WebSocket recipe).
pub fn wants_upgrade(head: &RequestHead, buf: &[u8]) -> bool {
    head.minor == 1 && head.header(buf, "upgrade").is_some_and(|v| !v.is_empty())
}

/// Pipelining: the bytes of `buf` after the current request (`consumed`: its head
/// and body) are the start of the next one.
pub fn pipelined(buf: &[u8], consumed: usize) -> &[u8] {
    &buf[consumed.min(buf.len())..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::h1::request::{parse_request, BodyKind, HeadLimits};

    const LIMITS: HeadLimits = HeadLimits::sized(8192, 32768);

    fn head(raw: &str) -> RequestHead {
        let mut h = RequestHead::default();
        parse_request(raw.as_bytes(), &mut h, LIMITS)
            .unwrap()
            .expect("a whole head");
        h
    }

    #[test]
    fn response_framing_for_each_upstream_body_and_client_version() {
        use ClientFraming::*;
        let table = [
            (RespBody::None, 1, None, true),
            (RespBody::None, 0, None, true),
            (RespBody::Length(5), 1, Length(5), true),
            (RespBody::Length(5), 0, Length(5), true),
            (RespBody::Chunked, 1, ChunkedPass, true),
            (RespBody::Chunked, 0, Dechunk, false),
            (RespBody::Close, 1, Encode, true),
            (RespBody::Close, 0, Raw, false),
        ];
        for (body, minor, want, delimited) in table {
            let f = ClientFraming::choose(body, minor);
            assert_eq!(f, want, "{body:?} to HTTP/1.{minor}");
            assert_eq!(f.delimited(), delimited, "{body:?} to HTTP/1.{minor}");
        }
    }

    #[test]
    fn framing_headers() {
        let line = |f: ClientFraming, code, up| {
            let mut out = Vec::new();
            f.write_header(code, up, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line(ClientFraming::Length(7), 200, Some(7)), "Content-Length: 7\r\n");
        assert_eq!(line(ClientFraming::Encode, 200, None), "Transfer-Encoding: chunked\r\n");
        assert_eq!(
            line(ClientFraming::ChunkedPass, 200, None),
            "Transfer-Encoding: chunked\r\n"
        );
        assert_eq!(line(ClientFraming::Raw, 200, None), "");
        assert_eq!(line(ClientFraming::Dechunk, 200, None), "");
        // HEAD keeps the GET's length; 204 and 304 never carry one.
        assert_eq!(line(ClientFraming::None, 200, Some(42)), "Content-Length: 42\r\n");
        assert_eq!(line(ClientFraming::None, 204, Some(42)), "");
        assert_eq!(line(ClientFraming::None, 304, Some(42)), "");
    }

    #[test]
    fn keep_alive_follows_version_connection_header_and_limits() {
        let on = KeepAliveLimits {
            max_requests: 100,
            timeout_zero: false,
        };
        let table = [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nHost: x\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nHost: x\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
        ];
        for (raw, want) in table {
            assert_eq!(client_keep_alive(&head(raw), 1, on), want, "{raw:?}");
        }
        let h = head("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!client_keep_alive(&h, 100, on), "the 100th request is the last");
        let off = KeepAliveLimits {
            timeout_zero: true,
            ..on
        };
        assert!(!client_keep_alive(&h, 1, off), "keepalive_timeout 0");
    }

    #[test]
    fn continue_only_for_http11_clients_that_ask() {
        let post = |v: &str, expect: bool| {
            let e = if expect { "Expect: 100-continue\r\n" } else { "" };
            head(&format!("POST / HTTP/1.{v}\r\nHost: x\r\nContent-Length: 3\r\n{e}\r\n"))
        };
        assert!(wants_continue(&post("1", true)));
        assert!(!wants_continue(&post("1", false)));
        assert!(!wants_continue(&post("0", true)));
    }

    #[test]
    fn upstream_reuse_needs_both_sides_a_known_end_and_a_whole_exchange() {
        assert!(upstream_reusable(true, true, RespBody::Length(3), true));
        assert!(upstream_reusable(true, true, RespBody::Chunked, true));
        assert!(upstream_reusable(true, true, RespBody::None, true));
        assert!(
            !upstream_reusable(false, true, RespBody::Length(3), true),
            "upstream said close"
        );
        assert!(
            !upstream_reusable(true, false, RespBody::Length(3), true),
            "HTTP/1.0 upstream request"
        );
        assert!(!upstream_reusable(true, true, RespBody::Close, true), "close-delimited");
        assert!(!upstream_reusable(true, true, RespBody::Length(3), false), "cut short");
    }

    #[test]
    fn upgrade_only_when_an_http11_client_asks() {
        let ask = |raw: &str| {
            let h = head(raw);
            wants_upgrade(&h, raw.as_bytes())
        };
        assert!(ask(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        ));
        assert!(!ask("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!ask("GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"));
    }

    #[test]
    fn pipelined_requests_parse_one_after_another_from_one_buffer() {
        let raw =
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HT";
        let mut h = RequestHead::default();
        parse_request(raw, &mut h, LIMITS).unwrap().unwrap();
        assert_eq!(h.body_kind(), BodyKind::Length(3));
        let consumed = h.head_len + 3;
        let next = pipelined(raw, consumed);
        let mut h2 = RequestHead::default();
        parse_request(next, &mut h2, LIMITS).unwrap().unwrap();
        assert_eq!(h2.path.get(next), b"/b");
        let rest = pipelined(next, h2.head_len);
        assert_eq!(
            parse_request(rest, &mut h2, LIMITS).unwrap(),
            None,
            "a partial third head waits"
        );
        assert_eq!(pipelined(raw, raw.len() + 5), b"", "nothing past the end");
    }
}
