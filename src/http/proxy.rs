//! The per-connection driver: the only HTTP code that does I/O. It reads, asks the
//! sans-io layer ([`crate::proto::h1`]) what the bytes mean and what to do, and
//! writes; every failed attempt is an [`super::fail::Fail`].
//!
//! Data path for one client connection (all on the worker that accepted it):
//!
//! 1. parked on readiness while there is nothing to read (a small `Conn`); active,
//!    boxed, with its buffers, while there is: read until
//!    [`crate::proto::h1::request::parse_request`] has a head (`client_header_timeout`);
//! 2. route: server by address and Host, location by `$uri` ([`super::route`]);
//! 3. `return`, an error page, or the proxy phases:
//!    - body plan: Content-Length, chunked (re-encoded), or read whole first for an
//!      HTTP/1.0 upstream ([`super::spool`]);
//!    - pick a server ([`crate::balance`], a guard that always gives the slot back),
//!      take an idle keep-alive connection or connect (`proxy_connect_timeout`);
//!    - write the upstream head ([`super::forward`]) with the body bytes already
//!      received in the same write; stream the rest while watching the upstream for an
//!      early response (full duplex);
//!    - read the response head (`proxy_read_timeout`; the client watched for a close),
//!      write the client head into the space just before the response body inside the
//!      upstream buffer, so head and first body bytes leave in one write; stream the
//!      rest, re-framing only where the two sides need it
//!      ([`crate::proto::h1::framing::ClientFraming`]); a 101 joins the two
//!      connections ([`crate::net::tunnel`]);
//!    - failures before any response byte go to the next server when
//!      `proxy_next_upstream` allows and the body can still be replayed;
//! 4. one access-log line; then keep-alive (pipelined bytes stay in the buffer) or
//!    close (lingering when the client may still be sending).
//!
//! Bodies are copied at most once per direction (the part of a request body that
//! arrived with the head is copied behind the upstream head); everything else moves
//! in the buffers the kernel filled. Peer input never panics: every malformed input is
//! an `HttpError` that becomes a status and a log line.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::model::{AddHeader, Lingering, LocConf, LocMatch, ProxyPass, Return, Server, Upstream, UpstreamTls};
use crate::config::vars::VarSource;
use crate::net::pool::UpConn;
use crate::net::{tls, tunnel, Deadline, IoFail, Peer, Soon, Stream};
use crate::observe::log;
use crate::runtime::worker::{Snapshot, Worker};

use super::ctx::{Attempt, ReqCtx, Sent};
use super::downstream::Downstream;
use super::fail::{Fail, FailKind, Phase};
use super::forward::{write_request_head, UpBody};
use super::spool::Spool;
use super::status::{closes_connection, error_page, reason, wire_code, write_http_date};
use super::uri::normalize;
use super::{route, HttpError};
use crate::proto::gzip;

mod access;
mod autoindex;
mod backlog;
mod connect;
mod cookie;
mod files;
mod limits;
mod pace;
mod realip;
mod rewrite;
mod rules;
mod subrequest;
mod target;

use crate::proto::h1::body::{encode_chunk_header, reencode, ChunkedDecoder, CHUNK_HEADER_ROOM};
use crate::proto::h1::framing::{self, ClientFraming, KeepAliveLimits};
use crate::proto::h1::request::{parse_request, BodyKind, HeadLimits, Method, RequestHead, Span};
use crate::proto::h1::response::{parse_response, RespBody, ResponseHead};
pub use rewrite::RwState;

const CLIENT_BUF: usize = 4096;
/// How long ringx waits on an upstream's response head before it also watches the
/// client for a close.
const CLIENT_WATCH_AFTER: Duration = Duration::from_millis(500);
/// For a wait bounded by the other branch of its select.
const NO_DEADLINE: Duration = Duration::from_secs(24 * 3600);
/// Upstream buffer at first. A connection whose response did not fit grows its buffer
/// to the response's size (up to [`UP_BUF_LARGE`]) and keeps it while kept alive, so
/// steady large responses take one read while many small ones hold little memory.
const UP_BUF: usize = 8 * 1024;
/// Upstream buffer while relaying a large body (fewer, larger reads).
const UP_BUF_LARGE: usize = 64 * 1024;
/// Request bodies up to this size are read whole before going upstream (as nginx's
/// client_body_buffer_size): such a request can be retried and use a kept-alive
/// upstream connection. Larger ones stream.
const SMALL_BODY: usize = 64 * 1024;
/// Most bytes read with an upstream response head (body bytes that come with it
/// leave in the client's first write).
const UP_READ_AHEAD: usize = 32 * 1024;
/// Room kept in front of an upstream response for the client head.
const RESERVE: usize = 512;

/// What a client connection keeps while it waits for its next request: its socket
/// and a few numbers. The rest (receive buffer, parsed head, per-request vectors,
/// the request's future) belongs to [`Client`], which exists only while there are
/// bytes to work on; an idle keep-alive connection is a small task, as in nginx,
/// where it keeps little more than its `ngx_connection_t`.
struct Conn {
    w: Rc<Worker>,
    stream: Stream,
    peer: SocketAddr,
    local: SocketAddr,
    requests: u64,
    id: u64,
    keepalive_timeout: Duration,
    /// When the wait for the next request ends: `client_header_timeout` from the
    /// accept for the first one (nginx arms it once: the whole first head is due
    /// then too), `keepalive_timeout` after a response.
    idle_until: Instant,
    /// Plain HTTP arrived on a TLS address: the request is answered with nginx's 400.
    plain_on_tls: bool,
    /// When it was accepted (`ctx::now_ms`), for `$connection_time`.
    accepted_ms: u64,
}

/// A connection's per-request allocations, kept in the worker's pool while the
/// connection is idle (so a busy keep-alive connection does not reallocate them).
#[derive(Default)]
pub struct Scratch {
    head: RequestHead,
    uri_norm: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    resp: ResponseHead,
    attempts: Vec<Attempt>,
}

impl Scratch {
    /// Whether it is small enough to keep in the pool.
    pub fn reusable(&self) -> bool {
        self.out.capacity() <= 64 * 1024 && self.scratch.capacity() <= 64 * 1024
    }
}

struct Client {
    w: Rc<Worker>,
    stream: Downstream,
    peer: SocketAddr,
    local: SocketAddr,
    buf: Vec<u8>,
    head: RequestHead,
    uri_norm: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    resp: ResponseHead,
    requests: u64,
    id: u64,
    attempts: Vec<Attempt>,
    /// Bytes of `buf` that belong to the current request (head and body).
    consumed: usize,
    keepalive_timeout: Duration,
    first_deadline: Instant,
    /// Unread request bytes may follow: close with a lingering close, so the client
    /// reads the response instead of a reset.
    linger: Option<Arc<LocConf>>,
    plain_on_tls: bool,
    /// `$args` after an internal redirect that set them.
    args_buf: Vec<u8>,
    /// Captures and `set` variables (nginx's rewrite module).
    rw: rewrite::RwState,
    /// The connection's own address while realip replaced `peer` for a request.
    realip_orig: Option<SocketAddr>,
    /// Response heads and the request id, for the variables that read them.
    heads: super::ctx::Heads,
    /// What the configuration's variables need kept (`config::vars::needs`).
    needs: u8,
    /// `proxy_intercept_errors`: the upstream's status, answered by `error_page`
    /// instead of relayed.
    intercepted: Option<u16>,
    /// `limit_rate` of the response being sent.
    pace: Option<pace::Pace>,
    /// An upstream's `X-Accel-Redirect`, to follow instead of relaying its response.
    accel: Option<Accel>,
    /// `proxy_buffering on`: what the client has not taken yet of a response.
    backlog: std::cell::RefCell<Option<Box<backlog::Backlog>>>,
}

/// nginx's X-Accel-Redirect: where to go, and what of the upstream's head the final
/// response keeps (`Set-Cookie`, `Content-Disposition`, `Cache-Control`, `Expires`;
/// `Content-Type` for a file the redirect serves).
struct Accel {
    to: Vec<u8>,
    headers: Vec<u8>,
    content_type: Option<String>,
}

/// The `proxy_pass` a request goes through: its location's, or one made for it
/// from a URL with variables.
enum PassRef<'s> {
    Conf(&'s ProxyPass),
    Made(Rc<ProxyPass>),
}

impl std::ops::Deref for PassRef<'_> {
    type Target = ProxyPass;
    fn deref(&self) -> &ProxyPass {
        match self {
            PassRef::Conf(p) => p,
            PassRef::Made(p) => p,
        }
    }
}

/// Per-request facts that outlive borrows of the buffer.
struct Req<'s> {
    server: &'s Server,
    conf: &'s Arc<LocConf>,
    loc_prefix: Option<&'s str>,
    uri_normalized: bool,
    uri: Span,
    args: Option<Span>,
    start: Instant,
    sent: Sent,
    proxy: Option<PassRef<'s>>,
    /// `$uri` was changed by an internal redirect or `try_files` (it is then in
    /// `Client::uri_norm`, and the upstream gets it instead of the client's URI).
    uri_changed: bool,
    /// `$args` were changed (they are then in `Client::args_buf`).
    args_owned: bool,
    /// Internal redirects so far (nginx allows 10).
    redirects: u8,
    /// An `error_page` was followed (once, unless `recursive_error_pages`).
    error_page_used: bool,
    /// The status the response goes out with whatever its handler says (nginx's
    /// `err_status`: the error an `error_page` redirect answers, or its `=CODE`).
    err_status: Option<u16>,
    /// Served as GET (an `error_page` redirect of a request that was not HEAD).
    as_get: bool,
    /// The connection closes after this request whatever else allows (an error
    /// nginx closes after, answered through `error_page`).
    no_keep: bool,
    /// The `WWW-Authenticate` / `Proxy-Authenticate` line of a refused
    /// authentication (written with the response, as nginx's headers_out).
    authenticate: Option<Vec<u8>>,
    /// What `limit_req` / `limit_conn` decided (once per request, as nginx).
    limited: crate::limit::Decided,
    /// This request's counts in `limit_conn` zones, released when it ends.
    conns_held: Vec<crate::limit::ConnHeld>,
    /// `gzip_static` found a `.gz`: the response varies by Accept-Encoding.
    gzip_vary: bool,
    /// Kept from an upstream that answered with X-Accel-Redirect: its header lines
    /// for the final response, and its Content-Type for a file.
    accel_headers: Vec<u8>,
    accel_type: Option<String>,
}

impl Client {
    /// Writes `buf[start..end]` of the response to the client, paced by
    /// `limit_rate` when it applies (see [`pace`]).
    async fn send_range(&self, buf: Vec<u8>, start: usize, end: usize, t: Duration) -> Result<Vec<u8>, IoFail> {
        pace::wait(self).await;
        self.stream.write_range(buf, start, end, t).await
    }

    /// [`Client::send_range`] of the whole buffer.
    async fn send_all(&self, buf: Vec<u8>, t: Duration) -> Result<Vec<u8>, IoFail> {
        let end = buf.len();
        self.send_range(buf, 0, end, t).await
    }

    fn new(conn: Conn, s: Scratch) -> Client {
        let mut c = Client::bare(conn.w, Downstream::H1(conn.stream), conn.peer, conn.local, conn.id, s);
        c.requests = conn.requests;
        c.keepalive_timeout = conn.keepalive_timeout;
        c.first_deadline = conn.idle_until;
        c.plain_on_tls = conn.plain_on_tls;
        c.heads.accepted_ms = conn.accepted_ms;
        c
    }

    /// A client with no request served yet.
    fn bare(w: Rc<Worker>, stream: Downstream, peer: SocketAddr, local: SocketAddr, id: u64, s: Scratch) -> Client {
        Client {
            w,
            stream,
            peer,
            local,
            buf: Vec::new(),
            head: s.head,
            uri_norm: s.uri_norm,
            out: s.out,
            scratch: s.scratch,
            resp: s.resp,
            requests: 0,
            id,
            attempts: s.attempts,
            consumed: 0,
            keepalive_timeout: Duration::ZERO,
            first_deadline: Instant::now(),
            linger: None,
            plain_on_tls: false,
            args_buf: Vec::new(),
            rw: rewrite::RwState::default(),
            realip_orig: None,
            heads: super::ctx::Heads {
                accepted_ms: super::ctx::now_ms(),
                ..Default::default()
            },
            needs: 0,
            intercepted: None,
            pace: None,
            accel: None,
            backlog: Default::default(),
        }
    }

    /// Keeps a response head for `$sent_http_*` / `$upstream_http_*` when the
    /// configuration uses them.
    fn keep_head(&mut self, bit: u8, head: &[u8]) {
        if self.needs & bit == 0 {
            return;
        }
        let kept = if bit == crate::config::vars::needs::UPSTREAM_HEAD {
            &mut self.heads.upstream
        } else {
            &mut self.heads.sent
        };
        kept.clear();
        kept.extend_from_slice(head);
    }

    /// The per-request allocations back to the worker's pool; the client stream.
    fn recycle(self) -> Downstream {
        self.w.put_buf(self.buf);
        self.w.put_scratch(Scratch {
            head: self.head,
            uri_norm: self.uri_norm,
            out: self.out,
            scratch: self.scratch,
            resp: self.resp,
            attempts: self.attempts,
        });
        self.stream
    }

    /// Back to the idle form (an HTTP/1 connection).
    fn into_conn(self) -> Option<Conn> {
        let (w, peer, local, requests, id, ka, plain) = (
            self.w.clone(),
            self.peer,
            self.local,
            self.requests,
            self.id,
            self.keepalive_timeout,
            self.plain_on_tls,
        );
        let accepted_ms = self.heads.accepted_ms;
        let Downstream::H1(stream) = self.recycle() else {
            return None;
        };
        Some(Conn {
            idle_until: Instant::now() + ka,
            w,
            stream,
            peer,
            local,
            requests,
            id,
            keepalive_timeout: ka,
            plain_on_tls: plain,
            accepted_ms,
        })
    }

    fn ctx<'a>(&'a self, r: &'a Req<'_>) -> ReqCtx<'a> {
        ReqCtx {
            buf: &self.buf,
            head: &self.head,
            uri: if r.uri_normalized {
                &self.uri_norm
            } else {
                r.uri.get(&self.buf)
            },
            args: if r.args_owned {
                Some(&self.args_buf[..]).filter(|a| !a.is_empty())
            } else {
                r.args.map(|a| a.get(&self.buf))
            },
            uri_changed: r.uri_changed,
            as_get: r.as_get,
            rw: Some(&self.rw),
            doc_root: Some((&r.conf.doc_root, r.loc_prefix)),
            realip_orig: self.realip_orig,
            heads: Some(&self.heads),
            peer: self.peer,
            local: self.local,
            server: r.server,
            proxy: r.proxy.as_deref(),
            start: r.start,
            sent: r.sent,
            attempts: &self.attempts,
            conn_id: self.id,
            conn_requests: self.requests,
            request_length: self.consumed as u64,
            tls: self.stream.tls_info(),
            pp: self.stream.proxy_header(),
            h2: self.stream.is_h2(),
            limited: r.limited,
        }
    }
}

enum Head {
    Ready,
    Closed,
    Bad(HttpError),
}

/// A new client connection as its task holds it: once, in place (the arguments of
/// an `async fn` are kept twice in its future, and this is what every idle
/// connection keeps).
struct Accepted {
    _guard: crate::runtime::worker::ConnGuard,
    /// `None` once handed over (to its active phase, or to HTTP/2).
    conn: Option<Conn>,
    /// Ends its idle waits ([`park`]); kept here, not in the `Conn`, since only an
    /// HTTP/1 connection's task parks (an HTTP/2 stream's `Client` has no use for one).
    wake: Rc<crate::runtime::idle::Wake>,
    ssl: bool,
    proxy_protocol: bool,
    deferred: bool,
}

/// Serves one client connection until it closes: parked on readiness while it has
/// nothing to do, active (boxed, with its buffers) while it has.
pub fn serve(
    guard: crate::runtime::worker::ConnGuard,
    stream: crate::net::Tcp,
    peer: SocketAddr,
    local: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    let mut accepted = Accepted::new(guard, stream, peer, local);
    async move {
        if let Some(a) = accepted.as_mut() {
            a.run().await;
        }
    }
}

