//! Test support: real processes and real sockets on 127.0.0.1.
//!
//! - [`Backend`]: an HTTP/1.1 server (std threads) that records every request it
//!   receives and answers by path: `/echo` (the body back), `/big?n=N` (N bytes),
//!   `/chunked?n=N` (chunked response), `/close` (close-delimited HTTP/1.0 response),
//!   `/slow?ms=N`, `/status?code=N`, anything else: `backend NAME`.
//! - [`Ringx`]: the real binary on a config written to a temp dir; killed on drop.
//! - [`Nginx`]: Debian's nginx on the same config, for differential tests.
//! - [`request`]: a raw HTTP client that reads one response.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, never the same twice in one test process.
///
/// Tests run in parallel, and ringx binds with SO_REUSEPORT: had two tests been given
/// the same number, the second ringx would bind too and the kernel would split one
/// test's connections between both (seen once as a shifted round-robin sequence).
///
/// The ports come from below the kernel's ephemeral range (32768 and up): a port
/// the kernel handed out as free is handed out again as the local port of some
/// outgoing connection (a test client's, ringx's to a backend), and a ringx that
/// then binds it fails at start (seen as h2 tests that never listened).
pub fn free_port() -> u16 {
    static NEXT: Mutex<Option<u16>> = Mutex::new(None);
    let mut next = NEXT.lock().unwrap();
    // Each test process starts elsewhere in 20000..32000.
    let mut p = next.unwrap_or(20000 + (std::process::id() % 600) as u16 * 20);
    loop {
        p = if p >= 32000 { 20000 } else { p + 1 };
        // Free for TCP now (and for the UDP tests' use of the same number).
        if TcpListener::bind(("127.0.0.1", p)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            *next = Some(p);
            return p;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub conn: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
}

/// Live figures a backend keeps: requests in flight (and the most seen at once), and
/// the status its `/health` answers.
#[derive(Default)]
pub struct Live {
    pub inflight: AtomicUsize,
    pub max_inflight: AtomicUsize,
    pub health: std::sync::atomic::AtomicU16,
    /// Every response waits this long first.
    pub delay_ms: std::sync::atomic::AtomicU64,
}

pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Recorded>>>,
    pub conns: Arc<AtomicUsize>,
    pub live: Arc<Live>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    listener: Option<TcpListener>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Self::start_on(name, 0)
    }

    pub fn start_on(name: &str, port: u16) -> Backend {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = l.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let live = Arc::new(Live::default());
        live.health.store(200, Ordering::SeqCst);
        let l2 = l.try_clone().unwrap();
        let (n, lg, cn, st, op, lv) = (
            name.to_string(),
            log.clone(),
            conns.clone(),
            stop.clone(),
            open.clone(),
            live.clone(),
        );
        std::thread::spawn(move || {
            for s in l2.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(s) = s else { break };
                let id = cn.fetch_add(1, Ordering::SeqCst);
                op.lock().unwrap().push(s.try_clone().unwrap());
                let (n, lg, st, lv) = (n.clone(), lg.clone(), st.clone(), lv.clone());
                std::thread::spawn(move || {
                    let keep = s.try_clone().unwrap();
                    serve(s, &n, &lg, id, &st, &lv);
                    // The dup kept for kill() would hold the socket open.
                    let _ = keep.shutdown(Shutdown::Both);
                });
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            log,
            conns,
            live,
            stop,
            open,
            listener: Some(l),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Closes the listener and every connection (a crashed server).
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(l) = self.listener.take() {
            let _ = socket2::SockRef::from(&l).shutdown(Shutdown::Read);
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_head<R: Read>(s: &mut R, buf: &mut Vec<u8>) -> Option<usize> {
    let mut tmp = [0u8; 65536];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(p + 4);
        }
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn fill<R: Read>(s: &mut R, buf: &mut Vec<u8>, need: usize) -> bool {
    let mut tmp = [0u8; 65536];
    while buf.len() < need {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    true
}

/// A head (without its final CRLFCRLF): the first line, and the header fields.
fn split_head(head: &[u8]) -> (String, Vec<(String, String)>) {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string())))
        .collect();
    (first, headers)
}

fn header_of(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Where the CRLF-terminated line starting at `pos` ends, reading more as needed.
fn find_line_end<R: Read>(s: &mut R, buf: &mut Vec<u8>, pos: usize) -> Option<usize> {
    loop {
        if let Some(p) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
            return Some(pos + p);
        }
        let need = buf.len() + 1;
        if !fill(s, buf, need) {
            return None;
        }
    }
}

/// Decodes a chunked body at the front of `buf`, reading more as needed; returns
/// (body, bytes consumed).
fn read_chunked<R: Read>(s: &mut R, buf: &mut Vec<u8>) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = find_line_end(s, buf, pos)?;
        let line = std::str::from_utf8(&buf[pos..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let e = find_line_end(s, buf, pos)?;
                let empty = e == pos;
                pos = e + 2;
                if empty {
                    return Some((body, pos));
                }
            }
        }
        if !fill(s, buf, pos + size + 2) {
            return None;
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

fn query(target: &str, key: &str) -> Option<usize> {
    let q = target.split('?').nth(1)?;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).and_then(|v| v.parse().ok()))
}

fn serve(mut s: TcpStream, name: &str, log: &Mutex<Vec<Recorded>>, conn: usize, stop: &AtomicBool, live: &Live) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_head(&mut s, &mut buf) else { return };
        let (first, headers) = split_head(&buf[..end - 4]);
        let rl: Vec<String> = first.split(' ').map(str::to_string).collect();
        let get = |n: &str| header_of(&headers, n);
        buf.drain(..end);
        let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let Some((b, used)) = read_chunked(&mut s, &mut buf) else {
                return;
            };
            buf.drain(..used);
            b
        } else {
            let cl: usize = get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if !fill(&mut s, &mut buf, cl) {
                return;
            }
            buf.drain(..cl).collect()
        };
        let method = rl.first().cloned().unwrap_or_default();
        let target = rl.get(1).cloned().unwrap_or_default();
        let version = rl.get(2).cloned().unwrap_or_default();
        let close_req = version == "HTTP/1.0"
            && !get("connection").is_some_and(|v| v.eq_ignore_ascii_case("keep-alive"))
            || get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        log.lock().unwrap().push(Recorded {
            method: method.clone(),
            target: target.clone(),
            version,
            headers: headers.clone(),
            body: body.clone(),
            conn,
        });
        let path = target.split('?').next().unwrap_or("");
        let conn_hdr = if close_req { "Connection: close\r\n" } else { "" };
        let now = live.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        live.max_inflight.fetch_max(now, Ordering::SeqCst);
        struct Dec<'a>(&'a AtomicUsize);
        impl Drop for Dec<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _dec = Dec(&live.inflight);
        let delay = live.delay_ms.load(Ordering::SeqCst);
        if delay > 0 && path != "/health" {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let ok = match path {
            "/echo" | "/classify/echo" => {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Backend: {name}\r\n{conn_hdr}\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body);
                s.write_all(&r).is_ok()
            }
            "/big" => {
                let n = query(&target, "n").unwrap_or(16384);
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nX-Backend: {name}\r\n{conn_hdr}\r\n")
                    .into_bytes();
                r.extend((0..n).map(|i| b'a' + (i % 26) as u8));
                s.write_all(&r).is_ok()
            }
            "/chunked" => {
                let n = query(&target, "n").unwrap_or(100000);
                let mut r =
                    format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Backend: {name}\r\n{conn_hdr}\r\n")
                        .into_bytes();
                let data: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                for c in data.chunks(7000) {
                    r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    r.extend_from_slice(c);
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
                s.write_all(&r).is_ok()
            }
            "/close" => {
                let n = query(&target, "n").unwrap_or(50000);
                let mut r = format!("HTTP/1.0 200 OK\r\nX-Backend: {name}\r\n\r\n").into_bytes();
                r.extend((0..n).map(|i| b'a' + (i % 26) as u8));
                let _ = s.write_all(&r);
                return;
            }
            "/slow" => {
                std::thread::sleep(Duration::from_millis(query(&target, "ms").unwrap_or(1000) as u64));
                let b = format!("slow {name}\n");
                s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{conn_hdr}\r\n{b}", b.len()).as_bytes())
                    .is_ok()
            }
            "/health" => {
                let code = live.health.load(Ordering::SeqCst);
                let b = format!("health {code}\n");
                s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\n{conn_hdr}\r\n{b}", b.len()).as_bytes())
                    .is_ok()
            }
            "/status" => {
                let code = query(&target, "code").unwrap_or(200);
                let b = format!("status {code} from {name}\n");
                s.write_all(
                    format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nX-Backend: {name}\r\n{conn_hdr}\r\n{b}",
                        b.len()
                    )
                    .as_bytes(),
                )
                .is_ok()
            }
            _ => {
                let b = format!("backend {name}\n");
                s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Backend: {name}\r\nServer: testbe\r\n{conn_hdr}\r\n{b}",
                        b.len()
                    )
                    .as_bytes(),
                )
                .is_ok()
            }
        };
        if !ok || close_req || stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Reads one response from `s` (with `buf` holding bytes already read); `head_req`
