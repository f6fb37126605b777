//! TLS over a [`Tcp`] (rustls): the layer between the socket and [`super::Stream`],
//! so that everything above reads and writes plaintext through the same calls.
//!
//! rustls is sans-io; it reads and writes TLS records through `std::io` on the
//! socket's descriptor ([`FdIo`]: non-blocking `recv`/`send`), and waits use the
//! driver's readiness ([`Tcp::readable`], [`Tcp::writable`]: epoll, or
//! `IORING_OP_POLL_ADD` on io_uring). No owned buffer is in flight, so an idle TLS
//! connection holds only rustls's own state, and a wait abandoned by a `select!` is
//! a poll, not a read that owns bytes.
//!
//! Reads and writes may run at once on one connection (a tunnel's two pumps, an
//! early upstream response while a body streams): the rustls state is a `RefCell`
//! borrowed only between awaits, never across one.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::server::Acceptor;
use rustls::ServerConfig;

use super::io::FdIo;
use super::Tcp;

/// What a handshake agreed, for the `$ssl_*` variables.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// `$ssl_protocol`: `TLSv1.2`, `TLSv1.3`.
    pub protocol: &'static str,
    /// `$ssl_cipher`: the OpenSSL name of the suite.
    pub cipher: &'static str,
    /// `$ssl_server_name`: the SNI name the client sent.
    pub server_name: Option<Box<str>>,
    /// `$ssl_session_reused`: `r` or `.`.
    pub reused: bool,
    /// `$ssl_alpn_protocol`.
    pub alpn: Option<Box<str>>,
    /// The client's certificate as judged after the handshake (`ssl_verify_client`).
    pub client: Option<Box<crate::config::tls::ClientCert>>,
}

/// A TLS connection's state over its socket: a client's (accepted) or an upstream's
/// (`proxy_pass https://`).
pub struct Tls {
    conn: RefCell<rustls::Connection>,
    /// The socket reached end of stream (with or without `close_notify`).
    eof: Cell<bool>,
    pub info: Info,
}

/// Why a handshake did not complete.
#[derive(Debug)]
pub enum HandshakeFail {
    /// The client closed before sending anything.
    ClosedEarly,
    /// The client closed or reset the connection.
    Closed,
    /// The socket failed.
    Io(io::Error),
    /// The client broke the protocol (or asked for what is not offered).
    Tls(rustls::Error),
    /// The chosen server refuses handshakes (`ssl_reject_handshake on`), or has no
    /// certificate.
    Refused(&'static str),
}

impl std::fmt::Display for HandshakeFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFail::ClosedEarly => f.write_str("client closed connection"),
            HandshakeFail::Closed => f.write_str("peer closed connection in SSL handshake"),
            HandshakeFail::Io(e) => write!(f, "SSL_do_handshake() failed ({e})"),
            HandshakeFail::Tls(e) => write!(f, "SSL_do_handshake() failed ({e})"),
            HandshakeFail::Refused(why) => f.write_str(why),
        }
    }
}

/// What the accept phase learned about the first bytes.
pub enum First {
    /// A TLS ClientHello, handshake done.
    Tls(Box<Tls>),
    /// Not TLS (nginx's check: the first byte is neither a TLS handshake record nor
    /// an SSLv2 hello): a plain HTTP request on an HTTPS port, answered with 400.
    Plain,
}

/// A server's answer to the SNI name: its TLS configuration, or a refusal.
pub type Choose<'a> = &'a dyn Fn(Option<&str>) -> Result<Arc<ServerConfig>, &'static str>;