impl Accepted {
    fn new(
        guard: crate::runtime::worker::ConnGuard,
        stream: crate::net::Tcp,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Option<Accepted> {
        let w = guard.worker();
        let snap = w.snapshot();
        let group = snap.group(local)?;
        let default = &snap.cfg.http.servers[group.default_server];
        let conn = Conn {
            w: w.clone(),
            stream: Stream::new(stream),
            plain_on_tls: false,
            accepted_ms: super::ctx::now_ms(),
            peer,
            local,
            requests: 0,
            id: w.next_conn_id(),
            keepalive_timeout: default.conf.keepalive_timeout,
            idle_until: Instant::now() + default.client_header_timeout,
        };
        Some(Accepted {
            _guard: guard,
            conn: Some(conn),
            wake: Rc::default(),
            ssl: group.ssl,
            proxy_protocol: group.proxy_protocol,
            deferred: group.deferred,
        })
    }

    async fn run(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // The PROXY header comes first, before TLS (nginx reads it within the first
        // request's client_header_timeout). Boxed: its state would size every
        // connection's task.
        if self.proxy_protocol
            && !Box::pin(conn.stream.accept_proxy_header(conn.idle_until, conn.peer, conn.local)).await
        {
            return;
        }
        if self.ssl && !self.tls().await {
            return;
        }
        let (c, pre) = match self.http1().await {
            Some(h2) => h2,
            None => return,
        };
        Box::pin(serve_h2(c, pre)).await
    }

    /// A TLS connection waits for its first byte parked too (nginx keeps it reusable
    /// until then): worker_connections can reclaim it and a graceful quit closes it.
    /// False: it is done (HTTP/2 chosen by ALPN ends here too).
    async fn tls(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        if !park(conn, &self.wake).await {
            if Instant::now() >= conn.idle_until {
                log::info(format_args!(
                    "client timed out (110: Connection timed out) while SSL handshaking, client: {}, server: {}",
                    conn.peer.ip(),
                    conn.local
                ));
            }
            return false;
        }
        // Boxed: the handshake's state is most of a TLS connection's future, and an
        // inline one would size every plain connection's task too.
        if !Box::pin(handshake(conn)).await {
            return false;
        }
        if conn.stream.tls_info().is_none_or(|t| t.alpn.as_deref() != Some("h2")) {
            return true;
        }
        if let Some(c) = self.conn.take() {
            Box::pin(serve_h2(c, Vec::new())).await;
        }
        false
    }

    /// HTTP/1 requests until the connection closes; `Some`: it began with the
    /// HTTP/2 preface (these bytes of it read).
    async fn http1(&mut self) -> Option<(Conn, Vec<u8>)> {
        // A new plain connection's first bytes are read at once where that costs no
        // more than the wait it may spare: on epoll (a read in place of the confirming
        // peek) and, on io_uring, where `deferred` made the kernel wait for them
        // (elsewhere they mostly come after the accept, and a POLL_ADD is cheaper than
        // a read that finds nothing and then the POLL_ADD). Nothing yet: the buffer
        // goes back and the connection parks.
        let first = self.conn.as_ref()?;
        let mut pre = if self.ssl || (first.stream.is_uring() && !self.deferred) {
            None
        } else {
            read_now(first)
        };
        loop {
            if pre.is_none() && !park(self.conn.as_ref()?, &self.wake).await {
                return None;
            }
            // Moved into the boxed phase, so the task's future holds it only here.
            let conn = self.conn.take()?;
            match Box::pin(active(conn, pre.take())).await {
                Next::Idle(c) => self.conn = Some(c),
                Next::Done => return None,
                Next::H2(c, pre) => return Some((c, pre)),
            }
        }
    }
}

/// A non-blocking read into a pooled buffer: the bytes, or `None` (nothing yet,
/// closed, or failed: the park that follows finds out which) with the buffer given
/// back.
fn read_now(conn: &Conn) -> Option<Vec<u8>> {
    let mut buf = conn.w.take_buf(CLIENT_BUF);
    match conn.stream.try_read_now(&mut buf, CLIENT_BUF) {
        Ok(n) if n > 0 => Some(buf),
        _ => {
            conn.w.put_buf(buf);
            None
        }
    }
}

/// What a connection does after its active phase.
enum Next {
    /// Waits for its next request.
    Idle(Conn),
    Done,
    /// It began with the HTTP/2 preface (these bytes of it are read).
    H2(Conn, Vec<u8>),
}

/// An HTTP/2 connection ([`super::h2`]), with the limits of its address's default
/// server.
async fn serve_h2(conn: Conn, pre: Vec<u8>) {
    let snap = conn.w.snapshot();
    let Some(group) = snap.group(conn.local) else {
        return;
    };
    let default = &snap.cfg.http.servers[group.default_server];
    let lim = super::h2::Limits {
        max_streams: default.h2_max_streams,
        header_list: (default.large_header_size * default.large_header_count).min(u32::MAX as usize) as u32,
        keepalive_timeout: default.conf.keepalive_timeout,
        keepalive_requests: default.conf.keepalive_requests,
        handshake_until: conn.idle_until.max(Instant::now() + default.client_header_timeout),
        lingering_time: default.conf.lingering_time,
        lingering_timeout: default.conf.lingering_timeout,
    };
    drop(snap);
    let info = super::h2::ConnInfo {
        w: conn.w.clone(),
        peer: conn.peer,
        local: conn.local,
        id: conn.id,
        tls: conn.stream.tls_info().cloned(),
        pp: conn.stream.proxy_header().cloned().map(Rc::new),
    };
    super::h2::serve(conn.stream, pre, info, lim).await;
}

/// Serves one HTTP/2 stream: its request head, written as HTTP/1.1, is in `head`.
pub(super) async fn serve_h2_stream(
    w: Rc<Worker>,
    pipe: super::h2::Pipe,
    head: Vec<u8>,
    peer: SocketAddr,
    local: SocketAddr,
    id: u64,
) {
    let watch = pipe.watch();
    let scratch = w.take_scratch();
    let mut c = Client::bare(w.clone(), Downstream::H2(Box::new(pipe)), peer, local, id, scratch);
    c.buf = head;
    // A stream the client resets is given up at once, whatever phase it is in (an
    // HTTP/1 client's close is watched only while the upstream thinks).
    let snap = w.snapshot();
    if let Some(group) = snap.group(local) {
        let reset = tokio::select! {
            biased;
            _ = serve_one(&snap, group, &mut c) => false,
            _ = watch.closed() => true,
        };
        if reset {
            log_reset(&snap, group, &mut c);
        }
    }
    drop(snap);
    c.recycle();
}

/// The TLS handshake of a connection to a TLS address, bounded by the default
/// server's `client_header_timeout` (nginx arms that one timer at the accept for the
/// handshake and the whole first head); the certificate is that of the server the
/// SNI name chooses, else the default server's, as nginx. Plain HTTP goes on, marked.
/// False: the connection is done (logged).
async fn handshake(conn: &mut Conn) -> bool {
    let snap = conn.w.snapshot();
    let Some(group) = snap.group(conn.local) else {
        return false;
    };
    let http = &snap.cfg.http;
    let default = &http.servers[group.default_server];
    // The server the SNI name chooses (nginx), or the default one without a certificate.
    let chosen = |sni: Option<&str>| {
        let name = sni.map(|n| n.strip_suffix('.').unwrap_or(n).as_bytes());
        let s = route::find_server(http, group, name);
        if s.tls.is_none() {
            default
        } else {
            s
        }
    };
    let choose = |sni: Option<&str>| {
        let name = sni.map(|n| n.strip_suffix('.').unwrap_or(n).as_bytes());
        if route::find_server(http, group, name).reject_handshake {
            return Err("handshake rejected");
        }
        let s = chosen(sni);
        // ALPN offers h2 where the server chosen by SNI has it (nginx).
        let h2 = group.http2 || route::find_server(http, group, name).http2;
        if h2 { s.tls_h2.clone() } else { s.tls.clone() }.ok_or("handshake rejected")
    };
    let tcp = conn.stream.tcp();
    let fail = match tokio::time::timeout_at(conn.idle_until.into(), tls::accept(tcp, &choose)).await {
        Ok(Ok(tls::First::Tls(mut t))) => {
            if let Some(auth) = &chosen(t.info.server_name.as_deref()).client_auth {
                let cert = crate::config::tls::verify_client(auth, &t.peer_chain());
                t.info.client = Some(Box::new(cert));
            }
            conn.stream.start_tls(t);
            return true;
        }
        Ok(Ok(tls::First::Plain)) => {
            conn.plain_on_tls = true;
            return true;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "client timed out (110: Connection timed out)".to_string(),
    };
    tcp.shutdown(Shutdown::Both);
    log::info(format_args!(
        "{fail} while SSL handshaking, client: {}, server: {}",
        conn.peer.ip(),
        conn.local
    ));
    false
}

/// Waits for the next request's first bytes holding no buffer, until `idle_until`;
/// false (the connection shut down) on that deadline, on graceful quit, or when the
/// worker needs the slot for a new client (`worker_connections`).
async fn park(conn: &Conn, wake: &Rc<crate::runtime::idle::Wake>) -> bool {
    let w = &conn.w;
    if conn.idle_until <= Instant::now() || w.quitting.get() {
        conn.stream.shutdown(Shutdown::Both);
        return false;
    }
    // The wait's end is the worker's idle timer firing `wake` (see
    // [`crate::runtime::idle`]), not the stream's deadline: a keep-alive timeout is a
    // normal close (TLS: close_notify), not a timed-out operation.
    wake.reset();
    let key = w.idle.borrow_mut().enter(conn.idle_until, wake.clone());
    let ready = tokio::select! {
        biased;
        r = conn.stream.wait_readable() => r.is_ok(),
        _ = wake.fired() => false,
    };
    w.idle.borrow_mut().leave(key);
    if !ready {
        conn.stream.shutdown(Shutdown::Both);
    }
    ready
}

/// Serves requests while bytes keep coming; the connection back in its idle form
/// when none are left.
/// `pre`: the first bytes, already read ([`read_now`]).
async fn active(conn: Conn, pre: Option<Vec<u8>>) -> Next {
    let w = conn.w.clone();
    let mut c = Client::new(conn, w.take_scratch());
    if let Some(b) = pre {
        c.buf = b;
    } else {
        // Readiness said bytes are here; a spurious wake-up waits no longer than the
        // park.
        let deadline = Deadline::At(if c.requests == 0 {
            c.first_deadline
        } else {
            Instant::now() + c.keepalive_timeout
        });
        match c.stream.read_ready(w.take_buf(CLIENT_BUF), CLIENT_BUF, deadline).await {
            Ok((n, b)) if n > 0 => c.buf = b,
            r => {
                if let Err(IoFail::Io(e)) = &r {
                    tls_read_failed(&c, e);
                }
                c.stream.shutdown(Shutdown::Both);
                return Next::Done;
            }
        }
    }
    // Prior knowledge is for plaintext only (nginx): on TLS, ALPN chose.
    if c.requests == 0 && c.stream.tls_info().is_none() && !c.plain_on_tls && h2c(&w, c.local) {
        match preface(&mut c).await {
            Some(true) => {
                let pre = std::mem::take(&mut c.buf);
                return c.into_conn().map_or(Next::Done, |conn| Next::H2(conn, pre));
            }
            Some(false) => {}
            None => return Next::Done,
        }
    }
    loop {
        let snap = w.snapshot();
        let Some(group) = snap.group(c.local) else {
            return Next::Done;
        };
        let Some(keep) = serve_one(&snap, group, &mut c).await else {
            return Next::Done;
        };
        if let Some(conf) = c.linger.take() {
            if should_linger(&c, &conf, true) {
                lingering_close(&mut c, &conf).await;
            }
            return Next::Done;
        }
        if !keep || w.quitting.get() {
            return Next::Done;
        }
        // Drop this request's bytes; pipelined ones move to the front.
        let next = framing::pipelined(&c.buf, c.consumed).len();
        c.buf.drain(..c.buf.len() - next);
        c.consumed = 0;
        if c.buf.is_empty() {
            match c.stream.read_now(std::mem::take(&mut c.buf), CLIENT_BUF) {
                Soon::Read(Ok(n), b) if n > 0 => c.buf = b,
                Soon::Idle(b) => {
                    c.buf = b;
                    return c.into_conn().map_or(Next::Done, Next::Idle);
                }
                Soon::Read(..) => return Next::Done,
            }
        }
    }
}

/// Reads one request head and answers it; `None` when the connection is done (it
/// closed, or its head was refused), else whether it may be kept.
async fn serve_one(snap: &Snapshot, group: &crate::config::model::ListenGroup, c: &mut Client) -> Option<bool> {
    let default = &snap.cfg.http.servers[group.default_server];
    let reading = crate::observe::counters::Gauge::new(crate::observe::counters::Kind::Reading);
    let head = read_head(c, default).await;
    drop(reading);
    match head {
        Head::Ready => {}
        Head::Closed => return None,
        Head::Bad(e) => {
            log::info(format_args!("{}, client: {}", e.reason, c.peer.ip()));
            // Nothing of a rejected head is trusted for the log line (spans may
            // be left from the previous request): `$request` and headers log "-".
            c.head = RequestHead::default();
            c.consumed = 0;
            reject(snap, c, default, e.status).await;
            return None;
        }
    }
    c.requests += 1;
    let _writing = crate::observe::counters::Gauge::new(crate::observe::counters::Kind::Writing);
    let keep = handle(snap, group, c).await;
    realip::restore(c);
    Some(keep)
}

/// Whether plaintext connections to `local` may speak HTTP/2 with prior knowledge:
/// `http2 on` in its default server, or `listen ... http2` (nginx 1.25.1+, which
/// still serves HTTP/1 there).
fn h2c(w: &Worker, local: SocketAddr) -> bool {
    let snap = w.snapshot();
    snap.group(local)
        .is_some_and(|g| g.http2 || snap.cfg.http.servers[g.default_server].http2)
}

/// Whether the first bytes are HTTP/2's connection preface, reading more while they
/// could still be (within the first head's deadline); `None`: the connection is gone.
async fn preface(c: &mut Client) -> Option<bool> {
    let pre = super::h2::PREFACE;
    loop {
        let n = c.buf.len().min(pre.len());
        if c.buf[..n] != pre[..n] {
            return Some(false);
        }
        if n == pre.len() {
            return Some(true);
        }
        let buf = std::mem::take(&mut c.buf);
        match c
            .stream
            .read_append(buf, CLIENT_BUF, Deadline::At(c.first_deadline))
            .await
        {
            Ok((n, b)) if n > 0 => c.buf = b,
            _ => return None,
        }
    }
}

/// A client's TLS records that do not decrypt or parse end its connection with an
/// `[info]` line, in nginx's words.
fn tls_read_failed(c: &Client, e: &std::io::Error) {
    if c.stream.tls_info().is_some() && e.kind() == std::io::ErrorKind::InvalidData {
        log::info(format_args!(
            "SSL_read() failed ({e}) while waiting for request, client: {}, server: {}",
            c.peer.ip(),
            c.local
        ));
    }
}

/// Answers a head that did not parse and closes the connection.
async fn reject(snap: &Snapshot, c: &mut Client, default: &Server, status: u16) {
    let mut r = bare_req(default);
    let _ = send_error(c, &mut r, status, false).await;
    access_log(snap, c, &r);
    if should_linger(c, &default.conf, false) {
        lingering_close(c, &default.conf).await;
    }
}

fn bare_req(server: &Server) -> Req<'_> {
    Req {
        server,
        conf: &server.conf,
        loc_prefix: None,
        uri_normalized: false,
        uri: Span::default(),
        args: None,
        start: Instant::now(),
        sent: Sent::default(),
        proxy: None,
        uri_changed: false,
        args_owned: false,
        redirects: 0,
        error_page_used: false,
        err_status: None,
        as_get: false,
        no_keep: false,
        authenticate: None,
        limited: Default::default(),
        conns_held: Vec::new(),
        gzip_vary: false,
        accel_headers: Vec::new(),
        accel_type: None,
    }
}

async fn read_head(c: &mut Client, srv: &Server) -> Head {
    let limits = HeadLimits::sized(srv.large_header_size, srv.large_header_size * srv.large_header_count);
    // The whole head must arrive within client_header_timeout, armed once as nginx
    // does (from the accept for a first request, from its first byte after a
    // keep-alive wait): a client trickling bytes cannot hold the connection.
    let deadline = Deadline::At(if c.requests == 0 {
        c.first_deadline
    } else {
        Instant::now() + srv.client_header_timeout
    });
    loop {
        match parse_request(&c.buf, &mut c.head, limits) {
            Ok(Some(())) => return Head::Ready,
            Ok(None) => {}
            Err(e) => return Head::Bad(e),
        }
        let buf = std::mem::take(&mut c.buf);
        let max = limits.total_max + 1024 - buf.len().min(limits.total_max);
        match c.stream.read_append(buf, max, deadline).await {
            Ok((0, _)) => return Head::Closed,
            Ok((_, b)) => c.buf = b,
            Err(IoFail::Timeout) => {
                log::info(format_args!(
                    "client timed out (110: Connection timed out) while reading client request headers, client: {}",
                    c.peer.ip()
                ));
                return Head::Closed;
            }
            Err(IoFail::Io(e)) => {
                tls_read_failed(c, &e);
                return Head::Closed;
            }
        }
    }
}

async fn handle(snap: &Snapshot, group: &crate::config::model::ListenGroup, c: &mut Client) -> bool {
    let cfg = &snap.cfg;
    let server = route::find_server(&cfg.http, group, c.head.host.map(|h| h.get(&c.buf)));
    // The head was read with nginx's default field-name rules; a server the Host
    // chose with other rules judges the names again.
    if server.underscores_in_headers || !server.ignore_invalid_headers {
        c.head
            .judge_names(&c.buf, server.underscores_in_headers, server.ignore_invalid_headers);
    }
    let mut r = bare_req(server);
    (r.uri, r.args) = uri_args(c);
    c.consumed = c.head.head_len;
    c.attempts.clear();
    c.pace = None;
    c.needs = cfg.http.needs;
    if c.needs != 0 {
        c.heads.upstream.clear();
        c.heads.sent.clear();
        if c.needs & crate::config::vars::needs::REQUEST_ID != 0 {
            c.heads.new_request_id();
        }
    }
    realip::apply(c, &r);
    match normalize(r.uri.get(&c.buf), &mut c.uri_norm) {
        Ok(n) => r.uri_normalized = n,
        Err(e) => return finish_error(snap, c, &mut r, e.status).await,
    }
    if c.plain_on_tls {
        log::info(format_args!(
            "client sent plain HTTP request to HTTPS port while reading client request headers, client: {}, server: {}",
            c.peer.ip(),
            server.primary_name
        ));
        // nginx: no keep-alive and no lingering close after a 497.
        send_error(c, &mut r, 497, false).await;
        access_log(snap, c, &r);
        return false;
    }
    if misdirected(snap, group, c, server) {
        return finish_error(snap, c, &mut r, 421).await;
    }
    if let Some(code) = client_cert_refused(c, server) {
        return finish_error(snap, c, &mut r, code).await;
    }
    if c.head.method() == Method::Trace {
        return finish_error(snap, c, &mut r, 405).await;
    }
    if c.head.method() == Method::Connect {
        if let Some(code) = connect_refused(c, server) {
            return finish_error(snap, c, &mut r, code).await;
        }
    }
    content(snap, c, &mut r).await
}

/// nginx's checks of a CONNECT before any phase: 405 unless HTTP/1.1 to a server
/// with `tunnel_pass` (HTTP/2 CONNECT too), 400 with a body.
fn connect_refused(c: &Client, server: &Server) -> Option<u16> {
    let ip = c.peer.ip();
    if c.stream.is_h2() || c.head.minor != 1 || !server.allow_connect {
        log::info(format_args!(
            "client sent CONNECT method, client: {ip}, server: {}",
            server.primary_name
        ));
        return Some(405);
    }
    if c.head.body_kind() != BodyKind::None {
        log::info(format_args!(
            "client sent CONNECT request with body, client: {ip}, server: {}",
            server.primary_name
        ));
        return Some(400);
    }
    None
}

/// Chooses the location for the current `$uri` (the server's level when none
/// matches).
fn enter_location(c: &mut Client, r: &mut Req<'_>) {
    let server = r.server;
    let uri = if r.uri_normalized {
        &c.uri_norm[..]
    } else {
        r.uri.get(&c.buf)
    };
    match route::find_location(server, uri) {
        Some(l) => {
            r.conf = &l.conf;
            r.loc_prefix = l.prefix();
            // A regex location's groups are `$1`… for what the location does.
            if let LocMatch::Regex { re, groups: true, .. } = &l.matcher {
                let uri = uri.to_vec();
                rewrite::matches(c, re, &uri);
            }
        }
        None => {
            r.conf = &server.conf;
            r.loc_prefix = None;
        }
    }
}

/// How one pass through a location's phases ends.
enum Step {
    /// Answered; whether the connection stays open.
    Done(bool),
    /// An error ringx answers itself (nginx's special response), through `error_page`
    /// when the location has one for it.
    Error { code: u16, body: BodyFate },
    /// An internal redirect (`try_files`, `index`, `error_page`): the server's
    /// rewrites, then the location, again.
    Redirect,
    /// `rewrite … last` (or a changed `$uri` at the end of a location's rewrites):
    /// the location again.
    Rewritten,
    /// Go on in this named location.
    Named(String),
}

/// What became of the request body when an error is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFate {
    /// Not touched: a small body already here is skipped, else the connection closes.
    Here,
    /// Not read and not to be read: close after a lingering close.
    Unread,
    /// Read (sent upstream); whether the connection may stay open.
    Handled(bool),
}

