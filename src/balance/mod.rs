//! Choosing an upstream server: nginx's algorithms over one worker's view.
//!
//! Sits between routing and the upstream connect in the data path. A [`Balancer`] is
//! one worker's state for one `upstream` (created per worker per config snapshot, so
//! it needs no lock): the smooth-weighted-round-robin weights, in-flight counts for
//! `least_conn`, and the passive health of each server (`max_fails` within
//! `fail_timeout`). The algorithms are sans-io functions over [`Peer`] slices, in
//! [`round_robin`], [`least_conn`] and [`ip_hash`], that follow nginx's
//! `ngx_http_upstream_round_robin.c`, `..._least_conn_module.c` and
//! `..._ip_hash_module.c` step by step, so that one ringx worker picks what one nginx
//! worker picks. Servers marked `backup` form a second tier used only when every
//! primary server is unavailable; when both tiers are exhausted the failure counts are
//! reset (nginx's quick recovery) and the caller answers 502.

pub mod ip_hash;
pub mod least_conn;
pub mod round_robin;

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::model::{Balance, Upstream};

/// One server as one worker sees it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Index into `Upstream::servers`.
    pub server: usize,
    pub weight: i64,
    pub effective_weight: i64,
    pub current_weight: i64,
    pub conns: u32,
    pub max_conns: u32,
    pub fails: u32,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub accessed: Option<Instant>,
    pub checked: Instant,
    pub down: bool,
}

impl Peer {
    /// nginx's "temporarily disabled" test.
    #[inline]
    pub fn failed(&self, now: Instant) -> bool {
        self.max_fails != 0 && self.fails >= self.max_fails && now.duration_since(self.checked) <= self.fail_timeout
    }
    #[inline]
    pub fn full(&self) -> bool {
        self.max_conns != 0 && self.conns >= self.max_conns
    }
}

/// Which servers this request has tried (nginx's `tried` bitmap). Up to 256 servers
/// live inline, so a request allocates nothing here.
#[derive(Debug, Clone)]
pub struct Tried {
    inline: [u64; 4],
    more: Vec<u64>,
}

impl Tried {
    pub fn new(n: usize) -> Self {
        let words = n.div_ceil(64);
        Tried {
            inline: [0; 4],
            more: if words > 4 { vec![0; words - 4] } else { Vec::new() },
        }
    }
    fn word(&self, i: usize) -> Option<&u64> {
        let w = i / 64;
        if w < 4 {
            self.inline.get(w)
        } else {
            self.more.get(w - 4)
        }
    }
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.word(i).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    #[inline]
    pub fn set(&mut self, i: usize) {
        let w = i / 64;
        let slot = if w < 4 {
            self.inline.get_mut(w)
        } else {
            self.more.get_mut(w - 4)
        };
        if let Some(x) = slot {
            *x |= 1 << (i % 64);
        }
    }
    pub fn count(&self) -> usize {
        self.inline
            .iter()
            .chain(self.more.iter())
            .map(|w| w.count_ones() as usize)
            .sum()
    }
}

/// A tier of peers (primary or backup) and the algorithm's shared facts about it.
#[derive(Debug)]
pub struct Tier {
    pub peers: Vec<Peer>,
    pub total_weight: i64,
    /// nginx ignores failures when a tier has a single server.
    pub single: bool,
}

impl Tier {
    fn new(up: &Upstream, backup: bool, now: Instant) -> Tier {
        let peers: Vec<Peer> = up
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.backup == backup)
            .map(|(i, s)| Peer {
                server: i,
                weight: s.weight as i64,
                effective_weight: s.weight as i64,
                current_weight: 0,
                conns: 0,
                max_conns: s.max_conns,
                fails: 0,
                max_fails: s.max_fails,
                fail_timeout: s.fail_timeout,
                accessed: None,
                checked: now,
                down: s.down,
            })
            .collect();
        let total_weight = peers.iter().map(|p| p.weight).sum();
        Tier {
            single: peers.len() == 1,
            peers,
            total_weight,
        }
    }

    /// The peer a pick chose is now in use (nginx: `checked` restarts the window).
    fn picked(&mut self, i: usize, now: Instant) -> usize {
        let p = &mut self.peers[i];
        if now.duration_since(p.checked) > p.fail_timeout {
            p.checked = now;
        }
        p.conns += 1;
        p.server
    }
}

