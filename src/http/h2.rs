//! HTTP/2 to clients (the h2 crate): a second downstream session feeding the same
//! request phases as HTTP/1.
//!
//! Data path for one HTTP/2 connection (on the worker that accepted it):
//!
//! 1. the connection: TLS with ALPN `h2`, or a plaintext connection that starts with
//!    the HTTP/2 preface where `http2 on` (prior knowledge, as nginx), is wrapped in
//!    [`crate::net::poll::PollIo`] and given to the h2 crate, with nginx's limits
//!    set ([`Limits`]); [`serve`] accepts streams until GOAWAY (graceful quit,
//!    `keepalive_requests`, `keepalive_timeout` with no stream open);
//! 2. each stream is a task of its own: its request head is written as the HTTP/1.1
//!    head it means ([`request_head`]: `:authority` as `Host`, cookies joined) and
//!    served by [`super::proxy::serve_one`], the same routing, `return`, limits,
//!    balancing, retries and access log as HTTP/1, through a [`Pipe`];
//! 3. the [`Pipe`] is the stream seen as the client's byte stream: reads give the
//!    request's DATA (chunked when it has no length, so the body limit counts it as
//!    it streams), writes take the HTTP/1.1 response ringx produced, send its head as
//!    HEADERS (hop-by-hop fields dropped) and its body as DATA frames of at most
//!    `http2_chunk_size`, each only once the client's window has room: an upstream is
//!    read no faster than the client takes it, and no body is buffered whole.
//!
//! A stream that ends without a complete response (an upstream cut mid-body, a
//! timeout) is reset, as nginx does.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};

use crate::net::{tls, Deadline, IoFail};
use crate::observe::log;
use crate::proto::h1::body::{encode_chunk_header, ChunkedDecoder, CHUNK_HEADER_ROOM};
use crate::proto::h1::response::{parse_response_n, RespBody, ResponseHead};
use crate::runtime::worker::Worker;

/// The connection preface a prior-knowledge client sends first (RFC 9113 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What limits one HTTP/2 connection (nginx's directives of the default server).
pub struct Limits {
    pub max_streams: u32,
    /// `large_client_header_buffers` size × number: the request's header list.
    pub header_list: u32,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: u64,
    /// The preface and settings must arrive by then (`client_header_timeout`).
    pub handshake_until: Instant,
    /// After GOAWAY: how long a connection with no stream open may wait for the
    /// client, and the lingering close once it is done.
    pub lingering_time: Duration,
    pub lingering_timeout: Duration,
}

/// What one stream's task needs of its connection.
#[derive(Clone)]
pub struct ConnInfo {
    pub w: Rc<Worker>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub id: u64,
    pub tls: Option<tls::Info>,
    /// The connection's PROXY protocol header, for its streams' variables.
    pub pp: Option<Rc<crate::proto::proxy_protocol::Header>>,
}

/// Serves one HTTP/2 connection until it closes (`pre`: the part of the preface
/// already read), then closes it gently.
pub async fn serve(stream: crate::net::Stream, pre: Vec<u8>, info: ConnInfo, lim: Limits) {
    let stream = Rc::new(stream);
    let io = crate::net::poll::PollIo::new(stream.clone(), pre);
    if drive(io, &info, &lim).await {
        // Frames the client sends while it reads the last responses (WINDOW_UPDATE,
        // PING acks) must not turn the close into a reset (nginx lingers too).
        stream
            .linger(Vec::new(), lim.lingering_time, lim.lingering_timeout)
            .await;
    }
}

