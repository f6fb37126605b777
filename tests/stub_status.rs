//! `stub_status` and `$connections_*` (nginx's ngx_http_stub_status_module, as
//! Prometheus' nginx exporter reads it): the same page and counts as Debian's nginx
//! for the same traffic.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

fn block(port: u16) -> String {
    format!(
        r#"access_log off;
    server {{
        listen 127.0.0.1:{port};
        location = /status {{ stub_status; }}
        location = /vars {{ return 200 "$connections_active $connections_reading $connections_writing $connections_waiting\n"; }}
        location / {{ return 200 "ok\n"; }}
    }}"#
    )
}

#[test]
fn stub_status_matches_nginx() {
    let Some((_ringx, _nginx, ra, na)) = side_by_side(block) else {
        return;
    };
    let mut pages = Vec::new();
    for a in [ra, na] {
        // One kept-alive connection that has made a request and now waits.
        let mut idle = TcpStream::connect(a).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        idle.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        read_response(&mut idle, &mut buf, false).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let status = get(a, "/status", "x").unwrap();
        assert_eq!(status.header("content-type"), Some("text/plain"));
        let vars = get(a, "/vars", "x").unwrap().text();
        pages.push((status.text(), vars));
        drop(idle);
    }
    assert_eq!(pages[0], pages[1], "ringx, then nginx");
    // The connection ringx::start / nginx's start probed with, the idle one, the
    // status request; two requests before it.
    assert_eq!(
        pages[0].0,
        "Active connections: 2 \nserver accepts handled requests\n 3 3 2 \nReading: 0 Writing: 1 Waiting: 1 \n"
    );
    assert_eq!(pages[0].1, "2 0 1 1\n");
}

/// `listen … deferred` (TCP_DEFER_ACCEPT, as nginx sets it): a client that connected
/// and has sent nothing is not accepted yet, so it is not counted; ringx and nginx
/// show the same page. Without it ringx would count the silent connection.
#[test]
fn a_deferred_listen_does_not_accept_a_silent_client() {
    let deferred = |port| {
        block(port).replace(
            &format!("listen 127.0.0.1:{port};"),
            &format!("listen 127.0.0.1:{port} deferred;"),
        )
    };
    let Some((_ringx, _nginx, ra, na)) = side_by_side(deferred) else {
        return;
    };
    let pages: Vec<_> = [ra, na].into_iter().map(silent_client).collect();
    assert_eq!(pages[0].1, pages[1].1, "ringx, then nginx");
    for (before, after) in &pages {
        assert_eq!(
            accepts(after),
            accepts(before) + 1,
            "only the second status request: {after}"
        );
    }
}

/// The status pages before and after a client that connects and sends nothing.
fn silent_client(a: std::net::SocketAddr) -> (String, String) {
    let before = get(a, "/status", "x").unwrap().text();
    let silent = TcpStream::connect(a).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = get(a, "/status", "x").unwrap().text();
    drop(silent);
    (before, after)
}

fn accepts(page: &str) -> u64 {
    page.lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A reload that adds `deferred` to a kept address sets it on the socket the workers
/// already have, and one that drops it clears it (nginx's add/delete_deferred).
#[test]
fn a_reload_sets_and_clears_deferred_on_a_kept_address() {
    let port = free_port();
    let conf = |extra: &str| {
        format!("daemon off; pid off; events {{}} http {{ {} }}", block(port)).replace(
            &format!("listen 127.0.0.1:{port};"),
            &format!("listen 127.0.0.1:{port}{extra};"),
        )
    };
    let r = Ringx::start(&conf(""), &[], addr_of(port));
    let counted = |(before, after): (String, String)| accepts(&after) - accepts(&before);
    assert_eq!(counted(silent_client(addr_of(port))), 2, "without deferred");
    r.rewrite(&conf(" deferred"));
    r.signal(libc::SIGHUP);
    wait_for("deferred set by the reload", Duration::from_secs(5), || {
        counted(silent_client(addr_of(port))) == 1
    });
    r.rewrite(&conf(""));
    r.signal(libc::SIGHUP);
    wait_for("deferred cleared by the reload", Duration::from_secs(5), || {
        counted(silent_client(addr_of(port))) == 2
    });
}
