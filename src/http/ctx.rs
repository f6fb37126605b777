//! Variable values for one request: [`ReqCtx`] borrows the receive buffer and the
//! parsed head (spans), so `$http_x`, `$host`, `$request_uri`... are written straight
//! from the received bytes into whatever is being built (the upstream head, a log
//! line, a `return` body).

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use crate::config::model::{ProxyPass, Server};
use crate::config::vars::{Var, VarSource};

use crate::proto::h1::request::{HeaderKind, Method, RequestHead};

/// One upstream attempt, for `$upstream_addr`, `$upstream_status` and
/// `$upstream_response_time`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub addr: crate::net::Peer,
    /// 0 when no response head came (nginx logs 502/504 there).
    pub status: u16,
    pub connect_ms: u64,
    pub header_ms: u64,
    pub response_ms: u64,
}

/// What the response looked like, filled in as it is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub status: u16,
    pub body_bytes: u64,
    pub bytes: u64,
    /// The response head's size (nginx's `r->header_size`).
    pub head_bytes: u64,
}

pub struct ReqCtx<'a> {
    /// The connection's PROXY protocol header (`listen … proxy_protocol`).
    pub pp: Option<&'a crate::proto::proxy_protocol::Header>,
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    /// `$uri`.
    pub uri: &'a [u8],
    /// `$args` (without `?`).
    pub args: Option<&'a [u8]>,
    /// `$uri` is not the client's (an internal redirect or `try_files` changed it).
    pub uri_changed: bool,
    /// The request goes on as GET (an `error_page` redirect).
    pub as_get: bool,
    /// `$1`..`$9` and the variables `set` stored.
    pub rw: Option<&'a crate::http::proxy::RwState>,
    /// The location's root or alias, and its prefix (`$document_root`,
    /// `$request_filename`).
    pub doc_root: Option<(&'a crate::config::model::DocRoot, Option<&'a str>)>,
    /// The connection's own address when realip replaced `peer`.
    pub realip_orig: Option<SocketAddr>,
    /// The upstream's response head and ringx's own (kept when the configuration
    /// uses `$upstream_http_*` / `$sent_http_*`), the request id, when the
    /// connection began.
    pub heads: Option<&'a Heads>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub server: &'a Server,
    pub proxy: Option<&'a ProxyPass>,
    pub start: Instant,
    pub sent: Sent,
    pub attempts: &'a [Attempt],
    pub conn_id: u64,
    pub conn_requests: u64,
    pub request_length: u64,
    /// What the TLS handshake agreed; `None` on plain HTTP.
    pub tls: Option<&'a crate::net::tls::Info>,
    /// The request came over HTTP/2 (its head is written as HTTP/1.1 in `buf`).
    pub h2: bool,
    /// What `limit_req` and `limit_conn` decided (`$limit_req_status`, ...).
    pub limited: crate::limit::Decided,
}

/// What a request keeps for the variables that read response heads after the fact.
#[derive(Debug, Default)]
pub struct Heads {
    pub upstream: Vec<u8>,
    pub sent: Vec<u8>,
    /// `$request_id`: 32 hex digits, made when the request starts.
    pub request_id: [u8; 32],
    /// When the connection was accepted ([`now_ms`]).
    pub accepted_ms: u64,
}

/// Milliseconds since the process's first call (a compact timestamp for what
/// connections keep while idle).
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Heads {
    /// A fresh `$request_id`: 128 random bits in hex (a per-thread xorshift seeded
    /// from the clock and the thread; unique enough to trace a request, as nginx's).
    pub fn new_request_id(&mut self) {
        use std::cell::Cell;
        thread_local!(static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
            let here = &t as *const u64 as u64;
            (t ^ here.rotate_left(32)) | 1
        }));
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for half in 0..2 {
            let mut x = STATE.with(|s| {
                let mut x = s.get();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.set(x);
                x
            });
            for i in 0..16 {
                self.request_id[half * 16 + i] = HEX[(x & 15) as usize];
                x >>= 4;
            }
        }
    }
}