impl Step {
    fn error(code: u16) -> Step {
        Step::Error {
            code,
            body: BodyFate::Here,
        }
    }
}

impl From<files::Served> for Step {
    fn from(s: files::Served) -> Step {
        match s {
            files::Served::Done(keep) => Step::Done(keep),
            files::Served::Status(code) => Step::error(code),
            files::Served::Redirect => Step::Redirect,
            files::Served::Named(n) => Step::Named(n),
        }
    }
}

/// nginx's phases after the location is found, for that location: `internal`,
/// `return`, `try_files`, then the content handler (`ringx_status`, `proxy_pass`, else
/// index and static files); errors go through `error_page`. An internal redirect
/// finds the location anew and starts over; the eleventh is a 500, as nginx.
async fn content(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>) -> bool {
    c.rw.clear();
    let mut step = match server_phase(snap, c, r).await {
        Some(s) => s,
        None => phases(snap, c, r).await,
    };
    loop {
        if let Step::Error { code, body } = step {
            step = apply_error_page(snap, c, r, code, body).await;
        }
        match step {
            Step::Done(keep) => return keep,
            Step::Error { code, body } => return answer_error(snap, c, r, code, body).await,
            // `rewrite … last`: the location is found again (nginx's find-config).
            Step::Rewritten => {
                if !redirected(c, r) {
                    return answer_error(snap, c, r, 500, BodyFate::Here).await;
                }
                enter_location(c, r);
            }
            // An internal redirect starts over at the server's rewrites (nginx).
            Step::Redirect => {
                if !redirected(c, r) {
                    return answer_error(snap, c, r, 500, BodyFate::Here).await;
                }
                if let Some(s) = server_phase(snap, c, r).await {
                    step = s;
                    continue;
                }
            }
            Step::Named(name) => {
                if !redirected(c, r) {
                    return answer_error(snap, c, r, 500, BodyFate::Here).await;
                }
                let Some(l) = r
                    .server
                    .named_locations
                    .iter()
                    .find(|l| matches!(&l.matcher, LocMatch::Named(n) if *n == name))
                else {
                    log::error(format_args!(
                        "could not find named location \"{name}\"{}",
                        files::Why(c, r)
                    ));
                    return answer_error(snap, c, r, 500, BodyFate::Here).await;
                };
                r.conf = &l.conf;
                r.loc_prefix = None;
            }
        }
        step = phases(snap, c, r).await;
    }
}

/// nginx's server rewrite phase, then the location for the `$uri` it leaves;
/// `Some`: the server's rewrites answered.
async fn server_phase(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>) -> Option<Step> {
    let server_ops = &r.server.rewrites;
    match rewrite::run(c, r, server_ops) {
        rewrite::Flow::Next { .. } | rewrite::Flow::Stay => {
            enter_location(c, r);
            None
        }
        f => Some(flow_step(snap, c, r, f).await),
    }
}

/// Where a run of rewrite ops that stopped the phases leads: `return` (its error
/// codes without text through `error_page`), or a redirect.
async fn flow_step(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, f: rewrite::Flow<'_>) -> Step {
    match f {
        rewrite::Flow::Return(ret) => {
            if ret.text.is_none() && (400..=599).contains(&ret.code) {
                return Step::error(ret.code);
            }
            Step::Done(finish_return(snap, c, r, ret).await)
        }
        rewrite::Flow::Redirect { code, location } => {
            let loc = absolute_location(c, r, &location);
            let keep = swallow_body(c) && client_keep(c, r);
            let page = error_page(code).unwrap_or_default();
            let ok = send_simple(c, r, code, "text/html", page.as_bytes(), Some(("Location", &loc)), keep).await;
            Step::Done(finish(snap, c, r, ok, keep).await)
        }
        rewrite::Flow::Fail(code) => Step::error(code),
        rewrite::Flow::Next { .. } | rewrite::Flow::Stay => unreachable!("the phases go on"),
    }
}

/// One pass through the location's phases.
async fn phases(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>) -> Step {
    c.keepalive_timeout = r.conf.keepalive_timeout;
    // Reached by a redirect or a rewrite only (nginx's r->internal).
    if r.conf.internal && r.redirects == 0 && !r.uri_changed {
        return Step::error(404);
    }
    let conf = r.conf;
    match rewrite::run(c, r, &conf.rewrites) {
        rewrite::Flow::Next { changed: true } => return Step::Rewritten,
        rewrite::Flow::Next { changed: false } | rewrite::Flow::Stay => {}
        f => return flow_step(snap, c, r, f).await,
    }
    // nginx's preaccess phase: a location's own realip settings, after its rewrites,
    // then limit_req and limit_conn.
    realip::apply(c, r);
    if let Err(code) = limits::check(c, r).await {
        return Step::error(code);
    }
    // The access phase: `allow` / `deny`, `auth_basic`, as `satisfy` combines them.
    if let Err(code) = access::check(snap, c, r).await {
        return Step::error(code);
    }
    if let Some(tf) = &conf.try_files {
        if let Some(s) = files::try_files(c, r, tf) {
            return s.into();
        }
    }
    if r.conf.stub_status {
        let body = crate::observe::counters::stub_status();
        let keep = swallow_body(c) && client_keep(c, r);
        let ok = send_simple(c, r, 200, "text/plain", body.as_bytes(), None, keep).await;
        return Step::Done(finish(snap, c, r, ok, keep).await);
    }
    if r.conf.status {
        let body = crate::observe::status::render(&snap.cfg);
        let keep = swallow_body(c) && client_keep(c, r);
        let ok = send_simple(c, r, 200, "application/json", body.as_bytes(), None, keep).await;
        return Step::Done(finish(snap, c, r, ok, keep).await);
    }
    // The handler of the level the rewrites ended in (an `if` has its own).
    let conf = r.conf;
    if let Some(t) = &conf.tunnel {
        return connect::tunnel(snap, c, r, t).await;
    }
    let step = if let Some(d) = &conf.proxy_dyn {
        proxy_dynamic(snap, c, r, d).await
    } else if let Some(pp) = &conf.proxy_pass {
        r.proxy = Some(PassRef::Conf(pp));
        proxy(snap, c, r, pp, None).await
    } else {
        return files::serve(snap, c, r).await.into();
    };
    if let Step::Done(_) = step {
        access_log(snap, c, r);
    }
    step
}

/// `proxy_pass` with variables: the URL rendered, then an upstream of that name,
/// an address, or the resolver's addresses (see [`target`]). The URI part, when the
/// URL has one, is sent as it is; else the client's.
async fn proxy_dynamic(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, d: &crate::config::model::DynPass) -> Step {
    let mut raw = Vec::new();
    d.url.render(&c.ctx(r), &mut raw);
    let rendered = String::from_utf8_lossy(&raw);
    let url = match target::parse_url(&rendered) {
        Ok(u) => u,
        Err(why) => {
            log::error(format_args!(
                "{why}, client: {}, server: {}",
                c.peer.ip(),
                r.server.primary_name
            ));
            return Step::error(500);
        }
    };
    if url.https && d.tls.is_none() {
        log::error(format_args!(
            "\"proxy_pass\" with variables reached an https:// URL, which needs \"proxy_pass https://…\" as written, client: {}",
            c.peer.ip()
        ));
        return Step::error(500);
    }
    let found = match target::find(snap, c, r, url.host, url.port, url.port_given).await {
        Ok(f) => f,
        Err(target::Unresolved(code)) => return Step::error(code),
    };
    let (upstream, addrs) = match found {
        target::Found::Upstream(u) => (u, None),
        target::Found::Addrs(a) => (dynamic_upstream(), Some(a)),
    };
    let pp = Rc::new(ProxyPass {
        upstream,
        proxy_host: url.hostport.to_string(),
        proxy_port: url.port,
        uri: url.uri.map(|u| {
            if u.starts_with('?') {
                format!("/{u}")
            } else {
                u.to_string()
            }
        }),
        tls: if url.https { d.tls.clone() } else { None },
        uri_exact: true,
    });
    r.proxy = Some(PassRef::Made(pp.clone()));
    proxy(snap, c, r, &pp, addrs.as_deref()).await
}

/// The stand-in upstream of targets resolved per request: no keep-alive pool (as
/// nginx's temporary upstreams), its addresses given to each request.
fn dynamic_upstream() -> Arc<crate::config::model::Upstream> {
    static UP: std::sync::LazyLock<Arc<crate::config::model::Upstream>> = std::sync::LazyLock::new(|| {
        Arc::new(crate::config::model::Upstream::new(
            String::new(),
            usize::MAX,
            crate::config::model::Balance::RoundRobin,
            Vec::new(),
            true,
        ))
    });
    UP.clone()
}

/// `error_page` for `code` in the current location (once per request unless
/// `recursive_error_pages on`, and while internal redirects remain): an internal
/// redirect (a URI, as GET unless HEAD), a named location, or a redirect to a URL;
/// else the error as it is.
async fn apply_error_page(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, code: u16, body: BodyFate) -> Step {
    let err = Step::Error { code, body };
    if r.error_page_used || r.redirects >= 10 {
        return err;
    }
    let Some(ep) = r.conf.error_page.iter().find(|e| e.code == code) else {
        return err;
    };
    if !r.conf.recursive_error_pages {
        r.error_page_used = true;
    }
    // nginx clears keep-alive for these before it looks for an error page.
    r.no_keep |= closes_connection(code);
    r.err_status = match ep.overwrite {
        Some(0) => None,
        Some(o) => Some(o),
        None => Some(code),
    };
    let mut target = Vec::new();
    ep.target.render(&c.ctx(r), &mut target);
    match target.first() {
        Some(b'/') => {
            let (uri, args) = match (&ep.args, target.iter().position(|&b| b == b'?')) {
                (Some(a), _) => (target.clone(), a.as_bytes().to_vec()),
                (None, Some(q)) => (target[..q].to_vec(), target[q + 1..].to_vec()),
                (None, None) => (target.clone(), Vec::new()),
            };
            files::set_uri(c, r, &uri, Some(&args));
            r.as_get = true;
            Step::Redirect
        }
        Some(b'@') => Step::Named(String::from_utf8_lossy(&target).into_owned()),
        _ => {
            let code = ep
                .overwrite
                .filter(|o| matches!(o, 301 | 302 | 303 | 307 | 308))
                .unwrap_or(302);
            r.err_status = None;
            let keep = match body {
                BodyFate::Here => swallow_body(c) && client_keep(c, r),
                BodyFate::Unread => false,
                BodyFate::Handled(k) => k,
            };
            crate::config::vars::escape_line_breaks(&mut target, 0);
            let page = error_page(code).unwrap_or_default();
            let ok = send_simple(
                c,
                r,
                code,
                "text/html",
                page.as_bytes(),
                Some(("Location", &target)),
                keep,
            )
            .await;
            Step::Done(finish(snap, c, r, ok, keep).await)
        }
    }
}

