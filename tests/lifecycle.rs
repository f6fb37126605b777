//! The command line and the process lifecycle: -t/-T, -s, pid file, daemon, reload
//! under load, graceful quit with requests in flight, log reopen.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn t_reports_syntax_ok_and_errors_with_file_and_line() {
    let dir = tempdir("t");
    let good = dir.join("good.conf");
    std::fs::write(
        &good,
        "events {}\nhttp {\n server { listen 127.0.0.1:1; location / { return 200; } }\n}\n",
    )
    .unwrap();
    let (code, _, err) = ringx_cmd(&["-t", "-c", &path_of(&good)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "ringx: the configuration file {} syntax is ok",
            good.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "ringx: configuration file {} test is successful",
            good.display()
        )),
        "{err}"
    );

    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        "events {}\nhttp {\n server {\n  listen 127.0.0.1:1;\n  location / { proxy_pas http://127.0.0.1:9; }\n }\n}\n",
    )
    .unwrap();
    let (code, _, err) = ringx_cmd(&["-t", "-c", &path_of(&bad)]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "ringx: [emerg] unknown directive \"proxy_pas\" in {}:5",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("test failed"), "{err}");

    // Errors in an included file name that file.
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/x.conf"),
        "server {\n listen 127.0.0.1:1;\n location / { return 200 $nope; }\n}\n",
    )
    .unwrap();
    let main = dir.join("main.conf");
    std::fs::write(&main, "events {}\nhttp { include conf.d/*.conf; }\n").unwrap();
    let (code, _, err) = ringx_cmd(&["-t", "-c", &path_of(&main)]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "unknown \"nope\" variable in {}:3",
            dir.join("conf.d/x.conf").display()
        )),
        "{err}"
    );

    // Wrong context, unknown upstream, bad value.
    for (text, want) in [
        (
            "events {}\nhttp {\n listen 80;\n}\n",
            "\"listen\" directive is not allowed here in",
        ),
        (
            "events {}\nhttp {\n server {\n location / {\n proxy_pass http://nowhere_up;\n }\n }\n}\n",
            "host not found in upstream \"nowhere_up\"",
        ),
        (
            "events {}\nhttp {\n keepalive_timeout abc;\n}\n",
            "invalid value \"abc\" in \"keepalive_timeout\" directive",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let (code, _, err) = ringx_cmd(&["-t", "-c", &path_of(&bad)]);
        assert_eq!(code, 1, "{text}");
        assert!(err.contains(want), "{err}");
        assert!(err.contains(&format!("{}:", bad.display())), "{err}");
    }

    // -T dumps every file.
    let (code, out, _) = ringx_cmd(&["-T", "-c", &path_of(&good)]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("# configuration file {}:", good.display())));
    assert!(out.contains("location / { return 200; }"));
    // -v
    let (code, _, err) = ringx_cmd(&["-v"]);
    assert_eq!(code, 0);
    assert!(err.starts_with("ringx version: ringx/"));
}

#[test]
fn pid_file_signals_and_reopen() {
    let dir = tempdir("pid");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pid = dir.join("ringx.pid");
    let log = dir.join("access.log");
    let conf = format!(
        "daemon off; pid {}; events {{}} http {{ access_log {}; server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"v1\"; }} }} }}",
        pid.display(),
        log.display()
    );
    let mut r = Ringx::start(&conf, &[], addr);
    // The socket accepts as soon as it is bound; the pid file follows.
    wait_for(|| std::fs::read_to_string(&pid).is_ok_and(|t| t.ends_with('\n')));
    let text = std::fs::read_to_string(&pid).unwrap();
    assert_eq!(text.trim(), r.pid().to_string());
    assert_eq!(get(addr, "/", "x").unwrap().text(), "v1");

    // -s reload through the pid file.
    r.rewrite(&conf.replace("\"v1\"", "\"v2\""));
    let (code, _, err) = ringx_cmd(&["-c", &path_of(&r.conf), "-s", "reload"]);
    assert_eq!(code, 0, "{err}");
    wait_for(|| get(addr, "/", "x").is_some_and(|x| x.text() == "v2"));

    // -s reopen: after logrotate moves the file, a new one is created.
    std::thread::sleep(Duration::from_millis(1200));
    std::fs::rename(&log, dir.join("access.log.1")).unwrap();
    let (code, _, _) = ringx_cmd(&["-c", &path_of(&r.conf), "-s", "reopen"]);
    assert_eq!(code, 0);
    std::thread::sleep(Duration::from_millis(200));
    get(addr, "/after-reopen", "x").unwrap();
    wait_for(|| std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/after-reopen")));

    // -s quit: exits and removes the pid file.
    let (code, _, _) = ringx_cmd(&["-c", &path_of(&r.conf), "-s", "quit"]);
    assert_eq!(code, 0);
    assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!pid.exists());
    let (code, _, err) = ringx_cmd(&["-c", &path_of(&r.conf), "-s", "reload"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("ringx.pid\" failed (2: No such file or directory)"),
        "{err}"
    );
}

#[test]
fn prefix_and_error_log_flags() {
    let dir = tempdir("prefix");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf_dir = tempdir("prefix-conf");
    let conf = conf_dir.join("nginx.conf");
    // Relative paths resolve against -p, not the config's directory.
    std::fs::write(
        &conf,
        format!("pid run.pid; daemon off; error_log stderr notice; events {{}} http {{ access_log logs/a.log; server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }} }}"),
    )
    .unwrap();
    let err_log = dir.join("err.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringx"))
        .args(["-p", &path_of(&dir), "-c", &path_of(&conf), "-e", &path_of(&err_log)])
        .spawn()
        .unwrap();
    wait_listening(addr);
    get(addr, "/p", "x").unwrap();
    wait_for(|| dir.join("run.pid").exists());
    ringx_cmd(&["-p", &path_of(&dir), "-c", &path_of(&conf), "-s", "quit"]);
    let st = child.wait().unwrap();
    assert!(st.success());
    assert!(std::fs::read_to_string(dir.join("logs/a.log"))
        .unwrap()
        .contains("GET /p HTTP/1.1"));
    assert!(std::fs::read_to_string(&err_log).unwrap().contains("[notice]"));
    assert!(!conf_dir.join("run.pid").exists());
}

