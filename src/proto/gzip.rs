//! Response compression as nginx's gzip filter decides and does it, sans-io.
//!
//! Where it sits: every response ringx writes (its own pages and `return` text,
//! static files, proxied responses) asks [`decide`] with what its head says; when
//! the answer is [`Gzip::Compress`], the body goes through an [`Encoder`] and out
//! chunked (HTTP/1.1) or as HTTP/2 DATA, without Content-Length or Accept-Ranges,
//! with `Content-Encoding: gzip` and a weakened ETag. `Vary: Accept-Encoding`
//! (`gzip_vary on`) goes on every response the filter would compress for a client
//! that asked.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

/// The gzip settings of a location.
#[derive(Debug, Clone)]
pub struct GzipConf {
    pub on: bool,
    /// `gzip_types`, lowercased; `text/html` always; `*` for any.
    pub types: Vec<String>,
    pub min_length: u64,
    pub level: u32,
    pub vary: bool,
    /// `gzip_proxied`: which requests that came through a proxy (`Via`) still get
    /// compressed responses (only `off` and `any` are accepted).
    pub proxied_any: bool,
    /// `gzip_http_version 1.0`: HTTP/1.0 requests too.
    pub http10: bool,
    /// `gzip_disable "msie6"`.
    pub disable_msie6: bool,
    /// `gzip_disable REGEX…` on User-Agent.
    pub disable: Vec<regex::bytes::Regex>,
    /// `gzip_static`: serve `FILE.gz` beside a static file.
    pub static_mode: Static,
}

/// `gzip_static off|on|always` (ngx_http_gzip_static_module): `on` when the client
/// takes gzip (the same rules as compressing), `always` whatever it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Static {
    Off,
    On,
    Always,
}

impl Default for GzipConf {
    fn default() -> Self {
        GzipConf {
            on: false,
            types: vec!["text/html".into()],
            min_length: 20,
            level: 1,
            vary: false,
            proxied_any: false,
            http10: false,
            disable_msie6: false,
            disable: Vec::new(),
            static_mode: Static::Off,
        }
    }
}

/// What the request brings to the decision.
#[derive(Debug, Default, Clone, Copy)]
pub struct Asked<'a> {
    pub accept_encoding: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub via: bool,
    /// HTTP/1.0 (HTTP/2 counts as 1.1 and above).
    pub http10: bool,
}

/// What the response head says.
#[derive(Debug, Clone, Copy)]
pub struct Offered<'a> {
    pub status: u16,
    pub content_type: &'a [u8],
    pub content_length: Option<u64>,
    /// The response already has a Content-Encoding.
    pub encoded: bool,
}

/// The filter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gzip {
    /// Not a response the filter touches.
    No,
    /// Not compressed for this client, but it would be for another one (the
    /// response varies on Accept-Encoding).
    Varies,
    Compress,
}

impl Gzip {
    /// Whether `Vary: Accept-Encoding` goes on the response.
    pub fn vary(self, conf: &GzipConf) -> bool {
        conf.vary && self != Gzip::No
    }
}

/// nginx's `ngx_http_gzip_header_filter` and `ngx_http_gzip_ok`. A HEAD request is
/// decided as its GET would be (nginx: its head says gzip, without a length).
/// The request's side is asked for only when the response could be compressed
/// (`asked`), so a location without `gzip on` reads no request header.
pub fn decide<'a>(conf: &GzipConf, asked: impl FnOnce() -> Asked<'a>, o: &Offered<'_>) -> Gzip {
    if !conf.on
        || !matches!(o.status, 200 | 403 | 404)
        || o.encoded
        || o.content_length.is_some_and(|n| n < conf.min_length)
        || !type_matches(&conf.types, o.content_type)
    {
        return Gzip::No;
    }
    if client_ok(conf, &asked()) {
        Gzip::Compress
    } else {
        Gzip::Varies
    }
}

