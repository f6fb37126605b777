//! The PROXY protocol (HAProxy's, v1 text and v2 binary), sans-io: the header a
//! load balancer in front puts before a connection's bytes (`listen …
//! proxy_protocol`), and the v1 line ringx puts before its own (`proxy_protocol on`
//! in stream), as nginx's ngx_proxy_protocol.c.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line (`PROXY TCP6 …\r\n`, 107 bytes with its CRLF).
const V1_MAX: usize = 107;
/// The longest v2 header ringx takes (nginx: 16 + 4096 of addresses and TLVs).
const V2_MAX: usize = 16 + 4096;

/// Not a PROXY protocol header (nginx's "broken header").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken;

/// What the header says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The client's address and the address it connected to; `None` for v1
    /// `UNKNOWN` and v2 `LOCAL` (the connection's own addresses stand).
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// v2 TLVs (type, value).
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

/// A header at the start of `b`: `Ok(None)` while more bytes are needed; else the
/// header and its length. `Err`: not a PROXY protocol header (nginx's "broken
/// header").
pub fn parse(b: &[u8]) -> Result<Option<(Header, usize)>, Broken> {
    let n = b.len().min(SIG.len());
    if b[..n] == SIG[..n] {
        return if b.len() < 16 { Ok(None) } else { v2(b) };
    }
    let n = b.len().min(6);
    if b[..n] != b"PROXY "[..n] {
        return Err(Broken);
    }
    match b.iter().take(V1_MAX).position(|&c| c == b'\n') {
        Some(i) if i > 0 && b[i - 1] == b'\r' => v1(&b[..i - 1]).map(|h| Some((h, i + 1))),
        Some(_) => Err(Broken),
        None if b.len() >= V1_MAX => Err(Broken),
        None => Ok(None),
    }
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT` or `PROXY UNKNOWN …` (without the CRLF).
fn v1(line: &[u8]) -> Result<Header, Broken> {
    let line = std::str::from_utf8(line).map_err(|_| Broken)?;
    let w: Vec<&str> = line.split(' ').collect();
    match w.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Header::default()),
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, dst, sp, dp] => {
            let ip = |s: &str| -> Result<IpAddr, Broken> {
                let ip: IpAddr = s.parse().map_err(|_| Broken)?;
                match (ip, *fam) {
                    (IpAddr::V4(_), "TCP4") | (IpAddr::V6(_), "TCP6") => Ok(ip),
                    _ => Err(Broken),
                }
            };
            let port = |s: &str| -> Result<u16, Broken> {
                if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(Broken);
                }
                s.parse().map_err(|_| Broken)
            };
            Ok(Header {
                src: Some(SocketAddr::new(ip(src)?, port(sp)?)),
                dst: Some(SocketAddr::new(ip(dst)?, port(dp)?)),
                tlvs: Vec::new(),
            })
        }
        _ => Err(Broken),
    }
}

fn v2(b: &[u8]) -> Result<Option<(Header, usize)>, Broken> {
    let (ver_cmd, fam) = (b[12], b[13]);
    let len = usize::from(u16::from_be_bytes([b[14], b[15]]));
    if ver_cmd >> 4 != 2 || 16 + len > V2_MAX {
        return Err(Broken);
    }
    if b.len() < 16 + len {
        return Ok(None);
    }
    let body = &b[16..16 + len];
    let total = 16 + len;
    let mut h = Header::default();
    let rest = match (ver_cmd & 0xf, fam >> 4) {
        // LOCAL: the balancer's own connection (health checks).
        (0, _) => return Ok(Some((h, total))),
        (1, 1) if body.len() >= 12 => {
            let a = |i: usize| IpAddr::V4(Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]));
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            h.src = Some(SocketAddr::new(a(0), p(8)));
            h.dst = Some(SocketAddr::new(a(4), p(10)));
            &body[12..]
        }
        (1, 2) if body.len() >= 36 => {
            let a = |i: usize| {
                let o: [u8; 16] = body[i..i + 16].try_into().unwrap_or([0; 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            h.src = Some(SocketAddr::new(a(0), p(32)));
            h.dst = Some(SocketAddr::new(a(16), p(34)));
            &body[36..]
        }
        // AF_UNSPEC, AF_UNIX: addresses unknown, as nginx.
        (1, 0 | 3) => return Ok(Some((h, total))),
        _ => return Err(Broken),
    };
    h.tlvs = tlvs(rest)?;
    Ok(Some((h, total)))
}

fn tlvs(mut b: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, Broken> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 3 {
            return Err(Broken);
        }
        let len = usize::from(u16::from_be_bytes([b[1], b[2]]));
        if b.len() < 3 + len {
            return Err(Broken);
        }
        out.push((b[0], b[3..3 + len].to_vec()));
        b = &b[3 + len..];
    }
    Ok(out)
}

/// The v1 line for a connection from `src` to `dst` (nginx's `proxy_protocol on`).
pub fn v1_line(src: SocketAddr, dst: SocketAddr) -> String {
    // IPv4-mapped addresses are written as IPv4, as the kernel reports them.
    let norm = |a: SocketAddr| match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(a, |v4| SocketAddr::new(IpAddr::V4(v4), a.port())),
        _ => a,
    };
    let (s, d) = (norm(src), norm(dst));
    match (s.ip(), d.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => format!("PROXY TCP4 {a} {b} {} {}\r\n", s.port(), d.port()),
        (IpAddr::V6(a), IpAddr::V6(b)) => format!("PROXY TCP6 {a} {b} {} {}\r\n", s.port(), d.port()),
        _ => "PROXY UNKNOWN\r\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        let b = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        let (h, n) = parse(b).unwrap().unwrap();
        assert_eq!(n, b.len() - 5);
        assert_eq!(h.src, Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(h.dst, Some("198.51.100.2:443".parse().unwrap()));
        let (h, _) = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n").unwrap().unwrap();
        assert_eq!(h.src, Some("[2001:db8::1]:1".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0, Header::default());
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4").unwrap(), None);
        assert_eq!(parse(b"PRO").unwrap(), None);
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            &[b'P', b'R', b'O', b'X', b'Y', b' ', b'T', b'C', b'P', b'4', b' '].repeat(11),
        ] {
            assert_eq!(parse(bad), Err(Broken), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn v2_headers() {
        let mut b = SIG.to_vec();
        b.extend_from_slice(&[0x21, 0x11, 0, 12 + 7]);
        b.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x01, 0xbb]);
        b.extend_from_slice(&[0x02, 0, 4, b'a', b'.', b'i', b'o']);
        b.extend_from_slice(b"rest");
        let (h, n) = parse(&b).unwrap().unwrap();
        assert_eq!(n, b.len() - 4);
        assert_eq!(h.src, Some("10.0.0.1:8080".parse().unwrap()));
        assert_eq!(h.dst, Some("10.0.0.2:443".parse().unwrap()));
        assert_eq!(h.tlvs, vec![(2, b"a.io".to_vec())]);
        assert_eq!(parse(&b[..20]).unwrap(), None);
        let mut local = SIG.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap(), (Header::default(), 16));
        let mut bad = SIG.to_vec();
        bad.extend_from_slice(&[0x11, 0x11, 0, 0]);
        assert_eq!(parse(&bad), Err(Broken));
    }

    #[test]
    fn v1_out() {
        let (a, b) = ("127.0.0.1:5000".parse().unwrap(), "127.0.0.2:80".parse().unwrap());
        assert_eq!(v1_line(a, b), "PROXY TCP4 127.0.0.1 127.0.0.2 5000 80\r\n");
        let (a, b) = ("[::1]:1".parse().unwrap(), "[::1]:2".parse().unwrap());
        assert_eq!(v1_line(a, b), "PROXY TCP6 ::1 ::1 1 2\r\n");
    }
}
