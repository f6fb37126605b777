//! Debian's stock configuration (nginx-common 1.22.1-9+deb12u11: nginx.conf,
//! sites-available/default, mime.types, the default page; in tests/data/debian),
//! laid out in a temporary prefix with only its paths and port changed: `ringx -t`
//! passes, it starts as a daemon, serves the default site as nginx does
//! (`try_files $uri $uri/ =404`, `index`, `gzip on`), runs as www-data when started
//! as root, and stops on `-s quit`. And `user` on its own: the processes' ids,
//! capabilities, what a worker can read, a reload that binds a privileged port, and
//! reopened logs.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/debian");

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Debian's files under `d`, with /etc/nginx, /var/log/nginx, /run and /var/www
/// moved into it and the default site on `port`.
fn lay_out(d: &Path, port: u16) -> PathBuf {
    let etc = d.join("etc/nginx");
    for sub in ["modules-enabled", "conf.d", "sites-available", "sites-enabled"] {
        std::fs::create_dir_all(etc.join(sub)).unwrap();
    }
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::create_dir_all(d.join("log")).unwrap();
    let read = |f: &str| std::fs::read_to_string(Path::new(DATA).join(f)).unwrap();
    let conf = read("nginx.conf")
        .replace("/etc/nginx", &etc.display().to_string())
        .replace("/var/log/nginx", &d.join("log").display().to_string())
        .replace("/run/nginx.pid", &d.join("nginx.pid").display().to_string());
    std::fs::write(etc.join("nginx.conf"), conf).unwrap();
    std::fs::write(etc.join("mime.types"), read("mime.types")).unwrap();
    // What Debian's nginx-light puts in modules-enabled (libnginx-mod-http-echo).
    std::fs::write(
        etc.join("modules-enabled/50-mod-http-echo.conf"),
        "load_module modules/ngx_http_echo_module.so;\n",
    )
    .unwrap();
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let site = read("default")
        .replace("/var/www/html", &d.join("www").display().to_string())
        .replace(
            "listen 80 default_server;",
            &format!("listen 127.0.0.1:{port} default_server;"),
        )
        .replace(
            "listen [::]:80 default_server;",
            &if v6 {
                format!("listen [::1]:{port} default_server;")
            } else {
                String::new()
            },
        );
    std::fs::write(etc.join("sites-available/default"), &site).unwrap();
    std::os::unix::fs::symlink(etc.join("sites-available/default"), etc.join("sites-enabled/default")).unwrap();
    std::fs::copy(
        Path::new(DATA).join("index.nginx-debian.html"),
        d.join("www/index.nginx-debian.html"),
    )
    .unwrap();
    etc.join("nginx.conf")
}

#[test]
fn debian_stock_configuration_serves_its_default_site() {
    let d = tempdir("debian");
    let port = free_port();
    let addr = addr_of(port);
    let conf = lay_out(&d, port);
    let conf_s = conf.display().to_string();
    let (code, _, err) = ringx_cmd(&["-t", "-c", &conf_s]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("module \"ngx_http_echo_module\" is not loaded"), "{err}");
    assert!(err.contains("test is successful"), "{err}");

    let (code, _, err) = ringx_cmd(&["-c", &conf_s]);
    assert_eq!(code, 0, "{err}");
    wait_listening(addr);
    let stop = Stop(conf_s.clone());
    let page = std::fs::read(Path::new(DATA).join("index.nginx-debian.html")).unwrap();
    let r = get(addr, "/", "localhost").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.body, page);
    assert!(r.header("etag").is_some() && r.header("last-modified").is_some());
    let r = get(addr, "/index.nginx-debian.html", "localhost").unwrap();
    assert_eq!(r.body, page);
    assert_eq!(get(addr, "/nope", "localhost").unwrap().status, 404);
    // gzip on (text/html only, Debian's default types).
    let r = request(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain).unwrap();
    assert_eq!(plain, page);
    let pid: i32 = std::fs::read_to_string(d.join("nginx.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if is_root() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let www = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("www-data:"))
            .map(|l| l.split(':').nth(2).unwrap().to_string())
            .expect("www-data exists on Debian");
        assert!(
            status.contains(&format!("Uid:\t{www}\t{www}\t{www}\t{www}")),
            "{status}"
        );
    }
    drop(stop);
    wait_for("ringx to exit", Duration::from_secs(10), || {
        // SAFETY: kill with signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) != 0 }
    });
}

/// `ringx -s quit` on drop (the daemon outlives the command that started it).
struct Stop(String);

impl Drop for Stop {
    fn drop(&mut self) {
        ringx_cmd(&["-c", &self.0, "-s", "quit"]);
    }
}