impl Heads {
    /// A header's value in a kept head (several joined by `, `, as nginx 1.23+).
    fn field(head: &[u8], name: &str, out: &mut Vec<u8>) -> bool {
        let mut found = false;
        for line in head.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            if !line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
                continue;
            }
            if found {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(crate::proto::h1::request::trim(&line[colon + 1..]));
            found = true;
        }
        found
    }
}

/// A request's protocol as nginx names it (`$server_protocol`, error lines).
pub fn protocol(h2: bool, minor: u8) -> &'static str {
    match (h2, minor) {
        (true, _) => "HTTP/2.0",
        (false, 0) => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

fn num(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

fn ms(out: &mut Vec<u8>, ms: u64) {
    let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
}

impl ReqCtx<'_> {
    /// A `$ssl_*` value: empty (not found) on plain HTTP or when the handshake had none.
    fn tls_str(&self, out: &mut Vec<u8>, f: impl Fn(&crate::net::tls::Info) -> Option<&str>) -> bool {
        match self.tls.and_then(f).filter(|v| !v.is_empty()) {
            Some(v) => {
                out.extend_from_slice(v.as_bytes());
                true
            }
            None => false,
        }
    }

    /// `$server_protocol`.
    fn protocol(&self) -> &'static [u8] {
        protocol(self.h2, self.head.minor).as_bytes()
    }

    fn host(&self, out: &mut Vec<u8>) {
        match self.head.host {
            Some(h) => out.extend(h.get(self.buf).iter().map(u8::to_ascii_lowercase)),
            None => out.extend_from_slice(self.server.primary_name.as_bytes()),
        }
    }

    fn header(&self, name: &str, out: &mut Vec<u8>) -> bool {
        let mut found = false;
        for h in &self.head.headers {
            if h.name.get(self.buf).eq_ignore_ascii_case(name.as_bytes()) {
                if found {
                    // Repeated headers are joined (nginx 1.23+: ", "; "; " for cookies).
                    out.extend_from_slice(if name == "cookie" { b"; " } else { b", " });
                }
                out.extend_from_slice(h.value.get(self.buf));
                found = true;
            }
        }
        found
    }

    /// A `map` variable: its source rendered, looked up, the value rendered. A map
    /// whose values lead back to itself ends (empty) after a few levels.
    fn map(&self, i: usize, out: &mut Vec<u8>) -> bool {
        thread_local!(static DEPTH: std::cell::Cell<u8> = const { std::cell::Cell::new(0) });
        let Some(m) = self.server.maps.get(i) else {
            return false;
        };
        let depth = DEPTH.with(|d| d.get());
        if depth >= 8 {
            return false;
        }
        DEPTH.with(|d| d.set(depth + 1));
        let mut val = Vec::new();
        m.source.render(self, &mut val);
        m.lookup(&val).render(self, out);
        DEPTH.with(|d| d.set(depth));
        true
    }

    /// A field of Squid's log format.
    fn squid(&self, f: crate::config::vars::SquidField, out: &mut Vec<u8>) {
        use crate::config::vars::SquidField;
        match f {
            SquidField::Elapsed => {
                let _ = write!(out, "{:>6}", self.start.elapsed().as_millis());
            }
            SquidField::Code => out.extend_from_slice(match (self.attempts.last(), self.sent.status) {
                (Some(_), _) if self.head.method() == Method::Connect => b"TCP_TUNNEL",
                (Some(_), _) => b"TCP_MISS",
                (None, 403 | 407) => b"TCP_DENIED",
                (None, 400) => b"NONE_NONE",
                (None, _) => b"TCP_MISS",
            }),
            SquidField::Url => out.extend_from_slice(self.head.target.get(self.buf)),
            SquidField::Hier => match self.attempts.last() {
                Some(a) => match &a.addr {
                    crate::net::Peer::Ip(ip) => drop(write!(out, "HIER_DIRECT/{}", ip.ip())),
                    unix => drop(write!(out, "HIER_DIRECT/{unix}")),
                },
                None => out.extend_from_slice(b"HIER_NONE/-"),
            },
        }
    }

    fn list(&self, out: &mut Vec<u8>, f: impl Fn(&Attempt, &mut Vec<u8>)) -> bool {
        if self.attempts.is_empty() {
            return false;
        }
        for (i, a) in self.attempts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            f(a, out);
        }
        true
    }

    fn arg(&self, name: &str, out: &mut Vec<u8>) -> bool {
        let Some(args) = self.args else { return false };
        for kv in args.split(|&c| c == b'&') {
            let (k, v) = match kv.iter().position(|&c| c == b'=') {
                Some(i) => (&kv[..i], &kv[i + 1..]),
                None => (kv, &b""[..]),
            };
            if k.eq_ignore_ascii_case(name.as_bytes()) {
                out.extend_from_slice(v);
                return true;
            }
        }
        false
    }

    fn cookie(&self, name: &str, out: &mut Vec<u8>) -> bool {
        for h in &self.head.headers {
            if !h.name.get(self.buf).eq_ignore_ascii_case(b"cookie") {
                continue;
            }
            for kv in h.value.get(self.buf).split(|&c| c == b';') {
                let kv = crate::proto::h1::request::trim(kv);
                if let Some(i) = kv.iter().position(|&c| c == b'=') {
                    if &kv[..i] == name.as_bytes() {
                        out.extend_from_slice(&kv[i + 1..]);
                        return true;
                    }
                }
            }
        }
        false
    }
}

