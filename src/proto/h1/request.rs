//! Request heads: httparse over the connection's receive buffer.
//!
//! Sits right after the socket read in the data path. [`parse_request`] runs httparse
//! over the bytes received so far and records every part of the head as a [`Span`]
//! (offsets into the receive buffer), so no header is copied or allocated; the buffer
//! can move into the next io_uring operation and the spans stay valid. It also applies
//! the framing rules that keep smuggling out (RFC 9112 and nginx): one Host, one
//! Content-Length, no Content-Length with Transfer-Encoding, chunked last, no bytes
//! httparse refuses (NUL, bare CR, space before the colon). "Need more bytes" is
//! `Ok(None)`, not an error.

use crate::proto::HttpError;

/// A byte range of the receive buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
}

/// Well-known request headers get an id so later stages skip a string compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    /// Hop-by-hop headers ringx never forwards: Keep-Alive, Proxy-Connection, TE,
    /// Trailer, Upgrade, Expect.
    HopByHop,
    XForwardedFor,
}

#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub name: Span,
    pub value: Span,
    pub kind: HeaderKind,
    /// Not forwarded upstream (named in `Connection`, or an invalid name nginx ignores).
    pub skip: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Connect,
    Other,
}

impl Method {
    fn from(b: &[u8]) -> Method {
        match b {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
    /// Idempotent methods may be retried on another server after being sent.
    pub fn idempotent(self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head: everything as spans into the receive buffer.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub method_span: Span,
    pub method: Option<Method>,
    /// The request target as sent (`$request_uri`).
    pub target: Span,
    /// The path-and-query part of the target (differs for absolute-form).
    pub path: Span,
    /// Host from an absolute-form target or the Host header, without port.
    pub host: Option<Span>,
    /// The port that came with that host (`$request_port`); 0 when none did.
    pub port: u16,
    /// HTTP minor version (0 or 1).
    pub minor: u8,
    pub headers: Vec<Header>,
    /// Length of the head including the final CRLF.
    pub head_len: usize,
    pub body: Option<BodyKind>,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// Index of the first X-Forwarded-For header, if any.
    pub xff: Option<usize>,
    pub cl_count: u8,
}

impl RequestHead {
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Other)
    }
    pub fn body_kind(&self) -> BodyKind {
        self.body.unwrap_or(BodyKind::None)
    }
    /// The value of the first header called `name` (lowercase ASCII).
    pub fn header<'a>(&self, buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value.get(buf))
    }
}

/// Limits on the head (nginx's `large_client_header_buffers N SIZE`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub line_max: usize,
    pub total_max: usize,
}

impl HeadLimits {
    pub const fn sized(line_max: usize, total_max: usize) -> HeadLimits {
        HeadLimits { line_max, total_max }
    }
}

