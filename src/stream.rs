//! `stream {}`: the L4 proxy. A client connection on a stream server's address is
//! joined to an upstream server byte for byte.
//!
//! Where it sits: the worker's accept loop hands connections on stream addresses
//! here instead of to the HTTP path. Then, as nginx's stream phases: access
//! (`allow`/`deny`: 403), content (`return VALUE`, or `proxy_pass`): pick a peer with
//! the upstream's balancer (the same balancers and cross-worker state as http's),
//! connect within `proxy_connect_timeout`, the next peer on failure while
//! `proxy_next_upstream` allows, then [`crate::net::tunnel::join`] with
//! `proxy_timeout` on every read and write and `proxy_half_close`. The session's
//! access-log line is written when it ends, with nginx's stream variables.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use crate::config::model::StreamServer;
use crate::config::vars::{Var, VarSource};
use crate::net::{tunnel, IoFail, Stream, Tcp};
use crate::observe::log;
use crate::runtime::worker::{Snapshot, Worker};

/// What one session did, for its log line and its variables.
struct Session {
    peer: SocketAddr,
    local: SocketAddr,
    id: u64,
    start: Instant,
    status: u16,
    /// Bytes to and from the client, to and from the upstream.
    sent: u64,
    received: u64,
    up_sent: u64,
    up_received: u64,
    /// (address, connect time in ms) of each attempt.
    attempts: Vec<(crate::net::Peer, u64)>,
    /// The PROXY protocol header the client began with.
    pp: Option<crate::proto::proxy_protocol::Header>,
}

/// Serves one client connection on stream server `idx`.
pub async fn serve(w: Rc<Worker>, tcp: Tcp, peer: SocketAddr, local: SocketAddr, idx: usize) {
    let snap = w.snapshot();
    let Some(srv) = snap.cfg.stream.servers.get(idx) else {
        return;
    };
    let pp_in = snap.group(local).is_some_and(|g| g.proxy_protocol);
    let mut client = Stream::new(tcp);
    let mut s = Session {
        peer,
        local,
        id: w.next_conn_id(),
        start: Instant::now(),
        status: 200,
        sent: 0,
        received: 0,
        up_sent: 0,
        up_received: 0,
        attempts: Vec::new(),
        pp: None,
    };
    if pp_in {
        if !client
            .accept_proxy_header(Instant::now() + srv.proxy_protocol_timeout, peer, local)
            .await
        {
            s.status = 400;
            access_log(&snap, srv, &s);
            return;
        }
        s.pp = client.proxy_header().cloned();
    }
    session(&snap, srv, &client, &mut s).await;
    s.sent = client.written();
    access_log(&snap, srv, &s);
}

