//! nginx's `resolver`: names in `proxy_pass` and `tunnel_pass` targets with
//! variables (a forward proxy's `$host`) looked up asynchronously, never with the
//! blocking system resolver on a worker thread.
//!
//! Where it sits: between a request's target (rendered by the proxy) and the
//! connect. Each worker keeps its own cache (share-nothing): answers for their TTL
//! (or `valid=`, which replaces it, as nginx). Failures are kept for `valid=` or
//! 10 s, where nginx asks again for every request: a client cannot make ringx send
//! a query per request for a name that does not exist. Timeouts are not kept.
//! The messages are [`crate::proto::dns`]'s.
//!
//! Transport: UDP from a fresh socket per query (a random source port and a random
//! ID, so that a forged answer must guess both), to the configured servers in turn:
//! a server that refuses (ICMP unreachable) or stays silent for 5 s (nginx's resend
//! interval) hands over to the next, until `resolver_timeout`. A truncated answer is
//! asked again over TCP. The sockets are tokio's on both drivers: readiness-based,
//! so a timeout withdraws the receive at once (answers are cached, so this is off
//! the request path's hot loop).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::model::Resolver;
use crate::proto::dns::{self, Answer, DnsError, Family};

/// nginx resends an unanswered query after 5 s (to the next server).
const RESEND: Duration = Duration::from_secs(5);
/// Failures are kept this long without `valid=` (nginx's default).
const NEGATIVE: Duration = Duration::from_secs(10);
/// Entries a worker keeps; past this, expired ones go, then all.
const CACHE_MAX: usize = 10_000;

/// One cached result.
struct Entry {
    result: Result<Arc<[IpAddr]>, DnsError>,
    until: Instant,
}

thread_local! {
    /// Per resolver (its id), per lowercased name: looked up by `&str`, so a hit
    /// allocates nothing.
    static CACHE: RefCell<HashMap<usize, HashMap<Box<str>, Entry>>> = RefCell::new(HashMap::new());
    static NEXT_SERVER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The addresses of `name` (IPv4 first), from the cache (`true`) or the servers of
/// `res`, within `timeout`.
pub async fn resolve(res: &Resolver, timeout: Duration, name: &str) -> Result<(Arc<[IpAddr]>, bool), DnsError> {
    let name = name.trim_end_matches('.');
    // `$host` is lowercase already; only another name is copied.
    let name: std::borrow::Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_ascii_lowercase().into()
    } else {
        name.into()
    };
    let now = Instant::now();
    let cached = CACHE.with(|c| {
        c.borrow()
            .get(&res.id)
            .and_then(|m| m.get(&*name))
            .filter(|e| e.until > now)
            .map(|e| e.result.clone())
    });
    if let Some(r) = cached {
        return r.map(|a| (a, true));
    }
    let deadline = now + timeout;
    let (v4, v6) = tokio::join!(
        lookup_if(res.ipv4, res, &name, Family::V4, deadline),
        lookup_if(res.ipv6, res, &name, Family::V6, deadline)
    );
    let (result, ttl) = combine(v4, v6);
    let keep = match (&result, res.valid) {
        (Err(DnsError::TIMEDOUT), _) => None,
        (_, Some(v)) => Some(v),
        (Ok(_), None) => Some(Duration::from_secs(u64::from(ttl))),
        (Err(_), None) => Some(NEGATIVE),
    };
    if let Some(keep) = keep.filter(|k| !k.is_zero()) {
        store(res.id, &name, result.clone(), Instant::now() + keep);
    }
    result.map(|a| (a, false))
}

type Looked = Option<Result<(Vec<IpAddr>, u32), DnsError>>;

async fn lookup_if(on: bool, res: &Resolver, name: &str, f: Family, deadline: Instant) -> Looked {
    if on {
        Some(lookup(res, name, f, deadline).await)
    } else {
        None
    }
}

/// Both families' results as one: any addresses win (IPv4 first); otherwise the
/// IPv4 failure (a timeout of either wins over a definite answer, as it is not
/// cached).
fn combine(v4: Looked, v6: Looked) -> (Result<Arc<[IpAddr]>, DnsError>, u32) {
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    let mut err = None;
    for r in [v4, v6].into_iter().flatten() {
        match r {
            Ok((a, t)) => {
                addrs.extend(a);
                ttl = ttl.min(t);
            }
            Err(e) => {
                if err.is_none() || e == DnsError::TIMEDOUT {
                    err = Some(e);
                }
            }
        }
    }
    if addrs.is_empty() {
        (Err(err.unwrap_or(DnsError::NXDOMAIN)), 0)
    } else {
        (Ok(addrs.into()), ttl)
    }
}