/// A free port below 1024 (binding one needs root or CAP_NET_BIND_SERVICE).
fn privileged_port() -> u16 {
    (700..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

fn task_lines(pid: i32, key: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let status = std::fs::read_to_string(t.join("status")).unwrap_or_default();
        let v = status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
            .to_string();
        out.push((comm, v));
    }
    out
}

#[test]
fn user_drops_privileges_and_keeps_reload_and_reopen_working() {
    if !is_root() {
        // Not root: nginx's [warn], and ringx runs as it was started.
        let d = tempdir("user");
        let conf = d.join("nginx.conf");
        std::fs::write(&conf, "user nobody nogroup; events {} http { access_log off; }").unwrap();
        let (code, _, err) = ringx_cmd(&["-t", "-c", &conf.display().to_string()]);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("makes sense only if the master process runs with super-user privileges"),
            "{err}"
        );
        return;
    }
    let d = tempdir("user");
    let html = d.join("html");
    std::fs::create_dir_all(&html).unwrap();
    std::fs::write(html.join("pub.txt"), "public\n").unwrap();
    std::fs::write(html.join("secret.txt"), "secret\n").unwrap();
    std::fs::set_permissions(
        html.join("secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let p1 = privileged_port();
    let conf = |extra: &str| {
        format!(
            "user nobody nogroup; daemon off; worker_processes 2; pid {d}/ringx.pid; error_log {d}/logs/error.log info;\n\
             events {{}} http {{ access_log {d}/logs/access.log; server {{ listen 127.0.0.1:{p1}; {extra} root {d}/html; }} }}\n",
            d = d.display()
        )
    };
    let addr = addr_of(p1);
    let mut rx = Ringx::start(&conf(""), &[], addr);
    let pid = rx.pid();
    // The port listens before ringx drops root; the pid file is written after.
    wait_for("the pid file", Duration::from_secs(10), || {
        std::fs::read_to_string(d.join("ringx.pid")).is_ok_and(|p| !p.trim().is_empty())
    });
    for (comm, uid) in task_lines(pid, "Uid:") {
        assert_eq!(uid, "Uid:\t65534\t65534\t65534\t65534", "thread {comm}");
    }
    for (comm, cap) in task_lines(pid, "CapEff:") {
        if comm.starts_with("ringx-worker") {
            assert_eq!(cap, "CapEff:\t0000000000000000", "a worker keeps capabilities");
        } else {
            // CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_NET_BIND_SERVICE, nothing else.
            assert_eq!(cap, "CapEff:\t0000000000000403", "thread {comm}");
        }
    }
    assert_eq!(get(addr, "/pub.txt", "x").unwrap().status, 200);
    assert_eq!(
        get(addr, "/secret.txt", "x").unwrap().status,
        403,
        "a worker read a root-only file"
    );

    // A reload that adds a privileged port.
    let p3 = (p1 + 1..1024)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .unwrap();
    rx.rewrite(&conf(&format!("listen 127.0.0.1:{p3};")));
    rx.signal(libc::SIGHUP);
    wait_for("the reloaded port", Duration::from_secs(10), || {
        get(addr_of(p3), "/pub.txt", "x").is_some_and(|r| r.status == 200)
    });

    // Reopen after rotation: the new access log is created (in a root-owned
    // directory) and given to the user.
    let logs = d.join("logs");
    std::fs::rename(logs.join("access.log"), logs.join("access.log.1")).unwrap();
    rx.signal(libc::SIGUSR1);
    wait_for("a new access.log", Duration::from_secs(5), || {
        logs.join("access.log").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    get(addr, "/pub.txt?after", "x").unwrap();
    wait_for("the line in the new log", Duration::from_secs(5), || {
        std::fs::read_to_string(logs.join("access.log")).is_ok_and(|l| l.contains("/pub.txt?after"))
    });
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(logs.join("access.log")).unwrap());
    assert_eq!(owner, 65534);
    rx.signal(libc::SIGQUIT);
    assert_eq!(rx.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!d.join("ringx.pid").exists(), "the pid file stayed");
}

/// Root without `user`: nginx's default (nobody), never root; and a worker that
/// replaces a dead one after a reload that dropped `user` has no capabilities.
#[test]
fn root_without_user_runs_as_nobody_and_respawned_workers_stay_unprivileged() {
    if !is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    let d = tempdir("nouser");
    let port = free_port();
    let be = Backend::start("be");
    let conf = |user: &str| {
        format!(
            "{user} daemon off; pid off; error_log {d}/logs/error.log info; events {{}}\n\
             http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{be}; }} }} }}\n",
            d = d.display(),
            be = be.addr
        )
    };
    let mut rx = Ringx::start_env(
        &conf("user nobody nogroup;"),
        &[],
        addr_of(port),
        &[("RINGX_FAULT_WORKER_PANIC", "/die")],
    );
    rx.rewrite(&conf(""));
    rx.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(5), || {
        std::fs::read_to_string(d.join("logs/error.log")).is_ok_and(|l| l.contains("reconfigured"))
    });
    let _ = get(addr_of(port), "/die", "x");
    wait_for("the worker's panic", Duration::from_secs(10), || {
        std::fs::read_to_string(d.join("logs/error.log")).is_ok_and(|l| l.contains("exited on panic"))
    });
    wait_for("ringx serving again", Duration::from_secs(10), || {
        get(addr_of(port), "/", "x").is_some_and(|r| r.status == 200)
    });
    for (comm, cap) in task_lines(rx.pid(), "CapEff:") {
        if comm.starts_with("ringx-worker") {
            assert_eq!(cap, "CapEff:\t0000000000000000", "a respawned worker has capabilities");
        }
    }
    rx.signal(libc::SIGTERM);
    rx.wait_exit(Duration::from_secs(5));

    let port = free_port();
    let conf = format!(
        "daemon off; pid off; events {{}} http {{ access_log off; server {{ listen 127.0.0.1:{port}; return 200 ok; }} }}"
    );
    let rx = Ringx::start(&conf, &[], addr_of(port));
    wait_for("the workers", Duration::from_secs(10), || {
        task_lines(rx.pid(), "Uid:")
            .iter()
            .any(|(c, _)| c.starts_with("ringx-worker"))
    });
    for (comm, uid) in task_lines(rx.pid(), "Uid:") {
        assert_eq!(uid, "Uid:\t65534\t65534\t65534\t65534", "thread {comm} runs as root");
    }
}
