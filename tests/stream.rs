//! `stream {}` (issue 11): TCP servers joined to upstreams with the http block's
//! balancers, failover, `proxy_timeout`, `proxy_half_close`, `allow`/`deny`,
//! `return`, and the session's access-log line, side by side with Debian's nginx
//! (libnginx-mod-stream) where it is installed.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A TCP server that says its name, then echoes what it gets; when the client
/// half-closes it sends `bye` and closes.
fn echo(name: &str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let name = name.to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let name = name.clone();
            std::thread::spawn(move || {
                let _ = c.write_all(format!("{name}\n").as_bytes());
                let mut b = [0u8; 4096];
                loop {
                    match c.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c.write_all(&b[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = c.write_all(b"bye\n");
            });
        }
    });
    addr
}

fn start_stream(block: &str, port: u16) -> Ringx {
    let conf = format!("daemon off; pid off; events {{}}\nstream {{\n{block}\n}}\n");
    Ringx::start(&conf, &[], addr_of(port))
}

/// Connects, reads the greeting line (the backend's name), sends `msg`, reads the
/// echo, half-closes, and reads the rest.
fn session(addr: SocketAddr, msg: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(msg.as_bytes()).unwrap();
    let mut got = Vec::new();
    read_until(&mut c, &mut got, msg.as_bytes());
    c.shutdown(Shutdown::Write).unwrap();
    let _ = c.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[test]
fn round_robin_weights_and_least_conn_like_nginx() {
    let (a, b, c) = (echo("a"), echo("b"), echo("c"));
    let block = |p: u16| {
        format!(
            "upstream rr {{ server {a} weight=2; server {b}; server {c}; }}\n\
             server {{ listen 127.0.0.1:{p}; proxy_pass rr; }}"
        )
    };
    let (rp, np) = (free_port(), free_port());
    let _r = start_stream(&block(rp), rp);
    let nginx = nginx_bin()
        .is_some()
        .then(|| Nginx::start_with("", &format!("stream {{ {} }}", block(np)), addr_of(np)));
    let order = |p: u16| {
        (0..8)
            .map(|i| first_line(&session(addr_of(p), &format!("m{i}"))))
            .collect::<Vec<_>>()
    };
    let ours = order(rp);
    // Smooth weighted round robin: a twice as often, interleaved.
    assert_eq!(ours.iter().filter(|n| *n == "a").count(), 4, "{ours:?}");
    if nginx.is_some() {
        assert_eq!(ours, order(np), "ringx differs from nginx");
    }
}

#[test]
fn a_dead_server_is_routed_around_and_echo_flows_both_ways() {
    let good = echo("good");
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let port = free_port();
    let dir = tempdir("stream-log");
    let block = format!(
        "log_format s '$remote_addr $protocol $status $bytes_sent $bytes_received \"$upstream_addr\" $upstream_bytes_sent $upstream_bytes_received';\n\
         access_log {d}/stream.log s;\n\
         upstream pool {{ server {dead} max_fails=1 fail_timeout=30s; server {good}; }}\n\
         server {{ listen 127.0.0.1:{port}; proxy_pass pool; proxy_connect_timeout 2s; proxy_half_close on; }}",
        d = dir.display()
    );
    let _r = start_stream(&block, port);
    for i in 0..4 {
        let out = session(addr_of(port), &format!("hello{i}"));
        assert_eq!(out, format!("good\nhello{i}bye\n"));
    }
    let path = dir.join("stream.log");
    // Ringx::start's probe (a connection that closes at once) is the first session.
    wait_for("five session lines", Duration::from_secs(5), || {
        std::fs::read_to_string(&path).unwrap_or_default().lines().count() == 5
    });
    let log = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // The first session tried the dead server, then the good one; later ones skip it
    // (max_fails=1).
    // (max_fails=1). The probe's line may come in any place: it ends when the
    // backend's "bye" does.
    let both = format!("\"{dead}, {good}\"");
    assert_eq!(lines.iter().filter(|l| l.contains(&both)).count(), 1, "{log}");
    let rest: Vec<_> = lines.iter().filter(|l| !l.contains(&both)).collect();
    assert_eq!(rest.len(), 4, "{log}");
    for l in rest {
        assert_eq!(*l, format!("127.0.0.1 TCP 200 15 6 \"{good}\" 6 15"), "{log}");
    }
}

#[test]
fn all_servers_down_is_502_and_the_client_is_closed() {
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let port = free_port();
    let dir = tempdir("stream-502");
    let block = format!(
        "log_format s '$status $upstream_addr'; access_log {d}/s.log s;\n\
         server {{ listen 127.0.0.1:{port}; proxy_pass {dead}; }}",
        d = dir.display()
    );
    let r = start_stream(&block, port);
    let mut c = TcpStream::connect(addr_of(port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    assert_eq!(c.read_to_end(&mut got).unwrap(), 0);
    let path = dir.join("s.log");
    wait_for("the 502 line", Duration::from_secs(5), || path.exists());
    std::thread::sleep(Duration::from_millis(1100));
    // Two sessions: Ringx::start's probe, and this one.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("502 {dead}\n502 {dead}\n"),
        "{}",
        r.stderr()
    );
}

#[test]
fn half_close_off_ends_the_session_at_the_first_close_and_on_waits_for_both() {
    let up = echo("e");
    let (p1, p2) = (free_port(), free_port());
    let block = format!(
        "server {{ listen 127.0.0.1:{p1}; proxy_pass {up}; }}\n\
         server {{ listen 127.0.0.1:{p2}; proxy_pass {up}; proxy_half_close on; }}"
    );
    let _r = start_stream(&block, p1);
    wait_listening(addr_of(p2));
    // Off (nginx's default): the client's FIN ends it; the backend's "bye" is lost.
    assert_eq!(session(addr_of(p1), "x"), "e\nx");
    // On: the client's FIN reaches the backend, whose last words still come back.
    assert_eq!(session(addr_of(p2), "x"), "e\nxbye\n");
}

#[test]
fn proxy_timeout_closes_a_silent_session() {
    let up = echo("quiet");
    let port = free_port();
    let _r = start_stream(
        &format!("server {{ listen 127.0.0.1:{port}; proxy_pass {up}; proxy_timeout 1s; }}"),
        port,
    );
    let mut c = TcpStream::connect(addr_of(port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let took = t0.elapsed();
    assert_eq!(got, b"quiet\n");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn access_rules_return_and_config_errors() {
    let up = echo("up");
    let (p1, p2) = (free_port(), free_port());
    let block = format!(
        "server {{ listen 127.0.0.1:{p1}; allow 127.0.0.1; deny all; proxy_pass {up}; }}\n\
         server {{ listen 127.0.0.1:{p2}; return \"$remote_addr via $protocol\\n\"; }}"
    );
    let _r = start_stream(&block, p1);
    assert_eq!(first_line(&session(addr_of(p1), "hi")), "up");
    // From outside the rules: closed at once, nothing relayed.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    sock.connect(&addr_of(p1).into()).unwrap();
    let mut c: TcpStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.is_empty());
    let mut c = TcpStream::connect(addr_of(p2)).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "127.0.0.1 via TCP\n");
    let dir = tempdir("stream-bad");
    for (block, want) in [
        (
            "server { listen 1234 udp; proxy_pass 127.0.0.1:1; }",
            "the \"udp\" parameter of \"listen\" in \"stream\" is not supported yet",
        ),
        (
            "server { listen 1234; proxy_pass nowhere; }",
            "no port in upstream \"nowhere\"",
        ),
        ("server { listen 1234; }", "no handler for server"),
        (
            "upstream u { server 127.0.0.1:1; keepalive 2; } server { listen 1; proxy_pass u; }",
            "\"keepalive\" directive is not allowed here",
        ),
        (
            "server { listen 1234; proxy_pass 127.0.0.1:1; location / { } }",
            "\"location\" directive is not allowed here",
        ),
    ] {
        let path = dir.join("nginx.conf");
        std::fs::write(&path, format!("events {{}} stream {{ {block} }}")).unwrap();
        let (code, _, err) = ringx_cmd(&["-t", "-c", path.to_str().unwrap()]);
        assert_ne!(code, 0, "{block}");
        assert!(err.contains(want), "{block}: {err}");
    }
}

/// The session's log line, side by side with nginx: the same variables give the
/// same values (the probe connection of each start aside).
#[test]
fn the_log_line_matches_nginx() {
    if nginx_bin().is_none() || !std::path::Path::new("/usr/lib/nginx/modules/ngx_stream_module.so").exists() {
        eprintln!("skipped: nginx's stream module is not installed (run .ci/run)");
        return;
    }
    let up = echo("log");
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (rd, nd) = (tempdir("stream-lr"), tempdir("stream-ln"));
    let block = |(p, p2): (u16, u16), d: &std::path::Path| {
        format!(
            "log_format s '$remote_addr $protocol $status $bytes_sent $bytes_received \"$upstream_addr\" $upstream_bytes_sent $upstream_bytes_received $server_port';\n\
             access_log {d}/s.log s;\n\
             upstream u {{ server {dead} max_fails=0; server {up}; }}\n\
             server {{ listen 127.0.0.1:{p}; proxy_pass u; proxy_half_close on; }}\n\
             server {{ listen 127.0.0.1:{p2}; deny all; proxy_pass u; }}",
            d = d.display(),
        )
    };
    let (rp, np) = ((free_port(), free_port()), (free_port(), free_port()));
    let _r = start_stream(&block(rp, &rd), rp.0);
    let _n = Nginx::start_with("", &format!("stream {{ {} }}", block(np, &nd)), addr_of(np.0));
    for (p, p2) in [rp, np] {
        for i in 0..3 {
            session(addr_of(p), &format!("msg-{i}"));
        }
        let mut c = TcpStream::connect(addr_of(p2)).unwrap();
        let _ = c.read_to_end(&mut Vec::new());
    }
    let lines = |d: &std::path::Path, (port, port2): (u16, u16)| {
        let path = d.join("s.log");
        wait_for("five lines", Duration::from_secs(5), || {
            std::fs::read_to_string(&path).unwrap_or_default().lines().count() >= 5
        });
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                l.replace(&port.to_string(), "PORT")
                    .replace(&port2.to_string(), "PORT1")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(&rd, rp), lines(&nd, np));
}

/// `hash $remote_addr` (and `consistent`): every session of a client goes to one
/// server, the one nginx picks.
#[test]
fn hash_keys_pick_what_nginx_picks() {
    let (a, b, c) = (echo("a"), echo("b"), echo("c"));
    let block = |(p, p2): (u16, u16)| {
        format!(
            "upstream h {{ hash $remote_addr$server_port; server {a}; server {b}; server {c}; }}\n\
             upstream k {{ hash $remote_addr consistent; server {a}; server {b}; server {c}; }}\n\
             server {{ listen 127.0.0.1:{p}; proxy_pass h; }}\n\
             server {{ listen 127.0.0.1:{p2}; proxy_pass k; }}"
        )
    };
    let (rp, np) = ((free_port(), free_port()), (free_port(), free_port()));
    let _r = start_stream(&block(rp), rp.0);
    let picks = |(p, p2): (u16, u16)| {
        (0..4)
            .map(|i| {
                (
                    first_line(&session(addr_of(p), &format!("h{i}"))),
                    first_line(&session(addr_of(p2), "k")),
                )
            })
            .collect::<Vec<_>>()
    };
    let ours = picks(rp);
    assert!(ours.iter().all(|x| x.1 == ours[0].1), "{ours:?}");
    if nginx_bin().is_some() && std::path::Path::new("/usr/lib/nginx/modules/ngx_stream_module.so").exists() {
        let _n = Nginx::start_with("", &format!("stream {{ {} }}", block(np)), addr_of(np.0));
        let theirs = picks(np);
        // Consistent hashing of the same key: the same server.
        assert_eq!(ours[0].1, theirs[0].1);
        assert!(theirs.iter().all(|x| x.0 == theirs[0].0));
    }
    assert!(ours.iter().all(|x| x.0 == ours[0].0), "{ours:?}");
}

/// Stream `limit_conn`: a second session of the same client while the first is open
/// is closed at once (`$status` 503, nginx's log line), and admitted once the first
/// has ended; the same with Debian's nginx.
#[test]
fn limit_conn_closes_the_session_over_the_limit() {
    let up = echo("limited");
    let dir = tempdir("stream-limit");
    let block = |port: u16, logs: &std::path::Path| {
        format!(
            "limit_conn_zone $binary_remote_addr zone=per_ip:1m;\n\
             log_format st '$status';\n\
             server {{ listen 127.0.0.1:{port}; limit_conn per_ip 1; proxy_pass {up};\n\
               access_log {}/st.log st; }}",
            logs.display()
        )
    };
    let (rp, np) = (free_port(), free_port());
    let nd = tempdir("stream-limit-n");
    let conf = format!(
        "daemon off; pid off; error_log {}/error.log info; events {{}}\nstream {{\n{}\n}}\n",
        dir.display(),
        block(rp, &dir)
    );
    let _r = Ringx::start(&conf, &[], addr_of(rp));
    let _n = nginx_bin()
        .is_some()
        .then(|| Nginx::start_with("", &format!("stream {{ {} }}", block(np, &nd)), addr_of(np)));
    let targets: Vec<_> = [Some(rp), _n.as_ref().map(|_| np)].into_iter().flatten().collect();
    for port in targets {
        let mut first = TcpStream::connect(addr_of(port)).unwrap();
        first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        read_until(&mut first, &mut got, b"limited\n");
        let mut second = TcpStream::connect(addr_of(port)).unwrap();
        second.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let _ = second.read_to_end(&mut rest);
        assert!(rest.is_empty(), "port {port}: {:?}", String::from_utf8_lossy(&rest));
        drop(first);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            session(addr_of(port), "again\n").contains("limited\nagain\n"),
            "port {port}"
        );
    }
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap();
    assert!(
        log.contains("limiting connections by zone \"per_ip\", client: 127.0.0.1"),
        "{log}"
    );
    wait_for("the refused session's log line", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("st.log"))
            .unwrap_or_default()
            .contains("503")
    });
}