/// nginx's `ngx_http_gzip_ok`: whether this client takes a gzip response.
pub fn client_ok(conf: &GzipConf, a: &Asked<'_>) -> bool {
    let Some(ae) = a.accept_encoding else {
        return false;
    };
    if !accepts_gzip(ae) {
        return false;
    }
    let ua = a.user_agent.unwrap_or_default();
    if conf.disable_msie6 && is_msie6(ua) {
        return false;
    }
    if a.http10 && !conf.http10 {
        return false;
    }
    if a.via && !conf.proxied_any {
        return false;
    }
    !(a.user_agent.is_some() && conf.disable.iter().any(|re| re.is_match(ua)))
}

/// `gzip` in Accept-Encoding with a quality above 0 (`ngx_http_gzip_accept_encoding`).
pub fn accepts_gzip(ae: &[u8]) -> bool {
    ae.split(|&b| b == b',').any(|item| {
        let mut parts = item.split(|&b| b == b';');
        let coding = trim(parts.next().unwrap_or_default());
        if !coding.eq_ignore_ascii_case(b"gzip") {
            return false;
        }
        for p in parts {
            let p = trim(p);
            if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                return quality(&p[2..]) > 0;
            }
        }
        true
    })
}

/// A quality value in thousandths (`ngx_http_gzip_quantity`); 0 for a malformed one.
fn quality(v: &[u8]) -> u32 {
    let s = std::str::from_utf8(trim(v)).unwrap_or("0");
    match s.parse::<f64>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u32,
        _ => 0,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let e = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(s, |e| e + 1);
    &v[s..e]
}

/// nginx's MSIE 4-6 test (not the SV1 builds of MSIE 6, which handle gzip).
fn is_msie6(ua: &[u8]) -> bool {
    let Some(i) = ua.windows(5).position(|w| w == b"MSIE ") else {
        return false;
    };
    let v = &ua[i + 5..];
    if v.get(1) != Some(&b'.') {
        return false;
    }
    matches!(v[0], b'4' | b'5') || (v[0] == b'6' && !contains(&v[1..], b"SV1"))
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// `gzip_types` against a Content-Type (its parameters ignored, case-insensitive).
pub fn type_matches(types: &[String], ctype: &[u8]) -> bool {
    let base = trim(ctype.split(|&b| b == b';').next().unwrap_or_default());
    types
        .iter()
        .any(|t| t == "*" || t.as_bytes().eq_ignore_ascii_case(base))
}

/// An ETag made weak (`W/"…"`), as nginx's `ngx_http_weak_etag` does for a
/// compressed response; a weak one stays as it is.
pub fn weak_etag(etag: &str) -> String {
    if etag.starts_with("W/") || !etag.starts_with('"') {
        etag.to_string()
    } else {
        format!("W/{etag}")
    }
}

/// A gzip stream written a piece at a time.
pub struct Encoder {
    gz: GzEncoder<Vec<u8>>,
}

impl Encoder {
    /// nginx's header: no name, mtime 0, XFL for the level, OS 3 (Unix).
    pub fn new(level: u32) -> Encoder {
        Encoder {
            gz: GzBuilder::new()
                .operating_system(3)
                .write(Vec::new(), Compression::new(level.clamp(1, 9))),
        }
    }

    /// Compresses `data`; the compressed bytes ready so far are appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = self.gz.write_all(data);
        out.append(self.gz.get_mut());
    }

    /// Compresses `data` and flushes (a sync flush): all of it can be decompressed
    /// from what is appended to `out`, so a streamed response stays streamed.
    pub fn push_flush(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let _ = self.gz.write_all(data);
        let _ = self.gz.flush();
        out.append(self.gz.get_mut());
    }

    /// Ends the stream (the rest of the compressed data and the trailer).
    pub fn finish(self, out: &mut Vec<u8>) {
        if let Ok(mut rest) = self.gz.finish() {
            out.append(&mut rest);
        }
    }
}