/// when the request was HEAD.
pub fn read_response<R: Read>(s: &mut R, buf: &mut Vec<u8>, head_req: bool) -> Option<Response> {
    // Interim responses (100 Continue) are skipped, as clients do.
    loop {
        let r = read_one(s, buf, head_req)?;
        if !(100..200).contains(&r.status) || r.status == 101 {
            return Some(r);
        }
    }
}

fn read_one<R: Read>(s: &mut R, buf: &mut Vec<u8>, head_req: bool) -> Option<Response> {
    let end = read_head(s, buf)?;
    let (first, headers) = split_head(&buf[..end - 4]);
    buf.drain(..end);
    let status: u16 = first.split(' ').nth(1)?.parse().ok()?;
    let get = |n: &str| header_of(&headers, n);
    let body = if head_req || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let (b, used) = read_chunked(s, buf)?;
        buf.drain(..used);
        b
    } else if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if !fill(s, buf, cl) {
            return None;
        }
        buf.drain(..cl).collect()
    } else {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        buf.extend_from_slice(&rest);
        std::mem::take(buf)
    };
    Some(Response { status, headers, body })
}

/// Sends raw bytes, reads one response. `None` when the connection closed without one.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Option<Response> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).ok()?;
    let head_req = raw.starts_with(b"HEAD ");
    read_response(&mut s, &mut Vec::new(), head_req)
}