/// One worker's balancing state for one upstream.
#[derive(Debug)]
pub struct Balancer {
    pub upstream: Arc<Upstream>,
    inner: RefCell<[Tier; 2]>,
}

impl Balancer {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        let now = Instant::now();
        let tiers = [Tier::new(&upstream, false, now), Tier::new(&upstream, true, now)];
        Balancer {
            upstream,
            inner: RefCell::new(tiers),
        }
    }

    pub fn len(&self) -> usize {
        self.upstream.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upstream.servers.is_empty()
    }

    /// Picks a server (an index into `Upstream::servers`) not yet in `tried`, or
    /// `None` when no server is available ("no live upstreams").
    pub fn pick(&self, client: IpAddr, tried: &mut Tried, now: Instant) -> Option<usize> {
        let mut tiers = self.inner.borrow_mut();
        for t in 0..2 {
            let tier = &mut tiers[t];
            if tier.peers.is_empty() {
                continue;
            }
            let found = if tier.single {
                let p = &tier.peers[0];
                (!p.down && !p.full() && !tried.get(p.server)).then_some(0)
            } else {
                match self.upstream.balance {
                    Balance::RoundRobin => round_robin::pick(tier, tried, now),
                    Balance::LeastConn => least_conn::pick(tier, tried, now),
                    Balance::IpHash if t == 0 => ip_hash::pick(tier, client, tried, now),
                    Balance::IpHash => round_robin::pick(tier, tried, now),
                }
            };
            if let Some(i) = found {
                let server = tier.picked(i, now);
                tried.set(server);
                return Some(server);
            }
        }
        // All peers failed: mark them live again for quick recovery (nginx).
        for tier in tiers.iter_mut() {
            for p in tier.peers.iter_mut() {
                p.fails = 0;
            }
        }
        None
    }

    /// The request on `server` ended; `failed` when it counts toward `max_fails`.
    pub fn release(&self, server: usize, failed: bool, now: Instant) {
        let mut tiers = self.inner.borrow_mut();
        for tier in tiers.iter_mut() {
            if let Some(p) = tier.peers.iter_mut().find(|p| p.server == server) {
                p.conns = p.conns.saturating_sub(1);
                if failed {
                    p.fails += 1;
                    p.accessed = Some(now);
                    p.checked = now;
                    if p.max_fails != 0 {
                        p.effective_weight -= p.weight / p.max_fails as i64;
                        if p.fails >= p.max_fails {
                            crate::observe::log::warn(format_args!(
                                "upstream server temporarily disabled: {} in upstream \"{}\"",
                                self.upstream.servers[server].name, self.upstream.name
                            ));
                        }
                    }
                    if p.effective_weight < 0 {
                        p.effective_weight = 0;
                    }
                } else if p.accessed.is_some_and(|a| a < p.checked) {
                    p.fails = 0;
                }
                return;
            }
        }
    }

    /// This worker's in-flight count on `server` (for tests and status).
    pub fn conns(&self, server: usize) -> u32 {
        let tiers = self.inner.borrow();
        tiers
            .iter()
            .flat_map(|t| t.peers.iter())
            .find(|p| p.server == server)
            .map_or(0, |p| p.conns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::UpstreamServer;

    pub(crate) fn upstream(balance: Balance, weights: &[u32]) -> Arc<Upstream> {
        Arc::new(Upstream {
            name: "u".into(),
            index: 0,
            balance,
            servers: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| UpstreamServer {
                    addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                    name: format!("s{i}"),
                    weight: w,
                    max_fails: 1,
                    fail_timeout: Duration::from_secs(10),
                    max_conns: 0,
                    backup: false,
                    down: false,
                })
                .collect(),
            keepalive: 0,
            keepalive_timeout: Duration::from_secs(60),
            keepalive_requests: 100,
            implicit: false,
        })
    }

    fn seq(b: &Balancer, n: usize) -> Vec<usize> {
        let now = Instant::now();
        (0..n)
            .map(|_| {
                let mut t = Tried::new(b.len());
                let s = b.pick("127.0.0.1".parse().unwrap(), &mut t, now).unwrap();
                b.release(s, false, now);
                s
            })
            .collect()
    }

    #[test]
    fn smooth_weighted_round_robin_matches_nginx() {
        // nginx's documented sequence for weights 5,1,1: a a b a c a a.
        let b = Balancer::new(upstream(Balance::RoundRobin, &[5, 1, 1]));
        assert_eq!(seq(&b, 7), vec![0, 0, 1, 0, 2, 0, 0]);
        let b = Balancer::new(upstream(Balance::RoundRobin, &[3, 2]));
        assert_eq!(seq(&b, 5), vec![0, 1, 0, 1, 0]);
    }

    #[test]
    fn failures_skip_and_recover() {
        let b = Balancer::new(upstream(Balance::RoundRobin, &[1, 1, 1]));
        let now = Instant::now();
        let ip = "127.0.0.1".parse().unwrap();
        let mut t = Tried::new(3);
        let s = b.pick(ip, &mut t, now).unwrap();
        b.release(s, true, now);
        // max_fails=1: s is out for fail_timeout.
        for _ in 0..10 {
            let mut t = Tried::new(3);
            let x = b.pick(ip, &mut t, now).unwrap();
            assert_ne!(x, s);
            b.release(x, false, now);
        }
        // After fail_timeout it is tried again.
        let later = now + Duration::from_secs(11);
        let picks: Vec<_> = (0..10)
            .map(|_| {
                let mut t = Tried::new(3);
                let x = b.pick(ip, &mut t, later).unwrap();
                b.release(x, false, later);
                x
            })
            .collect();
        assert!(picks.contains(&s));
    }

    #[test]
    fn tried_servers_are_not_picked_again_and_exhaustion_is_none() {
        let b = Balancer::new(upstream(Balance::LeastConn, &[1, 1, 1]));
        let now = Instant::now();
        let mut t = Tried::new(3);
        let ip = "10.0.0.1".parse().unwrap();
        let mut got = vec![];
        while let Some(s) = b.pick(ip, &mut t, now) {
            got.push(s);
        }
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(t.count(), 3);
    }

    #[test]
    fn tried_bits_beyond_inline() {
        let mut t = Tried::new(300);
        for i in [0, 63, 64, 255, 256, 299] {
            assert!(!t.get(i));
            t.set(i);
            assert!(t.get(i));
        }
        assert_eq!(t.count(), 6);
    }

    #[test]
    fn backup_used_only_when_primaries_fail() {
        let mut u = (*upstream(Balance::RoundRobin, &[1, 1, 1])).clone_for_test();
        u.servers[2].backup = true;
        let b = Balancer::new(Arc::new(u));
        let now = Instant::now();
        let ip = "127.0.0.1".parse().unwrap();
        for _ in 0..6 {
            let mut t = Tried::new(3);
            let s = b.pick(ip, &mut t, now).unwrap();
            assert_ne!(s, 2);
            b.release(s, false, now);
        }
        b.release(0, true, now);
        b.release(1, true, now);
        let mut t = Tried::new(3);
        assert_eq!(b.pick(ip, &mut t, now), Some(2));
    }

    #[test]
    fn down_and_max_conns() {
        let mut u = (*upstream(Balance::RoundRobin, &[1, 1])).clone_for_test();
        u.servers[0].down = true;
        u.servers[1].max_conns = 1;
        let b = Balancer::new(Arc::new(u));
        let now = Instant::now();
        let ip = "127.0.0.1".parse().unwrap();
        let mut t = Tried::new(2);
        assert_eq!(b.pick(ip, &mut t, now), Some(1));
        let mut t = Tried::new(2);
        assert_eq!(b.pick(ip, &mut t, now), None, "max_conns=1 reached");
        b.release(1, false, now);
        let mut t = Tried::new(2);
        assert_eq!(b.pick(ip, &mut t, now), Some(1));
    }

    impl Upstream {
        fn clone_for_test(&self) -> Upstream {
            Upstream {
                name: self.name.clone(),
                index: self.index,
                balance: self.balance,
                servers: self.servers.clone(),
                keepalive: self.keepalive,
                keepalive_timeout: self.keepalive_timeout,
                keepalive_requests: self.keepalive_requests,
                implicit: self.implicit,
            }
        }
    }
}
