//! `tunnel_pass`: CONNECT (nginx 1.31's ngx_http_tunnel_module), the forward
//! proxy's `https_proxy` path.
//!
//! Where it sits: a content handler of the content loop, after the access phase
//! (`allow`/`deny` decide before any connection is made). The target (`$host:
//! $request_port` unless written otherwise) is found as any per-request target
//! ([`super::target`]), connected within `tunnel_connect_timeout` (the next address
//! on error or timeout, as `tunnel_next_upstream` allows), answered `200 OK` with no
//! length (the connection closes after, as nginx: a tunnel never keeps alive), then
//! joined byte for byte ([`crate::net::tunnel`]) until both sides are done or the
//! target is silent for `tunnel_read_timeout`. The access-log line is written when
//! the tunnel closes, with what reached the client.

use std::time::Instant;

use super::target::{self, Found};
use super::{ms_since, status_line, write_add_headers, Client, Own, Peers, Req, Step};
use crate::config::model::{LocConf, TunnelPass};
use crate::http::ctx::{Attempt, Sent};
use crate::http::fail::{Fail, Phase};
use crate::net::{tunnel, IoFail, Peer, Stream};
use crate::observe::log;
use crate::proto::h1::framing;
use crate::proto::h1::request::Method;
use crate::runtime::worker::Snapshot;

/// Answers a CONNECT: 405 for any other method (nginx's tunnel handler).
pub(super) async fn tunnel(snap: &Snapshot, c: &mut Client, r: &mut Req<'_>, t: &TunnelPass) -> Step {
    if c.head.method() != Method::Connect {
        return Step::error(405);
    }
    let (up, found) = match t {
        TunnelPass::Static(pp) => (pp.upstream.clone(), None),
        TunnelPass::Dynamic(d) => {
            let mut raw = Vec::new();
            d.url.render(&c.ctx(r), &mut raw);
            let rendered = String::from_utf8_lossy(&raw).into_owned();
            let Some((host, port)) = target::authority(&rendered) else {
                log::info(format_args!(
                    "invalid host in upstream \"{rendered}\", client: {}, server: {}",
                    c.peer.ip(),
                    r.server.primary_name
                ));
                return Step::error(500);
            };
            // Without a port only an `upstream` block of that name can be meant.
            match target::find(snap, c, r, host, port.unwrap_or(0), port.is_some()).await {
                Ok(Found::Upstream(u)) => (u, None),
                Ok(Found::Addrs(a)) => (super::dynamic_upstream(), Some(a)),
                Err(target::Unresolved(code)) => return Step::error(code),
            }
        }
    };
    let peers = Peers::of(snap, &up, found.as_deref());
    let Some(upstream) = dial(c, r, peers, &up).await else {
        return Step::error(c.attempts.last().map_or(502, |a| a.status));
    };
    join(c, r, &upstream).await;
    super::access_log(snap, c, r);
    Step::Done(false)
}

/// Connects to the first peer that takes the connection, as `tunnel_next_upstream`
/// allows; each attempt is recorded for `$upstream_addr`. `None`: none did (the
/// last attempt's status, 502 or 504, says how).
async fn dial(c: &mut Client, r: &Req<'_>, peers: Peers<'_>, up: &crate::config::model::Upstream) -> Option<Stream> {
    let conf: &LocConf = r.conf;
    let mut tried = crate::balance::Tried::new(peers.len());
    let budget = crate::balance::Budget::new(
        conf.tunnel_next_upstream_tries,
        Some(conf.tunnel_next_upstream_timeout),
        r.start,
    );
    for n in 1.. {
        let Some((held, addr)) = peers.pick(up, c.peer.ip(), b"", &mut tried) else {
            if n == 1 {
                log::error(format_args!(
                    "no live upstreams while connecting to upstream \"{}\", client: {}",
                    up.name,
                    c.peer.ip()
                ));
            }
            return None;
        };
        let t0 = Instant::now();
        match Stream::connect_peer(&addr, conf.tunnel_connect_timeout).await {
            Ok(s) => {
                held.release(false);
                // `$upstream_status` is "-" for a tunnel (no response came).
                c.attempts.push(attempt(addr, 0, ms_since(t0)));
                return Some(s);
            }
            Err(e) => {
                let f = Fail::io(e, Phase::Connect, false);
                held.release(f.counts_against_peer());
                log_failure(c, r, &f, &addr);
                c.attempts.push(attempt(addr, f.status(), ms_since(t0)));
                if !(budget.more(n, &tried, peers.len()) && f.next_upstream_allows(&conf.tunnel_next_upstream)) {
                    return None;
                }
            }
        }
    }
    None
}

fn attempt(addr: Peer, status: u16, connect_ms: u64) -> Attempt {
    Attempt {
        addr,
        status,
        connect_ms,
        header_ms: connect_ms,
        response_ms: connect_ms,
    }
}

fn log_failure(c: &Client, r: &Req<'_>, f: &Fail, addr: &Peer) {
    if let Some(cause) = f.cause() {
        log::error(format_args!(
            "{cause}, client: {}, server: {}, request: \"{} {} HTTP/1.1\", upstream: \"{addr}\"",
            c.peer.ip(),
            r.server.primary_name,
            String::from_utf8_lossy(c.head.method_span.get(&c.buf)),
            String::from_utf8_lossy(c.head.target.get(&c.buf)),
        ));
    }
}

/// `200 OK` to the client, the bytes it sent after its head to the target, then
/// the copy both ways, until both sides are done.
async fn join(c: &mut Client, r: &mut Req<'_>, upstream: &Stream) {
    let conf = r.conf;
    let mut out = std::mem::take(&mut c.out);
    out.clear();
    status_line(
        &mut out,
        200,
        b"OK",
        Own {
            server: true,
            date: true,
        },
    );
    out.extend_from_slice(b"Connection: close\r\n");
    write_add_headers(&mut out, c, r, 200);
    out.extend_from_slice(b"\r\n");
    let head_len = out.len() as u64;
    let Some(client) = c.stream.h1() else {
        return;
    };
    let mark = client.written();
    let wrote = client.write_all(out, conf.send_timeout).await;
    let early = framing::pipelined(&c.buf, c.consumed).to_vec();
    c.consumed = c.buf.len();
    if let Ok(b) = wrote {
        c.out = b;
        let sent_early = early.is_empty() || upstream.write_all(early, conf.tunnel_send_timeout).await.is_ok();
        if sent_early {
            let to_upstream = tunnel::Limits::new(super::NO_DEADLINE, conf.tunnel_send_timeout);
            let to_client = tunnel::Limits::new(conf.tunnel_read_timeout, conf.send_timeout);
            let t = tunnel::tunnel(client, upstream, to_upstream, to_client).await;
            if let Some(IoFail::Timeout) = t.failed {
                log::info(format_args!(
                    "upstream timed out (110: Connection timed out) while proxying upgraded connection, client: {}, server: {}",
                    c.peer.ip(),
                    r.server.primary_name
                ));
            }
        }
    }
    let bytes = client.written() - mark;
    r.sent = Sent {
        status: if bytes == 0 { 499 } else { 200 },
        bytes,
        body_bytes: bytes.saturating_sub(head_len),
        head_bytes: head_len,
    };
}
