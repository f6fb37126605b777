//! Balancing against real nginx (one worker each, same upstream block): the sequence
//! of servers weighted round robin picks, and the server `ip_hash`, `hash` and
//! `hash … consistent` pick for the same clients and keys. Identical mappings required.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;

/// Starts `backends.len()` named backends, ringx and nginx on `upstream_body` (with
/// `{servers}` replaced by the server lines, given per-backend parameters).
struct Pair {
    backends: Vec<Backend>,
    ringx: SocketAddr,
    nginx: SocketAddr,
    _r: Ringx,
    _n: Nginx,
}

fn pair(method: &str, params: &[&str], location_extra: &str) -> Pair {
    let backends: Vec<Backend> = (0..params.len()).map(|i| Backend::start(&format!("s{i}"))).collect();
    let servers: String = backends
        .iter()
        .zip(params)
        .map(|(b, p)| format!("server {} {p};\n", b.addr))
        .collect();
    let (rp, np) = (free_port(), free_port());
    let block = |port: u16| {
        format!(
            "access_log off;\nupstream be {{ {method} {servers} }}\nserver {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://be; {location_extra} }} }}"
        )
    };
    let ringx: SocketAddr = format!("127.0.0.1:{rp}").parse().unwrap();
    let nginx: SocketAddr = format!("127.0.0.1:{np}").parse().unwrap();
    let r = Ringx::start(
        &format!(
            "daemon off; pid off; worker_processes 1; events {{}} http {{ {} }}",
            block(rp)
        ),
        &[],
        ringx,
    );
    let n = Nginx::start(&block(np), nginx);
    Pair {
        backends,
        ringx,
        nginx,
        _r: r,
        _n: n,
    }
}

/// Which backend (by name) answered, for each request.
fn sequence(addr: SocketAddr, paths: &[String], from: Option<&[IpAddr]>) -> Vec<String> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let raw = format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let r = match from {
                Some(ips) => request_from(ips[i], addr, raw.as_bytes()),
                None => request(addr, raw.as_bytes()),
            }
            .unwrap_or_else(|| panic!("no response for {p}"));
            r.header("x-backend").unwrap_or("?").to_string()
        })
        .collect()
}

#[test]
fn weighted_round_robin_sequence_matches_nginx() {
    for weights in [
        &["weight=5", "weight=1", "weight=1"][..],
        &["weight=3", "weight=2"][..],
        &["", "weight=2", "", "weight=4"][..],
    ] {
        let p = pair("", weights, "");
        let paths: Vec<String> = (0..28).map(|i| format!("/r{i}")).collect();
        let r = sequence(p.ringx, &paths, None);
        let n = sequence(p.nginx, &paths, None);
        assert_eq!(r, n, "weights {weights:?}");
        assert!(p.backends.len() > 1);
    }
}

#[test]
fn ip_hash_matches_nginx() {
    let p = pair("ip_hash;", &["", "weight=2", ""], "");
    let ips: Vec<IpAddr> = (0..40u32)
        .map(|i| IpAddr::from([127, (i / 4 + 1) as u8, (i * 7 % 251) as u8, (1 + i % 5) as u8]))
        .collect();
    let paths: Vec<String> = (0..ips.len()).map(|i| format!("/ip{i}")).collect();
    let r = sequence(p.ringx, &paths, Some(&ips));
    let n = sequence(p.nginx, &paths, Some(&ips));
    assert_eq!(r, n);
    let distinct: std::collections::HashSet<_> = r.iter().collect();
    assert!(distinct.len() > 1, "all clients went to one server: {r:?}");
}

#[test]
fn hash_request_uri_matches_nginx() {
    let p = pair("hash $request_uri;", &["", "weight=3", "", ""], "");
    let paths: Vec<String> = (0..60).map(|i| format!("/item/{i}?v={}", i * 31)).collect();
    assert_eq!(sequence(p.ringx, &paths, None), sequence(p.nginx, &paths, None));
}

#[test]
fn consistent_hash_matches_nginx_as_servers_come_and_go() {
    let paths: Vec<String> = (0..80).map(|i| format!("/k/{i}")).collect();
    // Three servers, then the ring with a fourth added: nginx and ringx agree each time,
    // and adding a server moves only some keys.
    let p3 = pair("hash $request_uri consistent;", &["", "", "weight=2"], "");
    let r3 = sequence(p3.ringx, &paths, None);
    assert_eq!(r3, sequence(p3.nginx, &paths, None));
    drop(p3);
    let p4 = pair("hash $request_uri consistent;", &["", "", "weight=2", ""], "");
    let r4 = sequence(p4.ringx, &paths, None);
    assert_eq!(r4, sequence(p4.nginx, &paths, None));
    // A server marked down: its keys move, the others stay (and nginx agrees).
    let p4d = pair("hash $request_uri consistent;", &["", "down", "weight=2", ""], "");
    assert_eq!(sequence(p4d.ringx, &paths, None), sequence(p4d.nginx, &paths, None));
}