/// Stream to a Unix-domain socket: `proxy_pass unix:/PATH` and `server unix:/PATH`
/// in a stream upstream; `$upstream_addr` names the socket, as nginx.
#[test]
fn stream_to_a_unix_socket() {
    let dir = tempdir("stream-unix");
    let sock = dir.join("echo.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            std::thread::spawn(move || {
                let _ = c.write_all(b"unix\n");
                let mut b = [0u8; 4096];
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 || c.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let (p1, p2) = (free_port(), free_port());
    let block = format!(
        "upstream u {{ server unix:{s}; }}\n\
         log_format up '$upstream_addr';\n\
         server {{ listen 127.0.0.1:{p1}; proxy_pass unix:{s}; access_log {d}/up.log up; }}\n\
         server {{ listen 127.0.0.1:{p2}; proxy_pass u; }}",
        s = sock.display(),
        d = dir.display()
    );
    let _r = start_stream(&block, p1);
    for p in [p1, p2] {
        assert!(session(addr_of(p), "ping\n").contains("unix\nping\n"), "port {p}");
    }
    wait_for("the session's log line", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("up.log"))
            .unwrap_or_default()
            .contains(&format!("unix:{}", sock.display()))
    });
}

/// `proxy_download_rate` / `proxy_upload_rate`: a stream session reads no faster
/// than the rate (nginx's `rate × (whole seconds + 1)`), as nginx's does.
#[test]
fn stream_rates_pace_the_session() {
    let big = serve_each(|mut c| {
        let _ = c.write_all(&vec![b'd'; 250 * 1024]);
    });
    let (rp, np, fp) = (free_port(), free_port(), free_port());
    let block = |p: u16, f: u16| {
        format!(
            "server {{ listen 127.0.0.1:{p}; proxy_download_rate 100k; proxy_pass {big}; }}\n\
             server {{ listen 127.0.0.1:{f}; proxy_pass {big}; }}"
        )
    };
    let _r = start_stream(&block(rp, fp), rp);
    let nf = free_port();
    let _n = nginx_bin()
        .is_some()
        .then(|| Nginx::start_with("", &format!("stream {{ {} }}", block(np, nf)), addr_of(np)));
    let fetch = |p: u16| {
        let t = Instant::now();
        let mut c = TcpStream::connect(addr_of(p)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        (got.len(), t.elapsed())
    };
    let mut targets = vec![(rp, true), (fp, false)];
    if _n.is_some() {
        targets.extend([(np, true), (nf, false)]);
    }
    for (p, paced) in targets {
        let (n, took) = fetch(p);
        assert_eq!(n, 250 * 1024, "port {p}");
        if paced {
            assert!(
                took >= Duration::from_millis(800) && took < Duration::from_secs(6),
                "port {p}: {took:?}"
            );
        } else {
            assert!(took < Duration::from_millis(800), "port {p}: {took:?}");
        }
    }
}

/// Stream `proxy_socket_keepalive on`: the connection to the upstream runs the
/// kernel's keepalive timer; without it, it does not.
#[test]
fn stream_proxy_socket_keepalive() {
    let (on, off) = (echo("on"), echo("off"));
    let (p1, p2) = (free_port(), free_port());
    let block = format!(
        "server {{ listen 127.0.0.1:{p1}; proxy_socket_keepalive on; proxy_pass {on}; }}\n\
         server {{ listen 127.0.0.1:{p2}; proxy_pass {off}; }}"
    );
    let _r = start_stream(&block, p1);
    let mut open = Vec::new();
    for (p, name) in [(p1, "on\n"), (p2, "off\n")] {
        let mut c = TcpStream::connect(addr_of(p)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        read_until(&mut c, &mut got, name.as_bytes());
        open.push(c);
    }
    assert_eq!(tcp_timers(on.port()), ["02"], "keepalive timer on");
    assert_eq!(tcp_timers(off.port()), ["00"], "no timer");
}

/// Stream `proxy_upload_rate`, and `access_log … if=` in stream: the client's bytes
/// reach the upstream no faster than the rate; a log whose condition renders "0" or
/// empty gets no line (both sessions, the start-up probe's and the test's, are in
/// the other).
#[test]
fn stream_upload_rate_and_log_condition() {
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Duration)>();
    let tx = std::sync::Mutex::new(tx);
    let sink = serve_each(move |mut c| {
        let t = Instant::now();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let _ = tx.lock().unwrap().send((got.len(), t.elapsed()));
    });
    let dir = tempdir("stream-up");
    let port = free_port();
    let block = format!(
        "log_format st '$protocol';\n\
         server {{ listen 127.0.0.1:{port}; proxy_upload_rate 100k; proxy_pass {sink};\n\
           access_log {d}/yes.log st if=$protocol; access_log {d}/no.log st if=0; }}",
        d = dir.display()
    );
    let _r = start_stream(&block, port);
    let mut c = TcpStream::connect(addr_of(port)).unwrap();
    c.write_all(&vec![b'u'; 250 * 1024]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    // (The start-up probe's empty session comes first.)
    let (n, took) = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(10)).ok())
        .find(|(n, _)| *n > 0)
        .unwrap();
    assert_eq!(n, 250 * 1024);
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(6),
        "{took:?}"
    );
    drop(c);
    wait_for("the session's log line", Duration::from_secs(5), || {
        std::fs::read_to_string(dir.join("yes.log"))
            .unwrap_or_default()
            .lines()
            .count()
            == 2
    });
    assert_eq!(std::fs::read_to_string(dir.join("no.log")).unwrap_or_default(), "");
}