/// The connection's frames until it ends; true when ringx ended it (GOAWAY).
async fn drive(io: crate::net::poll::PollIo, info: &ConnInfo, lim: &Limits) -> bool {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(lim.max_streams)
        .max_header_list_size(lim.header_list)
        // nginx's default http2_body_preread_size.
        .initial_window_size(64 * 1024)
        // Room for every stream's window at once: one stream whose body is not read
        // yet does not stall the others' uploads.
        .initial_connection_window_size((lim.max_streams as u64 * 64 * 1024).clamp(65535, (1 << 31) - 1) as u32)
        // Rapid reset (CVE-2023-44487): streams the client resets before they are
        // accepted, and those it makes ringx reset, are bounded; past it, GOAWAY.
        .max_pending_accept_reset_streams(lim.max_streams as usize)
        .max_local_error_reset_streams(Some(lim.max_streams as usize * 4))
        .max_concurrent_reset_streams(lim.max_streams as usize)
        .max_send_buffer_size(64 * 1024);
    let hs = tokio::time::timeout_at(lim.handshake_until.into(), b.handshake::<_, Bytes>(io)).await;
    let mut conn = match hs {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return handshake_failed(info, &e.to_string()),
        Err(_) => return handshake_failed(info, "client timed out (110: Connection timed out)"),
    };
    let open = Rc::new(Streams::default());
    let since = Instant::now();
    let w = info.w.clone();
    let mut streams = 0u64;
    let mut close = Close::Open;
    loop {
        let wait_until = match close {
            Close::Open => open.last_end.get().unwrap_or(since) + lim.keepalive_timeout,
            Close::Graceful(t) | Close::Abrupt(t) => open.last_end.get().unwrap_or(t).max(t) + lim.lingering_timeout,
        };
        let quit = w.quit.notified();
        // Streams still being served (the client may have reset them) are bounded
        // too: at the limit the connection is driven without taking new ones, so
        // they wait inside h2, which counts them and their resets (rapid reset).
        let full = open.open.get() >= lim.max_streams as usize;
        let step = poll_fn(|cx| {
            if full {
                conn.poll_closed(cx).map(|r| r.err().map_or(Step::Ended, Step::Failed))
            } else {
                conn.poll_accept(cx).map(|n| match n {
                    Some(Ok(s)) => Step::Stream(Box::new(s)),
                    Some(Err(e)) => Step::Failed(e),
                    None => Step::Ended,
                })
            }
        });
        tokio::select! {
            next = step => match next {
                Step::Stream(s) => {
                    spawn_stream(&open, info, *s);
                    streams += 1;
                    if streams >= lim.keepalive_requests {
                        close = close.graceful(&mut conn);
                    }
                }
                Step::Failed(e) => {
                    connection_failed(info, &e);
                    return false;
                }
                Step::Ended => return !matches!(close, Close::Open),
            },
            _ = quit => close = close.graceful(&mut conn),
            // A stream ended: the limit and the timers are looked at again.
            _ = open.freed.notified() => {}
            _ = tokio::time::sleep_until(wait_until.into()), if open.open.get() == 0 => match close {
                // Idle (nginx closes at once), or GOAWAY sent and the client silent
                // since: GOAWAY with the last stream, then the close.
                Close::Open | Close::Graceful(_) => {
                    conn.abrupt_shutdown(Reason::NO_ERROR);
                    close = Close::Abrupt(Instant::now());
                }
                // Not even that went out: the client reads nothing.
                Close::Abrupt(_) => return false,
            },
        }
        if w.quitting.get() {
            close = close.graceful(&mut conn);
        }
    }
}

/// Where a connection's close stands.
#[derive(Clone, Copy)]
enum Close {
    Open,
    /// GOAWAY sent (quit, `keepalive_requests`): streams in flight finish.
    Graceful(Instant),
    /// GOAWAY with the last stream id sent; the connection ends once it is out.
    Abrupt(Instant),
}

impl Close {
    fn graceful<T, B>(self, conn: &mut h2::server::Connection<T, B>) -> Close
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        B: bytes::Buf,
    {
        match self {
            Close::Open => {
                conn.graceful_shutdown();
                Close::Graceful(Instant::now())
            }
            c => c,
        }
    }
}