const MAX_HEADERS: usize = 128;

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete (the caller reads
/// more, or answers 414/494 when `buf` already holds more than the limits allow).
pub fn parse_request(buf: &[u8], head: &mut RequestHead, limits: HeadLimits) -> Result<Option<()>, HttpError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::client(494, "too many headers")),
        Err(httparse::Error::Version) => return Err(HttpError::client(400, "invalid HTTP version")),
        Err(e) => {
            // A request line longer than the limit that fails to parse is still 414.
            return Err(HttpError::client(
                400,
                match e {
                    httparse::Error::HeaderName => "invalid header name",
                    httparse::Error::HeaderValue => "invalid header value",
                    httparse::Error::NewLine => "invalid line ending",
                    httparse::Error::Token => "invalid method",
                    _ => "invalid request",
                },
            ));
        }
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            check_partial(buf, limits)?;
            return Ok(None);
        }
    };
    // Request-line length (up to the first LF).
    let line_len = buf.iter().position(|&c| c == b'\n').unwrap_or(head_len);
    if line_len > limits.line_max {
        return Err(HttpError::client(414, "request line too long"));
    }
    if head_len > limits.total_max {
        return Err(HttpError::client(494, "request header too large"));
    }
    // Each header line must fit one large buffer, as in nginx.
    if req
        .headers
        .iter()
        .any(|h| h.name.len() + h.value.len() + 4 > limits.line_max)
    {
        return Err(HttpError::client(494, "request header line too long"));
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    head.method_span = Span::of(buf, method.as_bytes());
    head.method = Some(Method::from(method.as_bytes()));
    head.target = Span::of(buf, target.as_bytes());
    head.minor = req.version.unwrap_or(1);
    head.head_len = head_len;
    head.headers.clear();
    head.host = None;
    head.port = 0;
    head.body = None;
    head.expect_continue = false;
    head.xff = None;
    head.cl_count = 0;

    // Target forms: origin (`/p?q`), absolute (`http://h/p`), asterisk (`*`).
    head.path = head.target;
    let t = target.as_bytes();
    if t.len() > 7 && t[..7].eq_ignore_ascii_case(b"http://") || t.len() > 8 && t[..8].eq_ignore_ascii_case(b"https://")
    {
        let skip = if t[4] == b':' { 7 } else { 8 };
        let rest = &t[skip..];
        let end = rest.iter().position(|&c| c == b'/' || c == b'?').unwrap_or(rest.len());
        let auth = &rest[..end];
        if auth.is_empty() || auth.contains(&b'@') {
            return Err(HttpError::client(400, "invalid host in request line"));
        }
        (head.host, head.port) = host_port(buf, auth, "client sent invalid host in request line")?;
        let p = &rest[end..];
        head.path = if p.is_empty() {
            // `http://h` means `/`: point at a "/" nowhere else; keep the empty span and
            // let the URI stage treat it as "/".
            Span {
                start: head.target.end,
                end: head.target.end,
            }
        } else {
            Span::of(buf, p)
        };
    } else if head.method == Some(Method::Connect) {
        // Authority-form (`CONNECT host:port`): the port is required, and the URI
        // is the "/" of "HTTP/" after the target, as nginx has it.
        let (host, port) = host_port(buf, t, "client sent invalid host in request line")?;
        if port == 0 || !t.contains(&b':') {
            return Err(HttpError::client(400, "client sent invalid host in request line"));
        }
        (head.host, head.port) = (host, port);
        let slash = head.target.end + 5;
        head.path = Span {
            start: slash,
            end: slash + 1,
        };
    } else if t != b"*" && t.first() != Some(&b'/') {
        return Err(HttpError::client(400, "invalid request target"));
    }

    let mut conn_close = false;
    let mut conn_keep = false;
    let mut te_seen = false;
    let mut host_seen = false;
    let mut cl: Option<u64> = None;
    let mut conn_idx = [0usize; 4];
    let mut n_conn = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let kind = header_kind(name);
        // nginx's defaults; a server with other rules judges again (judge_names).
        let valid_name = valid_name(name, false);
        let idx = head.headers.len();
        head.headers.push(Header {
            name: Span::of(buf, name),
            value: Span::of(buf, h.value),
            kind,
            skip: !valid_name,
        });
        let v = trim(h.value);
        match kind {
            HeaderKind::Host => {
                if host_seen {
                    return Err(HttpError::client(400, "client sent duplicate host header"));
                }
                host_seen = true;
                if head.host.is_none() {
                    (head.host, head.port) = host_port(buf, v, "client sent invalid host header")?;
                }
            }
            HeaderKind::ContentLength => {
                head.cl_count += 1;
                if cl.is_some() {
                    return Err(HttpError::client(400, "client sent duplicate Content-Length header"));
                }
                if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                    return Err(HttpError::client(400, "client sent invalid Content-Length header"));
                }
                cl = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            }
            HeaderKind::TransferEncoding => {
                if te_seen {
                    return Err(HttpError::client(400, "client sent duplicate Transfer-Encoding header"));
                }
                te_seen = true;
                let last = v.rsplit(|&c| c == b',').next().map(trim).unwrap_or(b"");
                if !last.eq_ignore_ascii_case(b"chunked") {
                    return Err(HttpError::client(
                        400,
                        "client sent Transfer-Encoding without final chunked",
                    ));
                }
                if !v.eq_ignore_ascii_case(b"chunked") {
                    return Err(HttpError::client(501, "client sent unknown Transfer-Encoding"));
                }
                head.body = Some(BodyKind::Chunked);
            }
            HeaderKind::Connection => {
                for tok in v.split(|&c| c == b',').map(trim) {
                    if tok.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep = true;
                    }
                }
                if n_conn < conn_idx.len() {
                    conn_idx[n_conn] = idx;
                    n_conn += 1;
                }
            }
            HeaderKind::HopByHop => {
                if name.eq_ignore_ascii_case(b"expect") && v.eq_ignore_ascii_case(b"100-continue") {
                    head.expect_continue = true;
                }
            }
            HeaderKind::XForwardedFor => {
                if head.xff.is_none() {
                    head.xff = Some(idx);
                }
            }
            HeaderKind::Other => {}
        }
    }
    if head.minor == 1 && !host_seen && head.host.is_none() {
        return Err(HttpError::client(
            400,
            "client sent HTTP/1.1 request without \"Host\" header",
        ));
    }
    if te_seen && cl.is_some() {
        return Err(HttpError::client(
            400,
            "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
        ));
    }
    if te_seen && head.minor == 0 {
        return Err(HttpError::client(
            400,
            "client sent Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    if head.body.is_none() {
        head.body = Some(match cl {
            Some(0) | None => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        });
    }
    // Headers named in Connection are hop-by-hop too.
    for &ci in &conn_idx[..n_conn] {
        let v = head.headers[ci].value;
        for tok in v.get(buf).split(|&c| c == b',').map(trim) {
            if tok.is_empty() || tok.eq_ignore_ascii_case(b"close") || tok.eq_ignore_ascii_case(b"keep-alive") {
                continue;
            }
            for h in head.headers.iter_mut() {
                if h.kind == HeaderKind::Other && h.name.get(buf).eq_ignore_ascii_case(tok) {
                    h.skip = true;
                }
            }
        }
    }
    // A CONNECT never keeps the connection (nginx leaves r->keepalive unset).
    head.keep_alive = if head.method == Some(Method::Connect) {
        false
    } else if head.minor == 0 {
        conn_keep && !conn_close
    } else {
        !conn_close
    };
    Ok(Some(()))
}

fn check_partial(buf: &[u8], limits: HeadLimits) -> Result<(), HttpError> {
    match buf.iter().position(|&c| c == b'\n') {
        None if buf.len() > limits.line_max => Err(HttpError::client(414, "request line too long")),
        Some(n) if n > limits.line_max => Err(HttpError::client(414, "request line too long")),
        _ if buf.len() >= limits.total_max => Err(HttpError::client(494, "request header too large")),
        _ => {
            // A single header line over the line limit.
            let mut start = 0;
            for (i, &c) in buf.iter().enumerate() {
                if c == b'\n' {
                    start = i + 1;
                }
            }
            if buf.len() - start > limits.line_max {
                return Err(HttpError::client(494, "request header line too long"));
            }
            Ok(())
        }
    }
}

/// Validates a host (nginx's `ngx_http_validate_host`): the span without the port,
/// and the port (0 when none; digits only, at most 65535, as nginx 1.31).
fn host_port(buf: &[u8], v: &[u8], why: &'static str) -> Result<(Option<Span>, u16), HttpError> {
    let bad = || HttpError::client(400, why);
    let mut end = v.len();
    if v.first() == Some(&b'[') {
        end = v.iter().position(|&c| c == b']').ok_or_else(bad)? + 1;
    } else if let Some(i) = v.iter().position(|&c| c == b':') {
        end = i;
    }
    let port = match &v[end..] {
        [] => 0,
        [b':', digits @ ..] if digits.iter().all(u8::is_ascii_digit) && digits.len() <= 5 => {
            let n = digits.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
            u16::try_from(n).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    Ok((Some(host_span(buf, &v[..end], bad)?), port))
}

fn host_span(buf: &[u8], host: &[u8], bad: impl Fn() -> HttpError) -> Result<Span, HttpError> {
    if host.first() == Some(&b'.') || host.windows(2).any(|w| w == b"..") {
        return Err(bad());
    }
    if host.iter().any(|&c| c == b'/' || c == b'\\' || c == 0 || c <= b' ') {
        return Err(bad());
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    Ok(Span::of(buf, host))
}

impl RequestHead {
    /// Marks again the fields whose names nginx calls invalid (`_` unless `underscores`,
    /// anything but letters, digits and `-`) to be dropped when `ignore_invalid`.
    pub fn judge_names(&mut self, buf: &[u8], underscores: bool, ignore_invalid: bool) {
        for h in &mut self.headers {
            h.skip = ignore_invalid && !valid_name(h.name.get(buf), underscores);
        }
    }
}

fn valid_name(name: &[u8], underscores: bool) -> bool {
    name.iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || (c == b'_' && underscores))
}

fn header_kind(name: &[u8]) -> HeaderKind {
    match name.len() {
        4 if name.eq_ignore_ascii_case(b"host") => HeaderKind::Host,
        14 if name.eq_ignore_ascii_case(b"content-length") => HeaderKind::ContentLength,
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => HeaderKind::TransferEncoding,
        10 if name.eq_ignore_ascii_case(b"connection") => HeaderKind::Connection,
        15 if name.eq_ignore_ascii_case(b"x-forwarded-for") => HeaderKind::XForwardedFor,
        _ if is_hop_by_hop(name) => HeaderKind::HopByHop,
        _ => HeaderKind::Other,
    }
}

/// Hop-by-hop headers other than Connection/Transfer-Encoding (RFC 9110 7.6.1).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const H: [&[u8]; 6] = [
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
    ];
    H.iter().any(|h| h.eq_ignore_ascii_case(name))
}

pub fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(v.len());
    let e = v.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |e| e + 1);
    &v[s..e]
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: HeadLimits = HeadLimits::sized(8192, 32768);

    fn parse(s: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        let mut h = RequestHead::default();
        parse_request(s, &mut h, L).map(|o| o.map(|_| h))
    }

    fn status(s: &[u8]) -> u16 {
        parse(s).unwrap_err().status
    }

    #[test]
    fn simple_get_spans() {
        let b = b"GET /a?b=1 HTTP/1.1\r\nHost: Example.com:8080\r\nX-Forwarded-For: 1.2.3.4\r\n\r\nrest";
        let h = parse(b).unwrap().unwrap();
        assert_eq!(h.target.get(b), b"/a?b=1");
        assert_eq!(h.host.unwrap().get(b), b"Example.com");
        assert_eq!(h.head_len, b.len() - 4);
        assert_eq!(h.method(), Method::Get);
        assert!(h.keep_alive);
        assert_eq!(h.body_kind(), BodyKind::None);
        assert_eq!(h.xff, Some(1));
    }

    #[test]
    fn partial_is_not_error() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(parse(b"GE").unwrap().is_none());
    }

    #[test]
    fn framing_rules() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: ../x\r\n\r\n"), 400);
        let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body_kind(), BodyKind::Chunked);
        let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body_kind(), BodyKind::Length(12));
    }

    #[test]
    fn limits() {
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 9000));
        assert_eq!(status(&long), 414);
        long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status(&long), 414);
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 9000));
        assert_eq!(status(&big), 494);
    }

    #[test]
    fn connection_tokens_and_versions() {
        let b = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nBad_Name: 1\r\n\r\n";
        let h = parse(b).unwrap().unwrap();
        assert!(!h.keep_alive);
        assert!(h.headers[2].skip);
        assert_eq!(h.headers[3].kind, HeaderKind::HopByHop);
        assert!(h.headers[4].skip);
        let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
    }

    /// Random and mutated inputs never panic and never yield spans outside the input.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let seeds: [&[u8]; 4] = [
            b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            b"POST http://h:1/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close, x\r\nx: 1\r\n\r\n",
            b"GET / HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
            b"",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"GETPOS /:\r\n\t\x00\x7f\xff,;=?#%HTP1.0chunkedHostContent-LengthTransfer-Encoding";
        for _ in 0..20_000 {
            let mut buf = seeds[(rnd() % 4) as usize].to_vec();
            for _ in 0..(rnd() % 8) {
                let pos = if buf.is_empty() {
                    0
                } else {
                    (rnd() as usize) % (buf.len() + 1)
                };
                let c = alphabet[(rnd() as usize) % alphabet.len()];
                match rnd() % 3 {
                    0 => buf.insert(pos, c),
                    1 if pos < buf.len() => buf[pos] = c,
                    _ if pos < buf.len() => {
                        buf.remove(pos);
                    }
                    _ => buf.push(c),
                }
            }
            let mut h = RequestHead::default();
            if let Ok(Some(())) = parse_request(&buf, &mut h, L) {
                assert!(h.head_len <= buf.len());
                for hd in &h.headers {
                    assert!(hd.name.end as usize <= buf.len() && hd.value.end as usize <= buf.len());
                }
                assert!(h.target.end as usize <= buf.len() && h.path.end as usize <= buf.len());
                let mut out = Vec::new();
                let _ = crate::http::uri::normalize(h.path.get(&buf), &mut out);
            }
        }
    }

    #[test]
    fn absolute_form() {
        let b = b"GET http://Other.org:81/p?q HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = parse(b).unwrap().unwrap();
        assert_eq!(h.host.unwrap().get(b), b"Other.org");
        assert_eq!(h.path.get(b), b"/p?q");
    }
}
#[cfg(test)]
mod connect_tests {
    use super::*;
    #[test]
    fn connect_authority() {
        let b = b"CONNECT 127.0.0.1:18129 HTTP/1.1\r\nHost: 127.0.0.1:18129\r\n\r\n";
        let mut h = RequestHead::default();
        let r = parse_request(b, &mut h, HeadLimits::sized(8192, 32768));
        println!("{r:?}");
        r.unwrap();
    }
}
