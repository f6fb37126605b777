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

pub mod hash;
pub mod ip_hash;
pub mod least_conn;
pub mod random;
pub mod round_robin;
pub mod shared;

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::model::{Balance, Upstream};
use shared::{now_ms_at, Avail, SharedPeer};

/// One server as one worker sees it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Index into `Upstream::servers`.
    pub server: usize,
    pub weight: i64,
    pub effective_weight: i64,
    pub current_weight: i64,
    /// This worker's exact in-flight count.
    pub conns: u32,
    /// This worker's requests to the server.
    pub requests: u64,
    pub max_conns: u32,
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
    pub slow_start_ms: u64,
    pub down: bool,
    // Refreshed at each pick from the shared state:
    /// Usable now (not down, not tripped, not unhealthy, under max_conns).
    pub ok: bool,
    /// Tripped and due for its single probe.
    pub probe: bool,
    /// Skipped by slow_start's ramp on this pick (usable otherwise).
    pub ramp_out: bool,
    /// In-flight requests across all workers.
    pub view_conns: u32,
    /// The weight the algorithms compare with (the configured one).
    pub weight_now: i64,
}

/// How far a request may go on to the next server: nginx's `*_next_upstream_tries`
/// (0: no limit) and `*_next_upstream_timeout` (none or zero: no limit), counted
/// from the request's start; and never past the last untried server.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    tries: usize,
    deadline: Option<Instant>,
}

impl Budget {
    pub fn new(tries: u32, timeout: Option<std::time::Duration>, start: Instant) -> Budget {
        Budget {
            tries: if tries == 0 { usize::MAX } else { tries as usize },
            deadline: timeout.filter(|t| !t.is_zero()).map(|t| start + t),
        }
    }

    /// Whether another attempt may follow attempt `n` (1-based), `tried` of `peers`
    /// servers having been tried.
    pub fn more(&self, n: usize, tried: &Tried, peers: usize) -> bool {
        n < self.tries && self.deadline.is_none_or(|d| Instant::now() < d) && tried.count() < peers
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

/// A tier of peers (primary or backup).
#[derive(Debug)]
pub struct Tier {
    pub peers: Vec<Peer>,
    pub total_weight: i64,
    /// nginx ignores failures when a tier has a single server.
    pub single: bool,
}

impl Tier {
    /// The peer whose weight range holds `h` (nginx's walk `while (w >= weight)`).
    pub fn weighted_index(&self, h: u64) -> usize {
        let mut w = (h % self.total_weight.max(1) as u64) as i64;
        let mut i = 0;
        while i + 1 < self.peers.len() && w >= self.peers[i].weight {
            w -= self.peers[i].weight;
            i += 1;
        }
        i
    }

    /// nginx's hash walk (ip_hash, hash): `next` gives successive hash values; the first
    /// usable peer they land on wins; after 20 misses, round robin decides.
    pub fn hash_walk(&mut self, tried: &Tried, mut next: impl FnMut() -> u64) -> Option<usize> {
        if self.total_weight == 0 {
            return None;
        }
        for _ in 0..=20 {
            let i = self.weighted_index(next());
            let p = &self.peers[i];
            if p.ok && !tried.get(p.server) {
                return Some(i);
            }
        }
        round_robin::pick(self, tried)
    }

    fn new(up: &Upstream, backup: bool) -> Tier {
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
                requests: 0,
                max_conns: s.max_conns,
                max_fails: s.max_fails,
                fail_timeout_ms: s.fail_timeout.as_millis() as u64,
                slow_start_ms: s.slow_start.as_millis() as u64,
                down: s.down,
                ok: !s.down,
                probe: false,
                ramp_out: false,
                view_conns: 0,
                weight_now: s.weight as i64,
            })
            .collect();
        let total_weight = peers.iter().map(|p| p.weight).sum();
        Tier {
            single: peers.len() == 1,
            peers,
            total_weight,
        }
    }
}

/// One worker's balancing state for one upstream, over the state all workers share.
#[derive(Debug)]
pub struct Balancer {
    pub upstream: Arc<Upstream>,
    /// This worker's index (its slot in the shared state).
    me: usize,
    inner: RefCell<[Tier; 2]>,
    rng: Cell<u64>,
}