async fn session(snap: &Snapshot, srv: &StreamServer, client: &Stream, s: &mut Session) {
    let ip = s.peer.ip();
    // nginx's preaccess phase (limit_conn), then access (allow/deny).
    let Some(_held) = limit_conn(srv, s) else {
        s.status = 503;
        return;
    };
    if let Some((_, true)) = srv.allow.iter().find(|(net, _)| net.contains(ip)) {
        log::error(format_args!(
            "access forbidden by rule, client: {ip}, server: {}",
            s.local
        ));
        s.status = 403;
        return;
    }
    if let Some(ret) = &srv.ret {
        let mut out = Vec::new();
        ret.render(&Ctx(s), &mut out);
        let _ = client.write_all(out, srv.timeout).await;
        return;
    }
    let Some(up) = &srv.upstream else {
        s.status = 500;
        return;
    };
    let Some(upstream) = dial(snap, srv, up, s).await else {
        s.status = 502;
        return;
    };
    if srv.proxy_protocol {
        // nginx's `proxy_protocol on`: the client and the address it reached, from
        // a PROXY header the client came with when there is one.
        let (src, dst) = match s.pp.as_ref() {
            Some(crate::proto::proxy_protocol::Header {
                src: Some(a),
                dst: Some(b),
                ..
            }) => (*a, *b),
            _ => (s.peer, s.local),
        };
        let line = crate::proto::proxy_protocol::v1_line(src, dst).into_bytes();
        if upstream.write_all(line, srv.timeout).await.is_err() {
            s.status = 502;
            return;
        }
    }
    let up = tunnel::Limits {
        rate: srv.upload_rate,
        ..tunnel::Limits::new(srv.timeout, srv.timeout)
    };
    let down = tunnel::Limits {
        rate: srv.download_rate,
        ..tunnel::Limits::new(srv.timeout, srv.timeout)
    };
    let t = tunnel::join(client, &upstream, up, down, srv.half_close).await;
    s.received = t.a_to_b;
    s.up_sent = t.a_to_b;
    s.up_received = t.b_to_a;
    match t.failed {
        Some(IoFail::Timeout) => log::error(format_args!(
            "upstream timed out (110: Connection timed out) while proxying connection, client: {ip}, server: {}, upstream: \"{}\", bytes from/to client:{}/{}, bytes from/to upstream:{}/{}",
            s.local,
            s.attempts.last().map_or(crate::net::Peer::Ip(s.local), |a| a.0.clone()),
            t.a_to_b,
            t.b_to_a,
            t.b_to_a,
            t.a_to_b
        )),
        _ => log::info(format_args!(
            "disconnected, bytes from/to client:{}/{}, bytes from/to upstream:{}/{}, client: {ip}, server: {}",
            t.a_to_b, t.b_to_a, t.b_to_a, t.a_to_b, s.local
        )),
    }
}

/// The first peer that takes the connection, as `proxy_next_upstream` allows.
async fn dial(
    snap: &Snapshot,
    srv: &StreamServer,
    up: &crate::config::model::Upstream,
    s: &mut Session,
) -> Option<Stream> {
    let bal = &snap.stream_balancers[up.index];
    let mut tried = crate::balance::Tried::new(bal.len());
    let budget = crate::balance::Budget::new(srv.next_upstream_tries, Some(srv.next_upstream_timeout), s.start);
    let ip = s.peer.ip();
    // `hash KEY`: rendered once per session.
    let mut key = Vec::new();
    if let Some(k) = &up.hash_key {
        k.render(&Ctx(s), &mut key);
    }
    for n in 1.. {
        let Some(held) = bal.pick_held(ip, &key, &mut tried, Instant::now()) else {
            log::error(format_args!(
                "no live upstreams while connecting to upstream, client: {ip}, server: {}, upstream: \"{}\"",
                s.local, up.name
            ));
            return None;
        };
        let addr = up.servers[held.server()].addr.clone();
        let t0 = Instant::now();
        match Stream::connect_peer(&addr, srv.connect_timeout).await {
            Ok(c) => {
                if srv.socket_keepalive && addr.ip().is_some() {
                    c.set_keepalive();
                }
                held.release(false);
                s.attempts.push((addr, t0.elapsed().as_millis() as u64));
                return Some(c);
            }
            Err(e) => {
                held.release(true);
                s.attempts.push((addr.clone(), t0.elapsed().as_millis() as u64));
                let why = match &e {
                    IoFail::Timeout => "upstream timed out (110: Connection timed out)".to_string(),
                    IoFail::Io(e) => format!("connect() failed ({})", crate::config::parser::os_err(e)),
                };
                log::error(format_args!(
                    "{why} while connecting to upstream, client: {ip}, server: {}, upstream: \"{addr}\", bytes from/to client:0/0, bytes from/to upstream:0/0",
                    s.local
                ));
                if !(srv.next_upstream && budget.more(n, &tried, bal.len())) {
                    return None;
                }
            }
        }
    }
    None
}

