//! nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`).

use super::{Tier, Tried};

/// Adds each candidate's effective weight to its current weight and picks the highest
/// (the first on ties, as nginx's `>`); the winner then loses the total. Returns an
/// index into `tier.peers`.
pub fn pick(tier: &mut Tier, tried: &Tried) -> Option<usize> {
    pick_among(tier, tried, |_| true)
}

/// [`pick`] restricted to the peers `keep` accepts (`least_conn` uses it for ties).
pub fn pick_among(tier: &mut Tier, tried: &Tried, keep: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    let mut total: i64 = 0;
    for (i, p) in tier.peers.iter_mut().enumerate() {
        if !p.ok || !keep(i) || tried.get(p.server) {
            continue;
        }
        p.current_weight += p.effective_weight;
        total += p.effective_weight;
        if p.effective_weight < p.weight {
            p.effective_weight += 1;
        }
        if best.is_none_or(|(_, w)| p.current_weight > w) {
            best = Some((i, p.current_weight));
        }
    }
    let (i, _) = best?;
    tier.peers[i].current_weight -= total;
    Some(i)
}
