//! WebSocket through ringx with nginx's own recipe (`proxy_http_version 1.1;
//! proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";`):
//! the upstream's 101 reaches the client and the two connections are joined byte
//! for byte (net::tunnel) until both sides are done, or `proxy_read_timeout` of
//! upstream silence ends it, as in nginx.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::*;

const UPGRADE: &str =
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n";

#[test]
fn a_websocket_upgrade_is_tunnelled_both_ways_and_times_out_as_nginx() {
    let (up, heads) = ws_upstream();
    let port = free_port();
    let dir = tempdir("ws");
    let log = dir.join("access.log");
    let conf = format!(
        "daemon off; pid off; error_log stderr info; events {{}} http {{
           log_format st '$status $request_uri'; access_log {} st;
           server {{ listen 127.0.0.1:{port};
             location / {{ proxy_pass http://{up}; proxy_http_version 1.1;
                          proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";
                          proxy_read_timeout 1s; }} }} }}",
        log.display()
    );
    let r = Ringx::start(&conf, &[], addr_of(port));

    let mut s = TcpStream::connect(addr_of(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET /ws HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut s, &mut got, b"hello-from-up");
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{text}");
    assert!(text.contains("\r\nUpgrade: websocket\r\n"), "{text}");
    assert!(text.contains("\r\nConnection: upgrade\r\n"), "{text}");
    assert!(text.contains("\r\nSec-WebSocket-Accept: abc\r\n"), "{text}");
    let up_head = heads.lock().unwrap()[0].clone();
    assert!(
        up_head.contains("Upgrade: websocket\r\n") && up_head.contains("Connection: upgrade\r\n"),
        "{up_head}"
    );
    for msg in [&b"ping"[..], &[0x81, 0x85, 1, 2, 3, 4, 5][..], &vec![7u8; 100_000][..]] {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg, "echoed through the tunnel");
    }
    // The client finishes; the upstream sees the end and closes; the client sees it.
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // Upstream silence ends the tunnel after proxy_read_timeout (1 s here).
    let mut q = TcpStream::connect(addr_of(port)).unwrap();
    q.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    q.write_all(format!("GET /quiet HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut q, &mut got, b"hello-from-up");
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = q.read_to_end(&mut rest);
    let held = start.elapsed();
    assert!(
        held > Duration::from_millis(700) && held < Duration::from_millis(2500),
        "closed after {held:?}"
    );

    // Without an Upgrade from the client, a 101 is an invalid answer (502).
    let plain = get(addr_of(port), "/ws", "x").expect("a response");
    assert_eq!(plain.status, 502);

    wait_for("three access-log lines", Duration::from_secs(3), || {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() == 3
    });
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "101 /ws\n101 /quiet\n502 /ws\n");
    assert!(r.stderr().contains("upgraded connection timed out"), "{}", r.stderr());
}

/// The deployment guides' form: `map $http_upgrade $connection_upgrade { default
/// upgrade; '' close; }` and `proxy_set_header Connection $connection_upgrade`.
#[test]
fn the_map_idiom_of_deployment_guides() {
    let (up, heads) = ws_upstream();
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off;
           map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
           server {{ listen 127.0.0.1:{port};
             location / {{ proxy_pass http://{up}; proxy_http_version 1.1;
                          proxy_set_header Upgrade $http_upgrade;
                          proxy_set_header Connection $connection_upgrade; }} }} }}"
    );
    let _r = Ringx::start(&conf, &[], addr_of(port));
    let mut s = TcpStream::connect(addr_of(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET /ws HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut s, &mut got, b"hello-from-up");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 101 "));
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    drop(s);
    let _ = get(addr_of(port), "/plain", "x");
    let heads = heads.lock().unwrap().clone();
    assert!(heads[0].contains("Connection: upgrade\r\n"), "{}", heads[0]);
    let plain = heads
        .iter()
        .find(|h| h.starts_with("GET /plain"))
        .expect("the plain request went up");
    assert!(
        plain.contains("Connection: close\r\n") && !plain.contains("Upgrade:"),
        "{plain}"
    );
}