/// `limit_conn`: the session counted in each zone while it lasts; `None` when a zone
/// refuses it (logged as nginx; a dry run counts nothing and lets it through).
fn limit_conn(srv: &StreamServer, s: &Session) -> Option<Vec<crate::limit::ConnHeld>> {
    let mut held = Vec::new();
    for l in &srv.limit_conn {
        let mut key = Vec::new();
        l.key.value.render(&Ctx(s), &mut key);
        if key.len() > 255 {
            log::error(format_args!(
                "the value of the \"{}\" key is more than 255 bytes: \"{}\", client: {}, server: {}",
                l.key.source,
                String::from_utf8_lossy(&key),
                s.peer.ip(),
                s.local
            ));
        }
        if key.is_empty() || key.len() > 255 {
            continue;
        }
        match l.zone.acquire(&key, l.max) {
            Some(h) => held.push(h),
            None => {
                log::log(
                    srv.limit_conn_log_level,
                    format_args!(
                        "limiting connections{} by zone \"{}\", client: {}, server: {}",
                        if srv.limit_conn_dry_run { ", dry run" } else { "" },
                        l.zone.name,
                        s.peer.ip(),
                        s.local
                    ),
                );
                return srv.limit_conn_dry_run.then(Vec::new);
            }
        }
    }
    Some(held)
}

fn access_log(snap: &Snapshot, srv: &StreamServer, s: &Session) {
    if srv.access_logs.is_empty() {
        return;
    }
    let mut logs = snap.logs.borrow_mut();
    for a in &srv.access_logs {
        if !a.wanted(&Ctx(s), &mut logs.scratch) {
            continue;
        }
        let (buf, scratch) = logs.buf(a.file_id);
        a.format.render_log(&Ctx(s), buf, scratch);
        logs.line_done(a.file_id);
    }
}

/// The stream variables of one session.
struct Ctx<'a>(&'a Session);

/// Writes one attempt's value of a per-attempt variable.
type ListItem = dyn Fn(&(crate::net::Peer, u64), &mut Vec<u8>);

impl VarSource for Ctx<'_> {
    fn write_var(&self, v: &Var, out: &mut Vec<u8>) -> bool {
        use std::io::Write;
        let s = self.0;
        let list = |out: &mut Vec<u8>, f: &ListItem| {
            for (i, a) in s.attempts.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                f(a, out);
            }
            !s.attempts.is_empty()
        };
        match v {
            Var::RemoteAddr => {
                let _ = write!(out, "{}", s.peer.ip());
            }
            Var::RemotePort => {
                let _ = write!(out, "{}", s.peer.port());
            }
            Var::BinaryRemoteAddr => match s.peer.ip() {
                std::net::IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                std::net::IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            },
            Var::ServerAddr => {
                let _ = write!(out, "{}", s.local.ip());
            }
            Var::ServerPort => {
                let _ = write!(out, "{}", s.local.port());
            }
            Var::Protocol => out.extend_from_slice(b"TCP"),
            Var::ProxyProtocol(f) => return crate::http::ctx::proxy_protocol_var(s.pp.as_ref(), *f, out),
            Var::Status => {
                let _ = write!(out, "{}", s.status);
            }
            Var::BytesSent => {
                let _ = write!(out, "{}", s.sent);
            }
            Var::BytesReceived => {
                let _ = write!(out, "{}", s.received);
            }
            Var::SessionTime => {
                let ms = s.start.elapsed().as_millis();
                let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
            }
            Var::Connection => {
                let _ = write!(out, "{}", s.id);
            }
            Var::UpstreamAddr => return list(out, &|a, o| drop(write!(o, "{}", a.0))),
            Var::UpstreamConnectTime => return list(out, &|a, o| drop(write!(o, "{}.{:03}", a.1 / 1000, a.1 % 1000))),
            // Per attempt, as nginx: the failed ones moved no bytes.
            Var::UpstreamBytesSent | Var::UpstreamBytesReceived => {
                let last = s.attempts.len().saturating_sub(1);
                let total = if *v == Var::UpstreamBytesSent {
                    s.up_sent
                } else {
                    s.up_received
                };
                for i in 0..s.attempts.len() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    let _ = write!(out, "{}", if i == last { total } else { 0 });
                }
                return !s.attempts.is_empty();
            }
            _ => return crate::http::ctx::common(v, out),
        }
        true
    }
}