fn spawn_stream(open: &Rc<Streams>, info: &ConnInfo, s: (http::Request<RecvStream>, SendResponse<Bytes>)) {
    let guard = StreamGuard::new(open);
    let info = info.clone();
    tokio::task::spawn_local(async move {
        let _g = guard;
        stream(info, s.0, s.1).await;
    });
}

/// A connection error: `[info]`, except a client that reset the TCP connection.
fn connection_failed(info: &ConnInfo, e: &h2::Error) {
    if !e.is_io() || e.get_io().is_some_and(|e| e.kind() != io::ErrorKind::ConnectionReset) {
        log::info(format_args!(
            "http2 connection closed ({e}), client: {}, server: {}",
            info.peer.ip(),
            info.local
        ));
    }
}

/// What driving the connection gave.
enum Step {
    Stream(Box<(http::Request<RecvStream>, SendResponse<Bytes>)>),
    Failed(h2::Error),
    Ended,
}

fn handshake_failed(info: &ConnInfo, why: &str) -> bool {
    log::info(format_args!(
        "{why} while processing HTTP/2 connection, client: {}, server: {}",
        info.peer.ip(),
        info.local
    ));
    false
}

/// Counts a connection's open streams, and when the last one ended (the idle timer).
#[derive(Default)]
struct Streams {
    open: Cell<usize>,
    last_end: Cell<Option<Instant>>,
    /// A stream ended (the connection loop may take new ones again).
    freed: tokio::sync::Notify,
}

struct StreamGuard(Rc<Streams>);

impl StreamGuard {
    fn new(s: &Rc<Streams>) -> StreamGuard {
        s.open.set(s.open.get() + 1);
        StreamGuard(s.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let s = &self.0;
        s.open.set(s.open.get() - 1);
        s.last_end.set(Some(Instant::now()));
        s.freed.notify_one();
    }
}

/// One stream: its head as HTTP/1.1, served by the HTTP/1 phases through a [`Pipe`].
async fn stream(info: ConnInfo, req: http::Request<RecvStream>, mut respond: SendResponse<Bytes>) {
    let (parts, body) = req.into_parts();
    if let Some(why) = malformed(&parts) {
        // RFC 9113 8.1.1: a malformed request is a stream error.
        log::info(format_args!("client sent {why}, client: {}", info.peer.ip()));
        respond.send_reset(Reason::PROTOCOL_ERROR);
        return;
    }
    let has_body = !body.is_end_stream();
    let chunked = has_body && !parts.headers.contains_key(http::header::CONTENT_LENGTH);
    let head = request_head(&parts, chunked);
    let snap = info.w.snapshot();
    let chunk = snap
        .group(info.local)
        .map_or(8192, |g| snap.cfg.http.servers[g.default_server].conf.http2_chunk_size) as usize;
    drop(snap);
    let pipe = Pipe::new(
        body,
        respond,
        chunked,
        parts.method == http::Method::HEAD,
        info.tls.clone(),
        chunk,
        info.pp.clone(),
    );
    super::proxy::serve_h2_stream(info.w.clone(), pipe, head, info.peer, info.local, info.id).await;
}

/// What makes a request malformed that the h2 crate lets through (RFC 9113 8.2.1,
/// 8.3.1, 8.5): a field value with leading or trailing whitespace, a `Host` that
/// names another authority than `:authority`, a CONNECT without `:authority`.
pub fn malformed(p: &http::request::Parts) -> Option<&'static str> {
    let ws = |b: &u8| *b == b' ' || *b == b'\t';
    for v in p.headers.values() {
        let b = v.as_bytes();
        if b.first().is_some_and(ws) || b.last().is_some_and(ws) {
            return Some("header field value with leading or trailing whitespace");
        }
    }
    let authority = p.uri.authority().map(|a| a.as_str());
    if let (Some(a), Some(h)) = (authority, p.headers.get(http::header::HOST)) {
        if !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()) {
            return Some("\"Host\" header that differs from \":authority\"");
        }
    }
    if p.method == http::Method::CONNECT && authority.is_none() {
        return Some("CONNECT without \":authority\"");
    }
    None
}

