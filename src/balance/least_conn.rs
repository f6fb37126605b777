//! nginx's `least_conn`: fewest in-flight requests relative to weight, ties broken by
//! smooth weighted round robin among the tied peers
//! (`ngx_http_upstream_get_least_conn_peer`).

//!
//! The in-flight counts are the global view (`Peer::view_conns`: this worker's exact
//! count plus every other worker's published one), so the choice is the same one a
//! single process would make.

use super::{round_robin, Tier, Tried};

pub fn pick(tier: &mut Tier, tried: &Tried) -> Option<usize> {
    let usable = |t: &Tier, i: usize| {
        let p = &t.peers[i];
        p.ok && !tried.get(p.server)
    };
    let mut best: Option<usize> = None;
    let mut many = false;
    for i in 0..tier.peers.len() {
        if !usable(tier, i) {
            continue;
        }
        let p = &tier.peers[i];
        match best {
            None => best = Some(i),
            Some(b) => {
                let bp = &tier.peers[b];
                // p.conns / p.weight < b.conns / b.weight, without division.
                let lhs = p.view_conns as i64 * bp.weight_now;
                let rhs = bp.view_conns as i64 * p.weight_now;
                if lhs < rhs {
                    best = Some(i);
                    many = false;
                } else if lhs == rhs {
                    many = true;
                }
            }
        }
    }
    let b = best?;
    if !many {
        return Some(b);
    }
    let (bc, bw) = (tier.peers[b].view_conns as i64, tier.peers[b].weight_now);
    // Peers tied with the best, from the best onward (nginx walks from `best`).
    let mut tied = super::Tried::new(tier.peers.len());
    for (i, p) in tier.peers.iter().enumerate().skip(b) {
        if p.view_conns as i64 * bw == bc * p.weight_now {
            tied.set(i);
        }
    }
    round_robin::pick_among(tier, tried, |i| tied.get(i))
}

#[cfg(test)]
mod tests {
    use crate::balance::tests::upstream;
    use crate::balance::{Balancer, Tried};
    use crate::config::model::Balance;
    use std::time::Instant;

    #[test]
    fn prefers_fewest_in_flight() {
        let b = Balancer::new(upstream(Balance::LeastConn, &[1, 1, 1]));
        let now = Instant::now();
        let ip = "127.0.0.1".parse().unwrap();
        // Three picks without release spread over all three servers.
        let mut got: Vec<usize> = (0..3)
            .map(|_| b.pick(ip, b"", &mut Tried::new(3), now).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
        // Free server 1: it is the only one with fewer conns.
        b.release(1, false, now);
        assert_eq!(b.pick(ip, b"", &mut Tried::new(3), now), Some(1));
    }

    #[test]
    fn weight_scales_connections() {
        let b = Balancer::new(upstream(Balance::LeastConn, &[3, 1]));
        let now = Instant::now();
        let ip = "127.0.0.1".parse().unwrap();
        let picks: Vec<usize> = (0..4)
            .map(|_| b.pick(ip, b"", &mut Tried::new(2), now).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&s| s == 0).count(), 3);
    }
}
