//! The I/O seam's drivers: io_uring where the kernel allows it, epoll where a seccomp
//! filter (Docker's, containerd's default profile) refuses io_uring, `use` to choose,
//! and a worker that cannot start stopping start-up before the pid file exists.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Makes `cmd`'s process refuse `io_uring_setup` with EPERM, as Docker's default
/// seccomp profile does since 25.0.
fn deny_io_uring(cmd: &mut Command) {
    const IO_URING_SETUP: u32 = 425;
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        },
        // if A == io_uring_setup: next, else skip one
        libc::sock_filter {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: IO_URING_SETUP,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x0005_0000 | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        },
    ];
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // prctl calls on a filter that lives on this stack frame's copy in the child.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn conf(port: u16, events: &str, pid: &str) -> String {
    format!(
        "daemon off; pid {pid}; worker_processes 2; error_log stderr notice;\n\
         events {{ {events} }}\n\
         http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"up\\n\"; }} }} }}\n"
    )
}

fn spawn_denied(dir: &std::path::Path, text: &str) -> std::process::Child {
    let path = dir.join("nginx.conf");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringx"));
    cmd.arg("-c")
        .arg(&path)
        .env_remove("RINGX_EVENTS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    deny_io_uring(&mut cmd);
    cmd.spawn().unwrap()
}

#[test]
fn io_uring_refused_by_seccomp_falls_back_to_epoll() {
    let port = free_port();
    let dir = tempdir("seccomp-auto");
    let pid = dir.join("ringx.pid");
    let mut child = spawn_denied(&dir, &conf(port, "", &path_of(&pid)));
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    for _ in 0..20 {
        let r = get(addr, "/", "x").expect("a response under the seccomp filter");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "up\n");
    }
    assert!(pid.exists(), "pid file written once the epoll workers run");
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(
        log.contains("[notice]") && log.contains("io_uring is not available") && log.contains("using the epoll driver"),
        "{log}"
    );
    assert!(log.contains("2 worker(s) on epoll"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn use_io_uring_refused_is_emerg_before_the_pid_file() {
    let port = free_port();
    let dir = tempdir("seccomp-forced");
    let pid = dir.join("ringx.pid");
    let mut child = spawn_denied(&dir, &conf(port, "use io_uring;", &path_of(&pid)));
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "ringx kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(1));
    assert!(!pid.exists(), "no pid file");
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(log.contains("[emerg]") && log.contains("\"use io_uring\""), "{log}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is released"
    );
}

#[test]
fn use_epoll_serves_and_invalid_event_type_is_emerg() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = Ringx::start(&conf(port, "use epoll;", "off"), &[], addr);
    for _ in 0..10 {
        assert_eq!(get(addr, "/", "x").unwrap().status, 200);
    }
    assert!(r.stderr().contains("on epoll"), "{}", r.stderr());
    drop(r);

    let dir = tempdir("bad-use");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf(port, "use kqueue;", "off")).unwrap();
    let (code, _, err) = ringx_cmd(&["-t", "-c", &path_of(&path)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("[emerg] invalid event type \"kqueue\" in") && err.contains("nginx.conf:2"),
        "{err}"
    );
}

#[test]
fn version_names_the_drivers() {
    let (code, _, err) = ringx_cmd(&["-V"]);
    assert_eq!(code, 0);
    assert!(err.contains("io_uring") && err.contains("epoll"), "{err}");
}

/// `-V` says where the configuration comes from and, as nginx's `configure
/// arguments:`, which modules ringx has (what Test::Nginx's `has_module` reads).
#[test]
fn version_names_the_configuration_and_modules() {
    let (code, _, err) = ringx_cmd(&["-V"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("configuration: /etc/ringx/nginx.conf unless -c is given"),
        "{err}"
    );
    let args = err
        .lines()
        .find_map(|l| l.strip_prefix("configure arguments: "))
        .expect(&err);
    for m in [
        "--with-http_ssl_module",
        "--with-http_v2_module",
        "--without-http_fastcgi_module",
    ] {
        assert!(args.split(' ').any(|a| a == m), "{m} missing in {args}");
    }
}