impl Balancer {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self::for_worker(upstream, 0)
    }

    pub fn for_worker(upstream: Arc<Upstream>, me: usize) -> Self {
        let tiers = [Tier::new(&upstream, false), Tier::new(&upstream, true)];
        let seed = 0x9E37_79B9_7F4A_7C15u64 ^ ((me as u64 + 1) << 32) ^ upstream.index as u64;
        Balancer {
            upstream,
            me,
            inner: RefCell::new(tiers),
            rng: Cell::new(seed),
        }
    }

    pub fn len(&self) -> usize {
        self.upstream.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upstream.servers.is_empty()
    }

    fn shared(&self, server: usize) -> &SharedPeer {
        &self.upstream.shared().peers[server]
    }

    /// Refreshes each peer's view of the shared state before an algorithm runs.
    fn refresh(&self, tier: &mut Tier, now_ms: u64) {
        let need_view = matches!(
            self.upstream.balance,
            Balance::LeastConn | Balance::Random { two: true }
        );
        let sh = self.upstream.shared();
        for p in tier.peers.iter_mut() {
            let s = &sh.peers[p.server];
            let avail = if tier.single {
                if s.unhealthy.load(std::sync::atomic::Ordering::Relaxed) {
                    Avail::No
                } else {
                    Avail::Yes
                }
            } else {
                s.avail(now_ms)
            };
            let full = p.max_conns != 0 && s.global_conns.load(std::sync::atomic::Ordering::Relaxed) >= p.max_conns;
            // slow_start: skip a ramping server with probability 1 - progress.
            let ramping_out = match s.ramp(p.slow_start_ms, now_ms) {
                Some(f) => (self.next_rand() >> 11) as f64 / (1u64 << 53) as f64 >= f,
                None => false,
            };
            p.ramp_out = ramping_out;
            p.ok = !p.down && avail != Avail::No && !full && !ramping_out;
            p.probe = avail == Avail::Probe;
            if need_view {
                p.view_conns = s.conns_view(self.me, p.conns);
            }
        }
    }

    fn next_rand(&self) -> u64 {
        // xorshift64*: per-worker, no shared state.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Picks a server (an index into `Upstream::servers`) not yet in `tried`, or
    /// `None` when no server is available ("no live upstreams"). `key` is the
    /// rendered `hash` key, if the upstream uses one.
    pub fn pick(&self, client: IpAddr, key: &[u8], tried: &mut Tried, now: Instant) -> Option<usize> {
        let now_ms = now_ms_at(now);
        let mut tiers = self.inner.borrow_mut();
        for t in 0..2 {
            let tier = &mut tiers[t];
            if tier.peers.is_empty() {
                continue;
            }
            self.refresh(tier, now_ms);
            // A claimed probe or a max_conns slot can be lost to another worker
            // between the check and the claim; then that peer is skipped and the
            // algorithm runs again.
            let mut skip = Tried::new(0);
            for _ in 0..tier.peers.len() + 1 {
                let found = if tier.single {
                    let p = &tier.peers[0];
                    (p.ok && !tried.get(p.server) && !skip.get(0)).then_some(0)
                } else {
                    for (i, p) in tier.peers.iter_mut().enumerate() {
                        if skip.get(i) {
                            p.ok = false;
                        }
                    }
                    match self.upstream.balance {
                        Balance::RoundRobin => round_robin::pick(tier, tried),
                        Balance::LeastConn => least_conn::pick(tier, tried),
                        Balance::IpHash if t == 0 => ip_hash::pick(tier, client, tried),
                        Balance::Hash { consistent: false } if t == 0 && !key.is_empty() => {
                            hash::pick(tier, key, tried)
                        }
                        Balance::Hash { consistent: true } if t == 0 && !key.is_empty() => {
                            hash::pick_consistent(tier, &self.upstream, key, tried)
                        }
                        Balance::Random { two } if t == 0 => random::pick(tier, tried, two, || self.next_rand()),
                        _ => round_robin::pick(tier, tried),
                    }
                };
                let Some(i) = found else {
                    // A ramping server skipped by slow_start is still better than none.
                    if tier.peers.iter().any(|p| p.ramp_out) {
                        for p in tier.peers.iter_mut().filter(|p| p.ramp_out) {
                            p.ramp_out = false;
                            p.ok = true;
                        }
                        continue;
                    }
                    break;
                };
                let server = tier.peers[i].server;
                let sh = self.shared(server);
                let p = &tier.peers[i];
                if p.probe && !tier.single && !sh.claim_probe(now_ms, p.fail_timeout_ms) {
                    skip = mark(skip, i, tier.peers.len());
                    continue;
                }
                if p.max_conns != 0 {
                    let n = sh.global_conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= p.max_conns {
                        sh.global_conns.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        skip = mark(skip, i, tier.peers.len());
                        continue;
                    }
                }
                let p = &mut tier.peers[i];
                p.conns += 1;
                p.requests += 1;
                sh.publish(self.me, p.conns, p.requests);
                tried.set(server);
                return Some(server);
            }
        }
        // All peers failed: mark them live again for quick recovery (nginx).
        for p in &self.upstream.shared().peers {
            p.reset();
        }
        None
    }

    /// [`Balancer::pick`], holding the server's slot (its `least_conn` count, its
    /// `max_conns` place) in a guard that gives it back exactly once: by
    /// [`Held::release`], or when the guard is dropped unreleased (the attempt
    /// panicked or its task ended), then as a success, since nothing is known
    /// against the server.
    pub fn pick_held(&self, client: IpAddr, key: &[u8], tried: &mut Tried, now: Instant) -> Option<Held<'_>> {
        let server = self.pick(client, key, tried, now)?;
        Some(Held {
            bal: Some(self),
            server,
            live: true,
        })
    }

    /// The request on `server` ended; `failed` when it counts toward `max_fails`.
    pub fn release(&self, server: usize, failed: bool, now: Instant) {
        let now_ms = now_ms_at(now);
        let mut tiers = self.inner.borrow_mut();
        let sh = self.shared(server);
        for tier in tiers.iter_mut() {
            let single = tier.single;
            if let Some(p) = tier.peers.iter_mut().find(|p| p.server == server) {
                p.conns = p.conns.saturating_sub(1);
                sh.publish(self.me, p.conns, p.requests);
                if p.max_conns != 0 {
                    sh.global_conns.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
                if failed {
                    if p.max_fails != 0 {
                        p.effective_weight -= p.weight / p.max_fails as i64;
                    }
                    if p.effective_weight < 0 {
                        p.effective_weight = 0;
                    }
                    if !single && sh.on_failure(now_ms, p.max_fails, p.fail_timeout_ms) {
                        crate::observe::log::warn(format_args!(
                            "upstream server temporarily disabled: {} in upstream \"{}\"",
                            self.upstream.servers[server].name, self.upstream.name
                        ));
                    }
                } else if sh.on_success(now_ms, p.fail_timeout_ms) {
                    crate::observe::log::notice(format_args!(
                        "upstream server {} in upstream \"{}\" is back",
                        self.upstream.servers[server].name, self.upstream.name
                    ));
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

fn mark(mut t: Tried, i: usize, n: usize) -> Tried {
    if t.count() == 0 && n > 256 {
        t = Tried::new(n);
    }
    t.set(i);
    t
}

/// A server picked for one attempt; see [`Balancer::pick_held`].
pub struct Held<'a> {
    /// `None`: an address list without a balancer (a target resolved per request).
    bal: Option<&'a Balancer>,
    server: usize,
    live: bool,
}

impl Held<'_> {
    /// The `i`th address of a list that no balancer keeps state for.
    pub fn plain(i: usize) -> Held<'static> {
        Held {
            bal: None,
            server: i,
            live: false,
        }
    }

    /// The index into `Upstream::servers`.
    pub fn server(&self) -> usize {
        self.server
    }

    /// The attempt ended; `failed` when it counts toward `max_fails`.
    pub fn release(mut self, failed: bool) {
        if let (Some(bal), true) = (self.bal, self.live) {
            bal.release(self.server, failed, Instant::now());
        }
        self.live = false;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let (Some(bal), true) = (self.bal, self.live) {
            bal.release(self.server, false, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::UpstreamServer;
    use std::time::Duration;

    pub(crate) fn upstream(balance: Balance, weights: &[u32]) -> Arc<Upstream> {
        let servers = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| UpstreamServer {
                weight: w,
                ..UpstreamServer::new(
                    format!("127.0.0.1:{}", 9000 + i)
                        .parse::<std::net::SocketAddr>()
                        .unwrap(),
                    format!("s{i}"),
                )
            })
            .collect();
        Arc::new(Upstream::new("u".into(), 0, balance, servers, false))
    }

    fn seq(b: &Balancer, n: usize) -> Vec<usize> {
        let now = Instant::now();
        (0..n)
            .map(|_| {
                let mut t = Tried::new(b.len());
                let s = b.pick("127.0.0.1".parse().unwrap(), b"", &mut t, now).unwrap();
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
        let s = b.pick(ip, b"", &mut t, now).unwrap();
        b.release(s, true, now);
        // max_fails=1: s is out for fail_timeout.
        for _ in 0..10 {
            let mut t = Tried::new(3);
            let x = b.pick(ip, b"", &mut t, now).unwrap();
            assert_ne!(x, s);
            b.release(x, false, now);
        }
        // After fail_timeout it is tried again.
        let later = now + Duration::from_secs(11);
        let picks: Vec<_> = (0..10)
            .map(|_| {
                let mut t = Tried::new(3);
                let x = b.pick(ip, b"", &mut t, later).unwrap();
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
        while let Some(s) = b.pick(ip, b"", &mut t, now) {
            got.push(s);
        }
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(t.count(), 3);
    }

    #[test]
    fn spread_follows_weights_and_skips_down_servers() {
        // Property over several weight sets: over k full cycles (k x total weight
        // picks) smooth WRR gives each server exactly k x its weight; a down server
        // gets nothing and the others keep their proportions.
        for weights in [&[1u32, 1, 1][..], &[5, 1, 1], &[3, 2], &[7, 3, 1, 9], &[1, 10]] {
            let b = Balancer::new(upstream(Balance::RoundRobin, weights));
            let total: u32 = weights.iter().sum();
            let picks = seq(&b, (total * 50) as usize);
            for (i, &w) in weights.iter().enumerate() {
                assert_eq!(
                    picks.iter().filter(|&&s| s == i).count(),
                    (w * 50) as usize,
                    "{weights:?}"
                );
            }
            let mut u = (*upstream(Balance::RoundRobin, weights)).clone_for_test();
            u.servers[0].down = true;
            let b = Balancer::new(Arc::new(u));
            let rest: u32 = weights[1..].iter().sum();
            let picks = seq(&b, (rest * 20) as usize);
            assert!(!picks.contains(&0), "down server picked ({weights:?})");
            for (i, &w) in weights.iter().enumerate().skip(1) {
                assert_eq!(
                    picks.iter().filter(|&&s| s == i).count(),
                    (w * 20) as usize,
                    "{weights:?}"
                );
            }
        }
    }

    #[test]
    fn down_servers_are_never_picked_by_any_method() {
        let methods = [
            Balance::RoundRobin,
            Balance::LeastConn,
            Balance::IpHash,
            Balance::Hash { consistent: false },
            Balance::Hash { consistent: true },
            Balance::Random { two: false },
            Balance::Random { two: true },
        ];
        for m in methods {
            let mut u = (*upstream(m, &[2, 1, 3, 1])).clone_for_test();
            u.servers[2].down = true;
            if m == (Balance::Hash { consistent: true }) {
                crate::balance::hash::build_points(&mut u);
            }
            let b = Balancer::new(Arc::new(u));
            let now = Instant::now();
            for i in 0..500u32 {
                let ip = IpAddr::from([10, (i >> 8) as u8, i as u8, 7]);
                let key = format!("/k{i}");
                let s = b.pick(ip, key.as_bytes(), &mut Tried::new(4), now).unwrap();
                assert_ne!(s, 2, "{m:?} picked a down server");
                b.release(s, false, now);
            }
        }
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
            let s = b.pick(ip, b"", &mut t, now).unwrap();
            assert_ne!(s, 2);
            b.release(s, false, now);
        }
        b.release(0, true, now);
        b.release(1, true, now);
        let mut t = Tried::new(3);
        assert_eq!(b.pick(ip, b"", &mut t, now), Some(2));
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
        assert_eq!(b.pick(ip, b"", &mut t, now), Some(1));
        let mut t = Tried::new(2);
        assert_eq!(b.pick(ip, b"", &mut t, now), None, "max_conns=1 reached");
        b.release(1, false, now);
        let mut t = Tried::new(2);
        assert_eq!(b.pick(ip, b"", &mut t, now), Some(1));
    }

    impl Upstream {
        fn clone_for_test(&self) -> Upstream {
            Upstream::new(
                self.name.clone(),
                self.index,
                self.balance,
                self.servers.clone(),
                self.implicit,
            )
        }
    }

    #[test]
    fn retry_budget_as_nginx() {
        let now = Instant::now();
        let mut tried = Tried::new(3);
        tried.set(0);
        let two = Budget::new(2, None, now);
        assert!(two.more(1, &tried, 3));
        assert!(!two.more(2, &tried, 3), "next_upstream_tries 2: two attempts");
        let unlimited = Budget::new(0, Some(std::time::Duration::ZERO), now);
        assert!(unlimited.more(100, &tried, 3), "0 tries and a zero timeout: no limit");
        tried.set(1);
        tried.set(2);
        assert!(!unlimited.more(1, &tried, 3), "every server tried");
        let late = Budget::new(
            0,
            Some(std::time::Duration::from_millis(1)),
            now - std::time::Duration::from_secs(1),
        );
        assert!(!late.more(1, &Tried::new(3), 3), "past next_upstream_timeout");
    }
}
