//! Micro-benchmarks of the sans-io pieces of the data path: request parsing, chunked
//! decoding, building the upstream head, config load, and each balancer's pick.
//! Setup happens outside the timed closures; throughput is reported in bytes or
//! elements per second.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringx::balance::{Balancer, Tried};
use ringx::config::build::{build, BuildEnv};
use ringx::config::parser::parse_str;
use ringx::config::Config;
use ringx::http::ctx::{ReqCtx, Sent};
use ringx::http::forward::{write_request_head, UpBody};
use ringx::proto::h1::body::ChunkedDecoder;
use ringx::proto::h1::request::{parse_request, HeadLimits, RequestHead};

const LIMITS: HeadLimits = HeadLimits {
    line_max: 8192,
    total_max: 32768,
};

fn small_request() -> Vec<u8> {
    b"GET /classify/item?id=42 HTTP/1.1\r\nHost: api.company.com\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n".to_vec()
}

fn big_request() -> Vec<u8> {
    let mut r =
        b"POST /classify/batch?model=v7&explain=1 HTTP/1.1\r\nHost: api.company.com\r\nContent-Length: 4096\r\n"
            .to_vec();
    for i in 0..28 {
        r.extend_from_slice(format!("X-Header-{i:02}: value-{i}-abcdefghijklmnopqrstuvwxyz0123456789\r\n").as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_request");
    for (name, req) in [("small", small_request()), ("30_headers", big_request())] {
        g.throughput(Throughput::Bytes(req.len() as u64));
        let mut head = RequestHead::default();
        g.bench_function(name, |b| {
            b.iter(|| {
                parse_request(black_box(&req), &mut head, LIMITS).unwrap().unwrap();
                black_box(head.head_len)
            })
        });
    }
    g.finish();
}

fn bench_chunked(c: &mut Criterion) {
    let mut body = Vec::new();
    for i in 0..64 {
        let chunk = vec![b'a' + (i % 26) as u8; 4096];
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let mut g = c.benchmark_group("chunked");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_256KiB_in_16KiB_reads", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new();
            let mut n = 0usize;
            for piece in body.chunks(16384) {
                d.feed(piece, |r| n += r.len()).unwrap();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn config(text: &str) -> Config {
    let t = parse_str(text, "bench.conf", Path::new("/tmp")).unwrap();
    build(&t, &BuildEnv::at("/tmp")).unwrap()
}

fn bench_forward(c: &mut Criterion) {
    let cfg = config(
        "events {} http { access_log off; upstream be { server 127.0.0.1:9001; }
         server { listen 127.0.0.1:8080; location /classify {
           proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\";
           proxy_set_header Host $host; proxy_set_header X-Real-IP $remote_addr;
           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; } } }",
    );
    let server = &cfg.http.servers[0];
    let loc = &server.prefix_locations[0];
    let pp = loc.conf.proxy_pass.as_ref().unwrap();
    let mut g = c.benchmark_group("upstream_head");
    for (name, req) in [("small", small_request()), ("30_headers", big_request())] {
        let mut head = RequestHead::default();
        parse_request(&req, &mut head, LIMITS).unwrap().unwrap();
        let peer: SocketAddr = "10.1.2.3:55555".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut out = Vec::with_capacity(4096);
        g.throughput(Throughput::Bytes(req.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let ctx = ReqCtx {
                    buf: &req,
                    head: &head,
                    uri: head.path.get(&req),
                    args: None,
                    uri_changed: false,
                    as_get: false,
                    rw: None,
                    doc_root: None,
                    realip_orig: None,
                    heads: None,
                    peer,
                    local,
                    server,
                    proxy: Some(pp),
                    start: Instant::now(),
                    sent: Sent::default(),
                    attempts: &[],
                    conn_id: 1,
                    conn_requests: 1,
                    request_length: req.len() as u64,
                    tls: None,
                    pp: None,
                    h2: false,
                    limited: Default::default(),
                };
                out.clear();
                write_request_head(&mut out, &ctx, &loc.conf, pp, Some("/classify"), UpBody::None);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn bench_config_load(c: &mut Criterion) {
    let mut text = String::from("events {} http { access_log off;\n");
    for u in 0..100 {
        text.push_str(&format!("upstream u{u} {{ least_conn; "));
        for s in 0..10 {
            text.push_str(&format!("server 127.0.{u}.{s}:8080 max_fails=3 fail_timeout=30s; "));
        }
        text.push_str("keepalive 16; }\n");
    }
    for s in 0..100 {
        text.push_str(&format!(
            "server {{ listen 127.0.0.1:{}; server_name s{s}.example.com *.s{s}.example.org;\n",
            10000 + s % 10
        ));
        for l in 0..10 {
            text.push_str(&format!(
                "location /api{l}/ {{ proxy_pass http://u{}; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }}\n",
                (s * 10 + l) % 100
            ));
        }
        text.push_str("location = /health { return 200 \"ok\"; } }\n");
    }
    text.push('}');
    let mut g = c.benchmark_group("config_load");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("100_upstreams_100_servers_1000_locations", |b| {
        b.iter(|| black_box(config(&text).http.servers.len()))
    });
    g.finish();
}

fn bench_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    g.throughput(Throughput::Elements(1));
    for method in [
        "round_robin",
        "least_conn",
        "ip_hash",
        "hash",
        "hash_consistent",
        "random_two",
    ] {
        for n in [3usize, 30, 300] {
            let servers: String = (0..n)
                .map(|i| format!("server 127.0.{}.{}:80 weight={};", i / 250, i % 250 + 1, 1 + i % 3))
                .collect();
            let directive = match method {
                "round_robin" => "",
                "least_conn" => "least_conn;",
                "ip_hash" => "ip_hash;",
                "hash" => "hash $request_uri;",
                "hash_consistent" => "hash $request_uri consistent;",
                _ => "random two least_conn;",
            };
            let cfg = config(&format!(
                "events {{}} http {{ access_log off; upstream u {{ {directive} {servers} }} server {{ listen 127.0.0.1:1; location / {{ proxy_pass http://u; }} }} }}"
            ));
            let bal = Balancer::new(cfg.http.upstreams[0].clone());
            let now = Instant::now();
            let mut i = 0u32;
            g.bench_with_input(BenchmarkId::new(method, n), &n, |b, _| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    let ip = std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
                    let mut t = Tried::new(bal.len());
                    let key = i.to_le_bytes();
                    let s = bal.pick(ip, &key, &mut t, now).unwrap();
                    bal.release(s, false, now);
                    black_box(s)
                })
            });
        }
    }
    g.finish();
}

/// The shared cross-worker view: a worker publishing its figures (plain stores into
/// its own cache line) and a reader summing 16 workers' slots.
fn bench_view(c: &mut Criterion) {
    use ringx::balance::shared::SharedUpstream;
    let sh = SharedUpstream::new(3, 16);
    let mut g = c.benchmark_group("shared_view");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u32;
    g.bench_function("publish", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            sh.peers[1].publish(black_box(3), n & 63, n as u64);
        })
    });
    g.bench_function("read_16_workers", |b| {
        b.iter(|| black_box(sh.peers[1].conns_view(black_box(3), 5)))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_chunked,
    bench_forward,
    bench_config_load,
    bench_pick,
    bench_view
);
criterion_main!(benches);