/// Like [`request`], from a chosen source address (any 127.x.y.z works on Linux).
pub fn request_from(src: std::net::IpAddr, addr: SocketAddr, raw: &[u8]) -> Option<Response> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    sock.bind(&SocketAddr::new(src, 0).into()).ok()?;
    sock.connect(&addr.into()).ok()?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).ok()?;
    read_response(&mut s, &mut Vec::new(), false)
}

pub fn get(addr: SocketAddr, path: &str, host: &str) -> Option<Response> {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a
/// connect to it hangs (on loopback, without any outside address).
pub struct FullListener {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
    _fillers: Vec<TcpStream>,
}

impl FullListener {
    pub fn bind() -> FullListener {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(0).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let _fillers = (0..3)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
            .collect();
        FullListener {
            addr,
            _socket: socket,
            _fillers,
        }
    }
}

/// Waits until something accepts on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr}");
}

pub fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ringx-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("logs")).unwrap();
    d
}

pub struct Ringx {
    pub child: Child,
    pub dir: PathBuf,
    pub conf: PathBuf,
}

impl Ringx {
    /// Starts ringx on `conf` (written to a new temp dir) with `extra` arguments and
    /// waits until `wait_on` accepts.
    pub fn start(conf: &str, extra: &[&str], wait_on: SocketAddr) -> Ringx {
        Ringx::start_env(conf, extra, wait_on, &[])
    }

