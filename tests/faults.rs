//! When ringx itself fails: a bug that panics on the request path, a worker thread
//! that dies. Faults are injected through the debug build's hooks
//! (`src/runtime/fault.rs`); what is asserted is what an operator sees.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn active_of(port: u16, be: SocketAddr) -> String {
    let t = get(addr_of(port), "/status", "x").unwrap().text();
    let at = t
        .find(&format!("\"addr\":\"{be}\""))
        .expect("the server in ringx_status");
    let rest = &t[at..];
    let a = rest.find("\"active\":").unwrap() + 9;
    rest[a..].chars().take_while(|c| c.is_ascii_digit()).collect()
}

/// A panic in a connection's task (a bug) costs that connection only: it is logged
/// `[alert]` with where it happened, the server it had picked gets its least_conn
/// slot back (it used to stay counted busy for good), and the worker goes on serving.
#[test]
fn a_panicking_request_is_logged_and_gives_its_balancer_slot_back() {
    let be = Backend::start("be");
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; error_log stderr info; worker_processes 1; events {{}} http {{ access_log off;
           upstream api {{ least_conn; server {}; }}
           server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://api; }}
                     location = /status {{ ringx_status; }} }} }}",
        be.addr
    );
    let r = Ringx::start_env(&conf, &[], addr_of(port), &[("RINGX_FAULT_TASK_PANIC", "/boom")]);
    assert!(
        get(addr_of(port), "/boom", "x").is_none(),
        "the connection closes unanswered"
    );
    wait_for("the [alert] line", Duration::from_secs(3), || {
        r.stderr().contains("[alert]")
    });
    let err = r.stderr();
    assert!(
        err.contains("ringx-worker-0 panicked at src/runtime/fault.rs:")
            && err.contains(": injected fault: a connection task"),
        "{err}"
    );
    assert_eq!(active_of(port, be.addr), "0", "the slot was given back");
    for _ in 0..5 {
        assert_eq!(get(addr_of(port), "/ok", "x").map(|r| r.status), Some(200));
    }
    assert!(!err.contains("exited on panic"), "the worker lives on: {err}");
}

/// A worker whose own loop dies is logged `[alert]` and replaced, as nginx restarts
/// a dead worker process: same process, same listening socket, requests served.
#[test]
fn a_dead_worker_is_logged_and_replaced_on_the_same_listener() {
    let be = Backend::start("be");
    let port = free_port();
    let conf = format!(
        "daemon off; pid off; error_log stderr info; worker_processes 1; events {{}} http {{ access_log off;
           server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; }} }} }}",
        be.addr
    );
    let r = Ringx::start_env(&conf, &[], addr_of(port), &[("RINGX_FAULT_WORKER_PANIC", "/die")]);
    let _ = get(addr_of(port), "/die", "x");
    wait_for("the replacement", Duration::from_secs(5), || {
        r.stderr().contains("worker 0 restarted")
    });
    let err = r.stderr();
    assert!(
        err.contains("[alert]") && err.contains("worker 0 exited on panic"),
        "{err}"
    );
    for _ in 0..5 {
        assert_eq!(
            get(addr_of(port), "/ok", "x").map(|r| r.status),
            Some(200),
            "{}",
            r.stderr()
        );
    }
    assert!(r.stderr().contains("[notice]"), "{}", r.stderr());
}