impl VarSource for ReqCtx<'_> {
    fn write_var(&self, v: &Var, out: &mut Vec<u8>) -> bool {
        let b = self.buf;
        match v {
            Var::Host => self.host(out),
            Var::ProxyProtocol(f) => return proxy_protocol_var(self.pp, *f, out),
            Var::RequestPort => match self.head.port {
                0 => return false,
                p => num(out, p),
            },
            Var::IsRequestPort => match self.head.port {
                0 => return false,
                _ => out.push(b':'),
            },
            Var::LimitReqStatus => match self.limited.req {
                Some(s) => out.extend_from_slice(s.as_str().as_bytes()),
                None => return false,
            },
            Var::LimitConnStatus => match self.limited.conn {
                Some(s) => out.extend_from_slice(s.as_str().as_bytes()),
                None => return false,
            },
            Var::Http(name) => return self.header(name, out),
            Var::UpstreamHttp(n) => return self.heads.is_some_and(|h| Heads::field(&h.upstream, n, out)),
            Var::SentHttp(n) => return self.heads.is_some_and(|h| Heads::field(&h.sent, n, out)),
            Var::RequestId => match self.heads {
                Some(h) => out.extend_from_slice(&h.request_id),
                None => return false,
            },
            Var::ConnectionTime => match self.heads {
                Some(h) => ms(out, now_ms().saturating_sub(h.accepted_ms)),
                None => return false,
            },
            Var::Map(i) => return self.map(*i, out),
            Var::DocumentRoot => match self.doc_root {
                Some((d, _)) => match &d.dynamic {
                    Some(t) => t.render(self, out),
                    None => out.extend_from_slice(d.path.as_bytes()),
                },
                None => return false,
            },
            Var::RealpathRoot => match self.doc_root.and_then(|(d, _)| std::fs::canonicalize(&d.path).ok()) {
                Some(p) => out.extend_from_slice(p.as_os_str().as_encoded_bytes()),
                None => return false,
            },
            Var::RequestFilename => match self.doc_root {
                Some((d, prefix)) => d.file_for(self, prefix, self.uri, out),
                None => return false,
            },
            Var::User(i) => match self.rw.and_then(|rw| rw.var(*i)) {
                Some(v) => out.extend_from_slice(v),
                None => return false,
            },
            Var::Named(i) => match self.rw.and_then(|rw| rw.named(*i)) {
                Some(v) => out.extend_from_slice(v),
                None => return false,
            },
            Var::Capture(n) => match self.rw.and_then(|rw| rw.capture(*n)) {
                Some(v) => out.extend_from_slice(v),
                None => return false,
            },
            Var::Arg(a) => return self.arg(a, out),
            Var::Cookie(c) => return self.cookie(c, out),
            Var::RemoteAddr => num(out, self.peer.ip()),
            Var::RemotePort if self.peer.port() == 0 => return false,
            Var::RemotePort => num(out, self.peer.port()),
            Var::RealipRemoteAddr => num(out, self.realip_orig.unwrap_or(self.peer).ip()),
            Var::RealipRemotePort => num(out, self.realip_orig.unwrap_or(self.peer).port()),
            Var::RemoteUser => {
                let proxy = crate::http::auth::proxy_auth(self.head, self.server.allow_connect);
                match crate::http::auth::credentials(self.head, self.buf, proxy) {
                    Some((user, _)) => out.extend_from_slice(&user),
                    None => return false,
                }
            }
            Var::BinaryRemoteAddr => match self.peer.ip() {
                std::net::IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                std::net::IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            },
            Var::ProxyAddXForwardedFor => {
                if self.head.xff.is_some() {
                    let mut first = true;
                    for h in self.head.headers.iter().filter(|h| h.kind == HeaderKind::XForwardedFor) {
                        if !first {
                            out.extend_from_slice(b", ");
                        }
                        out.extend_from_slice(h.value.get(b));
                        first = false;
                    }
                    out.extend_from_slice(b", ");
                }
                num(out, self.peer.ip());
            }
            Var::Scheme => out.extend_from_slice(if self.tls.is_some() { b"https" } else { b"http" }),
            Var::Https => {
                if self.tls.is_some() {
                    out.extend_from_slice(b"on");
                }
            }
            Var::SslProtocol => return self.tls_str(out, |t| Some(t.protocol)),
            Var::SslCipher => return self.tls_str(out, |t| Some(t.cipher)),
            Var::SslServerName => return self.tls_str(out, |t| t.server_name.as_deref()),
            Var::SslSessionReused => return self.tls_str(out, |t| Some(if t.reused { "r" } else { "." })),
            Var::SslAlpnProtocol => return self.tls_str(out, |t| t.alpn.as_deref()),
            Var::SslClientVerify => {
                return self.tls_str(out, |t| Some(t.client.as_ref().map_or("NONE", |c| c.verify.as_str())))
            }
            Var::SslClientSDn => return self.tls_str(out, |t| t.client.as_ref().map(|c| c.s_dn.as_str())),
            Var::SslClientIDn => return self.tls_str(out, |t| t.client.as_ref().map(|c| c.i_dn.as_str())),
            Var::SslClientSerial => return self.tls_str(out, |t| t.client.as_ref().map(|c| c.serial.as_str())),
            Var::ServerName => out.extend_from_slice(self.server.primary_name.as_bytes()),
            Var::ServerPort => num(out, self.local.port()),
            Var::ServerAddr => num(out, self.local.ip()),
            Var::ServerProtocol => out.extend_from_slice(self.protocol()),
            Var::RequestUri => out.extend_from_slice(self.head.path.get(b)),
            Var::Uri => out.extend_from_slice(self.uri),
            Var::Args => match self.args {
                Some(a) => out.extend_from_slice(a),
                None => return false,
            },
            Var::IsArgs => {
                if self.args.is_some() {
                    out.push(b'?');
                }
            }
            Var::Request => {
                if self.head.method_span.is_empty() {
                    return false;
                }
                out.extend_from_slice(self.head.method_span.get(b));
                out.push(b' ');
                out.extend_from_slice(self.head.target.get(b));
                out.push(b' ');
                out.extend_from_slice(self.protocol());
            }
            // An error page's redirect goes on as GET (nginx sets method_name).
            Var::RequestMethod if self.as_get && self.head.method() != crate::proto::h1::request::Method::Head => {
                out.extend_from_slice(b"GET")
            }
            Var::RequestMethod => out.extend_from_slice(self.head.method_span.get(b)),
            Var::RequestLength => num(out, self.request_length),
            Var::RequestTime => ms(out, self.start.elapsed().as_millis() as u64),
            Var::ContentLength => return self.header("content-length", out),
            Var::ContentType => return self.header("content-type", out),
            Var::ProxyHost => match self.proxy {
                Some(p) => out.extend_from_slice(p.proxy_host.as_bytes()),
                None => return false,
            },
            Var::ProxyPort => match self.proxy {
                Some(p) => num(out, p.proxy_port),
                None => return false,
            },
            Var::Status => {
                let _ = write!(out, "{:03}", super::status::wire_code(self.sent.status));
            }
            Var::BodyBytesSent => num(out, self.sent.body_bytes),
            Var::BytesSent => num(out, self.sent.bytes),
            Var::TimeLocal | Var::TimeIso8601 | Var::Msec | Var::Pid | Var::Hostname => {
                return common(v, out);
            }
            Var::BytesReceived
            | Var::SessionTime
            | Var::Protocol
            | Var::UpstreamBytesSent
            | Var::UpstreamBytesReceived => return false,
            Var::Connection => num(out, self.conn_id),
            Var::ConnectionRequests => num(out, self.conn_requests),
            Var::UpstreamAddr => return self.list(out, |a, o| num(o, &a.addr)),
            Var::UpstreamStatus => {
                return self.list(out, |a, o| if a.status == 0 { o.push(b'-') } else { num(o, a.status) })
            }
            Var::UpstreamResponseTime => return self.list(out, |a, o| ms(o, a.response_ms)),
            Var::UpstreamConnectTime => return self.list(out, |a, o| ms(o, a.connect_ms)),
            Var::UpstreamHeaderTime => return self.list(out, |a, o| ms(o, a.header_ms)),
            Var::NginxVersion | Var::RingxVersion | Var::Connections(_) => return common(v, out),
            Var::Squid(f) => self.squid(*f, out),
        }
        true
    }
}

