//! nginx's `random [two [least_conn]]` (ngx_http_upstream_random_module.c): a
//! weighted random server, or two distinct ones of which the one with fewer in-flight
//! requests relative to weight wins (the power of two choices; `least_conn` is the only
//! and default method). The random numbers come from a per-worker generator.

use super::{round_robin, Tier, Tried};

fn peek(tier: &Tier, r: u64) -> usize {
    tier.weighted_index(r)
}

pub fn pick(tier: &mut Tier, tried: &Tried, two: bool, mut rand: impl FnMut() -> u64) -> Option<usize> {
    let usable = |t: &Tier, i: usize| t.peers[i].ok && !tried.get(t.peers[i].server);
    if !two {
        for _ in 0..20 {
            let i = peek(tier, rand());
            if usable(tier, i) {
                return Some(i);
            }
        }
        return round_robin::pick(tier, tried);
    }
    let mut first: Option<usize> = None;
    for _ in 0..20 {
        let i = peek(tier, rand());
        if !usable(tier, i) || first == Some(i) {
            continue;
        }
        match first {
            None => first = Some(i),
            Some(a) => {
                let (pa, pb) = (&tier.peers[a], &tier.peers[i]);
                let b_better = (pb.view_conns as i64) * pa.weight_now < (pa.view_conns as i64) * pb.weight_now;
                return Some(if b_better { i } else { a });
            }
        }
    }
    first.or_else(|| round_robin::pick(tier, tried))
}

#[cfg(test)]
mod tests {
    use crate::balance::tests::upstream;
    use crate::balance::{Balancer, Tried};
    use crate::config::model::Balance;
    use std::time::Instant;

    #[test]
    fn spread_follows_weights() {
        let b = Balancer::new(upstream(Balance::Random { two: false }, &[3, 1]));
        let now = Instant::now();
        let ip = "127.0.0.1".parse().unwrap();
        let mut n = [0usize; 2];
        for _ in 0..8000 {
            let s = b.pick(ip, b"", &mut Tried::new(2), now).unwrap();
            b.release(s, false, now);
            n[s] += 1;
        }
        let share = n[0] as f64 / 8000.0;
        assert!((0.70..0.80).contains(&share), "{n:?}");
    }

    #[test]
    fn two_choices_avoid_the_busy_server() {
        let b = Balancer::new(upstream(Balance::Random { two: true }, &[1, 1, 1]));
        let now = Instant::now();
        let ip = "127.0.0.1".parse().unwrap();
        // Hold 5 requests on whatever is picked first; later picks avoid the busy one.
        let first = b.pick(ip, b"", &mut Tried::new(3), now).unwrap();
        for _ in 0..4 {
            let mut t = Tried::new(3);
            for s in 0..3 {
                if s != first {
                    t.set(s);
                }
            }
            b.pick(ip, b"", &mut t, now).unwrap();
        }
        let mut hits = 0;
        for _ in 0..300 {
            let s = b.pick(ip, b"", &mut Tried::new(3), now).unwrap();
            b.release(s, false, now);
            if s == first {
                hits += 1;
            }
        }
        assert_eq!(hits, 0, "a server with 5 in flight lost every two-choice duel");
    }
}