    /// [`Ringx::start`] with extra environment variables.
    pub fn start_env(conf: &str, extra: &[&str], wait_on: SocketAddr, env: &[(&str, &str)]) -> Ringx {
        let dir = tempdir("ringx");
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        // A test's ringx must stay its child (a daemon would outlive the test, and
        // every leaked one holds an io_uring ring of the user's locked memory).
        let fg: &[&str] = if conf.contains("daemon ") || extra.contains(&"-g") {
            &[]
        } else {
            &["-g", "daemon off;"]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_ringx"))
            .arg("-c")
            .arg(&path)
            .args(extra)
            .args(fg)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut r = Ringx { child, dir, conf: path };
        let start = Instant::now();
        while TcpStream::connect(wait_on).is_err() {
            if start.elapsed() > Duration::from_secs(10) || r.child.try_wait().ok().flatten().is_some() {
                panic!("ringx does not listen on {wait_on}; its stderr:\n{}", r.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn rewrite(&self, conf: &str) {
        std::fs::write(&self.conf, conf).unwrap();
    }

    /// Waits for the process to exit; returns its status code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Ringx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the ringx binary with arguments; returns (exit code, stdout, stderr).
pub fn ringx_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringx")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Debian's nginx, if installed.
pub fn nginx_bin() -> Option<PathBuf> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
}

impl Nginx {
    /// Starts nginx in the foreground on `http_block` (the text inside `http { }`).
    pub fn start(http_block: &str, wait_on: SocketAddr) -> Nginx {
        Nginx::start_with(http_block, "", wait_on)
    }

    /// [`Nginx::start`] with main-level text after the http block (a `stream { }`;
    /// Debian's stream module is loaded first when it is there).
    pub fn start_with(http_block: &str, main: &str, wait_on: SocketAddr) -> Nginx {
        let bin = nginx_bin().expect("nginx is not installed: run .ci/run (or apt-get install nginx-light)");
        let dir = tempdir("nginx");
        let stream_mod = "/usr/lib/nginx/modules/ngx_stream_module.so";
        let load = if !main.is_empty() && Path::new(stream_mod).exists() {
            format!("load_module {stream_mod};\n")
        } else {
            String::new()
        };
        let conf = format!(
            "{load}daemon off; master_process on; worker_processes 1; user root; pid {d}/nginx.pid; error_log {d}/logs/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{http_block}\n}}\n{main}\n",
            d = dir.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(wait_on);
        Nginx { child, dir }
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master stops its workers too (SIGKILL would orphan them, still
    /// holding their sockets); SIGKILL only if it has not exited within 5 s.
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts how many recorded requests each backend got.
pub fn spread(backends: &[&Backend]) -> HashMap<String, usize> {
    backends.iter().map(|b| (b.name.clone(), b.count())).collect()
}

pub fn path_of(p: &Path) -> String {
    p.display().to_string()
}

pub fn addr_of(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Polls `f` every 20 ms until it holds; panics naming `what` after `within`.
pub fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// The peak resident memory of process `pid` so far (VmHWM), in kB.
pub fn peak_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// An upstream that answers an upgrade request with 101 and then echoes (`/ws`) or
/// stays silent (`/quiet`); it records each request head it got.
pub fn ws_upstream() -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                seen.lock().unwrap().push(head.clone());
                let _ = s.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\nhello-from-up",
                );
                if head.starts_with("GET /quiet") {
                    std::thread::sleep(Duration::from_secs(6));
                    return;
                }
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, heads)
}

pub fn read_until<R: Read>(s: &mut R, buf: &mut Vec<u8>, what: &[u8]) {
    let mut b = [0u8; 4096];
    while !buf.windows(what.len()).any(|w| w == what) {
        let n = s.read(&mut b).expect("read");
        assert!(
            n > 0,
            "closed before {:?}: {}",
            String::from_utf8_lossy(what),
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&b[..n]);
    }
}

/// A test CA (rcgen) that signs leaf certificates; its certificate is written as
/// `FILE.crt` in the directory given.
pub struct Pki {
    pub ca: rcgen::Certificate,
    params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    pub fn new(dir: &Path, file: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {file}"));
        let ca = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), ca.pem()).unwrap();
        Pki { ca, params: p, ca_key }
    }

    /// A leaf for `names` (its subject `CN=<first name>`) signed by this CA:
    /// (certificate DER, key), written as `FILE.crt` / `FILE.key`.
    pub fn leaf(&self, dir: &Path, file: &str, names: &[&str]) -> (Vec<u8>, rcgen::KeyPair) {
        self.leaf_with(dir, file, names, |_| {})
    }

    /// An intermediate CA signed by this one (`FILE.crt`), and its DER.
    pub fn intermediate(&self, dir: &Path, file: &str) -> (Pki, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {file}"));
        let issuer = rcgen::Issuer::from_params(&self.params, &self.ca_key);
        let ca = p.signed_by(&ca_key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), ca.pem()).unwrap();
        let der = ca.der().to_vec();
        (Pki { ca, params: p, ca_key }, der)
    }

    /// [`Pki::leaf`] with its parameters edited first (serial, subject, ...).
    pub fn leaf_with(
        &self,
        dir: &Path,
        file: &str,
        names: &[&str],
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> (Vec<u8>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        edit(&mut p);
        let issuer = rcgen::Issuer::from_params(&self.params, &self.ca_key);
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
        (cert.der().to_vec(), key)
    }
}

/// ringx and Debian's nginx, each on a port of its own, serving the http block
/// `block(port)` makes, for the differential tests; `None` (with a skip line) where
/// nginx is not installed.
pub fn side_by_side(block: impl Fn(u16) -> String) -> Option<(Ringx, Nginx, SocketAddr, SocketAddr)> {
    if nginx_bin().is_none() {
        eprintln!("skipped: nginx is not installed (run .ci/run)");
        return None;
    }
    let (rp, np) = (free_port(), free_port());
    let (ra, na) = (addr_of(rp), addr_of(np));
    let conf = format!("daemon off; pid off; events {{}}\nhttp {{\n{}\n}}\n", block(rp));
    let ringx = Ringx::start(&conf, &[], ra);
    let nginx = Nginx::start(&block(np), na);
    Some((ringx, nginx, ra, na))
}

/// A small authoritative DNS server on 127.0.0.1 for the resolver tests: UDP (and
/// TCP on the same port, for answers too big for UDP). Names map to IPv4 addresses
/// and a TTL; AAAA questions get an empty answer; other names NXDOMAIN. `silent`
/// drops every question; `truncate` answers UDP with TC set (the TCP answer is
/// whole). Counts the questions it got per name.
pub struct Dns {
    pub addr: SocketAddr,
    pub zone: Arc<Zone>,
    pub asked: Arc<Mutex<Vec<String>>>,
    pub silent: Arc<AtomicBool>,
    pub truncate: Arc<AtomicBool>,
}

impl Dns {
    pub fn start() -> Dns {
        // A port free for both (an ephemeral UDP one may be some TCP socket's); one
        // taken between the check and the bind (a CI run once lost that race) is
        // passed over for the next.
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let port = free_port();
                let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).ok()?;
                let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((udp, tcp))
            })
            .expect("a port free for UDP and TCP");
        let addr = udp.local_addr().unwrap();
        let d = Dns {
            addr,
            zone: Arc::default(),
            asked: Arc::default(),
            silent: Arc::default(),
            truncate: Arc::default(),
        };
        let (zone, asked, silent, trunc) = (d.zone.clone(), d.asked.clone(), d.silent.clone(), d.truncate.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                if silent.load(Ordering::SeqCst) {
                    continue;
                }
                if let Some(reply) = dns_reply(&buf[..n], &zone, &asked, trunc.load(Ordering::SeqCst)) {
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        let (zone, asked) = (d.zone.clone(), d.asked.clone());
        std::thread::spawn(move || {
            for s in tcp.incoming() {
                let Ok(mut s) = s else { break };
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(reply) = dns_reply(&q, &zone, &asked, false) {
                    let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&reply);
                    let _ = s.write_all(&out);
                }
            }
        });
        d
    }

    pub fn set(&self, name: &str, addrs: &[&str], ttl: u32) {
        let a = addrs.iter().map(|a| a.parse().unwrap()).collect();
        self.zone.lock().unwrap().insert(name.to_string(), (a, ttl));
    }

    /// How many A questions for `name` came.
    pub fn asked(&self, name: &str) -> usize {
        self.asked.lock().unwrap().iter().filter(|n| *n == name).count()
    }
}

type Zone = Mutex<HashMap<String, (Vec<std::net::Ipv4Addr>, u32)>>;

fn dns_reply(q: &[u8], zone: &Zone, asked: &Mutex<Vec<String>>, truncate: bool) -> Option<Vec<u8>> {
    use simple_dns::{rdata, Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};
    let p = Packet::parse(q).ok()?;
    let question = p.questions.first()?.clone();
    let name = question.qname.to_string().to_ascii_lowercase();
    let mut r = Packet::new_reply(p.id());
    r.set_flags(PacketFlag::RECURSION_AVAILABLE);
    r.questions.push(question.clone());
    let is_a = question.qtype == QTYPE::TYPE(TYPE::A);
    if is_a {
        asked.lock().unwrap().push(name.clone());
    }
    match zone.lock().unwrap().get(&name) {
        None => *r.rcode_mut() = RCODE::NameError,
        Some(_) if truncate => r.set_flags(PacketFlag::TRUNCATION),
        Some((addrs, ttl)) if is_a => {
            for a in addrs {
                r.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    *ttl,
                    rdata::RData::A(rdata::A { address: u32::from(*a) }),
                ));
            }
        }
        Some(_) => {}
    }
    r.build_bytes_vec_compressed().ok()
}

/// A TCP server on 127.0.0.1 running `each` on a thread of its own per connection;
/// its address.
pub fn serve_each(each: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let each = Arc::new(each);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { break };
            let each = each.clone();
            std::thread::spawn(move || each(s));
        }
    });
    addr
}

/// `ringx -t` refuses the http block `body` with a message containing `why`, at line
/// 1 of its file.
pub fn assert_config_error(body: &str, why: &str) {
    let dir = tempdir("conf-t");
    let p = dir.join("nginx.conf");
    std::fs::write(&p, format!("events {{}} http {{ {body} }}")).unwrap();
    let (code, _, err) = ringx_cmd(&["-t", "-c", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{body}");
    assert!(err.contains(why) && err.contains("nginx.conf:1"), "{body}: {err}");
}

/// The timer kind (`tr` in /proc/net/tcp: "02" is the keepalive timer) of each
/// established TCP connection to local port `to`, seen from its other end.
pub fn tcp_timers(to: u16) -> Vec<String> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    tcp.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let rem_port = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
            (rem_port == to && f.get(3) == Some(&"01")).then(|| f.get(5)?.split(':').next().map(str::to_owned))?
        })
        .collect()
}
