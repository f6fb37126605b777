//! Listening sockets: one `SO_REUSEPORT` socket per worker per address, made with
//! socket2 so the kernel spreads connections across workers with no shared accept
//! queue and no accept mutex.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds a listening socket for one worker.
pub fn bind(addr: SocketAddr, backlog: i32, ipv6only: bool) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(ipv6only)?;
    }
    s.set_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// `listen … deferred`: TCP_DEFER_ACCEPT with nginx's 1 second (the kernel then
/// accepts a connection once its first bytes are here, or after that time); off
/// clears it (a reload that drops the parameter).
pub fn set_deferred(l: &std::net::TcpListener, on: bool) -> io::Result<()> {
    let secs: libc::c_int = on.into();
    // SAFETY: `l` is an open socket and `secs` a c_int that outlives the call, with
    // its size given.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(l),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Stops a listener in every thread that holds a duplicate of it: `shutdown(SHUT_RD)`
/// on a listening socket wakes pending accepts with an error.
pub fn stop(l: &std::net::TcpListener) {
    let _ = socket2::SockRef::from(l).shutdown(std::net::Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_workers_share_a_port() {
        let a = bind("127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind(addr, 16, true).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
    }

    /// `Listener::accept` sets no TCP_NODELAY of its own: an accepted socket has the
    /// listener's, as Linux copies it (small responses are not held back by Nagle).
    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let l = bind("127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert!(s.nodelay().unwrap());
    }
}