/// `$proxy_protocol_addr`, `_port`, `_server_addr`, `_server_port` (also
/// stream's): not found without a header, empty for v1 UNKNOWN and v2 LOCAL.
pub fn proxy_protocol_var(
    pp: Option<&crate::proto::proxy_protocol::Header>,
    f: crate::config::vars::PpField,
    out: &mut Vec<u8>,
) -> bool {
    use crate::config::vars::PpField;
    let Some(h) = pp else {
        return false;
    };
    let a = match f {
        PpField::Addr | PpField::Port => h.src,
        PpField::ServerAddr | PpField::ServerPort => h.dst,
    };
    if let Some(a) = a {
        match f {
            PpField::Addr | PpField::ServerAddr => num(out, a.ip()),
            PpField::Port | PpField::ServerPort => num(out, a.port()),
        }
    }
    true
}

/// The variables that do not depend on a request or session (shared with
/// `stream`'s): the time, the process, the versions. False for any other.
pub fn common(v: &Var, out: &mut Vec<u8>) -> bool {
    match v {
        Var::Connections(k) => {
            use crate::config::vars::ConnCount;
            let t = crate::observe::counters::totals();
            num(
                out,
                match k {
                    ConnCount::Active => t.active,
                    ConnCount::Reading => t.reading,
                    ConnCount::Writing => t.writing,
                    ConnCount::Waiting => t.waiting,
                },
            )
        }
        Var::TimeLocal => {
            // As nginx: the time the variable is evaluated (the log line is written).
            let _ = write!(out, "{}", chrono::Local::now().format("%d/%b/%Y:%H:%M:%S %z"));
        }
        Var::TimeIso8601 => {
            let _ = write!(out, "{}", chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%:z"));
        }
        Var::Msec => {
            let d = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
        }
        Var::Pid => num(out, std::process::id()),
        Var::Hostname => out.extend_from_slice(crate::hostname().as_bytes()),
        Var::NginxVersion => out.extend_from_slice(b"1.22.1"),
        Var::RingxVersion => out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes()),
        _ => return false,
    }
    true
}
