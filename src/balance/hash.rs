//! nginx's `hash KEY` and `hash KEY consistent` (ngx_http_upstream_hash_module.c).
//!
//! Plain hash: `((crc32([REHASH] KEY) >> 16) & 0x7fff)` added to the previous value,
//! walked over the weighted server list (Cache::Memcached-compatible); a rehash on an
//! unusable server, round robin after 20 tries.
//!
//! Consistent: nginx's ketama ring, `weight × 160` points per server from
//! `crc32(HOST \0 PORT PREV_HASH)` (Cache::Memcached::Fast-compatible), sorted and
//! deduplicated; a key maps to the first point at or after `crc32(KEY)`, and among the
//! servers sharing that point's `server` string, smooth weighted round robin decides.

use super::{round_robin, Tier, Tried};
use crate::config::model::Upstream;

/// CRC-32 (IEEE), the same as nginx's `ngx_crc32_*`.
#[derive(Clone, Copy)]
pub struct Crc32(u32);

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

impl Crc32 {
    pub fn init() -> Self {
        Crc32(0xFFFF_FFFF)
    }
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    pub fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = Crc32::init();
    c.update(data);
    c.finish()
}

/// Builds the ketama ring for `u` (primary servers; nginx allows no backup here).
pub fn build_points(u: &mut Upstream) {
    let mut names: Vec<String> = Vec::new();
    let mut name_of = Vec::with_capacity(u.servers.len());
    for s in &u.servers {
        let id = match names.iter().position(|n| *n == s.name) {
            Some(i) => i,
            None => {
                names.push(s.name.clone());
                names.len() - 1
            }
        };
        name_of.push(id as u32);
    }
    let mut points: Vec<(u32, u32)> = Vec::new();
    for (i, s) in u.servers.iter().enumerate() {
        let server = s.name.as_bytes();
        // Split "host:port" where the port is the trailing digits after the last ':'.
        let (host, port): (&[u8], &[u8]) = if server.len() >= 5 && server[..5].eq_ignore_ascii_case(b"unix:") {
            (&server[5..], b"")
        } else {
            let mut split = None;
            for j in 0..server.len() {
                let c = server[server.len() - j - 1];
                if c == b':' {
                    split = Some((&server[..server.len() - j - 1], &server[server.len() - j..]));
                    break;
                }
                if !c.is_ascii_digit() {
                    break;
                }
            }
            split.unwrap_or((server, b""))
        };
        let mut base = Crc32::init();
        base.update(host);
        base.update(&[0]);
        base.update(port);
        let mut prev: u32 = 0;
        for _ in 0..s.weight * 160 {
            let mut h = base;
            h.update(&prev.to_le_bytes());
            let v = h.finish();
            points.push((v, name_of[i]));
            prev = v;
        }
    }
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    u.chash_points = points;
    u.chash_names = names;
    u.chash_name_of = name_of;
}

/// nginx's plain `hash`.
pub fn pick(tier: &mut Tier, key: &[u8], tried: &Tried) -> Option<usize> {
    let mut hash: u64 = 0;
    let mut rehash: u64 = 0;
    tier.hash_walk(tried, || {
        let mut c = Crc32::init();
        if rehash > 0 {
            c.update(rehash.to_string().as_bytes());
        }
        c.update(key);
        hash += ((c.finish() >> 16) & 0x7fff) as u64;
        rehash += 1;
        hash
    })
}

/// nginx's `hash … consistent`.
pub fn pick_consistent(tier: &mut Tier, up: &Upstream, key: &[u8], tried: &Tried) -> Option<usize> {
    let points = &up.chash_points;
    if points.is_empty() {
        return None;
    }
    let h = crc32(key);
    // First point with hash >= h (wrapping to 0 past the end).
    let mut at = points.partition_point(|p| p.0 < h);
    let mut tries = 0;
    loop {
        let name = points[at % points.len()].1;
        // Smooth weighted round robin among the servers with this point's name.
        let mut named = Tried::new(tier.peers.len());
        for (i, p) in tier.peers.iter().enumerate() {
            if up.chash_name_of[p.server] == name {
                named.set(i);
            }
        }
        if let Some(i) = round_robin::pick_among(tier, tried, |i| named.get(i)) {
            return Some(i);
        }
        at += 1;
        tries += 1;
        if tries > 20 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::balance::{Balancer, Tried};
    use crate::config::model::{Balance, UpstreamServer};
    use std::sync::Arc;
    use std::time::Instant;

    fn ring(n: usize) -> Balancer {
        let servers = (0..n)
            .map(|i| {
                UpstreamServer::new(
                    format!("127.0.0.1:{}", 9000 + i)
                        .parse::<std::net::SocketAddr>()
                        .unwrap(),
                    format!("10.0.0.{i}:80"),
                )
            })
            .collect();
        let mut u = Upstream::new("u".into(), 0, Balance::Hash { consistent: true }, servers, false);
        build_points(&mut u);
        Balancer::new(Arc::new(u))
    }

    fn map(b: &Balancer, keys: usize) -> Vec<usize> {
        let now = Instant::now();
        (0..keys)
            .map(|k| {
                let s = b
                    .pick(
                        "127.0.0.1".parse().unwrap(),
                        format!("/key/{k}").as_bytes(),
                        &mut Tried::new(b.len()),
                        now,
                    )
                    .unwrap();
                b.release(s, false, now);
                s
            })
            .collect()
    }

    #[test]
    fn consistent_hash_moves_about_one_nth_of_keys() {
        // Adding a fifth server moves about 1/5 of the keys, all of them to the new
        // server; a plain modulo hash would move about 4/5.
        let before = map(&ring(4), 4000);
        let after = map(&ring(5), 4000);
        let moved: Vec<usize> = (0..4000).filter(|&k| before[k] != after[k]).collect();
        let frac = moved.len() as f64 / 4000.0;
        assert!((0.10..0.32).contains(&frac), "moved {frac:.3}");
        assert!(moved.iter().all(|&k| after[k] == 4), "keys moved between old servers");
        // Each server holds a fair part of the ring (weight x 160 points).
        let mut n = [0usize; 5];
        for &s in &after {
            n[s] += 1;
        }
        assert!(n.iter().all(|&c| c > 400), "{n:?}");
    }

    #[test]
    fn crc32_matches_the_standard() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let mut c = Crc32::init();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }
}