/// `proxy_next_upstream_tries`: with three dead servers a session tries two and is
/// closed (502, two addresses in `$upstream_addr`); without the limit it tries all
/// three. `max_fails=0` keeps every server in the rotation.
#[test]
fn proxy_next_upstream_tries_bounds_the_attempts() {
    let dead: Vec<SocketAddr> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap())
        .collect();
    let servers: String = dead.iter().map(|a| format!("server {a} max_fails=0; ")).collect();
    let (p2, pall) = (free_port(), free_port());
    let dir = tempdir("stream-tries");
    let block = format!(
        "log_format s '$server_port $status $upstream_addr'; access_log {d}/s.log s;\n\
         upstream dead {{ {servers} }}\n\
         server {{ listen 127.0.0.1:{p2}; proxy_pass dead; proxy_next_upstream_tries 2; }}\n\
         server {{ listen 127.0.0.1:{pall}; proxy_pass dead; }}",
        d = dir.display()
    );
    let r = Ringx::start(
        &format!("daemon off; pid off; events {{}}\nstream {{\n{block}\n}}\n"),
        &[],
        addr_of(p2),
    );
    wait_listening(addr_of(pall));
    for port in [p2, pall] {
        let mut c = TcpStream::connect(addr_of(port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.read_to_end(&mut Vec::new()).unwrap(), 0);
    }
    let path = dir.join("s.log");
    let lines = |port: u16| -> Vec<String> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&format!("{port} ")))
            .map(String::from)
            .collect()
    };
    wait_for("the log lines", Duration::from_secs(5), || {
        lines(p2).len() == 2 && !lines(pall).is_empty()
    });
    let tried = |l: &str| l.split_once(" 502 ").map_or(0, |(_, a)| a.split(", ").count());
    for l in lines(p2) {
        assert_eq!(tried(&l), 2, "{l}\n{}", r.stderr());
    }
    for l in lines(pall) {
        assert_eq!(tried(&l), 3, "{l}\n{}", r.stderr());
    }
}