/// The HTTP/1.1 head an HTTP/2 request means: `:method` and `:path` (or the
/// `:authority` of a CONNECT) as the request line, `:authority` as `Host` (before any
/// `Host` field, which it replaces, as nginx), the `cookie` fields joined with `; `
/// (RFC 9113 8.2.3), no `Expect`, and `Transfer-Encoding: chunked` for a body
/// without a length.
/// The h2 crate has refused connection-specific fields and values with CR, LF or NUL.
pub fn request_head(p: &http::request::Parts, chunked: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(256);
    h.extend_from_slice(p.method.as_str().as_bytes());
    h.push(b' ');
    let authority = p.uri.authority().map(|a| a.as_str());
    match p.uri.path_and_query() {
        Some(pq) if p.method != http::Method::CONNECT => h.extend_from_slice(pq.as_str().as_bytes()),
        _ => h.extend_from_slice(authority.unwrap_or("").as_bytes()),
    }
    h.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(a) = authority {
        h.extend_from_slice(b"Host: ");
        h.extend_from_slice(a.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    let mut cookies = p.headers.get_all(http::header::COOKIE).iter().peekable();
    for (name, value) in &p.headers {
        // nginx ignores Expect on HTTP/2 (no 100 Continue is sent; the window does
        // the pacing).
        if name == http::header::COOKIE
            || name == http::header::EXPECT
            || (authority.is_some() && name == http::header::HOST)
        {
            continue;
        }
        h.extend_from_slice(name.as_str().as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(value.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    if cookies.peek().is_some() {
        h.extend_from_slice(b"Cookie: ");
        for (i, c) in cookies.enumerate() {
            if i > 0 {
                h.extend_from_slice(b"; ");
            }
            h.extend_from_slice(c.as_bytes());
        }
        h.extend_from_slice(b"\r\n");
    }
    if chunked {
        h.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// Where the response written into a [`Pipe`] stands.
enum Out {
    /// Its head is still arriving (kept in `State::head`).
    Head,
    /// This many body bytes are still to come.
    Length(u64),
    /// A chunked body, decoded into DATA frames.
    Chunked(ChunkedDecoder),
    /// Complete: the stream has ended.
    Done,
}

struct State {
    recv: Option<RecvStream>,
    /// Request bytes taken from a DATA frame and not yet read.
    pending: Bytes,
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    head: Vec<u8>,
    out: Out,
}

/// One HTTP/2 stream as the byte stream of one HTTP/1.1 exchange (see the module's
/// doc). Only its stream's task uses it; the state is borrowed between awaits only.
pub struct Pipe {
    st: Rc<RefCell<State>>,
    chunked_in: bool,
    head_request: bool,
    chunk: usize,
    written: Cell<u64>,
    tls: Option<tls::Info>,
    pp: Option<Rc<crate::proto::proxy_protocol::Header>>,
}

fn reset() -> IoFail {
    IoFail::Io(io::ErrorKind::ConnectionReset.into())
}

impl Pipe {
    fn new(
        recv: RecvStream,
        respond: SendResponse<Bytes>,
        chunked_in: bool,
        head_request: bool,
        tls: Option<tls::Info>,
        chunk: usize,
        pp: Option<Rc<crate::proto::proxy_protocol::Header>>,
    ) -> Pipe {
        Pipe {
            st: Rc::new(RefCell::new(State {
                recv: (!recv.is_end_stream()).then_some(recv),
                pending: Bytes::new(),
                respond: Some(respond),
                send: None,
                head: Vec::new(),
                out: Out::Head,
            })),
            chunked_in,
            head_request,
            chunk: chunk.clamp(1, 1 << 24),
            written: Cell::new(0),
            tls,
            pp,
        }
    }

    pub fn tls_info(&self) -> Option<&tls::Info> {
        self.tls.as_ref()
    }

    pub fn proxy_header(&self) -> Option<&crate::proto::proxy_protocol::Header> {
        self.pp.as_deref()
    }

    /// Response bytes taken so far.
    pub fn written(&self) -> u64 {
        self.written.get()
    }

    /// Reads request body bytes (at most `max`) after `buf.len()`; `Ok(0)` at its end.
    pub async fn read_append(
        &self,
        mut buf: Vec<u8>,
        max: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, Vec<u8>), IoFail> {
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let at = deadline.into().at();
        loop {
            {
                let mut st = self.st.borrow_mut();
                if !st.pending.is_empty() {
                    let n = st.pending.len().min(max.max(1)).min(buf.capacity() - buf.len());
                    buf.extend_from_slice(&st.pending[..n]);
                    st.pending.advance(n);
                    return Ok((n, buf));
                }
                if st.recv.is_none() {
                    return Ok((0, buf));
                }
            }
            let next = poll_fn(|cx| match self.st.borrow_mut().recv.as_mut() {
                Some(r) => r.poll_data(cx),
                None => std::task::Poll::Ready(None),
            });
            let data = match tokio::time::timeout_at(at, next).await {
                Err(_) => return Err(IoFail::Timeout),
                Ok(Some(Err(e))) => return Err(IoFail::Io(io::Error::other(e))),
                Ok(Some(Ok(d))) => Some(d),
                Ok(None) => None,
            };
            let mut st = self.st.borrow_mut();
            match data {
                Some(d) => {
                    // The client's window opens as its bytes are taken: it sends no
                    // faster than the upstream is written.
                    if let Some(r) = st.recv.as_mut() {
                        let _ = r.flow_control().release_capacity(d.len());
                    }
                    st.pending = if self.chunked_in && !d.is_empty() {
                        // One buffer for header, data and CRLF (the HTTP/1 encoder's header).
                        let mut room = [0u8; CHUNK_HEADER_ROOM];
                        let at = encode_chunk_header(d.len(), &mut room);
                        let mut c = Vec::with_capacity(CHUNK_HEADER_ROOM - at + d.len() + 2);
                        c.extend_from_slice(&room[at..]);
                        c.extend_from_slice(&d);
                        c.extend_from_slice(b"\r\n");
                        c.into()
                    } else {
                        d
                    };
                }
                None => {
                    st.recv = None;
                    if self.chunked_in {
                        st.pending = Bytes::from_static(b"0\r\n\r\n");
                    }
                }
            }
        }
    }

    /// Takes `buf[start..end]` of the HTTP/1.1 response and gives the buffer back.
    pub async fn write_range(
        &self,
        buf: Vec<u8>,
        start: usize,
        end: usize,
        deadline: impl Into<Deadline>,
    ) -> Result<Vec<u8>, IoFail> {
        let at = deadline.into().at();
        self.write(&buf[start..end], at).await?;
        self.written.set(self.written.get() + (end - start) as u64);
        Ok(buf)
    }

    pub async fn write_all(&self, buf: Vec<u8>, deadline: impl Into<Deadline>) -> Result<Vec<u8>, IoFail> {
        let n = buf.len();
        self.write_range(buf, 0, n, deadline).await
    }

    async fn write(&self, data: &[u8], at: tokio::time::Instant) -> Result<(), IoFail> {
        let body = {
            let mut st = self.st.borrow_mut();
            if !matches!(st.out, Out::Head) {
                None
            } else {
                st.head.extend_from_slice(data);
                match self.start_response(&mut st)? {
                    Some(rest) => Some(rest),
                    None => return Ok(()),
                }
            }
        };
        match body {
            Some(rest) => self.body(&rest, at).await,
            None => self.body(data, at).await,
        }
    }

    /// Sends the response head once it is complete; the body bytes that came with it.
    fn start_response(&self, st: &mut State) -> Result<Option<Vec<u8>>, IoFail> {
        let mut r = ResponseHead::default();
        loop {
            match parse_response_n::<512>(&st.head, &mut r) {
                // An interim head (ringx forwards none today) is not the response.
                Ok(Some(())) if r.code < 200 => drop(st.head.drain(..r.head_len)),
                Ok(Some(())) => break,
                Ok(None) => return Ok(None),
                Err(_) => return Err(IoFail::Io(io::ErrorKind::InvalidData.into())),
            }
        }
        let rest = st.head.split_off(r.head_len);
        let kind = r.body(self.head_request);
        let resp = to_response(&r, &st.head);
        st.head = Vec::new();
        st.out = match kind {
            RespBody::None | RespBody::Length(0) => Out::Done,
            RespBody::Length(n) => Out::Length(n),
            RespBody::Chunked => Out::Chunked(ChunkedDecoder::new()),
            // Never made by ringx for an HTTP/1.1 client (it chunks instead).
            RespBody::Close => Out::Chunked(ChunkedDecoder::new()),
        };
        let eos = matches!(st.out, Out::Done);
        let respond = st.respond.as_mut().ok_or_else(reset)?;
        let send = respond.send_response(resp, eos).map_err(|_| reset())?;
        st.respond = None;
        st.send = Some(send);
        Ok(Some(rest))
    }

    /// Body bytes of the HTTP/1.1 response: their payload goes out as DATA.
    async fn body(&self, data: &[u8], at: tokio::time::Instant) -> Result<(), IoFail> {
        let mut runs = Vec::new();
        let end = {
            let mut st = self.st.borrow_mut();
            match &mut st.out {
                Out::Head | Out::Done => return Ok(()),
                Out::Length(rem) => {
                    let take = (*rem).min(data.len() as u64) as usize;
                    *rem -= take as u64;
                    runs.push(0..take);
                    *rem == 0
                }
                Out::Chunked(d) => {
                    let fed = d.feed(data, |r| runs.push(r)).map_err(|_| reset())?;
                    fed.done
                }
            }
        };
        runs.retain(|r| !r.is_empty());
        if end {
            self.st.borrow_mut().out = Out::Done;
        }
        // END_STREAM rides on the last DATA frame (an empty one only when the body
        // ended without bytes in this write).
        let n = runs.len();
        for (i, r) in runs.iter().enumerate() {
            self.send(&data[r.clone()], end && i + 1 == n, at).await?;
        }
        if end && n == 0 {
            self.send(&[], true, at).await?;
        }
        Ok(())
    }

    /// Sends `data` in DATA frames of at most `http2_chunk_size`, each when the
    /// client's window has room for it (by `at`, else the stream is reset).
    async fn send(&self, data: &[u8], eos: bool, at: tokio::time::Instant) -> Result<(), IoFail> {
        if data.is_empty() {
            if !eos {
                return Ok(());
            }
            let mut st = self.st.borrow_mut();
            let s = st.send.as_mut().ok_or_else(reset)?;
            return s.send_data(Bytes::new(), eos).map_err(|_| reset());
        }
        let mut pos = 0;
        while pos < data.len() {
            let want = (data.len() - pos).min(self.chunk);
            let room = poll_fn(|cx| {
                let mut st = self.st.borrow_mut();
                match st.send.as_mut() {
                    Some(s) => {
                        s.reserve_capacity(want);
                        s.poll_capacity(cx)
                    }
                    None => std::task::Poll::Ready(None),
                }
            });
            let n = match tokio::time::timeout_at(at, room).await {
                Err(_) => return Err(IoFail::Timeout),
                Ok(Some(Ok(n))) if n > 0 => n.min(want),
                Ok(Some(Ok(_))) => continue,
                Ok(_) => return Err(reset()),
            };
            let last = eos && pos + n == data.len();
            let mut st = self.st.borrow_mut();
            let s = st.send.as_mut().ok_or_else(reset)?;
            s.send_data(Bytes::copy_from_slice(&data[pos..pos + n]), last)
                .map_err(|_| reset())?;
            pos += n;
        }
        Ok(())
    }

    /// Resolves when the client has reset the stream (it went away); pending while
    /// it is open.
    pub async fn closed(&self) {
        closed(&self.st).await
    }

    /// A handle that sees the client reset the stream while the pipe is in use.
    pub fn watch(&self) -> Watch {
        Watch(self.st.clone())
    }
}

/// See [`Pipe::watch`].
pub struct Watch(Rc<RefCell<State>>);

impl Watch {
    pub async fn closed(&self) {
        closed(&self.0).await
    }
}

async fn closed(st: &RefCell<State>) {
    poll_fn(|cx| {
        let mut st = st.borrow_mut();
        let st = &mut *st;
        let r = match (st.send.as_mut(), st.respond.as_mut()) {
            (Some(s), _) => s.poll_reset(cx),
            (None, Some(r)) => r.poll_reset(cx),
            (None, None) => return std::task::Poll::Pending,
        };
        r.map(|_| ())
    })
    .await
}

/// A stream that ends before its response is complete is reset (nginx resets it
/// too): the client sees the response cut, never a truncated one taken as whole.
impl Drop for Pipe {
    fn drop(&mut self) {
        let mut st = self.st.borrow_mut();
        if matches!(st.out, Out::Done) {
            return;
        }
        if let Some(s) = st.send.as_mut() {
            s.send_reset(Reason::INTERNAL_ERROR);
        } else if let Some(r) = st.respond.as_mut() {
            r.send_reset(Reason::INTERNAL_ERROR);
        }
    }
}

/// The response head ringx wrote as HTTP/1.1, as HTTP/2 HEADERS: the status and the
/// fields, less the connection-specific ones (RFC 9113 8.2.2); `content-length`
/// kept where the body has one.
fn to_response(r: &ResponseHead, head: &[u8]) -> http::Response<()> {
    let mut resp = http::Response::new(());
    *resp.status_mut() = http::StatusCode::from_u16(r.code).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    for f in r.headers.iter().filter(|f| !f.hop) {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(f.name.get(head)),
            http::HeaderValue::from_bytes(f.value.get(head)),
        ) else {
            continue;
        };
        h.append(name, value);
    }
    if let (Some(n), false) = (r.content_length, r.chunked) {
        h.insert(http::header::CONTENT_LENGTH, n.into());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn head_as_http11() {
        let p = parts(
            "POST",
            "https://api.company.com:8443/classify?x=1",
            &[("cookie", "a=1"), ("x-a", "b"), ("cookie", "b=2")],
        );
        let h = String::from_utf8(request_head(&p, true)).unwrap();
        assert_eq!(
            h,
            "POST /classify?x=1 HTTP/1.1\r\nHost: api.company.com:8443\r\nx-a: b\r\n\
             Cookie: a=1; b=2\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        // Without :authority the Host field stays; no body, no framing line.
        let p = parts("GET", "/", &[("host", "h.example")]);
        assert_eq!(
            String::from_utf8(request_head(&p, false)).unwrap(),
            "GET / HTTP/1.1\r\nhost: h.example\r\n\r\n"
        );
        // What the head parser makes of it: the same request.
        let mut rh = crate::proto::h1::request::RequestHead::default();
        let raw = request_head(&parts("GET", "http://a.b/x", &[]), false);
        let lim = crate::proto::h1::request::HeadLimits::sized(8192, 32768);
        assert!(crate::proto::h1::request::parse_request(&raw, &mut rh, lim)
            .unwrap()
            .is_some());
        assert_eq!(rh.host.unwrap().get(&raw), b"a.b");
    }

    #[test]
    fn malformed_requests() {
        assert!(malformed(&parts("GET", "http://a/", &[("x", " v")])).is_some());
        assert!(malformed(&parts("GET", "http://a/", &[("x", "v\t")])).is_some());
        assert!(malformed(&parts("GET", "http://a/", &[("host", "b")])).is_some());
        assert!(malformed(&parts("GET", "http://a/", &[("host", "A")])).is_none());
        assert!(malformed(&parts("GET", "http://a/", &[("x", "v w")])).is_none());
    }
}