/// Sends nginx's page for an error ringx answers itself, then the access-log line;
/// whether the connection stays open follows from what became of the body.
async fn answer_error(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, code: u16, body: BodyFate) -> bool {
    r.err_status = None;
    match body {
        BodyFate::Here => finish_error(snap, c, r, code).await,
        BodyFate::Unread => {
            let ok = send_error(c, r, code, false).await;
            access_log(snap, c, r);
            if ok && should_linger(c, r.conf, true) {
                lingering_close(c, r.conf).await;
            }
            false
        }
        BodyFate::Handled(keep) => {
            let keep = keep && !closes_connection(code);
            let ok = send_error(c, r, code, keep).await;
            access_log(snap, c, r);
            ok && keep
        }
    }
}

/// Counts an internal redirect; false (with nginx's log line) past the tenth.
fn redirected(c: &Client, r: &mut Req<'_>) -> bool {
    r.redirects += 1;
    if r.redirects <= 10 {
        return true;
    }
    log::error(format_args!(
        "rewrite or internal redirection cycle while internally redirecting to \"{}\"{}",
        String::from_utf8_lossy(c.ctx(r).uri),
        files::Why(c, r)
    ));
    false
}

/// nginx's rule for client certificates: a request whose Host chooses another server
/// than the TLS handshake's SNI name did, where that server verifies clients, is
/// answered 421 (its certificate was judged by the other server's CAs).
fn misdirected(snap: &Snapshot, group: &crate::config::model::ListenGroup, c: &Client, server: &Server) -> bool {
    let Some(sni) = c.stream.tls_info().and_then(|t| t.server_name.as_deref()) else {
        return false;
    };
    if server.client_auth.is_none() {
        return false;
    }
    let sni = sni.strip_suffix('.').unwrap_or(sni).as_bytes();
    if std::ptr::eq(route::find_server(&snap.cfg.http, group, Some(sni)), server) {
        return false;
    }
    log::info(format_args!(
        "client attempted to request the server name different from the one that was negotiated while reading client request headers, client: {}, server: {}",
        c.peer.ip(),
        server.primary_name
    ));
    true
}

/// `ssl_verify_client` of the request's server (nginx checks per request): 496 when
/// `on` and no certificate came, 495 when one came and did not verify (but for a
/// missing trusted issuer under `optional_no_ca`); one `[info]` line each.
fn client_cert_refused(c: &Client, server: &Server) -> Option<u16> {
    use crate::config::tls::VerifyClient;
    let auth = server.client_auth.as_ref()?;
    let cert = c.stream.tls_info()?.client.as_deref().filter(|cc| cc.verify != "NONE");
    let (code, why) = match cert {
        None if auth.mode == VerifyClient::On => (496, "client sent no required SSL certificate".to_string()),
        None => return None,
        Some(cc) if cc.verify == "SUCCESS" => return None,
        Some(cc) if auth.mode == VerifyClient::OptionalNoCa && cc.untrusted_only => return None,
        Some(cc) => (
            495,
            format!(
                "client SSL certificate verify error: ({}:{})",
                cc.code,
                crate::config::tls::openssl_reason(cc.code)
            ),
        ),
    };
    log::info(format_args!(
        "{why} while reading client request headers, client: {}, server: {}",
        c.peer.ip(),
        server.primary_name
    ));
    Some(code)
}

/// `$uri` (not yet normalized) and `$args` of the request head.
fn uri_args(c: &Client) -> (Span, Option<Span>) {
    let p = c.head.path;
    match p.get(&c.buf).iter().position(|&b| b == b'?') {
        Some(q) => (
            Span {
                start: p.start,
                end: p.start + q as u32,
            },
            Some(Span {
                start: p.start + q as u32 + 1,
                end: p.end,
            }),
        ),
        None => (p, None),
    }
}

/// The access-log line of an HTTP/2 request the client reset before its response
/// was complete: 499, in the location the request had reached (nginx's line).
fn log_reset(snap: &Snapshot, group: &crate::config::model::ListenGroup, c: &mut Client) {
    if c.requests == 0 {
        return;
    }
    let server = route::find_server(&snap.cfg.http, group, c.head.host.map(|h| h.get(&c.buf)));
    let mut r = bare_req(server);
    (r.uri, r.args) = uri_args(c);
    r.uri_normalized = normalize(r.uri.get(&c.buf), &mut c.uri_norm).unwrap_or(false);
    let uri = if r.uri_normalized {
        &c.uri_norm[..]
    } else {
        r.uri.get(&c.buf)
    };
    if let Some(l) = route::find_location(server, uri) {
        r.conf = &l.conf;
    }
    r.proxy = r.conf.proxy_pass.as_ref().map(PassRef::Conf);
    r.sent.status = 499;
    access_log(snap, c, &r);
}

/// Whether the client connection may stay open after this response.
fn client_keep(c: &Client, r: &Req<'_>) -> bool {
    if r.no_keep {
        return false;
    }
    let limits = KeepAliveLimits {
        max_requests: r.conf.keepalive_requests,
        timeout_zero: r.conf.keepalive_timeout.is_zero(),
    };
    framing::client_keep_alive(&c.head, c.requests, limits)
}

/// Takes the rest of a small request body that ringx answers itself; false when it
/// is not all here (the connection then closes after the response).
fn swallow_body(c: &mut Client) -> bool {
    let avail = c.buf.len() - c.head.head_len;
    match c.head.body_kind() {
        BodyKind::None => true,
        BodyKind::Length(n) => {
            if n <= avail as u64 {
                c.consumed = c.head.head_len + n as usize;
                true
            } else {
                false
            }
        }
        BodyKind::Chunked => {
            let mut d = ChunkedDecoder::new();
            match d.feed(&c.buf[c.head.head_len..], |_| {}) {
                Ok(f) if f.done => {
                    c.consumed = c.head.head_len + f.consumed;
                    true
                }
                _ => false,
            }
        }
    }
}

async fn finish_error(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, code: u16) -> bool {
    let keep = swallow_body(c) && client_keep(c, r) && !closes_connection(code);
    let ok = send_error(c, r, code, keep).await;
    finish(snap, c, r, ok, keep).await
}

/// After a response ringx made itself: the access-log line, then either keep the
/// connection or close it gently.
async fn finish(snap: &Snapshot, c: &mut Client, r: &Req<'_>, ok: bool, keep: bool) -> bool {
    access_log(snap, c, r);
    if !keep && ok && should_linger(c, r.conf, false) {
        lingering_close(c, r.conf).await;
    }
    ok && keep
}

/// `lingering_close`: `on` (nginx's default heuristic) lingers only when the client
/// may still be sending: its body was not read (`unread`), bytes lie past this
/// request in the buffer, or wait in the socket; a client that sent one request and
/// waits is closed at once.
fn should_linger(c: &Client, conf: &LocConf, unread: bool) -> bool {
    match conf.lingering_close {
        Lingering::Off => false,
        Lingering::Always => true,
        Lingering::On => unread || c.buf.len() > c.consumed || c.stream.peek() == crate::net::Peek::Bytes,
    }
}

async fn finish_return(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, ret: &Return) -> bool {
    if ret.code == 444 {
        r.sent.status = 444;
        access_log(snap, c, r);
        return false;
    }
    let keep = swallow_body(c) && client_keep(c, r) && !closes_connection(ret.code);
    let redirect = matches!(ret.code, 301 | 302 | 303 | 307 | 308);
    let mut text = std::mem::take(&mut c.scratch);
    text.clear();
    if let Some(t) = &ret.text {
        t.render(&c.ctx(r), &mut text);
    }
    let ok = if redirect {
        let loc = absolute_location(c, r, &text);
        let page = error_page(ret.code).unwrap_or_default();
        send_simple(
            c,
            r,
            ret.code,
            "text/html",
            page.as_bytes(),
            Some(("Location", &loc)),
            keep,
        )
        .await
    } else if let (None, Some(page)) = (&ret.text, error_page(ret.code)) {
        send_simple(c, r, ret.code, "text/html", page.as_bytes(), None, keep).await
    } else {
        // The text (empty for `return 200;`), typed by the URI's extension, or as
        // an X-Accel-Redirect's upstream typed it (nginx keeps that type).
        let conf = r.conf;
        let accel_type = r.accel_type.clone();
        let ctype = accel_type
            .as_deref()
            .unwrap_or_else(|| content_type(conf, c.ctx(r).uri));
        send_simple(c, r, ret.code, ctype, &text, None, keep).await
    };
    c.scratch = text;
    finish(snap, c, r, ok, keep).await
}

/// A redirect's `Location`: a relative one (`/path`) made absolute as nginx's
/// `absolute_redirect` (scheme, then `server_name_in_redirect`'s name or the request's
/// host, then the port unless `port_in_redirect off` or the scheme's default); line
/// breaks escaped.
fn absolute_location(c: &Client, r: &Req<'_>, target: &[u8]) -> Vec<u8> {
    let mut loc = Vec::with_capacity(target.len() + 32);
    if target.first() == Some(&b'/') && r.conf.absolute_redirect {
        let tls = c.stream.tls_info().is_some();
        loc.extend_from_slice(if tls { b"https://" } else { b"http://" });
        if r.conf.server_name_in_redirect {
            loc.extend_from_slice(r.server.primary_name.as_bytes());
        } else {
            c.ctx(r).write_var(&crate::config::vars::Var::Host, &mut loc);
        }
        let port = c.local.port();
        if r.conf.port_in_redirect && port != if tls { 443 } else { 80 } {
            let _ = write!(loc, ":{port}");
        }
    }
    let from = loc.len();
    loc.extend_from_slice(target);
    crate::config::vars::escape_line_breaks(&mut loc, from);
    loc
}

/// The Content-Type for a response ringx makes: by the URI's extension from
/// `types`, else `default_type` (nginx's `ngx_http_set_content_type`).
fn content_type<'a>(conf: &'a LocConf, uri: &[u8]) -> &'a str {
    let last = uri.rsplit(|&b| b == b'/').next().unwrap_or_default();
    if let Some(dot) = last.iter().rposition(|&b| b == b'.') {
        if let Ok(ext) = std::str::from_utf8(&last[dot + 1..]) {
            let hit = if ext.bytes().any(|b| b.is_ascii_uppercase()) {
                conf.types.get(&ext.to_ascii_lowercase())
            } else {
                conf.types.get(ext)
            };
            if let Some(t) = hit {
                return t;
            }
        }
    }
    &conf.default_type
}

async fn send_error(c: &mut Client, r: &mut Req<'_>, code: u16, keep: bool) -> bool {
    let page = error_page(code).unwrap_or_default();
    send_simple(c, r, code, "text/html", page.as_bytes(), None, keep).await
}

fn add_header_applies(code: u16, h: &AddHeader) -> bool {
    h.always || matches!(code, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308)
}

