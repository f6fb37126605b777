//! The built-in demo (`ringx` with no config): three small HTTP backends on loopback
//! and a short tour that sends requests through ringx, stops one backend to show
//! failover, and brings it back. Plain threads and std sockets: this is a teaching
//! aid, not part of the data path.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEMO_PORTS: [u16; 3] = [18081, 18082, 18083];

/// One demo backend: answers every request with its own name.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    listener: Mutex<Option<TcpListener>>,
    conns: Mutex<Vec<TcpStream>>,
    up: AtomicBool,
}

impl Backend {
    fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let l = crate::net::listener::bind(self.addr, 128, true)?;
        let l2 = l.try_clone()?;
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
        self.up.store(true, Ordering::SeqCst);
        let me = self.clone();
        std::thread::spawn(move || {
            for s in l2.incoming() {
                let Ok(s) = s else { break };
                if !me.up.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = s.try_clone() {
                    me.conns.lock().unwrap_or_else(|e| e.into_inner()).push(c);
                }
                let me2 = me.clone();
                std::thread::spawn(move || me2.serve(s));
            }
        });
        Ok(())
    }

    /// Closes the listener and every open connection, like a crashed server.
    pub fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(l) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            crate::net::listener::stop(&l);
        }
        for c in self.conns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn serve(&self, mut s: TcpStream) {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            let end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                match s.read(&mut tmp) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .unwrap_or(0);
            while buf.len() < end + cl {
                match s.read(&mut tmp) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            buf.drain(..end + cl);
            let body = format!("hello from {} ({})\n", self.name, self.addr);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                body
            );
            if s.write_all(resp.as_bytes()).is_err() || !self.up.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

pub fn start_backends() -> std::io::Result<Vec<Arc<Backend>>> {
    let mut v = Vec::new();
    for (i, port) in DEMO_PORTS.iter().enumerate() {
        let b = Arc::new(Backend {
            name: format!("backend-{}", i + 1),
            addr: SocketAddr::from(([127, 0, 0, 1], *port)),
            listener: Mutex::new(None),
            conns: Mutex::new(Vec::new()),
            up: AtomicBool::new(false),
        });
        b.start()?;
        v.push(b);
    }
    Ok(v)
}

fn get(addr: SocketAddr) -> String {
    let run = || -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let status = out.lines().next().unwrap_or("").to_string();
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string();
        Ok(format!("{status:<20} {body}"))
    };
    run().unwrap_or_else(|e| format!("error: {e}"))
}

/// Prints the tour on stdout from a helper thread while the master runs.
pub fn run_tour(backends: Vec<Arc<Backend>>, addr: SocketAddr) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let say = |s: &str| {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        };
        say(&format!(
            "\n=== ringx demo: proxy on http://{addr}/ in front of 3 backends (least_conn, max_fails=1) ==="
        ));
        say("--- 6 requests: spread over the three backends");
        for i in 1..=6 {
            say(&format!("  #{i}  {}", get(addr)));
        }
        say("--- backend-2 is stopped (as if it crashed); 6 more requests: no errors, ringx routes around it");
        backends[1].stop();
        for i in 7..=12 {
            say(&format!("  #{i}  {}", get(addr)));
        }
        say("--- backend-2 is back; ringx tries it again after fail_timeout (5s)");
        let _ = backends[1].start();
        std::thread::sleep(Duration::from_millis(5200));
        for i in 13..=18 {
            say(&format!("  #{i}  {}", get(addr)));
        }
        say(&format!(
            "=== try it yourself:  curl http://{addr}/   curl http://{addr}/health   (Ctrl-C stops ringx)\n"
        ));
    });
}