#[test]
fn daemon_mode_detaches_and_writes_pid_after_bind() {
    let dir = tempdir("daemon");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pid = dir.join("d.pid");
    let conf_path = dir.join("nginx.conf");
    std::fs::write(
        &conf_path,
        format!(
            "pid {}; error_log {}/error.log; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }} }}",
            pid.display(),
            dir.display()
        ),
    )
    .unwrap();
    // daemon defaults to on: the command returns at once.
    let (code, _, err) = ringx_cmd(&["-c", &path_of(&conf_path)]);
    assert_eq!(code, 0, "{err}");
    wait_for(|| pid.exists());
    assert_eq!(get(addr, "/", "x").unwrap().text(), "ok");
    let (code, _, _) = ringx_cmd(&["-c", &path_of(&conf_path), "-s", "stop"]);
    assert_eq!(code, 0);
    wait_for(|| !pid.exists());
    // Binding a busy port fails before any pid file is written.
    let _busy = std::net::TcpListener::bind(addr).unwrap();
    let (code, _, err) = ringx_cmd(&["-c", &path_of(&conf_path)]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("bind() to {addr} failed (98: Address already in use)")),
        "{err}"
    );
    assert!(!pid.exists());
}

fn wait_for(mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("condition not met within 10s");
}

/// Clients that send keep-alive requests in a loop and count failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|i| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let mut conn: Option<(TcpStream, Vec<u8>)> = None;
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                        if conn.is_none() {
                            let s = TcpStream::connect(addr).unwrap();
                            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                            conn = Some((s, Vec::new()));
                        }
                        let (s, buf) = conn.as_mut().unwrap();
                        let req = format!("GET /load/{i} HTTP/1.1\r\nHost: x\r\n\r\n");
                        let res = s
                            .write_all(req.as_bytes())
                            .ok()
                            .and_then(|_| read_response(s, buf, false));
                        match res {
                            Some(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::SeqCst);
                                if r.header("connection") == Some("close") {
                                    conn = None;
                                }
                            }
                            Some(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                            None => {
                                // ringx never closes a keep-alive connection on
                                // reload: a request without an answer is a loss.
                                failed.fetch_add(1, Ordering::SeqCst);
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        (self.ok.load(Ordering::SeqCst), self.failed.load(Ordering::SeqCst))
    }
}

#[test]
fn reload_under_load_loses_nothing_and_applies_changes() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let port = free_port();
    let port2 = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let addr2: SocketAddr = format!("127.0.0.1:{port2}").parse().unwrap();
    let conf = |upstream: &SocketAddr, extra_listen: &str| {
        format!(
            "daemon off; pid off; worker_processes 2; events {{}} http {{ access_log off;
             upstream be {{ server {upstream}; keepalive 4; }}
             server {{ listen 127.0.0.1:{port}; {extra_listen} location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}"
        )
    };
    let r = Ringx::start(&conf(&a.addr, ""), &[], addr);
    let load = Load::start(addr, 4);
    std::thread::sleep(Duration::from_millis(300));
    // Switch the upstream to b and add a listen address.
    r.rewrite(&conf(&b.addr, &format!("listen 127.0.0.1:{port2};")));
    r.signal(libc::SIGHUP);
    wait_for(|| b.count() > 20);
    assert_eq!(get(addr2, "/new-listener", "x").unwrap().status, 200);
    // An invalid config is refused; ringx keeps serving.
    r.rewrite("events {} http { bogus_directive; }");
    r.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    // Back to a, and the second address goes away.
    let a_before = a.count();
    r.rewrite(&conf(&a.addr, ""));
    r.signal(libc::SIGHUP);
    wait_for(|| a.count() > a_before + 20);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "requests failed during reloads ({ok} ok)");
    assert!(ok > 100, "too little traffic: {ok}");
    assert!(
        r.stderr().contains("unknown directive \"bogus_directive\""),
        "{}",
        r.stderr()
    );
    wait_for(|| TcpStream::connect(addr2).is_err());
}

