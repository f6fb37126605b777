//! least_conn across workers, simulated with ringx's real `Balancer`:
//!
//! - `per-worker`: each worker sees only its own in-flight counts (nginx without a
//!   shared `zone`, Envoy's siloed workers);
//! - `ringx`: each worker's exact count plus the others' published slots (the shared
//!   view ringx runs with);
//! - `exact`: one balancer for all workers (a global counter behind a lock).
//!
//! Requests arrive as a Poisson stream spread uniformly over W workers; three servers,
//! one slow (mean 40 ms) and two fast (mean 2 ms), exponential service times, no
//! queueing at the servers. Reported: the slow server's share of requests and the mean
//! and p99 response time. Deterministic (fixed seed); virtual time.
//!
//!   cargo run --release --example balance_sim [-- WORKERS RATE_PER_S SECONDS]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringx::balance::{Balancer, Tried};
use ringx::config::build::{build, BuildEnv};
use ringx::config::model::Upstream;
use ringx::config::parser::parse_str;

fn upstream() -> Arc<Upstream> {
    let t = parse_str(
        "events {} http { access_log off; upstream u { least_conn; server 127.0.0.1:1; server 127.0.0.1:2; server 127.0.0.1:3; }
         server { listen 127.0.0.1:9; location / { proxy_pass http://u; } } }",
        "sim",
        std::path::Path::new("/tmp"),
    )
    .unwrap();
    build(&t, &BuildEnv::at("/tmp")).unwrap().http.upstreams[0].clone()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.next()).ln()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Done {
        worker: usize,
        server: usize,
        latency_us: u64,
    },
    Arrive,
}

fn run(mode: &str, workers: usize, rate: f64, secs: f64) -> (f64, f64, f64) {
    let balancers: Vec<Balancer> = match mode {
        "per-worker" => (0..workers)
            .map(|_| {
                let u = upstream();
                u.init_shared(1);
                Balancer::for_worker(u, 0)
            })
            .collect(),
        "ringx" => {
            let u = upstream();
            u.init_shared(workers);
            (0..workers).map(|w| Balancer::for_worker(u.clone(), w)).collect()
        }
        _ => {
            let u = upstream();
            u.init_shared(1);
            vec![Balancer::for_worker(u, 0)]
        }
    };
    let means = [0.040, 0.002, 0.002];
    let base = Instant::now();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut q: BinaryHeap<Reverse<(u64, Ev)>> = BinaryHeap::new();
    q.push(Reverse((0, Ev::Arrive)));
    let end_us = (secs * 1e6) as u64;
    let (mut slow, mut total) = (0u64, 0u64);
    let mut lat: Vec<u64> = Vec::new();
    while let Some(Reverse((t, ev))) = q.pop() {
        let now = base + Duration::from_micros(t);
        match ev {
            Ev::Arrive => {
                if t > end_us {
                    continue;
                }
                let w = (rng.next() * workers as f64) as usize % workers;
                let b = &balancers[w % balancers.len()];
                let s = b
                    .pick("10.0.0.1".parse().unwrap(), b"", &mut Tried::new(3), now)
                    .unwrap();
                total += 1;
                if s == 0 {
                    slow += 1;
                }
                let d = (rng.exp(means[s]) * 1e6) as u64 + 100;
                q.push(Reverse((
                    t + d,
                    Ev::Done {
                        worker: w % balancers.len(),
                        server: s,
                        latency_us: d,
                    },
                )));
                q.push(Reverse((t + (rng.exp(1.0 / rate) * 1e6) as u64 + 1, Ev::Arrive)));
            }
            Ev::Done {
                worker,
                server,
                latency_us,
            } => {
                balancers[worker].release(server, false, now);
                lat.push(latency_us);
            }
        }
    }
    lat.sort_unstable();
    let mean = lat.iter().sum::<u64>() as f64 / lat.len().max(1) as f64 / 1000.0;
    let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or(0) as f64 / 1000.0;
    (slow as f64 / total.max(1) as f64, mean, p99)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let workers: usize = a.get(1).and_then(|v| v.parse().ok()).unwrap_or(8);
    let rate: f64 = a.get(2).and_then(|v| v.parse().ok()).unwrap_or(2000.0);
    let secs: f64 = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(20.0);
    println!("least_conn, {workers} workers, {rate} req/s, {secs} s; servers: 1 slow (40 ms), 2 fast (2 ms)");
    println!("| view | slow server share | mean ms | p99 ms |");
    println!("|---|---|---|---|");
    for mode in ["per-worker", "ringx", "exact"] {
        let (share, mean, p99) = run(mode, workers, rate, secs);
        println!("| {mode} | {share:.3} | {mean:.2} | {p99:.2} |");
    }
}
