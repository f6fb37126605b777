//! Request URIs: nginx's `$uri` normalisation and `proxy_pass` URI replacement.
//!
//! `$uri` is the path percent-decoded, with `//` merged and `.`/`..` segments
//! resolved (a `..` above the root is a 400), as nginx computes it for location
//! matching. Most paths need none of this; [`normalize`] says so and the request path
//! keeps using the span into the receive buffer without copying.

use super::HttpError;

/// Splits `path?args`.
pub fn split_args(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    match target.iter().position(|&c| c == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    }
}

/// Writes the normalised form of `path` into `out` when it differs from `path`;
/// returns false (and leaves `out` alone) when `path` is already normal.
pub fn normalize(path: &[u8], out: &mut Vec<u8>) -> Result<bool, HttpError> {
    let needs = path.contains(&b'%') || path.windows(2).any(|w| w == b"//" || w == b"/.") || path.is_empty();
    if !needs {
        return Ok(false);
    }
    out.clear();
    if path.is_empty() {
        out.push(b'/');
        return Ok(true);
    }
    // Decode first, then resolve segments on the decoded bytes (as nginx does).
    let mut dec = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let c = path[i];
        if c == b'%' {
            let h = path
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match h {
                Some(0) | None => return Err(HttpError::client(400, "client sent invalid request")),
                Some(b) => dec.push(b),
            }
            i += 3;
        } else {
            dec.push(c);
            i += 1;
        }
    }
    for seg in dec.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                // Pop the last segment; above the root is an error.
                if out.is_empty() {
                    return Err(HttpError::client(400, "client sent invalid request"));
                }
                let cut = out.iter().rposition(|&c| c == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            s => {
                out.push(b'/');
                out.extend_from_slice(s);
            }
        }
    }
    let trailing = dec.ends_with(b"/") || dec.ends_with(b"/.") || dec.ends_with(b"/..");
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    Ok(true)
}

/// Percent-escapes what nginx's `NGX_ESCAPE_URI` escapes (space, `#`, `%`, `?`,
/// controls and non-ASCII bytes).
pub fn escape_into(src: &[u8], out: &mut Vec<u8>) {
    escape_with(src, b"", out)
}

/// [`escape_into`]'s set and the bytes of `extra` too (nginx's other escape tables:
/// `NGX_ESCAPE_ARGS` adds `"&+;`, `NGX_ESCAPE_HTML` `"&'<>`).
pub fn escape_with(src: &[u8], extra: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in src {
        if c <= 0x20 || c >= 0x7f || c == b'#' || c == b'%' || c == b'?' || extra.contains(&c) {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, u16> {
        let mut out = Vec::new();
        match normalize(p.as_bytes(), &mut out) {
            Ok(true) => Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(false) => Ok(p.to_string()),
            Err(e) => Err(e.status),
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(n("/a/b"), Ok("/a/b".into()));
        assert_eq!(n("/a//b"), Ok("/a/b".into()));
        assert_eq!(n("/a/./b/../c"), Ok("/a/c".into()));
        assert_eq!(n("/a/%62"), Ok("/a/b".into()));
        assert_eq!(n("/a/b/.."), Ok("/a/".into()));
        assert_eq!(n("/a/"), Ok("/a/".into()));
        assert_eq!(n("/.."), Err(400));
        assert_eq!(n("/%2e%2e/x"), Err(400));
        assert_eq!(n("/a%00"), Err(400));
        assert_eq!(n("/%zz"), Err(400));
    }

    #[test]
    fn escaping_and_args() {
        let mut o = Vec::new();
        escape_into(b"/a b?#%\xff", &mut o);
        assert_eq!(o, b"/a%20b%3F%23%25%FF");
        assert_eq!(split_args(b"/p?x=1"), (&b"/p"[..], Some(&b"x=1"[..])));
        assert_eq!(split_args(b"/p"), (&b"/p"[..], None));
    }
}
