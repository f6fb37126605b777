//! `ringx_status`: the upstreams' state as JSON, read from the state the workers share
//! (global in-flight counts, failures, health, requests served). Rendered on demand,
//! off the proxying path.

use std::fmt::Write;
use std::time::Instant;

use crate::balance::shared::now_ms_at;
use crate::config::model::{Balance, Config};

fn esc(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

pub fn render(cfg: &Config) -> String {
    let now = now_ms_at(Instant::now());
    let mut o = String::from("{\"upstreams\":[");
    for (ui, u) in cfg.http.upstreams.iter().enumerate() {
        if ui > 0 {
            o.push(',');
        }
        let balance = match u.balance {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::IpHash => "ip_hash",
            Balance::Hash { consistent: false } => "hash",
            Balance::Hash { consistent: true } => "hash consistent",
            Balance::Random { two: false } => "random",
            Balance::Random { two: true } => "random two",
        };
        let sh = u.shared();
        let _ = write!(
            o,
            "{{\"name\":\"{}\",\"balance\":\"{balance}\",\"implicit\":{},\"workers\":{},\"health_check\":{},\"servers\":[",
            esc(&u.name),
            u.implicit,
            sh.workers,
            u.health_check.get().is_some()
        );
        for (si, s) in u.servers.iter().enumerate() {
            if si > 0 {
                o.push(',');
            }
            let p = &sh.peers[si];
            let state = if s.down {
                "down"
            } else if p.unhealthy.load(std::sync::atomic::Ordering::Relaxed) {
                "unhealthy"
            } else if p.tripped(now) {
                "failed"
            } else {
                "up"
            };
            let _ = write!(
                o,
                "{{\"server\":\"{}\",\"addr\":\"{}\",\"state\":\"{state}\",\"backup\":{},\"weight\":{},\"active\":{},\"fails\":{},\"requests\":{}}}",
                esc(&s.name),
                s.addr,
                s.backup,
                s.weight,
                p.conns(),
                p.fails(),
                p.requests()
            );
        }
        o.push_str("]}");
    }
    o.push_str("]}\n");
    o
}
