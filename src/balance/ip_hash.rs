//! nginx's `ip_hash` (`ngx_http_upstream_get_ip_hash_peer`): a hash of the first three
//! octets of an IPv4 address (all 16 bytes of IPv6) walked over the weighted server
//! list; when the chosen server is unusable the hash is stirred again, and after 20
//! tries the pick falls back to round robin.

use std::net::IpAddr;

use super::{Tier, Tried};

pub fn pick(tier: &mut Tier, client: IpAddr, tried: &Tried) -> Option<usize> {
    let v4;
    let v6;
    let addr: &[u8] = match client {
        IpAddr::V4(a) => {
            v4 = a.octets();
            &v4[..3]
        }
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => {
                v4 = m.octets();
                &v4[..3]
            }
            None => {
                v6 = a.octets();
                &v6[..]
            }
        },
    };
    let mut hash: u64 = 89;
    tier.hash_walk(tried, || {
        for &b in addr {
            hash = (hash * 113 + b as u64) % 6271;
        }
        hash
    })
}

/// The server nginx's `ip_hash` picks for `client` over `weights` when all are up
/// (for tests and for comparing with nginx).
pub fn hash_index(client: [u8; 3], weights: &[i64]) -> usize {
    let mut hash: u64 = 89;
    for b in client {
        hash = (hash * 113 + b as u64) % 6271;
    }
    let total: i64 = weights.iter().sum();
    let mut w = (hash % total as u64) as i64;
    weights
        .iter()
        .position(|&x| {
            let hit = w < x;
            w -= x;
            hit
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::tests::upstream;
    use crate::balance::Balancer;
    use crate::config::model::Balance;
    use std::time::Instant;

    #[test]
    fn same_client_same_server_and_spread() {
        let b = Balancer::new(upstream(Balance::IpHash, &[1, 1, 1]));
        let now = Instant::now();
        let mut seen = [0usize; 3];
        for last in 0..=255u8 {
            for third in 0..4u8 {
                let ip: IpAddr = format!("10.0.{third}.{last}").parse().unwrap();
                let a = b.pick(ip, b"", &mut Tried::new(3), now).unwrap();
                b.release(a, false, now);
                let c = b.pick(ip, b"", &mut Tried::new(3), now).unwrap();
                b.release(c, false, now);
                assert_eq!(a, c);
                // Only the first three octets count.
                assert_eq!(a, hash_index([10, 0, third], &[1, 1, 1]));
                seen[a] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }

    #[test]
    fn rehash_when_down() {
        let b = Balancer::new(upstream(Balance::IpHash, &[1, 1, 1]));
        let now = Instant::now();
        let ip: IpAddr = "192.168.1.7".parse().unwrap();
        let first = b.pick(ip, b"", &mut Tried::new(3), now).unwrap();
        b.release(first, true, now);
        let again = b.pick(ip, b"", &mut Tried::new(3), now).unwrap();
        assert_ne!(first, again);
    }
}