/// Appends `data` as one HTTP/1.1 chunk (nothing for empty data).
pub fn put_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `data` compressed whole (the responses ringx makes itself).
pub fn compress(level: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 32);
    let mut e = Encoder::new(level);
    e.push(data, &mut out);
    e.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> GzipConf {
        GzipConf {
            on: true,
            ..Default::default()
        }
    }

    fn asked(ae: &'static str) -> Asked<'static> {
        Asked {
            accept_encoding: Some(ae.as_bytes()),
            ..Default::default()
        }
    }

    fn html(len: Option<u64>) -> Offered<'static> {
        Offered {
            status: 200,
            content_type: b"text/html; charset=utf-8",
            content_length: len,
            encoded: false,
        }
    }

    #[test]
    fn the_filter_s_conditions() {
        let c = on();
        assert_eq!(decide(&c, || asked("gzip, deflate"), &html(Some(100))), Gzip::Compress);
        assert_eq!(decide(&c, || asked("gzip"), &html(None)), Gzip::Compress);
        assert_eq!(decide(&c, || asked("deflate"), &html(Some(100))), Gzip::Varies);
        assert_eq!(decide(&c, Asked::default, &html(Some(100))), Gzip::Varies);
        assert_eq!(decide(&c, || asked("gzip"), &html(Some(19))), Gzip::No);
        assert_eq!(
            decide(&GzipConf::default(), || asked("gzip"), &html(Some(100))),
            Gzip::No
        );
        let mut o = html(Some(100));
        o.content_type = b"text/plain";
        assert_eq!(decide(&c, || asked("gzip"), &o), Gzip::No);
        o.status = 404;
        o.content_type = b"TEXT/HTML";
        assert_eq!(decide(&c, || asked("gzip"), &o), Gzip::Compress);
        o.status = 500;
        assert_eq!(decide(&c, || asked("gzip"), &o), Gzip::No);
        let mut o = html(Some(100));
        o.encoded = true;
        assert_eq!(decide(&c, || asked("gzip"), &o), Gzip::No);
        let mut a = asked("gzip");
        a.via = true;
        assert_eq!(decide(&c, || a, &html(Some(100))), Gzip::Varies);
        a.via = false;
        a.http10 = true;
        assert_eq!(decide(&c, || a, &html(Some(100))), Gzip::Varies);
        a.http10 = false;
        assert_eq!(decide(&c, || a, &html(Some(100))), Gzip::Compress);
    }

    #[test]
    fn accept_encoding_qualities() {
        assert!(accepts_gzip(b"gzip"));
        assert!(accepts_gzip(b"br, GZIP;q=0.5"));
        assert!(!accepts_gzip(b"gzip;q=0"));
        assert!(!accepts_gzip(b"gzip;q=0.000"));
        assert!(!accepts_gzip(b"x-gzip"));
        assert!(!accepts_gzip(b"identity"));
    }

    #[test]
    fn msie6_and_disable() {
        assert!(is_msie6(b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.0)"));
        assert!(!is_msie6(b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"));
        assert!(!is_msie6(b"Mozilla/5.0 (compatible; MSIE 10.0)"));
        let c = GzipConf {
            disable: vec![regex::bytes::Regex::new("curl").unwrap()],
            ..on()
        };
        let mut a = asked("gzip");
        a.user_agent = Some(b"curl/8");
        assert_eq!(decide(&c, || a, &html(Some(100))), Gzip::Varies);
    }

    #[test]
    fn stream_round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let mut out = Vec::new();
        let mut e = Encoder::new(1);
        for piece in data.chunks(3000) {
            e.push(piece, &mut out);
        }
        e.finish(&mut out);
        assert_eq!(&out[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(out[9], 3, "OS byte is Unix, as nginx's");
        let mut d = flate2::read::GzDecoder::new(&out[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(weak_etag("\"a-1\""), "W/\"a-1\"");
        assert_eq!(weak_etag("W/\"a-1\""), "W/\"a-1\"");
    }
}