/// The server side of a TLS handshake on an accepted connection: waits for the
/// first byte, tells plain HTTP from TLS, reads the ClientHello, lets `choose` pick
/// the configuration by its SNI name, and completes the handshake. The caller
/// bounds it with a timeout.
pub async fn accept(tcp: &Tcp, choose: Choose<'_>) -> Result<First, HandshakeFail> {
    // A confirmed wait: on epoll tokio's readiness may say "readable" before a byte came.
    tcp.readable_confirmed().await.map_err(io_fail)?;
    match tcp.peek_byte() {
        Ok(None) => return Err(HandshakeFail::ClosedEarly),
        Ok(Some(b)) if b == 0x16 || b & 0x80 != 0 => {}
        Ok(Some(_)) => return Ok(First::Plain),
        Err(e) => return Err(io_fail(e)),
    }
    let mut acceptor = Acceptor::default();
    let accepted = loop {
        match tcp.try_io_read(|| acceptor.read_tls(&mut FdIo(tcp.fd()))) {
            Ok(0) => return Err(HandshakeFail::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tcp.readable().await.map_err(HandshakeFail::Io)?;
                continue;
            }
            Err(e) => return Err(io_fail(e)),
        }
        match acceptor.accept() {
            Ok(Some(a)) => break a,
            Ok(None) => {}
            Err((e, mut alert)) => {
                let _ = alert.write(&mut FdIo(tcp.fd()));
                return Err(HandshakeFail::Tls(e));
            }
        }
    };
    let sni = accepted.client_hello().server_name().map(Box::<str>::from);
    let cfg = match choose(sni.as_deref()) {
        Ok(c) => c,
        Err(why) => {
            // A fatal unrecognized_name alert, as OpenSSL sends for nginx's
            // ssl_reject_handshake (no keys are agreed yet: a plaintext record).
            let _ = FdIo(tcp.fd()).write(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
            return Err(HandshakeFail::Refused(why));
        }
    };
    let conn = match accepted.into_connection(cfg) {
        Ok(c) => c,
        Err((e, mut alert)) => {
            let _ = alert.write(&mut FdIo(tcp.fd()));
            return Err(HandshakeFail::Tls(e));
        }
    };
    let mut tls = Tls {
        conn: RefCell::new(rustls::Connection::Server(conn)),
        eof: Cell::new(false),
        info: Info::default(),
    };
    tls.finish_handshake(tcp).await?;
    tls.info = tls.agreed(sni);
    Ok(First::Tls(Box::new(tls)))
}

/// The client side of a handshake with an upstream (`proxy_pass https://`), naming
/// `name` (its SNI, if the configuration sends one, and what is verified). The
/// caller bounds it with a timeout.
pub async fn connect(
    tcp: &Tcp,
    cfg: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
) -> Result<Box<Tls>, HandshakeFail> {
    let conn = rustls::ClientConnection::new(cfg, name).map_err(HandshakeFail::Tls)?;
    let mut tls = Tls {
        conn: RefCell::new(rustls::Connection::Client(conn)),
        eof: Cell::new(false),
        info: Info::default(),
    };
    tls.finish_handshake(tcp).await?;
    tls.info = tls.agreed(None);
    Ok(Box::new(tls))
}

fn io_fail(e: io::Error) -> HandshakeFail {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => {
            HandshakeFail::Closed
        }
        _ => HandshakeFail::Io(e),
    }
}