#[test]
fn graceful_quit_finishes_in_flight_requests() {
    let b = Backend::start("slow");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let conf = format!(
        "daemon off; pid off; worker_processes 2; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{}; }} }} }}",
        b.addr
    );
    let mut r = Ringx::start(&conf, &[], addr);
    let inflight: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(addr, "/slow?ms=800", "x")))
        .collect();
    // An idle keep-alive connection must not hold the quit up.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_response(&mut idle, &mut Vec::new(), false).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    r.signal(libc::SIGQUIT);
    for t in inflight {
        let res = t.join().unwrap().expect("in-flight request lost");
        assert_eq!(res.status, 200);
        assert_eq!(res.text(), "slow slow\n");
    }
    assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(addr).is_err(), "still listening after quit");
}

/// Test::Nginx's command line, `nginx -p DIR/ -c nginx.conf -e error.log`: a relative
/// `-c` and `-e` resolve against the prefix, as nginx does (from any working
/// directory).
#[test]
fn relative_conf_and_error_log_resolve_against_the_prefix() {
    let dir = tempdir("prefix-rel");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::write(
        dir.join("nginx.conf"),
        format!("pid run.pid; daemon off; error_log stderr notice; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ return 200 prefixed; }} }} }}"),
    )
    .unwrap();
    let prefix = format!("{}/", path_of(&dir));
    let elsewhere = tempdir("prefix-cwd");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringx"))
        .args(["-p", &prefix, "-c", "nginx.conf", "-e", "error.log"])
        .current_dir(&elsewhere)
        .spawn()
        .unwrap();
    wait_listening(addr);
    assert_eq!(get(addr, "/", "x").unwrap().text(), "prefixed");
    let quit = std::process::Command::new(env!("CARGO_BIN_EXE_ringx"))
        .args(["-p", &prefix, "-c", "nginx.conf", "-s", "quit"])
        .current_dir(&elsewhere)
        .status()
        .unwrap();
    assert!(quit.success());
    assert!(child.wait().unwrap().success());
    assert!(std::fs::read_to_string(dir.join("error.log"))
        .unwrap()
        .contains("[notice]"));
}

/// Main-context directives nginx configs carry: `worker_priority`,
/// `working_directory` and `env NAME=VALUE` take effect; `pcre_jit`,
/// `timer_resolution`, `thread_pool`, `lock_file` and `events { worker_aio_requests;
/// debug_connection; }` are accepted no-ops.
#[test]
fn main_context_directives_take_effect() {
    let port = free_port();
    let dir = tempdir("mainctx");
    let conf = format!(
        "daemon off; pid off; worker_priority 5; working_directory {d}; env TZ=EST5;\n\
         pcre_jit on; timer_resolution 100ms; thread_pool default threads=4; lock_file logs/nginx.lock;\n\
         events {{ worker_aio_requests 32; debug_connection 127.0.0.1; }}\n\
         http {{ log_format t '$time_local'; access_log {d}/t.log t;\n\
           server {{ listen 127.0.0.1:{port}; return 200 ok; }} }}",
        d = dir.display()
    );
    let r = Ringx::start(&conf, &[], addr_of(port));
    let pid = r.pid();
    // The port listens before start-up is over; an answer means the workers run.
    assert_eq!(get(addr_of(port), "/", "x").unwrap().status, 200);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Field 19 (after the parenthesised name) is the nice value.
    let after = stat.rsplit_once(") ").unwrap().1;
    let nice: i32 = after.split(' ').nth(16).unwrap().parse().unwrap();
    assert_eq!(nice, 5, "{stat}");
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, dir.canonicalize().unwrap());
    assert_eq!(get(addr_of(port), "/", "x").unwrap().status, 200);
    // `env TZ=EST5` reached the process: local times are 5 hours behind UTC.
    wait_for(|| std::fs::read_to_string(dir.join("t.log")).is_ok_and(|l| l.trim_end().ends_with("-0500")));
}

/// packaging/ringx.service (nginx's Debian unit with the binary changed) passes
/// `systemd-analyze verify` without a complaint, and its commands' flags are ones
/// ringx takes: `-t -q -g 'daemon on; master_process on;'` on a configuration.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not installed (run .ci/run)");
        return;
    };
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/ringx.service")).unwrap();
    let dir = tempdir("unit");
    let path = dir.join("ringx.service");
    std::fs::write(&path, unit.replace("/usr/sbin/ringx", env!("CARGO_BIN_EXE_ringx"))).unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, "events {} http { access_log off; }").unwrap();
    let c = conf.display().to_string();
    let (code, _, err) = ringx_cmd(&["-t", "-q", "-c", &c, "-g", "daemon on; master_process on;"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "-q prints nothing on success: {err}");
}

fn which(cmd: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(cmd)).find(|f| f.exists()))
        .ok_or(())
}