/// Writes a complete response ringx makes itself.
async fn send_simple(
    c: &mut Client,
    r: &mut Req<'_>,
    code: u16,
    ctype: &str,
    body: &[u8],
    extra: Option<(&str, &[u8])>,
    keep: bool,
) -> bool {
    // A target's own redirect keeps its status (nginx's special response); a page
    // it answers goes out with the error's.
    let code = if code < 300 { r.err_status.unwrap_or(code) } else { code };
    let wire = wire_code(code);
    let is_head = c.head.method() == Method::Head;
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    status_line(
        &mut out,
        wire,
        reason(wire).as_bytes(),
        Own {
            server: true,
            date: true,
        },
    );
    // add_header with the name Content-Type replaces ringx's own.
    let ct_overridden = r
        .conf
        .add_headers
        .iter()
        .any(|h| add_header_applies(wire, h) && h.name.eq_ignore_ascii_case("content-type"));
    if !(ct_overridden || wire == 204 || wire == 304) {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ctype.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A page ringx has whole is compressed whole (its length is then known).
    let offered = gzip::Offered {
        status: wire,
        content_type: ctype.as_bytes(),
        content_length: Some(body.len() as u64),
        encoded: false,
    };
    let gz = gzip::decide(&r.conf.gzip, || gzip_asked(c), &offered);
    let packed;
    let body = if gz == gzip::Gzip::Compress {
        packed = gzip::compress(r.conf.gzip.level, body);
        &packed[..]
    } else {
        body
    };
    if wire != 204 && wire != 304 && !(gz == gzip::Gzip::Compress && is_head) {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    // nginx writes Location before Connection, the others after it.
    let header = |out: &mut Vec<u8>, (name, value): (&str, &[u8])| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    let location = extra.filter(|(n, _)| *n == "Location");
    if let Some(l) = location {
        header(&mut out, l);
    }
    out.extend_from_slice(if keep {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    });
    if let (Some(x), None) = (extra, location) {
        header(&mut out, x);
    }
    if gz.vary(&r.conf.gzip) {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    if gz == gzip::Gzip::Compress {
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    }
    write_expires(&mut out, r.conf, wire, None);
    write_add_headers(&mut out, c, r, wire);
    out.extend_from_slice(b"\r\n");
    let head_len = out.len();
    c.keep_head(crate::config::vars::needs::SENT_HEAD, &out);
    if !is_head {
        out.extend_from_slice(body);
    }
    let total = out.len();
    let timeout = r.conf.send_timeout;
    let res = c.stream.write_all(out, timeout).await;
    r.sent = Sent {
        status: code,
        bytes: total as u64,
        body_bytes: (total - head_len) as u64,
        head_bytes: head_len as u64,
    };
    match res {
        Ok(b) => {
            c.out = b;
            true
        }
        Err(_) => false,
    }
}

/// The status line, then ringx's `Server` and `Date` unless the upstream's are passed
/// (`proxy_pass_header Server|Date`).
fn status_line(out: &mut Vec<u8>, code: u16, reason: &[u8], own: Own) {
    let code = code.min(999);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    if own.server {
        out.extend_from_slice(b"Server: ringx\r\n");
    }
    if own.date {
        out.extend_from_slice(b"Date: ");
        write_http_date(out);
        out.extend_from_slice(b"\r\n");
    }
}

#[derive(Clone, Copy)]
struct Own {
    server: bool,
    date: bool,
}

/// `expires`: Expires and Cache-Control for a response with `code` (and the
/// Last-Modified it has, for `expires modified`).
fn write_expires(out: &mut Vec<u8>, conf: &LocConf, code: u16, last_modified: Option<i64>) {
    if conf.expires == crate::proto::conditional::Expires::Off {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Some((e, cc)) = crate::proto::conditional::expires(conf.expires, code, last_modified, now) {
        let _ = write!(out, "Expires: {e}\r\nCache-Control: {cc}\r\n");
    }
}

fn write_add_headers(out: &mut Vec<u8>, c: &Client, r: &Req<'_>, code: u16) {
    if let Some(h) = &r.authenticate {
        out.extend_from_slice(h);
    }
    out.extend_from_slice(&r.accel_headers);
    for h in &r.conf.add_headers {
        if !add_header_applies(code, h) {
            continue;
        }
        let mark = out.len();
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        let v = out.len();
        h.value.render_header(&c.ctx(r), out);
        if out.len() == v {
            out.truncate(mark);
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn access_log(snap: &Snapshot, c: &Client, r: &Req<'_>) {
    if r.conf.access_logs.is_empty() {
        return;
    }
    let ctx = c.ctx(r);
    let mut logs = snap.logs.borrow_mut();
    for a in &r.conf.access_logs {
        if !a.wanted(&ctx, &mut logs.scratch) {
            continue;
        }
        let (buf, scratch) = logs.buf(a.file_id);
        a.format.render_log(&ctx, buf, scratch);
        logs.line_done(a.file_id);
    }
}

/// After a response that ends an HTTP/1 connection: nginx's lingering close
/// ([`Stream::linger`], `lingering_time`, `lingering_timeout`). HTTP/2 streams end
/// with their response; their connection lingers when it closes ([`super::h2`]).
async fn lingering_close(c: &mut Client, conf: &LocConf) {
    if let Some(s) = c.stream.h1() {
        let buf = std::mem::take(&mut c.buf);
        s.linger(buf, conf.lingering_time, conf.lingering_timeout).await;
    }
}

// ---------------------------------------------------------------------------
// Proxying

/// How the request body reaches the upstream.
enum BodyPlan {
    None,
    /// Everything is in the receive buffer at `[head_len..head_len+len]` (raw bytes,
    /// chunked or not) and can be replayed on another server.
    Buffered {
        len: usize,
    },
    /// De-chunked and kept whole, in memory or a temporary file (chunked body to
    /// an HTTP/1.0 upstream).
    Collected(Spool),
    /// Content-Length body still arriving: `initial` bytes are in the buffer.
    StreamLength {
        initial: usize,
        total: u64,
    },
    /// Chunked body still arriving: `initial` raw bytes are in the buffer.
    StreamChunked {
        initial: usize,
        decoder: ChunkedDecoder,
    },
}

impl BodyPlan {
    /// Whether body bytes remain to be sent after the request head.
    fn has_rest(&self) -> bool {
        match self {
            BodyPlan::StreamLength { .. } | BodyPlan::StreamChunked { .. } => true,
            BodyPlan::Collected(sp) => sp.in_memory().is_none(),
            _ => false,
        }
    }
}

/// Where the attempts of one request go: an upstream's balancer, or the addresses a
/// target with variables resolved to, in order (nginx's temporary round robin).
#[derive(Clone, Copy)]
enum Peers<'a> {
    Group(&'a crate::balance::Balancer),
    List(&'a [SocketAddr]),
}

impl<'a> Peers<'a> {
    fn of(snap: &'a Snapshot, up: &Upstream, addrs: Option<&'a [SocketAddr]>) -> Peers<'a> {
        match addrs {
            Some(a) => Peers::List(a),
            None => Peers::Group(&snap.balancers[up.index]),
        }
    }

    fn len(self) -> usize {
        match self {
            Peers::Group(b) => b.len(),
            Peers::List(a) => a.len(),
        }
    }

    /// The next peer to try and its address.
    fn pick(
        self,
        up: &Upstream,
        client: std::net::IpAddr,
        key: &[u8],
        tried: &mut crate::balance::Tried,
    ) -> Option<(crate::balance::Held<'a>, Peer)> {
        match self {
            Peers::Group(b) => {
                let held = b.pick_held(client, key, tried, Instant::now())?;
                let addr = up.servers[held.server()].addr.clone();
                Some((held, addr))
            }
            Peers::List(a) => {
                let i = (0..a.len()).find(|&i| !tried.get(i))?;
                tried.set(i);
                Some((crate::balance::Held::plain(i), Peer::Ip(a[i])))
            }
        }
    }
}

async fn proxy(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, pp: &ProxyPass, addrs: Option<&[SocketAddr]>) -> Step {
    let conf = r.conf;
    let head_len = c.head.head_len;
    let avail = c.buf.len() - head_len;
    let max_body = conf.client_max_body_size;
    // 1. The body: check the limit, see how much is here.
    let mut plan = match c.head.body_kind() {
        // `proxy_set_body`: that body instead of the client's (which is skipped).
        _ if conf.proxy_set_body.is_some() => match set_body(c, r) {
            Some(sp) => BodyPlan::Collected(sp),
            None => return Step::error(500),
        },
        // After an error page's redirect the body (if any) has been used: none goes
        // again, and the connection closes if it was not all here (no desync).
        _ if !conf.proxy_pass_request_body || r.as_get => {
            if !swallow_body(c) {
                c.head.keep_alive = false;
            }
            BodyPlan::None
        }
        BodyKind::None => BodyPlan::None,
        BodyKind::Length(n) => {
            if max_body != 0 && n > max_body {
                log::error(format_args!(
                    "client intended to send too large body: {n} bytes, client: {}, server: {}",
                    c.peer.ip(),
                    r.server.primary_name
                ));
                return Step::Error {
                    code: 413,
                    body: BodyFate::Unread,
                };
            }
            if n > avail as u64 && n <= SMALL_BODY as u64 {
                let need = head_len + n as usize;
                if !read_small_body(c, conf, |buf| (buf.len() >= need).then_some(need)).await {
                    return Step::Done(false);
                }
            }
            let avail = c.buf.len() - head_len;
            if n <= avail as u64 {
                c.consumed = head_len + n as usize;
                BodyPlan::Buffered { len: n as usize }
            } else {
                c.consumed = c.buf.len();
                BodyPlan::StreamLength {
                    initial: avail,
                    total: n,
                }
            }
        }
        BodyKind::Chunked => {
            let mut d = ChunkedDecoder::new();
            let mut fed_to = head_len;
            let mut bad = false;
            let mut done_at = None;
            let mut check = |buf: &[u8]| -> Option<usize> {
                match d.feed(&buf[fed_to..], |_| {}) {
                    Err(_) => {
                        bad = true;
                        Some(buf.len())
                    }
                    Ok(f) => {
                        fed_to += f.consumed;
                        if f.done {
                            done_at = Some(fed_to);
                            Some(fed_to)
                        } else if fed_to - head_len > SMALL_BODY || (max_body != 0 && d.total > max_body) {
                            Some(fed_to)
                        } else {
                            None
                        }
                    }
                }
            };
            let here = check(&c.buf);
            if here.is_none() && !read_small_body(c, conf, &mut check).await {
                return Step::Done(false);
            }
            if bad {
                log::info(format_args!(
                    "client sent invalid chunked body, client: {}",
                    c.peer.ip()
                ));
                return Step::Error {
                    code: 400,
                    body: BodyFate::Unread,
                };
            }
            if max_body != 0 && d.total > max_body {
                return Step::Error {
                    code: 413,
                    body: BodyFate::Unread,
                };
            }
            c.consumed = fed_to;
            match done_at {
                Some(_) => BodyPlan::Buffered { len: fed_to - head_len },
                None => BodyPlan::StreamChunked {
                    initial: fed_to - head_len,
                    decoder: d,
                },
            }
        }
    };
    let v11 = conf.proxy_http_version == crate::config::model::HttpVersion::Http11;
    let chunked_client = c.head.body_kind() == BodyKind::Chunked;
    // `proxy_request_buffering on` (nginx's default): the whole body is read before
    // an upstream is chosen, and goes with a Content-Length (chunked ones de-chunked),
    // so that it can go to the next server. An HTTP/1.0 upstream cannot take chunked:
    // such a body is collected whatever the setting. Memory is bounded by the spool
    // (`client_body_buffer_size`), size by client_max_body_size.
    let whole = conf.proxy_request_buffering || (chunked_client && !v11);
    let collect = match plan {
        BodyPlan::StreamLength { .. } | BodyPlan::StreamChunked { .. } => whole,
        BodyPlan::Buffered { .. } => whole && chunked_client,
        _ => false,
    };
    if collect {
        match collect_body(c, r, &mut plan).await {
            Ok(v) => plan = BodyPlan::Collected(v),
            Err(code) => {
                if code == 0 || code == 408 {
                    r.sent.status = code;
                    return Step::Done(false);
                }
                return Step::Error {
                    code,
                    body: BodyFate::Unread,
                };
            }
        }
    }
    let up_body = match (&plan, c.head.body_kind()) {
        (BodyPlan::None, _) => UpBody::None,
        (BodyPlan::Collected(sp), _) => UpBody::Length(sp.len()),
        (_, BodyKind::Length(n)) => UpBody::Length(n),
        (_, BodyKind::Chunked) => UpBody::Chunked,
        (_, BodyKind::None) => UpBody::None,
    };
    let replayable = matches!(
        plan,
        BodyPlan::None | BodyPlan::Buffered { .. } | BodyPlan::Collected(_)
    );
    if !replayable && !send_continue(c, conf).await {
        return Step::Done(false);
    }

    // 2. Attempts.
    let peers = Peers::of(snap, &pp.upstream, addrs);
    let mut tried = crate::balance::Tried::new(peers.len());
    let budget = crate::balance::Budget::new(
        conf.proxy_next_upstream_tries,
        conf.proxy_next_upstream_timeout,
        r.start,
    );
    let idempotent = c.head.method().idempotent();
    let mut last: Option<Fail> = None;
    let mut n = 0;
    // The `hash` key, rendered once per request into the scratch buffer (which
    // nothing else uses while proxying).
    let mut key = std::mem::take(&mut c.scratch);
    key.clear();
    if let Some(k) = &pp.upstream.hash_key {
        k.render(&c.ctx(r), &mut key);
    }
    c.scratch = key;
    loop {
        let Some((held, addr)) = peers.pick(&pp.upstream, c.peer.ip(), &c.scratch, &mut tried) else {
            if last.is_none() {
                log::error(format_args!(
                    "no live upstreams while connecting to upstream \"{}\", client: {}",
                    pp.upstream.name,
                    c.peer.ip()
                ));
            }
            break;
        };
        n += 1;
        let more = budget.more(n, &tried, peers.len());
        crate::runtime::fault::check(&c.w, c.head.path.get(&c.buf));
        let res = attempt(c, r, pp, &addr, &mut plan, up_body, replayable, more).await;
        match res {
            Ok(keep_client) => {
                let failed = c
                    .attempts
                    .last()
                    .is_some_and(|a| conf.proxy_next_upstream.status(a.status) && a.status != 403 && a.status != 404);
                held.release(failed);
                let keep_client = drain_backlog(c, r).await && keep_client;
                if let Some(code) = c.intercepted.take() {
                    return Step::Error {
                        code,
                        body: BodyFate::Handled(keep_client),
                    };
                }
                if let Some(a) = c.accel.take() {
                    return accel_redirect(c, r, a);
                }
                return Step::Done(keep_client);
            }
            Err(f) => {
                held.release(f.counts_against_peer());
                // What the upstream did send before it broke off still goes (the
                // client's own failure drops it).
                if matches!(f.kind, FailKind::Client(_)) {
                    c.backlog.borrow_mut().take();
                } else {
                    drain_backlog(c, r).await;
                }
                match f.kind {
                    // Logged where it happened; the client gets a 500.
                    FailKind::Internal => {
                        last = Some(f);
                        break;
                    }
                    // Logged at info where it happened, naming the client.
                    FailKind::Client(_) => {
                        if r.sent.status == 0 {
                            r.sent.status = f.status();
                        }
                        return Step::Done(false);
                    }
                    _ => {}
                }
                if let Some(cause) = f.cause() {
                    log::error(format_args!(
                        "{cause}, client: {}, server: {}, request: \"{} {} {}\", upstream: \"{}://{}\"",
                        c.peer.ip(),
                        r.server.primary_name,
                        String::from_utf8_lossy(c.head.method_span.get(&c.buf)),
                        String::from_utf8_lossy(c.head.target.get(&c.buf)),
                        super::ctx::protocol(c.stream.is_h2(), c.head.minor),
                        if pp.tls.is_some() { "https" } else { "http" },
                        addr
                    ));
                }
                if f.client_gone {
                    return Step::Done(false);
                }
                let nu = &conf.proxy_next_upstream;
                // A body still streaming from the client can go again only while none
                // of it was sent: its unread rest is still in the client's socket
                // (nginx: `u->request_sent && r->request_body_no_buffering`).
                let retry = !f.fatal
                    && f.next_upstream_allows(nu)
                    && more
                    && (replayable || !f.sent)
                    && (idempotent || nu.non_idempotent || !f.sent);
                let fatal = f.fatal;
                last = Some(f);
                if !retry {
                    if fatal {
                        return Step::Done(false);
                    }
                    break;
                }
            }
        }
    }
    let code = last.map_or(502, |f| f.status());
    let keep = client_keep(c, r) && !matches!(plan, BodyPlan::StreamLength { .. } | BodyPlan::StreamChunked { .. });
    Step::Error {
        code,
        body: BodyFate::Handled(keep),
    }
}

/// `proxy_buffering`: the rest of a response, sent once the upstream is done with
/// (its connection pooled or closed, its balancer slot given back), counted for the
/// access log. False when the client failed (logged naming it).
async fn drain_backlog(c: &mut Client, r: &mut Req<'_>) -> bool {
    if c.backlog.borrow().is_none() {
        return true;
    }
    let mark = c.stream.written();
    let res = backlog::drain(c, r.conf.send_timeout).await;
    let n = c.stream.written() - mark;
    r.sent.bytes += n;
    r.sent.body_bytes += n;
    match res {
        Ok(()) => true,
        Err(e) => {
            let _ = client_write_failed(e, c.peer);
            false
        }
    }
}

/// `proxy_set_body`: the body rendered for the upstream, the client's skipped (the
/// connection closes if it is not all here); `None` when its temporary file fails.
fn set_body(c: &mut Client, r: &Req<'_>) -> Option<Spool> {
    if !swallow_body(c) {
        c.head.keep_alive = false;
    }
    let mut v = Vec::new();
    if let Some(t) = &r.conf.proxy_set_body {
        t.render(&c.ctx(r), &mut v);
    }
    let mut sp = Spool::in_dir(r.conf.client_body_temp_path.clone());
    if let Err(e) = sp.push(&v) {
        // The same words as a chunked body's (ringx's fault, not the upstream's).
        log::crit(format_args!(
            "writing the request body to a temporary file failed ({e})"
        ));
        return None;
    }
    Some(sp)
}

/// Reads more of a request body into the receive buffer until `enough` says where
/// the part to keep ends (sending `100 Continue` first when the client waits for it).
/// False when the client went away.
async fn read_small_body(c: &mut Client, conf: &LocConf, mut enough: impl FnMut(&[u8]) -> Option<usize>) -> bool {
    if !send_continue(c, conf).await {
        return false;
    }
    loop {
        let buf = std::mem::take(&mut c.buf);
        let want = (c.head.head_len + SMALL_BODY + 1024).saturating_sub(buf.len()).max(1);
        let mut buf = buf;
        if buf.capacity() - buf.len() < want.min(SMALL_BODY) {
            buf.reserve(want.min(SMALL_BODY));
        }
        match c.stream.read_append(buf, want, conf.client_body_timeout).await {
            Ok((0, _)) | Err(_) => {
                log::info(format_args!(
                    "client prematurely closed connection while sending request body, client: {}",
                    c.peer.ip()
                ));
                return false;
            }
            Ok((_, b)) => c.buf = b,
        }
        if enough(&c.buf).is_some() {
            return true;
        }
    }
}

/// `100 Continue`, once, when the client waits for it before sending its body.
/// False when the client went away.
async fn send_continue(c: &mut Client, conf: &LocConf) -> bool {
    if !framing::wants_continue(&c.head) {
        return true;
    }
    c.head.expect_continue = false;
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    match c.stream.write_all(out, conf.send_timeout).await {
        Ok(b) => {
            c.out = b;
            true
        }
        Err(_) => false,
    }
}

/// Reads the whole request body into a [`Spool`] (de-chunked), as nginx's
/// `ngx_http_read_client_request_body`: `100 Continue` first when the client waits
/// for it; past `client_body_buffer_size` the body goes to a temporary file, with
/// nginx's warning. `Err(0)`: the client went away; `Err(408)`: it timed out (no
/// answer, as nginx); `Err(code)`: answer `code`.
async fn collect_body(c: &mut Client, r: &Req<'_>, plan: &mut BodyPlan) -> Result<Spool, u16> {
    if !send_continue(c, r.conf).await {
        return Err(0);
    }
    let mem = usize::try_from(r.conf.client_body_buffer_size).unwrap_or(usize::MAX);
    let mut out = Spool::sized(r.conf.client_body_temp_path.clone(), mem);
    match *plan {
        BodyPlan::StreamLength { initial, total } => collect_length(c, r, initial, total, &mut out).await?,
        _ => collect_chunked(c, r, plan, &mut out).await?,
    }
    if out.on_file() {
        let dir = r
            .conf
            .client_body_temp_path
            .as_deref()
            .map_or_else(std::env::temp_dir, |p| p.to_path_buf());
        log::warn(format_args!(
            "a client request body is buffered to a temporary file {}/(unnamed), client: {}, server: {}",
            dir.display(),
            c.peer.ip(),
            r.server.primary_name
        ));
    }
    Ok(out)
}

/// A client read of the body failed: logged at info naming the client; 408 for a
/// timeout, else 0.
fn body_read_failed(c: &Client, e: Option<IoFail>) -> u16 {
    let (what, code) = match e {
        Some(IoFail::Timeout) => ("client timed out (110: Connection timed out)", 408),
        _ => ("client prematurely closed connection", 0),
    };
    log::info(format_args!(
        "{what} while reading client request body, client: {}",
        c.peer.ip()
    ));
    code
}

/// The rest of a Content-Length body into `out` (exactly its length: pipelined bytes
/// after it stay in the socket for the next request).
async fn collect_length(c: &mut Client, r: &Req<'_>, initial: usize, total: u64, out: &mut Spool) -> Result<(), u16> {
    let head_len = c.head.head_len;
    push_body(out, &c.buf[head_len..head_len + initial])?;
    let mut left = total - initial as u64;
    let mut tmp = Vec::with_capacity(UP_BUF_LARGE);
    while left > 0 {
        tmp.clear();
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(UP_BUF_LARGE);
        match c.stream.read_append(tmp, want, r.conf.client_body_timeout).await {
            Ok((0, _)) => return Err(body_read_failed(c, None)),
            Err(e) => return Err(body_read_failed(c, Some(e))),
            Ok((n, b)) => {
                tmp = b;
                left -= n as u64;
            }
        }
        push_body(out, &tmp)?;
    }
    Ok(())
}

/// Appends to the spool: 500 (with a crit line) when its file fails.
fn push_body(out: &mut Spool, data: &[u8]) -> Result<(), u16> {
    out.push(data).map_err(|e| {
        log::crit(format_args!(
            "writing the request body to a temporary file failed ({e})"
        ));
        500
    })
}

/// The rest of a chunked body, de-chunked into `out`.
async fn collect_chunked(c: &mut Client, r: &Req<'_>, plan: &mut BodyPlan, out: &mut Spool) -> Result<(), u16> {
    let head_len = c.head.head_len;
    let mut d = ChunkedDecoder::new();
    let initial = match plan {
        BodyPlan::Buffered { len } => *len,
        BodyPlan::StreamChunked { initial, .. } => *initial,
        _ => 0,
    };
    let part = &c.buf[head_len..head_len + initial];
    let f = spool_chunks(&mut d, part, out)?;
    if f.done {
        return Ok(());
    }
    let max = r.conf.client_max_body_size;
    let mut tmp = Vec::with_capacity(UP_BUF);
    loop {
        tmp.clear();
        match c.stream.read_append(tmp, UP_BUF, r.conf.client_body_timeout).await {
            Ok((0, _)) => return Err(body_read_failed(c, None)),
            Err(e) => return Err(body_read_failed(c, Some(e))),
            Ok((_, b)) => tmp = b,
        }
        let f = spool_chunks(&mut d, &tmp, out)?;
        if max != 0 && d.total > max {
            return Err(413);
        }
        if f.done {
            // Pipelined bytes after the body stay for the next request.
            c.buf.extend_from_slice(&tmp[f.consumed..]);
            c.consumed = c.buf.len() - (tmp.len() - f.consumed);
            return Ok(());
        }
    }
}

/// Decodes `raw` into the spool: 400 for a bad chunk, 500 when the spool fails.
fn spool_chunks(d: &mut ChunkedDecoder, raw: &[u8], out: &mut Spool) -> Result<crate::proto::h1::body::Fed, u16> {
    let mut failed = None;
    let f = d
        .feed(raw, |rg| {
            if failed.is_none() {
                failed = out.push(&raw[rg]).err();
            }
        })
        .map_err(|_| 400u16)?;
    match failed {
        Some(e) => {
            log::crit(format_args!(
                "writing the request body to a temporary file failed ({e})"
            ));
            Err(500)
        }
        None => Ok(f),
    }
}

/// One try against one server.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    c: &mut Client,
    r: &mut Req<'_>,
    pp: &ProxyPass,
    addr: &Peer,
    plan: &mut BodyPlan,
    up_body: UpBody,
    replayable: bool,
    more: bool,
) -> Result<bool, Fail> {
    let conf = r.conf;
    let up = &pp.upstream;
    let t0 = Instant::now();
    let mut rec = Attempt {
        addr: addr.clone(),
        status: 0,
        connect_ms: 0,
        header_ms: 0,
        response_ms: 0,
    };
    // A pooled connection may have been closed by the upstream while idle: when the
    // request can be replayed, such a failure is retried once on a fresh connection
    // and not counted against the server.
    let tls = pp.tls.as_deref().map(|t| (upstream_name(c, r, pp, t), t.id));
    // A name that is not one is the configuration's fault, found before connecting:
    // 500, never counted against the server (nginx's ngx_http_upstream_ssl_name).
    if let Some((name, _)) = &tls {
        if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
            log::error(format_args!(
                "invalid proxy_ssl_name \"{name}\", client: {}, server: {}",
                c.peer.ip(),
                r.server.primary_name
            ));
            return Err(Fail::new(FailKind::Internal, Phase::TlsHandshake, false));
        }
    }
    let key: crate::net::pool::TlsKey = tls
        .as_ref()
        .map_or((0, Box::from("")), |(n, id)| (*id, n.as_str().into()));
    let mut pooled = if replayable && up.keepalive > 0 {
        c.w.pool.borrow_mut().take(addr, &key)
    } else {
        None
    };
    let replay_ok = c.head.method().idempotent() || conf.proxy_next_upstream.non_idempotent;
    let before = c.attempts.len();
    let result = loop {
        let reused = pooled.is_some();
        let mut conn = match pooled.take() {
            Some(p) => p,
            None => match Stream::connect_peer(addr, conf.proxy_connect_timeout).await {
                Ok(s) => {
                    if conf.proxy_socket_keepalive && addr.ip().is_some() {
                        s.set_keepalive();
                    }
                    match (&pp.tls, &tls) {
                        (Some(t), Some((name, _))) => match upstream_handshake(s, t, name, conf).await {
                            Ok(s) => UpConn::new(s, addr.clone(), key.clone(), UP_BUF),
                            Err(f) => break Err(f),
                        },
                        _ => UpConn::new(s, addr.clone(), key.clone(), UP_BUF),
                    }
                }
                Err(e) => break Err(Fail::io(e, Phase::Connect, false)),
            },
        };
        rec.connect_ms = ms_since(t0);
        match exchange(c, r, pp, &mut conn, plan, up_body, more, &mut rec, t0).await {
            Ok((keep_client, reusable)) => {
                conn.requests += 1;
                if reusable && conn.requests < up.keepalive_requests && conn.born.elapsed() < up.keepalive_time {
                    c.w.pool.borrow_mut().put(conn, up.keepalive, up.keepalive_timeout);
                }
                break Ok(keep_client);
            }
            // Only a request that was not sent, or may be sent twice, goes again
            // (nginx: a POST, LOCK or PATCH that reached the upstream is not replayed
            // without `proxy_next_upstream non_idempotent`).
            Err(ExErr::Stale { sent, .. }) if reused && (!sent || replay_ok) => continue,
            Err(ExErr::Stale { sent, os }) => {
                let phase = if sent { Phase::ReadHead } else { Phase::SendRequest };
                break Err(Fail {
                    os,
                    ..Fail::new(FailKind::Error, phase, sent)
                });
            }
            Err(ExErr::Fail(f)) => break Err(f),
        }
    };
    rec.status = match &result {
        Ok(_) => c.resp.code,
        Err(Fail {
            kind: FailKind::Status(s),
            ..
        }) => *s,
        Err(_) => 0,
    };
    rec.response_ms = ms_since(t0);
    c.attempts.truncate(before);
    c.attempts.push(rec);
    result
}

/// The name an upstream's TLS names (`proxy_ssl_name`, else `$proxy_host`; without
/// a port, as nginx).
fn upstream_name(c: &Client, r: &Req<'_>, pp: &ProxyPass, t: &UpstreamTls) -> String {
    let mut name = Vec::new();
    match &t.name {
        Some(tpl) => tpl.render(&c.ctx(r), &mut name),
        None => name.extend_from_slice(pp.proxy_host.as_bytes()),
    }
    strip_port(&String::from_utf8_lossy(&name)).to_string()
}

/// `host`, `[v6]`, from `host:port` or `[v6]:port`.
fn strip_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    }
}

/// The TLS handshake with an upstream, within `proxy_connect_timeout`; nginx's error
/// words when it fails.
async fn upstream_handshake(s: Stream, t: &UpstreamTls, name: &str, conf: &LocConf) -> Result<Stream, Fail> {
    // Checked valid in `attempt` before connecting.
    let Ok(server) = rustls::pki_types::ServerName::try_from(name.to_string()) else {
        return Err(Fail::new(FailKind::Internal, Phase::TlsHandshake, false));
    };
    let hs = tls::connect(s.tcp(), t.config.clone(), server);
    let why = match tokio::time::timeout(conf.proxy_connect_timeout, hs).await {
        Ok(Ok(tls)) => {
            let mut s = s;
            s.start_tls(tls);
            return Ok(s);
        }
        Err(_) => return Err(Fail::new(FailKind::Timeout, Phase::TlsHandshake, false)),
        Ok(Err(tls::HandshakeFail::Tls(rustls::Error::InvalidCertificate(e)))) => certificate_error(&e, name),
        Ok(Err(tls::HandshakeFail::Tls(rustls::Error::General(m)))) if m == "certificate chain too long" => {
            "upstream SSL certificate verify error: (22:certificate chain too long)".to_string()
        }
        Ok(Err(e)) => e.to_string(),
    };
    s.tcp().shutdown(Shutdown::Both);
    Err(Fail {
        os: Some(std::io::Error::other(why)),
        ..Fail::new(FailKind::Error, Phase::TlsHandshake, false)
    })
}

/// nginx's words (OpenSSL's verify codes) for a certificate that does not verify.
fn certificate_error(e: &rustls::CertificateError, name: &str) -> String {
    use crate::config::tls::{openssl_code, openssl_reason};
    match (e, openssl_code(e)) {
        (rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. }, _) => {
            format!("upstream SSL certificate does not match \"{name}\"")
        }
        (e, 0) => format!("upstream SSL certificate verify error: ({e})"),
        (_, code) => format!(
            "upstream SSL certificate verify error: ({code}:{})",
            openssl_reason(code)
        ),
    }
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// `b` with room for at least `want` more bytes (buffers grow only for large bodies).
fn sized(mut b: Vec<u8>, want: usize) -> Vec<u8> {
    if b.capacity() - b.len() < want {
        b.reserve(want);
    }
    b
}

fn fatal(kind: FailKind, phase: Phase) -> ExErr {
    ExErr::Fail(Fail::fatal(kind, phase))
}

enum ExErr {
    /// The connection failed before any response byte (maybe a stale keep-alive
    /// one); `sent`: after the request was written; `os`: the error, if not EOF.
    Stale {
        sent: bool,
        os: Option<std::io::Error>,
    },
    Fail(Fail),
}

/// Sends the request on `conn` and relays the response. Returns (client may be kept,
/// upstream may be reused).
#[allow(clippy::too_many_arguments)]
async fn exchange(
    c: &mut Client,
    r: &mut Req<'_>,
    pp: &ProxyPass,
    conn: &mut UpConn,
    plan: &mut BodyPlan,
    up_body: UpBody,
    more: bool,
    rec: &mut Attempt,
    t0: Instant,
) -> Result<(bool, bool), ExErr> {
    let conf = r.conf;
    let head_len = c.head.head_len;
    // Upstream head plus the body bytes already here, in one write.
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    let info = write_request_head(&mut out, &c.ctx(r), conf, pp, r.loc_prefix, up_body);
    match plan {
        BodyPlan::None => {}
        BodyPlan::Buffered { len } if c.head.body_kind() == BodyKind::Chunked => {
            let _ = reencode(&mut ChunkedDecoder::new(), &c.buf[head_len..head_len + *len], &mut out);
        }
        BodyPlan::Buffered { len } => out.extend_from_slice(&c.buf[head_len..head_len + *len]),
        BodyPlan::Collected(sp) => out.extend_from_slice(sp.in_memory().unwrap_or_default()),
        BodyPlan::StreamChunked { initial, .. } => {
            let _ = reencode(
                &mut ChunkedDecoder::new(),
                &c.buf[head_len..head_len + *initial],
                &mut out,
            );
        }
        BodyPlan::StreamLength { initial, .. } => out.extend_from_slice(&c.buf[head_len..head_len + *initial]),
    }
    match conn.stream.write_all(out, conf.proxy_send_timeout).await {
        Ok(b) => c.out = b,
        Err(IoFail::Timeout) => return Err(ExErr::Fail(Fail::new(FailKind::Timeout, Phase::SendRequest, true))),
        Err(IoFail::Io(e)) => {
            return Err(ExErr::Stale {
                sent: false,
                os: Some(e),
            })
        }
    }
    // The rest of a streamed body, full duplex: an upstream that answers before the
    // body is all sent (413, 401, ...) is relayed at once, the body is abandoned
    // (neither connection is reused; the client's rest is drained by a lingering
    // close). Readiness holds no buffer and consumes nothing, so the response waits
    // intact in the socket.
    let mut ubuf = std::mem::take(&mut conn.buf);
    let mut early = false;
    if plan.has_rest() {
        let stream = &conn.stream;
        let send = send_rest(c, r, stream, plan, ubuf);
        let answered = stream.readable(NO_DEADLINE);
        tokio::select! {
            biased;
            res = send => ubuf = res?,
            _ = answered => {
                early = true;
                c.head.keep_alive = false;
                c.linger = Some(conf.clone());
                ubuf = Vec::with_capacity(UP_BUF);
            }
        }
    }
    // The response head. Interim 1xx responses are skipped (ringx does not forward
    // Expect); several may arrive in one read together with the final head.
    let bad_head = |kind| ExErr::Fail(Fail::new(kind, Phase::ReadHead, true));
    ubuf.clear();
    ubuf.resize(RESERVE, 0);
    let hstart = RESERVE;
    // The final head must arrive within proxy_read_timeout however many interim
    // responses come first; each interim one is dropped from the buffer once parsed,
    // so an upstream streaming endless `100 Continue` costs bounded memory.
    let deadline = Deadline::At(Instant::now() + conf.proxy_read_timeout);
    // A client that goes away while a slow upstream thinks is noticed (nginx checks
    // the client connection too): the upstream connection is closed at once and the
    // request logged 499. Watched only once the wait is long enough to matter, so a
    // fast upstream costs no extra operation.
    let watch_from = tokio::time::Instant::now() + CLIENT_WATCH_AFTER;
    let mut got_any = false;
    // The largest head the upstream may send (nginx: the `proxy_buffer_size` buffer
    // it is read into).
    let head_max = usize::try_from(conf.proxy_buffer_size).unwrap_or(usize::MAX).max(1);
    'head: loop {
        // A head over the limit is "too big" however the bytes arrive (checked once
        // it is parsed, or once that many bytes are here without its end).
        let room = (hstart + head_max.max(UP_READ_AHEAD)).saturating_sub(ubuf.len()).max(1);
        let client = &c.stream;
        let ignore = conf.proxy_ignore_client_abort;
        let gone = async {
            if ignore {
                // `proxy_ignore_client_abort on`: the upstream is left to answer.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(watch_from).await;
            client.closed().await
        };
        let res = tokio::select! {
            biased;
            res = conn.stream.read_append(ubuf, room, deadline) => res,
            () = gone => {
                log::info(format_args!(
                    "client prematurely closed connection, so upstream connection is closed too while reading response header from upstream, client: {}",
                    c.peer.ip()
                ));
                return Err(fatal(FailKind::Client(499), Phase::ReadHead));
            }
        };
        ubuf = match res {
            Ok((0, b)) if !got_any => {
                conn.buf = b;
                return Err(ExErr::Stale { sent: true, os: None });
            }
            Ok((0, _)) => return Err(bad_head(FailKind::InvalidHeader)),
            Ok((_, b)) => b,
            Err(IoFail::Timeout) => return Err(ExErr::Fail(Fail::new(FailKind::Timeout, Phase::ReadHead, true))),
            Err(IoFail::Io(e)) if !got_any => {
                return Err(ExErr::Stale {
                    sent: true,
                    os: Some(e),
                })
            }
            Err(e) => return Err(ExErr::Fail(Fail::io(e, Phase::ReadHead, true))),
        };
        got_any = true;
        loop {
            match parse_response(&ubuf[hstart..], &mut c.resp) {
                Ok(Some(())) if c.resp.head_len > head_max => return Err(bad_head(FailKind::TooBigHeader)),
                // 101 only where the client asked to switch (nginx's rule), and not
                // while a body is still on its way.
                Ok(Some(())) if c.resp.code == 101 && framing::wants_upgrade(&c.head, &c.buf) && !early => break 'head,
                Ok(Some(())) if c.resp.code == 101 => return Err(bad_head(FailKind::InvalidHeader)),
                Ok(Some(())) if c.resp.code < 200 => {
                    ubuf.drain(hstart..hstart + c.resp.head_len);
                }
                Ok(Some(())) => break 'head,
                Ok(None) if ubuf.len() - hstart >= head_max => return Err(bad_head(FailKind::TooBigHeader)),
                Ok(None) => continue 'head,
                Err(_) => return Err(bad_head(FailKind::InvalidHeader)),
            }
        }
    }
    rec.header_ms = ms_since(t0);
    // The attempt so far, for what the client's head says of it (`add_header …
    // $upstream_addr`, `$upstream_status`); `attempt` replaces it with the final one.
    c.attempts.push(Attempt {
        status: c.resp.code,
        response_ms: rec.header_ms,
        ..rec.clone()
    });
    c.keep_head(
        crate::config::vars::needs::UPSTREAM_HEAD,
        &ubuf[hstart..hstart + c.resp.head_len],
    );
    let code = c.resp.code;
    if more && conf.proxy_next_upstream.status(code) {
        return Err(ExErr::Fail(Fail::new(FailKind::Status(code), Phase::ReadHead, true)));
    }
    let head = &ubuf[hstart..hstart + c.resp.head_len];
    let accel = c.resp.accel_redirect.map(|s| s.get(head));
    if let Some(to) = accel.filter(|t| !t.is_empty() && !conf.proxy_ignore_headers.accel_redirect) {
        // nginx: the body is not read (the connection goes) and the request goes on
        // at the URI the upstream named.
        c.accel = Some(accel_of(c, r, head, to.to_vec()));
        conn.buf = ubuf;
        return Ok((!early && client_keep(c, r), false));
    }
    if conf.proxy_intercept_errors && code >= 300 && conf.error_page.iter().any(|e| e.code == code) {
        // nginx's ngx_http_upstream_intercept_errors: the body is not read (the
        // connection is not reused) and the error page answers.
        c.intercepted = Some(code);
        conn.buf = ubuf;
        return Ok((!early && client_keep(c, r), false));
    }
    let body = c.resp.body(c.head.method() == Method::Head);
    let upstream_keep = c.resp.keep_alive;
    let relayed = relay_response(c, r, conn, ubuf, hstart).await;
    relayed.map(|(k, exact)| {
        let reuse = framing::upstream_reusable(upstream_keep, info.keep_alive, body, exact && !early);
        (k && !early, reuse)
    })
}

/// Streams the rest of the request body (what did not arrive with the head) to the
/// upstream; the buffer comes back for the response.
async fn send_rest(
    c: &mut Client,
    r: &mut Req<'_>,
    stream: &Stream,
    plan: &mut BodyPlan,
    mut ubuf: Vec<u8>,
) -> Result<Vec<u8>, ExErr> {
    let conf = r.conf;
    match plan {
        BodyPlan::StreamLength { initial, total } => {
            let mut remaining = *total - *initial as u64;
            while remaining > 0 {
                ubuf.clear();
                let want = (remaining as usize).min(UP_BUF_LARGE);
                match c
                    .stream
                    .read_append(sized(ubuf, want), want, conf.client_body_timeout)
                    .await
                {
                    Ok((0, _)) | Err(_) => {
                        log::info(format_args!(
                            "client prematurely closed connection while sending request body, client: {}",
                            c.peer.ip()
                        ));
                        return Err(fatal(FailKind::Client(400), Phase::SendBody));
                    }
                    Ok((n, b)) => {
                        remaining -= n as u64;
                        ubuf = conn_write(stream, b, conf).await.map_err(|f| ExErr::Fail(f.final_()))?;
                    }
                }
            }
            *plan = BodyPlan::Buffered { len: 0 };
        }
        BodyPlan::StreamChunked { decoder, .. } => {
            let max = conf.client_max_body_size;
            let mut enc = Vec::with_capacity(UP_BUF_LARGE + 64);
            while !decoder.is_done() {
                ubuf.clear();
                match c
                    .stream
                    .read_append(sized(ubuf, UP_BUF_LARGE), UP_BUF_LARGE, conf.client_body_timeout)
                    .await
                {
                    Ok((0, _)) | Err(_) => {
                        return Err(fatal(FailKind::Client(400), Phase::SendBody));
                    }
                    Ok((_, b)) => ubuf = b,
                }
                enc.clear();
                let fed = match reencode(decoder, &ubuf, &mut enc) {
                    Ok(f) => f,
                    Err(_) => {
                        let _ = send_error(c, r, 400, false).await;
                        return Err(fatal(FailKind::Client(400), Phase::ClientBody));
                    }
                };
                if max != 0 && decoder.total > max {
                    let _ = send_error(c, r, 413, false).await;
                    return Err(fatal(FailKind::Client(413), Phase::ClientBody));
                }
                if fed.done {
                    c.buf.extend_from_slice(&ubuf[fed.consumed..]);
                }
                enc = conn_write(stream, enc, conf)
                    .await
                    .map_err(|f| ExErr::Fail(f.final_()))?;
            }
            *plan = BodyPlan::Buffered { len: 0 };
        }
        BodyPlan::Collected(sp) => {
            let mut off = 0;
            loop {
                ubuf.clear();
                let n = match sp.read_at(off, &mut ubuf, UP_BUF_LARGE) {
                    Ok(n) => n,
                    Err(e) => {
                        log::crit(format_args!(
                            "pread() of the request body's temporary file failed ({e})"
                        ));
                        return Err(ExErr::Fail(
                            Fail::new(FailKind::Internal, Phase::SendBody, true).final_(),
                        ));
                    }
                };
                if n == 0 {
                    break;
                }
                off += n as u64;
                ubuf = conn_write(stream, ubuf, conf)
                    .await
                    .map_err(|f| ExErr::Fail(f.final_()))?;
            }
        }
        _ => {}
    }
    Ok(ubuf)
}

/// The upstream switched protocols (WebSocket): the 101 head to the client, then
/// the two connections joined byte for byte (`net::tunnel`) until both sides are
/// done, as nginx's upgraded mode does: bytes the upstream sent after its head go to
/// the client first, bytes the client sent after its request go to the upstream
/// first. Reads from the upstream wait up to `proxy_read_timeout`, writes to it
/// `proxy_send_timeout`, writes to the client `send_timeout`; reads from the client
/// have no timeout. Neither connection is reused.
async fn upgrade(
    c: &mut Client,
    r: &mut Req<'_>,
    conn: &mut UpConn,
    ubuf: Vec<u8>,
    hstart: usize,
) -> Result<(bool, bool), ExErr> {
    let conf = r.conf;
    let upstream_head = &ubuf[hstart..hstart + c.resp.head_len];
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    let rs = c.resp.reason.get(upstream_head);
    status_line(
        &mut out,
        101,
        if rs.is_empty() { b"Switching Protocols" } else { rs },
        Own {
            server: true,
            date: true,
        },
    );
    let pass = Pass {
        hop_kept: b"upgrade",
        gz: false,
        expires: false,
    };
    pass_headers(&mut out, conf, &c.resp, upstream_head, pass, &|n, v| {
        rewritten(c, r, n, v)
    });
    out.extend_from_slice(b"Connection: upgrade\r\n");
    write_add_headers(&mut out, c, r, 101);
    out.extend_from_slice(b"\r\n");
    r.sent = Sent {
        status: 101,
        head_bytes: out.len() as u64,
        ..Sent::default()
    };
    out.extend_from_slice(&ubuf[hstart + c.resp.head_len..]);
    let peer = c.peer;
    let gone = |e| client_write_failed(e, peer);
    c.out = c.stream.write_all(out, conf.send_timeout).await.map_err(gone)?;
    let early = framing::pipelined(&c.buf, c.consumed).to_vec();
    conn_write(&conn.stream, early, conf)
        .await
        .map_err(|f| ExErr::Fail(f.final_()))?;
    c.consumed = c.buf.len();
    let to_upstream = tunnel::Limits::new(NO_DEADLINE, conf.proxy_send_timeout);
    let to_client = tunnel::Limits::new(conf.proxy_read_timeout, conf.send_timeout);
    let Some(client) = c.stream.h1() else {
        return Err(fatal(FailKind::InvalidHeader, Phase::ReadHead));
    };
    let t = tunnel::tunnel(client, &conn.stream, to_upstream, to_client).await;
    if let Some(IoFail::Timeout) = t.failed {
        log::info(format_args!(
            "upgraded connection timed out (110: Connection timed out), client: {}",
            c.peer.ip()
        ));
    }
    Ok((false, false))
}

/// Copies the upstream's response headers to the client head, less the hop-by-hop
/// ones (but `hop_kept`, as `Upgrade` for a 101) and those `proxy_hide_header` names.
/// The body of a response the gzip filter compresses: the upstream's body decoded
/// from its framing (the bytes after `body_start` first), compressed with a sync
/// flush after each read (a streamed response stays streamed), written as chunks
/// (`chunked`) or raw after the head that `c.out` holds. Ok: whether the upstream's
/// bytes ended exactly where its response did.
async fn relay_gzip(
    c: &mut Client,
    r: &Req<'_>,
    conn: &mut UpConn,
    ubuf: &mut Vec<u8>,
    body_start: usize,
    chunked: bool,
) -> Result<bool, ExErr> {
    let conf = r.conf;
    let (send_t, read_t) = (conf.send_timeout, conf.proxy_read_timeout);
    let peer = c.peer;
    let mut body = c.resp.body(false);
    let mut dec = ChunkedDecoder::new();
    let mut enc = Some(gzip::Encoder::new(conf.gzip.level));
    let (mut out, mut z) = (std::mem::take(&mut c.out), Vec::new());
    let (mut pos, mut exact) = (body_start, true);
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    loop {
        let avail = &ubuf[pos..];
        let done = match &mut body {
            RespBody::Length(left) => {
                let take = (avail.len() as u64).min(*left) as usize;
                exact &= take == avail.len();
                *left -= take as u64;
                runs.push(pos..pos + take);
                *left == 0
            }
            RespBody::Chunked => {
                let fed = dec
                    .feed(avail, |rg| runs.push(rg.start + pos..rg.end + pos))
                    .map_err(|_| fatal(FailKind::InvalidBody, Phase::ReadBody))?;
                exact &= !fed.done || fed.consumed == avail.len();
                fed.done
            }
            RespBody::Close => {
                runs.push(pos..ubuf.len());
                false
            }
            RespBody::None => true,
        };
        if let Some(e) = enc.as_mut() {
            let n = runs.len();
            for (i, rg) in runs.drain(..).enumerate() {
                if i + 1 == n && !done {
                    e.push_flush(&ubuf[rg], &mut z);
                } else {
                    e.push(&ubuf[rg], &mut z);
                }
            }
        }
        if done {
            if let Some(e) = enc.take() {
                e.finish(&mut z);
            }
        }
        frame(&mut out, &z, chunked, done);
        z.clear();
        if !out.is_empty() {
            out = c
                .send_all(out, send_t)
                .await
                .map_err(|e| client_write_failed(e, peer))?;
            out.clear();
        }
        if done {
            break;
        }
        ubuf.clear();
        let (n, b) = conn
            .stream
            .read_append(sized(std::mem::take(ubuf), UP_BUF_LARGE), UP_BUF_LARGE, read_t)
            .await
            .map_err(|e| {
                ExErr::Fail(Fail {
                    client_gone: true,
                    ..Fail::io(e, Phase::ReadBody, true).final_()
                })
            })?;
        *ubuf = b;
        pos = 0;
        if n == 0 {
            if body != RespBody::Close {
                return Err(fatal(FailKind::Error, Phase::ReadBody));
            }
            body = RespBody::None;
            exact = false;
        }
    }
    c.out = out;
    Ok(exact)
}

/// Compressed bytes as the client's framing wants them (the last chunk at the end).
fn frame(out: &mut Vec<u8>, z: &[u8], chunked: bool, last: bool) {
    if chunked {
        gzip::put_chunk(out, z);
        if last {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    } else {
        out.extend_from_slice(z);
    }
}

/// How the upstream's headers are passed.
#[derive(Clone, Copy)]
struct Pass<'a> {
    /// A hop-by-hop header that still goes (`Upgrade` on a 101).
    hop_kept: &'a [u8],
    /// The body is being compressed: Accept-Ranges goes and a strong ETag becomes
    /// weak (nginx).
    gz: bool,
    /// `expires` applies: ringx writes Expires and Cache-Control instead.
    expires: bool,
}

/// What an X-Accel-Redirect response leaves for the final one (nginx's upstream
/// headers with `redirect` set; `Set-Cookie` through the `proxy_cookie_*` rules).
fn accel_of(c: &Client, r: &Req<'_>, head: &[u8], to: Vec<u8>) -> Accel {
    let mut a = Accel {
        to,
        headers: Vec::new(),
        content_type: None,
    };
    for h in &c.resp.headers {
        let (name, value) = (h.name.get(head), h.value.get(head));
        if name.eq_ignore_ascii_case(b"content-type") {
            a.content_type = Some(String::from_utf8_lossy(value).into_owned());
            continue;
        }
        if !["set-cookie", "content-disposition", "cache-control", "expires"]
            .iter()
            .any(|k| k.as_bytes().eq_ignore_ascii_case(name))
        {
            continue;
        }
        let value = rewritten(c, r, name, value).unwrap_or_else(|| value.to_vec());
        a.headers.extend_from_slice(name);
        a.headers.extend_from_slice(b": ");
        a.headers.extend_from_slice(&value);
        a.headers.extend_from_slice(b"\r\n");
    }
    a
}

/// Follows an X-Accel-Redirect: a named location (`@name`), or an internal
/// redirect to the URI (its `?args` split off; GET unless HEAD, as nginx). A URI
/// that climbs out (`..`) or is not absolute is a 404 (nginx's
/// ngx_http_parse_unsafe_uri).
fn accel_redirect(c: &mut Client, r: &mut Req<'_>, a: Accel) -> Step {
    r.accel_headers = a.headers;
    r.accel_type = a.content_type;
    if a.to.first() == Some(&b'@') {
        return Step::Named(String::from_utf8_lossy(&a.to).into_owned());
    }
    let (uri, args) = match a.to.iter().position(|&b| b == b'?') {
        Some(q) => (&a.to[..q], &a.to[q + 1..]),
        None => (&a.to[..], &b""[..]),
    };
    let unsafe_uri =
        uri.first() != Some(&b'/') || uri.split(|&b| b == b'/').any(|seg| seg == b"..") || uri.contains(&0);
    if unsafe_uri {
        return Step::error(404);
    }
    files::set_uri(c, r, uri, Some(args));
    r.as_get = true;
    Step::Redirect
}

/// An upstream's header value as the client gets it: `Set-Cookie` through the
/// `proxy_cookie_*` rules, `Location` and `Refresh` through `proxy_redirect`.
fn rewritten(c: &Client, r: &Req<'_>, name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    if name.eq_ignore_ascii_case(b"set-cookie") {
        return cookie::rewrite(c, r, value);
    }
    proxy_redirect(c, r, name, value)
}

/// `proxy_redirect` on a `Location` or `Refresh` (after its `url=`) from the
/// upstream: the first rule that matches rewrites it, and a rewritten relative
/// `Location` is made absolute (nginx's `headers_out.location`); `None`: as it is.
fn proxy_redirect(c: &Client, r: &Req<'_>, name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let rules = &r.conf.proxy_redirect;
    if rules.is_empty() {
        return None;
    }
    let location = name.eq_ignore_ascii_case(b"location");
    let prefix = if location {
        0
    } else if name.eq_ignore_ascii_case(b"refresh") {
        value.windows(4).position(|w| w.eq_ignore_ascii_case(b"url="))? + 4
    } else {
        return None;
    };
    let rest = &value[prefix..];
    let to = rules::apply(c, &c.ctx(r), rules, rest)?;
    let mut v = Vec::with_capacity(prefix + to.len());
    v.extend_from_slice(&value[..prefix]);
    v.extend_from_slice(&to);
    if location && v.first() == Some(&b'/') {
        return Some(absolute_location(c, r, &v));
    }
    Some(v)
}

/// A header value rewritten for the client (name, value → the new value).
type Rewriter<'a> = dyn Fn(&[u8], &[u8]) -> Option<Vec<u8>> + 'a;

/// The upstream's headers that go to the client; `redirect` may rewrite a value
/// (`proxy_redirect`).
fn pass_headers(
    out: &mut Vec<u8>,
    conf: &LocConf,
    resp: &ResponseHead,
    upstream_head: &[u8],
    p: Pass<'_>,
    redirect: &Rewriter<'_>,
) {
    for h in &resp.headers {
        let name = h.name.get(upstream_head);
        let hidden = conf
            .proxy_hide_headers
            .iter()
            .any(|x| x.as_bytes().eq_ignore_ascii_case(name));
        if hidden || (h.hop && !name.eq_ignore_ascii_case(p.hop_kept)) {
            continue;
        }
        let value = h.value.get(upstream_head);
        if (p.gz && name.eq_ignore_ascii_case(b"accept-ranges"))
            || (p.expires && (name.eq_ignore_ascii_case(b"expires") || name.eq_ignore_ascii_case(b"cache-control")))
        {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        if p.gz && name.eq_ignore_ascii_case(b"etag") && value.first() == Some(&b'"') {
            out.extend_from_slice(b"W/");
        }
        match redirect(name, value) {
            Some(v) => out.extend_from_slice(&v),
            None => out.extend_from_slice(value),
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The value of an upstream response header.
fn upstream_header<'a>(resp: &ResponseHead, upstream_head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    resp.headers
        .iter()
        .find(|h| h.name.get(upstream_head).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(upstream_head))
}

/// What the request brings to the gzip filter's decision.
fn gzip_asked(c: &Client) -> gzip::Asked<'_> {
    let h = |n| c.head.header(&c.buf, n);
    gzip::Asked {
        accept_encoding: h("accept-encoding"),
        user_agent: h("user-agent"),
        via: h("via").is_some(),
        http10: !c.stream.is_h2() && c.head.minor == 0,
    }
}

/// The gzip filter's decision for an upstream response.
fn gzip_upstream(c: &Client, conf: &LocConf, upstream_head: &[u8], mode: ClientFraming) -> gzip::Gzip {
    if (mode == ClientFraming::None && c.head.method() != Method::Head) || !conf.gzip.on {
        return gzip::Gzip::No;
    }
    let find = |n: &[u8]| upstream_header(&c.resp, upstream_head, n);
    let offered = gzip::Offered {
        status: c.resp.code,
        content_type: find(b"content-type").unwrap_or_default(),
        content_length: c.resp.content_length,
        encoded: find(b"content-encoding").is_some_and(|v| !v.is_empty()),
    };
    gzip::decide(&conf.gzip, || gzip_asked(c), &offered)
}

/// A write to the client failed: the client's fault, never the upstream's, logged
/// at info naming the client.
fn client_write_failed(e: IoFail, peer: SocketAddr) -> ExErr {
    log::info(format_args!(
        "{} while sending to client, client: {}",
        match e {
            IoFail::Timeout => "client timed out (110: Connection timed out)".to_string(),
            IoFail::Io(e) => format!("writev() failed ({})", crate::config::parser::os_err(&e)),
        },
        peer.ip()
    ));
    fatal(FailKind::Client(499), Phase::SendToClient)
}

async fn conn_write(stream: &Stream, b: Vec<u8>, conf: &LocConf) -> Result<Vec<u8>, Fail> {
    stream
        .write_all(b, conf.proxy_send_timeout)
        .await
        .map_err(|e| Fail::io(e, Phase::SendBody, true))
}

/// Writes the client head and relays the body. `ubuf[hstart..]` holds the response
/// head and the first body bytes. However the relay ends, the access log gets what
/// reached the client, counted by the client stream (nginx: `$bytes_sent` from
/// `c->sent`, `$body_bytes_sent` less the head); a client cut off before any byte is
/// 499.
async fn relay_response(
    c: &mut Client,
    r: &mut Req<'_>,
    conn: &mut UpConn,
    ubuf: Vec<u8>,
    hstart: usize,
) -> Result<(bool, bool), ExErr> {
    let mark = c.stream.written();
    let res = if c.resp.code == 101 {
        upgrade(c, r, conn, ubuf, hstart).await
    } else {
        relay(c, r, conn, ubuf, hstart).await
    };
    let bytes = c.stream.written() - mark;
    r.sent.bytes = bytes;
    r.sent.body_bytes = bytes.saturating_sub(r.sent.head_bytes);
    if bytes == 0 && matches!(&res, Err(ExErr::Fail(f)) if f.client_gone) {
        r.sent.status = 499;
    }
    res
}

async fn relay(
    c: &mut Client,
    r: &mut Req<'_>,
    conn: &mut UpConn,
    mut ubuf: Vec<u8>,
    hstart: usize,
) -> Result<(bool, bool), ExErr> {
    let conf = r.conf;
    let is_head = c.head.method() == Method::Head;
    let rb = c.resp.body(is_head);
    // `chunked_transfer_encoding off`: an HTTP/1.1 client is framed as an HTTP/1.0 one
    // (a body of unknown length ends with the connection).
    let chunk_ok = conf.chunked_transfer_encoding || c.stream.is_h2();
    let mode = ClientFraming::choose(rb, if chunk_ok { c.head.minor } else { 0 });
    let mut keep = client_keep(c, r) && mode.delimited();
    let code = r.err_status.unwrap_or(c.resp.code);
    // Build the client head in c.out.
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    let upstream_head = &ubuf[hstart..];
    let rs = c.resp.reason.get(upstream_head);
    let passed = |name: &[u8]| {
        !conf
            .proxy_hide_headers
            .iter()
            .any(|x| x.as_bytes().eq_ignore_ascii_case(name))
            && c.resp
                .headers
                .iter()
                .any(|h| h.name.get(upstream_head).eq_ignore_ascii_case(name))
    };
    let own = Own {
        server: !passed(b"server"),
        date: !passed(b"date"),
    };
    status_line(
        &mut out,
        code,
        if rs.is_empty() || code != c.resp.code {
            reason(code).as_bytes()
        } else {
            rs
        },
        own,
    );
    let gz = gzip_upstream(c, conf, upstream_head, mode);
    let compress = gz == gzip::Gzip::Compress;
    let expires = conf.expires != crate::proto::conditional::Expires::Off
        && crate::proto::conditional::expires(conf.expires, code, None, 0).is_some();
    let pass = Pass {
        hop_kept: b"",
        gz: compress,
        expires,
    };
    pass_headers(&mut out, conf, &c.resp, upstream_head, pass, &|n, v| {
        rewritten(c, r, n, v)
    });
    // Compressed: chunked to HTTP/1.1 (and HTTP/2), close-delimited to HTTP/1.0.
    let gz_chunked = compress && (c.stream.is_h2() || (c.head.minor == 1 && chunk_ok));
    if compress {
        keep = gz_chunked && client_keep(c, r);
        if gz_chunked && !is_head {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        out.extend_from_slice(b"Content-Encoding: gzip\r\n");
    } else {
        mode.write_header(code, c.resp.content_length, &mut out);
    }
    if gz.vary(&conf.gzip) {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    if c.w.quitting.get() {
        keep = false;
    }
    out.extend_from_slice(if keep {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    });
    if expires {
        let lm = upstream_header(&c.resp, upstream_head, b"last-modified")
            .and_then(crate::proto::conditional::parse_http_date);
        write_expires(&mut out, conf, code, lm);
    }
    write_add_headers(&mut out, c, r, code);
    out.extend_from_slice(b"\r\n");
    c.keep_head(crate::config::vars::needs::SENT_HEAD, &out);
    r.sent = Sent {
        status: code,
        head_bytes: out.len() as u64,
        ..Sent::default()
    };

    let accel = c
        .resp
        .accel_limit_rate
        .filter(|_| !conf.proxy_ignore_headers.accel_limit_rate);
    let rate = accel.and_then(|s| std::str::from_utf8(s.get(upstream_head)).ok()?.trim().parse().ok());
    pace::start(c, r, rate);
    let body_start = hstart + c.resp.head_len;
    let filled = ubuf.len();
    let send_t = conf.send_timeout;
    let read_t = conf.proxy_read_timeout;
    // The upstream's bytes ended exactly where the response did (nothing extra,
    // nothing cut): one condition of reusing the connection (framing::upstream_reusable).
    let mut exact = true;
    let peer = c.peer;
    let client_err = |e: IoFail| client_write_failed(e, peer);
    // Logged once, with the request's context, where the attempt ends (proxy()).
    let up_err = |e: IoFail| {
        ExErr::Fail(Fail {
            client_gone: true,
            ..Fail::io(e, Phase::ReadBody, true).final_()
        })
    };

    if compress && !is_head {
        c.out = out;
        let exact = relay_gzip(c, r, conn, &mut ubuf, body_start, gz_chunked).await?;
        ubuf.clear();
        conn.buf = ubuf;
        return Ok((keep, exact));
    }
    let side = |e: backlog::Side| match e {
        backlog::Side::Upstream(e) => up_err(e),
        backlog::Side::Client(e) => client_err(e),
    };
    // First write: client head placed just before the body bytes that came with the
    // upstream head, when it fits in the room there.
    let mut dec = ChunkedDecoder::new();
    let (first_end, mut state) = match mode {
        ClientFraming::None => (body_start, 0u64),
        ClientFraming::Length(n) => {
            let take = ((filled - body_start) as u64).min(n);
            if (filled - body_start) as u64 > n {
                exact = false;
            }
            (body_start + take as usize, n - take)
        }
        ClientFraming::ChunkedPass => {
            let fed = dec
                .feed(&ubuf[body_start..filled], |_| {})
                .map_err(|_| ExErr::Fail(Fail::new(FailKind::InvalidBody, Phase::ReadBody, true)))?;
            if fed.done && body_start + fed.consumed != filled {
                exact = false;
            }
            (body_start + fed.consumed, 0)
        }
        ClientFraming::Raw => (filled, 0),
        ClientFraming::Dechunk | ClientFraming::Encode => (body_start, 0),
    };
    // Read ahead of the client (`proxy_buffering`) when more is to come from the
    // upstream than this first write; compressed responses stream (relay_gzip
    // writes as it compresses).
    let more = match mode {
        ClientFraming::None => false,
        ClientFraming::Length(_) => state > 0,
        ClientFraming::ChunkedPass => !dec.is_done(),
        _ => true,
    };
    let says = c.resp.accel_buffering.map(|s| s.get(&ubuf[hstart..]));
    backlog::start(c, conf, says.filter(|_| more), more);
    if out.len() <= body_start {
        let s = body_start - out.len();
        ubuf[s..body_start].copy_from_slice(&out);
        ubuf = backlog::send(c, ubuf, s, first_end, send_t).await.map_err(client_err)?;
        c.out = out;
    } else {
        let o = backlog::send_all(c, out, send_t).await.map_err(client_err)?;
        c.out = o;
        ubuf = c
            .send_range(ubuf, body_start, first_end, send_t)
            .await
            .map_err(client_err)?;
    }
    // The rest of the body.
    match mode {
        ClientFraming::None => {}
        ClientFraming::Length(total) => {
            // The response did not fit: grow this connection's buffer so that the
            // next one of this size (on this kept-alive connection) arrives in one
            // read. Small responses keep small buffers.
            let fit = (RESERVE + c.resp.head_len)
                .saturating_add(total as usize)
                .min(UP_BUF_LARGE);
            while state > 0 {
                ubuf.clear();
                let want = (state as usize).min(UP_BUF_LARGE);
                let (n, b) = backlog::read(c, &conn.stream, sized(ubuf, want.max(fit)), want, read_t, send_t)
                    .await
                    .map_err(side)?;
                if n == 0 {
                    return Err(fatal(FailKind::Error, Phase::ReadBody));
                }
                state -= n as u64;
                ubuf = backlog::send_all(c, b, send_t).await.map_err(client_err)?;
            }
        }
        ClientFraming::ChunkedPass => {
            let d = &mut dec;
            while !d.is_done() {
                ubuf.clear();
                let (n, b) = backlog::read(c, &conn.stream, sized(ubuf, UP_BUF_LARGE), UP_BUF_LARGE, read_t, send_t)
                    .await
                    .map_err(side)?;
                if n == 0 {
                    return Err(fatal(FailKind::Error, Phase::ReadBody));
                }
                ubuf = b;
                let fed = d
                    .feed(&ubuf, |_| {})
                    .map_err(|_| fatal(FailKind::InvalidBody, Phase::ReadBody))?;
                if fed.done && fed.consumed != ubuf.len() {
                    exact = false;
                }
                ubuf = backlog::send(c, ubuf, 0, fed.consumed, send_t)
                    .await
                    .map_err(client_err)?;
            }
        }
        ClientFraming::Dechunk => {
            exact = false;
            let mut d = ChunkedDecoder::new();
            // Data already here, then the rest; data runs are packed to the front of
            // the buffer and written in one go.
            let mut pos = body_start;
            loop {
                let mut packed = 0usize;
                let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
                let fed = d
                    .feed(&ubuf[pos..], |rg| runs.push(rg.start + pos..rg.end + pos))
                    .map_err(|_| fatal(FailKind::InvalidBody, Phase::ReadBody))?;
                for rg in runs {
                    ubuf.copy_within(rg.clone(), packed);
                    packed += rg.len();
                }
                ubuf = backlog::send(c, ubuf, 0, packed, send_t).await.map_err(client_err)?;
                if fed.done {
                    break;
                }
                ubuf.clear();
                let (n, b) = backlog::read(c, &conn.stream, sized(ubuf, UP_BUF_LARGE), UP_BUF_LARGE, read_t, send_t)
                    .await
                    .map_err(side)?;
                if n == 0 {
                    return Err(fatal(FailKind::Error, Phase::ReadBody));
                }
                ubuf = b;
                pos = 0;
            }
        }
        ClientFraming::Encode => {
            // Bytes that came with the head first.
            let mut pending: Option<(usize, usize)> = (filled > body_start).then_some((body_start, filled));
            loop {
                let (s, e) = match pending.take() {
                    Some(p) => p,
                    None => {
                        ubuf.clear();
                        ubuf.resize(CHUNK_HEADER_ROOM, 0);
                        let (n, b) =
                            backlog::read(c, &conn.stream, sized(ubuf, UP_BUF_LARGE), UP_BUF_LARGE, read_t, send_t)
                                .await
                                .map_err(side)?;
                        ubuf = b;
                        if n == 0 {
                            ubuf.clear();
                            ubuf.extend_from_slice(b"0\r\n\r\n");
                            ubuf = backlog::send_all(c, ubuf, send_t).await.map_err(client_err)?;
                            break;
                        }
                        (CHUNK_HEADER_ROOM, CHUNK_HEADER_ROOM + n)
                    }
                };
                let len = e - s;
                if s >= CHUNK_HEADER_ROOM {
                    let mut room = [0u8; CHUNK_HEADER_ROOM];
                    let hs = encode_chunk_header(len, &mut room);
                    let hl = CHUNK_HEADER_ROOM - hs;
                    ubuf[s - hl..s].copy_from_slice(&room[hs..]);
                    ubuf.truncate(e);
                    ubuf.extend_from_slice(b"\r\n");
                    let end = ubuf.len();
                    ubuf = backlog::send(c, ubuf, s - hl, end, send_t).await.map_err(client_err)?;
                } else {
                    let mut chunk = format!("{len:x}\r\n").into_bytes();
                    chunk.extend_from_slice(&ubuf[s..e]);
                    chunk.extend_from_slice(b"\r\n");
                    let _ = backlog::send_all(c, chunk, send_t).await.map_err(client_err)?;
                }
            }
        }
        ClientFraming::Raw => loop {
            ubuf.clear();
            let (n, b) = backlog::read(c, &conn.stream, sized(ubuf, UP_BUF_LARGE), UP_BUF_LARGE, read_t, send_t)
                .await
                .map_err(side)?;
            ubuf = b;
            if n == 0 {
                break;
            }
            ubuf = backlog::send_all(c, ubuf, send_t).await.map_err(client_err)?;
        },
    }
    ubuf.clear();
    conn.buf = ubuf;
    Ok((keep, exact))
}