impl Tls {
    async fn finish_handshake(&self, tcp: &Tcp) -> Result<(), HandshakeFail> {
        loop {
            self.flush(tcp).await.map_err(io_fail)?;
            if !self.conn.borrow().is_handshaking() {
                break;
            }
            match self.fill(tcp) {
                Ok(true) => {}
                Ok(false) => return Err(HandshakeFail::Closed),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tcp.readable().await.map_err(HandshakeFail::Io)?;
                }
                // Records after the client's Finished, read with it, failed: the
                // handshake is done and the error is the first read's (rustls keeps
                // it), as when they arrive later.
                Err(_) if !self.conn.borrow().is_handshaking() => break,
                Err(e) => {
                    return Err(match e.into_inner().map(|i| i.downcast::<rustls::Error>()) {
                        Some(Ok(t)) => HandshakeFail::Tls(*t),
                        Some(Err(i)) => HandshakeFail::Io(io::Error::other(i)),
                        None => HandshakeFail::Closed,
                    })
                }
            }
        }
        // The session tickets a TLS 1.3 server sends after the handshake.
        self.flush(tcp).await.map_err(io_fail)
    }

    /// What the handshake agreed (`sni`: the name the client sent).
    fn agreed(&self, sni: Option<Box<str>>) -> Info {
        let c = self.conn.borrow();
        Info {
            protocol: match c.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "",
            },
            cipher: c
                .negotiated_cipher_suite()
                .map_or("", |s| crate::config::ciphers::openssl_name(s.suite())),
            server_name: sni,
            reused: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            alpn: c.alpn_protocol().map(|a| String::from_utf8_lossy(a).into()),
            client: None,
        }
    }

    /// The certificate chain the peer sent (leaf first); empty if none.
    pub fn peer_chain(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        self.conn
            .borrow()
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// Reads one batch of TLS records from the socket and processes them: `Ok(true)`
    /// something was read, `Ok(false)` end of stream, `WouldBlock` nothing there. A
    /// protocol error sends its alert and comes back as `InvalidData` holding the
    /// rustls error.
    fn fill(&self, tcp: &Tcp) -> io::Result<bool> {
        let mut c = self.conn.borrow_mut();
        let n = tcp.try_io_read(|| c.read_tls(&mut FdIo(tcp.fd())))?;
        if n == 0 {
            self.eof.set(true);
            return Ok(false);
        }
        if let Err(e) = c.process_new_packets() {
            let _ = c.write_tls(&mut FdIo(tcp.fd()));
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(true)
    }

    /// Moves decrypted bytes (at most `max`, and no more than the spare capacity)
    /// into `buf`: `Some(n)` when there were some or the stream ended (`Some(0)`).
    fn take_plain(&self, buf: &mut Vec<u8>, max: usize) -> Option<io::Result<usize>> {
        let mut c = self.conn.borrow_mut();
        let st = match c.process_new_packets() {
            Ok(st) => st,
            Err(e) => return Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
        };
        let n = st
            .plaintext_bytes_to_read()
            .min(max.max(1))
            .min(buf.capacity() - buf.len());
        if n > 0 {
            let old = buf.len();
            buf.resize(old + n, 0);
            return Some(c.reader().read_exact(&mut buf[old..]).map(|()| n));
        }
        if st.peer_has_closed() || self.eof.get() {
            return Some(Ok(0));
        }
        None
    }

    /// (decrypted bytes waiting, the peer's stream ended); a protocol error counts
    /// as the end.
    fn state(&self) -> (usize, bool) {
        match self.conn.borrow_mut().process_new_packets() {
            Ok(s) => (s.plaintext_bytes_to_read(), s.peer_has_closed() || self.eof.get()),
            Err(_) => (0, true),
        }
    }

    /// Decrypted bytes wait, or the peer's end of stream does: a read completes now
    /// (no syscall: what rustls already holds).
    pub fn has_plain(&self) -> bool {
        let (n, closed) = self.state();
        n > 0 || closed
    }

    /// A read without waiting (`WouldBlock` if no whole record is there).
    pub fn try_read(&self, tcp: &Tcp, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        loop {
            if let Some(r) = self.take_plain(buf, max) {
                return r;
            }
            self.fill(tcp)?;
            // Whatever the records asked for (a key update's answer) goes out now if
            // the socket takes it, else with the next write.
            let _ = self.flush_now(tcp);
        }
    }

    /// [`Tls::try_read`] into a slice (for [`super::poll::PollIo`]).
    pub fn try_read_slice(&self, tcp: &Tcp, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (n, closed) = self.state();
            if n > 0 {
                return self.conn.borrow_mut().reader().read(buf);
            }
            if closed {
                return Ok(0);
            }
            self.fill(tcp)?;
            let _ = self.flush_now(tcp);
        }
    }

    /// Takes what rustls's send buffer has room for of `bufs` (as one run: records
    /// span the slices), encrypted; sent by [`Tls::flush_now`], or here when the
    /// buffer is full. `WouldBlock` when it is full and the socket takes nothing.
    pub fn try_write_vectored(&self, tcp: &Tcp, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.conn.borrow_mut().writer().write_vectored(bufs)?;
        if n > 0 || bufs.iter().all(|b| b.is_empty()) {
            return Ok(n);
        }
        self.flush_now(tcp)?;
        self.conn.borrow_mut().writer().write_vectored(bufs)
    }

    /// Reads at least one byte of plaintext, or `Ok(0)` at the end of the stream.
    pub async fn read(&self, tcp: &Tcp, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        loop {
            match self.try_read(tcp, buf, max) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.readable().await?,
                r => return r,
            }
        }
    }

    /// Encrypts and writes all of `data`.
    pub async fn write(&self, tcp: &Tcp, data: &[u8]) -> io::Result<()> {
        let mut pos = 0;
        while pos < data.len() {
            let n = self.conn.borrow_mut().writer().write(&data[pos..])?;
            pos += n;
            self.flush(tcp).await?;
        }
        Ok(())
    }

    /// Writes what rustls has queued, without waiting: `WouldBlock` if the socket
    /// is full.
    pub fn flush_now(&self, tcp: &Tcp) -> io::Result<()> {
        let mut c = self.conn.borrow_mut();
        while c.wants_write() {
            tcp.try_io_write(|| c.write_tls(&mut FdIo(tcp.fd())))?;
        }
        Ok(())
    }

    /// Writes what rustls has queued, waiting for room.
    async fn flush(&self, tcp: &Tcp) -> io::Result<()> {
        loop {
            match self.flush_now(tcp) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.writable().await?,
                r => return r,
            }
        }
    }

    /// What the peer's side holds: decrypted bytes, its end of stream, or nothing
    /// yet; records waiting on the socket are read and processed first (their
    /// plaintext stays for the next read).
    pub fn peek(&self, tcp: &Tcp) -> super::Peek {
        loop {
            match self.state() {
                (n, _) if n > 0 => return super::Peek::Bytes,
                (_, true) => return super::Peek::Closed,
                _ => {}
            }
            match self.fill(tcp) {
                Ok(true) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return super::Peek::Nothing,
                Ok(false) | Err(_) => return super::Peek::Closed,
            }
        }
    }

    /// Queues `close_notify` and sends it if the socket takes it now (nginx's
    /// `SSL_shutdown` on a normal close).
    pub fn close_notify(&self, tcp: &Tcp) {
        self.conn.borrow_mut().send_close_notify();
        let _ = self.flush_now(tcp);
    }
}