fn store(id: usize, name: &str, result: Result<Arc<[IpAddr]>, DnsError>, until: Instant) {
    CACHE.with(|c| {
        let mut all = c.borrow_mut();
        // Resolvers of older configurations go (their ids are not used again).
        let c = all.entry(id).or_default();
        if c.len() >= CACHE_MAX {
            let now = Instant::now();
            c.retain(|_, e| e.until > now);
            if c.len() >= CACHE_MAX {
                c.clear();
            }
        }
        c.insert(name.into(), Entry { result, until });
    });
}

/// One family's answer: the servers in turn until one answers or `deadline`.
async fn lookup(res: &Resolver, name: &str, f: Family, deadline: Instant) -> Result<(Vec<IpAddr>, u32), DnsError> {
    let id = random_id();
    let q = dns::query(id, name, f).ok_or(DnsError::FORMERR)?;
    let start = NEXT_SERVER.with(|n| {
        let v = n.get();
        n.set(v.wrapping_add(1));
        v
    });
    for i in 0.. {
        let now = Instant::now();
        if now >= deadline || res.servers.is_empty() {
            break;
        }
        let server = res.servers[(start + i) % res.servers.len()];
        let wait = (deadline - now).min(RESEND);
        match udp_exchange(server, &q, id, name, f, wait).await {
            Some(Answer::Addrs(a, ttl)) => return Ok((a, ttl)),
            Some(Answer::Failed(e)) => return Err(e),
            Some(Answer::Truncated) => match tcp_exchange(server, &q, id, name, f, deadline).await {
                Some(Answer::Addrs(a, ttl)) => return Ok((a, ttl)),
                Some(Answer::Failed(e)) => return Err(e),
                _ => {}
            },
            None => {}
        }
    }
    Err(DnsError::TIMEDOUT)
}

/// A query over UDP; `None` when the server refused or did not answer in `wait`.
async fn udp_exchange(server: SocketAddr, q: &[u8], id: u16, name: &str, f: Family, wait: Duration) -> Option<Answer> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = tokio::net::UdpSocket::bind(local).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(q).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let recv = async {
        loop {
            let n = sock.recv(&mut buf).await.ok()?;
            if let Some(a) = dns::answer(&buf[..n], id, name, f) {
                return Some(a);
            }
        }
    };
    tokio::time::timeout(wait, recv).await.ok().flatten()
}

/// A query over TCP (after a truncated UDP answer), by `deadline`.
async fn tcp_exchange(
    server: SocketAddr,
    q: &[u8],
    id: u16,
    name: &str,
    f: Family,
    deadline: Instant,
) -> Option<Answer> {
    let left = deadline.checked_duration_since(Instant::now())?;
    let s = super::Stream::connect(server, left).await.ok()?;
    let mut msg = Vec::with_capacity(q.len() + 2);
    msg.extend_from_slice(&(q.len() as u16).to_be_bytes());
    msg.extend_from_slice(q);
    let mut buf = s.write_all(msg, super::Deadline::At(deadline)).await.ok()?;
    buf.clear();
    loop {
        let (n, b) = s.read_append(buf, 65537, super::Deadline::At(deadline)).await.ok()?;
        buf = b;
        if n == 0 {
            return None;
        }
        if buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if buf.len() >= len + 2 {
                return dns::answer(&buf[2..len + 2], id, name, f);
            }
        }
    }
}

/// A random number below `n` (`n` > 0), as [`random_id`] makes them.
pub fn random(n: usize) -> usize {
    usize::from(random_id()) % n.max(1)
}

/// An unpredictable query ID: SipHash under the process's random keys (std's
/// `RandomState`), over a counter.
fn random_id() -> u16 {
    thread_local!(static N: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
    let n = N.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() as u16
}

/// The address literal in `host` (`1.2.3.4`, `[::1]`), if it is one.
pub fn literal(host: &str) -> Option<IpAddr> {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    match h {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal("::1"), None);
        assert_eq!(literal("example.org"), None);
    }

    #[test]
    fn addresses_win_over_a_family_that_failed() {
        let v4 = Some(Err(DnsError::NXDOMAIN));
        let v6 = Some(Ok((vec!["::1".parse().unwrap()], 30)));
        let (r, ttl) = combine(v4, v6);
        assert_eq!(&*r.unwrap(), &["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(ttl, 30);
        let (r, _) = combine(Some(Err(DnsError::NXDOMAIN)), Some(Err(DnsError::TIMEDOUT)));
        assert_eq!(r.unwrap_err(), DnsError::TIMEDOUT);
        assert_eq!(
            combine(Some(Err(DnsError::SERVFAIL)), None).0.unwrap_err(),
            DnsError::SERVFAIL
        );
    }

    #[test]
    fn ids_vary() {
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| random_id()).collect();
        assert!(ids.len() > 50);
    }
}
